"""How a point estimate is judged against posterior draws, for any model family.

A model family reduces its posterior to scalar *reporting parameters* (labels such as
``"weights[1]"``, draws of shape (chain, draw, parameter)) and gives a point estimate of
each; this module does the rest, knowing nothing of the model.  The Bayesian GMM
(:mod:`bayesgmm.gmm.crosscheck`, which first undoes label switching) and MPMA
(:mod:`bayesgmm.mpma.crosscheck`) both call it.

Pieces
------
1. **Sampler diagnostics** (:func:`sampler_diagnostics`) from ``sample_stats``
   (``warmup_*`` groups are ignored): divergences (``diverging``), tree-depth saturation
   (``maxdepth_reached`` or PyMC's ``reached_max_treedepth``), and per-chain E-BFMI from
   ``energy``: ``BFMI = sum(diff(E)**2) / sum((E - mean(E))**2)`` (Betancourt 2016,
   :func:`bfmi_per_chain`).
2. **Modes** (:func:`detect_modes`).  For each scalar parameter the per-chain means are
   compared in units of the pooled within-chain standard deviation
   ``s = sqrt(mean over chains of the within-chain variance)``.  Chains ``i`` and ``j``
   are linked when ``max over parameters |mean_i - mean_j| / s < threshold`` (default
   4); the modes are the connected components of that graph.  For chains that sample the
   same distribution the difference of two chain means is of order ``s * sqrt(2 / ESS)``,
   so 4 within-chain sds only fires when chains sit in genuinely different places.  For a
   mixture the draws must be relabelled first (:mod:`bayesgmm.gmm.relabel`).
3. **Summaries** (:func:`point_vs_posterior_table`) per reporting parameter over all
   chains and draws: mean, sd (ddof=1), HDI (``hdi_prob``, arviz "nearest" method),
   ``z = (em - mean) / sd``, MCSE of the mean, rank-normalised split R-hat, bulk and tail
   ESS (arviz-stats).  The ``em`` column is the judged estimate, ``map`` a second one
   shown beside it and not judged.
4. **Findings** (:func:`judge_findings`) and the **verdict** (:func:`verdict_from_findings`).

Verdict rules (thresholds are the fields of :class:`Thresholds`)
-----------------------------------------------------------------
- **ambiguous**: chains sit in different modes (difference of chain means >
  ``mode_threshold`` = 4 pooled within-chain sds); or some component's weight has
  substantial mass near 0: ``P(weights[k] < weight_floor) > weight_floor_mass`` with
  ``weight_floor = 0.01`` and ``weight_floor_mass = 0.05`` (the component may be empty);
  and, when a label report is given (families with label switching), the alignment is not
  a pure permutation (fewer than ``purity_threshold`` = 95 % of the draws of some chain
  have each component nearest a distinct pivot component), or labels switch *within* a
  chain in more than ``switch_max`` = 1 % of some chain's draws (the sampler crosses
  between labellings through the region where components coincide, so the data do not
  separate the components).
- **sampler trouble**: any divergence; any R-hat > ``rhat_max`` = 1.01; smallest bulk
  ESS < ``ess_bulk_min`` = 400; some chain's BFMI < ``bfmi_min`` = 0.3; or maximum tree
  depth reached in more than ``treedepth_max_frac`` = 1 % of the draws.
- **disagree**: some ``|z| > z_max`` = 3 (the estimate is more than 3 posterior sds from
  the posterior mean).
- **agree**: none of the above.

Several can apply; the verdict is the most severe in the order of :data:`VERDICTS`,
ambiguous > sampler trouble > disagree > agree, and the reasons list every finding.
Ambiguity ranks first because a multimodal or non-identified posterior also breaks the
sampler diagnostics (R-hat compares chains in different modes) and makes every
summary, hence every z, meaningless: the remedy is in the model (K, priors, ordering),
not in the sampler settings.  Sampler trouble ranks above disagreement because the
posterior summaries behind ``z`` cannot be trusted until the sampler is fixed.

References
----------
- M. Betancourt (2016). Diagnosing suboptimal cotangent disintegrations in Hamiltonian
  Monte Carlo. arXiv:1604.00695.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "SAMPLE_DIMS",
    "VERDICTS",
    "LabelChecks",
    "ModeReport",
    "Thresholds",
    "bfmi_per_chain",
    "detect_modes",
    "diagnostics_line",
    "flatten_draws",
    "format_table",
    "get_group",
    "judge_findings",
    "point_vs_posterior_table",
    "posterior_summaries",
    "sampler_diagnostics",
    "verdict_from_findings",
]

#: Sample dimensions of a posterior.
SAMPLE_DIMS = ("chain", "draw")
#: Verdicts from least to most severe.
VERDICTS = ("agree", "disagree", "sampler trouble", "ambiguous")


# --------------------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------------------

#: Allowed range (low, high, low inclusive) of every threshold.
_RANGES = {
    "rhat_max": (1.0, np.inf, True),
    "ess_bulk_min": (0.0, np.inf, True),
    "bfmi_min": (0.0, np.inf, True),
    "treedepth_max_frac": (0.0, 1.0, True),
    "z_max": (0.0, np.inf, False),
    "weight_floor": (0.0, 1.0, True),
    "weight_floor_mass": (0.0, 1.0, True),
    "switch_max": (0.0, 1.0, True),
    "purity_threshold": (0.0, 1.0, True),
    "mode_threshold": (0.0, np.inf, False),
}


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the verdict rules (see the module docstring).

    The defaults here are the package's defaults; the class attributes hold them too
    (``Thresholds.mode_threshold`` is 4.0), for functions that need a single one.

    Parameters
    ----------
    rhat_max : float, default 1.01
        Largest rank-normalised split R-hat (>= 1).
    ess_bulk_min : float, default 400
        Smallest bulk ESS (>= 0).
    bfmi_min : float, default 0.3
        Smallest per-chain E-BFMI (>= 0).
    treedepth_max_frac : float, default 0.01
        Largest fraction of draws that reach the maximum tree depth, in [0, 1].
    z_max : float, default 3
        Largest ``|z| = |em - mean| / sd`` (> 0).
    weight_floor, weight_floor_mass : float, default 0.01 and 0.05
        A component may be empty when ``P(weight < weight_floor) > weight_floor_mass``;
        both in [0, 1].
    switch_max : float, default 0.01
        Largest fraction of a chain's draws off its labelling, in [0, 1] (label checks).
    purity_threshold : float, default 0.95
        Smallest fraction of clean draws per chain for a pure permutation, in [0, 1]
        (label checks).
    mode_threshold : float, default 4
        Pooled within-chain sds separating chains into different modes (> 0).

    Raises
    ------
    TypeError
        A threshold that is not a real number.
    ValueError
        A threshold that is NaN or out of its range.
    """

    rhat_max: float = 1.01
    ess_bulk_min: float = 400.0
    bfmi_min: float = 0.3
    treedepth_max_frac: float = 0.01
    z_max: float = 3.0
    weight_floor: float = 0.01
    weight_floor_mass: float = 0.05
    switch_max: float = 0.01
    purity_threshold: float = 0.95
    mode_threshold: float = 4.0

    def __post_init__(self) -> None:
        for name, (low, high, closed) in _RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"Thresholds.{name} must be a real number, got {value!r}.")
            value = float(value)
            ok = (value >= low if closed else value > low) and value <= high
            if not ok:  # NaN fails too
                side = "[" if closed else "("
                raise ValueError(
                    f"Thresholds.{name} must lie in {side}{low:g}, {high:g}], got {value!r}."
                )
            object.__setattr__(self, name, value)

    def replace(self, **changes: float) -> Thresholds:
        """A copy with some thresholds changed (validated like the constructor).

        Raises
        ------
        TypeError
            A name that is not a threshold.
        """
        unknown = sorted(set(changes) - set(_RANGES))
        if unknown:
            raise TypeError(f"Unknown threshold(s) {unknown}; the thresholds are {list(_RANGES)}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float]:
        """The thresholds by name."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------
# sampler diagnostics
# --------------------------------------------------------------------------------------


def get_group(idata: Any, name: str) -> xr.Dataset | None:
    """Group ``name`` of ``idata`` as a Dataset, or None if it has none.

    Parameters
    ----------
    idata : xarray.DataTree, mapping of group name to Dataset or DataTree, or object
        An object with Dataset attributes (the older ``arviz.InferenceData``) works too.
    name : str
        Group name, e.g. ``"posterior"`` or ``"sample_stats"``.

    Returns
    -------
    xarray.Dataset or None
    """
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
    """E-BFMI of each chain: ``sum(diff(E)**2) / sum((E - mean E)**2)``.

    Parameters
    ----------
    energy : array (chain, draw)
        Hamiltonian energy of every draw.

    Returns
    -------
    ndarray (chain,)
        NaN for a chain of constant energy.
    """
    e = np.asarray(energy, dtype=np.float64)
    num = np.sum(np.diff(e, axis=1) ** 2, axis=1)
    den = np.sum((e - e.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def sampler_diagnostics(idata: Any) -> dict[str, Any]:
    """Divergences, tree-depth hits, per-chain BFMI and sizes from ``sample_stats``.

    Parameters
    ----------
    idata : xarray.DataTree or mapping
        Needs a ``posterior`` group (chain, draw, ...); ``sample_stats`` is read if present.

    Returns
    -------
    dict
        Keys n_chains, n_draws, n_divergences, divergences_per_chain, treedepth_hits,
        treedepth_fraction, bfmi (list per chain), min_bfmi, has_sample_stats.  Missing
        statistics are None.
    """
    post = get_group(idata, "posterior")
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
    ss = get_group(idata, "sample_stats")
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
# modes
# --------------------------------------------------------------------------------------


def flatten_draws(
    posterior: xr.Dataset | xr.DataArray, var_names: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """Scalar parameters of the draws: labels like ``"means[1,0]"`` and a (chain, draw, P) array.

    A Dataset is flattened variable by variable (positional indices in the labels); a
    DataArray with dims (chain, draw, P) is taken as already flat, labelled by its third
    dim's coordinate.

    Parameters
    ----------
    posterior : xarray.Dataset or xarray.DataArray
    var_names : sequence of str, optional
        Variables of a Dataset (default: every numeric variable with chain and draw dims).

    Returns
    -------
    labels : list of str
    draws : ndarray (chain, draw, P)
    """
    if isinstance(posterior, xr.DataArray):
        rest = [d for d in posterior.dims if d not in SAMPLE_DIMS]
        if len(rest) != 1:
            raise ValueError(f"A DataArray must have dims (chain, draw, parameter), got {rest}.")
        arr = np.asarray(posterior.transpose(*SAMPLE_DIMS, rest[0]).values, dtype=np.float64)
        if rest[0] in posterior.coords:
            labels = [str(v) for v in posterior.coords[rest[0]].values]
        else:
            labels = [f"p{i}" for i in range(arr.shape[-1])]
        return labels, arr
    names = list(var_names) if var_names is not None else list(posterior.data_vars)
    labels: list[str] = []
    blocks = []
    for name in names:
        da = posterior[name]
        if not all(d in da.dims for d in SAMPLE_DIMS):
            if var_names is not None:
                raise ValueError(f"{name!r} has no (chain, draw) dims.")
            continue
        if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.bool_):
            continue
        rest = [d for d in da.dims if d not in SAMPLE_DIMS]
        arr = np.asarray(da.transpose(*SAMPLE_DIMS, *rest).values, dtype=np.float64)
        shape = arr.shape[2:]
        blocks.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
        for idx in np.ndindex(*shape):
            labels.append(f"{name}[{','.join(map(str, idx))}]" if idx else str(name))
    if not blocks:
        raise ValueError("No numeric variable with (chain, draw) dims to compare.")
    return labels, np.concatenate(blocks, axis=-1)


@dataclass
class ModeReport:
    """Chains grouped by the mode they sit in (see the module docstring).

    Attributes
    ----------
    groups : list of list of int
        Chain indices per mode (sorted; the group containing chain 0 first).
    std_diff : ndarray (chain, chain)
        Largest standardised difference of chain means over all parameters.
    separating : pandas.DataFrame
        Parameters whose chain means differ by more than ``threshold`` pooled within-chain
        sds between chains of different groups: columns ``parameter``, ``std_diff`` (largest
        such difference) and ``mean_group{g}`` (mean of the draws of group g), sorted by
        ``std_diff`` descending.  Empty when there is one group.
    threshold : float
    n_parameters : int
        Number of scalar parameters compared.
    notes : list of str
        Checks that could not be made (one chain only).
    """

    groups: list[list[int]]
    std_diff: np.ndarray
    separating: pd.DataFrame
    threshold: float = Thresholds.mode_threshold
    n_parameters: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_modes(self) -> int:
        """Number of modes (groups of chains)."""
        return len(self.groups)

    @property
    def multimodal(self) -> bool:
        """True when the chains sit in more than one mode."""
        return len(self.groups) > 1

    def describe(self, max_params: int = 3) -> list[str]:
        """One line per finding, with numbers (at most ``max_params`` separating ones)."""
        lines = list(self.notes)
        if not self.multimodal:
            n = sum(len(g) for g in self.groups)
            off = self.std_diff[~np.eye(n, dtype=bool)] if n > 1 else np.zeros(1)
            lines.append(
                f"all {n} chain(s) in one mode: largest difference of chain means "
                f"{float(np.max(off)):.2f} pooled within-chain sd (threshold {self.threshold:g}) "
                f"over {self.n_parameters} parameters"
            )
            return lines
        groups = " | ".join(str(g) for g in self.groups)
        lines.append(f"chains sit in {self.n_modes} different modes: {groups}")
        for _, row in self.separating.head(max_params).iterrows():
            means = " vs ".join(f"{row[f'mean_group{g}']:.4g}" for g in range(self.n_modes))
            lines.append(
                f"{row['parameter']} separates them: chain means differ by "
                f"{row['std_diff']:.1f} pooled within-chain sd (group means {means})"
            )
        if len(self.separating) > max_params:
            lines.append(f"... and {len(self.separating) - max_params} more separating parameters")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.describe())


def _connected_groups(linked: np.ndarray) -> list[list[int]]:
    n = linked.shape[0]
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if linked[i, j]:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def detect_modes(
    posterior: xr.Dataset | xr.DataArray,
    var_names: Sequence[str] | None = None,
    threshold: float = Thresholds.mode_threshold,
) -> ModeReport:
    """Group chains by mode (see the module docstring).

    Every scalar parameter of ``var_names`` (default: all numeric variables with chain and
    draw dims; or a flat (chain, draw, parameter) DataArray) is compared across chains:
    ``z_ij = |mean_i - mean_j| / s`` with ``s`` the pooled within-chain sd.  Chains are in
    the same mode when linked by a path of pairs with ``max_p z_ij < threshold``.
    Parameters that are constant within every chain count only if their value differs
    between chains (then ``z = inf``).  Mixture draws must be relabelled first.

    Parameters
    ----------
    posterior : xarray.Dataset or xarray.DataArray
        See :func:`flatten_draws`.
    var_names : sequence of str, optional
    threshold : float, default ``Thresholds.mode_threshold`` (4)

    Returns
    -------
    ModeReport
    """
    labels, arr = flatten_draws(posterior, var_names)
    n_chains, n_draws, n_par = arr.shape
    notes = []
    chain_mean = arr.mean(axis=1)  # (C, P)
    if n_draws > 1:
        within_var = arr.var(axis=1, ddof=1).mean(axis=0)
    else:
        within_var = np.zeros(n_par)
    s = np.sqrt(within_var)
    diff = np.abs(chain_mean[:, None, :] - chain_mean[None, :, :])  # (C, C, P)
    tiny = 1e-12 * np.maximum(1.0, np.abs(chain_mean).max(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > tiny, diff / np.where(s > tiny, s, 1.0), np.where(diff > tiny, np.inf, 0))
    std_diff = z.max(axis=-1) if n_par else np.zeros((n_chains, n_chains))
    groups = _connected_groups(std_diff < threshold)
    if n_chains == 1:
        notes.append("one chain only: modes cannot be compared between chains")

    group_of = np.empty(n_chains, dtype=int)
    for g, members in enumerate(groups):
        group_of[members] = g
    rows = []
    if len(groups) > 1:
        cross = group_of[:, None] != group_of[None, :]
        zc = np.where(cross[..., None], z, 0.0).max(axis=(0, 1))  # (P,)
        for p in np.flatnonzero(zc > threshold):
            row = {"parameter": labels[p], "std_diff": float(zc[p])}
            for g, members in enumerate(groups):
                row[f"mean_group{g}"] = float(arr[members, :, p].mean())
            rows.append(row)
    cols = ["parameter", "std_diff", *(f"mean_group{g}" for g in range(len(groups)))]
    separating = pd.DataFrame(rows, columns=cols)
    if len(separating):
        separating = separating.sort_values("std_diff", ascending=False, kind="stable")
        separating = separating.reset_index(drop=True)
    return ModeReport(
        groups=groups,
        std_diff=std_diff,
        separating=separating,
        threshold=float(threshold),
        n_parameters=n_par,
        notes=notes,
    )


# --------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------


def posterior_summaries(labels: list[str], draws: np.ndarray, hdi_prob: float) -> pd.DataFrame:
    """Posterior summaries of every scalar parameter.

    Parameters
    ----------
    labels : list of str
        Parameter names (the index).
    draws : array (chain, draw, parameter)
    hdi_prob : float
        Probability of the highest density interval.

    Returns
    -------
    pandas.DataFrame
        Index ``parameter``; columns mean, sd (ddof=1), hdi_low, hdi_high (arviz
        "nearest"), mcse_mean, r_hat (rank-normalised split; NaN for one chain), ess_bulk,
        ess_tail.
    """
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
    """Summaries of ``draws`` with the point estimates beside them.

    Parameters
    ----------
    labels : list of str
    draws : array (chain, draw, parameter)
    em_values : array (parameter,)
        The judged estimate (column ``em``).
    map_values : array (parameter,) or float
        A second estimate shown and not judged (column ``map``; NaN when there is none).
    hdi_prob : float

    Returns
    -------
    pandas.DataFrame
        Columns em, map, the :func:`posterior_summaries` columns, and
        ``z = (em - mean) / sd`` after hdi_high.
    """
    table = posterior_summaries(labels, draws, hdi_prob)
    table.insert(0, "em", em_values)
    table.insert(1, "map", map_values)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (table["em"] - table["mean"]) / table["sd"]
    table.insert(table.columns.get_loc("hdi_high") + 1, "z", z)
    return table


# --------------------------------------------------------------------------------------
# findings and verdict
# --------------------------------------------------------------------------------------


class LabelChecks(Protocol):
    """What the label checks read off a label report.

    :class:`bayesgmm.gmm.relabel.LabelReport` is one; a family without label switching
    passes no label report at all.

    Attributes
    ----------
    is_pure_permutation : bool
        Every chain has enough clean draws (``purity_threshold``).
    pure_fraction : ndarray (chain,)
        Fraction of clean draws per chain.
    within_chain_fraction : ndarray (chain,)
        Fraction of draws off the chain's labelling.
    """

    is_pure_permutation: bool
    pure_fraction: np.ndarray
    within_chain_fraction: np.ndarray


def judge_findings(
    table: pd.DataFrame,
    diagnostics: Mapping[str, Any],
    modes: ModeReport,
    thresholds: Thresholds,
    *,
    labels: LabelChecks | None = None,
    weights: np.ndarray | None = None,
) -> list[tuple[str, str]]:
    """Every finding of the verdict rules, most severe category first.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`point_vs_posterior_table`.
    diagnostics : dict
        From :func:`sampler_diagnostics`.
    modes : ModeReport
        From :func:`detect_modes`.
    thresholds : Thresholds
    labels : LabelChecks, optional
        A label report; None (a family without label switching) skips the label checks.
    weights : array (chain, draw, component), optional
        Mixture-weight draws for the empty-component check; None skips it.

    Returns
    -------
    list of (category, message)
        Categories are :data:`VERDICTS` and ``"note"`` (a check that could not be made),
        sorted most severe first, stably.
    """
    th = thresholds
    out: list[tuple[str, str]] = []
    # ambiguous
    if modes.multimodal:
        out.extend(("ambiguous", s) for s in modes.describe())
    if labels is not None:
        if not labels.is_pure_permutation:
            worst = int(np.argmin(labels.pure_fraction))
            out.append(
                (
                    "ambiguous",
                    f"label switching that relabelling cannot undo: only "
                    f"{labels.pure_fraction[worst]:.1%} of draws in chain {worst} have each "
                    f"component nearest a distinct EM component "
                    f"(required {th.purity_threshold:.0%})",
                )
            )
        within = np.asarray(labels.within_chain_fraction)
        if np.any(within > th.switch_max):
            worst = int(np.argmax(within))
            out.append(
                (
                    "ambiguous",
                    f"labels switch within chains (chain {worst}: {within[worst]:.1%} of draws "
                    f"off its labelling; allowed {th.switch_max:.0%}): the sampler crosses "
                    "between labellings through the region where components coincide, so the "
                    "data do not separate the components; consider fewer components, an "
                    "ordering constraint or stronger priors",
                )
            )
    if weights is not None:
        p_low = (np.asarray(weights) < th.weight_floor).mean(axis=(0, 1))
        for k in np.flatnonzero(p_low > th.weight_floor_mass):
            out.append(
                (
                    "ambiguous",
                    f"weights[{k}]: P(weight < {th.weight_floor:g}) = {p_low[k]:.2f} "
                    f"(> {th.weight_floor_mass:g}): component {k} may be empty",
                )
            )
    # sampler trouble
    n_tot = diagnostics["n_chains"] * diagnostics["n_draws"]
    if diagnostics["n_divergences"]:
        per = diagnostics["divergences_per_chain"]
        out.append(
            (
                "sampler trouble",
                f"{diagnostics['n_divergences']} divergent transitions "
                f"({diagnostics['n_divergences'] / n_tot:.1%} of {n_tot} draws; per chain {per})",
            )
        )
    rhat = table["r_hat"]
    bad = rhat[rhat > th.rhat_max]
    if len(bad):
        out.append(
            (
                "sampler trouble",
                f"r_hat > {th.rhat_max:g} for {len(bad)} parameter(s) "
                f"(max {bad.max():.3f} at {bad.idxmax()})",
            )
        )
    ess = table["ess_bulk"]
    if ess.notna().any() and ess.min() < th.ess_bulk_min:
        out.append(
            (
                "sampler trouble",
                f"min ess_bulk {ess.min():.0f} < {th.ess_bulk_min:g} (at {ess.idxmin()})",
            )
        )
    if diagnostics["bfmi"] is not None:
        for c, b in enumerate(diagnostics["bfmi"]):
            if b < th.bfmi_min:
                out.append(("sampler trouble", f"chain {c}: BFMI {b:.2f} < {th.bfmi_min:g}"))
    if diagnostics["treedepth_fraction"] is not None and (
        diagnostics["treedepth_fraction"] > th.treedepth_max_frac
    ):
        out.append(
            (
                "sampler trouble",
                f"maximum tree depth reached in {diagnostics['treedepth_hits']} draws "
                f"({diagnostics['treedepth_fraction']:.1%} > {th.treedepth_max_frac:.0%})",
            )
        )
    # disagree
    z = table["z"]
    far = z[z.abs() > th.z_max].abs().sort_values(ascending=False)
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
    if not diagnostics["has_sample_stats"]:
        out.append(("note", "no sample_stats group: divergences, tree depth, BFMI not checked"))
    order = {v: i for i, v in enumerate(reversed(VERDICTS))}
    return sorted(out, key=lambda f: order.get(f[0], len(order)))


def verdict_from_findings(
    findings: list[tuple[str, str]],
    table: pd.DataFrame,
    z_max: float,
    estimate: str,
    agree_note: str,
) -> tuple[str, list[str]]:
    """The most severe verdict among ``findings`` and the tagged reasons.

    Parameters
    ----------
    findings : list of (category, message)
        From :func:`judge_findings`; categories outside :data:`VERDICTS` (``"note"``)
        are reported and do not change the verdict.
    table : pandas.DataFrame
        From :func:`point_vs_posterior_table` (its ``z`` column explains an agreement).
    z_max : float
        The threshold on ``|z|``, quoted in the agreement.
    estimate : str
        Name of the judged estimate, quoted in the agreement.
    agree_note : str
        What else an agreement means, appended to it.

    Returns
    -------
    verdict : str
        One of :data:`VERDICTS`; "agree" when no finding has a verdict category.
    reasons : list of str
        ``"[category] message"`` per finding, an agreement explained first (the largest
        ``|z|`` of ``estimate`` and ``agree_note``).
    """
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


# --------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------


def diagnostics_line(diagnostics: Mapping[str, Any]) -> str:
    """One line of sampler diagnostics (from :func:`sampler_diagnostics`) for a report."""
    dg = diagnostics
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


def format_table(table: pd.DataFrame) -> str:
    """The table of :func:`point_vs_posterior_table` as text, each column to its precision."""
    fmts = {
        **{c: _sig for c in ("em", "map", "mean", "sd", "hdi_low", "hdi_high")},
        "z": lambda x: f"{x:.2f}",
        "mcse_mean": lambda x: _sig(x, 2),
        "r_hat": lambda x: f"{x:.3f}",
        "ess_bulk": lambda x: "nan" if not np.isfinite(x) else f"{x:.0f}",
        "ess_tail": lambda x: "nan" if not np.isfinite(x) else f"{x:.0f}",
    }
    return table.to_string(formatters={c: f for c, f in fmts.items() if c in table.columns})
