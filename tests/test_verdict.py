"""The family-neutral verdict engine on synthetic findings, tables and energies (no model)."""

import ast
import dataclasses
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesgmm import verdict
from bayesgmm.verdict import (
    VERDICTS,
    Thresholds,
    bfmi_per_chain,
    detect_modes,
    diagnostics_line,
    format_table,
    get_group,
    judge_findings,
    point_vs_posterior_table,
    sampler_diagnostics,
    verdict_from_findings,
)

LABELS = ["weights[0]", "weights[1]", "sigmas[0]", "sigmas[1]"]
CENTRE = np.array([0.4, 0.6, 1.0, 2.0])
SD = 0.01


def iid_draws(n_chains=4, n_draws=500, seed=0):
    """Independent normal draws around CENTRE: one mode, R-hat ~ 1, large ESS."""
    rng = np.random.default_rng(seed)
    return CENTRE + SD * rng.normal(size=(n_chains, n_draws, len(CENTRE)))


def clean_diagnostics(n_chains=4, n_draws=500):
    return {
        "n_chains": n_chains,
        "n_draws": n_draws,
        "n_divergences": 0,
        "divergences_per_chain": [0] * n_chains,
        "treedepth_hits": 0,
        "treedepth_fraction": 0.0,
        "bfmi": [1.0] * n_chains,
        "min_bfmi": 1.0,
        "has_sample_stats": True,
    }


@pytest.fixture(scope="module")
def base():
    draws = iid_draws()
    table = point_vs_posterior_table(LABELS, draws, CENTRE, np.nan, 0.94)
    flat = xr.DataArray(draws, dims=("chain", "draw", "parameter"), coords={"parameter": LABELS})
    return draws, table, detect_modes(flat)


def weights_draws(p_empty=0.0, n_chains=4, n_draws=500):
    """(chain, draw, 2) weights; the second below 0.01 in a fraction p_empty of the draws."""
    w = np.full((n_chains, n_draws, 2), 0.5)
    w[:, : round(p_empty * n_draws), 1] = 0.001
    return w


# --------------------------------------------------------------------------------------
# the verdict rule
# --------------------------------------------------------------------------------------


def test_no_finding_is_agree_with_the_largest_z_first(base):
    _, table, _ = base
    verdict, reasons = verdict_from_findings([], table, 3.0, "SAEM", "one mode")
    assert verdict == "agree"
    top = table["z"].abs().idxmax()
    assert reasons == [
        f"[agree] all 4 parameters within 3 posterior sd of SAEM "
        f"(max |z| = {abs(table.loc[top, 'z']):.2f} at {top}); one mode"
    ]


def test_most_severe_finding_wins_and_every_finding_is_listed(base):
    _, table, _ = base
    findings = [
        ("disagree", "d"),
        ("ambiguous", "a"),
        ("note", "n"),
        ("sampler trouble", "s"),
    ]
    verdict, reasons = verdict_from_findings(findings, table, 3.0, "EM", "x")
    assert verdict == "ambiguous"
    assert reasons == ["[disagree] d", "[ambiguous] a", "[note] n", "[sampler trouble] s"]
    for k, expected in enumerate(VERDICTS[1:], start=1):
        lower = [(VERDICTS[j], "m") for j in range(1, k + 1)]
        assert verdict_from_findings(lower, table, 3.0, "EM", "x")[0] == expected


def test_a_note_alone_does_not_change_the_verdict(base):
    _, table, _ = base
    verdict, reasons = verdict_from_findings([("note", "n")], table, 3.0, "EM", "x")
    assert verdict == "agree"
    assert reasons[0].startswith("[agree]") and reasons[1] == "[note] n"


def test_agree_without_any_finite_z():
    table = pd.DataFrame({"z": [np.nan, np.nan]}, index=["a", "b"])
    _, reasons = verdict_from_findings([], table, 3.0, "EM", "ok")
    assert reasons == ["[agree] all 2 parameters within 3 posterior sd of EM ; ok"]


# --------------------------------------------------------------------------------------
# judging: one rule at a time
# --------------------------------------------------------------------------------------


def test_clean_inputs_have_no_finding(base):
    _, table, modes = base
    assert not modes.multimodal
    findings = judge_findings(table, clean_diagnostics(), modes, Thresholds(), weights=None)
    assert findings == []


def test_each_sampler_rule_fires_and_follows_its_threshold(base):
    _, table, modes = base
    th = Thresholds()
    t = table.copy()
    t.loc["sigmas[1]", "r_hat"] = 1.05
    t.loc["weights[0]", "ess_bulk"] = 120.0
    dg = clean_diagnostics()
    dg.update(
        n_divergences=3,
        divergences_per_chain=[0, 3, 0, 0],
        bfmi=[1.0, 0.2, 1.0, 1.0],
        treedepth_hits=40,
        treedepth_fraction=0.02,
    )
    findings = judge_findings(t, dg, modes, th)
    assert findings == [
        ("sampler trouble", "3 divergent transitions (0.1% of 2000 draws; per chain [0, 3, 0, 0])"),
        ("sampler trouble", "r_hat > 1.01 for 1 parameter(s) (max 1.050 at sigmas[1])"),
        ("sampler trouble", "min ess_bulk 120 < 400 (at weights[0])"),
        ("sampler trouble", "chain 1: BFMI 0.20 < 0.3"),
        ("sampler trouble", "maximum tree depth reached in 40 draws (2.0% > 1%)"),
    ]
    loose = Thresholds(rhat_max=1.1, ess_bulk_min=100, bfmi_min=0.1, treedepth_max_frac=0.05)
    assert [f[1] for f in judge_findings(t, dg, modes, loose)] == [findings[0][1]]


def test_disagreement_sorted_by_z_and_after_sampler_trouble(base):
    _, table, modes = base
    t = table.copy()
    t.loc["sigmas[0]", "em"] = t.loc["sigmas[0]", "mean"] + 5 * t.loc["sigmas[0]", "sd"]
    t.loc["weights[1]", "em"] = t.loc["weights[1]", "mean"] - 8 * t.loc["weights[1]", "sd"]
    t["z"] = (t["em"] - t["mean"]) / t["sd"]
    dg = clean_diagnostics()
    dg["n_divergences"], dg["divergences_per_chain"] = 1, [1, 0, 0, 0]
    findings = judge_findings(t, dg, modes, Thresholds())
    cats = [c for c, _ in findings]
    assert cats == ["sampler trouble", "disagree", "disagree"]
    assert (
        findings[1][1].startswith("weights[1]: EM ") and " is 8.0 posterior sd " in findings[1][1]
    )
    assert findings[2][1].startswith("sigmas[0]: EM ") and " is 5.0 posterior sd " in findings[2][1]
    assert [c for c, _ in judge_findings(t, dg, modes, Thresholds(z_max=10))] == cats[:1]


def test_empty_component_needs_weights_and_follows_both_thresholds(base):
    _, table, modes = base
    w = weights_draws(p_empty=0.1)
    th = Thresholds()
    findings = judge_findings(table, clean_diagnostics(), modes, th, weights=w)
    assert findings == [
        ("ambiguous", "weights[1]: P(weight < 0.01) = 0.10 (> 0.05): component 1 may be empty")
    ]
    assert judge_findings(table, clean_diagnostics(), modes, th) == []  # weights omitted
    for looser in (th.replace(weight_floor_mass=0.2), th.replace(weight_floor=0.0001)):
        assert judge_findings(table, clean_diagnostics(), modes, looser, weights=w) == []


def test_modes_are_ambiguous_and_ranked_first(base):
    draws, _, _ = base
    shifted = draws.copy()
    shifted[2:, :, 3] += 50 * SD
    flat = xr.DataArray(shifted, dims=("chain", "draw", "parameter"), coords={"parameter": LABELS})
    modes = detect_modes(flat)
    assert modes.groups == [[0, 1], [2, 3]]
    t = point_vs_posterior_table(LABELS, shifted, CENTRE, np.nan, 0.94)
    findings = judge_findings(t, clean_diagnostics(), modes, Thresholds())
    assert findings[0] == ("ambiguous", "chains sit in 2 different modes: [0, 1] | [2, 3]")
    assert findings[1][1].startswith("sigmas[1] separates them")
    assert {c for c, _ in findings} == {"ambiguous", "sampler trouble"}  # r_hat, ESS
    cats = [c for c, _ in findings]
    assert cats == sorted(cats, key=lambda c: -VERDICTS.index(c))
    relaxed = detect_modes(flat, threshold=1000)
    assert not relaxed.multimodal


def test_missing_sample_stats_is_a_note(base):
    _, table, modes = base
    dg = sampler_diagnostics(
        {"posterior": xr.Dataset({"x": (("chain", "draw"), np.zeros((2, 3)))})}
    )
    assert dg["has_sample_stats"] is False and dg["n_chains"] == 2 and dg["n_draws"] == 3
    findings = judge_findings(table, dg | {"n_chains": 4, "n_draws": 500}, modes, Thresholds())
    assert findings == [
        ("note", "no sample_stats group: divergences, tree depth, BFMI not checked")
    ]


# --------------------------------------------------------------------------------------
# label checks: optional
# --------------------------------------------------------------------------------------


def label_report(pure, within, purity_threshold=0.95):
    pure = np.asarray(pure, dtype=float)
    return types.SimpleNamespace(
        is_pure_permutation=bool(np.all(pure >= purity_threshold)),
        pure_fraction=pure,
        within_chain_fraction=np.asarray(within, dtype=float),
    )


def test_label_checks_omitted_vs_present(base):
    _, table, modes = base
    dg, th = clean_diagnostics(), Thresholds()
    w = weights_draws()
    without = judge_findings(table, dg, modes, th, labels=None, weights=w)
    assert without == []
    # a clean label report adds nothing: omitting the checks equals passing a clean report
    clean = label_report([1.0] * 4, [0.0] * 4)
    assert judge_findings(table, dg, modes, th, labels=clean, weights=w) == without
    # a bad one adds the two label findings, ambiguous, before everything else
    bad = label_report([1.0, 0.8, 1.0, 1.0], [0.0, 0.0, 0.3, 0.0])
    dg_bad = dg | {"n_divergences": 1, "divergences_per_chain": [1, 0, 0, 0]}
    findings = judge_findings(table, dg_bad, modes, th, labels=bad, weights=w)
    assert findings[0] == (
        "ambiguous",
        "label switching that relabelling cannot undo: only 80.0% of draws in chain 1 have "
        "each component nearest a distinct EM component (required 95%)",
    )
    assert findings[1][0] == "ambiguous"
    assert findings[1][1].startswith(
        "labels switch within chains (chain 2: 30.0% of draws off its labelling; allowed 1%)"
    )
    assert [c for c, _ in findings[2:]] == ["sampler trouble"]
    assert judge_findings(table, dg_bad, modes, th, labels=None, weights=w) == findings[2:]
    # switch_max follows its threshold; purity is the report's own verdict
    relaxed = judge_findings(table, dg, modes, th.replace(switch_max=0.5), labels=bad)
    assert [m[:14] for _, m in relaxed] == ["label switchin"]


# --------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------


def test_thresholds_defaults_and_frozen():
    th = Thresholds()
    assert th.to_dict() == {
        "rhat_max": 1.01,
        "ess_bulk_min": 400.0,
        "bfmi_min": 0.3,
        "treedepth_max_frac": 0.01,
        "z_max": 3.0,
        "weight_floor": 0.01,
        "weight_floor_mass": 0.05,
        "switch_max": 0.01,
        "purity_threshold": 0.95,
        "mode_threshold": 4.0,
    }
    assert Thresholds.mode_threshold == 4.0 and Thresholds.purity_threshold == 0.95
    with pytest.raises(dataclasses.FrozenInstanceError):
        th.z_max = 2.0
    assert th == Thresholds() and hash(th) == hash(Thresholds())


def test_thresholds_replace_and_types():
    th = Thresholds().replace(z_max=2, ess_bulk_min=np.int64(100))
    assert th.z_max == 2.0 and type(th.z_max) is float
    assert th.ess_bulk_min == 100.0 and type(th.ess_bulk_min) is float
    assert Thresholds().z_max == 3.0  # replace made a copy
    assert Thresholds(rhat_max=np.inf).rhat_max == np.inf
    with pytest.raises(TypeError, match=r"Unknown threshold\(s\) \['zmax'\]"):
        Thresholds().replace(zmax=2.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rhat_max", 0.99),
        ("ess_bulk_min", -1.0),
        ("bfmi_min", -0.1),
        ("treedepth_max_frac", 1.5),
        ("z_max", 0.0),
        ("weight_floor", -0.01),
        ("weight_floor_mass", 2.0),
        ("switch_max", 1.01),
        ("purity_threshold", -0.5),
        ("mode_threshold", 0.0),
        ("z_max", np.nan),
    ],
)
def test_thresholds_out_of_range(name, value):
    with pytest.raises(ValueError, match=rf"Thresholds\.{name} must lie in"):
        Thresholds(**{name: value})
    with pytest.raises(ValueError, match=rf"Thresholds\.{name} must lie in"):
        Thresholds().replace(**{name: value})


@pytest.mark.parametrize("value", ["3", None, True, 1 + 2j])
def test_thresholds_must_be_real_numbers(value):
    with pytest.raises(TypeError, match=r"Thresholds\.z_max must be a real number"):
        Thresholds(z_max=value)


# --------------------------------------------------------------------------------------
# sampler diagnostics
# --------------------------------------------------------------------------------------


def test_bfmi_closed_formula_on_hand_made_energies():
    energy = np.array(
        [
            [0.0, 1.0, 0.0, 1.0],  # diffs 1, 1, 1 -> 3; deviations +-0.5 -> 1: BFMI 3
            [0.0, 1.0, 2.0, 3.0],  # diffs 1, 1, 1 -> 3; deviations 2.25 + 0.25 * 2 + 2.25 = 5
            [2.0, 2.0, 2.0, 2.0],  # constant: 0 / 0
        ]
    )
    b = bfmi_per_chain(energy)
    np.testing.assert_allclose(b[:2], [3.0, 0.6], rtol=1e-15)
    assert np.isnan(b[2])


def test_sampler_diagnostics_from_sample_stats():
    n_chains, n_draws = 2, 4
    posterior = xr.Dataset({"x": (("chain", "draw"), np.zeros((n_chains, n_draws)))})
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.array([[0, 1, 0, 1], [0, 0, 0, 0]], dtype=bool)),
            "reached_max_treedepth": (("chain", "draw"), np.array([[1, 0, 0, 0]] * 2, dtype=bool)),
            "energy": (
                ("draw", "chain"),
                np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0], [1.0, 3.0]]),
            ),
        }
    )
    warm = stats.copy(deep=True)
    warm["diverging"][:] = True
    tree = xr.DataTree.from_dict(
        {"posterior": posterior, "sample_stats": stats, "warmup_sample_stats": warm}
    )
    dg = sampler_diagnostics(tree)
    assert dg == {
        "n_chains": 2,
        "n_draws": 4,
        "n_divergences": 2,
        "divergences_per_chain": [2, 0],
        "treedepth_hits": 2,
        "treedepth_fraction": 0.25,
        "bfmi": [pytest.approx(3.0), pytest.approx(0.6)],
        "min_bfmi": pytest.approx(0.6),
        "has_sample_stats": True,
    }
    assert diagnostics_line(dg) == (
        "divergences 2; max tree depth hits 2 (25.0%); BFMI per chain 3.00, 0.60"
    )
    assert diagnostics_line({"has_sample_stats": False}).startswith("no sample_stats group")
    # the group accessor: DataTree, mapping, attribute; None when absent
    xr.testing.assert_identical(get_group(tree, "sample_stats"), stats)
    assert get_group({"posterior": posterior}, "posterior") is posterior
    assert get_group(types.SimpleNamespace(posterior=posterior), "posterior") is posterior
    assert get_group(tree, "prior") is None and get_group({}, "posterior") is None
    with pytest.raises(ValueError, match="no 'posterior' group"):
        sampler_diagnostics({"sample_stats": stats})


# --------------------------------------------------------------------------------------
# the table and its text
# --------------------------------------------------------------------------------------


def test_point_vs_posterior_table_columns_and_text(base):
    draws, table, _ = base
    assert list(table.columns) == [
        "em",
        "map",
        "mean",
        "sd",
        "hdi_low",
        "hdi_high",
        "z",
        "mcse_mean",
        "r_hat",
        "ess_bulk",
        "ess_tail",
    ]
    flat = draws.reshape(-1, draws.shape[-1])
    np.testing.assert_allclose(table["mean"], flat.mean(axis=0))
    np.testing.assert_allclose(table["sd"], flat.std(axis=0, ddof=1))
    np.testing.assert_allclose(table["z"], (CENTRE - flat.mean(axis=0)) / flat.std(axis=0, ddof=1))
    assert table["map"].isna().all()
    text = format_table(table)
    head, *rows = text.splitlines()
    assert head.split() == ["em", "map", *head.split()[2:]] and len(rows) == len(LABELS) + 1
    assert rows[1].split()[:3] == ["weights[0]", "0.4", "NaN"]  # pandas na_rep


def test_engine_imports_no_model_family_and_no_pymc():
    """NumPy, pandas, xarray, arviz-stats and the standard library only."""
    tree = ast.parse(Path(verdict.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    third_party = imported - set(sys.stdlib_module_names)
    assert third_party == {"numpy", "pandas", "xarray", "arviz_stats"}
