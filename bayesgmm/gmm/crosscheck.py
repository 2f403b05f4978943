"""Cross-check of the EM (or MAP-EM) point estimate against the NUTS posterior of the GMM.

:func:`crosscheck` compares the two on the interpretable scalars they share
(:func:`reporting_parameters`): ``weights[k]``, ``means[k,d]``, the component standard
deviations ``sd[k,d]`` (``sd[d]`` for "tied", ``sd[k]`` for "spherical") and, for
"full"/"tied", the correlations ``corr[k,d,e]`` (``corr[d,e]`` for "tied") with ``d < e``.
What is GMM-specific lives here (the reporting parameters and the relabelling); the
summaries, sampler diagnostics, mode detection and verdict rules are the family-neutral
engine of :mod:`bayesgmm.verdict`.

Procedure
---------
1. **Relabel.** The posterior draws are aligned to the EM components by pivotal reordering
   (:mod:`bayesgmm.gmm.relabel`; cost = squared distance of the means in units of ``scale``,
   by default the marginal per-feature sd implied by the EM mixture, which equals the data
   sd at an ML fixed point).  What was permuted is reported in ``labels`` and in
   ``reasons``.  Every variable with a ``component`` dim is permuted together.
2. **Modes.** On the relabelled reporting parameters, chains are grouped into modes
   (:func:`bayesgmm.verdict.detect_modes`).  Pooled summaries are never silently averaged
   over modes: if the chains disagree the verdict is "ambiguous" and the groups and the
   separating parameters are reported.
3. **Summaries** per reporting parameter over all chains and draws
   (:func:`bayesgmm.verdict.point_vs_posterior_table`): mean, sd (ddof=1), HDI
   (``hdi_prob``, arviz "nearest" method), ``z = (em - mean) / sd``, MCSE of the mean,
   rank-normalised split R-hat, bulk and tail ESS (arviz-stats).
4. **Sampler diagnostics** from ``sample_stats``
   (:func:`bayesgmm.verdict.sampler_diagnostics`): divergences, tree-depth saturation and
   per-chain E-BFMI.

Verdict rules (thresholds are the fields of :class:`bayesgmm.verdict.Thresholds`)
----------------------------------------------------------------------------------
Those of :mod:`bayesgmm.verdict`, label checks included:

- **ambiguous**: chains sit in different modes after relabelling (difference of chain
  means > ``mode_threshold`` = 4 pooled within-chain sds); or the alignment is not a pure
  permutation (fewer than ``purity_threshold`` = 95 % of the draws of some chain have each
  component nearest a distinct EM component: label switching relabelling cannot undo);
  or labels switch *within* a chain in more than ``switch_max`` = 1 % of some chain's draws
  (a sampler can only wander between labellings through the region where components
  coincide, so the data do not tell the components apart: the relabelled summaries are
  reported but describe overlapping components); or some component's weight has
  substantial mass near 0:
  ``P(weights[k] < weight_floor) > weight_floor_mass`` with ``weight_floor = 0.01`` and
  ``weight_floor_mass = 0.05`` (the component may be empty: K is not identified).
- **sampler trouble**: any divergence; any R-hat > ``rhat_max`` = 1.01; smallest bulk
  ESS < ``ess_bulk_min`` = 400; some chain's BFMI < ``bfmi_min`` = 0.3; or maximum tree
  depth reached in more than ``treedepth_max_frac`` = 1 % of the draws.
- **disagree**: some ``|z| > z_max`` = 3 (EM more than 3 posterior sds from the posterior
  mean).
- **agree**: none of the above.

Several can apply; the verdict is the most severe in the order
ambiguous > sampler trouble > disagree > agree, and ``reasons`` lists every finding.
Ambiguity ranks first because a multimodal or non-identified posterior also breaks the
sampler diagnostics (R-hat compares chains in different modes) and makes every component
summary, hence every z, meaningless: the remedy is in the model (K, priors, ordering),
not in the sampler settings.  Sampler trouble ranks above disagreement because the
posterior summaries behind ``z`` cannot be trusted until the sampler is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm.em.gaussian import (
    COMPONENT_DIM,
    FEATURE2_DIM,
    FEATURE_DIM,
    check_covariance_type,
    covariance_dims,
    covariance_shape,
    full_covariances,
)
from bayesgmm.gmm.relabel import LabelReport, detect_label_switching, relabel
from bayesgmm.verdict import (
    SAMPLE_DIMS,
    ModeReport,
    Thresholds,
    detect_modes,
    diagnostics_line,
    format_table,
    get_group,
    judge_findings,
    point_vs_posterior_table,
    sampler_diagnostics,
    verdict_from_findings,
)

__all__ = [
    "CrossCheck",
    "crosscheck",
    "flatten_reporting",
    "posterior_reporting_parameters",
    "reporting_parameters",
]

_REPORT_ORDER = ("weights", "means", "sd", "corr")


# --------------------------------------------------------------------------------------
# reporting parameters
# --------------------------------------------------------------------------------------


def _reporting_numpy(weights, means, cov, covariance_type, from_cholesky) -> dict[str, np.ndarray]:
    w = np.asarray(weights, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    c = np.asarray(cov, dtype=np.float64)
    if m.ndim < 2 or m.shape[:-1] != w.shape:
        raise ValueError(
            f"means must have shape (..., K, D) matching weights (..., K) = {w.shape}, "
            f"got {m.shape}."
        )
    lead, k, d = w.shape[:-1], m.shape[-2], m.shape[-1]
    expected = (*lead, *covariance_shape(covariance_type, k, d))
    if c.shape != expected:
        what = "Cholesky factor / sd" if from_cholesky else "covariance"
        raise ValueError(
            f"{covariance_type!r} {what} must have shape {expected} for weights {w.shape} "
            f"and means {m.shape}, got {c.shape}."
        )
    out = {"weights": w, "means": m}
    if covariance_type in ("full", "tied"):
        if from_cholesky:
            lower = np.tril(c)
            full = lower @ np.swapaxes(lower, -1, -2)
        else:
            full = c
        var = np.diagonal(full, axis1=-2, axis2=-1)
        sd = np.sqrt(var)
        out["sd"] = sd
        if d > 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                out["corr"] = full / (sd[..., :, None] * sd[..., None, :])
    else:
        out["sd"] = np.abs(c) if from_cholesky else np.sqrt(c)
    return out


def _param_dims(name: str, covariance_type: str) -> tuple[str, ...]:
    """Named dims of reporting parameter ``name`` (sd: the covariance dims less a feature)."""
    if name == "weights":
        return (COMPONENT_DIM,)
    if name == "means":
        return (COMPONENT_DIM, FEATURE_DIM)
    dims = covariance_dims(covariance_type)
    if name == "sd":
        return tuple(dim for dim in dims if dim != FEATURE2_DIM)
    return dims  # corr, full and tied only


def reporting_parameters(
    weights: Any,
    means: Any,
    cov_or_chol: Any,
    covariance_type: str,
    *,
    from_cholesky: bool,
) -> dict[str, np.ndarray] | xr.Dataset:
    """Interpretable scalars shared by EM and the posterior.

    Parameters
    ----------
    weights : array (..., K) or DataArray with a ``component`` dim
    means : array (..., K, D) or DataArray (..., component, feature)
    cov_or_chol : array or DataArray
        ``from_cholesky=False``: covariances in scikit-learn's convention, full
        (..., K, D, D), tied (..., D, D), diag variances (..., K, D), spherical variances
        (..., K).  ``from_cholesky=True``: square-root factors, i.e. the lower Cholesky
        factors for full (..., K, D, D) / tied (..., D, D), and the standard deviations for
        diag (..., K, D) / spherical (..., K).  DataArrays use the dims component, feature,
        feature_ (row, column).
    covariance_type : {"full", "tied", "diag", "spherical"}
    from_cholesky : bool

    Returns
    -------
    dict or xarray.Dataset
        ``weights`` (..., K), ``means`` (..., K, D), ``sd`` (..., K, D) — (..., D) for tied,
        (..., K) for spherical — and for full/tied with D > 1 the correlation matrices
        ``corr`` (..., K, D, D) / (..., D, D) (only ``d < e`` entries are reported by
        :func:`flatten_reporting`).  Numpy inputs give a dict of arrays with the same
        leading (sample) dims; DataArray inputs give a Dataset with named dims
        (leading dims of ``weights``, then component, feature, feature_).
    """
    covariance_type = check_covariance_type(covariance_type)
    if not isinstance(weights, xr.DataArray):
        return _reporting_numpy(weights, means, cov_or_chol, covariance_type, from_cholesky)

    lead = [dim for dim in weights.dims if dim != COMPONENT_DIM]
    if COMPONENT_DIM not in weights.dims:
        raise ValueError(f"weights must have a {COMPONENT_DIM!r} dim, got {weights.dims}.")
    if not isinstance(means, xr.DataArray) or not isinstance(cov_or_chol, xr.DataArray):
        raise ValueError("With DataArray weights, means and cov_or_chol must be DataArrays too.")
    if FEATURE_DIM not in means.dims:
        means = means.expand_dims(FEATURE_DIM, axis=-1)
    cov_dims = covariance_dims(covariance_type)
    if set(cov_or_chol.dims) != {*lead, *cov_dims}:
        raise ValueError(
            f"{covariance_type!r} cov_or_chol must have dims {(*lead, *cov_dims)}, "
            f"got {cov_or_chol.dims}."
        )
    res = _reporting_numpy(
        weights.transpose(*lead, COMPONENT_DIM).values,
        means.transpose(*lead, COMPONENT_DIM, FEATURE_DIM).values,
        cov_or_chol.transpose(*lead, *cov_dims).values,
        covariance_type,
        from_cholesky,
    )
    coords = {}
    for src in (weights, means, cov_or_chol):
        for name, coord in src.coords.items():
            if name in src.dims and name not in coords:
                coords[name] = coord.values
    if FEATURE_DIM in coords and FEATURE2_DIM not in coords:
        coords[FEATURE2_DIM] = coords[FEATURE_DIM]
    data_vars = {}
    for name, arr in res.items():
        dims = (*lead, *_param_dims(name, covariance_type))
        data_vars[name] = xr.DataArray(
            arr, dims=dims, coords={n: coords[n] for n in dims if n in coords}
        )
    return xr.Dataset(data_vars)


def posterior_reporting_parameters(posterior: xr.Dataset, covariance_type: str) -> xr.Dataset:
    """:func:`reporting_parameters` of posterior draws (dims chain, draw, ...).

    Reads ``weights``, ``means`` and: "full": ``chol_cov`` (component, feature, feature_);
    "tied": ``chol_cov`` (feature, feature_) or its copy repeated over components (the first
    is used); "diag": ``sigmas`` (component, feature); "spherical": ``sigmas`` (component).
    For diag/spherical, ``chol_cov`` (component, feature, feature_) is used when ``sigmas``
    has other dims or is absent.
    """
    covariance_type = check_covariance_type(covariance_type)
    for name in ("weights", "means"):
        if name not in posterior:
            raise ValueError(f"The posterior has no {name!r} variable.")
    weights, means = posterior["weights"], posterior["means"]
    lead = [dim for dim in weights.dims if dim != COMPONENT_DIM]
    chol = posterior.get("chol_cov")
    sig = posterior.get("sigmas")
    if covariance_type == "full":
        if chol is None:
            raise ValueError("covariance_type 'full' needs 'chol_cov' in the posterior.")
        if FEATURE_DIM not in chol.dims:  # D == 1 stored without feature dims
            chol = chol.expand_dims({FEATURE_DIM: 1, FEATURE2_DIM: 1}, axis=[-2, -1])
        src = chol
    elif covariance_type == "tied":
        if chol is None:
            raise ValueError("covariance_type 'tied' needs 'chol_cov' in the posterior.")
        src = chol.isel({COMPONENT_DIM: 0}, drop=True) if COMPONENT_DIM in chol.dims else chol
    else:
        want = (COMPONENT_DIM, FEATURE_DIM) if covariance_type == "diag" else (COMPONENT_DIM,)
        if sig is not None and set(sig.dims) == {*lead, *want}:
            src = sig
        elif chol is not None and COMPONENT_DIM in chol.dims:
            diag = xr.DataArray(
                np.diagonal(
                    chol.transpose(*lead, COMPONENT_DIM, FEATURE_DIM, FEATURE2_DIM).values,
                    axis1=-2,
                    axis2=-1,
                ),
                dims=(*lead, COMPONENT_DIM, FEATURE_DIM),
                coords={
                    n: chol.coords[n]
                    for n in (*lead, COMPONENT_DIM, FEATURE_DIM)
                    if n in chol.coords
                },
            )
            src = diag if covariance_type == "diag" else diag.isel({FEATURE_DIM: 0}, drop=True)
        else:
            raise ValueError(
                f"covariance_type {covariance_type!r} needs 'sigmas' with dims "
                f"{(*lead, *want)} or 'chol_cov' in the posterior."
            )
    return reporting_parameters(weights, means, src, covariance_type, from_cholesky=True)


def flatten_reporting(
    params: Mapping[str, Any], covariance_type: str, n_sample_dims: int = 0
) -> tuple[list[str], np.ndarray]:
    """Labels like ``"means[1,0]"`` and values (..., P) of the reporting scalars.

    ``params`` is the output of :func:`reporting_parameters` (dict or Dataset; a Dataset
    is transposed to (chain, draw, ...) first).  ``corr`` contributes only ``d < e``.
    """
    labels: list[str] = []
    blocks = []
    for name in _REPORT_ORDER:
        if name not in params:
            continue
        val = params[name]
        if isinstance(val, xr.DataArray):
            dims = _param_dims(name, covariance_type)
            lead = [dim for dim in val.dims if dim not in dims]
            val = val.transpose(*lead, *dims).values
        arr = np.asarray(val, dtype=np.float64)
        lead_shape, shape = arr.shape[:n_sample_dims], arr.shape[n_sample_dims:]
        flat = arr.reshape(*lead_shape, -1)
        keep = []
        for i, idx in enumerate(np.ndindex(*shape)):
            if name == "corr" and idx[-2] >= idx[-1]:
                continue
            keep.append(i)
            labels.append(f"{name}[{','.join(map(str, idx))}]")
        blocks.append(flat[..., keep])
    return labels, np.concatenate(blocks, axis=-1)


def _point_estimate(est: Any, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, means, covariances) from a dict or a fitted estimator."""

    def get(key):
        if isinstance(est, Mapping):
            for k in (key, key + "_"):
                if k in est:
                    return est[k]
        elif hasattr(est, key + "_"):
            return getattr(est, key + "_")
        raise ValueError(
            f"{what} needs 'weights', 'means' and 'covariances' (scikit-learn shapes); "
            f"{key!r} is missing."
        )

    return (
        np.asarray(get("weights"), dtype=np.float64),
        np.asarray(get("means"), dtype=np.float64),
        np.asarray(get("covariances"), dtype=np.float64),
    )


def _marginal_sd(weights, means, cov, covariance_type) -> np.ndarray:
    """Per-feature sd of the mixture: sqrt(sum_k w_k (var_kd + (mu_kd - mu_d)^2))."""
    k, d = means.shape
    var = np.diagonal(full_covariances(cov, covariance_type, k, d), axis1=-2, axis2=-1)
    centre = weights @ means
    return np.sqrt(weights @ (var + (means - centre) ** 2))


# --------------------------------------------------------------------------------------
# the cross-check
# --------------------------------------------------------------------------------------


@dataclass
class CrossCheck:
    """Result of :func:`crosscheck`.

    Attributes
    ----------
    verdict : {"agree", "disagree", "sampler trouble", "ambiguous"}
    reasons : list of str
        Every finding, most severe first, each tagged ``[ambiguous]``, ``[sampler trouble]``,
        ``[disagree]``, ``[agree]``, ``[note]`` (a check that could not be made) or
        ``[labels]`` (what relabelling did).
    table : pandas.DataFrame
        One row per reporting parameter (index ``parameter``): em, map, mean, sd, hdi_low,
        hdi_high, z, mcse_mean, r_hat, ess_bulk, ess_tail.
    diagnostics : dict
        See :func:`bayesgmm.verdict.sampler_diagnostics`.
    labels : LabelReport
    modes : ModeReport
    covariance_type : str
    hdi_prob : float
    thresholds : Thresholds
        The thresholds the verdict was judged with.
    posterior : xarray.Dataset or None
        The posterior draws relabelled onto the EM components (what the table summarises).
    """

    verdict: str
    reasons: list[str]
    table: pd.DataFrame
    diagnostics: dict[str, Any]
    labels: LabelReport
    modes: ModeReport
    covariance_type: str = "full"
    hdi_prob: float = 0.94
    thresholds: Thresholds = field(default_factory=Thresholds)
    posterior: xr.Dataset | None = field(default=None, repr=False)

    def to_dataframe(self) -> pd.DataFrame:
        """The table (a copy)."""
        return self.table.copy()

    def to_text(self) -> str:
        """Readable report: verdict, reasons, labels, modes, diagnostics, then the table."""
        dg = self.diagnostics
        lines = [
            f"EM vs posterior cross-check: {self.verdict.upper()}",
            f"({self.covariance_type!r} covariance, {dg['n_chains']} chains x "
            f"{dg['n_draws']} draws, {len(self.table)} parameters)",
            "",
            "Reasons:",
            *(f"  - {r}" for r in self.reasons),
            "",
            "Labels:",
            *(f"  {s}" for s in self.labels.describe()),
            "Modes:",
            *(f"  {s}" for s in self.modes.describe()),
            "Sampler:",
            f"  {diagnostics_line(dg)}",
            "",
        ]
        if self.modes.multimodal:
            lines.append(
                "NOTE: chains sit in different modes; the pooled summaries below mix them."
            )
        pct = f"{100 * self.hdi_prob:g}%"
        lines.append(f"Table (hdi = {pct} highest density interval, z = (em - mean) / sd):")
        lines.append(format_table(self.table))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def crosscheck(
    idata: xr.DataTree | Mapping[str, xr.Dataset],
    em: Mapping[str, Any] | Any,
    map_estimate: Mapping[str, Any] | Any | None = None,
    covariance_type: str = "full",
    *,
    hdi_prob: float = 0.94,
    scale: np.ndarray | None = None,
    thresholds: Thresholds | None = None,
    **overrides: float,
) -> CrossCheck:
    """Compare the EM estimate with the posterior; see the module docstring for the rules.

    Parameters
    ----------
    idata : xarray.DataTree
        Sampler output with a ``posterior`` group (chain, draw, ...) and, ideally,
        ``sample_stats``.  A mapping of group name to Dataset is accepted too.
    em : dict or fitted GaussianMixture
        ``weights`` (K,), ``means`` (K, D), ``covariances`` in scikit-learn's convention for
        ``covariance_type`` (keys with a trailing underscore or estimator attributes work).
        Its means are the relabelling pivot.
    map_estimate : dict or estimator, optional
        A second point estimate (e.g. MAP-EM) shown in the ``map`` column (not judged).
    covariance_type : {"full", "tied", "diag", "spherical"}
    hdi_prob : float
        Probability of the highest density interval.
    scale : array (D,), optional
        Per-feature scale of the relabelling cost; default the EM mixture's marginal sd.
    thresholds : Thresholds, optional
        Thresholds of the verdict rules (default ``Thresholds()``).
    **overrides : float
        Single thresholds by field name (``z_max=2``, ``switch_max=0.5``, ...), applied on
        top of ``thresholds``.

    Returns
    -------
    CrossCheck
    """
    th = (Thresholds() if thresholds is None else thresholds).replace(**overrides)
    covariance_type = check_covariance_type(covariance_type)
    posterior = get_group(idata, "posterior")
    if posterior is None:
        raise ValueError("idata has no 'posterior' group.")
    w_em, m_em, c_em = _point_estimate(em, "em")
    if m_em.ndim == 1:
        m_em = m_em[:, None]
    em_rep = reporting_parameters(w_em, m_em, c_em, covariance_type, from_cholesky=False)
    if scale is None:
        scale = _marginal_sd(w_em, m_em, c_em, covariance_type)

    # 1. relabel onto the EM components
    labels_report = detect_label_switching(
        posterior, m_em, scale, purity_threshold=th.purity_threshold
    )
    relabelled = relabel(posterior, labels_report.permutations)

    # 2. reporting parameters of the relabelled draws, and modes
    post_rep = posterior_reporting_parameters(relabelled, covariance_type)
    names, draws = flatten_reporting(post_rep, covariance_type, n_sample_dims=2)
    em_names, em_vals = flatten_reporting(em_rep, covariance_type)
    if em_names != names:
        raise ValueError(
            f"EM and posterior parameters differ: EM {len(em_names)} ({em_names[:4]}...), "
            f"posterior {len(names)} ({names[:4]}...); check K, D and covariance_type."
        )
    flat_da = xr.DataArray(draws, dims=(*SAMPLE_DIMS, "parameter"), coords={"parameter": names})
    modes = detect_modes(flat_da, threshold=th.mode_threshold)

    # 3. summaries
    map_vals = np.nan
    if map_estimate is not None:
        w_map, m_map, c_map = _point_estimate(map_estimate, "map_estimate")
        if m_map.ndim == 1:
            m_map = m_map[:, None]
        map_rep = reporting_parameters(w_map, m_map, c_map, covariance_type, from_cholesky=False)
        map_vals = flatten_reporting(map_rep, covariance_type)[1]
    table = point_vs_posterior_table(names, draws, em_vals, map_vals, hdi_prob)

    # 4. diagnostics and verdict
    diag = sampler_diagnostics(idata)
    weights = post_rep["weights"].transpose(*SAMPLE_DIMS, COMPONENT_DIM).values
    findings = judge_findings(table, diag, modes, th, labels=labels_report, weights=weights)
    verdict, reasons = verdict_from_findings(
        findings, table, th.z_max, "EM", "no sampler problem found; one mode; no empty component"
    )
    reasons.extend(
        f"[labels] {s}"
        for s in labels_report.describe()
        if labels_report.is_pure_permutation or not s.startswith("alignment is")
    )
    return CrossCheck(
        verdict=verdict,
        reasons=reasons,
        table=table,
        diagnostics=diag,
        labels=labels_report,
        modes=modes,
        covariance_type=covariance_type,
        hdi_prob=hdi_prob,
        thresholds=th,
        posterior=relabelled,
    )
