"""nutpie on the hand-written GMM log-density: no PyTensor compilation at sampling time.

:func:`compile_fast_gmm` wraps the numba kernels of :mod:`bayesgmm.gmm.fast_logp` in
the C callbacks that nutpie's Rust sampler calls for a PyMC model (the same signatures
that ``nutpie.compile_pymc_model(..., backend="numba")`` produces), so sampling runs on
all cores without the GIL and returns the same posterior variables, names and dims as
the PyMC path.  The callbacks are compiled with numba ``cache=True``, once per machine.

nutpie has no public interface for C callbacks (its public ``nutpie.compile_pymc_model``
compiles the PyTensor graph; a Python callback per gradient would hold the GIL), so this
module, and only this module, builds nutpie's ``CompiledPyMCModel`` by hand with
``nutpie.compile_pymc._prepare_dims_and_coords``.  Those internals were checked against the
nutpie release series in :data:`NUTPIE_CHECKED`; under any other version (or if the
internals are gone) :func:`compile_fast_gmm` warns and returns None, so the sampler falls
back to nutpie on the PyTensor graph rather than risk sampling with a wrong layout.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping

import numba
import numpy as np
import nutpie
import pymc as pm

try:  # nutpie internals: see the module docstring
    from nutpie.compile_pymc import CompiledPyMCModel, _prepare_dims_and_coords
except ImportError:  # pragma: no cover - depends on the installed nutpie
    CompiledPyMCModel = _prepare_dims_and_coords = None

from bayesgmm.gmm.fast_logp import (
    FastGMM,
    expand,
    fast_gmm,
    logp_grad,
    logp_grad_incomplete,
    logp_grad_threads,
    thread_chunks,
)

__all__ = ["NUTPIE_CHECKED", "compile_fast_gmm", "nutpie_internals_checked", "nutpie_layout"]

#: nutpie release series (major.minor) whose internals this module was checked against.
NUTPIE_CHECKED = ("0.16",)


def nutpie_internals_checked(version: str | None = None) -> bool:
    """Whether nutpie ``version`` (default: the installed one) belongs to a release series in
    :data:`NUTPIE_CHECKED` and its internals used here are importable."""
    version = nutpie.__version__ if version is None else version
    series = ".".join(str(version).split(".")[:2])
    return series in NUTPIE_CHECKED and CompiledPyMCModel is not None


_LOGP_SIG = numba.types.int64(
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)
_EXPAND_SIG = numba.types.int64(
    numba.types.uint64,
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)


#: numba's cache keys a compiled function on the stamp of its own source file, not on the
#: functions it calls: the callbacks below, cached from this file, would keep calling an old
#: build of the kernels of ``fast_logp``.  Bump this when those kernels change.
#: 2: rows with missing entries and with measurement errors (issue 16); 3: one factor
#: routine for both; 4: complete-data and incomplete kernels apart (logp_grad_incomplete).
_KERNEL_REVISION = 4


@numba.njit(cache=True)
def _buffer(user_data):
    size = int(numba.carray(user_data, (1,), np.float64)[0])
    return numba.carray(user_data, (size,), np.float64)


@numba.cfunc(_LOGP_SIG, cache=True, error_model="numpy")
def _logp_cfunc(dim, x_, out_, logp_, user_data):
    """nutpie's logp callback: 0 ok, 3 non-finite gradient, 4 non-finite log-density."""
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    logp[0] = logp_grad(x, out, _buffer(user_data))
    if not np.all(np.isfinite(out)):
        return 3
    if not np.isfinite(logp[0]):
        return 4
    return 0


@functools.cache
def _incomplete_logp_cfunc():
    """The logp callback on :func:`logp_grad_incomplete` (rows with missing entries or
    measurement errors), compiled (or loaded from the cache) on first use only: a complete
    model's first fit does not pay for those passes."""

    @numba.cfunc(_LOGP_SIG, cache=True, error_model="numpy")
    def _logp_cfunc_incomplete(dim, x_, out_, logp_, user_data):
        x = numba.carray(x_, (dim,))
        out = numba.carray(out_, (dim,))
        logp = numba.carray(logp_, (1,))
        logp[0] = logp_grad_incomplete(x, out, _buffer(user_data))
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp[0]):
            return 4
        return 0

    return _logp_cfunc_incomplete


@functools.cache
def _threaded_logp_cfunc():
    """The logp callback on :func:`logp_grad_threads`, compiled (or loaded from the cache)
    on first use, after numba's threading layer has started: None when that layer is not
    thread-safe (``workqueue``: nutpie calls the callback from every chain's thread)."""
    layer = numba.threading_layer()  # raises ValueError before any parallel call
    if layer not in ("omp", "tbb"):
        return None

    @numba.cfunc(_LOGP_SIG, cache=True, error_model="numpy")
    def _logp_cfunc_threads(dim, x_, out_, logp_, user_data):
        x = numba.carray(x_, (dim,))
        out = numba.carray(out_, (dim,))
        logp = numba.carray(logp_, (1,))
        logp[0] = logp_grad_threads(x, out, _buffer(user_data))
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp[0]):
            return 4
        return 0

    return _logp_cfunc_threads


def _logp_callback(fast, x0: np.ndarray, threads: bool):
    """The serial callback, or the threaded one when asked for, useful (two chunks of data
    or more) and safe."""
    serial = _incomplete_logp_cfunc() if fast.incomplete else _logp_cfunc
    if not threads or thread_chunks(fast.buf) < 2:
        return serial
    logp_grad_threads(x0, np.empty(fast.n_dim), fast.buf)  # starts the threading layer
    cfunc = _threaded_logp_cfunc()
    if cfunc is None:
        warnings.warn(
            f"threads=True needs numba's 'omp' or 'tbb' threading layer, not "
            f"'{numba.threading_layer()}'; sampling with one thread per chain",
            RuntimeWarning,
            stacklevel=3,
        )
        return serial
    return cfunc


@numba.cfunc(_EXPAND_SIG, cache=True, error_model="numpy")
def _expand_cfunc(dim, n_expanded, x_, out_, user_data):
    expand(numba.carray(x_, (dim,)), numba.carray(out_, (n_expanded,)), _buffer(user_data))
    return 0


def nutpie_layout(model: pm.Model, fast: FastGMM) -> tuple[tuple, dict, dict]:
    """The draws' layout for nutpie: ``((names, slices, shapes), dims, coords)`` of the
    unconstrained values followed by ``fast.expanded``, in the order :func:`expand` writes
    them, with the model's dims and coords (so the posterior has the PyMC path's names)."""
    names = [*fast.value_names, *(name for name, _ in fast.expanded)]
    shapes = [*fast.value_shapes, *(shape for _, shape in fast.expanded)]
    sizes = [int(np.prod(s)) for s in shapes]
    ends = np.cumsum(sizes)
    slices = [slice(int(e - s), int(e)) for s, e in zip(sizes, ends, strict=True)]
    shape_info = (names, slices, shapes)
    dims, coords = _prepare_dims_and_coords(model, shape_info, fast.value_names)
    return shape_info, dims, coords


def compile_fast_gmm(
    model: pm.Model, initial_point: Mapping[str, np.ndarray], threads: bool = False
) -> CompiledPyMCModel | None:
    """A nutpie compiled model of ``model`` on the fused numba log-density.

    Parameters
    ----------
    model : pymc.Model
        A model from :func:`bayesgmm.gmm.model.build_gmm_model`, unmodified.
    initial_point : dict
        Constrained values of the free random variables; every chain starts there.
    threads : bool, default False
        Split each log-density evaluation over numba's threads (``NUMBA_NUM_THREADS``),
        for fewer chains than cores on large data (N >= 8192; below that, and with numba's
        ``workqueue`` threading layer, which is not thread-safe, it is ignored, the latter
        with a warning).  With as many chains as cores it only adds overhead.

    Returns
    -------
    nutpie CompiledPyMCModel, or None when the model is not exactly a
    ``build_gmm_model`` model (then use ``nutpie.compile_pymc_model``).
    """
    fast = fast_gmm(model)
    if fast is None:
        return None
    if not nutpie_internals_checked():
        warnings.warn(
            f"nutpie {nutpie.__version__} is not a release series the fused GMM sampler was "
            f"checked against ({', '.join(NUTPIE_CHECKED)}): sampling on the PyTensor graph "
            "instead (slower, same posterior); install a checked nutpie for the fast path",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    x0 = fast.to_unconstrained(initial_point)
    if x0.shape != (fast.n_dim,) or not np.all(np.isfinite(x0)):
        raise ValueError("initial_point is outside the support of the model")
    shape_info, dims, coords = nutpie_layout(model, fast)
    names, slices, shapes = shape_info
    return CompiledPyMCModel(
        compiled_logp_func=_logp_callback(fast, x0, threads),
        compiled_expand_func=_expand_cfunc,
        initial_point_func=lambda seed: x0.copy(),
        shared_data={},
        shared_var_keys={},
        user_data=fast.buf,
        n_expanded=slices[-1].stop,
        shape_info=shape_info,
        logp_func=None,
        expand_func=None,
        _n_dim=fast.n_dim,
        _shapes=dict(zip(names, shapes, strict=True)),
        _coords=coords,
        dims=dims,
        reparameterized_names=[n for n in fast.value_names if n.endswith("__")],
    )
