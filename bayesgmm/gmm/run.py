"""The ``gmm`` family of ``bayesgmm run`` (``model.family = "gmm"``, the default).

Keys (defaults in brackets), besides the shared ones of :mod:`bayesgmm.spec`::

    [model]
    n_components = 2                  # int, or a list of ints: a sweep over K [2]
    covariance_type = "full"          # "full" | "tied" | "diag" | "spherical" ["full"]
    order_feature = 0                 # int, or false to switch ordering off [0]
    select = "loo"                    # K of a sweep to report in full: "loo" | "bic" ["loo"]
    [model.priors]                    # weights_alpha, means_mu, means_sigma, sigma_scale,
                                      # lkj_eta [data-scaled defaults]
    [inference]
    em_n_init = 5                     # EM restarts [5]

A sweep over K needs ``inference.method = "nuts"`` (it compares LOO).  The data are the
numeric columns of ``data.source`` (or ``data.columns``, which must be numeric).

Files written (besides the driver's ``report.md``, figures and ``MANIFEST.json``):

- NUTS: ``posterior.nc`` (the fitted :class:`bayesgmm.BayesGMM`, reloadable with
  ``BayesGMM.load``), ``summary.csv`` (ArviZ summary of the model variables),
  ``crosscheck.csv`` (EM/MAP vs posterior table); figures ``components.png`` (ellipses,
  D >= 2) or ``density.png`` (1-D), ``responsibilities.png`` (K >= 2), ``rank.png``,
  ``trace.png``, ``pair.png``; with a K sweep also ``k_selection.csv`` and
  ``k_selection.png`` (the selected K is reported in full, and in the manifest as
  ``selected_k``).
- EM or MAP: ``em.nc`` (``GaussianMixture.load``), ``parameters.csv`` (EM and, for MAP,
  MAP values of weights, means, sds, correlations) and the components/density figure.

The modules that fit and plot import PyMC and ArviZ, so they are imported when a run
needs them: importing this module (as :func:`bayesgmm.spec.parse_spec` does, for the
keys) stays cheap.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from bayesgmm.datasets import Table
from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.run import FamilyOutput, FigureFile, RunContext, load_spec_data
from bayesgmm.spec import Spec, SpecError, spec_choice, spec_int, spec_table

__all__ = ["GMM_PRIOR_KEYS", "KEYS", "SELECT", "check_spec", "load_data", "run"]

#: This family's keys of ``[model]`` and ``[inference]``.
KEYS = {
    "model": ("n_components", "covariance_type", "order_feature", "select", "priors"),
    "inference": ("em_n_init",),
}
#: How the K of a sweep reported in full is chosen.
SELECT = ("loo", "bic")
#: The fields of ``[model.priors]`` (keyword arguments of ``build_gmm_model``'s priors).
GMM_PRIOR_KEYS = ("weights_alpha", "means_mu", "means_sigma", "sigma_scale", "lkj_eta")


def check_spec(spec: Spec, model: dict, inference: dict) -> Spec:
    """Validate the gmm keys of ``[model]`` and ``[inference]``; ``spec`` with them set.

    One of the family hooks of ``bayesgmm run`` (arguments, result and errors: the
    "Families" section of :mod:`bayesgmm.spec`).
    """
    k = model.get("n_components", 2)
    ks = k if isinstance(k, list) else [k]
    if not ks:
        raise SpecError("model.n_components = [] must list at least one K")
    ks = tuple(spec_int(v, "model.n_components", 1) for v in ks)
    order = model.get("order_feature", 0)
    order = None if order is False else spec_int(order, "model.order_feature", 0)
    priors = spec_table(model.get("priors", {}), "model.priors")
    for key in priors:
        if key not in GMM_PRIOR_KEYS:
            raise SpecError(
                f"unknown prior model.priors.{key}; allowed: {', '.join(GMM_PRIOR_KEYS)}"
            )
    spec = replace(
        spec,
        n_components=ks,
        covariance_type=spec_choice(
            model.get("covariance_type", "full"), "model.covariance_type", COVARIANCE_TYPES
        ),
        order_feature=order,
        select=spec_choice(model.get("select", "loo"), "model.select", SELECT),
        priors=priors,
        em_n_init=spec_int(inference.get("em_n_init", 5), "inference.em_n_init", 1),
    )
    if spec.is_sweep and spec.method != "nuts":
        raise SpecError("a sweep over K needs inference.method = 'nuts' (it compares LOO)")
    return spec


def load_data(spec: Spec) -> Table:
    """The numeric columns of the spec's CSV file or bundled dataset (or ``data.columns``)."""
    return load_spec_data(spec, numeric=True)


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


def _component_figure(model, X: pd.DataFrame) -> FigureFile:
    from bayesgmm.gmm.plotting import plot_components, plot_density

    ax = plot_density(model, X) if X.shape[1] == 1 else plot_components(model, X)
    return FigureFile("density.png" if X.shape[1] == 1 else "components.png", ax.figure)


def _arviz_figures(model) -> list[FigureFile]:
    import arviz as az

    names = ["weights", "means", "sigmas"]
    size = {"layout": "constrained"}
    plots = {
        "rank.png": lambda: az.plot_rank(model.idata_, var_names=names, figure_kwargs=size),
        "trace.png": lambda: az.plot_trace_dist(
            model.idata_, var_names=["weights", "means"], compact=False, figure_kwargs=size
        ),
        "pair.png": lambda: az.plot_pair(model.idata_, var_names=["means"]),
    }
    return [
        FigureFile(name, make().get_viz("figure"), dpi="figure") for name, make in plots.items()
    ]


def _run_point(spec: Spec, X: pd.DataFrame, context: RunContext, settings: dict):
    """EM (and MAP): the files, report lines and figures of ``method = "em" | "map"``."""
    from bayesgmm.gmm.estimator import fit_point_estimates, point_from_chol

    k = spec.n_components[0]
    em_seed, map_seed = context.seeds(2)
    if spec.method == "map":
        em, _, point = context.step(
            "EM + MAP",
            fit_point_estimates,
            X,
            k,
            **settings,
            em_n_init=spec.em_n_init,
            em_seed=em_seed,
            map_seed=map_seed,
        )
        map_est = point_from_chol(
            point["weights"], point["means"], point["chol_cov"], spec.covariance_type
        )
    else:
        from bayesgmm.em.estimator import GaussianMixture

        em = context.step(
            "EM",
            GaussianMixture(
                k,
                covariance_type=spec.covariance_type,
                n_init=spec.em_n_init,
                random_state=em_seed,
            ).fit,
            X,
        )
        map_est = None
    em.save(context.directory / "em.nc")
    params = _point_parameters(em, map_est, spec.covariance_type)
    params.to_csv(context.directory / "parameters.csv")
    sections = ["## Point estimates", "", "```", params.to_string(), "```", ""]
    sections += [
        f"EM log-likelihood {em.score(X) * len(X):.4f}, BIC {em.bic(X):.3f}, "
        f"converged {em.converged_} after {em.n_iter_} iterations.",
        "",
    ]
    figures = [_component_figure(em, X)] if spec.figures else []
    return FamilyOutput("", sections, ["em.nc", "parameters.csv"], figures)


def _run_nuts(spec: Spec, X: pd.DataFrame, context: RunContext, settings: dict):
    """BayesGMM (or a sweep over K): the files, report lines and figures of NUTS."""
    import arviz as az

    from bayesgmm.gmm.estimator import BayesGMM
    from bayesgmm.gmm.plotting import plot_responsibilities

    out = FamilyOutput("", [], [])
    common = dict(
        chains=spec.chains,
        draws=spec.draws,
        tune=spec.tune,
        em_n_init=spec.em_n_init,
        progressbar=context.progress,
        **settings,
    )
    if spec.is_sweep:
        from bayesgmm.gmm.selection import select_n_components

        selection = context.step(
            f"K sweep {list(spec.n_components)}",
            select_n_components,
            X,
            spec.n_components,
            random_state=spec.seed,
            **common,
        )
        selection.table.to_csv(context.directory / "k_selection.csv")
        out.files.append("k_selection.csv")
        k = selection.choice_loo_parsimonious if spec.select == "loo" else selection.choice_bic
        model = selection.bayes_fits[k]
        out.sections += [
            "## Choosing K",
            "",
            "```",
            selection.to_text(),
            "```",
            "",
            f"Selected by {spec.select}: K = {k}.",
            "",
        ]
        out.manifest["selected_k"] = k
        if spec.figures:
            out.figures.append(FigureFile("k_selection.png", selection.plot()))
    else:
        k = spec.n_components[0]
        model = context.step(
            f"BayesGMM K={k}", BayesGMM(k, random_state=spec.seed, **common).fit, X
        )
    model.save(context.directory / "posterior.nc")
    az.summary(model.idata_, var_names=["weights", "means", "sigmas"], round_to="none").to_csv(
        context.directory / "summary.csv"
    )
    model.crosscheck_.table.to_csv(context.directory / "crosscheck.csv")
    out.files += ["posterior.nc", "summary.csv", "crosscheck.csv"]
    out.verdict = model.crosscheck_.verdict
    out.sections += [
        f"## Cross-check (K = {k})",
        "",
        "```",
        model.crosscheck_.to_text(),
        "```",
        "",
    ]
    if spec.figures:
        out.figures.append(_component_figure(model, X))
        if k > 1:  # with one component every membership is certain
            responsibilities = plot_responsibilities(model, X).figure
            out.figures.append(FigureFile("responsibilities.png", responsibilities))
        out.figures += context.step("ArviZ figures", _arviz_figures, model)
    return out


def run(spec: Spec, data: Table, context: RunContext) -> FamilyOutput:
    """Fit the mixture ``spec`` describes to ``data``; write its files into the context.

    One of the family hooks of ``bayesgmm run`` (arguments, result and errors: the
    "Families" section of :mod:`bayesgmm.spec`).
    """
    X = data.frame
    settings = dict(
        covariance_type=spec.covariance_type,
        priors=spec.priors or None,
        order_feature=spec.order_feature,
    )
    fit = _run_point if spec.method in ("em", "map") else _run_nuts
    out = fit(spec, X, context, settings)
    out.data = (
        f"Data: `{spec.source}`, {X.shape[0]} observations x {X.shape[1]} features "
        f"({', '.join(map(str, X.columns))})."
    )
    return out
