"""NUTS on the marginalised Gaussian mixture: bayesgmm against PyMC, NumPyro and Stan.

Every sampler runs in one process on the same data, with the same priors (bayesgmm's
data-scaled defaults, "full" covariances), the same number of chains, warm-up and kept
draws, and every chain starts at the same EM estimate.  Printed per sampler and case:

- ``total``: wall time of model building, compilation and sampling;
- ``sample``: wall time of sampling alone (warm-up included);
- ``min ESS``: the smallest bulk ESS over weights, means and standard deviations
  (components sorted by the first mean coordinate in every draw, so that unordered
  formulations are comparable);
- ``ESS/s``: min ESS / total, and min ESS / sample;
- ``R-hat``: the largest over the same parameters; ``1 mode``: whether all chains sit in
  one mode (:func:`bayesgmm.verdict.detect_modes`);
- ``grad/s``: leapfrog steps (gradient evaluations, warm-up included) per sampling second;
  ``obs-grad/s``: the same times N, observation-gradients per second over the machine.

Samplers (``--peers``): ``bayesgmm`` (default path: nutpie on the fused numba
log-density), ``bayesgmm-pytensor`` (nutpie on the PyMC graph of the same model),
``bayesgmm-jax`` (nutpie on the JAX log-density of the same model, ``sampler="nutpie-jax"``),
``pymc`` and ``pymc-nutpie`` (the plain formulation ``pm.Mixture`` of ``pm.MvNormal`` with
per-component ``LKJCholeskyCov``, with PyMC's sampler / nutpie), ``numpyro``, ``stan``
(pystan).  A peer that is not installed or fails is skipped with the reason printed.

    python benchmarks/nuts_gmm.py                       # all cases, all peers
    python benchmarks/nuts_gmm.py --quick               # small draws, two cases
    python benchmarks/nuts_gmm.py --scaling             # cost against N, K and D
    python benchmarks/nuts_gmm.py --cases n1000 --peers bayesgmm,stan
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

# NumPyro runs chains in parallel only over several (host) devices; set before jax loads
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np

from bayesgmm import GaussianMixture
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.gmm.model import build_gmm_model, default_gmm_priors, initial_values_from_em
from bayesgmm.verdict import detect_modes

PEERS = ("bayesgmm", "bayesgmm-pytensor", "bayesgmm-jax", "pymc", "pymc-nutpie", "numpyro", "stan")


@dataclass
class Case:
    name: str
    X: np.ndarray
    k: int


def make_case(name: str) -> Case:
    """``n1000``/``n10000``/``n100000`` (K=3, D=2), ``k4d5`` (N=2000), ``faithful`` (K=2),
    or ``nN-kK-dD`` for the scaling table."""
    fixed = {"n1000": (1000, 3, 2), "n10000": (10_000, 3, 2), "k4d5": (2000, 4, 5)}
    if name == "faithful":
        return Case(name, load_faithful().to_numpy(dtype=np.float64), 2)
    if name in fixed:
        n, k, d = fixed[name]
    else:
        n, k, d = (int(part[1:]) for part in name.split("-"))
    return Case(name, make_mixture(n, k, d, separation=3.0, seed=0).X, k)


CASES = ("n1000", "n10000", "k4d5", "faithful")
QUICK_CASES = ("n1000", "faithful")
SCALING = (
    "n1000-k3-d2",
    "n10000-k3-d2",
    "n100000-k3-d2",
    "n2000-k2-d2",
    "n2000-k4-d2",
    "n2000-k8-d2",
    "n2000-k3-d5",
    "n2000-k3-d10",
)


@dataclass
class Run:
    """Draws (chain, draw, ...) of weights (K), means (K, D) and sds (K, D)."""

    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray
    n_grad: int
    t_build: float
    t_sample: float


def em_start(case: Case) -> dict[str, np.ndarray]:
    """EM estimate (components sorted by the first mean coordinate): every chain's start."""
    em = GaussianMixture(case.k, n_init=3, random_state=0).fit(case.X)
    order = np.argsort(em.means_[:, 0])
    cov = em.covariances_[order]
    sig = np.sqrt(np.einsum("kii->ki", cov))
    return {
        "weights": em.weights_[order],
        "means": em.means_[order],
        "sigmas": sig,
        "chol": np.linalg.cholesky(cov),
        "chol_corr": np.linalg.cholesky(cov) / sig[:, :, None],
    }


# --------------------------------------------------------------------------------------
# samplers; each returns a Run
# --------------------------------------------------------------------------------------


def run_bayesgmm(case, start, chains, draws, tune, seed, fast=True, jax=False) -> Run:
    import nutpie

    from bayesgmm.gmm.fastnuts import compile_fast_gmm

    t0 = time.perf_counter()
    model = build_gmm_model(case.X, n_components=case.k)
    init = initial_values_from_em(
        model, start["weights"], start["means"], start["chol"] @ start["chol"].mT, "full"
    )
    init = {rv.name: init[rv.name] for rv in model.free_RVs}
    if jax:
        from bayesgmm.gmm.jax_logp import compile_jax_gmm

        compiled = compile_jax_gmm(model, init)
    elif fast:
        compiled = compile_fast_gmm(model, init)
    else:
        compiled = nutpie.compile_pymc_model(
            model, initial_points=init, jitter_rvs=set(), backend="numba"
        )
    return _nutpie_run(compiled, chains, draws, tune, seed, t0, "means", "sigmas")


def run_bayesgmm_pytensor(case, start, chains, draws, tune, seed) -> Run:
    return run_bayesgmm(case, start, chains, draws, tune, seed, fast=False)


def run_bayesgmm_jax(case, start, chains, draws, tune, seed) -> Run:
    return run_bayesgmm(case, start, chains, draws, tune, seed, jax=True)


def _nutpie_run(compiled, chains, draws, tune, seed, t0, means, sigmas) -> Run:
    import nutpie

    t1 = time.perf_counter()
    trace = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progress_bar=False,
        save_warmup=True,
    )
    t2 = time.perf_counter()
    post = trace["posterior"].to_dataset()  # warm-up draws are in "warmup_posterior"
    n_grad = int(trace["sample_stats"]["n_steps"].sum()) + int(
        trace["warmup_sample_stats"]["n_steps"].sum()
    )
    return Run(
        post["weights"].values,
        post[means].values,
        _sigmas(post, sigmas),
        n_grad,
        t1 - t0,
        t2 - t1,
    )


def _sigmas(post, name):
    if name in post:
        return post[name].values
    k = len([v for v in post.data_vars if v.startswith("chol") and v.endswith("_stds")])
    return np.stack([post[f"chol{c}_stds"].values for c in range(k)], axis=2)


def plain_pymc_model(X, k):
    """The plain formulation: pm.Mixture of pm.MvNormal, LKJCholeskyCov per component."""
    import pymc as pm

    pri = default_gmm_priors(X)
    d = X.shape[1]
    with pm.Model() as model:
        w = pm.Dirichlet("weights", a=np.full(k, pri["weights_alpha"]))
        mu = pm.Normal("means", pri["means_mu"], pri["means_sigma"], shape=(k, d))
        comps = []
        for c in range(k):
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol{c}",
                n=d,
                eta=pri["lkj_eta"],
                sd_dist=pm.HalfNormal.dist(pri["sigma_scale"], shape=d),
            )
            comps.append(pm.MvNormal.dist(mu[c], chol=chol))
        pm.Mixture("x", w=w, comp_dists=comps, observed=X)
    return model


def _plain_init(model, start) -> dict[str, np.ndarray]:
    init = {"weights": start["weights"], "means": start["means"]}
    rows, cols = np.tril_indices(start["chol"].shape[-1])
    for c, chol in enumerate(start["chol"]):
        init[f"chol{c}"] = chol[rows, cols]
    return init


def run_pymc(case, start, chains, draws, tune, seed, nutpie_backend=False) -> Run:
    import pymc as pm

    t0 = time.perf_counter()
    model = plain_pymc_model(case.X, case.k)
    init = _plain_init(model, start)
    if nutpie_backend:
        import nutpie

        compiled = nutpie.compile_pymc_model(
            model, initial_points=init, jitter_rvs=set(), backend="numba"
        )
        return _nutpie_run(compiled, chains, draws, tune, seed, t0, "means", "")
    with model:
        # PyMC compiles inside pm.sample; its compile time is included in "sample"
        t1 = time.perf_counter()
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            initvals=init,
            init="adapt_diag",  # start at the EM estimate, as every other sampler does
            cores=min(chains, os.cpu_count() or 1),
            random_seed=seed,
            progressbar=False,
            discard_tuned_samples=False,
            compute_convergence_checks=False,
            nuts_sampler="pymc",  # PyMC >= 6 would pick nutpie when it is installed
        )
    t2 = time.perf_counter()
    post = idata["posterior"].to_dataset()  # warm-up draws are in "warmup_posterior"
    n_grad = int(idata["sample_stats"]["n_steps"].sum()) + int(
        idata["warmup_sample_stats"]["n_steps"].sum()
    )
    return Run(
        post["weights"].values, post["means"].values, _sigmas(post, ""), n_grad, t1 - t0, t2 - t1
    )


def run_pymc_nutpie(case, start, chains, draws, tune, seed) -> Run:
    return run_pymc(case, start, chains, draws, tune, seed, nutpie_backend=True)


def ordered_init(start) -> dict[str, np.ndarray]:
    """The EM start in the ordered parametrisation of the NumPyro and Stan models: the
    first mean coordinate (``first``, ordered) apart from the rest."""
    return {
        "weights": start["weights"],
        "first": start["means"][:, 0],
        "rest": start["means"][:, 1:],
        "sigmas": start["sigmas"],
        "chol_corr": start["chol_corr"],
    }


def run_numpyro(case, start, chains, draws, tune, seed) -> Run:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS, init_to_value

    jax.config.update("jax_enable_x64", True)
    pri = default_gmm_priors(case.X)
    k, d = case.k, case.X.shape[1]

    def model(X):
        w = numpyro.sample("weights", dist.Dirichlet(jnp.full(k, pri["weights_alpha"])))
        first = numpyro.sample(
            "first", dist.ImproperUniform(dist.constraints.ordered_vector, (), (k,))
        )
        numpyro.factor(
            "first_prior",
            dist.Normal(pri["means_mu"][0], pri["means_sigma"][0]).log_prob(first).sum(),
        )
        rest = numpyro.sample(
            "rest", dist.Normal(pri["means_mu"][1:], pri["means_sigma"][1:]).expand([k, d - 1])
        )
        means = numpyro.deterministic("means", jnp.concatenate([first[:, None], rest], axis=1))
        sig = numpyro.sample("sigmas", dist.HalfNormal(pri["sigma_scale"]).expand([k, d]))
        corr = numpyro.sample("chol_corr", dist.LKJCholesky(d, pri["lkj_eta"]).expand([k]))
        chol = sig[..., None] * corr
        comp = dist.MultivariateNormal(means, scale_tril=chol).log_prob(X[:, None, :])
        numpyro.factor("loglik", jax.nn.logsumexp(jnp.log(w) + comp, axis=-1).sum())

    init = ordered_init(start)
    # jax arrays: numpyro's transforms index the values with traced indices
    init = {name: jnp.asarray(value) for name, value in init.items()}
    t0 = time.perf_counter()
    kernel = NUTS(model, init_strategy=init_to_value(values=init))
    chain_method = "parallel" if jax.local_device_count() >= chains else "vectorized"
    mcmc = MCMC(
        kernel,
        num_warmup=tune,
        num_samples=draws,
        num_chains=chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    X = jnp.asarray(case.X)
    t1 = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(seed), X, extra_fields=("num_steps",), collect_warmup=True)
    n_warm = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    mcmc.run(mcmc.post_warmup_state.rng_key, X, extra_fields=("num_steps",))
    t2 = time.perf_counter()
    samples = mcmc.get_samples(group_by_chain=True)
    n_grad = n_warm + int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    return Run(
        np.asarray(samples["weights"]),
        np.asarray(samples["means"]),
        np.asarray(samples["sigmas"]),
        n_grad,
        t1 - t0,
        t2 - t1,
    )


STAN_CODE = """
data {
  int<lower=1> N; int<lower=1> K; int<lower=2> D;
  matrix[D, N] Yt;
  vector<lower=0>[K] alpha; vector[D] mu0; vector<lower=0>[D] s0;
  vector<lower=0>[D] scale; real<lower=0> eta;
}
parameters {
  simplex[K] weights;
  ordered[K] first;
  matrix[K, D - 1] rest;
  array[K] vector<lower=0>[D] sigmas;
  array[K] cholesky_factor_corr[D] chol_corr;
}
transformed parameters {
  matrix[K, D] means = append_col(first, rest);
}
model {
  matrix[N, K] lp;
  weights ~ dirichlet(alpha);
  first ~ normal(mu0[1], s0[1]);
  for (j in 2:D) rest[:, j - 1] ~ normal(mu0[j], s0[j]);
  for (k in 1:K) {
    matrix[D, D] L = diag_pre_multiply(sigmas[k], chol_corr[k]);
    sigmas[k] ~ normal(0, scale);
    chol_corr[k] ~ lkj_corr_cholesky(eta);
    lp[:, k] = log(weights[k]) - sum(log(diagonal(L)))
      - 0.5 * columns_dot_self(mdivide_left_tri_low(L, Yt - rep_matrix(means[k]', N)))';
  }
  for (n in 1:N) target += log_sum_exp(lp[n]);
}
"""


def run_stan(case, start, chains, draws, tune, seed) -> Run:
    import stan

    pri = default_gmm_priors(case.X)
    k, d = case.k, case.X.shape[1]
    if d < 2:
        raise ValueError("the Stan model is written for D >= 2")
    data = {
        "N": len(case.X),
        "K": k,
        "D": d,
        "Yt": case.X.T,
        "alpha": np.full(k, pri["weights_alpha"]),
        "mu0": pri["means_mu"],
        "s0": pri["means_sigma"],
        "scale": pri["sigma_scale"],
        "eta": pri["lkj_eta"],
    }
    init = ordered_init(start)
    t0 = time.perf_counter()
    posterior = stan.build(STAN_CODE, data=data, random_seed=seed)  # compiles (cached)
    t1 = time.perf_counter()
    fit = posterior.sample(
        num_chains=chains,
        num_samples=draws,
        num_warmup=tune,
        init=[init] * chains,
        save_warmup=True,
    )
    t2 = time.perf_counter()

    def draws_of(name, shape):
        arr = fit[name].reshape(*shape, tune + draws, chains)  # pystan: (..., draw * chain)
        return np.moveaxis(arr, (-1, -2), (0, 1))[:, tune:]

    n_grad = int(fit["n_leapfrog__"].sum())
    return Run(
        draws_of("weights", (k,)),
        draws_of("means", (k, d)),
        draws_of("sigmas", (k, d)),
        n_grad,
        t1 - t0,
        t2 - t1,
    )


RUNNERS: dict[str, Callable[..., Run]] = {
    "bayesgmm": run_bayesgmm,
    "bayesgmm-pytensor": run_bayesgmm_pytensor,
    "bayesgmm-jax": run_bayesgmm_jax,
    "pymc": run_pymc,
    "pymc-nutpie": run_pymc_nutpie,
    "numpyro": run_numpyro,
    "stan": run_stan,
}


# --------------------------------------------------------------------------------------
# metrics and report
# --------------------------------------------------------------------------------------


def summarise(run: Run) -> dict[str, float]:
    import arviz as az
    import xarray as xr

    order = np.argsort(run.means[..., 0], axis=-1)  # sort components in every draw
    w = np.take_along_axis(run.weights, order, axis=-1)
    m = np.take_along_axis(run.means, order[..., None], axis=-2)
    s = np.take_along_axis(run.sigmas, order[..., None], axis=-2)
    flat = np.concatenate([w, m.reshape(*m.shape[:2], -1), s.reshape(*s.shape[:2], -1)], -1)
    da = xr.DataArray(flat, dims=("chain", "draw", "parameter"))
    ess = az.ess(xr.Dataset({"p": da}), method="bulk")["p"].values
    rhat = az.rhat(xr.Dataset({"p": da}))["p"].values
    total = run.t_build + run.t_sample
    return {
        "total": total,
        "sample": run.t_sample,
        "ess": float(ess.min()),
        "ess_per_s": float(ess.min()) / total,
        "ess_per_sample_s": float(ess.min()) / run.t_sample,
        "rhat": float(rhat.max()),
        "one_mode": not detect_modes(da).multimodal,
        "grad_per_s": run.n_grad / run.t_sample,
    }


def run_case(case: Case, peers, chains, draws, tune, seed) -> dict[str, dict]:
    start = em_start(case)
    n, d = case.X.shape
    print(f"\n## {case.name}: N={n}, K={case.k}, D={d}; {chains} chains x ({tune} + {draws})")
    print(
        "| sampler | total [s] | sample [s] | min ESS | ESS/s total | ESS/s sample "
        "| max R-hat | 1 mode | grad/s | obs-grad/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    results = {}
    for peer in peers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = RUNNERS[peer](case, start, chains, draws, tune, seed)
            r = summarise(run)
        except ImportError as err:
            print(f"| {peer} | skipped: not installed ({err}) |")
            continue
        except Exception as err:  # a peer failing must not stop the others
            print(f"| {peer} | skipped: {type(err).__name__}: {err} |")
            traceback.print_exc(limit=2)
            continue
        results[peer] = r
        print(
            f"| {peer} | {r['total']:.1f} | {r['sample']:.1f} | {r['ess']:.0f} "
            f"| {r['ess_per_s']:.0f} | {r['ess_per_sample_s']:.0f} | {r['rhat']:.3f} "
            f"| {'yes' if r['one_mode'] else 'NO'} | {r['grad_per_s']:.0f} "
            f"| {r['grad_per_s'] * n:.2e} |",
            flush=True,
        )
    # peers only: bayesgmm-pytensor is our own model on another backend
    ours = results.get("bayesgmm")
    others = [v for p, v in results.items() if not p.startswith("bayesgmm")]
    if ours and others:
        best = max(o["ess_per_s"] for o in others)
        best_sample = max(o["ess_per_sample_s"] for o in others)
        print(
            f"bayesgmm / best peer: ESS/s total {ours['ess_per_s'] / best:.1f}x, "
            f"ESS/s sampling {ours['ess_per_sample_s'] / best_sample:.1f}x"
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=None, help=f"comma-separated, from {CASES}")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from {PEERS}")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="two cases, 200 + 200 draws")
    parser.add_argument(
        "--scaling", action="store_true", help="cost against N, K and D (bayesgmm by default)"
    )
    args = parser.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {PEERS}")
    if args.quick:
        args.draws, args.tune = min(args.draws, 200), min(args.tune, 200)
    default_cases = SCALING if args.scaling else (QUICK_CASES if args.quick else CASES)
    cases = args.cases.split(",") if args.cases else default_cases
    print(f"cores: {os.cpu_count()}; peers: {', '.join(peers)}")
    for name in cases:
        run_case(make_case(name), peers, args.chains, args.draws, args.tune, args.seed)


if __name__ == "__main__":
    main()
