"""The GMM log-density in JAX: the fused numba kernel's density, for accelerators.

:func:`jax_gmm` builds, from a :class:`~bayesgmm.gmm.fast_logp.FastGMM` (that is, from a
model that :func:`~bayesgmm.gmm.model.build_gmm_model` built and nobody extended), a
``jax.jit``-compiled function ``x -> (log-density, gradient)`` of the *same* density as
:func:`bayesgmm.gmm.fast_logp.logp_grad` on the same unconstrained vector (PyMC's transforms
and Jacobians included), in float64.  :func:`compile_jax_gmm` hands it to nutpie's NUTS
sampler (``BayesGMM(sampler="nutpie-jax")``): nutpie's Rust sampler and adaptation, with
every gradient evaluated by XLA on JAX's default device.

Backends, and when to use which:

- ``"nutpie"`` (default): the numba kernel on the CPU, one core per chain; the fastest
  choice on a CPU at every N measured (BENCHMARKS.md).
- ``"nutpie-jax"``: this module.  On a CPU it is a third backend (XLA's CPU code, slower
  than numba's); on a GPU it is the one for N >= 1e6, where one gradient is a pass over
  millions of rows and the per-call overhead (a host/device round trip of a few
  microseconds plus the Python call) no longer counts.

How it computes.  The priors and transforms are written in ``jax.numpy`` as in the numba
kernel (simplex, ordered, log and Cholesky-correlation transforms; Dirichlet, Normal,
HalfNormal and LKJ priors); JAX differentiates them.  The likelihood, the pass over the
data, is one custom-VJP function: its forward pass returns, beside
sum_n log sum_k exp(base_k - |A_k x_n - b_k|^2 / 2), the sufficient statistics of its
gradient (sum_n rho_nk, sum_n rho_nk z_nk and sum_n rho_nk z_nk x_n^T, rho the
responsibilities), so the gradient costs no second pass and no stored (N, K, D)
intermediate (as in the numba kernel).  On a CPU the pass runs over chunks of
:data:`CPU_CHUNK` rows (a ``lax.scan``: the working set stays in cache); on an accelerator
it runs over all rows at once (``chunk=None``).

Importing this module imports JAX and switches on its float64 mode
(``jax_enable_x64``, process-wide: JAX has no per-function precision, and a float32
gradient would not be the same density).  JAX is an optional dependency:
``pip install "bayesgmm[jax]"`` (add a CUDA build of jaxlib for a GPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the JAX log-density (sampler='nutpie-jax') needs JAX: pip install 'bayesgmm[jax]'"
    ) from err

import pymc as pm

from bayesgmm.em.gaussian import LOG_2PI
from bayesgmm.gmm.fast_logp import FastGMM, KernelLayout, fast_gmm, kernel_layout

jax.config.update("jax_enable_x64", True)

__all__ = ["CPU_CHUNK", "JaxGMM", "compile_jax_gmm", "jax_gmm"]

#: rows per chunk of the likelihood pass on a CPU (on an accelerator: all rows at once)
CPU_CHUNK = 8192


# --------------------------------------------------------------------------------------
# priors and transforms: unconstrained x -> (prior log-density, log w, means, Cholesky)
# --------------------------------------------------------------------------------------


def _constrain(x, lay: KernelLayout):
    """As ``fast_logp._constrain``: the prior log-density with the transforms' Jacobians,
    and the log weights (K,), the means centred on ``lay.centre`` (K, D) and the
    components' Cholesky factors (K, D, D) at the unconstrained ``x``."""
    k, d, off = lay.k, lay.d, lay.offsets
    cov, j = lay.covariance_type, lay.order_feature
    lp = lay.const

    # weights: v = [u, -sum u], log w = v - lse(v); Dirichlet plus Jacobian: alpha log w
    u = x[off["weights"] : off["weights"] + k - 1]
    v = jnp.concatenate([u, -jnp.sum(u, keepdims=True)])
    logw = v - jax.nn.logsumexp(v)
    lp = lp + jnp.sum(lay.alpha * logw)

    # means; the ordered feature j: m_0 = y_0, m_i = m_{i-1} + exp(y_i)
    if j >= 0:
        y = x[off["means_ordered"] : off["means_ordered"] + k]
        steps = jnp.concatenate([y[:1], jnp.exp(y[1:])])
        ordered = jnp.cumsum(steps)
        lp = lp + jnp.sum(y[1:])
        if d > 1:
            free = x[off["means_free"] : off["means_free"] + k * (d - 1)].reshape(k, d - 1)
            mu = jnp.concatenate([free[:, :j], ordered[:, None], free[:, j:]], axis=1)
        else:
            mu = ordered[:, None]
    else:
        mu = x[off["means"] : off["means"] + k * d].reshape(k, d)
    lp = lp - 0.5 * jnp.sum(((mu - lay.mu0) / lay.s0) ** 2)
    mu = mu - lay.centre

    # sigmas: log transform, HalfNormal prior
    ns = {"full": k * d, "diag": k * d, "tied": d, "spherical": k}[cov]
    ys = x[off["sigmas"] : off["sigmas"] + ns]
    sig = jnp.exp(ys)
    scale = np.full(ns, lay.scale[0]) if cov == "spherical" else np.tile(lay.scale, ns // d)
    lp = lp + jnp.sum(ys - 0.5 * (sig / scale) ** 2)

    # Cholesky factors L = diag(sigmas) C; LKJ prior plus the Cholesky-correlation
    # Jacobian: -(2 eta - 1 + D) / 2 log(1 + |u_r|^2) per row r of each factor
    kc = 1 if cov == "tied" else k
    if off["chol_corr"] >= 0:
        m_corr = d * (d - 1) // 2
        corr = x[off["chol_corr"] : off["chol_corr"] + kc * m_corr].reshape(kc, m_corr)
        idx = lay.corr_index
        lower = idx >= 0
        unit = jnp.broadcast_to(np.eye(d), (kc, d, d))
        if m_corr:  # D > 1
            gathered = corr[:, np.where(lower, idx, 0)]  # (kc, D, D)
            unit = unit + jnp.where(lower, gathered, 0.0)
        rownorm2 = jnp.sum(unit * unit, axis=-1)  # (kc, D)
        lp = lp - 0.5 * (2.0 * lay.eta - 1.0 + d) * jnp.sum(jnp.log(rownorm2))
        chol = sig.reshape(kc, d)[:, :, None] * unit / jnp.sqrt(rownorm2)[:, :, None]
    elif cov == "spherical":
        chol = sig[:, None, None] * np.eye(d)
    else:  # diag, or tied with D = 1 (no correlation factor)
        chol = sig.reshape(kc, d)[:, :, None] * np.eye(d)
    if cov == "tied":
        chol = jnp.broadcast_to(chol, (k, d, d))
    return lp, logw, mu, chol


# --------------------------------------------------------------------------------------
# the likelihood pass, with its gradient from the forward pass's sufficient statistics
# --------------------------------------------------------------------------------------


def _chunk_stats(a, b, base, x, mask):
    """One chunk: sum_n mask_n lse_k(base_k - |a_k x_n - b_k|^2 / 2) and the gradient's
    sums (R (K,), Z (K, D), ZX (K, D, D)).  ``x`` (D, C), feature-major like the numba
    kernel's data (XLA vectorises along the rows; measured 1.8x faster on a CPU than
    row-major), ``mask`` (C,) in {0, 1}."""
    z = jnp.einsum("kde,ec->kdc", a, x) - b[:, :, None]  # (K, D, C)
    comp = base[:, None] - 0.5 * jnp.sum(z * z, axis=1)  # (K, C)
    cmax = jnp.max(comp, axis=0, keepdims=True)
    terms = jnp.exp(comp - cmax)
    tot = jnp.sum(terms, axis=0, keepdims=True)
    lse = cmax[0] + jnp.log(tot[0])
    rho = terms * (mask / tot)
    rz = rho[:, None, :] * z  # (K, D, C)
    return (
        jnp.sum(mask * lse),
        jnp.sum(rho, axis=1),
        jnp.sum(rz, axis=2),
        jnp.einsum("kdc,ec->kde", rz, x),
    )


def _pass_stats(a, b, base, xs, masks):
    """:func:`_chunk_stats` summed over the chunks of ``xs`` (C_n, D, C)."""
    if xs.shape[0] == 1:
        return _chunk_stats(a, b, base, xs[0], masks[0])

    def body(carry, chunk):
        out = _chunk_stats(a, b, base, *chunk)
        return tuple(c + o for c, o in zip(carry, out, strict=True)), None

    k, d = b.shape
    init = (jnp.zeros(()), jnp.zeros(k), jnp.zeros((k, d)), jnp.zeros((k, d, d)))
    totals, _ = jax.lax.scan(body, init, (xs, masks))
    return totals


@jax.custom_vjp
def _likelihood(a, b, base, xs, masks):
    return _pass_stats(a, b, base, xs, masks)[0]


def _likelihood_fwd(a, b, base, xs, masks):
    total, resp, zs, zx = _pass_stats(a, b, base, xs, masks)
    return total, (resp, zs, zx)


def _likelihood_bwd(residuals, g):
    resp, zs, zx = residuals
    # d/dA_k = -sum rho z x^T: only A's lower triangle is a parameter (A = L^-1)
    return -g * jnp.tril(zx), g * zs, g * resp, None, None


_likelihood.defvjp(_likelihood_fwd, _likelihood_bwd)


def _log_density(x, xs, masks, lay: KernelLayout):
    lp, logw, mu, chol = _constrain(x, lay)
    eye = jnp.broadcast_to(np.eye(lay.d), chol.shape)
    linv = solve_triangular(chol, eye, lower=True)  # (K, D, D)
    b = jnp.einsum("kde,ke->kd", linv, mu)
    logdet = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)
    base = logw - logdet - 0.5 * lay.d * LOG_2PI
    return lp + _likelihood(linv, b, base, xs, masks)


# --------------------------------------------------------------------------------------
# the user-facing object
# --------------------------------------------------------------------------------------


def _default_chunk() -> int | None:
    return CPU_CHUNK if jax.default_backend() == "cpu" else None


def _chunked(data: np.ndarray, chunk: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (N, D) as (C_n, D, C) feature-major chunks, the last padded with zero rows,
    and the mask (C_n, C)."""
    n, d = data.shape
    size = n if chunk is None or chunk >= n else int(chunk)
    n_chunks = -(-n // size)
    xs = np.zeros((n_chunks * size, d))
    xs[:n] = data
    mask = np.zeros(n_chunks * size)
    mask[:n] = 1.0
    xs = np.ascontiguousarray(xs.reshape(n_chunks, size, d).transpose(0, 2, 1))
    return xs, mask.reshape(n_chunks, size)


@dataclass(frozen=True)
class JaxGMM:
    """The JAX log-density of one built GMM model (see the module docstring).

    ``logp_dlogp(x)`` returns the log-density and its gradient at the unconstrained ``x``
    (nutpie's layout, as :meth:`FastGMM.logp_dlogp`) as a float and a float64 NumPy array;
    ``packed`` is the jitted JAX function behind it: ``(x, xs, masks) -> [logp, *grad]``
    (one array, so one transfer from the device per call), with the data already on the
    device in ``xs``/``masks``.
    """

    fast: FastGMM
    packed: object
    xs: object
    masks: object
    chunk: int | None

    def logp_dlogp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        out = np.asarray(self.packed(np.asarray(x, dtype=np.float64), self.xs, self.masks))
        return float(out[0]), out[1:]


def jax_gmm(model: pm.Model, *, chunk: int | str | None = "auto", device=None) -> JaxGMM | None:
    """The JAX log-density of ``model``, or None if the model is not exactly a
    :func:`~bayesgmm.gmm.model.build_gmm_model` model (as :func:`fast_gmm`) or has
    missing entries or measurement errors (which this density does not cover yet:
    ``sampler="nutpie-jax"`` then samples the PyTensor graph with nutpie's JAX backend).

    Parameters
    ----------
    model : pymc.Model
    chunk : int, None or "auto", default "auto"
        Rows per chunk of the likelihood pass; None: all rows at once; "auto":
        :data:`CPU_CHUNK` on a CPU, all rows on an accelerator.
    device : jax.Device, optional
        Where the data live and the density runs (default: JAX's default device).
    """
    fast = fast_gmm(model)
    if fast is None:
        return None
    lay = kernel_layout(fast)
    if not lay.complete:  # missing entries or measurement errors: not written in JAX yet
        return None
    if chunk == "auto":
        chunk = _default_chunk()
    elif chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int | np.integer)
                                or chunk < 1):  # fmt: skip
        raise ValueError(f"chunk must be a positive integer, None or 'auto', got {chunk!r}")
    xs, masks = _chunked(lay.data, chunk)
    xs, masks = jax.device_put(xs, device), jax.device_put(masks, device)
    def packed(x, xs, masks):
        value, grad = jax.value_and_grad(_log_density)(x, xs, masks, lay)
        return jnp.concatenate([value[None], grad])

    return JaxGMM(fast, jax.jit(packed), xs, masks, chunk)


def compile_jax_gmm(model: pm.Model, initial_point: Mapping[str, np.ndarray], **options):
    """A nutpie model (``nutpie.compiled_pyfunc.from_pyfunc``) that samples ``model`` with
    the JAX log-density and nutpie's NUTS, every chain starting at ``initial_point``
    (constrained free-RV values); None if ``model`` is not exactly a ``build_gmm_model``
    model (then use ``nutpie.compile_pymc_model(model, backend="jax")``).

    The draws carry the same variables, names and dims as the default sampler's (the
    constrained values are written by the numba kernels' ``expand``, as there).
    ``options`` go to :func:`jax_gmm`.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    from bayesgmm.gmm.fastnuts import nutpie_layout

    density = jax_gmm(model, **options)
    if density is None:
        return None
    fast = density.fast
    x0 = fast.to_unconstrained(initial_point)
    if x0.shape != (fast.n_dim,) or not np.all(np.isfinite(x0)):
        raise ValueError("initial_point is outside the support of the model")
    (names, _, shapes), dims, coords = nutpie_layout(model, fast)
    density.logp_dlogp(x0)  # compile now, not in the first chain

    def make_logp_fn():
        def logp(x, **_shared):
            return density.logp_dlogp(x)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **_shared):
            values = fast.expand(x)
            return {name: np.ascontiguousarray(values[name]) for name in names}

        return expand

    return from_pyfunc(
        ndim=fast.n_dim,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes,
        expanded_names=names,
        coords=coords,
        dims=dims,
        make_initial_point_fn=lambda seed: x0.copy(),
    )
