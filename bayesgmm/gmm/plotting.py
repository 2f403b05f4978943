"""Figures of a fitted mixture: component ellipses with posterior uncertainty, and
responsibilities with their posterior intervals.

Both work with a fitted :class:`bayesgmm.BayesGMM` (posterior draws are drawn thin and
semi-transparent over the EM estimate) and, for the ellipses, with a plain
:class:`bayesgmm.GaussianMixture`.  They draw on a Matplotlib ``Axes`` (a new figure
when none is given) and return it.
"""

from __future__ import annotations

import numpy as np

from bayesgmm._validation import check_data_matrix
from bayesgmm.em.gaussian import full_covariances

__all__ = ["ellipse_path", "plot_components", "plot_density", "plot_responsibilities"]

#: Ellipses enclose this much probability of each (2-D marginal) Gaussian component.
ELLIPSE_PROB = 0.9


def ellipse_path(mean: np.ndarray, cov: np.ndarray, prob: float = ELLIPSE_PROB, n: int = 100):
    """Points (n, 2) on the contour of N(mean, cov) enclosing ``prob`` (2-D, chi-square 2)."""
    radius = np.sqrt(-2.0 * np.log1p(-prob))  # chi2(2) quantile: r^2 = -2 log(1 - p)
    t = np.linspace(0.0, 2.0 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)
    return mean + radius * circle @ np.linalg.cholesky(cov).T


def _new_axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    return ax


def plot_components(
    model,
    X=None,
    *,
    features: tuple[int, int] = (0, 1),
    n_draws: int = 40,
    prob: float = ELLIPSE_PROB,
    ax=None,
    random_state: int | None = 0,
):
    """Data, EM component ellipses and (for BayesGMM) ellipses of posterior draws.

    Parameters
    ----------
    model : BayesGMM or GaussianMixture, fitted
    X : array-like (n_samples, n_features), optional
        Data drawn as points.
    features : (int, int)
        The two features shown (ellipses are of the 2-D marginal of each component).
    n_draws : int
        Posterior draws whose ellipses are drawn (thin lines): their spread is the
        posterior uncertainty of each component's location and shape.
    prob : float
        Probability enclosed by each ellipse.
    """
    ax = _new_axes(ax)
    i, j = features
    em = getattr(model, "em_", model)
    k, d = em.means_.shape
    if d < 2:
        raise ValueError("plot_components needs at least two features; use a histogram for 1-D")
    sel = np.ix_([i, j], [i, j])
    if X is not None:
        data = check_data_matrix(X)
        ax.scatter(data[:, i], data[:, j], s=8, color="0.55", alpha=0.6, lw=0, label="data")
    if hasattr(model, "idata_"):
        post = model.idata_["posterior"].to_dataset()
        means = post["means"].stack(sample=("chain", "draw")).transpose("sample", ...).values
        chol = post["chol_cov"].stack(sample=("chain", "draw")).transpose("sample", ...).values
        rng = np.random.default_rng(random_state)
        for s in rng.choice(len(means), size=min(n_draws, len(means)), replace=False):
            cov = chol[s] @ np.swapaxes(chol[s], -1, -2)
            for c in range(k):
                path = ellipse_path(means[s, c, [i, j]], cov[c][sel], prob)
                ax.plot(path[:, 0], path[:, 1], color=f"C{c}", lw=0.5, alpha=0.25)
    covs = full_covariances(em.covariances_, em.covariance_type, k, d)
    for c in range(k):
        path = ellipse_path(em.means_[c, [i, j]], covs[c][sel], prob)
        ax.plot(path[:, 0], path[:, 1], color=f"C{c}", lw=2, label=f"component {c} (EM)")
        ax.plot(*em.means_[c, [i, j]], "x", color=f"C{c}", ms=9, mew=2)
    names = getattr(em, "feature_names_in_", None)
    ax.set_xlabel(str(names[i]) if names is not None else f"feature {i}")
    ax.set_ylabel(str(names[j]) if names is not None else f"feature {j}")
    ax.set_title(f"{prob:.0%} ellipses: EM (thick), posterior draws (thin)")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_responsibilities(
    model, X, *, component: int = 1, prob: float = 0.94, n_show: int = 20, ax=None
):
    """The ``n_show`` observations whose membership is most uncertain.

    For each: the posterior mean of p(z_i = component | x_i) (dot) with its equal-tailed
    central ``prob`` interval over posterior draws (bar), and EM's plug-in responsibility
    (cross), which carries no uncertainty.  Observations are ranked by interval width;
    the title counts how many have an interval wider than 0.1.
    """
    ax = _new_axes(ax)
    summary = model.responsibility_summary(X, prob=prob).sel(component=component)
    mean, low, high = (summary[v].values for v in ("mean", "low", "high"))
    width = high - low
    show = np.argsort(width, kind="stable")[::-1][:n_show]
    show = show[np.argsort(mean[show], kind="stable")]
    y = np.arange(show.size)
    ax.errorbar(
        mean[show],
        y,
        # clipped: a mean of draws piled at 0 or 1 can sit an ulp outside its interval
        xerr=np.maximum([mean[show] - low[show], high[show] - mean[show]], 0.0),
        fmt="o",
        color=f"C{component}",
        capsize=2,
        label=f"posterior mean, {prob:.0%} interval",
    )
    em_resp = model.em_.predict_proba(X)[:, component]
    ax.plot(em_resp[show], y, "kx", label="EM (plug-in)")
    ax.set_yticks(y, [f"obs {i}" for i in show], fontsize="small")
    ax.set(
        xlabel=f"p(z = {component} | x)",
        xlim=(-0.02, 1.02),
        title=f"Most uncertain memberships ({int((width > 0.1).sum())} of {width.size} "
        "have an interval wider than 0.1)",
    )
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_density(
    model,
    X,
    *,
    feature: int = 0,
    prob: float = 0.94,
    bins: int = 30,
    n_grid: int = 300,
    ax=None,
):
    """Histogram of one feature with the fitted mixture density (1-D models).

    For a 1-D :class:`bayesgmm.BayesGMM`: the posterior predictive density (mean over
    draws) with the equal-tailed central ``prob`` band of the density across draws, and
    the EM plug-in density (dashed).  For a :class:`GaussianMixture`: its density.
    """
    ax = _new_axes(ax)
    data = check_data_matrix(X)
    em = getattr(model, "em_", model)
    if em.means_.shape[1] != 1:
        raise ValueError("plot_density draws 1-D mixtures; use plot_components for D >= 2")
    x = data[:, feature]
    pad = 0.1 * (x.max() - x.min())
    grid = np.linspace(x.min() - pad, x.max() + pad, n_grid)[:, None]
    names = getattr(em, "feature_names_in_", None)
    if names is not None:  # score with the feature names the estimator was fitted with
        import pandas as pd

        grid = pd.DataFrame(grid, columns=names)
    grid_x = np.asarray(grid)[:, 0]
    ax.hist(x, bins=bins, density=True, color="0.8", edgecolor="0.6", label="data")
    if hasattr(model, "idata_"):
        dens = np.exp(model.log_density_draws(grid))
        low, high = np.quantile(dens, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        ax.fill_between(
            grid_x, low, high, color="C1", alpha=0.3, lw=0, label=f"{prob:.0%} posterior band"
        )
        ax.plot(grid_x, dens.mean(axis=0), color="C1", lw=2, label="posterior predictive")
    ax.plot(grid_x, np.exp(em.score_samples(grid)), "k--", lw=1, label="EM")
    ax.set(
        xlabel=str(names[feature]) if names is not None else f"feature {feature}",
        ylabel="density",
        title=f"Mixture density, K = {em.means_.shape[0]}",
    )
    ax.legend(loc="best", fontsize="small")
    return ax
