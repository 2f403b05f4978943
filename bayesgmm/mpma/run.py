"""MPMA runs from a spec (``model.family = "mpma"``), called by :func:`bayesgmm.run.run_spec`.

What a run does, seeded from ``inference.seed``:

1. holds out ``inference.holdout`` of the ratings (a seeded random split; 0 keeps all),
   fits the rest with :class:`bayesgmm.mpma.MPMA` by MAP-EM (``model.estimator =
   "map-em"``, the default) or :class:`bayesgmm.mpma.GibbsMPMA` by Gibbs sampling
   (``"gibbs"``) (``model.options`` are the class's keyword arguments, ``model.priors``
   the fields of :class:`~bayesgmm.mpma.MPMAPriors` or :class:`~bayesgmm.mpma.GibbsPriors`),
   and scores RMSE/MAE on the training and held-out ratings;
2. with ``inference.method = "nuts"``, runs the EM (marginal MAP of the weights and noise
   sds by SAEM, from MAP-EM) vs NUTS cross-check of
   :func:`bayesgmm.mpma.crosscheck.crosscheck_subsample` on the densest
   ``inference.subsample = [n_users, n_items]`` sub-matrix (``subsample_factors``
   factors; NUTS with ``chains``/``draws``/``tune``).

The NUTS check is of the PyMC posterior with MAP-EM's fixed-penalty priors
(``model.priors`` with "map-em", the ``MPMAPriors`` defaults with "gibbs"), on its own fit
of the subsample.

Files: ``mpma.nc`` (the fit, ``MPMA.load`` or ``GibbsMPMA.load``), ``metrics.csv``
(RMSE/MAE per split), ``parameters.csv`` (weights and noise sds per component),
``report.md``, figure ``convergence.png`` (log posterior per EM iteration, or each
component's log-likelihood per Gibbs sweep); with NUTS also ``posterior.nc`` (the
subsample's draws, ``arviz``/``xarray.open_datatree``), ``crosscheck.csv`` and
``rank.png``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm.mpma.em import MPMAPriors
from bayesgmm.spec import Spec, SpecError

__all__ = ["check_mpma_spec", "mpma_estimator", "run_mpma"]

RATING_COLUMNS = ("user", "item", "rating")


def _estimator_class(spec: Spec):
    """The estimator class and its priors class for ``model.estimator``."""
    from bayesgmm.mpma.estimator import MPMA, GibbsMPMA
    from bayesgmm.mpma.gibbs import GibbsPriors

    return (GibbsMPMA, GibbsPriors) if spec.estimator == "gibbs" else (MPMA, MPMAPriors)


def mpma_estimator(spec: Spec):
    """The unfitted :class:`~bayesgmm.mpma.MPMA` or ``GibbsMPMA`` that ``spec`` describes."""
    from bayesgmm.mpma.estimator import resolve_priors

    cls, prior_kind = _estimator_class(spec)
    allowed = set(cls._get_param_names()) - {"priors", "random_state"}
    unknown = set(spec.options) - allowed
    if unknown:
        raise SpecError(
            f"unknown model.options {sorted(unknown)} for model.estimator = "
            f"{spec.estimator!r}; allowed: {', '.join(sorted(allowed))}"
        )
    try:
        priors = resolve_priors(spec.priors, prior_kind)
    except ValueError as err:
        raise SpecError(f"model.priors: {err}") from None
    options = dict(spec.options)
    if "components" in options:
        options["components"] = tuple(options["components"])
    if "rating_scale" in options:
        options["rating_scale"] = tuple(options["rating_scale"])
    model = cls(priors=priors, random_state=spec.seed, **options)
    try:
        model._check_params()
    except ValueError as err:
        raise SpecError(f"model.options: {err}") from None
    return model


def check_mpma_spec(spec: Spec) -> None:
    """Raise :class:`SpecError` if the MPMA options or priors are invalid (no fitting)."""
    mpma_estimator(spec)


def _ratings_frame(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RATING_COLUMNS if c not in frame.columns]
    if missing:
        raise SpecError(
            f"family = 'mpma' needs columns {list(RATING_COLUMNS)}; the data lack {missing} "
            f"(have {list(frame.columns)}); set data.columns or rename them"
        )
    return frame[list(RATING_COLUMNS)].reset_index(drop=True)


def _split(ratings: pd.DataFrame, holdout: float, seed: int):
    if holdout == 0:
        return ratings, ratings.iloc[:0]
    rng = np.random.default_rng(seed)
    test = rng.random(len(ratings)) < holdout
    return ratings[~test].reset_index(drop=True), ratings[test].reset_index(drop=True)


def _convergence_figure(model):
    """MAP-EM: log posterior per iteration, the global warm-up and the mixture side by side
    (different objectives, so different panels). Gibbs: each component's log-likelihood
    per sweep."""
    import matplotlib.pyplot as plt

    gibbs = hasattr(model, "posteriors_")
    if gibbs:
        traces = [
            (f"{name} (Gibbs)", post.log_likelihood)
            for name, post in zip(model.components_, model.posteriors_, strict=True)
        ]
    else:
        traces = [("global warm-up", model.warmup_trace_)]
        if len(model.components_) > 1:
            traces.append(("mixture MAP-EM", model.trace_))
    fig, axes = plt.subplots(1, len(traces), figsize=(4.5 * len(traces), 3.5), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, (title, trace) in zip(axes[0], traces, strict=True):
        ax.plot(trace, marker=".")
        if gibbs:
            ax.axvline(model.n_burn - 0.5, color="0.5", lw=0.8, ls="--")  # kept draws after
        ax.set(xlabel="Gibbs sweep" if gibbs else "EM iteration",
               ylabel="log-likelihood" if gibbs else "log posterior", title=title)  # fmt: skip
    return fig


def _fit_summary(model) -> str:
    if hasattr(model, "posteriors_"):
        return (
            f"{model.n_burn} + {model.n_draws} Gibbs sweeps per component; weights fitted on "
            f"{int(model.validation_.sum()):,} held-out training ratings."
        )
    return f"{model.n_iter_} mixture iterations, converged {model.converged_}."


def run_mpma(spec: Spec, frame: pd.DataFrame, out: Path, step) -> tuple[str | None, dict]:
    """Fit, score and (for NUTS) cross-check MPMA as ``spec`` says; write into ``out``.

    Returns the cross-check verdict (None without NUTS) and extra manifest entries
    (the metrics).
    """
    from bayesgmm.run import _save_figure

    ratings = _ratings_frame(frame)
    model = mpma_estimator(spec)
    seeds = np.random.SeedSequence(spec.seed).generate_state(2)
    train, test = _split(ratings, spec.holdout, int(seeds[0]))
    label = "Gibbs" if spec.estimator == "gibbs" else "MAP-EM"
    step(f"MPMA {label} on {len(train):,} ratings", model.fit, train)
    model.save(out / "mpma.nc")

    rows = [("train", train)] + ([("holdout", test)] if len(test) else [])
    metrics = pd.DataFrame(
        [
            {"split": name, "n_ratings": len(part), "rmse": model.rmse(part),
             "mae": model.mae(part)}
            for name, part in rows
        ]
    ).set_index("split")  # fmt: skip
    metrics.to_csv(out / "metrics.csv")
    params = pd.DataFrame(
        {"weight": model.weights_, "sigma": model.sigmas_},
        index=pd.Index(model.components_, name="component"),
    )
    params.to_csv(out / "parameters.csv")

    report = [f"# {spec.name}", "", spec.description, ""]
    report += [
        f"Data: `{spec.source}`, {len(ratings):,} ratings by {ratings['user'].nunique()} users "
        f"of {ratings['item'].nunique()} items; {len(test):,} held out "
        f"(fraction {spec.holdout:g}, seed {spec.seed}).",
        "",
        f"## {label} ({', '.join(model.components_)}; {model.n_factors} factors)",
        "",
        f"Fit in {model.fit_time_:.1f} s; " + _fit_summary(model),
        "",
        "```",
        params.to_string(float_format=lambda x: f"{x:.4f}"),
        "",
        metrics.to_string(float_format=lambda x: f"{x:.4f}"),
        "```",
        "",
    ]
    figures: list[str] = []
    if spec.figures:
        _save_figure(_convergence_figure(model), out / "convergence.png")
        figures.append("convergence.png")

    verdict = None
    if spec.method == "nuts":
        from bayesgmm.mpma.crosscheck import crosscheck_subsample, densest_subsample

        n_users, n_items = spec.subsample
        sub = densest_subsample(ratings, n_users, n_items)
        opts = model.get_params()
        check = step(
            f"cross-check on the {n_users} x {n_items} subsample ({len(sub):,} ratings)",
            crosscheck_subsample,
            sub,
            n_factors=spec.subsample_factors,
            n_user_groups=opts["n_user_groups"],
            n_item_groups=opts["n_item_groups"],
            priors=model.priors_ if isinstance(model.priors_, MPMAPriors) else None,
            chains=spec.chains,
            draws=spec.draws,
            tune=spec.tune,
            seed=int(seeds[1]),
            progressbar=step.enabled,
        )
        check.idata.to_netcdf(out / "posterior.nc", engine="h5netcdf")
        check.report.table.to_csv(out / "crosscheck.csv")
        verdict = check.report.verdict
        report += [
            f"## EM (SAEM marginal MAP) vs NUTS on the densest {n_users} x {n_items} sub-matrix "
            f"({spec.subsample_factors} factors)",
            "",
            "```",
            check.report.to_text(),
            "```",
            "",
        ]
        if spec.figures:
            import arviz as az
            import matplotlib.pyplot as plt

            az.plot_rank(check.idata, var_names=["weights", "sigmas"]).savefig(out / "rank.png")
            plt.close("all")
            figures.append("rank.png")
    if figures:
        report += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    (out / "report.md").write_text("\n".join(report))
    extra = {"metrics": metrics.to_dict(orient="index"), "mpma_priors": dataclasses.asdict(
        model.priors_)}  # fmt: skip
    return verdict, extra
