"""From a point estimate to a posterior: EM -> initial values -> MAP -> NUTS.

Family-neutral: used by the Bayesian GMM (:mod:`bayesgmm.gmm`) and by MPMA's cross-check.
nutpie is the default NUTS sampler.  A model family may pass ``compilers``, a mapping from
a sampler name to a function ``(model, start) -> compiled nutpie model or None`` that
recognises the family's own unmodified models and compiles a hand-written log-density for
them (the GMM's: :func:`bayesgmm.gmm.fastnuts.compile_fast_gmm` for ``"nutpie"``, numba,
and :func:`bayesgmm.gmm.jax_logp.compile_jax_gmm` for ``"nutpie-jax"``).  A model the
family's compiler declines, or one without a compiler, is compiled from its PyTensor graph
by nutpie: with its numba backend for ``"nutpie"`` and ``"nutpie-pytensor"``, with its JAX
backend for ``"nutpie-jax"``.  PyMC's own sampler (``sampler="pymc"``) is the fallback when
nutpie cannot compile the model (a warning says so).

Every chain starts at the MAP found from the EM estimate, without jitter. Mixture
posteriors are multimodal; starting all chains in the mode that EM found keeps them out
of minor modes and saddles (where a default start often lands), and the chains'
agreement is then checked, not assumed (see :mod:`bayesgmm.gmm.crosscheck`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import pymc as pm
import xarray as xr

__all__ = [
    "SAMPLERS",
    "find_map",
    "free_rv_point",
    "require_sampler",
    "sample_nuts",
]

SAMPLERS = ("nutpie", "nutpie-pytensor", "nutpie-jax", "pymc")


def free_rv_point(model: pm.Model, point: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The values of the model's free random variables (constrained space) from ``point``."""
    return {rv.name: np.asarray(point[rv.name]) for rv in model.free_RVs}


def find_map(
    model: pm.Model, initvals: Mapping[str, np.ndarray], *, seed: int | None = None
) -> dict[str, np.ndarray]:
    """Posterior mode (L-BFGS-B on the unconstrained space) started at ``initvals``.

    Returns the values of every named variable, deterministics included.
    """
    result = pm.find_MAP(
        initvals=dict(initvals),
        model=model,
        progressbar=False,
        random_seed=seed,
        jitter=False,
        return_inferencedata=True,
    )
    posterior = result["posterior"].to_dataset()
    return {name: posterior[name].values[0, 0] for name in posterior.data_vars}


def sample_nuts(
    model: pm.Model,
    initial_point: Mapping[str, np.ndarray],
    *,
    sampler: str = "nutpie",
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int | None = None,
    progressbar: bool = True,
    compilers: Mapping[str, Callable] | None = None,
) -> xr.DataTree:
    """Run NUTS from ``initial_point`` (free RV values, constrained space).

    ``sampler``: "nutpie" (``compilers["nutpie"]``'s log-density where it accepts the model,
    else as "nutpie-pytensor"), "nutpie-pytensor" (nutpie on the model's PyTensor graph,
    numba backend), "nutpie-jax" (``compilers["nutpie-jax"]``'s log-density where it accepts
    the model, else nutpie on the PyTensor graph with its JAX backend; needs JAX) or "pymc".

    Returns an ArviZ ``DataTree`` with ``posterior`` and ``sample_stats`` groups
    (warm-up draws are not kept).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    start = free_rv_point(model, initial_point)
    if sampler != "pymc":
        try:
            import nutpie

            compiled = _compile_nutpie(model, start, sampler, (compilers or {}).get(sampler))
        except ImportError:
            raise
        except Exception as err:
            warnings.warn(
                f"nutpie could not compile the model ({type(err).__name__}: {err}); "
                "falling back to PyMC's NUTS sampler",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            options = dict(
                draws=draws,
                tune=tune,
                chains=chains,
                seed=seed,
                progress_bar=progressbar,
                save_warmup=False,
            )
            try:
                return nutpie.sample(compiled, **options)
            except RuntimeError as err:
                if "initial gradient" not in str(err):
                    raise
                # nutpie refuses a start where a gradient coordinate is exactly 0 (e.g. the
                # weights of a MAP that splits the data into equal halves): move off it
                return nutpie.sample(_nudged(compiled), **options)
    return pm.sample(
        draws=draws,
        tune=tune,
        chains=chains,
        initvals=start,
        random_seed=seed,
        progressbar=progressbar,
        model=model,
        nuts_sampler="pymc",
        compute_convergence_checks=False,
    )


#: Relative size of the step that moves a start rejected by nutpie off its zero gradient.
START_NUDGE = 1e-8


def _nudged(compiled):
    """``compiled`` with its unconstrained start moved by ``START_NUDGE`` relative.

    nutpie (nuts-rs) rejects an initial point at which a coordinate of the gradient is
    exactly 0 ("bad initial gradient: Invalid initial point"); exact zeros happen at
    symmetric points, such as a MAP whose components hold the same number of points.
    The step (alternating signs) is far below any posterior scale, and no gradient
    coordinate is exactly 0 there.
    """
    # the field that holds the start: CompiledPyMCModel's, or from_pyfunc's PyFuncModel's
    field = "initial_point_func" if hasattr(compiled, "initial_point_func") else (
        "_make_initial_points"
    )
    start = getattr(compiled, field)

    def nudged(seed):
        x0 = np.asarray(start(seed), dtype=np.float64)
        signs = np.where(np.arange(x0.size) % 2 == 0, 1.0, -1.0)
        return x0 + START_NUDGE * (1.0 + np.abs(x0)) * signs

    return dataclasses.replace(compiled, **{field: nudged})


def _compile_nutpie(
    model: pm.Model, start: dict[str, np.ndarray], sampler: str, compiler: Callable | None
):
    import nutpie

    if compiler is not None:
        compiled = compiler(model, start)
        if compiled is not None:
            return compiled
    if sampler == "nutpie-jax":
        require_sampler(sampler)
        return nutpie.compile_pymc_model(
            model, initial_points=start, jitter_rvs=set(), backend="jax", gradient_backend="jax"
        )
    return nutpie.compile_pymc_model(model, initial_points=start, jitter_rvs=set(), backend="numba")


def require_sampler(sampler: str) -> None:
    """Raise :class:`ImportError`, with the fix, when ``sampler`` needs a library that is
    not installed (``"nutpie-jax"``: JAX).  Not a fallback: a user who asked for an
    accelerator backend should not silently get another."""
    import importlib.util

    if sampler == "nutpie-jax" and importlib.util.find_spec("jax") is None:
        raise ImportError("sampler='nutpie-jax' needs JAX: pip install 'bayesgmm[jax]'")
