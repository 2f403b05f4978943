"""Reproducible runs from a spec: ``bayesgmm run models/<spec>.toml`` (or :func:`run_spec`).

A run fits what the spec asks for and writes into its output directory:

- ``MANIFEST.json``: the validated spec, package versions, timings, the verdict, and every
  file with its SHA-256.  It is written last: a directory without it is not a result.
- GMM with NUTS: ``posterior.nc`` (the fitted :class:`bayesgmm.BayesGMM`, reloadable with
  ``BayesGMM.load``), ``summary.csv`` (ArviZ summary of the model variables),
  ``crosscheck.csv`` (EM/MAP vs posterior table), ``report.md``; figures ``components.png``
  (ellipses, D >= 2) or ``density.png`` (1-D), ``responsibilities.png``, ``rank.png``,
  ``trace.png``, ``pair.png``; with a K sweep also ``k_selection.csv`` and
  ``k_selection.png`` (the selected K is reported in full).
- GMM with EM or MAP: ``em.nc`` (``GaussianMixture.load``), ``parameters.csv`` (EM and, for
  MAP, MAP values of weights, means, sds, correlations), ``report.md`` and the
  components/density figure.
- MPMA: see :func:`bayesgmm.mpma.run.run_mpma` (``mpma.nc``, metrics, report).

**Atomicity.** Everything is written to a hidden staging directory beside the target
(``.<name>.partial-<pid>``) that is renamed into place only when complete; an interrupted
run leaves at most the staging directory, never a directory that looks complete.  An
existing result is replaced only with ``overwrite=True`` (``--overwrite``).

**Reproducibility.** Every random step is seeded from ``inference.seed``; re-running a spec
reproduces the numbers (EM, MAP and the NUTS draws).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm.spec import Spec, SpecError, load_spec

__all__ = ["RunResult", "load_spec_data", "run_spec"]

MANIFEST = "MANIFEST.json"


@dataclass
class RunResult:
    """Where a run wrote its files and its headline outcome."""

    directory: Path
    files: list[str]
    verdict: str | None
    manifest: dict


class _Progress:
    """Stage messages with elapsed time on stderr (silent when disabled)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, stage: str, fn: Callable, *args, **kwargs):
        if self.enabled:
            print(f"[bayesgmm run] {stage} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        self.timings[stage] = round(time.perf_counter() - t, 3)
        if self.enabled:
            print(
                f"[bayesgmm run] {stage}: done in {self.timings[stage]:.1f} s "
                f"(total {time.perf_counter() - self.t0:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
        return out


def load_spec_data(spec: Spec) -> pd.DataFrame:
    """The spec's data: a bundled dataset, a CSV (relative to the spec file) or MovieLens."""
    from bayesgmm.datasets import load_dataset, load_movielens

    if spec.source == "movielens-100k":
        return load_movielens("100k", data_home=spec.data_path)
    base = spec.origin.parent if spec.origin is not None else Path.cwd()
    path = base / spec.source
    if path.is_file():
        frame = pd.read_csv(path)
    else:
        try:
            frame = load_dataset(spec.source)
        except ValueError as err:
            raise SpecError(
                f"data.source = {spec.source!r} is neither a file (looked for {path}) nor a "
                f"bundled dataset: {err}"
            ) from None
    if spec.columns is not None:
        missing = [c for c in spec.columns if c not in frame.columns]
        if missing:
            raise SpecError(
                f"data.columns {missing} not in the data; available: {list(frame.columns)}"
            )
        frame = frame[list(spec.columns)]
    else:
        frame = frame.select_dtypes("number")
    return frame


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("bayesgmm", "numpy", "scikit-learn", "pymc", "pytensor", "arviz", "nutpie"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)


def _spec_dict(spec: Spec) -> dict:
    out = asdict(spec)
    for key in ("data_path", "directory", "origin"):
        out[key] = None if out[key] is None else str(out[key])
    out["n_components"] = list(spec.n_components)
    out["columns"] = None if spec.columns is None else list(spec.columns)
    return out


# ----------------------------------------------------------------------------- GMM


def _point_parameters(em, map_estimate, covariance_type: str) -> pd.DataFrame:
    from bayesgmm.gmm.crosscheck import flatten_reporting, reporting_parameters

    def flat(w, m, c):
        rep = reporting_parameters(w, m, c, covariance_type, from_cholesky=False)
        return flatten_reporting(rep, covariance_type)

    names, em_values = flat(em.weights_, em.means_, em.covariances_)
    table = pd.DataFrame({"em": em_values}, index=pd.Index(names, name="parameter"))
    if map_estimate is not None:
        table["map"] = flat(
            map_estimate["weights"], map_estimate["means"], map_estimate["covariances"]
        )[1]
    return table


def _component_figure(model, X: pd.DataFrame):
    from bayesgmm.gmm.plotting import plot_components, plot_density

    ax = plot_density(model, X) if X.shape[1] == 1 else plot_components(model, X)
    return ax.figure, "density.png" if X.shape[1] == 1 else "components.png"


def _arviz_figures(model, out: Path) -> list[str]:
    import arviz as az

    names = ["weights", "means", "sigmas"]
    size = {"layout": "constrained"}
    written = []
    for filename, make in (
        ("rank.png", lambda: az.plot_rank(model.idata_, var_names=names, figure_kwargs=size)),
        (
            "trace.png",
            lambda: az.plot_trace_dist(
                model.idata_, var_names=["weights", "means"], compact=False, figure_kwargs=size
            ),
        ),
        ("pair.png", lambda: az.plot_pair(model.idata_, var_names=["means"])),
    ):
        pc = make()
        pc.savefig(out / filename)
        written.append(filename)
    import matplotlib.pyplot as plt

    plt.close("all")
    return written


def _run_gmm(spec: Spec, X: pd.DataFrame, out: Path, step: _Progress) -> tuple[str | None, dict]:
    from bayesgmm.gmm.estimator import BayesGMM, _point_from_chol, fit_point_estimates
    from bayesgmm.gmm.plotting import plot_responsibilities

    report = [f"# {spec.name}", "", spec.description, ""]
    report += [
        f"Data: `{spec.source}`, {X.shape[0]} observations x {X.shape[1]} features "
        f"({', '.join(map(str, X.columns))}).",
        "",
    ]
    extra: dict = {}
    figures: list[str] = []
    priors = spec.priors or None
    settings = dict(
        covariance_type=spec.covariance_type, priors=priors, order_feature=spec.order_feature
    )
    if spec.method in ("em", "map"):
        k = spec.n_components[0]
        if spec.is_sweep:
            raise SpecError("a sweep over K needs inference.method = 'nuts' (it compares LOO)")
        seeds = np.random.SeedSequence(spec.seed).generate_state(2)
        if spec.method == "map":
            em, _, point = step(
                "EM + MAP",
                fit_point_estimates,
                X,
                k,
                **settings,
                em_n_init=spec.em_n_init,
                em_seed=int(seeds[0]),
                map_seed=int(seeds[1]),
            )
            map_est = _point_from_chol(
                point["weights"], point["means"], point["chol_cov"], spec.covariance_type
            )
        else:
            from bayesgmm.em.estimator import GaussianMixture

            em = step(
                "EM",
                GaussianMixture(
                    k,
                    covariance_type=spec.covariance_type,
                    n_init=spec.em_n_init,
                    random_state=int(seeds[0]),
                ).fit,
                X,
            )
            map_est = None
        em.save(out / "em.nc")
        params = _point_parameters(em, map_est, spec.covariance_type)
        params.to_csv(out / "parameters.csv")
        report += ["## Point estimates", "", "```", params.to_string(), "```", ""]
        report += [
            f"EM log-likelihood {em.score(X) * len(X):.4f}, BIC {em.bic(X):.3f}, "
            f"converged {em.converged_} after {em.n_iter_} iterations.",
            "",
        ]
        if spec.figures:
            fig, name = _component_figure(em, X)
            _save_figure(fig, out / name)
            figures.append(name)
        verdict = None
    else:
        common = dict(
            chains=spec.chains,
            draws=spec.draws,
            tune=spec.tune,
            em_n_init=spec.em_n_init,
            progressbar=step.enabled,
            **settings,
        )
        if spec.is_sweep:
            from bayesgmm.gmm.selection import select_n_components

            selection = step(
                f"K sweep {list(spec.n_components)}",
                select_n_components,
                X,
                spec.n_components,
                random_state=spec.seed,
                **common,
            )
            selection.table.to_csv(out / "k_selection.csv")
            k = selection.choice_loo_parsimonious if spec.select == "loo" else selection.choice_bic
            model = selection.bayes_fits[k]
            report += [
                "## Choosing K",
                "",
                "```",
                selection.to_text(),
                "```",
                "",
                f"Selected by {spec.select}: K = {k}.",
                "",
            ]
            extra["selected_k"] = k
            if spec.figures:
                _save_figure(selection.plot(), out / "k_selection.png")
                figures.append("k_selection.png")
        else:
            k = spec.n_components[0]
            model = step(f"BayesGMM K={k}", BayesGMM(k, random_state=spec.seed, **common).fit, X)
        model.save(out / "posterior.nc")
        import arviz as az

        az.summary(model.idata_, var_names=["weights", "means", "sigmas"], round_to="none").to_csv(
            out / "summary.csv"
        )
        model.crosscheck_.table.to_csv(out / "crosscheck.csv")
        verdict = model.crosscheck_.verdict
        report += [f"## Cross-check (K = {k})", "", "```", model.crosscheck_.to_text(), "```", ""]
        if spec.figures:
            fig, name = _component_figure(model, X)
            _save_figure(fig, out / name)
            _save_figure(plot_responsibilities(model, X).figure, out / "responsibilities.png")
            figures += [name, "responsibilities.png"]
            figures += step("ArviZ figures", _arviz_figures, model, out)
    if figures:
        report += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    (out / "report.md").write_text("\n".join(report))
    return verdict, extra


# ----------------------------------------------------------------------------- driver


def _target(spec: Spec, directory: str | Path | None) -> Path:
    return Path(directory) if directory is not None else spec.directory


def run_spec(
    spec: Spec | str | Path,
    *,
    directory: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> RunResult:
    """Fit and report what ``spec`` describes; see the module docstring for the outputs.

    Parameters
    ----------
    spec : Spec or path of a TOML spec
    directory : path, optional
        Output directory (default: the spec's ``output.directory``).
    overwrite : bool
        Replace an existing result; otherwise an existing directory is an error.
    progress : bool
        Stage messages and the sampler's progress bar.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    final = _target(spec, directory)
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"{final} exists; pass overwrite=True (CLI: --overwrite) or another directory"
        )
    step = _Progress(progress)
    X = step("load data", load_spec_data, spec)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if spec.family == "gmm":
            verdict, extra = _run_gmm(spec, X, staging, step)
        else:
            from bayesgmm.mpma.run import run_mpma

            verdict, extra = run_mpma(spec, X, staging, step)
        files = sorted(p.name for p in staging.iterdir())
        manifest = {
            "complete": True,
            "spec": _spec_dict(spec),
            "verdict": verdict,
            **extra,
            "versions": _versions(),
            "timings_s": step.timings,
            "files": {name: _sha256(staging / name) for name in files},
        }
        tmp = staging / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, staging / MANIFEST)
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RunResult(final, [*files, MANIFEST], verdict, manifest)
