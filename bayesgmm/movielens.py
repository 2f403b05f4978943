"""Rating data: every GroupLens MovieLens release, and any (user, item, rating) file.

``load_movielens(release)`` reads one of the releases researchers report on, each in the
exact format GroupLens publishes it:

=============  ====================  =========================================  ==========
release        archive / file        format                                     ratings
=============  ====================  =========================================  ==========
100k           ml-100k/u.data        tab-separated, no header                   1..5
1m             ml-1m/ratings.dat     ``UserID::MovieID::Rating::Timestamp``     1..5
10m            ml-10M100K/ratings    ``::``-separated, as 1m                    0.5..5
               .dat
20m, 25m, 32m  ml-<r>/ratings.csv    CSV, header ``userId,movieId,rating,       0.5..5
                                     timestamp``
latest-small   ml-latest-small/      CSV as 20m                                 0.5..5
               ratings.csv
=============  ====================  =========================================  ==========

The archive is downloaded once from ``https://files.grouplens.org/datasets/movielens/`` into
a cache directory (``data_home``, else ``$BAYESGMM_DATA``, else ``~/.cache/bayesgmm``) and
unzipped there as GroupLens lays it out; a local copy is read in place. Every file read is
checked against the counts GroupLens publishes for the release (:data:`MOVIELENS_RELEASES`),
so a truncated download, a wrong file or an edited copy is refused with a message saying
what differs.

``load_ratings(path)`` reads any delimited (user, item, rating[, timestamp]) file.

Both return a DataFrame with columns ``user``, ``item``, ``rating`` (float64) and, when the
file has one, ``timestamp``, in file order, and record the rating scale in
``frame.attrs["rating_scale"]`` (:data:`RATING_SCALE_ATTR`): the release's published scale,
or the smallest and largest rating of a generic file. The MPMA estimators read it when
their ``rating_scale`` is left at None, so half-star data need no extra argument.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import pandas as pd

__all__ = [
    "MOVIELENS_100K_URL",
    "MOVIELENS_BASE_URL",
    "MOVIELENS_RELEASES",
    "RATING_SCALE_ATTR",
    "MovieLensRelease",
    "load_movielens",
    "load_ratings",
    "rating_scale_of",
]

#: Key of ``DataFrame.attrs`` under which the loaders record ``(low, high)``.
RATING_SCALE_ATTR = "rating_scale"
MOVIELENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
_COLUMNS = ("user", "item", "rating", "timestamp")
_ENV_DATA_HOME = "BAYESGMM_DATA"
_DEFAULT_DATA_HOME = Path("~") / ".cache" / "bayesgmm"
_DOWNLOAD_TIMEOUT_S = 60.0
_WHOLE_STARS = (1.0, 5.0, 1.0)
_HALF_STARS = (0.5, 5.0, 0.5)


@dataclass(frozen=True)
class MovieLensRelease:
    """One GroupLens MovieLens release: where its ratings are and what they must be.

    Attributes
    ----------
    name : str
        The name ``load_movielens`` takes ("100k", "1m", ...).
    title : str
        As GroupLens names it ("MovieLens 100K").
    archive : str
        File name of the zip under :data:`MOVIELENS_BASE_URL`.
    folder : str
        Top folder inside the zip.
    ratings_file : str
        The ratings file inside ``folder``.
    file_format : {"tab", "dat", "csv"}
        ``u.data`` (tab-separated, no header), ``::``-separated ``.dat`` (no header), or
        CSV with the header ``userId,movieId,rating,timestamp``.
    n_ratings : int
        Number of ratings GroupLens publishes for the release (README).
    n_users : int
        Distinct users in the ratings file.
    n_items : int or None
        Distinct items (movies) in the ratings file; None where only the upper bound
        ``max_items`` is checked.
    max_items : int
        Movies in the release (README), rated or only tagged: an upper bound on
        ``n_items``.
    stars : (low, high, step)
        The rating scale and its step (1 for whole stars, 0.5 for half stars).
    """

    name: str
    title: str
    archive: str
    folder: str
    ratings_file: str
    file_format: str
    n_ratings: int
    n_users: int
    n_items: int | None
    max_items: int
    stars: tuple[float, float, float]

    @property
    def url(self) -> str:
        """Download address of the release's zip."""
        return MOVIELENS_BASE_URL + self.archive

    @property
    def rating_scale(self) -> tuple[float, float]:
        """``(low, high)`` of the published scale."""
        return self.stars[0], self.stars[1]


#: The releases ``load_movielens`` reads. Counts: ratings and users as in GroupLens'
#: READMEs (ml-10m's README counts 71,567 users and 10,681 movies including those who only
#: tagged: 69,878 users and 10,677 movies have ratings); rated movies as counted in the
#: ratings files (ml-32m: only the README's 87,585 movies are checked, as an upper bound).
#: ``latest-small`` is the September 2018 snapshot; GroupLens updates "latest" releases, so
#: a newer snapshot fails the check by design (results on it are not comparable).
MOVIELENS_RELEASES: dict[str, MovieLensRelease] = {
    release.name: release
    for release in (
        MovieLensRelease("100k", "MovieLens 100K", "ml-100k.zip", "ml-100k", "u.data",
                         "tab", 100_000, 943, 1_682, 1_682, _WHOLE_STARS),
        MovieLensRelease("1m", "MovieLens 1M", "ml-1m.zip", "ml-1m", "ratings.dat",
                         "dat", 1_000_209, 6_040, 3_706, 3_952, _WHOLE_STARS),
        MovieLensRelease("10m", "MovieLens 10M", "ml-10m.zip", "ml-10M100K", "ratings.dat",
                         "dat", 10_000_054, 69_878, 10_677, 10_681, _HALF_STARS),
        MovieLensRelease("20m", "MovieLens 20M", "ml-20m.zip", "ml-20m", "ratings.csv",
                         "csv", 20_000_263, 138_493, 26_744, 27_278, _HALF_STARS),
        MovieLensRelease("25m", "MovieLens 25M", "ml-25m.zip", "ml-25m", "ratings.csv",
                         "csv", 25_000_095, 162_541, 59_047, 62_423, _HALF_STARS),
        MovieLensRelease("32m", "MovieLens 32M", "ml-32m.zip", "ml-32m", "ratings.csv",
                         "csv", 32_000_204, 200_948, None, 87_585, _HALF_STARS),
        MovieLensRelease("latest-small", "MovieLens latest-small", "ml-latest-small.zip",
                         "ml-latest-small", "ratings.csv", "csv", 100_836, 610, 9_724, 9_742,
                         _HALF_STARS),
    )
}  # fmt: skip

MOVIELENS_100K_URL = MOVIELENS_RELEASES["100k"].url
_CSV_HEADER = ["userId", "movieId", "rating", "timestamp"]
_DTYPES = {"user": "int64", "item": "int64", "rating": "float64", "timestamp": "int64"}


# ---------------------------------------------------------------------------
# Cache and download
# ---------------------------------------------------------------------------


def _resolve_data_home(data_home: str | os.PathLike[str] | None) -> Path:
    """`data_home`, else ``$BAYESGMM_DATA``, else ``~/.cache/bayesgmm``."""
    if data_home is None:
        data_home = os.environ.get(_ENV_DATA_HOME) or _DEFAULT_DATA_HOME
    return Path(data_home).expanduser()


def _ratings_candidates(root: Path, release: MovieLensRelease) -> list[Path]:
    """Where the release's ratings file may sit relative to `root`, in order of preference."""
    if root.is_file():
        return [root]
    return [root / release.folder / release.ratings_file, root / release.ratings_file]


def _write_atomically(source: BinaryIO, destination: Path) -> None:
    """Copy the stream `source` to `destination` via a temporary file and ``os.replace``.

    A reader never sees a partial `destination`: on any failure the temporary file is
    removed and `destination` is left as it was.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle, length=1 << 20)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _download(url: str, destination: Path) -> None:
    """Download `url` to `destination` atomically."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        _write_atomically(response, destination)


def _extract(archive: Path, root: Path, release: MovieLensRelease) -> Path:
    """Extract the release's folder from `archive` under `root`; return the ratings file.

    Each file is written atomically, and the ratings file last, so its presence means the
    extraction completed.
    """
    ratings_member = f"{release.folder}/{release.ratings_file}"
    with zipfile.ZipFile(archive) as zf:
        members = [info for info in zf.infolist() if not info.is_dir()]
        if ratings_member not in {info.filename for info in members}:
            raise ValueError(f"{archive} does not contain {ratings_member}")
        members.sort(key=lambda info: info.filename == ratings_member)
        for info in members:
            parts = PurePosixPath(info.filename).parts
            if parts[0] != release.folder or ".." in parts:
                continue  # not part of the dataset, or an unsafe path
            with zf.open(info) as source:
                _write_atomically(source, root.joinpath(*parts))
    return root / ratings_member


def _fetch(root: Path, release: MovieLensRelease) -> Path:
    """Make the release's ratings file exist under `root`, downloading the zip if needed."""
    archive = root / release.archive
    downloaded = False
    if not archive.is_file():
        try:
            _download(release.url, archive)
        except OSError as exc:  # includes urllib.error.URLError
            raise OSError(
                f"could not download {release.title} from {release.url} into {root}: {exc}. "
                "Download and unzip it by hand, then pass data_home=<folder containing "
                f"{release.folder}/{release.ratings_file}> or set ${_ENV_DATA_HOME}."
            ) from exc
        downloaded = True
    try:
        return _extract(archive, root, release)
    except (zipfile.BadZipFile, ValueError) as exc:
        if downloaded:
            archive.unlink(missing_ok=True)
            raise ValueError(
                f"the file downloaded from {release.url} is not the {release.title} "
                f"archive ({exc}); it has been removed, try again"
            ) from exc
        raise ValueError(
            f"{archive} is not a valid {release.title} archive ({exc}); delete it and "
            "call load_movielens again to download a fresh copy"
        ) from exc


# ---------------------------------------------------------------------------
# Parsers: one per published format
# ---------------------------------------------------------------------------


def _parse_error(path: Path, layout: str, exc: Exception) -> ValueError:
    return ValueError(f"could not parse {path} as {layout}: {exc}")


def _read_tab(path: Path) -> pd.DataFrame:
    """``u.data``: four tab-separated integer columns, no header."""
    try:
        return pd.read_csv(path, sep="\t", header=None, names=list(_COLUMNS), dtype=_DTYPES)
    except (ValueError, pd.errors.ParserError) as exc:
        raise _parse_error(
            path,
            "MovieLens u.data (four tab-separated integer columns: user, item, rating, "
            "timestamp)",
            exc,
        ) from exc


def _read_dat(path: Path) -> pd.DataFrame:
    """``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``, no header.

    Read by the C parser with ``:`` as the separator (every ``::`` leaves an empty field
    between two values), so a line with a stray or missing separator has the wrong
    number of fields and is refused.
    """
    layout = "MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp per line)"
    try:
        raw = pd.read_csv(
            path, sep=":", header=None, names=list("abcdefg"), usecols=[0, 1, 2, 3, 4, 5, 6],
            dtype={"a": "int64", "c": "int64", "e": "float64", "g": "int64"},
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as exc:
        raise _parse_error(path, layout, exc) from exc
    separators = raw[["b", "d", "f"]]
    if separators.notna().to_numpy().any():
        row = int(np.flatnonzero(separators.notna().to_numpy().any(axis=1))[0])
        raise _parse_error(path, layout, ValueError(f"line {row + 1} is not '::'-separated"))
    return pd.DataFrame(
        {"user": raw["a"], "item": raw["c"], "rating": raw["e"], "timestamp": raw["g"]}
    )


def _read_csv(path: Path) -> pd.DataFrame:
    """``ratings.csv``: header ``userId,movieId,rating,timestamp``, comma-separated."""
    layout = "MovieLens ratings.csv (header userId,movieId,rating,timestamp)"
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    if header != _CSV_HEADER:
        raise _parse_error(path, layout, ValueError(f"the header is {header!r}"))
    try:
        frame = pd.read_csv(
            path, header=0, names=list(_COLUMNS), dtype=_DTYPES, engine="c"
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise _parse_error(path, layout, exc) from exc
    return frame


_PARSERS = {"tab": _read_tab, "dat": _read_dat, "csv": _read_csv}


# ---------------------------------------------------------------------------
# Validation against the published counts
# ---------------------------------------------------------------------------


def _on_grid(values: np.ndarray, low: float, high: float, step: float) -> np.ndarray:
    """Whether each value is one of ``low, low + step, ..., high``."""
    steps = (values - low) / step
    return (values >= low) & (values <= high) & (steps == np.round(steps))


def _validate(ratings: pd.DataFrame, release: MovieLensRelease, path: Path) -> None:
    """Raise ValueError listing every way `ratings` differs from the published release."""
    n_users, n_items = ratings["user"].nunique(), ratings["item"].nunique()
    problems = []
    if len(ratings) != release.n_ratings:
        problems.append(f"expected {release.n_ratings:,} ratings, found {len(ratings):,}")
    if n_users != release.n_users:
        problems.append(f"expected {release.n_users:,} users, found {n_users:,}")
    if release.n_items is not None and n_items != release.n_items:
        problems.append(f"expected {release.n_items:,} items, found {n_items:,}")
    elif n_items > release.max_items:
        problems.append(f"expected at most {release.max_items:,} items, found {n_items:,}")
    low, high, step = release.stars
    rating = ratings["rating"].to_numpy()
    invalid = ~_on_grid(rating, low, high, step)
    if invalid.any():
        kind = "integers" if step == 1.0 else "half stars"
        examples = ", ".join(f"{value:g}" for value in np.unique(rating[invalid])[:5])
        problems.append(
            f"ratings must be {kind} in {low:g}..{high:g}, found {int(invalid.sum()):,} other "
            f"value(s): {examples}"
        )
    duplicates = int(ratings.duplicated(["user", "item"]).sum())
    if duplicates:
        problems.append(f"expected no duplicate (user, item) pairs, found {duplicates:,}")
    if problems:
        raise ValueError(
            f"{path} is not the {release.title} ratings file: "
            + "; ".join(problems)
            + ". A truncated or edited copy: delete it (and the zip beside it) to download "
            "a fresh one, or point data_home at an intact copy."
        )


def _release(name: str | MovieLensRelease) -> MovieLensRelease:
    if isinstance(name, MovieLensRelease):
        return name
    key = str(name).lower().removeprefix("ml-")
    if key not in MOVIELENS_RELEASES:
        supported = ", ".join(repr(k) for k in MOVIELENS_RELEASES)
        raise ValueError(f"unsupported MovieLens variant {name!r}; supported: {supported}")
    return MOVIELENS_RELEASES[key]


def load_movielens(
    variant: str | MovieLensRelease = "100k",
    *,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> pd.DataFrame:
    """Load a GroupLens MovieLens release's ratings, downloading them once if needed.

    Parameters
    ----------
    variant : {"100k", "1m", "10m", "20m", "25m", "32m", "latest-small"} or \
MovieLensRelease, default "100k"
        The release (an ``ml-`` prefix is accepted). See :data:`MOVIELENS_RELEASES` for
        its file, format and published counts. A :class:`MovieLensRelease` describes
        another file in one of the published layouts (e.g. a subset, with its own counts:
        ``dataclasses.replace(MOVIELENS_RELEASES["20m"], n_ratings=..., ...)``).
    data_home : str or os.PathLike or None, default None
        Where the data are, or should be cached. Any of: a folder containing the unzipped
        GroupLens folder (e.g. ``ml-100k/u.data``, ``ml-10M100K/ratings.dat``,
        ``ml-25m/ratings.csv``: the layout of the archive, and of the cache), a folder
        directly containing the ratings file, or the ratings file itself. When None, the
        ``BAYESGMM_DATA`` environment variable is used if set, else ``~/.cache/bayesgmm``.
    download : bool, default True
        If the ratings are not found there, download the release's zip from
        https://files.grouplens.org/datasets/movielens/ into that folder (atomically) and
        extract its folder beside it. A zip already in the folder is extracted without
        downloading. Later calls read the extracted copy.

    Returns
    -------
    pandas.DataFrame of shape (n_ratings, 4)
        Columns ``user`` (int64), ``item`` (int64), ``rating`` (float64: whole stars 1..5
        for 100k and 1m, half stars 0.5..5 for the others) and ``timestamp`` (int64,
        seconds since the Unix epoch, UTC), in the order of the file.
        ``attrs["rating_scale"]`` is the release's scale, ``(1.0, 5.0)`` or
        ``(0.5, 5.0)``; ``attrs["movielens"]`` the release name. Memory: 32 bytes per
        rating (about 1 GB for 32m).

    Raises
    ------
    ValueError
        If `variant` is unknown, the file cannot be parsed in the release's format, or it
        is not the published release: another number of ratings, users or items, a rating
        off the release's scale, or a repeated (user, item) pair. The message says what was
        found.
    FileNotFoundError
        If the ratings are not found and `download` is False; the message lists the
        paths tried.
    OSError
        If the download fails.

    Notes
    -----
    Source: F. M. Harper and J. A. Konstan (2015), "The MovieLens datasets: history and
    context", *ACM TiiS* 5(4), 19. GroupLens' licence asks that the data not be
    redistributed and that publications cite that paper.
    """
    release = _release(variant)
    root = _resolve_data_home(data_home)
    candidates = _ratings_candidates(root, release)
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        if not download or root.suffix in {".data", ".dat", ".csv"}:
            tried = ", ".join(str(candidate) for candidate in candidates)
            raise FileNotFoundError(
                f"{release.title} ratings not found; looked for {tried}. Point data_home "
                f"(or the {_ENV_DATA_HOME} environment variable) at a folder containing "
                f"{release.folder}/{release.ratings_file} or {release.ratings_file}, or at "
                f"the file itself, or call with download=True to fetch {release.url}."
            )
        path = _fetch(root, release)
    ratings = _PARSERS[release.file_format](path)
    _validate(ratings, release, path)
    ratings.attrs[RATING_SCALE_ATTR] = release.rating_scale
    ratings.attrs["movielens"] = release.name
    return ratings


# ---------------------------------------------------------------------------
# Any (user, item, rating) file
# ---------------------------------------------------------------------------


def _sniff_separator(first_line: str) -> str:
    for sep in ("::", "\t", ",", ";", "|"):
        if sep in first_line:
            return sep
    return r"\s+"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_ratings(
    path: str | os.PathLike[str],
    *,
    sep: str | None = None,
    header: bool | None = None,
    columns: tuple[int | str, ...] | None = None,
    rating_scale: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Read any delimited file of (user, item, rating[, timestamp]) rows.

    Parameters
    ----------
    path : str or os.PathLike
    sep : str or None, default None
        Field separator; None takes the first of ``::``, tab, ``,``, ``;``, ``|`` found in
        the first line, else runs of whitespace.
    header : bool or None, default None
        Whether the first line names the columns; None: yes if its third field is not a
        number.
    columns : tuple of int or str, or None, default None
        Which columns are user, item, rating and (optionally) timestamp, by position or by
        header name; None: the first three, and the fourth as timestamp if there is one.
    rating_scale : (low, high) or None, default None
        Recorded in ``attrs["rating_scale"]``; None: the smallest and largest rating in
        the file. Ratings outside a given scale are an error.

    Returns
    -------
    pandas.DataFrame
        Columns ``user``, ``item`` (ids as read: int64 when integral, else strings),
        ``rating`` (float64) and ``timestamp`` (int64) when present, in file order.

    Raises
    ------
    ValueError
        For an empty file, missing columns, non-numeric, NaN or infinite ratings, missing
        ids, ratings outside `rating_scale`, or repeated (user, item) pairs (aggregate
        them first).
    FileNotFoundError
        If `path` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ratings file not found: {path}")
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().rstrip("\r\n")
    if not first.strip():
        raise ValueError(f"{path} is empty: expected (user, item, rating) rows")
    sep = _sniff_separator(first) if sep is None else sep
    fields = first.split(sep) if sep != r"\s+" else first.split()
    if header is None:
        header = len(fields) < 3 or not _is_number(fields[2].strip())
    try:
        engine = "python" if len(sep) > 1 and sep != r"\s+" else "c"
        frame = pd.read_csv(
            path, sep=sep, header=0 if header else None, engine=engine, skipinitialspace=True
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"could not parse {path} with separator {sep!r}: {exc}") from exc
    if columns is None:
        columns = tuple(range(min(frame.shape[1], 4)))
    if len(columns) < 3 or frame.shape[1] < 3:
        raise ValueError(
            f"{path} has {frame.shape[1]} column(s); need user, item and rating: pass sep= "
            "or columns= to say where they are"
        )
    try:
        picked = [
            frame.iloc[:, c] if isinstance(c, int) else frame[c] for c in columns[:4]
        ]
    except (KeyError, IndexError) as exc:
        raise ValueError(
            f"column {exc} not in {path} (columns: {list(frame.columns)}); fix columns="
        ) from None
    out = pd.DataFrame(
        {name: column.to_numpy() for name, column in zip(_COLUMNS, picked, strict=False)}
    )
    _check_generic(out, path, rating_scale)
    if "timestamp" in out:
        out["timestamp"] = out["timestamp"].astype("int64")
    values = out["rating"].to_numpy()
    out.attrs[RATING_SCALE_ATTR] = (
        (float(values.min()), float(values.max()))
        if rating_scale is None
        else (float(rating_scale[0]), float(rating_scale[1]))
    )
    return out


def _check_generic(
    out: pd.DataFrame, path: Path, rating_scale: tuple[float, float] | None
) -> None:
    """Numeric finite ratings within the scale, no missing ids, no repeated pairs."""
    if len(out) == 0:
        raise ValueError(f"{path} has no rating rows")
    try:
        values = pd.to_numeric(out["rating"]).to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the rating column is not numeric ({exc})") from None
    out["rating"] = values
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: {int((~np.isfinite(values)).sum())} rating(s) are missing")
    for name in ("user", "item"):
        if out[name].isna().any():
            raise ValueError(f"{path}: {int(out[name].isna().sum())} row(s) lack a {name} id")
    if rating_scale is not None:
        low, high = (float(v) for v in rating_scale)
        outside = (values < low) | (values > high)
        if outside.any():
            raise ValueError(
                f"{path}: {int(outside.sum())} rating(s) lie outside rating_scale="
                f"({low:g}, {high:g}), e.g. {values[outside][0]:g}"
            )
    duplicates = int(out.duplicated(["user", "item"]).sum())
    if duplicates:
        raise ValueError(
            f"{path}: {duplicates} repeated (user, item) pair(s); aggregate them first, e.g. "
            "df.groupby(['user', 'item'], as_index=False)['rating'].mean()"
        )


def rating_scale_of(ratings: pd.DataFrame | np.ndarray) -> tuple[float, float]:
    """The rating scale of `ratings`: ``attrs["rating_scale"]`` when a loader recorded it,
    else the smallest and largest rating.

    Parameters
    ----------
    ratings : DataFrame with a ``rating`` column, or array-like of ratings of shape (N,)

    Raises
    ------
    ValueError
        If there are no finite ratings, or all are equal (no scale can be read).
    """
    if isinstance(ratings, pd.DataFrame):
        recorded = ratings.attrs.get(RATING_SCALE_ATTR)
        if recorded is not None:
            return float(recorded[0]), float(recorded[1])
        ratings = ratings["rating"]
    values = np.asarray(ratings, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        raise ValueError(
            "cannot read a rating scale from these ratings (none, or all equal): pass "
            "rating_scale=(low, high)"
        )
    return float(values.min()), float(values.max())

