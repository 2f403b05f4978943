"""SBC of the Bayesian GMM with missing entries, and coverage of the imputation intervals.

Model: K = 2, D = 2, "full" covariances, means ordered on feature 0, the fixed priors of
:func:`bayesgmm.gmm.calibration.sbc_priors`.  ``--replications`` parameter sets and data
sets of ``--n-obs`` rows are drawn from the prior; ``--missing`` of the entries are removed
completely at random (one mask for all replications, at least one entry kept per row);
each data set is fitted by the BayesGMM pipeline (EM with missing entries -> MAP -> nutpie
NUTS on the model that marginalises the missing coordinates per pattern).  Reports:

- rank uniformity of every reporting parameter and of the observed-data log-likelihood
  (chi-square and ECDF tests, Bonferroni verdict at family-wise 0.05);
- coverage of the central ``--prob`` posterior predictive intervals of the removed entries
  (:meth:`bayesgmm.BayesGMM.impute`'s draws), over all replications: with exact inference
  it equals ``--prob`` in expectation over the prior.

    python benchmarks/sbc_missing.py                       # 100 replications
    python benchmarks/sbc_missing.py --replications 3 --out /tmp/sbcm   # smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from bayesgmm.gmm.calibration import run_sbc, simulate_from_prior


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replications", type=int, default=100)
    p.add_argument("--n-obs", type=int, default=100)
    p.add_argument("--missing", type=float, default=0.2, help="fraction of entries removed")
    p.add_argument("--n-ranks", type=int, default=99)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--prob", type=float, default=0.9, help="imputation interval mass")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    sim = simulate_from_prior(
        args.replications, args.n_obs, 2, seed=args.seed, missing_fraction=args.missing
    )

    def progress(i, row):
        cov = row["imputed_covered"] / row["imputed_total"]
        print(f"replication {i}: {row['seconds']:.1f} s, coverage {cov:.3f}", flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_sbc(
            sim,
            n_ranks=args.n_ranks,
            chains=args.chains,
            draws=args.draws,
            tune=args.tune,
            seed=args.seed,
            impute_prob=args.prob,
            callback=progress,
        )
    table = result.table()
    total = int(result.diagnostics["imputed_total"].sum())
    coverage = result.imputation_coverage
    summary = {
        "command": "python "
        + " ".join(map(shlex.quote, ["benchmarks/sbc_missing.py", *sys.argv[1:]])),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "seconds_total": round(time.perf_counter() - t0, 1),
        "compile_seconds": round(result.compile_seconds, 1),
        "settings": result.settings,
        "parameters_passed": int(table["passed"].sum()),
        "parameters": len(table),
        "min_p_chi2": float(table["chi2_p"].min()),
        "min_p_ecdf": float(table["ecdf_p"].min()),
        "imputation_coverage": coverage,
        "imputed_entries": total,
        "coverage_binomial_se": float(np.sqrt(args.prob * (1 - args.prob) / total)),
        "warnings": result.warning_summary(),
    }
    table.to_csv(args.out / "sbc_missing.csv")
    result.diagnostics.to_csv(args.out / "sbc_missing_replications.csv")
    (args.out / "sbc_missing.json").write_text(json.dumps(summary, indent=2, default=str))
    print(table.to_string())
    print(json.dumps(summary, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
