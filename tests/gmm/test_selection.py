"""Choosing K on Old Faithful: EM's BIC against closed forms and mclust, LOO against
ArviZ's pointwise values."""

import numpy as np
import pytest

from bayesgmm.datasets import load_faithful
from bayesgmm.gmm.selection import select_n_components


@pytest.fixture(scope="module")
def faithful_selection():
    X = load_faithful()
    sel = select_n_components(X, [1, 2, 3], random_state=0, draws=300, tune=300, progressbar=False)
    return X.to_numpy(), sel


def test_bic_matches_closed_form_and_mclust(faithful_selection):
    X, sel = faithful_selection
    n, d = X.shape
    table = sel.table
    # K = 1: the ML Gaussian, log L = -n/2 (d log 2 pi + log|S| + d) with the biased S
    cov = np.cov(X, rowvar=False, bias=True)
    loglik1 = -0.5 * n * (d * np.log(2 * np.pi) + np.linalg.slogdet(cov)[1] + d)
    assert table.loc[1, "log_likelihood"] == pytest.approx(loglik1, rel=1e-10)
    assert table.loc[1, "bic"] == pytest.approx(-2 * loglik1 + 5 * np.log(n), rel=1e-10)
    # K = 2, VVV: mclust's log-likelihood -1130.264, 11 parameters
    assert table.loc[2, "log_likelihood"] == pytest.approx(-1130.264, abs=1e-3)
    assert table.loc[2, "n_parameters"] == 11
    assert table.loc[2, "bic"] == pytest.approx(2 * 1130.264 + 11 * np.log(n), abs=2e-3)
    assert sel.choice_bic == 2


def test_loo_differences_are_paired(faithful_selection):
    _, sel = faithful_selection
    table = sel.table
    elpd_i = {k: np.asarray(m.loo(pointwise=True).elpd_i) for k, m in sel.bayes_fits.items()}
    best = sel.choice_loo
    for k, e in elpd_i.items():
        diff = e - elpd_i[best]
        assert table.loc[k, "elpd_diff"] == pytest.approx(diff.sum(), rel=1e-9, abs=1e-9)
        assert table.loc[k, "se_diff"] == pytest.approx(
            np.sqrt(diff.size * diff.var()), rel=1e-9, abs=1e-9
        )
        assert table.loc[k, "elpd_loo"] == pytest.approx(e.sum(), rel=1e-12)
    assert table["weight"].sum() == pytest.approx(1.0)
    # one component is far worse; two and three are within noise, so the parsimonious
    # choice is two (and K = 3 is not a clean posterior on these data)
    assert -table.loc[1, "elpd_diff"] > 5 * table.loc[1, "se_diff"]
    assert sel.choice_loo_parsimonious == 2
    assert table.loc[2, "verdict"] == "agree"
    text = sel.to_text()
    assert "BIC (EM, lower is better) picks K = 2" in text


def test_plot_has_both_panels(faithful_selection):
    import matplotlib

    matplotlib.use("Agg")
    _, sel = faithful_selection
    fig = sel.plot()
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylabel().startswith("BIC")
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), sel.table["bic"])


@pytest.mark.parametrize(
    ("ks", "match"),
    [([2], "at least two values"), ([0, 1], ">= 1"), ([1, 300], "exceeds"), ("ab", "integers")],
)
def test_bad_k_ranges(ks, match):
    with pytest.raises(ValueError, match=match):
        select_n_components(load_faithful(), ks)
