"""Label switching and mode detection for posterior draws of a Gaussian mixture.

The mixture likelihood is invariant under permutations of the component labels, so an
MCMC posterior may visit the K! relabelled copies of a mode: different chains may settle
on different labellings (between-chain switching) and one chain may move between them
(within-chain switching).  Component-wise summaries are then meaningless until the draws
are relabelled.  This module implements *pivotal reordering* (Marin, Mengersen & Robert
2005, section 4; the decision-theoretic view is Stephens 2000): every draw is permuted so
that its component means best match those of a fixed pivot (here the EM/MAP estimate).

Conventions
-----------
- A permutation ``perm`` (length K) maps new labels to old ones: after relabelling,
  component ``j`` of a draw is the draw's original component ``perm[j]``
  (``new[..., j] = old[..., perm[j]]``).
- Matching cost of a draw: ``C[i, k] = sum_d ((pivot[i, d] - means[k, d]) / scale[d])**2``,
  the squared distance between pivot component ``i`` and the draw's component ``k`` in units
  of ``scale`` (the per-feature data standard deviation).  The best permutation minimises
  ``sum_j C[j, perm[j]]``; for K <= 6 all K! permutations are enumerated (vectorised over
  draws, ties go to the identity), otherwise the Hungarian algorithm
  (:func:`scipy.optimize.linear_sum_assignment`) is run per draw.

"Pure permutation" criterion
----------------------------
Relabelling can only undo label switching if every draw *is* a relabelled copy of the
pivot's configuration.  A draw is **clean** when, after relabelling, each component ``j``
lies closer (in the standardised distance above) to pivot component ``j`` than to any other
pivot component, i.e. the nearest-pivot map is a bijection and agrees with the optimal
permutation.  A draw in which two components sit near the same pivot component (and some
pivot component has none) is not clean: that is a different configuration, not a
relabelling.  The alignment is a *pure permutation* when, in every chain, the fraction of
clean draws is at least ``purity_threshold`` (default 0.95; a few unclean draws are
expected when components overlap).

Modes
-----
:func:`detect_modes` works on relabelled draws.  For each scalar parameter it compares the
per-chain means in units of the pooled within-chain standard deviation
``s = sqrt(mean over chains of the within-chain variance)``.  Chains ``i`` and ``j`` are
linked when ``max over parameters |mean_i - mean_j| / s < threshold`` (default 4); the
groups (modes) are the connected components of that graph.  For chains that sample the
same distribution the difference of two chain means is of order ``s * sqrt(2 / ESS)``,
so 4 within-chain sds only fires when chains sit in genuinely different places.

References
----------
- M. Stephens (2000). Dealing with label switching in mixture models. JRSS B 62(4), 795-809.
- J.-M. Marin, K. Mengersen & C. P. Robert (2005). Bayesian modelling and inference on
  mixtures of distributions. Handbook of Statistics 25, 459-507.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment

__all__ = [
    "COMPONENT_DIM",
    "LabelReport",
    "ModeReport",
    "align_to_pivot",
    "detect_label_switching",
    "detect_modes",
    "flatten_draws",
    "relabel",
]

#: Name of the mixture-component dimension.
COMPONENT_DIM = "component"
#: Sample dimensions of a posterior.
SAMPLE_DIMS = ("chain", "draw")
#: Largest K for which all K! permutations are enumerated (vectorised over draws).
MAX_ENUMERATE_K = 6
#: Default minimum fraction of clean draws per chain for a "pure permutation".
PURITY_THRESHOLD = 0.95
#: Default threshold (pooled within-chain sds) separating chains into different modes.
MODE_THRESHOLD = 4.0

_CHUNK_ELEMENTS = 2_000_000  # draws x permutations x K per vectorised chunk


# --------------------------------------------------------------------------------------
# alignment
# --------------------------------------------------------------------------------------


def _means_array(posterior: xr.Dataset, var: str, dim: str) -> tuple[np.ndarray, xr.DataArray]:
    """Return the means as a (chain, draw, K, D) float array and the original DataArray."""
    if var not in posterior:
        raise ValueError(f"The posterior has no variable {var!r} to align on.")
    da = posterior[var]
    missing = [d for d in (*SAMPLE_DIMS, dim) if d not in da.dims]
    if missing:
        raise ValueError(f"{var!r} must have dims (chain, draw, {dim}, ...); missing {missing}.")
    rest = [d for d in da.dims if d not in (*SAMPLE_DIMS, dim)]
    if len(rest) > 1:
        raise ValueError(f"{var!r} must have at most one feature dim besides {dim!r}: {da.dims}.")
    arr = np.asarray(da.transpose(*SAMPLE_DIMS, dim, *rest).values, dtype=np.float64)
    if not rest:
        arr = arr[..., None]
    return arr, da


def _check_pivot(pivot_means, scale, k: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    pivot = np.asarray(pivot_means, dtype=np.float64)
    if pivot.ndim == 1:
        pivot = pivot[:, None]
    if pivot.shape != (k, d):
        raise ValueError(
            f"pivot_means has shape {pivot.shape} but the posterior means are (K, D) = ({k}, {d})."
        )
    if scale is None:
        sc = np.ones(d)
    else:
        sc = np.broadcast_to(np.asarray(scale, dtype=np.float64), (d,)).copy()
    if not np.all(np.isfinite(sc)) or np.any(sc <= 0):
        raise ValueError(f"scale must be finite and > 0 per feature, got {sc}.")
    if not np.all(np.isfinite(pivot)):
        raise ValueError("pivot_means must be finite.")
    return pivot, sc


def _cost_matrices(means: np.ndarray, pivot: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(..., K pivot i, K draw k) standardised squared distances."""
    diff = (pivot[:, None, :] - means[..., None, :, :]) / scale
    return np.einsum("...ikd,...ikd->...ik", diff, diff)


def _best_permutations(cost: np.ndarray, method: str = "auto") -> np.ndarray:
    """Optimal assignment per draw: cost (N, K, K) -> perms (N, K) (new label -> old)."""
    n, k, _ = cost.shape
    if method not in ("auto", "enumerate", "hungarian"):
        raise ValueError(f"method must be 'auto', 'enumerate' or 'hungarian', got {method!r}.")
    if method == "enumerate" or (method == "auto" and k <= MAX_ENUMERATE_K):
        perms = np.array(list(itertools.permutations(range(k))), dtype=np.intp)  # identity first
        rows = np.arange(k)
        out = np.empty((n, k), dtype=np.intp)
        chunk = max(1, _CHUNK_ELEMENTS // (len(perms) * k))
        for start in range(0, n, chunk):
            c = cost[start : start + chunk]
            total = c[:, rows[None, :], perms].sum(axis=-1)  # (chunk, n_perms)
            out[start : start + chunk] = perms[np.argmin(total, axis=1)]
        return out
    out = np.empty((n, k), dtype=np.intp)
    for i in range(n):
        row, col = linear_sum_assignment(cost[i])
        out[i, row] = col
    return out


def _alignment(posterior, pivot_means, scale, var, dim, method):
    means, da = _means_array(posterior, var, dim)
    c, s, k, d = means.shape
    pivot, sc = _check_pivot(pivot_means, scale, k, d)
    cost = _cost_matrices(means, pivot, sc)  # (C, S, K, K)
    perms = _best_permutations(cost.reshape(c * s, k, k), method).reshape(c, s, k)
    coords = {n: da.coords[n] for n in (*SAMPLE_DIMS, dim) if n in da.coords}
    perm_da = xr.DataArray(perms, dims=(*SAMPLE_DIMS, dim), coords=coords, name="permutation")
    return perm_da, cost


def align_to_pivot(
    posterior: xr.Dataset,
    pivot_means: np.ndarray,
    scale: np.ndarray | None = None,
    *,
    var: str = "means",
    dim: str = COMPONENT_DIM,
    method: str = "auto",
) -> xr.DataArray:
    """Best permutation of every draw's components onto the pivot (pivotal reordering).

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws with ``var`` of dims (chain, draw, component[, feature]).
    pivot_means : array (K, D) or (K,)
        Component means of the pivot (e.g. the EM estimate).
    scale : array (D,) or scalar, optional
        Per-feature scale (the data standard deviation) standardising the distances;
        default 1.
    var, dim : str
        Variable holding the component means and the component dimension.
    method : {"auto", "enumerate", "hungarian"}
        "auto" enumerates the K! permutations for K <= 6, else runs the Hungarian
        algorithm per draw.

    Returns
    -------
    xarray.DataArray of int, dims (chain, draw, component)
        ``perm[c, s, j]`` is the original label of the component that becomes ``j``.
    """
    perm, _ = _alignment(posterior, pivot_means, scale, var, dim, method)
    return perm


def relabel(
    posterior: xr.Dataset, permutations: xr.DataArray, *, dim: str = COMPONENT_DIM
) -> xr.Dataset:
    """Apply per-draw permutations along ``dim`` to every variable that has that dim.

    ``new[c, s, ..., j, ...] = old[c, s, ..., perm[c, s, j], ...]``.  Variables without
    ``dim`` (and variables with ``dim`` but no chain/draw dims) are returned unchanged;
    dim order, coords and attributes are preserved.
    """
    perm_dims = tuple(permutations.dims)
    if set(perm_dims) != {*SAMPLE_DIMS, dim}:
        raise ValueError(f"permutations must have dims (chain, draw, {dim}), got {perm_dims}.")
    perm = np.asarray(permutations.transpose(*SAMPLE_DIMS, dim).values)
    k = perm.shape[-1]
    if not np.array_equal(np.sort(perm, axis=-1), np.broadcast_to(np.arange(k), perm.shape)):
        raise ValueError("permutations must hold a permutation of 0..K-1 in every draw.")
    new_vars = {}
    for name, da in posterior.data_vars.items():
        if dim not in da.dims or not all(d in da.dims for d in SAMPLE_DIMS):
            continue
        if da.sizes[dim] != k:
            raise ValueError(f"{name!r} has {da.sizes[dim]} components, permutations have {k}.")
        if da.sizes["chain"] != perm.shape[0] or da.sizes["draw"] != perm.shape[1]:
            raise ValueError(f"{name!r} and permutations differ in their (chain, draw) sizes.")
        rest = [d for d in da.dims if d not in (*SAMPLE_DIMS, dim)]
        arr = da.transpose(*SAMPLE_DIMS, dim, *rest).values
        idx = perm.reshape(perm.shape + (1,) * len(rest))
        moved = np.take_along_axis(arr, idx, axis=2)
        new = da.transpose(*SAMPLE_DIMS, dim, *rest).copy(data=moved).transpose(*da.dims)
        new_vars[name] = new
    return posterior.assign(new_vars)


# --------------------------------------------------------------------------------------
# label switching report
# --------------------------------------------------------------------------------------


def _fmt_perm(perm: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(p)) for p in perm) + ")"


@dataclass
class LabelReport:
    """What the pivotal alignment found and did, per chain.

    Attributes
    ----------
    permutations : xarray.DataArray (chain, draw, component)
        Best permutation of every draw (new label -> old label, see module docstring).
    chain_permutations : list of tuple
        Most frequent permutation of each chain.
    switched_fraction : ndarray (chain,)
        Fraction of draws whose best permutation is not the identity.
    within_chain_fraction : ndarray (chain,)
        Fraction of draws whose best permutation differs from the chain's most frequent one.
    pure_fraction : ndarray (chain,)
        Fraction of clean draws (each relabelled component nearest its own pivot component).
    mean_match_cost : ndarray (chain,)
        Mean over draws of the matched standardised squared distance per component.
    between_chain_switch : bool
        Chains settled on different permutations.
    within_chain_switch : bool
        At least one chain changes permutation between draws.
    is_pure_permutation : bool
        Every chain has ``pure_fraction >= purity_threshold``.
    purity_threshold : float
    """

    permutations: xr.DataArray
    chain_permutations: list[tuple[int, ...]]
    switched_fraction: np.ndarray
    within_chain_fraction: np.ndarray
    pure_fraction: np.ndarray
    mean_match_cost: np.ndarray
    between_chain_switch: bool
    within_chain_switch: bool
    is_pure_permutation: bool
    purity_threshold: float = PURITY_THRESHOLD

    @property
    def n_chains(self) -> int:
        return int(self.permutations.sizes["chain"])

    @property
    def relabelled(self) -> bool:
        """True when at least one draw was permuted (relabelling changed something)."""
        return bool(np.any(self.switched_fraction > 0))

    def describe(self) -> list[str]:
        """One line per finding, with numbers."""
        k = self.permutations.sizes[COMPONENT_DIM]
        identity = tuple(range(k))
        lines = []
        if not self.relabelled:
            lines.append("no relabelling needed: every draw already matches the pivot labels")
        else:
            for c in range(self.n_chains):
                frac = float(self.switched_fraction[c])
                if frac == 0:
                    continue
                modal = self.chain_permutations[c]
                if modal != identity:
                    mf = self.modal_fraction(c)
                    lines.append(
                        f"chain {c}: relabelled with permutation {_fmt_perm(modal)} "
                        f"(new component j = old component perm[j]) in {mf:.1%} of draws"
                        + ("" if np.isclose(mf, frac) else f"; {frac:.1%} of draws permuted in all")
                    )
                else:
                    lines.append(f"chain {c}: {frac:.1%} of draws relabelled")
            if self.between_chain_switch:
                perms = ", ".join(_fmt_perm(p) for p in self.chain_permutations)
                lines.append(f"between-chain label switching: chains settled on {perms}")
            if self.within_chain_switch:
                parts = ", ".join(
                    f"chain {c} {f:.1%}" for c, f in enumerate(self.within_chain_fraction) if f > 0
                )
                lines.append(
                    f"within-chain label switching (draws off the chain's labelling): {parts}"
                )
        worst = int(np.argmin(self.pure_fraction))
        if self.is_pure_permutation:
            lines.append(
                f"alignment is a pure permutation: >= {self.pure_fraction.min():.1%} of draws "
                f"per chain have each component nearest a distinct pivot component "
                f"(required {self.purity_threshold:.0%})"
            )
        else:
            lines.append(
                f"alignment is NOT a pure permutation: only {self.pure_fraction[worst]:.1%} of "
                f"draws in chain {worst} have each component nearest a distinct pivot component "
                f"(required {self.purity_threshold:.0%}; mean matched cost "
                f"{self.mean_match_cost[worst]:.3g} sd^2 per component)"
            )
        return lines

    def modal_fraction(self, chain: int) -> float:
        perm = np.asarray(self.permutations.isel(chain=chain).transpose("draw", COMPONENT_DIM))
        return float(np.mean(np.all(perm == np.asarray(self.chain_permutations[chain]), axis=1)))

    def __str__(self) -> str:
        return "\n".join(self.describe())


def detect_label_switching(
    posterior: xr.Dataset,
    pivot_means: np.ndarray,
    scale: np.ndarray | None = None,
    *,
    purity_threshold: float = PURITY_THRESHOLD,
    var: str = "means",
    dim: str = COMPONENT_DIM,
    method: str = "auto",
) -> LabelReport:
    """Align the draws to the pivot and report label switching (see module docstring).

    Returns a :class:`LabelReport` whose ``permutations`` can be passed to :func:`relabel`.
    """
    perm_da, cost = _alignment(posterior, pivot_means, scale, var, dim, method)
    perms = np.asarray(perm_da.values)  # (C, S, K)
    c, s, k = perms.shape
    identity = np.arange(k)
    switched = np.mean(np.any(perms != identity, axis=-1), axis=1)

    chain_perms: list[tuple[int, ...]] = []
    within = np.empty(c)
    for ci in range(c):
        uniq, counts = np.unique(perms[ci], axis=0, return_counts=True)
        # most frequent; ties resolved towards the identity then lexicographically
        order = sorted(
            range(len(uniq)), key=lambda i: (-counts[i], not np.array_equal(uniq[i], identity))
        )
        modal = uniq[order[0]]
        chain_perms.append(tuple(int(x) for x in modal))
        within[ci] = np.mean(np.any(perms[ci] != modal, axis=-1))

    # relabelled cost: cr[..., i, j] = cost[..., i, perm[j]]
    idx = np.broadcast_to(perms[..., None, :], (c, s, k, k))
    cr = np.take_along_axis(cost, idx, axis=-1)
    nearest = np.argmin(cr, axis=-2)  # (C, S, K): nearest pivot of each relabelled component
    clean = np.all(nearest == identity, axis=-1)
    pure = clean.mean(axis=1)
    match_cost = np.trace(cr, axis1=-2, axis2=-1).mean(axis=1) / k

    return LabelReport(
        permutations=perm_da,
        chain_permutations=chain_perms,
        switched_fraction=switched,
        within_chain_fraction=within,
        pure_fraction=pure,
        mean_match_cost=match_cost,
        between_chain_switch=len(set(chain_perms)) > 1,
        within_chain_switch=bool(np.any(within > 0)),
        is_pure_permutation=bool(np.all(pure >= purity_threshold)),
        purity_threshold=float(purity_threshold),
    )


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
    """Chains grouped by the mode they sit in (see module docstring).

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
    """

    groups: list[list[int]]
    std_diff: np.ndarray
    separating: pd.DataFrame
    threshold: float = MODE_THRESHOLD
    n_parameters: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_modes(self) -> int:
        return len(self.groups)

    @property
    def multimodal(self) -> bool:
        return len(self.groups) > 1

    def describe(self, max_params: int = 3) -> list[str]:
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
    threshold: float = MODE_THRESHOLD,
) -> ModeReport:
    """Group chains by mode, on draws already relabelled with :func:`relabel`.

    Every scalar parameter of ``var_names`` (default: all numeric variables with chain and
    draw dims; or a flat (chain, draw, parameter) DataArray) is compared across chains:
    ``z_ij = |mean_i - mean_j| / s`` with ``s`` the pooled within-chain sd.  Chains are in
    the same mode when linked by a path of pairs with ``max_p z_ij < threshold``.
    Parameters that are constant within every chain count only if their value differs
    between chains (then ``z = inf``).
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
