"""The in-memory Dataset: embedded ml-latest-small counts, CSR/CSC against scipy, duplicates.

The reference matrices are built with scipy.sparse from the raw CSV read by the
``csv`` module (``conftest.embedded_scipy``), never from fastmf's own arrays.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from conftest import ML_LATEST_SMALL, dataset_triples, embedded_folder, genres_of

import fastmf
from fastmf import Dataset, IdMap
from fastmf.data_prep.dataset import DuplicateRatingsWarning

# --------------------------------------------------------------------------- embedded ml-latest-small


def test_embedded_counts_match_csv_and_published_numbers(embedded, embedded_ref):
    n_ratings = embedded_ref.users.size
    n_users = np.unique(embedded_ref.users).size
    n_items = np.unique(embedded_ref.items).size
    # independent count from the CSV ...
    assert (embedded.n_ratings, embedded.n_users, embedded.n_items) == (n_ratings, n_users, n_items)
    # ... and the numbers GroupLens publishes (datasets.md)
    assert (n_ratings, n_users, n_items) == (
        ML_LATEST_SMALL["ratings"],
        ML_LATEST_SMALL["users"],
        ML_LATEST_SMALL["rated_items"],
    )
    assert len(embedded_ref.movies) == ML_LATEST_SMALL["listed_items"]
    assert embedded.items_table.num_rows == ML_LATEST_SMALL["listed_items"]
    assert embedded.global_mean == pytest.approx(embedded_ref.ratings.mean(), abs=1e-9)


def test_embedded_id_maps(embedded, embedded_scipy):
    np.testing.assert_array_equal(embedded.user_map.ids, embedded_scipy["user_ids"])
    np.testing.assert_array_equal(embedded.item_map.ids, embedded_scipy["item_ids"])
    for m in (embedded.user_map, embedded.item_map):
        np.testing.assert_array_equal(m.index_of(m.ids), np.arange(len(m), dtype=np.int32))
        np.testing.assert_array_equal(m.ids[m.index_of(m.ids[::-1])], m.ids[::-1])
    # ml-latest-small ids are not contiguous: the largest movieId is far beyond the item count
    assert embedded.item_map.ids.max() > 10 * embedded.n_items


def test_embedded_titles_and_genres(embedded, embedded_ref):
    for item in embedded.item_map.ids[::97].tolist():
        title, genres = embedded_ref.movies[item]
        assert embedded.title_of(embedded.item_map.index(item)) == title
        assert genres_of(embedded, item) == genres
    no_genre = [m for m, (_, g) in embedded_ref.movies.items() if not g and m in set(embedded.item_map.ids.tolist())]
    assert no_genre, "ml-latest-small has rated movies with (no genres listed)"
    for item in no_genre:
        assert genres_of(embedded, item) == ()
    names = sorted({g for _, gs in embedded_ref.movies.values() for g in gs})
    assert sorted(embedded.feature_names) == names


def test_csr_matches_scipy_from_raw_csv(embedded, embedded_scipy):
    indptr, indices, data = embedded.csr
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and data.dtype == np.float32
    assert embedded.timestamps.dtype == np.int64
    ref = embedded_scipy["ratings"]
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(data, ref.data.astype(np.float32))
    np.testing.assert_array_equal(embedded.timestamps, embedded_scipy["timestamps"].data)
    # indices strictly increasing within every row (sorted, no duplicate pairs)
    rows = np.repeat(np.arange(embedded.n_users), np.diff(indptr))
    same_row = rows[1:] == rows[:-1]
    assert np.all(np.diff(indices)[same_row] > 0)
    assert (embedded.to_scipy() != ref).nnz == 0


def test_csc_matches_csr_and_scipy(embedded, embedded_scipy):
    cptr, cidx, cdat = embedded.csc
    assert cptr.dtype == np.int64 and cidx.dtype == np.int32 and cdat.dtype == np.float32
    ref = embedded_scipy["ratings"].tocsc()
    ref.sort_indices()
    np.testing.assert_array_equal(cptr, ref.indptr)
    np.testing.assert_array_equal(cidx, ref.indices)
    np.testing.assert_array_equal(cdat, ref.data.astype(np.float32))
    # and the CSC is the transpose of fastmf's own CSR
    csr = sp.csr_matrix((embedded.data, embedded.indices, embedded.indptr), shape=(embedded.n_users, embedded.n_items))
    csc_as_csr = sp.csr_matrix((cdat, cidx, cptr), shape=(embedded.n_items, embedded.n_users))
    assert (csr.T.tocsr() != csc_as_csr).nnz == 0
    np.testing.assert_array_equal(embedded.item_counts, np.diff(ref.indptr))
    np.testing.assert_array_equal(embedded.user_counts, np.diff(embedded_scipy["ratings"].indptr))


def test_user_of_entry(embedded):
    expected = np.repeat(np.arange(embedded.n_users, dtype=np.int32), np.diff(embedded.indptr))
    np.testing.assert_array_equal(embedded.user_of_entry, expected)


# --------------------------------------------------------------------------- constructors


def _random_triples(rng, n_users=40, n_items=60, n=500, str_ids=False):
    cells = rng.choice(n_users * n_items, size=n, replace=False)
    users = (cells // n_items) * 7 + 3  # sparse, non-contiguous ids
    items = (cells % n_items) * 11 + 1
    if str_ids:
        users = np.array([f"user{u}" for u in users])
    ratings = rng.integers(1, 11, size=n) / 2.0
    ts = rng.integers(0, 10**9, size=n)
    return users, items, ratings, ts


@pytest.mark.parametrize("str_ids", [False, True])
def test_from_arrays_matches_scipy(str_ids):
    rng = np.random.default_rng(3)
    users, items, ratings, ts = _random_triples(rng, str_ids=str_ids)
    d = Dataset.from_arrays(users, items, ratings, ts)
    assert dataset_triples(d) == sorted(zip(users.tolist(), items.tolist(), ratings.tolist(), ts.tolist()))
    uids, ui = np.unique(users, return_inverse=True)
    iids, ii = np.unique(items, return_inverse=True)
    ref = sp.csr_matrix((ratings.astype(np.float32), (ui, ii)), shape=(uids.size, iids.size))
    ref.sort_indices()
    np.testing.assert_array_equal(d.indptr, ref.indptr)
    np.testing.assert_array_equal(d.indices, ref.indices)
    np.testing.assert_array_equal(d.data, ref.data)
    cptr, cidx, cdat = d.csc
    refc = ref.tocsc()
    refc.sort_indices()
    np.testing.assert_array_equal(cptr, refc.indptr)
    np.testing.assert_array_equal(cidx, refc.indices)
    np.testing.assert_array_equal(cdat, refc.data)


def test_from_scipy_and_from_table():
    m = sp.random(30, 20, density=0.2, random_state=np.random.RandomState(1), format="csr", dtype=np.float64)
    m.data = np.round(m.data * 9 + 1) / 2
    d = Dataset.from_scipy(m)
    assert (d.n_users, d.n_items, d.n_ratings) == (30, 20, m.nnz)
    assert (d.to_scipy() != m.astype(np.float32)).nnz == 0
    t = pa.table({"userId": [5, 5, 9], "movieId": ["a", "b", "a"], "rating": [1, 2, 3]})
    d2 = Dataset.from_table(t)
    assert dataset_triples(d2) == [(5, "a", 1.0, None), (5, "b", 2.0, None), (9, "a", 3.0, None)]
    with pytest.raises(ValueError, match="rating"):
        Dataset.from_table(pa.table({"userId": [1], "movieId": [2]}))


# --------------------------------------------------------------------------- duplicates


def test_duplicates_keep_latest_by_timestamp_and_warn():
    # (user, item, rating, timestamp): pair (1, 10) three times, latest is the FIRST line;
    # pair (2, 20) twice, latest is the last line; (3, 30) twice with equal timestamps.
    rows = [
        (1, 10, 5.0, 300),
        (1, 10, 1.0, 100),
        (2, 20, 2.0, 50),
        (1, 11, 3.0, 10),
        (1, 10, 2.0, 200),
        (3, 30, 1.5, 70),
        (2, 20, 4.5, 60),
        (3, 30, 2.5, 70),
    ]
    u, i, r, t = (np.array(c) for c in zip(*rows))
    with pytest.warns(DuplicateRatingsWarning, match=r"\b4 duplicate") as rec:
        d = Dataset.from_arrays(u, i, r, t)
    assert len(rec) == 1
    assert dataset_triples(d) == [
        (1, 10, 5.0, 300),  # latest timestamp wins even though it comes first in the file
        (1, 11, 3.0, 10),
        (2, 20, 4.5, 60),
        (3, 30, 2.5, 70),  # equal timestamps: the last one in file order
    ]
    np.testing.assert_array_equal(d.indptr, [0, 2, 3, 4])
    # the CSC agrees after duplicate removal
    assert d.csc[1].size == 4


def test_duplicates_without_timestamps_keep_last():
    with pytest.warns(DuplicateRatingsWarning, match=r"\b1 duplicate"):
        d = Dataset.from_arrays([1, 1, 2], [7, 7, 7], [1.0, 4.0, 2.0])
    assert dataset_triples(d) == [(1, 7, 4.0, None), (2, 7, 2.0, None)]


def test_no_warning_without_duplicates(embedded):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateRatingsWarning)
        Dataset.from_arrays([1, 2, 1], [1, 1, 2], [1.0, 2.0, 3.0])


# --------------------------------------------------------------------------- subsets


def test_subset_keeps_maps_and_selected_ratings(embedded):
    rng = np.random.default_rng(0)
    mask = rng.random(embedded.n_ratings) < 0.3
    sub = embedded.subset(mask)
    assert sub.user_map is embedded.user_map and sub.item_map is embedded.item_map
    assert sub.n_ratings == int(mask.sum())
    full = embedded.to_scipy()
    part = sub.to_scipy()
    assert part.shape == full.shape
    rows = embedded.user_of_entry[mask]
    cols = embedded.indices[mask]
    np.testing.assert_array_equal(np.asarray(part[rows, cols]).ravel(), embedded.data[mask])
    np.testing.assert_array_equal(sub.timestamps, embedded.timestamps[mask])
    assert part.nnz == sub.n_ratings


def test_load_dataset_is_fresh(embedded):
    """load_dataset() with no argument is the embedded copy (and loading twice gives equal data)."""
    again = fastmf.load_dataset()
    assert again.user_map == embedded.user_map and again.item_map == embedded.item_map
    np.testing.assert_array_equal(again.data, embedded.data)
    assert IdMap(again.item_map.ids) == embedded.item_map


# --------------------------------------------------------------------------- prepared folders, streamed


@pytest.fixture(scope="module")
def prepared_small(tmp_path_factory):
    from fastmf.data_prep.prepare import prepare

    out = tmp_path_factory.mktemp("prep") / "small"
    prepare(str(embedded_folder()), str(out))
    return out


def _same_dataset(a: Dataset, b: Dataset) -> None:
    assert a.user_map == b.user_map and a.item_map == b.item_map
    for name in ("indptr", "indices", "data", "timestamps"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    for x, y in zip(a.csc, b.csc):
        np.testing.assert_array_equal(x, y)


def test_a_prepared_folder_read_in_batches_is_the_whole_table_read(prepared_small, monkeypatch):
    """The prepared ratings read a few rows at a time into arrays, built without moving them (they are in
    CSR order), give the dataset the whole Arrow table gives, and the loader's table is taken, not kept."""
    import pyarrow.parquet as pq

    from fastmf.data_prep import prepared
    from fastmf.data_prep.dataset import build_dataset, dataset_from_raw
    from fastmf.data_prep.loaders import load_raw

    monkeypatch.setattr(prepared, "CHUNK_RATINGS", 1000)
    # the ratings are never read whole (the items still are)
    monkeypatch.setattr(prepared, "read_parquet", lambda path: pytest.fail(f"{path} read whole"))
    raw = load_raw(str(prepared_small))
    streamed = dataset_from_raw(raw)
    assert raw.ratings is None
    whole = build_dataset(
        pq.read_table(prepared_small / "ratings.parquet"), pq.read_table(prepared_small / "items.parquet")
    )
    _same_dataset(streamed, whole)
    assert streamed.n_ratings == ML_LATEST_SMALL["ratings"]


def test_a_bad_rating_in_a_later_batch_names_its_row(prepared_small, tmp_path, monkeypatch):
    import shutil

    import pyarrow.parquet as pq

    from fastmf.common.errors import InputError
    from fastmf.data_prep import prepared

    folder = tmp_path / "bad"
    shutil.copytree(prepared_small, folder)
    table = pq.read_table(folder / "ratings.parquet")
    rating = table["rating"].to_numpy().copy()
    rating[2345] = 7.0
    pq.write_table(table.set_column(2, "rating", pa.array(rating, pa.float32())), folder / "ratings.parquet")
    monkeypatch.setattr(prepared, "CHUNK_RATINGS", 1000)
    with pytest.raises(InputError) as err:
        fastmf.load_dataset(str(folder))
    message = str(err.value)
    assert "ratings.parquet" in message and "row 2346" in message and "rating 7 is outside" in message
