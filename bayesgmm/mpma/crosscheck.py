"""EM vs NUTS cross-check of MPMA on a ratings subsample.

The compared scalars are the ones every labelling of the posterior shares: the mixture
weights ``weights[c]`` and the noise sds ``sigmas[c]`` (the factors are identified only up
to rotation, so they are not compared). The estimate judged against the NUTS posterior is
the marginal MAP of ``(pi, sigma)`` by stochastic-approximation EM
(:mod:`bayesgmm.mpma.saem`); the joint mode of MAP-EM, which with many factors per rating
sits away from the posterior mass, is shown beside it. The three components are
structurally different (global, user-local, item-local), so there is no label switching
to undo: the engine of :mod:`bayesgmm.verdict` judges without label checks. Its summaries,
sampler diagnostics, mode detection and verdict rules (agree / disagree / sampler trouble /
ambiguous, with the thresholds of :class:`bayesgmm.verdict.Thresholds`) are the ones the
GMM cross-check (:mod:`bayesgmm.gmm.crosscheck`) uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm.em.gaussian import COMPONENT_DIM
from bayesgmm.verdict import (
    SAMPLE_DIMS,
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

__all__ = ["MPMACrossCheck", "crosscheck_mpma", "densest_subsample", "reporting_values"]

REPORTED = ("weights", "sigmas")


def densest_subsample(ratings: pd.DataFrame, n_users: int, n_items: int) -> pd.DataFrame:
    """Ratings among the ``n_users`` users and ``n_items`` items with the most ratings.

    Ties are broken by id, so the subsample is deterministic.
    """
    users = ratings["user"].value_counts().sort_index(kind="stable")
    items = ratings["item"].value_counts().sort_index(kind="stable")
    top_users = users.sort_values(ascending=False, kind="stable").index[:n_users]
    top_items = items.sort_values(ascending=False, kind="stable").index[:n_items]
    keep = ratings["user"].isin(top_users) & ratings["item"].isin(top_items)
    return ratings.loc[keep].reset_index(drop=True)


def reporting_values(
    weights: np.ndarray, sigmas: np.ndarray, components: tuple[str, ...]
) -> tuple[list[str], np.ndarray]:
    """Labels ``weights[c]``, ``sigmas[c]`` and values (..., 2 n_components)."""
    labels = [f"{name}[{c}]" for name in REPORTED for c in components]
    return labels, np.concatenate([np.asarray(weights), np.asarray(sigmas)], axis=-1)


@dataclass
class MPMACrossCheck:
    """Result of :func:`crosscheck_mpma`.

    Attributes
    ----------
    verdict : {"agree", "disagree", "sampler trouble", "ambiguous"}
    reasons : list of str
        Every finding, most severe first, tagged ``[ambiguous]``, ``[sampler trouble]``,
        ``[disagree]``, ``[agree]`` or ``[note]`` (a check that could not be made).
    table : pandas.DataFrame
        One row per parameter (``weights[c]``, ``sigmas[c]``): em, map, mean, sd, hdi_low,
        hdi_high, z, mcse_mean, r_hat, ess_bulk, ess_tail.
    diagnostics : dict
        :func:`bayesgmm.verdict.sampler_diagnostics` of the draws.
    components : tuple of str
    hdi_prob : float
    thresholds : Thresholds
        The thresholds the verdict was judged with (the label checks are not made).
    estimate : str
        Name of the judged estimate.
    """

    verdict: str
    reasons: list[str]
    table: pd.DataFrame
    diagnostics: dict[str, Any]
    components: tuple[str, ...]
    hdi_prob: float = 0.94
    thresholds: Thresholds = field(default_factory=Thresholds)
    estimate: str = "MAP-EM"

    def to_text(self) -> str:
        """Readable report: verdict, reasons, sampler diagnostics, then the table."""
        dg = self.diagnostics
        pct = f"{100 * self.hdi_prob:g}%"
        return "\n".join(
            [
                f"{self.estimate} vs posterior cross-check (MPMA): {self.verdict.upper()}",
                f"(components {', '.join(self.components)}; {dg['n_chains']} chains x "
                f"{dg['n_draws']} draws, {len(self.table)} parameters)",
                "",
                "Reasons:",
                *(f"  - {r}" for r in self.reasons),
                "",
                "Sampler:",
                f"  {diagnostics_line(dg)}",
                "",
                f"Table (hdi = {pct} highest density interval, z = (em - mean) / sd):",
                format_table(self.table),
            ]
        )

    def __str__(self) -> str:
        return self.to_text()


def crosscheck_mpma(
    idata: xr.DataTree,
    em: Any,
    map_estimate: dict[str, np.ndarray] | None = None,
    *,
    hdi_prob: float = 0.94,
    estimate: str = "MAP-EM",
    thresholds: Thresholds | None = None,
    **overrides: float,
) -> MPMACrossCheck:
    """Compare a point estimate of MPMA's pi and sigma with draws of :func:`build_mpma_model`.

    Parameters
    ----------
    idata : xarray.DataTree
        ``posterior`` with ``weights`` and ``sigmas`` (chain, draw, component), ideally
        ``sample_stats``.
    em : fitted MPMA (or any object with ``weights_``, ``sigmas_``, ``components_``)
    map_estimate : dict, optional
        ``weights`` and ``sigmas`` of a second point estimate (e.g. ``pm.find_MAP``),
        shown in the ``map`` column and not judged.
    hdi_prob : float
        Probability of the highest density interval.
    estimate : str
        Name of the judged estimate in the report.
    thresholds : Thresholds, optional
        Thresholds of the verdict rules (default ``Thresholds()``); the components are
        structurally distinct, so ``purity_threshold`` and ``switch_max`` are not used.
    **overrides : float
        Single thresholds by field name (``z_max=2``, ...), applied on top of
        ``thresholds``.

    Returns
    -------
    MPMACrossCheck
    """
    th = (Thresholds() if thresholds is None else thresholds).replace(**overrides)
    posterior = get_group(idata, "posterior")
    if posterior is None or any(name not in posterior for name in REPORTED):
        raise ValueError("idata needs a posterior group with 'weights' and 'sigmas'")
    components = tuple(em.components_)
    w = posterior["weights"].transpose(*SAMPLE_DIMS, COMPONENT_DIM)
    s = posterior["sigmas"].transpose(*SAMPLE_DIMS, COMPONENT_DIM)
    names, draws = reporting_values(w.values, s.values, components)
    map_values = (
        reporting_values(map_estimate["weights"], map_estimate["sigmas"], components)[1]
        if map_estimate is not None
        else np.nan
    )
    em_values = reporting_values(em.weights_, em.sigmas_, components)[1]
    table = point_vs_posterior_table(names, draws, em_values, map_values, hdi_prob)

    diag = sampler_diagnostics(idata)
    flat = xr.DataArray(draws, dims=(*SAMPLE_DIMS, "parameter"), coords={"parameter": names})
    modes = detect_modes(flat, threshold=th.mode_threshold)
    findings = judge_findings(table, diag, modes, th, labels=None, weights=w.values)
    verdict, reasons = verdict_from_findings(
        findings, table, th.z_max, estimate, "no sampler problem; one mode"
    )
    return MPMACrossCheck(verdict, reasons, table, diag, components, hdi_prob, th, estimate)


@dataclass
class SubsampleCheck:
    """Everything :func:`crosscheck_subsample` computed.

    Attributes
    ----------
    estimator : MPMA
        The joint MAP-EM fit on the subsample (its groups are the model's).
    saem : SAEMResult
        The marginal MAP of ``(pi, sigma)`` by SAEM, started at the MAP-EM fit: the
        estimate the report judges.
    map_estimate : dict
        ``pm.find_MAP`` started at MAP-EM (every variable, deterministics included): the
        joint mode, the report's ``map`` column.
    idata : xarray.DataTree
        The NUTS draws.
    report : MPMACrossCheck
    """

    estimator: Any
    saem: Any
    map_estimate: dict[str, np.ndarray]
    idata: xr.DataTree
    report: MPMACrossCheck


def crosscheck_subsample(
    ratings: pd.DataFrame,
    *,
    n_factors: int = 2,
    n_user_groups: int = 2,
    n_item_groups: int = 2,
    priors=None,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    sampler: str = "nutpie",
    saem_burn: int = 3000,
    saem_average: int = 1000,
    seed: int = 0,
    progressbar: bool = False,
) -> SubsampleCheck:
    """MAP-EM, SAEM, ``pm.find_MAP`` and NUTS on ``ratings`` (a subsample), then the check.

    1. MAP-EM with ``refine_factors=True`` (the joint posterior mode) to convergence; its
       user and item groups are held fixed in the PyMC model.
    2. ``pm.find_MAP`` from it (the report's ``map`` column; equal to MAP-EM at its fixed
       point).
    3. SAEM from it (``saem_burn`` + ``saem_average`` Gibbs sweeps): the marginal MAP of
       ``(pi, sigma)``, the report's ``em`` column and the estimate judged.
    4. NUTS, every chain started at SAEM's last draw (a point of the typical set; the joint
       mode, with its collapsed factors, is not).
    """
    from types import SimpleNamespace

    from bayesgmm.inference import find_map, sample_nuts
    from bayesgmm.mpma.estimator import MPMA
    from bayesgmm.mpma.model import build_mpma_model, initial_values_from_em
    from bayesgmm.mpma.saem import saem_weights_sigmas

    est = MPMA(
        n_factors,
        n_user_groups=n_user_groups,
        n_item_groups=n_item_groups,
        priors=priors,
        max_iter=2000,
        tol=1e-9,
        refine_factors=True,
        random_state=seed,
        progressbar=progressbar,
    ).fit(ratings)
    values = np.asarray(ratings["rating"], dtype=np.float64)
    n_users, n_items = len(est.user_ids_), len(est.item_ids_)
    model = build_mpma_model(
        est.train_users_, est.train_items_, values, n_users, n_items, est.user_groups_,
        est.item_groups_, components=est.components_, n_factors=n_factors,
        priors=est.priors_, use_bias=est.use_bias,
    )  # fmt: skip
    map_estimate = find_map(
        model, initial_values_from_em(model, est._state(), est.priors_.sigma_min), seed=seed
    )
    marginal = saem_weights_sigmas(
        est._state(), values, est._indices(est.train_users_, est.train_items_), est.priors_,
        use_bias=est.use_bias, n_burn=saem_burn, n_average=saem_average, seed=seed,
        progressbar=progressbar,
    )  # fmt: skip
    nuts_start = _off_exact_zero(
        initial_values_from_em(model, marginal.state, est.priors_.sigma_min)
    )
    idata = sample_nuts(
        model,
        nuts_start,
        sampler=sampler,
        chains=chains,
        draws=draws,
        tune=tune,
        seed=seed,
        progressbar=progressbar,
    )
    judged = SimpleNamespace(
        weights_=marginal.weights, sigmas_=marginal.sigmas, components_=est.components_
    )
    report = crosscheck_mpma(idata, judged, map_estimate, estimate="SAEM (marginal MAP)")
    return SubsampleCheck(est, marginal, map_estimate, idata, report)


def _off_exact_zero(values: dict[str, np.ndarray], size: float = 1e-8) -> dict[str, np.ndarray]:
    """Factors and biases with ``|x| < size`` set to ``size`` (same sign), others unchanged.

    On whole-star ratings the joint mode can have a component whose factors collapsed to
    zero (``U = V = 0`` is a stationary point of the bilinear model), where the gradient
    underflows to exactly zero; nutpie rejects such a start ("bad initial gradient"). The
    shift changes the log density by about ``penalty * size**2 / sigma**2``.
    """
    out = dict(values)
    for name, value in values.items():
        if name.startswith(("row_", "col_")):
            value = np.asarray(value, dtype=np.float64)
            out[name] = np.where(np.abs(value) < size, np.copysign(size, value), value)
    return out
