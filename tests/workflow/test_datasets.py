"""Tests for bayesgmm.datasets: bundled classics, make_mixture and the MovieLens loader."""

from __future__ import annotations

import dataclasses
import io
import itertools
import re
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesgmm import datasets
from bayesgmm.datasets import (
    BUNDLED_DATASETS,
    SyntheticMixture,
    ignored_columns_note,
    load_dataset,
    load_faithful,
    load_galaxies,
    load_geyser,
    load_movielens,
    load_table,
    make_mixture,
)
from bayesgmm.em.gaussian import COVARIANCE_TYPES
from tests.helpers import dense_covariances


@pytest.fixture(scope="session")
def u_data(shared_data: Path) -> Path:
    path = shared_data / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.fail(f"shared MovieLens ratings missing: expected {path}")
    return path


# ---------------------------------------------------------------------------
# Bundled datasets
# ---------------------------------------------------------------------------

BUNDLED = {
    "faithful": (load_faithful, (272, 2), ["eruptions", "waiting"]),
    "galaxies": (load_galaxies, (82, 1), ["velocity"]),
    "geyser": (load_geyser, (299, 2), ["waiting", "duration"]),
}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_shape_columns_dtypes(name: str) -> None:
    loader, shape, columns = BUNDLED[name]
    frame = loader()
    assert isinstance(frame, pd.DataFrame)
    assert frame.shape == shape
    assert list(frame.columns) == columns
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert not frame.isna().any().any()


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_equals_shared_copy(name: str, shared_data: Path) -> None:
    reference = pd.read_csv(shared_data / "classic" / f"{name}.csv").astype("float64")
    pd.testing.assert_frame_equal(BUNDLED[name][0](), reference)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_load_dataset_dispatches(name: str) -> None:
    pd.testing.assert_frame_equal(load_dataset(name), BUNDLED[name][0]())


def test_known_facts() -> None:
    faithful = load_faithful()
    assert faithful["eruptions"].mean() == pytest.approx(3.4878, abs=1e-4)
    assert faithful["waiting"].mean() == pytest.approx(70.897, abs=1e-3)
    galaxies = load_galaxies()["velocity"]
    assert (galaxies.min(), galaxies.max()) == (9172.0, 34279.0)
    assert galaxies.mean() == pytest.approx(20828.17, abs=0.01)
    assert galaxies.iloc[77] == 26690.0  # the MASS typo, kept as in MASS
    geyser = load_geyser()
    assert geyser["waiting"].mean() == pytest.approx(72.3144, abs=1e-4)


@pytest.mark.parametrize("bad", ["old_faithful", "", "Faithful", None])
def test_load_dataset_unknown_name(bad: object) -> None:
    with pytest.raises(ValueError, match="'faithful', 'galaxies', 'geyser'"):
        load_dataset(bad)  # type: ignore[arg-type]


def test_bundled_dataset_names() -> None:
    assert BUNDLED_DATASETS == tuple(BUNDLED)


# ---------------------------------------------------------------------------
# load_table: a CSV file or a bundled dataset
# ---------------------------------------------------------------------------


def test_load_table_bundled_and_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = load_table("faithful")
    assert (table.kind, table.ignored, table.note) == ("dataset", (), None)
    pd.testing.assert_frame_equal(table.frame, load_faithful())
    (tmp_path / "d.csv").write_text("id,x,name,y\n1,0.5,ann,2\n2,1.5,bob,3\n3,2.5,cy,1\n")
    table = load_table("d.csv", base=tmp_path)
    assert table.kind == "csv" and list(table.frame.columns) == ["id", "x", "y"]
    assert table.ignored == ("name",)
    assert table.note == ignored_columns_note(["name"]) == "non-numeric columns ignored: name"
    # named columns: in that order, nothing ignored; ids may be text with numeric=False
    assert list(load_table("d.csv", ["y", "x"], base=tmp_path).frame.columns) == ["y", "x"]
    with pytest.raises(ValueError, match=r"column\(s\) \['name'\] in .*d.csv are not numeric"):
        load_table("d.csv", ["x", "name"], base=tmp_path)
    table = load_table("d.csv", ["name", "x"], base=tmp_path, numeric=False)
    assert list(table.frame["name"]) == ["ann", "bob", "cy"] and table.ignored == ()
    # an existing path wins over a bundled name; relative paths resolve against base
    monkeypatch.chdir(tmp_path)
    (tmp_path / "faithful").write_text("v\n1\n2\n")
    assert load_table("faithful").kind == "csv"
    with pytest.raises(FileNotFoundError, match=r"looked for .*sub.nowhere\.csv\) nor a bundled"):
        load_table("nowhere.csv", base=tmp_path / "sub")


def test_load_table_names_the_bad_cells(tmp_path: Path) -> None:
    rows = ["x,y"] + [f"{i},{i % 3}" for i in range(20)]
    rows[4], rows[9], rows[12] = "3,?", "8,n/a!", "bad,1"
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError) as err:
        load_table(str(tmp_path / "d.csv"))
    message = str(err.value)
    assert "column 'x' of" in message and "row 12: 'bad'" in message
    (tmp_path / "d.csv").write_text("\n".join(rows[:12] + rows[13:]) + "\n")
    with pytest.raises(
        ValueError, match=r"column 'y' of .* 2 cell\(s\) .*\(row 4: '\?', row 9: 'n/a!'"
    ):
        load_table(str(tmp_path / "d.csv"))


# ---------------------------------------------------------------------------
# make_mixture
# ---------------------------------------------------------------------------


def _full(mixture: SyntheticMixture) -> np.ndarray:
    """Covariances as (k, d, d), built naively from the documented layouts."""
    return dense_covariances(mixture.covariances, mixture.covariance_type, *mixture.means.shape)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_make_mixture_shapes(covariance_type: str) -> None:
    n, k, d = 50, 4, 3
    mixture = make_mixture(n, k, d, seed=0, covariance_type=covariance_type)
    expected_cov_shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
    assert mixture.X.shape == (n, d) and mixture.X.dtype == np.float64
    assert mixture.labels.shape == (n,) and np.issubdtype(mixture.labels.dtype, np.integer)
    assert mixture.labels.min() >= 0 and mixture.labels.max() < k
    assert mixture.weights.shape == (k,)
    assert mixture.weights.sum() == pytest.approx(1.0) and (mixture.weights > 0).all()
    assert mixture.means.shape == (k, d)
    assert mixture.covariances.shape == expected_cov_shape[covariance_type]
    assert mixture.covariance_type == covariance_type


def test_make_mixture_is_frozen() -> None:
    mixture = make_mixture(10, 2, 2, seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mixture.X = np.zeros((10, 2))  # type: ignore[misc]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_make_mixture_reproducible(covariance_type: str) -> None:
    first = make_mixture(200, 3, 2, seed=42, covariance_type=covariance_type)
    second = make_mixture(200, 3, 2, seed=42, covariance_type=covariance_type)
    other = make_mixture(200, 3, 2, seed=43, covariance_type=covariance_type)
    for field in ("X", "labels", "weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert not np.array_equal(first.X, other.X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(("k", "d", "separation"), [(2, 1, 0.5), (5, 2, 1.0), (8, 5, 3.0)])
def test_make_mixture_separation(covariance_type: str, k: int, d: int, separation: float) -> None:
    for seed in range(5):
        mixture = make_mixture(10, k, d, separation, seed=seed, covariance_type=covariance_type)
        lambda_max = max(np.linalg.eigvalsh(cov).max() for cov in _full(mixture))
        bound = separation * np.sqrt(d * lambda_max)
        distances = [
            np.linalg.norm(mixture.means[i] - mixture.means[j])
            for i, j in itertools.combinations(range(k), 2)
        ]
        # Holds for every pair, and the closest pair sits on the bound.
        assert min(distances) >= bound * (1 - 1e-12)
        assert min(distances) == pytest.approx(bound, rel=1e-9)


def test_make_mixture_zero_separation_and_single_component() -> None:
    mixture = make_mixture(20, 3, 2, separation=0.0, seed=1)
    np.testing.assert_array_equal(mixture.means, np.zeros((3, 2)))
    single = make_mixture(20, 1, 3, seed=1)
    assert single.weights.tolist() == [1.0]
    assert (single.labels == 0).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_make_mixture_covariances_spd_and_bounded(covariance_type: str) -> None:
    mixture = make_mixture(10, 6, 4, seed=3, covariance_type=covariance_type)
    for cov in _full(mixture):
        np.testing.assert_allclose(cov, cov.T, rtol=0, atol=1e-12)
        eigenvalues = np.linalg.eigvalsh(cov)
        # The documented eigenvalue range [0.5, 2.0] (positive definite).
        assert eigenvalues.min() >= 0.5 - 1e-9
        assert eigenvalues.max() <= 2.0 + 1e-9
        np.linalg.cholesky(cov)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_make_mixture_sample_matches_parameters(covariance_type: str) -> None:
    n, k, d = 200_000, 4, 3
    mixture = make_mixture(n, k, d, separation=1.0, seed=7, covariance_type=covariance_type)
    covariances = _full(mixture)

    # Label frequencies ~ Multinomial(n, weights): within 5 binomial standard errors.
    frequencies = np.bincount(mixture.labels, minlength=k) / n
    standard_errors = np.sqrt(mixture.weights * (1 - mixture.weights) / n)
    assert np.all(np.abs(frequencies - mixture.weights) <= 5 * standard_errors)

    for component in range(k):
        rows = mixture.X[mixture.labels == component]
        n_j = len(rows)
        cov = covariances[component]
        # Per-label sample mean within 5 standard errors of the true mean.
        mean_se = np.sqrt(np.diag(cov) / n_j)
        assert np.all(np.abs(rows.mean(axis=0) - mixture.means[component]) <= 5 * mean_se)
        # Per-label sample covariance within 5 (Gaussian) standard errors of the truth.
        cov_se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n_j)
        assert np.all(np.abs(np.cov(rows, rowvar=False) - cov) <= 5 * cov_se)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be an integer >= 1"),
        ({"n": 2.5}, "n must be an integer >= 1"),
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": True}, "k must be an integer >= 1"),
        ({"d": -1}, "d must be an integer >= 1"),
        ({"separation": -0.1}, "separation must be a finite number >= 0"),
        ({"separation": float("nan")}, "separation must be a finite number >= 0"),
        ({"separation": float("inf")}, "separation must be a finite number >= 0"),
        ({"separation": 1e308}, "separation=.* is too large"),
        (
            {"covariance_type": "banana"},
            r"covariance_type must be one of \('full', 'tied', 'diag', 'spherical'\)",
        ),
    ],
)
def test_make_mixture_bad_arguments(kwargs: dict, match: str) -> None:
    arguments = {"n": 10, "k": 2, "d": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        make_mixture(**arguments, seed=0)


def test_make_mixture_accepts_numpy_integers() -> None:
    mixture = make_mixture(np.int64(5), np.int32(2), np.int64(2), seed=0)
    assert mixture.X.shape == (5, 2)


# ---------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Forbid network access, and isolate from the user's BAYESGMM_DATA and home cache."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.delenv("BAYESGMM_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _check_ml100k(ratings: pd.DataFrame) -> None:
    assert list(ratings.columns) == ["user", "item", "rating", "timestamp"]
    assert ratings.dtypes.to_dict() == {
        "user": np.dtype("int64"),
        "item": np.dtype("int64"),
        "rating": np.dtype("float64"),
        "timestamp": np.dtype("int64"),
    }
    assert len(ratings) == 100_000
    assert ratings["user"].nunique() == 943
    assert ratings["item"].nunique() == 1682
    assert (ratings["user"].min(), ratings["user"].max()) == (1, 943)
    assert (ratings["item"].min(), ratings["item"].max()) == (1, 1682)
    assert set(ratings["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ratings["rating"].mean() == pytest.approx(3.52986, abs=1e-5)
    assert not ratings.duplicated(["user", "item"]).any()


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    "relative", [".", "ml-100k", "ml-100k/u.data"], ids=["parent", "folder", "file"]
)
@pytest.mark.parametrize("as_str", [False, True], ids=["path", "str"])
def test_movielens_data_home_forms(shared_data: Path, relative: str, as_str: bool) -> None:
    target = shared_data / relative
    ratings = load_movielens(data_home=str(target) if as_str else target, download=False)
    _check_ml100k(ratings)


@pytest.mark.usefixtures("no_network")
def test_movielens_matches_raw_file(u_data: Path) -> None:
    raw = np.loadtxt(u_data, dtype=np.int64)
    ratings = load_movielens(data_home=u_data, download=False)
    np.testing.assert_array_equal(ratings.to_numpy(dtype=np.int64), raw)


@pytest.mark.usefixtures("no_network")
def test_movielens_env_var(monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    monkeypatch.setenv("BAYESGMM_DATA", str(shared_data))
    _check_ml100k(load_movielens(download=False))


@pytest.mark.usefixtures("no_network")
def test_movielens_argument_beats_env_var(
    monkeypatch: pytest.MonkeyPatch, shared_data: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("BAYESGMM_DATA", str(shared_data))
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        load_movielens(data_home=empty, download=False)
    monkeypatch.setenv("BAYESGMM_DATA", str(empty))
    _check_ml100k(load_movielens(data_home=shared_data, download=False))


@pytest.mark.usefixtures("no_network")
def test_movielens_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_movielens(data_home=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "ml-100k" / "u.data") in message
    assert str(tmp_path / "u.data") in message
    assert "data_home" in message and "BAYESGMM_DATA" in message


@pytest.mark.usefixtures("no_network")
def test_movielens_default_location_is_home_cache(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=re.escape(str(tmp_path / "home" / ".cache" / "bayesgmm"))
    ):
        load_movielens(download=False)


@pytest.mark.usefixtures("no_network")
def test_movielens_missing_file_path_does_not_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "u.data"))):
        load_movielens(data_home=tmp_path / "u.data")


@pytest.mark.usefixtures("no_network")
def test_movielens_unknown_variant(shared_data: Path) -> None:
    with pytest.raises(ValueError, match=r"'2m'.*'100k'.*'latest-small'"):
        load_movielens("2m", data_home=shared_data)


@pytest.mark.usefixtures("no_network")
def test_movielens_truncated_copy(u_data: Path, tmp_path: Path) -> None:
    lines = u_data.read_text().splitlines(keepends=True)
    (tmp_path / "u.data").write_text("".join(lines[:1000]))
    with pytest.raises(ValueError, match=r"expected 100,000 ratings, found 1,000"):
        load_movielens(data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
def test_movielens_bad_rating(u_data: Path, tmp_path: Path) -> None:
    lines = u_data.read_text().splitlines(keepends=True)
    user, item, _, timestamp = lines[0].split("\t")
    lines[0] = "\t".join([user, item, "7", timestamp])
    (tmp_path / "u.data").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"integers in 1\.\.5, found 1 other value\(s\): 7"):
        load_movielens(data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
def test_movielens_duplicate_pair(u_data: Path, tmp_path: Path) -> None:
    lines = u_data.read_text().splitlines(keepends=True)
    lines[1] = lines[0]
    (tmp_path / "u.data").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"no duplicate \(user, item\) pairs, found 1"):
        load_movielens(data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
def test_movielens_unparseable(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\tthree\t4\n")
    with pytest.raises(ValueError, match="could not parse"):
        load_movielens(data_home=tmp_path, download=False)


@pytest.fixture
def ml100k_zip(u_data: Path, tmp_path: Path) -> bytes:
    """Bytes of a zip laid out like GroupLens' ml-100k.zip, built from the shared u.data."""
    path = tmp_path / "served.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-100k/", "")
        zf.writestr("ml-100k/README", "MovieLens 100K (test copy)\n")
        zf.write(u_data, "ml-100k/u.data")
        zf.writestr("ml-100k/u.item", "1|Toy Story (1995)\n")
    return path.read_bytes()


class FakeServer:
    """Stands in for urllib.request.urlopen, serving fixed bytes and counting calls."""

    def __init__(self, payload: bytes, fail_after: int | None = None) -> None:
        self.payload = payload
        self.fail_after = fail_after
        self.urls: list[str] = []

    def __call__(self, url: str, *args: object, **kwargs: object) -> io.BytesIO:
        self.urls.append(url)
        if self.fail_after is None:
            return io.BytesIO(self.payload)
        return _BrokenStream(self.payload[: self.fail_after])


class _BrokenStream(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk:
            raise ConnectionResetError("connection dropped")
        return chunk


def _part_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".part")]


@pytest.mark.usefixtures("no_network")
def test_movielens_download_then_cache(
    monkeypatch: pytest.MonkeyPatch, ml100k_zip: bytes, tmp_path: Path
) -> None:
    server = FakeServer(ml100k_zip)
    monkeypatch.setattr(urllib.request, "urlopen", server)
    cache = tmp_path / "cache"

    _check_ml100k(load_movielens(data_home=cache))
    assert server.urls == [datasets.MOVIELENS_100K_URL]
    assert server.urls[0] == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert (cache / "ml-100k" / "u.data").is_file()
    assert (cache / "ml-100k" / "README").is_file()
    assert (cache / "ml-100k.zip").read_bytes() == ml100k_zip
    assert _part_files(cache) == []

    _check_ml100k(load_movielens(data_home=cache))
    _check_ml100k(load_movielens(data_home=cache, download=False))
    assert len(server.urls) == 1


@pytest.mark.usefixtures("no_network")
def test_movielens_download_to_home_cache(
    monkeypatch: pytest.MonkeyPatch, ml100k_zip: bytes, tmp_path: Path
) -> None:
    server = FakeServer(ml100k_zip)
    monkeypatch.setattr(urllib.request, "urlopen", server)
    _check_ml100k(load_movielens())
    assert (tmp_path / "home" / ".cache" / "bayesgmm" / "ml-100k" / "u.data").is_file()
    assert len(server.urls) == 1


@pytest.mark.usefixtures("no_network")
def test_movielens_existing_zip_is_extracted_without_download(
    ml100k_zip: bytes, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-100k.zip").write_bytes(ml100k_zip)
    _check_ml100k(load_movielens(data_home=cache))  # no_network would fail any download
    assert (cache / "ml-100k" / "u.data").is_file()


@pytest.mark.usefixtures("no_network")
def test_movielens_interrupted_download_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, ml100k_zip: bytes, tmp_path: Path
) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", FakeServer(ml100k_zip, fail_after=100_000))
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="could not download MovieLens 100K"):
        load_movielens(data_home=cache)
    assert not (cache / "ml-100k.zip").exists()
    assert not (cache / "ml-100k").exists()
    assert _part_files(cache) == []


@pytest.mark.usefixtures("no_network")
def test_movielens_corrupt_download_is_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = FakeServer(b"<html>captive portal</html>")
    monkeypatch.setattr(urllib.request, "urlopen", server)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="not the MovieLens 100K archive"):
        load_movielens(data_home=cache)
    assert not (cache / "ml-100k.zip").exists()
    assert _part_files(cache) == []
