"""Train/test splits that keep every rating and count the cold ones.

* :func:`random_split`: each rating goes to test independently with probability
  ``test_frac`` (the ML-32M report's protocol), with a fixed seed.
* :func:`leave_k_out`: for every user with more than ``k`` ratings, ``k`` of them
  chosen at random go to test.
* :func:`temporal_split`: the latest ``test_frac`` of ratings by timestamp go to
  test (a global time cutoff, so later users and items appear cold).

Both halves share the full dataset's id maps, so a test rating whose user or item
has no training rating stays in the test set; :meth:`Split.cold_counts` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.data_prep.dataset import Dataset

SPLITS = ("random", "user", "time")


@dataclass
class Split:
    train: Dataset
    test: Dataset
    kind: str

    def cold_counts(self) -> dict:
        """Test ratings whose user, item, or either has no rating in train."""
        return cold_counts(self.train, self.test)


def cold_counts(train: Dataset, test: Dataset) -> dict:
    """Counts of test ratings with a user or an item that has no training rating."""
    n_u, n_i = train.n_users, train.n_items
    tu, ti = test.user_of_entry, test.indices
    train_user_counts = np.zeros(max(n_u, test.n_users), dtype=np.int64)
    train_user_counts[:n_u] = train.user_counts
    train_item_counts = np.zeros(max(n_i, test.n_items), dtype=np.int64)
    train_item_counts[:n_i] = train.item_counts
    cold_u = train_user_counts[tu] == 0
    cold_i = train_item_counts[ti] == 0
    return {
        "test_ratings": int(test.n_ratings),
        "cold_user_ratings": int(cold_u.sum()),
        "cold_item_ratings": int(cold_i.sum()),
        "cold_ratings": int((cold_u | cold_i).sum()),
        "cold_users": int(np.unique(tu[cold_u]).size),
        "cold_items": int(np.unique(ti[cold_i]).size),
    }


def random_split(data: Dataset, test_frac: float = 0.1, seed: int = 42) -> Split:
    """Each rating to test with probability ``test_frac`` (fixed ``seed``)."""
    _check_frac(test_frac)
    test = np.random.default_rng(seed).random(data.n_ratings) < test_frac
    return Split(data.subset(~test), data.subset(test), "random")


def stream_values(seed: int, start: int, count: int) -> np.ndarray:
    """``np.random.default_rng(seed).random(n)[start:start + count]`` for any ``n >= start + count``, without
    drawing the values before ``start`` (PCG64 jumps ahead; :func:`random_split` draws one double per rating)."""
    rng = np.random.default_rng(seed)
    rng.bit_generator.advance(int(start))
    return rng.random(int(count))


#: doubles drawn at a time by :func:`below_at` and :func:`stream_below` (32 MB)
STREAM_CHUNK = 1 << 22


def below_at(seed: int, positions: np.ndarray, frac: float) -> np.ndarray:
    """``np.random.default_rng(seed).random(n)[positions] < frac`` (the test share of :func:`random_split`)
    as booleans for positions in any order, without a double per position: the stream is drawn in
    chunks of :data:`STREAM_CHUNK` (only those holding a position), as a block of a partitioned folder
    by item holds its ratings scattered over it."""
    positions = np.asarray(positions, dtype=np.int64)
    out = np.empty(positions.shape[0], dtype=bool)
    if positions.size == 0:
        return out
    size = max(STREAM_CHUNK, -(-(int(positions.max()) + 1) // 65535))  # at most 65535 chunks: uint16 keys
    chunk = (positions // size).astype(np.uint16)
    order = np.argsort(chunk, kind="stable")  # a radix sort on 16-bit keys
    ends = np.cumsum(np.bincount(chunk, minlength=int(chunk.max()) + 1))
    del chunk
    lo = 0
    for c, hi in enumerate(ends):
        if hi > lo:
            sel = order[lo:hi]
            first = c * size
            values = stream_values(seed, first, int(positions[sel].max()) - first + 1)
            out[sel] = values[positions[sel] - first] < frac
        lo = hi
    return out


def stream_below(seed: int, start: int, count: int, frac: float) -> np.ndarray:
    """``stream_values(seed, start, count) < frac`` as booleans, drawn :data:`STREAM_CHUNK` doubles at a time."""
    out = np.empty(int(count), dtype=bool)
    for lo in range(0, int(count), STREAM_CHUNK):
        hi = min(int(count), lo + STREAM_CHUNK)
        out[lo:hi] = stream_values(seed, int(start) + lo, hi - lo) < frac
    return out


def leave_k_out(data: Dataset, k: int = 1, seed: int = 42) -> Split:
    """``k`` random ratings of every user who has more than ``k`` to test."""
    if k < 1:
        raise FastMFError(f"leave-k-out needs k >= 1, got {k}")
    rng = np.random.default_rng(seed)
    rows = data.user_of_entry
    order = np.lexsort((rng.random(data.n_ratings), rows))
    rank = np.empty(data.n_ratings, dtype=np.int64)
    rank[order] = np.arange(data.n_ratings) - data.indptr[rows[order]]
    test = (rank < k) & (data.user_counts[rows] > k)
    return Split(data.subset(~test), data.subset(test), "user")


def temporal_split(data: Dataset, test_frac: float = 0.1) -> Split:
    """The latest ``test_frac`` of ratings by timestamp to test (ties broken by CSR order)."""
    _check_frac(test_frac)
    if data.timestamps is None:
        raise FastMFError(f"{data.source or 'dataset'}: a temporal split needs timestamps, and this data has none")
    n_test = int(round(test_frac * data.n_ratings))
    order = np.argsort(data.timestamps, kind="stable")
    test = np.zeros(data.n_ratings, dtype=bool)
    test[order[data.n_ratings - n_test :]] = True
    return Split(data.subset(~test), data.subset(test), "time")


def make_split(data: Dataset, kind: str = "random", test_frac: float = 0.1, seed: int = 42, k: int = 1) -> Split:
    """Dispatch on ``kind`` in ``random``, ``user`` (leave-k-out) and ``time``."""
    if kind == "random":
        return random_split(data, test_frac, seed)
    if kind == "user":
        return leave_k_out(data, k, seed)
    if kind == "time":
        return temporal_split(data, test_frac)
    raise FastMFError(f"unknown split '{kind}' (choose from {', '.join(SPLITS)})")


def train_test(
    data: Dataset, test: Dataset | None, split: str, test_frac: float | None, seed: int, k: int = 1
) -> tuple[Dataset, Dataset | None]:
    """``(train, test)`` for training and evaluating: the given ``test`` set (re-indexed on ``data``'s
    maps, with a ``test_frac`` share of ``data`` held out of training only if asked), or a ``split``
    of ``data`` (``test_frac`` defaults to 0.1; 0 trains on everything and tests on nothing, except
    that a leave-k-out split always holds out ``k`` per user)."""
    if test is not None:
        frac = 0.0 if test_frac is None else test_frac
        train = random_split(data, frac, seed).train if frac > 0 else data
        return train, train.align(test)
    frac = 0.1 if test_frac is None else test_frac
    if frac == 0 and split != "user":
        return data, None
    s = make_split(data, split, frac, seed, k)
    return s.train, s.test


def _check_frac(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise FastMFError(f"test fraction must be in [0, 1), got {p}")
