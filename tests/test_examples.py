"""The Examples sections of the estimators' and model builders' docstrings run as written."""

import doctest

import pytest

import bayesgmm
from bayesgmm.mpma import GibbsMPMA

DOCUMENTED = {
    "GaussianMixture": bayesgmm.GaussianMixture,
    "build_gmm_model": "build_gmm_model",
    "BayesGMM": "BayesGMM",
    "MPMA": "MPMA",
    "GibbsMPMA": GibbsMPMA,
    "build_mpma_model": "build_mpma_model",
    "DAGMM": "DAGMM",
    "Word2GM": "Word2GM",
}


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docstring_examples_run(name):
    obj = DOCUMENTED[name]
    obj = getattr(bayesgmm, obj) if isinstance(obj, str) else obj
    assert "Examples\n" in obj.__doc__, f"{name} has no Examples section"
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(obj, name, globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result}"
