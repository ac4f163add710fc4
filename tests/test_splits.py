"""Train/test splits: sizes, determinism, leave-k-out, temporal order, cold counts, nothing dropped."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import dataset_triples

from fastmf import Dataset
from fastmf.common.errors import FastMFError
from fastmf.data_prep.splits import cold_counts, leave_k_out, make_split, random_split, temporal_split


def _entries(d: Dataset) -> np.ndarray:
    """(user index, item index) of every rating as one int64 key per rating."""
    return d.user_of_entry.astype(np.int64) * d.n_items + d.indices


def assert_partition(full: Dataset, split) -> None:
    """train and test share the full id maps, do not overlap and together hold every rating."""
    tr, te = split.train, split.test
    assert tr.user_map == full.user_map and te.user_map == full.user_map
    assert tr.item_map == full.item_map and te.item_map == full.item_map
    assert tr.n_ratings + te.n_ratings == full.n_ratings
    assert np.intersect1d(_entries(tr), _entries(te)).size == 0
    assert sorted(dataset_triples(tr) + dataset_triples(te)) == dataset_triples(full)
    for part in (tr, te):
        assert part.indptr.dtype == np.int64 and part.indices.dtype == np.int32
        assert part.indptr[-1] == part.n_ratings


def _test_mask(full: Dataset, split) -> np.ndarray:
    return np.isin(_entries(full), _entries(split.test))


# --------------------------------------------------------------------------- random


@pytest.mark.parametrize("p", [0.1, 0.25])
def test_random_split_sizes(embedded, p):
    s = random_split(embedded, p, seed=7)
    assert s.kind == "random"
    assert_partition(embedded, s)
    n = embedded.n_ratings
    sd = math.sqrt(n * p * (1 - p))
    assert abs(s.test.n_ratings - n * p) < 5 * sd  # binomial: false alarm ~ 6e-7


def test_random_split_determinism(embedded):
    a = random_split(embedded, 0.2, seed=11)
    b = random_split(embedded, 0.2, seed=11)
    c = random_split(embedded, 0.2, seed=12)
    np.testing.assert_array_equal(_test_mask(embedded, a), _test_mask(embedded, b))
    np.testing.assert_array_equal(a.test.data, b.test.data)
    overlap = (_test_mask(embedded, a) & _test_mask(embedded, c)).sum()
    assert not np.array_equal(_test_mask(embedded, a), _test_mask(embedded, c))
    # two independent 20% draws share about 4% of the ratings, far from all of them
    assert overlap < 0.5 * a.test.n_ratings


def test_random_split_zero_fraction(embedded):
    s = random_split(embedded, 0.0)
    assert s.test.n_ratings == 0 and s.train.n_ratings == embedded.n_ratings
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(FastMFError):
            random_split(embedded, bad)


def test_random_split_cold_counts_independent(embedded):
    s = random_split(embedded, 0.3, seed=3)
    tr_users = set(s.train.user_of_entry.tolist())
    tr_items = set(s.train.indices.tolist())
    tu, ti = s.test.user_of_entry.tolist(), s.test.indices.tolist()
    cold_u = [u not in tr_users for u in tu]
    cold_i = [i not in tr_items for i in ti]
    assert s.cold_counts() == {
        "test_ratings": len(tu),
        "cold_user_ratings": sum(cold_u),
        "cold_item_ratings": sum(cold_i),
        "cold_ratings": sum(a or b for a, b in zip(cold_u, cold_i)),
        "cold_users": len({u for u, c in zip(tu, cold_u) if c}),
        "cold_items": len({i for i, c in zip(ti, cold_i) if c}),
    }
    # ml-latest-small has thousands of items with one rating: some must be cold, and kept in test
    assert s.cold_counts()["cold_items"] > 0


# --------------------------------------------------------------------------- leave-k-out


@pytest.mark.parametrize("k", [1, 3])
def test_leave_k_out_embedded(embedded, k):
    s = leave_k_out(embedded, k=k, seed=5)
    assert s.kind == "user"
    assert_partition(embedded, s)
    per_user = np.bincount(s.test.user_of_entry, minlength=embedded.n_users)
    eligible = embedded.user_counts > k
    assert np.all(per_user[eligible] == k)
    assert np.all(per_user[~eligible] == 0)
    assert s.test.n_ratings == k * int(eligible.sum())


def test_leave_k_out_small_users_and_seeds():
    # users with 1, 2, 3, 5 and 8 ratings; k = 2: only the users with 3, 5 and 8 are eligible
    counts = {"a": 1, "b": 2, "c": 3, "d": 5, "e": 8}
    users, items = [], []
    for u, c in counts.items():
        users += [u] * c
        items += list(range(c))
    d = Dataset.from_arrays(np.array(users), np.array(items), np.full(len(users), 3.0))
    s = leave_k_out(d, k=2, seed=1)
    assert_partition(d, s)
    test_users = d.user_map.ids[s.test.user_of_entry].tolist()
    assert {u: test_users.count(u) for u in counts} == {"a": 0, "b": 0, "c": 2, "d": 2, "e": 2}
    # the same seed picks the same ratings, other seeds pick others
    again = leave_k_out(d, k=2, seed=1)
    np.testing.assert_array_equal(_entries(again.test), _entries(s.test))
    picks = {tuple(_entries(leave_k_out(d, k=2, seed=sd).test)) for sd in range(10)}
    assert len(picks) > 1
    with pytest.raises(FastMFError):
        leave_k_out(d, k=0)


# --------------------------------------------------------------------------- temporal


@pytest.mark.parametrize("p", [0.1, 0.33])
def test_temporal_split_embedded(embedded, p):
    s = temporal_split(embedded, p)
    assert s.kind == "time"
    assert_partition(embedded, s)
    assert s.test.n_ratings == round(p * embedded.n_ratings)
    assert s.test.timestamps.min() >= s.train.timestamps.max()


def test_temporal_split_with_ties():
    # five ratings share the cutoff timestamp: whichever go to test, order must hold
    ts = np.array([1, 2, 3, 3, 3, 3, 3, 4, 5, 6])
    d = Dataset.from_arrays(np.arange(10) % 3, np.arange(10), np.full(10, 2.0), ts)
    s = temporal_split(d, 0.5)
    assert_partition(d, s)
    assert s.test.n_ratings == 5
    assert s.test.timestamps.min() >= s.train.timestamps.max()


def test_temporal_split_needs_timestamps():
    d = Dataset.from_arrays([1, 2], [1, 2], [3.0, 4.0])
    with pytest.raises(FastMFError, match="timestamps"):
        temporal_split(d, 0.5)


# --------------------------------------------------------------------------- cold counts, exactly


def _cold_case() -> Dataset:
    # users u1..u4, items a..d; timestamps make the last five ratings the test half:
    #   t=6 (u1, c): item c is new              -> cold item
    #   t=7 (u4, a): user u4 is new             -> cold user
    #   t=8 (u4, d): both new                   -> cold user and cold item
    #   t=9 (u2, c): item c still has no train  -> cold item
    #   t=10 (u3, b): both seen in train        -> warm
    rows = [
        ("u1", "a", 1),
        ("u1", "b", 2),
        ("u2", "a", 3),
        ("u2", "b", 4),
        ("u3", "a", 5),
        ("u1", "c", 6),
        ("u4", "a", 7),
        ("u4", "d", 8),
        ("u2", "c", 9),
        ("u3", "b", 10),
    ]
    users, items, ts = zip(*rows)
    return Dataset.from_arrays(np.array(users), np.array(items), np.arange(1, 11) / 2.0, np.array(ts))


COLD_EXPECTED = {
    "test_ratings": 5,
    "cold_user_ratings": 2,
    "cold_item_ratings": 3,
    "cold_ratings": 4,
    "cold_users": 1,
    "cold_items": 2,
}


def test_cold_counts_exact_temporal():
    d = _cold_case()
    s = temporal_split(d, 0.5)
    assert_partition(d, s)
    # the cold ratings are not dropped: all five are in test
    assert sorted(d.user_map.ids[s.test.user_of_entry].tolist()) == ["u1", "u2", "u3", "u4", "u4"]
    assert s.cold_counts() == COLD_EXPECTED


def test_cold_counts_exact_from_mask():
    d = _cold_case()
    mask = d.timestamps > 5
    assert cold_counts(d.subset(~mask), d.subset(mask)) == COLD_EXPECTED
    # no test ratings: nothing cold
    none = cold_counts(d, d.subset(np.zeros(d.n_ratings, bool)))
    assert none == {k: 0 for k in COLD_EXPECTED}


# --------------------------------------------------------------------------- make_split


def test_make_split_dispatch(embedded):
    cases = [
        (make_split(embedded, "random", 0.2, seed=9), random_split(embedded, 0.2, seed=9)),
        (make_split(embedded, "user", seed=9, k=2), leave_k_out(embedded, k=2, seed=9)),
        (make_split(embedded, "time", 0.2), temporal_split(embedded, 0.2)),
    ]
    for got, want in cases:
        assert got.kind == want.kind
        np.testing.assert_array_equal(_entries(got.test), _entries(want.test))
        np.testing.assert_array_equal(got.test.data, want.test.data)
        assert_partition(embedded, got)
    with pytest.raises(FastMFError, match="unknown split"):
        make_split(embedded, "items")
