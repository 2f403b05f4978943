"""The ``mpma`` family of ``bayesgmm run`` (``model.family = "mpma"``).

Keys (defaults in brackets), besides the shared ones of :mod:`bayesgmm.spec`::

    [model]
    estimator = "map-em"              # "map-em" (MPMA) | "gibbs" (GibbsMPMA) ["map-em"]
    [model.options]                   # keyword arguments of the estimator class
    [model.priors]                    # fields of MPMAPriors / GibbsPriors
    [inference]
    holdout = 0.2                     # fraction of ratings held out for RMSE [0.2]
    subsample = [150, 200]            # nuts: densest users x items cross-checked [[150, 200]]
    subsample_factors = 2             # nuts: factors of the subsample model [2]

The data are the columns ``user``, ``item``, ``rating`` of ``data.source``: a CSV file, or
``"movielens-<release>"`` for any release of :func:`bayesgmm.movielens.load_movielens`
(``movielens-100k``, ``movielens-1m``, ``movielens-10m``, ``movielens-20m``,
``movielens-25m``, ``movielens-32m``, ``movielens-latest-small``; ``data.path``: a local
copy, else downloaded once into the cache). Named ``data.columns`` may hold ids that are
not numbers.

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

Files written (besides the driver's ``report.md``, figures and ``MANIFEST.json``):
``mpma.nc`` (the fit, ``MPMA.load`` or ``GibbsMPMA.load``), ``metrics.csv`` (RMSE/MAE per
split), ``parameters.csv`` (weights and noise sds per component), figure
``convergence.png`` (log posterior per EM iteration, or each component's log-likelihood
per Gibbs sweep); with NUTS also ``posterior.nc`` (the subsample's draws,
``arviz``/``xarray.open_datatree``), ``crosscheck.csv`` and ``rank.png``.  The manifest
gets the ``metrics`` and the ``mpma_priors`` used.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bayesgmm.datasets import Table, load_movielens
from bayesgmm.movielens import MOVIELENS_RELEASES
from bayesgmm.mpma.data import REQUIRED_COLUMNS
from bayesgmm.mpma.em import MPMAPriors
from bayesgmm.run import FamilyOutput, FigureFile, RunContext, load_spec_data
from bayesgmm.spec import Spec, SpecError, spec_choice, spec_int, spec_table

__all__ = ["KEYS", "MPMA_ESTIMATORS", "check_spec", "load_data", "mpma_estimator", "run"]

#: This family's keys of ``[model]`` and ``[inference]``.
KEYS = {
    "model": ("priors", "options", "estimator"),
    "inference": ("holdout", "subsample", "subsample_factors"),
}
#: ``model.estimator``: MAP-EM (:class:`~bayesgmm.mpma.MPMA`) or Gibbs (``GibbsMPMA``).
MPMA_ESTIMATORS = ("map-em", "gibbs")
#: ``data.source`` of the MovieLens 100K ratings (read by :func:`load_movielens`); every
#: release is ``MOVIELENS_PREFIX + name`` (``movielens-1m``, ...).
MOVIELENS_PREFIX = "movielens-"
MOVIELENS_100K = MOVIELENS_PREFIX + "100k"


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


def check_spec(spec: Spec, model: dict, inference: dict) -> Spec:
    """Validate the mpma keys of ``[model]`` and ``[inference]``; ``spec`` with them set.

    The options and priors are checked by building the (unfitted) estimator.

    One of the family hooks of ``bayesgmm run`` (arguments, result and errors: the
    "Families" section of :mod:`bayesgmm.spec`).
    """
    holdout = inference.get("holdout", 0.2)
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) or not 0 <= holdout < 1:
        raise SpecError(f"inference.holdout = {holdout!r} must be a number in [0, 1)")
    subsample = inference.get("subsample", [150, 200])
    if not isinstance(subsample, list) or len(subsample) != 2:
        raise SpecError(f"inference.subsample = {subsample!r} must be [n_users, n_items]")
    spec = dataclasses.replace(
        spec,
        priors=spec_table(model.get("priors", {}), "model.priors"),
        options=spec_table(model.get("options", {}), "model.options"),
        estimator=spec_choice(model.get("estimator", "map-em"), "model.estimator", MPMA_ESTIMATORS),
        holdout=float(holdout),
        subsample=tuple(spec_int(v, "inference.subsample", 2) for v in subsample),
        subsample_factors=spec_int(
            inference.get("subsample_factors", 2), "inference.subsample_factors", 0
        ),
    )
    mpma_estimator(spec)
    return spec


def load_data(spec: Spec) -> Table:
    """The ratings: a MovieLens release, or the spec's CSV file (``data.columns`` may be
    ids)."""
    if spec.source.startswith(MOVIELENS_PREFIX) and not spec.source.endswith(".csv"):
        release = spec.source.removeprefix(MOVIELENS_PREFIX)
        if release not in MOVIELENS_RELEASES:
            known = ", ".join(MOVIELENS_PREFIX + name for name in MOVIELENS_RELEASES)
            raise SpecError(f"data.source = {spec.source!r} is no MovieLens release; use {known}")
        frame = load_movielens(release, data_home=spec.data_path)
        return Table(frame, spec.source, "dataset")
    return load_spec_data(spec, numeric=False)


def _ratings_frame(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SpecError(
            f"family = 'mpma' needs columns {list(REQUIRED_COLUMNS)}; the data lack {missing} "
            f"(have {list(frame.columns)}); set data.columns or rename them"
        )
    return frame[list(REQUIRED_COLUMNS)].reset_index(drop=True)


def _split(ratings: pd.DataFrame, holdout: float, seed: int):
    if holdout == 0:
        return ratings, ratings.iloc[:0]
    rng = np.random.default_rng(seed)
    test = rng.random(len(ratings)) < holdout
    return ratings[~test].reset_index(drop=True), ratings[test].reset_index(drop=True)


def _convergence_figure(model):
    """MAP-EM: log posterior per iteration, the global warm-up, each local component's
    separate fit and the mixture side by side (different objectives, so different
    panels). Gibbs: each component's log-likelihood per sweep."""
    import matplotlib.pyplot as plt

    gibbs = hasattr(model, "posteriors_")
    if gibbs:
        traces = [
            (f"{name} (Gibbs)", post.log_likelihood)
            for name, post in zip(model.components_, model.posteriors_, strict=True)
        ]
    else:
        traces = [("global warm-up", model.warmup_trace_)]
        traces += [(f"{name} alone", t) for name, t in getattr(model, "local_traces_", {}).items()]
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
            f"{int(model.validation_.sum()):,} held-out training ratings"
            + ("; components then resampled on all of them." if model.refit else ".")
        )
    return f"{model.n_iter_} mixture iterations, converged {model.converged_}."


def run(spec: Spec, data: Table, context: RunContext) -> FamilyOutput:
    """Fit, score and (for NUTS) cross-check MPMA as ``spec`` says; write its files.

    One of the family hooks of ``bayesgmm run`` (arguments, result and errors: the
    "Families" section of :mod:`bayesgmm.spec`).
    """
    out_dir = context.directory
    ratings = _ratings_frame(data.frame)
    model = mpma_estimator(spec)
    if "progressbar" not in spec.options:
        model.set_params(progressbar=bool(context.progress))
    split_seed, check_seed = context.seeds(2)
    train, test = _split(ratings, spec.holdout, split_seed)
    label = "Gibbs" if spec.estimator == "gibbs" else "MAP-EM"
    context.step(f"MPMA {label} on {len(train):,} ratings", model.fit, train)
    model.save(out_dir / "mpma.nc")

    rows = [("train", train)] + ([("holdout", test)] if len(test) else [])
    metrics = pd.DataFrame(
        [
            {"split": name, "n_ratings": len(part), "rmse": model.rmse(part),
             "mae": model.mae(part)}
            for name, part in rows
        ]
    ).set_index("split")  # fmt: skip
    metrics.to_csv(out_dir / "metrics.csv")
    params = pd.DataFrame(
        {"weight": model.weights_, "sigma": model.sigmas_},
        index=pd.Index(model.components_, name="component"),
    )
    params.to_csv(out_dir / "parameters.csv")
    out = FamilyOutput(
        data=(
            f"Data: `{spec.source}`, {len(ratings):,} ratings by {ratings['user'].nunique()} "
            f"users of {ratings['item'].nunique()} items; {len(test):,} held out "
            f"(fraction {spec.holdout:g}, seed {spec.seed})."
        ),
        sections=[
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
        ],
        files=["mpma.nc", "metrics.csv", "parameters.csv"],
        manifest={
            "metrics": metrics.to_dict(orient="index"),
            "mpma_priors": dataclasses.asdict(model.priors_),
        },
    )
    if spec.figures:
        out.figures.append(FigureFile("convergence.png", _convergence_figure(model)))

    if spec.method == "nuts":
        from bayesgmm.mpma.crosscheck import crosscheck_subsample, densest_subsample

        n_users, n_items = spec.subsample
        sub = densest_subsample(ratings, n_users, n_items)
        opts = model.get_params()
        check = context.step(
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
            seed=check_seed,
            progressbar=context.progress,
        )
        check.idata.to_netcdf(out_dir / "posterior.nc", engine="h5netcdf")
        check.report.table.to_csv(out_dir / "crosscheck.csv")
        out.files += ["posterior.nc", "crosscheck.csv"]
        out.verdict = check.report.verdict
        out.sections += [
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

            rank = az.plot_rank(check.idata, var_names=["weights", "sigmas"])
            out.figures.append(FigureFile("rank.png", rank.get_viz("figure"), dpi="figure"))
    return out
