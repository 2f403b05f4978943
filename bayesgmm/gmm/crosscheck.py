"""Cross-check of the EM (or MAP-EM) point estimate against the NUTS posterior.

:func:`crosscheck` compares the two on the interpretable scalars they share
(:func:`reporting_parameters`): ``weights[k]``, ``means[k,d]``, the component standard
deviations ``sd[k,d]`` (``sd[d]`` for "tied", ``sd[k]`` for "spherical") and, for
"full"/"tied", the correlations ``corr[k,d,e]`` (``corr[d,e]`` for "tied") with ``d < e``.

Procedure
---------
1. **Relabel.** The posterior draws are aligned to the EM components by pivotal reordering
   (:mod:`bayesgmm.gmm.relabel`; cost = squared distance of the means in units of ``scale``,
   by default the marginal per-feature sd implied by the EM mixture, which equals the data
   sd at an ML fixed point).  What was permuted is reported in ``labels`` and in
   ``reasons``.  Every variable with a ``component`` dim is permuted together.
2. **Modes.** On the relabelled reporting parameters, chains are grouped into modes
   (:func:`bayesgmm.gmm.relabel.detect_modes`).  Pooled summaries are never silently averaged
   over modes: if the chains disagree the verdict is "ambiguous" and the groups and the
   separating parameters are reported.
3. **Summaries** per reporting parameter over all chains and draws: mean, sd (ddof=1),
   HDI (``hdi_prob``, arviz "nearest" method), ``z = (em - mean) / sd``, MCSE of the mean,
   rank-normalised split R-hat, bulk and tail ESS (arviz-stats).
4. **Sampler diagnostics** from ``sample_stats`` (``warmup_*`` groups are ignored):
   divergences (``diverging``), tree-depth saturation (``maxdepth_reached`` or PyMC's
   ``reached_max_treedepth``), and per-chain E-BFMI from ``energy``:
   ``BFMI = sum(diff(E)**2) / sum((E - mean(E))**2)`` (Betancourt 2016).

Verdict rules (thresholds are keyword arguments of :func:`crosscheck`)
----------------------------------------------------------------------
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

from bayesgmm.gmm.relabel import (
    COMPONENT_DIM,
    MODE_THRESHOLD,
    PURITY_THRESHOLD,
    SAMPLE_DIMS,
    LabelReport,
    ModeReport,
    detect_label_switching,
    detect_modes,
    relabel,
)

__all__ = [
    "VERDICTS",
    "CrossCheck",
    "crosscheck",
    "flatten_reporting",
    "posterior_reporting_parameters",
    "reporting_parameters",
    "sampler_diagnostics",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: Verdicts from least to most severe.
VERDICTS = ("agree", "disagree", "sampler trouble", "ambiguous")

RHAT_MAX = 1.01
ESS_BULK_MIN = 400.0
BFMI_MIN = 0.3
TREEDEPTH_MAX_FRAC = 0.01
Z_MAX = 3.0
WEIGHT_FLOOR = 0.01
WEIGHT_FLOOR_MASS = 0.05
SWITCH_MAX = 0.01

FEATURE_DIM = "feature"
FEATURE2_DIM = "feature_"
_REPORT_ORDER = ("weights", "means", "sd", "corr")


# --------------------------------------------------------------------------------------
# reporting parameters
# --------------------------------------------------------------------------------------


def _check_covariance_type(covariance_type: str) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"Unknown covariance_type {covariance_type!r}; use one of {list(COVARIANCE_TYPES)}."
        )
    return covariance_type


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
    expected = {
        "full": (*lead, k, d, d),
        "tied": (*lead, d, d),
        "diag": (*lead, k, d),
        "spherical": (*lead, k),
    }[covariance_type]
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
    if name == "weights":
        return (COMPONENT_DIM,)
    if name == "means":
        return (COMPONENT_DIM, FEATURE_DIM)
    comp = () if covariance_type == "tied" else (COMPONENT_DIM,)
    if name == "sd":
        return comp if covariance_type == "spherical" else (*comp, FEATURE_DIM)
    return (*comp, FEATURE_DIM, FEATURE2_DIM)


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
    covariance_type = _check_covariance_type(covariance_type)
    if not isinstance(weights, xr.DataArray):
        return _reporting_numpy(weights, means, cov_or_chol, covariance_type, from_cholesky)

    lead = [dim for dim in weights.dims if dim != COMPONENT_DIM]
    if COMPONENT_DIM not in weights.dims:
        raise ValueError(f"weights must have a {COMPONENT_DIM!r} dim, got {weights.dims}.")
    if not isinstance(means, xr.DataArray) or not isinstance(cov_or_chol, xr.DataArray):
        raise ValueError("With DataArray weights, means and cov_or_chol must be DataArrays too.")
    if FEATURE_DIM not in means.dims:
        means = means.expand_dims(FEATURE_DIM, axis=-1)
    cov_dims = {
        "full": (COMPONENT_DIM, FEATURE_DIM, FEATURE2_DIM),
        "tied": (FEATURE_DIM, FEATURE2_DIM),
        "diag": (COMPONENT_DIM, FEATURE_DIM),
        "spherical": (COMPONENT_DIM,),
    }[covariance_type]
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
    covariance_type = _check_covariance_type(covariance_type)
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
    var = {
        "full": lambda: np.diagonal(cov, axis1=-2, axis2=-1),
        "tied": lambda: np.broadcast_to(np.diag(cov), (k, d)),
        "diag": lambda: cov,
        "spherical": lambda: np.broadcast_to(cov[:, None], (k, d)),
    }[covariance_type]()
    centre = weights @ means
    return np.sqrt(weights @ (var + (means - centre) ** 2))


# --------------------------------------------------------------------------------------
# sampler diagnostics
# --------------------------------------------------------------------------------------


def _group(idata: Any, name: str) -> xr.Dataset | None:
    if isinstance(idata, xr.DataTree):
        if name in idata.children:
            return idata[name].to_dataset()
        return None
    if isinstance(idata, Mapping) and name in idata:
        grp = idata[name]
        return grp.to_dataset() if isinstance(grp, xr.DataTree) else grp
    grp = getattr(idata, name, None)
    return grp if isinstance(grp, xr.Dataset) else None


def bfmi_per_chain(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain: sum(diff(E)^2) / sum((E - mean E)^2); energy (chain, draw)."""
    e = np.asarray(energy, dtype=np.float64)
    num = np.sum(np.diff(e, axis=1) ** 2, axis=1)
    den = np.sum((e - e.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def sampler_diagnostics(idata: Any) -> dict[str, Any]:
    """Divergences, tree-depth hits, per-chain BFMI and sizes from ``sample_stats``.

    Keys: n_chains, n_draws, n_divergences, divergences_per_chain, treedepth_hits,
    treedepth_fraction, bfmi (list per chain), min_bfmi, has_sample_stats.  Missing
    statistics are None.
    """
    post = _group(idata, "posterior")
    if post is None:
        raise ValueError("idata has no 'posterior' group.")
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    out: dict[str, Any] = {
        "n_chains": n_chains,
        "n_draws": n_draws,
        "n_divergences": None,
        "divergences_per_chain": None,
        "treedepth_hits": None,
        "treedepth_fraction": None,
        "bfmi": None,
        "min_bfmi": None,
        "has_sample_stats": False,
    }
    ss = _group(idata, "sample_stats")
    if ss is None:
        return out
    out["has_sample_stats"] = True
    if "diverging" in ss:
        div = ss["diverging"].transpose("chain", "draw").values.astype(bool)
        out["n_divergences"] = int(div.sum())
        out["divergences_per_chain"] = [int(x) for x in div.sum(axis=1)]
    for key in ("maxdepth_reached", "reached_max_treedepth"):
        if key in ss:
            hits = ss[key].values.astype(bool)
            out["treedepth_hits"] = int(hits.sum())
            out["treedepth_fraction"] = float(hits.mean())
            break
    if "energy" in ss:
        b = bfmi_per_chain(ss["energy"].transpose("chain", "draw").values)
        out["bfmi"] = [float(x) for x in b]
        out["min_bfmi"] = float(np.nanmin(b)) if np.any(np.isfinite(b)) else float("nan")
    return out


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
        See :func:`sampler_diagnostics`.
    labels : LabelReport
    modes : ModeReport
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
    thresholds: dict[str, float] = field(default_factory=dict)
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
            f"  {_diagnostics_line(dg)}",
            "",
        ]
        if self.modes.multimodal:
            lines.append(
                "NOTE: chains sit in different modes; the pooled summaries below mix them."
            )
        pct = f"{100 * self.hdi_prob:g}%"
        lines.append(f"Table (hdi = {pct} highest density interval, z = (em - mean) / sd):")
        lines.append(_format_table(self.table))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _diagnostics_line(dg: Mapping[str, Any]) -> str:
    if not dg.get("has_sample_stats"):
        return "no sample_stats group: divergences, tree depth and BFMI not checked"
    parts = []
    if dg["n_divergences"] is not None:
        parts.append(f"divergences {dg['n_divergences']}")
    if dg["treedepth_hits"] is not None:
        parts.append(
            f"max tree depth hits {dg['treedepth_hits']} ({100 * dg['treedepth_fraction']:.1f}%)"
        )
    if dg["bfmi"] is not None:
        parts.append("BFMI per chain " + ", ".join(f"{b:.2f}" for b in dg["bfmi"]))
    return "; ".join(parts) if parts else "sample_stats has no diagnostics"


def _sig(x: float, digits: int = 4) -> str:
    if x is None or not np.isfinite(x):
        return "nan" if x is None or np.isnan(x) else str(x)
    return f"{x:.{digits}g}"


def _format_table(df: pd.DataFrame) -> str:
    fmts = {
        **{c: _sig for c in ("em", "map", "mean", "sd", "hdi_low", "hdi_high")},
        "z": lambda x: f"{x:.2f}",
        "mcse_mean": lambda x: _sig(x, 2),
        "r_hat": lambda x: f"{x:.3f}",
        "ess_bulk": lambda x: "nan" if not np.isfinite(x) else f"{x:.0f}",
        "ess_tail": lambda x: "nan" if not np.isfinite(x) else f"{x:.0f}",
    }
    return df.to_string(formatters={c: f for c, f in fmts.items() if c in df.columns})


def _summaries(labels: list[str], draws: np.ndarray, hdi_prob: float) -> pd.DataFrame:
    import arviz_stats as azs

    da = xr.DataArray(draws, dims=(*SAMPLE_DIMS, "parameter"), coords={"parameter": labels})
    flat = draws.reshape(-1, draws.shape[-1])
    hdi = azs.hdi(da, prob=hdi_prob).transpose("parameter", "ci_bound")
    n_chains = draws.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = azs.rhat(da).values if n_chains > 1 else np.full(len(labels), np.nan)
        ess_bulk = azs.ess(da, method="bulk").values
        ess_tail = azs.ess(da, method="tail").values
        mcse = azs.mcse(da, method="mean").values
    return pd.DataFrame(
        {
            "mean": flat.mean(axis=0),
            "sd": flat.std(axis=0, ddof=1),
            "hdi_low": hdi.sel(ci_bound="lower").values,
            "hdi_high": hdi.sel(ci_bound="upper").values,
            "mcse_mean": mcse,
            "r_hat": rhat,
            "ess_bulk": ess_bulk,
            "ess_tail": ess_tail,
        },
        index=pd.Index(labels, name="parameter"),
    )


def point_vs_posterior_table(
    labels: list[str],
    draws: np.ndarray,
    em_values: np.ndarray,
    map_values: np.ndarray | float,
    hdi_prob: float,
) -> pd.DataFrame:
    """Summaries of ``draws`` (chain, draw, parameter) with the point estimates beside them:
    columns em, map, the :func:`_summaries` columns, and z = (em - mean) / sd after hdi_high."""
    table = _summaries(labels, draws, hdi_prob)
    table.insert(0, "em", em_values)
    table.insert(1, "map", map_values)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (table["em"] - table["mean"]) / table["sd"]
    table.insert(table.columns.get_loc("hdi_high") + 1, "z", z)
    return table


def verdict_from_findings(
    findings: list[tuple[str, str]],
    table: pd.DataFrame,
    z_max: float,
    estimate: str,
    agree_note: str,
) -> tuple[str, list[str]]:
    """The most severe verdict among ``findings`` ("agree" if none) and the tagged reasons;
    an agreement is explained first (the largest |z| of the point ``estimate`` and
    ``agree_note``)."""
    verdict = max(
        (cat for cat, _ in findings if cat in VERDICTS), key=VERDICTS.index, default="agree"
    )
    reasons = [f"[{cat}] {msg}" for cat, msg in findings]
    if verdict == "agree":
        absz = table["z"].abs()
        top = absz.idxmax() if absz.notna().any() else None
        reasons.insert(
            0,
            f"[agree] all {len(table)} parameters within {z_max:g} posterior sd of {estimate} "
            + (f"(max |z| = {absz[top]:.2f} at {top})" if top is not None else "")
            + f"; {agree_note}",
        )
    return verdict, reasons


def crosscheck(
    idata: xr.DataTree | Mapping[str, xr.Dataset],
    em: Mapping[str, Any] | Any,
    map_estimate: Mapping[str, Any] | Any | None = None,
    covariance_type: str = "full",
    *,
    hdi_prob: float = 0.94,
    scale: np.ndarray | None = None,
    z_max: float = Z_MAX,
    rhat_max: float = RHAT_MAX,
    ess_bulk_min: float = ESS_BULK_MIN,
    bfmi_min: float = BFMI_MIN,
    treedepth_max_frac: float = TREEDEPTH_MAX_FRAC,
    weight_floor: float = WEIGHT_FLOOR,
    weight_floor_mass: float = WEIGHT_FLOOR_MASS,
    mode_threshold: float = MODE_THRESHOLD,
    purity_threshold: float = PURITY_THRESHOLD,
    switch_max: float = SWITCH_MAX,
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
    z_max, rhat_max, ess_bulk_min, bfmi_min, treedepth_max_frac, weight_floor,
    weight_floor_mass, mode_threshold, purity_threshold, switch_max : float
        Thresholds of the verdict rules.
    """
    covariance_type = _check_covariance_type(covariance_type)
    posterior = _group(idata, "posterior")
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
        posterior, m_em, scale, purity_threshold=purity_threshold
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
    modes = detect_modes(flat_da, threshold=mode_threshold)

    # 3. summaries
    map_vals = np.nan
    if map_estimate is not None:
        w_map, m_map, c_map = _point_estimate(map_estimate, "map_estimate")
        if m_map.ndim == 1:
            m_map = m_map[:, None]
        map_rep = reporting_parameters(w_map, m_map, c_map, covariance_type, from_cholesky=False)
        map_vals = flatten_reporting(map_rep, covariance_type)[1]
    table = point_vs_posterior_table(names, draws, em_vals, map_vals, hdi_prob)

    # 4. diagnostics
    diag = sampler_diagnostics(idata)

    thresholds = {
        "z_max": z_max,
        "rhat_max": rhat_max,
        "ess_bulk_min": ess_bulk_min,
        "bfmi_min": bfmi_min,
        "treedepth_max_frac": treedepth_max_frac,
        "weight_floor": weight_floor,
        "weight_floor_mass": weight_floor_mass,
        "mode_threshold": mode_threshold,
        "purity_threshold": purity_threshold,
        "switch_max": switch_max,
    }
    findings = _judge(table, diag, labels_report, modes, post_rep, thresholds)
    verdict, reasons = verdict_from_findings(
        findings, table, z_max, "EM", "no sampler problem found; one mode; no empty component"
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
        thresholds=thresholds,
        posterior=relabelled,
    )


def _judge(table, diag, labels, modes, post_rep, th) -> list[tuple[str, str]]:
    """(category, message) for every finding, most severe category first."""
    out: list[tuple[str, str]] = []
    # ambiguous
    if modes.multimodal:
        out.extend(("ambiguous", s) for s in modes.describe())
    if not labels.is_pure_permutation:
        worst = int(np.argmin(labels.pure_fraction))
        out.append(
            (
                "ambiguous",
                f"label switching that relabelling cannot undo: only "
                f"{labels.pure_fraction[worst]:.1%} of draws in chain {worst} have each "
                f"component nearest a distinct EM component "
                f"(required {th['purity_threshold']:.0%})",
            )
        )
    within = labels.within_chain_fraction
    if np.any(within > th["switch_max"]):
        worst = int(np.argmax(within))
        out.append(
            (
                "ambiguous",
                f"labels switch within chains (chain {worst}: {within[worst]:.1%} of draws off "
                f"its labelling; allowed {th['switch_max']:.0%}): the sampler crosses between "
                "labellings through the region where components coincide, so the data do not "
                "separate the components; consider fewer components, an ordering constraint "
                "or stronger priors",
            )
        )
    w = post_rep["weights"].transpose(*SAMPLE_DIMS, COMPONENT_DIM).values
    p_low = (w < th["weight_floor"]).mean(axis=(0, 1))
    for k in np.flatnonzero(p_low > th["weight_floor_mass"]):
        out.append(
            (
                "ambiguous",
                f"weights[{k}]: P(weight < {th['weight_floor']:g}) = {p_low[k]:.2f} "
                f"(> {th['weight_floor_mass']:g}): component {k} may be empty",
            )
        )
    # sampler trouble
    n_tot = diag["n_chains"] * diag["n_draws"]
    if diag["n_divergences"]:
        per = diag["divergences_per_chain"]
        out.append(
            (
                "sampler trouble",
                f"{diag['n_divergences']} divergent transitions "
                f"({diag['n_divergences'] / n_tot:.1%} of {n_tot} draws; per chain {per})",
            )
        )
    rhat = table["r_hat"]
    bad = rhat[rhat > th["rhat_max"]]
    if len(bad):
        out.append(
            (
                "sampler trouble",
                f"r_hat > {th['rhat_max']:g} for {len(bad)} parameter(s) "
                f"(max {bad.max():.3f} at {bad.idxmax()})",
            )
        )
    ess = table["ess_bulk"]
    if ess.notna().any() and ess.min() < th["ess_bulk_min"]:
        out.append(
            (
                "sampler trouble",
                f"min ess_bulk {ess.min():.0f} < {th['ess_bulk_min']:g} (at {ess.idxmin()})",
            )
        )
    if diag["bfmi"] is not None:
        for c, b in enumerate(diag["bfmi"]):
            if b < th["bfmi_min"]:
                out.append(("sampler trouble", f"chain {c}: BFMI {b:.2f} < {th['bfmi_min']:g}"))
    if diag["treedepth_fraction"] is not None and (
        diag["treedepth_fraction"] > th["treedepth_max_frac"]
    ):
        out.append(
            (
                "sampler trouble",
                f"maximum tree depth reached in {diag['treedepth_hits']} draws "
                f"({diag['treedepth_fraction']:.1%} > {th['treedepth_max_frac']:.0%})",
            )
        )
    # disagree
    z = table["z"]
    far = z[z.abs() > th["z_max"]].abs().sort_values(ascending=False)
    for name in far.index:
        row = table.loc[name]
        out.append(
            (
                "disagree",
                f"{name}: EM {_sig(row['em'])} is {abs(row['z']):.1f} posterior sd from the "
                f"posterior mean {_sig(row['mean'])} (sd {_sig(row['sd'], 3)}, "
                f"{_sig(row['hdi_low'])} to {_sig(row['hdi_high'])} HDI)",
            )
        )
    if not diag["has_sample_stats"]:
        out.append(("note", "no sample_stats group: divergences, tree depth, BFMI not checked"))
    order = {v: i for i, v in enumerate(reversed(VERDICTS))}
    return sorted(out, key=lambda f: order.get(f[0], len(order)))
