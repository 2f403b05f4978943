"""Label switching of posterior draws of a Gaussian mixture, and its undoing.

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
Mode detection is family-neutral and lives in :mod:`bayesgmm.verdict`
(:func:`bayesgmm.verdict.detect_modes`); it works on draws relabelled here.

References
----------
- M. Stephens (2000). Dealing with label switching in mixture models. JRSS B 62(4), 795-809.
- J.-M. Marin, K. Mengersen & C. P. Robert (2005). Bayesian modelling and inference on
  mixtures of distributions. Handbook of Statistics 25, 459-507.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayesgmm.em.gaussian import COMPONENT_DIM
from bayesgmm.verdict import SAMPLE_DIMS, Thresholds

__all__ = [
    "LabelReport",
    "align_to_pivot",
    "detect_label_switching",
    "relabel",
]

#: Largest K for which all K! permutations are enumerated (vectorised over draws).
MAX_ENUMERATE_K = 6

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
    purity_threshold: float = Thresholds.purity_threshold

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
    purity_threshold: float = Thresholds.purity_threshold,
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
