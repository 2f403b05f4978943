"""Evaluation protocols for rating prediction, as named splitters.

A protocol turns a ratings DataFrame into folds: ``split(ratings)`` yields ``(train, test)``
arrays of row positions (``ratings.iloc[train]``), like scikit-learn's splitters, and
``fold_names`` labels them. Every method compared on one protocol sees the same folds.

==================  =========================================================================
name                folds
==================  =========================================================================
``u1`` .. ``u5``    GroupLens' ml-100k splits ``u1.base/u1.test`` .. ``u5``: test set ``i``
                    is lines ``20000 (i-1) + 1 .. 20000 i`` of ``u.data`` as distributed
                    (``mku.sh``: ``head -$((i*20000)) u.data | tail -20000``); 80,000 /
                    20,000 ratings, the five test sets partition the data
``u``               all five, in order (GroupLens' 5-fold cross-validation)
``ua``, ``ub``      GroupLens' ``ua``/``ub`` splits: each user's 1st..10th (``ua``) or
                    11th..20th (``ub``) rating in the order of ``u.data`` is in the test set
                    (``allbut.pl ua 1 10`` / ``allbut.pl ub 11 20``); 9,430 test ratings,
                    10 per user (every user has >= 20); ``ua.test`` and ``ub.test`` are
                    disjoint
``kfold``           random k-fold over the ratings: scikit-learn's ``KFold(n_splits,
                    shuffle=True, random_state=seed)`` (default 5 folds, seed 0: the folds of
                    ``benchmarks/mpma_movielens.py``)
``random-90-10``    ``n_repeats`` independent random 90/10 splits (scikit-learn's
                    ``ShuffleSplit(n_repeats, test_size=0.1, random_state=seed)``); test sets
                    of different repeats overlap (the ML-1M/ML-10M protocol of e.g. LLORMA,
                    I-AutoRec, GLocal-K)
``rendle2019``      10-fold cross-validation over the ratings as in Rendle, Zhang and Koren
                    (2019) on ML-10M (a random 90/10 split per fold); their folds were not
                    published, so the folds are those of myFM's reproduction script
                    (``KFold(10, shuffle=True, random_state=42)`` over ``ratings.dat`` in file
                    order)
==================  =========================================================================

The GroupLens splits are defined by line positions in ``u.data``, so they need the ml-100k
ratings in the order GroupLens distributes them (``load_movielens("100k")``, not sorted or
filtered); a frame that is not is refused. The test files GroupLens ships are sorted by
(user, item) (``sort -k 1,1n -k 2,2n``); the sets of ratings are the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, ShuffleSplit

from bayesgmm._validation import check_positive_int, check_seed

__all__ = [
    "PROTOCOLS",
    "GroupLensAllBut",
    "GroupLensUSplits",
    "Protocol",
    "RandomKFold",
    "RepeatedHoldout",
    "get_protocol",
]

#: Fingerprint of ml-100k's ``u.data`` in its distributed order: length, first and last
#: (user, item, rating) lines.
_U_DATA_LENGTH = 100_000
_U_DATA_FIRST = (196, 242, 3.0)
_U_DATA_LAST = (12, 203, 3.0)
_U_BLOCK = 20_000
#: Per-user rating ranks (in file order) that ``allbut.pl`` puts in each test set.
_ALLBUT_RANKS = {"ua": (1, 10), "ub": (11, 20)}


class Protocol:
    """Base class: a named way of splitting ratings into (train, test) folds.

    Subclasses implement :meth:`_folds`; :meth:`split` checks the input and yields
    ``(train, test)`` row positions.
    """

    name: str = ""

    def get_n_splits(self, ratings: pd.DataFrame | None = None) -> int:
        """Number of folds."""
        return len(self.fold_names)

    @property
    def fold_names(self) -> list[str]:
        """A label per fold, in the order :meth:`split` yields them."""
        raise NotImplementedError

    def split(self, ratings: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)``: int64 arrays of row positions, each sorted.

        Parameters
        ----------
        ratings : DataFrame with columns user, item, rating (n_ratings rows)
        """
        if not isinstance(ratings, pd.DataFrame) or not {"user", "item"} <= set(ratings):
            raise ValueError(
                "a protocol splits a ratings DataFrame with columns 'user', 'item', 'rating', "
                f"got {type(ratings).__name__}"
            )
        if len(ratings) < 2:
            raise ValueError(f"cannot split {len(ratings)} rating(s) into train and test sets")
        n = len(ratings)
        for test in self._folds(ratings):
            test = np.sort(np.asarray(test, dtype=np.int64))
            mask = np.ones(n, dtype=bool)
            mask[test] = False
            yield np.flatnonzero(mask), test

    def _folds(self, ratings: pd.DataFrame) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _check_u_data(ratings: pd.DataFrame, protocol: str) -> None:
    """Refuse a frame that is not ml-100k's ``u.data`` in its distributed order."""
    ok = len(ratings) == _U_DATA_LENGTH
    if ok:
        cols = ratings[["user", "item", "rating"]]
        first = tuple(cols.iloc[0].astype(float))
        last = tuple(cols.iloc[-1].astype(float))
        ok = first == tuple(map(float, _U_DATA_FIRST)) and last == tuple(map(float, _U_DATA_LAST))
    if not ok:
        raise ValueError(
            f"the GroupLens split {protocol!r} is defined on ml-100k's u.data in the order "
            "GroupLens distributes it (100,000 lines, first 196 242 3, last 12 203 3); pass "
            "load_movielens('100k') itself, not sorted, filtered or another release"
        )


class GroupLensUSplits(Protocol):
    """GroupLens' ml-100k ``u1`` .. ``u5`` splits (``mku.sh``): consecutive 20% blocks.

    Parameters
    ----------
    folds : sequence of int in 1..5, default (1, 2, 3, 4, 5)
        Which of ``u1`` .. ``u5``.
    """

    def __init__(self, folds: tuple[int, ...] = (1, 2, 3, 4, 5)):
        folds = tuple(int(f) for f in np.atleast_1d(folds))
        if not folds or any(f not in range(1, 6) for f in folds):
            raise ValueError(f"folds must be numbers in 1..5 (u1..u5), got {folds!r}")
        self.folds = folds
        self.name = "u" if folds == (1, 2, 3, 4, 5) else "+".join(f"u{f}" for f in folds)

    @property
    def fold_names(self) -> list[str]:
        return [f"u{f}" for f in self.folds]

    def _folds(self, ratings: pd.DataFrame) -> Iterator[np.ndarray]:
        _check_u_data(ratings, self.name)
        for f in self.folds:
            yield np.arange((f - 1) * _U_BLOCK, f * _U_BLOCK)


class GroupLensAllBut(Protocol):
    """GroupLens' ml-100k ``ua``/``ub`` splits (``allbut.pl``): 10 ratings per user held out.

    ``allbut.pl base start stop`` reads ``u.data`` line by line, counts each user's ratings
    so far, and writes a line to the test file when that count is in ``start..stop``: the
    user's 1st..10th ratings for ``ua``, 11th..20th for ``ub``, in file order. (Its fourth
    argument, a cap of 100,000 test lines, is never read by the script, and would not bind.)

    Parameters
    ----------
    which : {"ua", "ub"}
    """

    def __init__(self, which: str = "ua"):
        if which not in _ALLBUT_RANKS:
            raise ValueError(f"which must be 'ua' or 'ub', got {which!r}")
        self.which = which
        self.name = which

    @property
    def fold_names(self) -> list[str]:
        return [self.which]

    def _folds(self, ratings: pd.DataFrame) -> Iterator[np.ndarray]:
        _check_u_data(ratings, self.name)
        start, stop = _ALLBUT_RANKS[self.which]
        rank = ratings.groupby("user", sort=False).cumcount().to_numpy() + 1
        yield np.flatnonzero((rank >= start) & (rank <= stop))


class RandomKFold(Protocol):
    """Random k-fold over the ratings: ``KFold(n_splits, shuffle=True, random_state=seed)``.

    Parameters
    ----------
    n_splits : int, default 5
    seed : int, default 0
    name : str, default "kfold"
    """

    def __init__(self, n_splits: int = 5, seed: int = 0, name: str = "kfold"):
        check_positive_int(n_splits, "n_splits", minimum=2)
        check_seed(seed, "seed")
        if seed is None:
            raise ValueError("seed must be an int: a protocol's folds must be reproducible")
        self.n_splits, self.seed, self.name = int(n_splits), int(seed), name

    @property
    def fold_names(self) -> list[str]:
        return [f"fold {k}" for k in range(self.n_splits)]

    def _folds(self, ratings: pd.DataFrame) -> Iterator[np.ndarray]:
        if len(ratings) < self.n_splits:
            raise ValueError(f"{self.n_splits} folds need at least {self.n_splits} ratings")
        splitter = KFold(self.n_splits, shuffle=True, random_state=self.seed)
        for _, test in splitter.split(np.empty((len(ratings), 0))):
            yield test


class RepeatedHoldout(Protocol):
    """``n_repeats`` independent random train/test splits (test sets may overlap).

    Parameters
    ----------
    test_fraction : float, default 0.1
        Share of the ratings in each test set (``ceil(test_fraction * n)``).
    n_repeats : int, default 5
    seed : int, default 0
        ``ShuffleSplit(n_repeats, test_size=test_fraction, random_state=seed)``.
    """

    def __init__(self, test_fraction: float = 0.1, n_repeats: int = 5, seed: int = 0):
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        check_positive_int(n_repeats, "n_repeats")
        check_seed(seed, "seed")
        if seed is None:
            raise ValueError("seed must be an int: a protocol's folds must be reproducible")
        self.test_fraction, self.n_repeats, self.seed = float(test_fraction), int(n_repeats), seed
        percent = round(100 * self.test_fraction)
        self.name = f"random-{100 - percent}-{percent}"

    @property
    def fold_names(self) -> list[str]:
        return [f"repeat {k}" for k in range(self.n_repeats)]

    def _folds(self, ratings: pd.DataFrame) -> Iterator[np.ndarray]:
        splitter = ShuffleSplit(
            self.n_repeats, test_size=self.test_fraction, random_state=self.seed
        )
        for _, test in splitter.split(np.empty((len(ratings), 0))):
            yield test


#: Named protocols with their default settings (see the module docstring).
PROTOCOLS = {
    **{f"u{f}": (GroupLensUSplits, {"folds": (f,)}) for f in range(1, 6)},
    "u": (GroupLensUSplits, {}),
    "ua": (GroupLensAllBut, {"which": "ua"}),
    "ub": (GroupLensAllBut, {"which": "ub"}),
    "kfold": (RandomKFold, {}),
    "random-90-10": (RepeatedHoldout, {"test_fraction": 0.1}),
    "rendle2019": (RandomKFold, {"n_splits": 10, "seed": 42, "name": "rendle2019"}),
}


def get_protocol(protocol: str | Protocol, **params) -> Protocol:
    """A protocol by name (keyword arguments override its defaults), or ``protocol`` itself.

    Examples
    --------
    >>> get_protocol("u1").fold_names
    ['u1']
    >>> get_protocol("kfold", n_splits=10, seed=3).fold_names[-1]
    'fold 9'
    """
    if isinstance(protocol, Protocol):
        if params:
            raise ValueError("parameters can only be given with a protocol name")
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)} or pass a "
            "Protocol instance"
        )
    cls, defaults = PROTOCOLS[protocol]
    try:
        return cls(**(defaults | params))
    except TypeError as err:
        raise ValueError(f"protocol {protocol!r}: {err}") from None
