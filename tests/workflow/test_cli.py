"""Tests for the ``bayesgmm`` command line (bayesgmm.cli)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.cli import main
from bayesgmm.datasets import ignored_columns_note, load_dataset


def run_json(capsys, *argv: str) -> dict:
    assert main(["fit", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_matches(summary: dict, X, **params) -> None:
    model = GaussianMixture(**params).fit(X)
    np.testing.assert_allclose(summary["weights"], model.weights_, rtol=1e-10, atol=0)
    np.testing.assert_allclose(summary["means"], model.means_, rtol=1e-10, atol=0)
    np.testing.assert_allclose(summary["covariances"], model.covariances_, rtol=1e-10, atol=0)
    assert summary["bic"] == pytest.approx(model.bic(X), rel=1e-10)
    assert summary["aic"] == pytest.approx(model.aic(X), rel=1e-10)
    assert summary["icl"] == pytest.approx(model.icl(X), rel=1e-10)
    assert summary["log_likelihood"] == pytest.approx(model.score(X) * len(X), rel=1e-10)
    assert summary["n_iter"] == model.n_iter_
    assert summary["converged"] == model.converged_


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "x": np.r_[rng.normal(0, 1, 60), rng.normal(6, 1, 40)],
            "label": ["a"] * 100,
            "y": rng.normal(0, 2, 100),
            "z": rng.normal(3, 1, 100),
        }
    )
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def test_text_report_faithful(capsys):
    assert main(["fit", "faithful", "-k", "2", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    X = load_dataset("faithful").to_numpy()
    model = GaussianMixture(2, random_state=4).fit(X)
    assert "faithful (bundled dataset), 272 samples, 2 feature(s): eruptions, waiting" in out
    assert "K = 2, covariance 'full', maximum likelihood" in out
    headers = [line for line in out.splitlines() if line.split() == ["eruptions", "waiting"]]
    assert len(headers) == 2  # one table per component
    assert "corr waiting" in out
    assert f"BIC             {model.bic(X):.6f}" in out
    assert f"ICL             {model.icl(X):.6f}" in out
    assert f"weight {model.weights_[0]:.6g}" in out
    assert "parameters      11" in out
    assert f"converged       yes ({model.n_iter_} iterations)" in out
    assert "degenerate" not in out


@pytest.mark.parametrize("covariance", ["tied", "diag", "spherical"])
def test_json_matches_estimator(capsys, covariance):
    argv = ["geyser", "-k", "3", "--covariance", covariance, "--n-init", "2", "--seed", "7"]
    summary = run_json(capsys, *argv, "--init", "k-means++", "--tol", "1e-5")
    X = load_dataset("geyser").to_numpy()
    params = dict(covariance_type=covariance, n_init=2, random_state=7, tol=1e-5)
    assert_matches(summary, X, n_components=3, init_params="k-means++", **params)
    assert summary["model"]["estimator"] == "ML"
    assert (summary["correlations"] is None) == (covariance != "tied")
    assert np.shape(summary["sds"]) == (3, 2)


def test_map_prior(capsys):
    summary = run_json(capsys, "galaxies", "-k", "3", "--prior", "default", "--seed", "2")
    X = load_dataset("galaxies").to_numpy()
    assert_matches(summary, X, n_components=3, prior="default", random_state=2)
    assert summary["model"]["estimator"] == "MAP"
    assert summary["model"]["prior"]["degrees_of_freedom"] > 0


def test_csv_input_and_columns(capsys, csv_path):
    summary = run_json(capsys, str(csv_path), "-k", "2")
    frame = pd.read_csv(csv_path)
    assert summary["data"]["features"] == ["x", "y", "z"]
    assert summary["data"]["ignored_columns"] == ["label"]
    assert_matches(summary, frame[["x", "y", "z"]].to_numpy(), n_components=2, random_state=0)

    summary = run_json(capsys, str(csv_path), "-k", "2", "--columns", "z, x")
    assert summary["data"]["features"] == ["z", "x"]
    assert_matches(summary, frame[["z", "x"]].to_numpy(), n_components=2, random_state=0)

    assert main(["fit", str(csv_path), "-k", "2", "--columns", "x"]) == 0
    out = capsys.readouterr().out
    assert "(CSV), 100 samples, 1 feature(s): x" in out
    assert "corr" not in out
    assert "ignored" not in out

    # the text report names the ignored column in the words `bayesgmm run` uses
    assert main(["fit", str(csv_path), "-k", "2"]) == 0
    assert f"       {ignored_columns_note(['label'])}\n" in capsys.readouterr().out


def test_existing_path_wins_over_dataset_name(capsys, tmp_path, monkeypatch):
    pd.DataFrame({"v": [1.0, 2.0, 3.0, 10.0, 11.0, 12.5]}).to_csv(
        tmp_path / "faithful", index=False
    )
    monkeypatch.chdir(tmp_path)
    summary = run_json(capsys, "faithful", "-k", "2")
    assert summary["data"]["kind"] == "csv"
    assert summary["data"]["n_samples"] == 6


def test_blank_cells_are_missing_values(capsys, tmp_path):
    """An empty CSV cell is a missing value, integrated out as GaussianMixture does."""
    path = tmp_path / "holes.csv"
    path.write_text("a,b\n1,2\n3,\n5,1\n2,2.5\n4,1.5\n")
    X = np.array([[1, 2], [3, np.nan], [5, 1], [2, 2.5], [4, 1.5]])
    assert_matches(run_json(capsys, str(path), "-k", "1"), X, n_components=1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuch.csv", "-k", "2"], "neither an existing file nor a bundled dataset"),
        (["faithful", "-k", "300"], "n_components=300"),
        (["faithful", "-k", "2", "--columns", "speed"], "unknown column(s) ['speed']"),
        (["{csv}", "-k", "2", "--columns", "x,label"], "column(s) ['label']"),
        (["{csv}", "-k", "2", "--columns", "x,,y"], "--columns must be distinct"),
        (["{bad}", "-k", "2"], "has no numeric columns"),
        (["{inf}", "-k", "1"], "contains inf"),
        (["{empty}", "-k", "1"], "could not read"),
        (["{empty}", "-k", "1"], "as CSV: the file is empty (0 bytes)"),
        (["{header}", "-k", "1"], "has a header row (a, b) but no data rows"),
        (["{binary}", "-k", "1"], "as CSV: it is not a text file"),
        (["{qmark}", "-k", "1"], "column 'b' of {qmark} is numeric but for 1 cell(s)"),
        (["{qmark}", "-k", "1", "--columns", "b"], "(row 2: '?'; rows counted from 1"),
        (["{dir}", "-k", "1"], "is a directory"),
        (["faithful", "-k", "2", "--reg-covar", "-1"], "reg_covar must be"),
    ],
)
def test_errors(capsys, tmp_path, csv_path, argv, message):
    (tmp_path / "bad.csv").write_text("name,city\nann,paris\nbob,rome\n")
    (tmp_path / "inf.csv").write_text("a,b\n1,2\n3,inf\n5,1\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "binary.csv").write_bytes(b"PK\x03\x04\x00\x00\x08\x00")
    (tmp_path / "qmark.csv").write_text("a,b\n1,2\n3,?\n5,1\n2,2\n")
    paths = {
        "csv": csv_path,
        "bad": tmp_path / "bad.csv",
        "inf": tmp_path / "inf.csv",
        "empty": tmp_path / "empty.csv",
        "header": tmp_path / "header.csv",
        "binary": tmp_path / "binary.csv",
        "qmark": tmp_path / "qmark.csv",
        "dir": tmp_path,
    }
    argv = [arg.format(**paths) for arg in argv]
    message = message.format(**paths)
    assert main(["fit", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("bayesgmm: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err
    if argv[0] == "nosuch.csv":
        assert "faithful, galaxies, geyser" in captured.err


@pytest.mark.parametrize(
    "argv",
    [["fit", "faithful"], ["fit", "faithful", "-k", "0"], ["fit", "faithful", "-k", "two"], []],
)
def test_usage_errors(capsys, argv):
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_datasets_command(capsys):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "samples", "features", "columns"]
    assert lines[1].split() == ["faithful", "272", "2", "eruptions,", "waiting"]
    assert lines[2].split() == ["galaxies", "82", "1", "velocity"]
    assert lines[3].split() == ["geyser", "299", "2", "waiting,", "duration"]


def test_console_script_matches_direct_fit():
    script = Path(sys.executable).with_name("bayesgmm")
    assert script.exists(), f"console script not installed at {script}"
    argv = [str(script), "fit", "faithful", "-k", "3", "--seed", "11", "--n-init", "2", "--json"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    X = load_dataset("faithful").to_numpy()
    assert_matches(summary, X, n_components=3, random_state=11, n_init=2)
