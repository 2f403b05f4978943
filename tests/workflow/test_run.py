"""Specs and `bayesgmm run`: validation errors, the registry of families, the files a run
writes, reproducibility, atomicity under a kill, and the targets a run refuses."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.cli import main
from bayesgmm.run import MANIFEST, run_spec
from bayesgmm.spec import FAMILIES, SpecError, load_spec, parse_spec

MODELS = Path(__file__).resolve().parents[2] / "models"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _minimal(**tables):
    raw = {"name": "t", "data": {"source": "faithful"}}
    for table, values in tables.items():
        raw.setdefault(table, {}).update(values)
    return raw


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.directory == Path("runs") / spec.name


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"data": {"source": "faithful"}}, "missing required key 'name'"),
        ({"name": "t"}, "missing required key 'data.source'"),
        (_minimal(model={"familly": "gmm"}), r"unknown key 'model.familly'; allowed in \[model\]"),
        (
            _minimal(inference={"method": "vi"}),
            "inference.method = 'vi' is not allowed; use one of em, map, nuts",
        ),
        (_minimal(model={"covariance_type": "banded"}), "model.covariance_type = 'banded'"),
        (_minimal(model={"n_components": 0}), "model.n_components = 0 must be an integer >= 1"),
        (_minimal(model={"n_components": "3"}), "model.n_components = '3'"),
        (_minimal(inference={"chains": True}), "inference.chains = True"),
        (
            _minimal(model={"priors": {"alpha": 1}}),
            "unknown prior model.priors.alpha; allowed: weights_alpha",
        ),
        (_minimal(output={"figures": "yes"}), "output.figures = 'yes' must be true or false"),
        ({"name": "t", "data": {"source": "faithful"}, "extra": 1}, "unknown key 'extra'"),
        (_minimal(data={"columns": "eruptions"}), "data.columns = 'eruptions' must be a list"),
    ],
)
def test_invalid_specs_name_the_key(raw, match):
    with pytest.raises(SpecError, match=match):
        parse_spec(raw)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no spec file"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('name = "u"\n[data]\nsource = "nowhere.csv"\n')
    with pytest.raises(
        SpecError, match=r"data\.source = 'nowhere\.csv' is neither an existing file"
    ):
        run_spec(unknown, directory=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def _check_manifest(directory: Path) -> dict:
    import hashlib

    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["complete"] is True
    on_disk = sorted(p.name for p in directory.iterdir() if p.name != MANIFEST)
    assert sorted(manifest["files"]) == on_disk
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
    return manifest


def test_map_run_writes_reloadable_files_and_reproduces(tmp_path):
    out = tmp_path / "faithful_map"
    result = run_spec(MODELS / "faithful_map.toml", directory=out, progress=False)
    assert result.directory == out and result.verdict is None
    manifest = _check_manifest(out)
    assert manifest["spec"]["method"] == "map"
    assert (out / "components.png").read_bytes()[:8] == PNG_MAGIC
    params = pd.read_csv(out / "parameters.csv", index_col="parameter")
    assert len(params) == 12 and list(params.columns) == ["em", "map"]
    em = GaussianMixture.load(out / "em.nc")
    np.testing.assert_array_equal(
        params.loc[["means[0,0]", "means[0,1]", "means[1,0]", "means[1,1]"], "em"],
        em.means_.ravel(),
    )
    # Old Faithful EM: mclust's log-likelihood
    assert "EM log-likelihood -1130.2641" in (out / "report.md").read_text()
    with pytest.raises(FileExistsError, match="overwrite"):
        run_spec(MODELS / "faithful_map.toml", directory=out, progress=False)
    run_spec(MODELS / "faithful_map.toml", directory=out, overwrite=True, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(out / "parameters.csv", index_col=0), params)
    assert [p.name for p in tmp_path.iterdir()] == ["faithful_map"]  # no staging left over


def test_nuts_run_files(tmp_path):
    from bayesgmm import BayesGMM

    out = tmp_path / "syn"
    result = run_spec(MODELS / "synthetic_3_clusters.toml", directory=out, progress=False)
    manifest = _check_manifest(out)
    assert result.verdict == manifest["verdict"] == "agree"
    for name in ("components.png", "responsibilities.png", "rank.png", "trace.png", "pair.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    table = pd.read_csv(out / "crosscheck.csv", index_col=0)
    assert len(table) == 3 + 6 + 6 + 3  # weights, means, sds, correlations
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert len(summary) == 3 + 6 + 6  # weights, means, sigmas
    loaded = BayesGMM.load(out / "posterior.nc")
    pd.testing.assert_frame_equal(
        loaded.crosscheck_.table.rename_axis(None), table.rename_axis(None), check_names=False
    )
    # the known truth of the shipped data (make_mixture(300, 3, 2, separation=3, seed=0))
    lo, hi = table["hdi_low"], table["hdi_high"]
    truth_means = {"means[0,0]": -3.1108, "means[1,0]": -1.7309, "means[2,0]": 4.8417}
    covered = [lo[k] <= v <= hi[k] for k, v in truth_means.items()]
    assert sum(covered) >= 2


def test_killed_run_leaves_nothing_that_looks_complete(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bayesgmm",
            "run",
            str(MODELS / "synthetic_3_clusters.toml"),
            "--out",
            str(out),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".killed.partial-*")):
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not out.exists()
    (staging,) = tmp_path.glob(".killed.partial-*")
    assert not (staging / MANIFEST).exists()
    # the next run into the same target removes the killed run's staging directory
    run_spec(MODELS / "faithful_map.toml", directory=out, progress=False)
    assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed"]


@pytest.mark.slow
def test_nuts_run_reproduces_with_the_same_seed(tmp_path):
    import xarray as xr

    spec = MODELS / "synthetic_3_clusters.toml"
    posteriors = []
    for name in ("a", "b"):
        run_spec(spec, directory=tmp_path / name, progress=False)
        tree = xr.open_datatree(tmp_path / name / "posterior.nc", engine="h5netcdf")
        posteriors.append(tree["posterior"].to_dataset().load())
    for var in posteriors[0].data_vars:
        np.testing.assert_array_equal(posteriors[0][var].values, posteriors[1][var].values)


# ----------------------------------------------------------------------------- MPMA specs


def _mpma_raw(tmp_path, **inference):
    """A ratings CSV with a known biased rank-2 structure, and an MPMA spec reading it."""
    rng = np.random.default_rng(3)
    n_users, n_items = 60, 50
    truth = (
        3.5
        + 0.4 * rng.normal(size=(n_users, 1))
        + 0.3 * rng.normal(size=n_items)
        + rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items))
    )
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    rating = np.clip(np.round(truth[users, items] + 0.4 * rng.normal(size=users.size)), 1, 5)
    pd.DataFrame({"user": users, "item": items, "rating": rating}).to_csv(
        tmp_path / "ratings.csv", index=False
    )
    return {
        "name": "mpma_small",
        "data": {"source": "ratings.csv"},
        "model": {"family": "mpma", "options": {"n_factors": 2}},
        "inference": {"method": "map", "seed": 4, **inference},
    }


@pytest.mark.parametrize(
    ("model", "inference", "match"),
    [
        ({"options": {"n_factor": 2}}, {}, r"unknown model.options \['n_factor'\] for model"),
        ({"estimator": "vb"}, {}, "model.estimator"),
        (
            {"estimator": "gibbs", "options": {"max_iter": 5}},
            {},
            r"\['max_iter'\] for model.estimator = 'gibbs'; allowed: .*n_draws",
        ),
        ({"estimator": "gibbs", "priors": {"factor_penalty": 3}}, {}, "unknown prior field"),
        ({"options": {"n_user_groups": 0}}, {}, "model.options: n_user_groups"),
        ({"options": {"components": ["user"]}}, {}, "model.options: components must include"),
        ({"priors": {"sd": 1.0}}, {}, r"model.priors: unknown prior field\(s\) \['sd'\]"),
        ({}, {"holdout": 1.0}, r"inference.holdout = 1.0 must be a number in \[0, 1\)"),
        ({}, {"subsample": [10]}, r"inference.subsample = \[10\] must be \[n_users, n_items\]"),
        ({}, {"subsample_factors": -1}, "inference.subsample_factors = -1"),
    ],
)
def test_invalid_mpma_specs_name_the_key(model, inference, match):
    raw = {"name": "m", "data": {"source": "x.csv"}, "model": {"family": "mpma", **model}}
    raw["inference"] = inference
    with pytest.raises(SpecError, match=match):
        parse_spec(raw)


def test_mpma_keys_are_refused_for_gmm():
    with pytest.raises(SpecError, match=r"inference\.holdout is for family = 'mpma'"):
        parse_spec(_minimal(inference={"holdout": 0.1}))
    raw = _minimal()
    raw["model"] = {**raw.get("model", {}), "estimator": "gibbs"}
    with pytest.raises(SpecError, match=r"model\.estimator is for family = 'mpma'"):
        parse_spec(raw)


def test_mpma_run_needs_rating_columns(tmp_path):
    raw = _mpma_raw(tmp_path)
    raw["data"]["columns"] = ["user", "rating"]
    with pytest.raises(SpecError, match=r"needs columns \['user', 'item', 'rating'\]"):
        run_spec(parse_spec(raw, origin=tmp_path / "s.toml"), directory=tmp_path / "o",
                 progress=False)  # fmt: skip


def test_mpma_source_names_any_movielens_release(tmp_path, monkeypatch):
    """data.source = "movielens-<release>" reaches load_movielens with data.path."""
    import bayesgmm.mpma.run as mpma_run

    calls = []

    def fake_load(release, data_home=None):
        calls.append((release, data_home))
        return pd.read_csv(tmp_path / "ratings.csv")

    monkeypatch.setattr(mpma_run, "load_movielens", fake_load)
    raw = _mpma_raw(tmp_path)
    raw["data"] = {"source": "movielens-latest-small", "path": "ml"}
    spec = parse_spec(raw, origin=tmp_path / "s.toml")
    assert len(mpma_run.load_data(spec).frame) > 0
    assert calls == [("latest-small", tmp_path / "ml")]
    raw["data"] = {"source": "movielens-2m"}
    with pytest.raises(SpecError, match=r"no MovieLens release; use movielens-100k, .*-32m"):
        mpma_run.load_data(parse_spec(raw, origin=tmp_path / "s.toml"))


def test_mpma_map_run_writes_reloadable_files_and_reproduces(tmp_path):
    from bayesgmm.mpma import MPMA

    spec = parse_spec(_mpma_raw(tmp_path, holdout=0.25), origin=tmp_path / "s.toml")
    out = tmp_path / "out"
    result = run_spec(spec, directory=out, progress=False)
    manifest = _check_manifest(out)
    assert result.verdict is None
    assert set(manifest["files"]) == {
        "convergence.png", "metrics.csv", "mpma.nc", "parameters.csv", "report.md"
    }  # fmt: skip
    assert (out / "convergence.png").read_bytes()[:8] == PNG_MAGIC
    ratings = pd.read_csv(tmp_path / "ratings.csv")
    metrics = pd.read_csv(out / "metrics.csv", index_col="split")
    n_test = metrics.loc["holdout", "n_ratings"]
    assert metrics["n_ratings"].sum() == len(ratings)
    assert abs(n_test / len(ratings) - 0.25) < 0.05
    # the saved model scores its training split exactly as the metrics say, and the
    # held-out RMSE is well below that of predicting the mean rating
    model = MPMA.load(out / "mpma.nc")
    assert model.n_factors == 2 and model.random_state == 4
    params = pd.read_csv(out / "parameters.csv", index_col="component")
    np.testing.assert_array_equal(params["weight"], model.weights_)
    assert list(params.index) == ["global", "user", "item"]
    assert metrics.loc["holdout", "rmse"] < 0.85 * ratings["rating"].std()
    assert metrics.loc["train", "rmse"] < metrics.loc["holdout", "rmse"]
    assert manifest["metrics"]["holdout"]["rmse"] == pytest.approx(metrics.loc["holdout", "rmse"])
    # same seed, same numbers
    run_spec(spec, directory=out, overwrite=True, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv", index_col="split"), metrics)


def test_mpma_gibbs_run_saves_the_sampled_fit(tmp_path):
    from bayesgmm.mpma import GibbsMPMA
    from bayesgmm.mpma.run import _split

    raw = _mpma_raw(tmp_path, holdout=0.25)
    raw["model"] |= {"estimator": "gibbs", "options": {"n_factors": 2, "n_burn": 3,
                                                       "n_draws": 4}}  # fmt: skip
    out = tmp_path / "out"
    run_spec(parse_spec(raw, origin=tmp_path / "s.toml"), directory=out, progress=False)
    manifest = _check_manifest(out)
    assert "convergence.png" in manifest["files"]
    model = GibbsMPMA.load(out / "mpma.nc")
    assert (model.n_burn, model.n_draws, model.random_state) == (3, 4, 4)
    assert all(len(p.draws) == 4 for p in model.posteriors_)
    # the metrics are the saved model's own, on the run's seeded split
    ratings = pd.read_csv(tmp_path / "ratings.csv")
    metrics = pd.read_csv(out / "metrics.csv", index_col="split")
    seed = int(np.random.SeedSequence(4).generate_state(2)[0])
    train, test = _split(ratings, 0.25, seed)
    assert model.rmse(train) == pytest.approx(metrics.loc["train", "rmse"], rel=1e-12)
    assert model.rmse(test) == pytest.approx(metrics.loc["holdout", "rmse"], rel=1e-12)
    assert metrics.loc["holdout", "rmse"] < 0.85 * ratings["rating"].std()
    assert "Gibbs sweeps per component" in (out / "report.md").read_text()


@pytest.mark.slow
def test_mpma_nuts_run_on_small_data(tmp_path):
    raw = _mpma_raw(tmp_path, method="nuts", subsample=[40, 40], draws=300, tune=300,
                    chains=4)  # fmt: skip
    out = tmp_path / "out"
    result = run_spec(parse_spec(raw, origin=tmp_path / "s.toml"), directory=out,
                      progress=False)  # fmt: skip
    manifest = _check_manifest(out)
    assert result.verdict == manifest["verdict"]
    assert {"posterior.nc", "crosscheck.csv", "rank.png"} <= set(manifest["files"])
    table = pd.read_csv(out / "crosscheck.csv", index_col=0)
    assert list(table.index) == [f"{p}[{c}]" for p in ("weights", "sigmas")
                                 for c in ("global", "user", "item")]  # fmt: skip
    assert np.all(np.isfinite(table["z"]))


# ----------------------------------------------------------------------------- the registry


def test_unknown_family_names_the_registered_ones():
    with pytest.raises(
        SpecError, match=r"model\.family = 'hmm' is not allowed; use one of gmm, mpma"
    ):
        parse_spec(_minimal(model={"family": "hmm"}))


@pytest.mark.parametrize(
    ("family", "key", "match"),
    [
        (
            "gmm",
            {"model": {"options": {"n_factors": 2}}},
            r"model.options is for family = 'mpma'; with family = 'gmm', \[model\] takes "
            "family, n_components, covariance_type, order_feature, select, priors$",
        ),
        (
            "mpma",
            {"model": {"covariance_type": "diag"}},
            r"model.covariance_type is for family = 'gmm'; with family = 'mpma'",
        ),
        ("mpma", {"inference": {"em_n_init": 2}}, r"inference.em_n_init is for family = 'gmm'"),
        ("mpma", {"model": {"n_components": [2, 3]}}, "model.n_components is for family = 'gmm'"),
    ],
)
def test_a_key_of_another_family_names_it(family, key, match):
    raw = _minimal(**key)
    raw.setdefault("model", {})["family"] = family
    with pytest.raises(SpecError, match=match):
        parse_spec(raw)


def test_a_sweep_needs_nuts_before_anything_runs():
    with pytest.raises(SpecError, match=r"a sweep over K needs inference\.method = 'nuts'"):
        parse_spec(_minimal(model={"n_components": [1, 2]}, inference={"method": "map"}))


@pytest.fixture
def toy(monkeypatch):
    """The toy family of tests/workflow/toy_family.py, registered as "toy"."""
    from tests.workflow import toy_family

    monkeypatch.setitem(FAMILIES, "toy", "tests.workflow.toy_family")
    monkeypatch.setattr(toy_family, "MODE", "ok")
    return toy_family


def test_a_registered_family_runs_and_the_driver_writes_report_figures_manifest(tmp_path, toy):
    spec = parse_spec({"name": "t", "description": "toy", "data": {"source": "faithful"},
                       "model": {"family": "toy"}, "inference": {"seed": 5}})  # fmt: skip
    out = tmp_path / "toy"
    result = run_spec(spec, directory=out, progress=False)
    manifest = _check_manifest(out)
    assert sorted(manifest["files"]) == ["describe.csv", "report.md", "toy.png"]
    assert result.verdict == manifest["verdict"] == "agree" and manifest["toy"] is True
    assert manifest["spec"]["family"] == "toy"
    assert (out / "toy.png").read_bytes()[:8] == PNG_MAGIC
    seeds = [int(s) for s in np.random.SeedSequence(5).generate_state(2)]
    assert (out / "report.md").read_text() == (
        f"# t\n\ntoy\n\nToy data: 272 rows.\n\n## Toy\n\nseeds {seeds}\n\n"
        "## Figures\n\n![toy.png](toy.png)\n"
    )
    # a key of a real family is refused for the toy family, naming its owner
    with pytest.raises(SpecError, match=r"model\.select is for family = 'gmm'"):
        parse_spec(_minimal(model={"family": "toy", "select": "bic"}))


@pytest.mark.parametrize("mode", ["stray", "report"])
def test_a_family_writing_files_it_does_not_list_or_the_drivers_fails_cleanly(
    tmp_path, toy, monkeypatch, mode
):
    monkeypatch.setattr(toy, "MODE", mode)
    spec = parse_spec(_minimal(model={"family": "toy"}))
    with pytest.raises(RuntimeError, match="family 'toy' wrote"):
        run_spec(spec, directory=tmp_path / "toy", progress=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- targets


def _em_spec(tmp_path, source="faithful", **data):
    """A seconds-long EM spec (origin in tmp_path)."""
    raw = {"name": "em", "data": {"source": source, **data}, "model": {"n_components": 2},
           "inference": {"method": "em", "seed": 1}}  # fmt: skip
    return parse_spec(raw, origin=tmp_path / "spec.toml")


def _tree(path: Path) -> dict:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_directory_that_is_not_a_result_is_never_replaced(tmp_path, overwrite):
    target = tmp_path / "p"
    target.mkdir()
    (target / "thesis.tex").write_text("\\documentclass{article}")
    before = _tree(tmp_path)
    match = r"p exists and is not a bayesgmm run result \(no MANIFEST.json; it holds thesis.tex\)"
    with pytest.raises(FileExistsError, match=match + ".*nothing was changed"):
        run_spec(_em_spec(tmp_path), directory=target, overwrite=overwrite, progress=False)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_a_result_with_files_added_is_not_replaced(tmp_path):
    target = tmp_path / "p"
    run_spec(_em_spec(tmp_path), directory=target, progress=False)
    (target / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    with pytest.raises(FileExistsError, match=r"holds files that bayesgmm run did not write "
                       r"\(notes.txt\)"):  # fmt: skip
        run_spec(_em_spec(tmp_path), directory=target, overwrite=True, progress=False)
    assert _tree(tmp_path) == before
    (target / "notes.txt").unlink()
    run_spec(_em_spec(tmp_path), directory=target, overwrite=True, progress=False)
    _check_manifest(target)


def test_an_empty_directory_is_filled_with_overwrite(tmp_path):
    target = tmp_path / "p"
    target.mkdir()
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        run_spec(_em_spec(tmp_path), directory=target, progress=False)
    run_spec(_em_spec(tmp_path), directory=target, overwrite=True, progress=False)
    _check_manifest(target)


def test_a_file_or_a_link_is_refused_before_anything_is_touched(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("precious")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    before = _tree(tmp_path)
    for target, what in (
        (afile, "is a file, not a directory"),
        (tmp_path / "link", "is a symbolic link"),
    ):
        for overwrite in (False, True):
            with pytest.raises(FileExistsError, match=what):
                run_spec(_em_spec(tmp_path), directory=target, overwrite=overwrite, progress=False)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "elsewhere", "link"]


def test_cli_refuses_a_foreign_target_with_exit_status_2(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "thesis.tex").write_text("x")
    (tmp_path / "afile").write_text("y")
    spec = str(MODELS / "faithful_map.toml")
    for target, what in (("p", "is not a bayesgmm run result"), ("afile", "is a file")):
        argv = ["run", spec, "--out", str(tmp_path / target), "--overwrite", "--quiet"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"bayesgmm: error: {tmp_path / target} ") and what in err
    assert (tmp_path / "p" / "thesis.tex").read_text() == "x"
    assert (tmp_path / "afile").read_text() == "y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "p"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_of_dead_runs_is_removed_and_nothing_else(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead, alive = _dead_pid(), sleeper.pid
        names = {
            f".em.partial-{dead}": False,  # removed: the target's, its process is gone
            f".em.partial-{alive}": True,  # kept: a run still going
            ".em.partial-12x": True,  # kept: not the driver's pattern
            f".em.old-{dead}": True,
            f".emx.partial-{dead}": True,  # kept: another target's
            f"em.partial-{dead}": True,
        }
        for name in names:
            (tmp_path / name).mkdir()
            (tmp_path / name / "posterior.nc").write_text("half written")
        run_spec(_em_spec(tmp_path), directory=tmp_path / "em", progress=False)
        for name, kept in names.items():
            assert (tmp_path / name).exists() == kept, name
    finally:
        sleeper.kill()
        sleeper.wait()


# ----------------------------------------------------------------------------- data


def test_ignored_columns_are_reported_in_the_report_and_warned(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=40), "label": ["a"] * 40, "y": rng.normal(size=40)}
                 ).to_csv(tmp_path / "d.csv", index=False)  # fmt: skip
    with pytest.warns(UserWarning, match="d.csv: non-numeric columns ignored: label"):
        run_spec(_em_spec(tmp_path, "d.csv"), directory=tmp_path / "o", progress=False)
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Data: `d.csv`, 40 observations x 2 features (x, y).\n\nnon-numeric columns " \
           "ignored: label\n" in report  # fmt: skip
    # the CLI says it on stderr, as one line
    toml = tmp_path / "spec.toml"
    toml.write_text('name = "em"\n[data]\nsource = "d.csv"\n[inference]\nmethod = "em"\n')
    assert main(["run", str(toml), "--out", str(tmp_path / "o2"), "--quiet"]) == 0
    assert "bayesgmm: warning: d.csv: non-numeric columns ignored: label\n" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("content", "columns", "match"),
    [
        (
            "x1,x2\n1.0,2.0\n?,3.0\n4.0,5.0\n2.5,1.0\n",
            None,
            r"column 'x1' of .*d.csv is numeric but for 1 cell\(s\) that are not numbers "
            r"\(row 2: '\?'",
        ),
        (
            "x1,x2\n1.0,2.0\n?,3.0\n4.0,5.0\n2.5,n/a!\n",
            ["x1"],
            r"column 'x1' of .*d.csv is numeric but for 1 cell\(s\) .*row 2: '\?'",
        ),
        ("x1,x2\n", None, r"d.csv has a header row \(x1, x2\) but no data rows"),
        ("", None, r"could not read .*d.csv as CSV: the file is empty \(0 bytes\)"),
        ("\n\n", None, r"could not read .*d.csv as CSV: it has no header row"),
        (
            b"PK\x03\x04\x00\x00binary",
            None,
            r"could not read .*d.csv as CSV: it is not a text file",
        ),
        (b"a,b\n1,\xe9\n", None, r"could not read .*d.csv as CSV: it is not UTF-8 text"),
        ("x1,x2\n1,2\n", ["x3"], r"unknown column\(s\) \['x3'\] in .*d.csv; available: x1, x2"),
    ],
)
def test_bad_csv_files_are_errors_naming_the_file_and_the_problem(tmp_path, content, columns,
                                                                   match):  # fmt: skip
    path = tmp_path / "d.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    extra = {} if columns is None else {"columns": columns}
    with pytest.raises(ValueError, match=match):
        run_spec(_em_spec(tmp_path, "d.csv", **extra), directory=tmp_path / "o", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


# ----------------------------------------------------------------------------- shipped specs


def _reduced(spec):
    """``spec`` cut to seconds: fewer draws, K and factors, a small NUTS subsample."""
    changes = dict(chains=2, draws=40, tune=40, n_components=spec.n_components[:2],
                   subsample=(20, 20))  # fmt: skip
    if spec.family == "mpma":
        changes["options"] = {**spec.options, "n_factors": 1, "n_user_groups": 1,
                              "n_item_groups": 1}  # fmt: skip
        if spec.estimator == "gibbs":
            changes["options"] |= {"n_burn": 2, "n_draws": 2}
        else:
            changes["options"]["max_iter"] = 3
    return dataclasses.replace(spec, **changes)


#: Shipped specs whose reduced run is slow (MovieLens NUTS), or run in full elsewhere.
SLOW_SPECS = ("mpma_movielens.toml", "synthetic_3_clusters.toml")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, marks=[pytest.mark.slow] if path.name in SLOW_SPECS else [])
        for path in sorted(MODELS.glob("*.toml"))
    ],
    ids=lambda p: p.name,
)
def test_shipped_specs_run_in_reduced_form(tmp_path, path):
    spec = _reduced(load_spec(path))
    result = run_spec(spec, directory=tmp_path / spec.name, progress=False)
    manifest = _check_manifest(result.directory)
    assert "report.md" in manifest["files"]
    if spec.method == "nuts":
        assert result.verdict is not None
