"""Choosing the number of components: EM's BIC and the posterior's PSIS-LOO side by side.

:func:`select_n_components` fits, for every K in a range, the EM estimate (maximum
likelihood, ``n_init`` restarts) and the Bayesian GMM (:class:`bayesgmm.BayesGMM`, NUTS),
and tabulates

- from EM: log-likelihood, number of free parameters, BIC, AIC and ICL (lower is better;
  ``-2 log L + penalty``, scikit-learn's convention);
- from the posterior: PSIS-LOO ``elpd_loo`` (higher is better) with its standard error,
  ``p_loo``, and from ``arviz.compare``: ``elpd_diff = elpd_K - elpd_best`` (<= 0) with
  ``se_diff``, the standard error of the *paired* pointwise difference
  (``sqrt(N var(elpd_i^K - elpd_i^best))``, the one to judge differences by), stacking
  weights (Yao et al. 2018), the number of observations with Pareto k above ArviZ's
  threshold, and the cross-check verdict of each fit.

The two criteria answer different questions: BIC approximates the marginal likelihood of
the maximum-likelihood fit; LOO estimates out-of-sample predictive density under the
posterior.  The choices are reported separately (``choice_bic``, ``choice_loo``,
``choice_loo_parsimonious``: the smallest K whose ``elpd_diff`` is within 2 ``se_diff``
of the best), never blended.  A K whose cross-check is not "agree" is marked in the table:
its LOO describes a posterior that may be ambiguous (e.g. an empty component), which is
itself evidence that K is too large.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesgmm._validation import check_data_matrix
from bayesgmm.em.estimator import GaussianMixture

__all__ = ["KSelection", "select_n_components"]


@dataclass
class KSelection:
    """BIC and LOO over a range of K; see the module docstring.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per K (index ``n_components``).
    em_fits : dict of int to GaussianMixture
    bayes_fits : dict of int to BayesGMM
    choice_bic, choice_loo, choice_loo_parsimonious : int
    """

    table: pd.DataFrame
    em_fits: dict = field(repr=False)
    bayes_fits: dict = field(repr=False)
    choice_bic: int
    choice_loo: int
    choice_loo_parsimonious: int

    def to_text(self) -> str:
        cols = ["log_likelihood", "n_parameters", "bic", "delta_bic", "elpd_loo", "se_loo"]
        cols += ["elpd_diff", "se_diff", "p_loo", "weight", "n_high_pareto_k", "verdict"]
        body = self.table[cols].to_string(float_format=lambda v: f"{v:.2f}")
        return (
            f"Choosing K: BIC (EM, lower is better) picks K = {self.choice_bic}; "
            f"LOO (posterior, higher elpd is better) picks K = {self.choice_loo} "
            f"(smallest K within 2 se of the best: {self.choice_loo_parsimonious})\n{body}"
        )

    def __str__(self) -> str:
        return self.to_text()

    def plot(self, axes=None):
        """Two panels over K: BIC (EM) and elpd_loo with bars of +/- 2 ``se_diff``.

        The bars are the standard errors of the paired differences to the best K (the
        uncertainty that matters when comparing K), not of each elpd on its own.
        Returns the figure.
        """
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
        else:
            fig = axes[0].figure
        ks = self.table.index.to_numpy()
        ax_bic, ax_loo = axes
        ax_bic.plot(ks, self.table["bic"], "o-", color="C0")
        ax_bic.axvline(self.choice_bic, color="C0", ls=":", lw=1)
        ax_bic.set(xlabel="K (components)", ylabel="BIC (lower is better)", title="EM: BIC")
        ax_loo.errorbar(
            ks,
            self.table["elpd_loo"],
            yerr=2 * self.table["se_diff"],
            fmt="o-",
            color="C1",
            capsize=3,
        )
        ax_loo.axvline(self.choice_loo, color="C1", ls=":", lw=1)
        bad = self.table["verdict"] != "agree"
        if bad.any():
            ax_loo.plot(
                ks[bad],
                self.table["elpd_loo"][bad],
                "x",
                color="C3",
                ms=10,
                label="cross-check not 'agree'",
            )
            ax_loo.legend(loc="lower right")
        ax_loo.set(
            xlabel="K (components)",
            ylabel="elpd_loo +/- 2 se_diff (higher is better)",
            title="NUTS posterior: PSIS-LOO",
        )
        for ax in axes:
            ax.set_xticks(ks)
        return fig


def _check_k_range(n_components: Iterable[int], n_samples: int) -> list[int]:
    try:
        ks = sorted({int(k) for k in n_components})
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"n_components must be an iterable of integers, e.g. range(1, 6): {err}"
        ) from None
    if len(ks) < 2:
        raise ValueError(f"give at least two values of K to compare, got {ks}")
    if ks[0] < 1:
        raise ValueError(f"every K must be >= 1, got {ks[0]}")
    if ks[-1] > n_samples:
        raise ValueError(f"K = {ks[-1]} exceeds the number of observations ({n_samples})")
    return ks


def select_n_components(
    X,
    n_components: Iterable[int] = range(1, 6),
    *,
    covariance_type: str = "full",
    random_state: int | None = None,
    **bayes_kwargs,
) -> KSelection:
    """Fit EM and the Bayesian GMM for every K and compare BIC with PSIS-LOO.

    Parameters
    ----------
    X : array-like (n_samples, n_features)
    n_components : iterable of int, default range(1, 6)
        The values of K to compare (at least two).
    covariance_type : {"full", "tied", "diag", "spherical"}
    random_state : int, optional
        Seeds every fit (K-specific streams derived from it).
    **bayes_kwargs
        Further :class:`bayesgmm.BayesGMM` settings (``draws``, ``tune``, ``chains``,
        ``priors``, ``progressbar``...).  EM uses ``em_n_init`` restarts from the same.

    Returns
    -------
    KSelection
    """
    import arviz as az

    from bayesgmm.gmm.estimator import BayesGMM

    data = check_data_matrix(X, min_samples=2)
    ks = _check_k_range(n_components, data.shape[0])
    seeds = np.random.SeedSequence(random_state).generate_state(len(ks))
    em_fits: dict[int, GaussianMixture] = {}
    bayes_fits: dict[int, BayesGMM] = {}
    rows = []
    for k, seed in zip(ks, seeds, strict=True):
        model = BayesGMM(
            k, covariance_type=covariance_type, random_state=int(seed), **bayes_kwargs
        ).fit(X)
        em = model.em_
        em_fits[k], bayes_fits[k] = em, model
        loo = model.loo(pointwise=True)
        rows.append(
            {
                "n_components": k,
                "log_likelihood": em.score(data) * data.shape[0],
                "n_parameters": em._n_parameters(),
                "bic": em.bic(data),
                "aic": em.aic(data),
                "icl": em.icl(data),
                "elpd_loo": loo.elpd,
                "se_loo": loo.se,
                "p_loo": loo.p,
                "n_high_pareto_k": int(np.sum(np.asarray(loo.pareto_k) > loo.good_k)),
                "verdict": model.crosscheck_.verdict,
            }
        )
    table = pd.DataFrame(rows).set_index("n_components")
    table.insert(table.columns.get_loc("aic"), "delta_bic", table["bic"] - table["bic"].min())

    compared = az.compare(
        {str(k): bayes_fits[k].idata_ for k in ks}, method="stacking", round_to="none"
    )
    at = table.columns.get_loc("p_loo")
    for column, name in (("elpd_diff", "elpd_diff"), ("dse", "se_diff")):
        table.insert(at, name, [float(compared.loc[str(k), column]) for k in ks])
        at += 1
    table.insert(at + 1, "weight", [float(compared.loc[str(k), "weight"]) for k in ks])
    best = int(table["elpd_loo"].idxmax())

    within = table.index[-table["elpd_diff"] <= 2 * table["se_diff"]]
    return KSelection(
        table=table,
        em_fits=em_fits,
        bayes_fits=bayes_fits,
        choice_bic=int(table["bic"].idxmin()),
        choice_loo=best,
        choice_loo_parsimonious=int(within.min()),
    )
