"""Simulation-based calibration (Talts et al. 2018) of the Bayesian GMM, 1-D and 2-D.

For each model (K = 2 components, "full" covariance, means ordered on feature 0, the fixed
priors of :func:`bayesgmm.gmm.calibration.sbc_priors`): draw ``--replications`` parameter
sets and data sets of ``--n-obs`` points from the prior, fit each by the BayesGMM
pipeline (EM -> MAP -> nutpie NUTS from the MAP), rank the true value of every reporting
parameter among ``--n-ranks`` evenly thinned posterior draws, and test the ranks for
uniformity (chi-square on binned ranks and the ECDF test of Säilynoja et al. 2022, with a
Bonferroni verdict).  Writes to ``--out``:

- ``sbc_1d.csv``, ``sbc_2d.csv``: one row per parameter (statistics, p-values, verdict);
- ``sbc_1d_ranks.csv``, ``sbc_2d_ranks.csv``: ranks and sampler diagnostics per replication;
- ``sbc_ranks.png``: rank histograms with 99 % binomial bands, and rank-ECDF differences
  with 95 % simultaneous bands;
- ``SBC.md``: command, date, machine, runtime, settings, warnings and the tables.

    python benchmarks/sbc_gmm.py                      # 100 replications per model (~15 min)
    python benchmarks/sbc_gmm.py --replications 10 --models 1d --out /tmp/sbc   # quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm.gmm.calibration import (
    SBCResult,
    ecdf_band,
    rank_uniformity_table,
    run_sbc,
    sbc_priors,
    simulate_from_prior,
)

MODELS = {"1d": 1, "2d": 2}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replications", type=int, default=100, help="SBC replications per model")
    p.add_argument("--n-obs", type=int, default=150, help="observations per data set")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    p.add_argument("--n-ranks", type=int, default=99, help="L, thinned posterior draws")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--draws", type=int, default=1000, help="draws per chain")
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--em-n-init", type=int, default=5, help="EM restarts")
    p.add_argument("--bins", type=int, default=10, help="bins of the chi-square test")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise level")
    p.add_argument("--seed", type=int, default=20181804)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--no-plot", action="store_true", help="skip sbc_ranks.png")
    return p.parse_args(argv)


def run_model(name: str, args: argparse.Namespace) -> tuple[SBCResult, pd.DataFrame, float]:
    d = MODELS[name]
    seed = args.seed + d
    t0 = time.perf_counter()
    sim = simulate_from_prior(args.replications, args.n_obs, d, seed=seed)

    def progress(i, row):
        if (i + 1) % 10 == 0 or i + 1 == args.replications:
            print(
                f"  [{name}] {i + 1}/{args.replications}  {row['seconds']:.1f} s  "
                f"div={row['divergences']} ess={row['min_ess_bulk']:.0f}",
                flush=True,
            )

    result = run_sbc(
        sim,
        n_ranks=args.n_ranks,
        chains=args.chains,
        draws=args.draws,
        tune=args.tune,
        em_n_init=args.em_n_init,
        seed=seed,
        callback=progress,
    )
    table = result.table(n_bins=args.bins, alpha=args.alpha)
    return result, table, time.perf_counter() - t0


def binned_counts(ranks: np.ndarray, n_ranks: int, n_bins: int) -> str:
    values = np.arange(n_ranks + 1)
    bin_of = values * n_bins // (n_ranks + 1)
    return " ".join(str(c) for c in np.bincount(bin_of[ranks], minlength=n_bins))


def write_csvs(name: str, result: SBCResult, table: pd.DataFrame, out: Path, bins: int) -> None:
    t = table.copy()
    t["rank_histogram"] = [
        binned_counts(result.ranks[:, j], result.n_ranks, bins) for j in range(len(result.labels))
    ]
    t.to_csv(out / f"sbc_{name}.csv", float_format="%.6g")
    per_rep = pd.DataFrame(result.ranks, columns=[f"rank:{lab}" for lab in result.labels])
    per_rep.index.name = "replication"
    per_rep.join(result.diagnostics).to_csv(out / f"sbc_{name}_ranks.csv", float_format="%.6g")


def plot(results: dict[str, SBCResult], out: Path, bins: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    rows = [(name, j) for name, r in results.items() for j in range(len(r.labels))]
    ncols = 6
    nrows = -(-len(rows) // ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(2.6 * ncols, 2.0 * 2 * nrows))
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.set_visible(False)
    for i, (name, j) in enumerate(rows):
        res = results[name]
        r, n, L = res.ranks[:, j], res.ranks.shape[0], res.n_ranks
        values = np.arange(L + 1)
        bin_of = values * bins // (L + 1)
        counts = np.bincount(bin_of[r], minlength=bins)
        p_bin = np.bincount(bin_of, minlength=bins) / (L + 1)
        ax = axes[2 * (i // ncols), i % ncols]
        ax.set_visible(True)
        lo, hi = stats.binom.ppf(0.005, n, p_bin.mean()), stats.binom.ppf(0.995, n, p_bin.mean())
        ax.axhspan(lo, hi, color="0.85")
        ax.bar(np.arange(bins), counts, width=0.9, color="C0")
        ax.set_title(f"{name} {res.labels[j]}", fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
        ax = axes[2 * (i // ncols) + 1, i % ncols]
        ax.set_visible(True)
        z, low, up = ecdf_band(n, L, 0.05)
        ecdf = np.cumsum(np.bincount(r, minlength=L + 1))[:-1] / n
        ax.fill_between(z, low - z, up - z, color="0.85", step="post")
        ax.step(z, ecdf - z, where="post", color="C1", lw=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.tick_params(labelsize=6)
    fig.suptitle(
        "SBC rank histograms (grey: 99 % binomial band per bin) and rank ECDF - uniform "
        "(grey: 95 % simultaneous band)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out / "sbc_ranks.png", dpi=110)
    plt.close(fig)


def fmt_p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


def shape_hint(row: pd.Series, n_ranks: int, outer_expected: float) -> str:
    """Talts et al. (2018) reading of a rank histogram from its mean and outer mass."""
    hints = []
    if row["mean_rank"] < 0.45 * n_ranks:
        hints.append("ranks low: posterior too high (biased up)")
    elif row["mean_rank"] > 0.55 * n_ranks:
        hints.append("ranks high: posterior too low (biased down)")
    if row["outer_frac"] > 1.5 * outer_expected:
        hints.append("U shape: posterior too narrow (over-confident)")
    elif row["outer_frac"] < 0.5 * outer_expected:
        hints.append("hump: posterior too wide (over-dispersed)")
    return "; ".join(hints) or "no simple shape"


def sensitivity(res: SBCResult, table: pd.DataFrame, args: argparse.Namespace) -> list[str]:
    """p-values on the replications without sampler warnings, next to those on all of them."""
    d = res.diagnostics
    clean = (
        (d["divergences"] == 0) & (d["max_r_hat"] <= 1.01) & (d["min_ess_bulk"] >= res.n_ranks)
    ).to_numpy()
    lines = []
    failed = table.index[~table["passed"]]
    for label in failed:
        lines.append(
            f"- `{label}` flagged: "
            + shape_hint(table.loc[label], res.n_ranks, table.attrs["outer_expected"])
            + "."
        )
    if clean.sum() >= 20 and clean.sum() < len(clean):
        sub = rank_uniformity_table(
            res.ranks[clean], res.labels, res.n_ranks, n_bins=args.bins, alpha=args.alpha
        )
        lines += [
            "",
            f"Sensitivity: the {int(clean.sum())} replications without divergences, with "
            "R-hat <= 1.01 and bulk ESS >= L (a selection on the data, so not a valid SBC on "
            "its own; it shows whether the problem cases drive the result).  Smallest p-value "
            "per parameter, all replications -> clean ones: "
            + ", ".join(
                f"`{lab}` {fmt_p(table.loc[lab, 'p_min'])} -> {fmt_p(sub.loc[lab, 'p_min'])}"
                for lab in res.labels
            )
            + ".",
        ]
    return [*lines, ""] if lines else []


def markdown(results, tables, runtimes, args, total_seconds) -> str:
    import nutpie
    import pymc

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        "# Simulation-based calibration of the Bayesian GMM",
        "",
        "Generated by `benchmarks/sbc_gmm.py` (Talts et al. 2018); do not edit by hand.",
        "",
        f"- Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, PyMC {pymc.__version__}, nutpie {nutpie.__version__}",
        f"- Total runtime: {total_seconds / 60:.1f} min",
        "",
        "## Set-up",
        "",
        f"- Model: `build_gmm_model`, K = 2, covariance_type 'full', means ordered on feature 0, "
        f"N = {args.n_obs} observations per data set.",
        f"- Fixed priors (`sbc_priors()`): `{json.dumps(sbc_priors('full'))}` "
        "(data-scaled defaults would make the prior depend on the data).",
        "- Per replication: theta ~ prior and x ~ p(x | theta) by `pm.sample_prior_predictive`; "
        f"EM ({args.em_n_init} restarts) -> MAP (L-BFGS-B) -> nutpie NUTS, {args.chains} chains x "
        f"{args.draws} draws after {args.tune} tuning steps, all chains started at the MAP.  "
        "If the smallest bulk ESS is below L, the replication is re-sampled once with twice the "
        "draws.",
        f"- Ranks of the true values among L = {args.n_ranks} draws thinned evenly from the "
        f"pooled chains (ranks 0..{args.n_ranks}); no replication is dropped.",
        f"- Tests per parameter: Pearson chi-square on {args.bins} rank bins (df = "
        f"{args.bins - 1}); ECDF test (smallest pointwise binomial tail probability of the rank "
        "ECDF, Monte Carlo null; Säilynoja et al. 2022).  `passed` = both p-values >= "
        f"alpha / (2 P) with family-wise alpha = {args.alpha} (Bonferroni over the P "
        "parameters and both tests of a model; conservative, the tests are dependent).",
        "- `weights[1] = 1 - weights[0]`, so its ranks mirror those of `weights[0]` "
        "(same statistics, listed for completeness).  `loglik` is the log-likelihood of the "
        "replication's data, a joint test quantity (Modrák et al. 2023).",
        "- Reading (Talts et al. 2018): mean rank below L/2 = posterior too high; more than "
        "the expected share of ranks in the outer tenths = U shape = posterior too narrow; "
        "less = hump = posterior too wide.",
        "",
    ]
    for name, res in results.items():
        table = tables[name]
        warn = res.warning_summary()
        n_fail = int((~table["passed"]).sum())
        verdict = (
            "**PASS**: no parameter flagged"
            if n_fail == 0
            else f"**FAIL**: {n_fail} parameter(s) flagged"
        )
        lines += [
            f"## {name.upper()} model ({res.settings['n_sims']} replications)",
            "",
            f"Verdict at family-wise alpha = {table.attrs['alpha']} (per-test level "
            f"{table.attrs['per_test_level']:.2g}): {verdict}.",
            "",
            f"Runtime: {runtimes[name] / 60:.1f} min (compilation {res.compile_seconds:.0f} s, "
            f"fits {res.seconds:.0f} s, {res.seconds / max(1, len(res.ranks)):.1f} s per "
            "replication).",
            "",
            "Sampler warnings (replications kept in the ranks): "
            + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in warn.items())
            + f"; divergent transitions in total: {int(res.diagnostics['divergences'].sum())}.",
            "",
            "| parameter | mean rank (L/2 = "
            f"{res.n_ranks / 2:g}) | outer tenths ({table.attrs['outer_expected']:.2f}) | "
            f"chi2 | chi2 p | ECDF max dev | ECDF p | passed | rank histogram ({args.bins} bins) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for j, (label, row) in enumerate(table.iterrows()):
            hist = binned_counts(res.ranks[:, j], res.n_ranks, args.bins)
            lines.append(
                f"| {label} | {row['mean_rank']:.1f} | {row['outer_frac']:.2f} | "
                f"{row['chi2']:.1f} | {fmt_p(row['chi2_p'])} | {row['ecdf_max_dev']:.3f} | "
                f"{fmt_p(row['ecdf_p'])} | "
                f"{'yes' if row['passed'] else '**no**'} | `{hist}` |"
            )
        lines.append("")
        lines += sensitivity(res, table, args)
    if not args.no_plot:
        lines += ["![SBC rank histograms and ECDF differences](sbc_ranks.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", category=FutureWarning)
    t0 = time.perf_counter()
    results, tables, runtimes = {}, {}, {}
    for name in args.models:
        print(f"SBC {name}: {args.replications} replications, N = {args.n_obs}", flush=True)
        results[name], tables[name], runtimes[name] = run_model(name, args)
        write_csvs(name, results[name], tables[name], args.out, args.bins)
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            print(tables[name].round(4))
        print(results[name].warning_summary(), flush=True)
    if not args.no_plot:
        plot(results, args.out, args.bins)
    text = markdown(results, tables, runtimes, args, time.perf_counter() - t0)
    (args.out / "SBC.md").write_text(text + "\n")
    print(f"wrote {args.out}/SBC.md")
    return 0 if all(t["passed"].all() for t in tables.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
