"""Tests for bayesgmm.movielens: every release's parser on a fixture in its exact published
format, validation against the published counts, the download path, and load_ratings.

Fixtures are a few lines written exactly as GroupLens publishes each file (separators,
header, whole or half stars); the published counts are swapped for the fixture's with
``dataclasses.replace`` so the whole path (layout, parser, validation) runs. No test uses
the network.
"""

from __future__ import annotations

import dataclasses
import io
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesgmm.movielens import (
    MOVIELENS_RELEASES,
    RATING_SCALE_ATTR,
    load_movielens,
    load_ratings,
    rating_scale_of,
)

# (user, item, rating, timestamp) rows shared by every fixture; the half-star releases
# get a half-star rating in row 2.
ROWS = [(1, 122, 5.0, 838985046), (1, 185, 4.5, 838983525), (2, 231, 1.0, 838983392),
        (3, 122, 3.0, 868245777), (3, 292, 0.5, 868245920)]  # fmt: skip
WHOLE_ROWS = [(u, i, max(1.0, float(np.ceil(r))), t) for u, i, r, t in ROWS]


def _rows(release: str) -> list[tuple]:
    return WHOLE_ROWS if MOVIELENS_RELEASES[release].stars[2] == 1.0 else ROWS


def _render(release: str, rows: list[tuple]) -> str:
    """The rows exactly as GroupLens writes the release's ratings file."""
    fmt = MOVIELENS_RELEASES[release].file_format
    if fmt == "tab":  # u.data: integers, tab-separated, no header
        return "".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows)
    if fmt == "dat":  # ratings.dat: UserID::MovieID::Rating::Timestamp (1m: whole stars)
        return "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in rows)
    # ratings.csv: header, ratings always with one decimal ("4.0", "3.5")
    return "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{i},{r:.1f},{t}\n" for u, i, r, t in rows
    )


def _fixture_release(name: str, rows: list[tuple]):
    users, items = {r[0] for r in rows}, {r[1] for r in rows}
    return dataclasses.replace(
        MOVIELENS_RELEASES[name],
        n_ratings=len(rows), n_users=len(users), n_items=len(items), max_items=len(items),
    )  # fmt: skip


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.delenv("BAYESGMM_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _write_release(root: Path, name: str, text: str) -> Path:
    release = MOVIELENS_RELEASES[name]
    path = root / release.folder / release.ratings_file
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_release_table_matches_grouplens() -> None:
    """Archive, folder, file and counts as GroupLens publishes them (READMEs)."""
    expected = {
        "100k": ("ml-100k.zip", "ml-100k", "u.data", "tab", 100_000, 943),
        "1m": ("ml-1m.zip", "ml-1m", "ratings.dat", "dat", 1_000_209, 6_040),
        "10m": ("ml-10m.zip", "ml-10M100K", "ratings.dat", "dat", 10_000_054, 69_878),
        "20m": ("ml-20m.zip", "ml-20m", "ratings.csv", "csv", 20_000_263, 138_493),
        "25m": ("ml-25m.zip", "ml-25m", "ratings.csv", "csv", 25_000_095, 162_541),
        "32m": ("ml-32m.zip", "ml-32m", "ratings.csv", "csv", 32_000_204, 200_948),
        "latest-small": ("ml-latest-small.zip", "ml-latest-small", "ratings.csv", "csv",
                         100_836, 610),
    }  # fmt: skip
    assert set(MOVIELENS_RELEASES) == set(expected)
    for name, (archive, folder, file, fmt, n_ratings, n_users) in expected.items():
        r = MOVIELENS_RELEASES[name]
        assert (r.archive, r.folder, r.ratings_file, r.file_format) == (archive, folder, file, fmt)
        assert (r.n_ratings, r.n_users) == (n_ratings, n_users)
        assert r.url == f"https://files.grouplens.org/datasets/movielens/{archive}"
        assert r.rating_scale == ((1.0, 5.0) if name in {"100k", "1m"} else (0.5, 5.0))


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", sorted(MOVIELENS_RELEASES))
def test_parser_reads_exact_format(name: str, tmp_path: Path) -> None:
    rows = _rows(name)
    _write_release(tmp_path, name, _render(name, rows))
    frame = load_movielens(_fixture_release(name, rows), data_home=tmp_path, download=False)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert frame.dtypes.astype(str).tolist() == ["int64", "int64", "float64", "int64"]
    np.testing.assert_array_equal(frame.to_numpy(), np.array(rows, dtype=float))
    assert frame.attrs[RATING_SCALE_ATTR] == MOVIELENS_RELEASES[name].rating_scale
    assert rating_scale_of(frame) == MOVIELENS_RELEASES[name].rating_scale


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", sorted(MOVIELENS_RELEASES))
def test_published_counts_refuse_a_fixture(name: str, tmp_path: Path) -> None:
    """The real release's counts: a 5-line copy is named as truncated, with the counts."""
    _write_release(tmp_path, name, _render(name, _rows(name)))
    release = MOVIELENS_RELEASES[name]
    with pytest.raises(ValueError, match=rf"expected {release.n_ratings:,} ratings, found 5"):
        load_movielens(name, data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("name", "line"),
    [("1m", "4::7::3\n"), ("10m", "4:7::3.5::838985046\n"), ("20m", "4,7,3.5\n"),
     ("25m", "4,7,3.5,8389850x6\n"), ("100k", "4 7 3 838985046\n")],
    ids=["dat-missing-field", "dat-single-colon", "csv-missing-field", "csv-bad-int", "tab"],
)  # fmt: skip
def test_truncated_or_malformed_line_is_refused(name: str, line: str, tmp_path: Path) -> None:
    rows = _rows(name)
    _write_release(tmp_path, name, _render(name, rows) + line)
    with pytest.raises(ValueError, match="could not parse"):
        load_movielens(_fixture_release(name, rows), data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
def test_csv_header_is_checked(tmp_path: Path) -> None:
    rows = _rows("25m")
    text = _render("25m", rows).replace("userId,movieId", "user,item", 1)
    _write_release(tmp_path, "25m", text)
    with pytest.raises(ValueError, match=r"header .*\['user', 'item', 'rating', 'timestamp'\]"):
        load_movielens(_fixture_release("25m", rows), data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("1m", "3.5", r"integers in 1\.\.5, found 1 other value\(s\): 3\.5"),
     ("10m", "5.5", r"half stars in 0\.5\.\.5, found 1 other value\(s\): 5\.5"),
     ("32m", "0.0", r"half stars in 0\.5\.\.5, found 1 other value\(s\): 0"),
     ("latest-small", "3.25", r"half stars .* 3\.25")],
)  # fmt: skip
def test_off_scale_rating_is_named(name: str, value: str, message: str, tmp_path: Path) -> None:
    rows = _rows(name)
    text = _render(name, rows).splitlines(keepends=True)
    sep = "," if name not in {"1m", "10m"} else "::"
    cut = 1 if sep == "," else 0  # the CSV header
    fields = text[cut].rstrip("\n").split(sep)
    fields[2] = value
    text[cut] = sep.join(fields) + "\n"
    _write_release(tmp_path, name, "".join(text))
    with pytest.raises(ValueError, match=message):
        load_movielens(_fixture_release(name, rows), data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
def test_users_and_items_are_counted(tmp_path: Path) -> None:
    rows = _rows("20m")
    _write_release(tmp_path, "20m", _render("20m", rows))
    release = dataclasses.replace(_fixture_release("20m", rows), n_users=4, n_items=3)
    with pytest.raises(ValueError, match=r"expected 4 users, found 3; expected 3 items, found 4"):
        load_movielens(release, data_home=tmp_path, download=False)
    bounded = dataclasses.replace(release, n_users=3, n_items=None, max_items=3)
    with pytest.raises(ValueError, match=r"expected at most 3 items, found 4"):
        load_movielens(bounded, data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
def test_duplicate_pair_is_refused(tmp_path: Path) -> None:
    rows = _rows("10m")
    _write_release(tmp_path, "10m", _render("10m", [*rows, rows[0]]))
    release = dataclasses.replace(_fixture_release("10m", rows), n_ratings=len(rows) + 1)
    with pytest.raises(ValueError, match=r"no duplicate \(user, item\) pairs, found 1"):
        load_movielens(release, data_home=tmp_path, download=False)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ["1m", "10m", "25m"])
def test_data_home_forms(name: str, tmp_path: Path) -> None:
    rows = _rows(name)
    path = _write_release(tmp_path, name, _render(name, rows))
    release = _fixture_release(name, rows)
    for home in (tmp_path, path.parent, path, str(path)):
        assert len(load_movielens(release, data_home=home, download=False)) == len(rows)


@pytest.mark.usefixtures("no_network")
def test_missing_release_names_its_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_movielens("ml-10m", data_home=tmp_path, download=False)
    assert str(tmp_path / "ml-10M100K" / "ratings.dat") in str(info.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-10m.zip" in str(info.value)


class _Server:
    def __init__(self, payload: bytes) -> None:
        self.payload, self.urls = payload, []

    def __call__(self, url: str, *args: object, **kwargs: object) -> io.BytesIO:
        self.urls.append(url)
        return io.BytesIO(self.payload)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ["10m", "latest-small"])
def test_download_extracts_grouplens_layout(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release = MOVIELENS_RELEASES[name]
    rows = _rows(name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{release.folder}/", "")
        zf.writestr(f"{release.folder}/README.txt", "test copy\n")
        zf.writestr(f"{release.folder}/{release.ratings_file}", _render(name, rows))
    server = _Server(buffer.getvalue())
    monkeypatch.setattr(urllib.request, "urlopen", server)
    cache = tmp_path / "cache"
    frame = load_movielens(_fixture_release(name, rows), data_home=cache)
    assert server.urls == [release.url]
    assert (cache / release.archive).is_file()
    assert (cache / release.folder / release.ratings_file).is_file()
    assert len(frame) == len(rows)
    load_movielens(_fixture_release(name, rows), data_home=cache)
    assert len(server.urls) == 1  # read from the cache


@pytest.mark.usefixtures("no_network")
def test_shared_ml100k_matches_published_scale(shared_data: Path) -> None:
    frame = load_movielens("100k", data_home=shared_data, download=False)
    assert frame.attrs[RATING_SCALE_ATTR] == (1.0, 5.0)
    assert frame.attrs["movielens"] == "100k"
    sub = frame[["user", "item", "rating"]].iloc[:10]
    assert rating_scale_of(sub) == (1.0, 5.0)  # attrs survive selection


# ---------------------------------------------------------------------------
# load_ratings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [("1\t10\t4\n2\t10\t3.5\n2\t11\t0.5\n", {}),
     ("u,i,r\n1,10,4\n2,10,3.5\n2,11,0.5\n", {}),
     ("1::10::4::5\n2::10::3.5::6\n2::11::0.5::7\n", {}),
     ("1 10 4\n2  10 3.5\n2 11 0.5\n", {}),
     ("r;who;what\n4;1;10\n3.5;2;10\n0.5;2;11\n", {"columns": ("who", "what", "r")})],
    ids=["tab", "csv-header", "dat-timestamp", "whitespace", "named-columns"],
)  # fmt: skip
def test_load_ratings_formats(text: str, kwargs: dict, tmp_path: Path) -> None:
    path = tmp_path / "ratings.txt"
    path.write_text(text)
    frame = load_ratings(path, **kwargs)
    np.testing.assert_array_equal(frame["user"].to_numpy(), [1, 2, 2])
    np.testing.assert_array_equal(frame["item"].to_numpy(), [10, 10, 11])
    np.testing.assert_array_equal(frame["rating"].to_numpy(), [4.0, 3.5, 0.5])
    assert frame.attrs[RATING_SCALE_ATTR] == (0.5, 4.0)


def test_load_ratings_timestamp_and_given_scale(tmp_path: Path) -> None:
    path = tmp_path / "r.dat"
    path.write_text("1::10::4::5\n2::10::3.5::6\n")
    frame = load_ratings(path, rating_scale=(0.5, 5))
    assert frame["timestamp"].tolist() == [5, 6]
    assert frame.attrs[RATING_SCALE_ATTR] == (0.5, 5.0)
    with pytest.raises(ValueError, match=r"outside rating_scale=\(1, 3\), e\.g\. 4"):
        load_ratings(path, rating_scale=(1, 3))


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("1,2,x\n3,4,5\n", "not numeric"), ("1,2\n", r"need user, item and rating"),
     ("1,2,3\n1,2,4\n", r"1 repeated \(user, item\) pair"), ("1,2,3\n,2,4\n", "lack a user id")],
)  # fmt: skip
def test_load_ratings_bad_files(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_ratings(path, header=False)


def test_rating_scale_of_without_attrs() -> None:
    frame = pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [1.5, 4.5]})
    assert rating_scale_of(frame) == (1.5, 4.5)
    with pytest.raises(ValueError, match="pass rating_scale"):
        rating_scale_of(np.array([3.0, 3.0]))
