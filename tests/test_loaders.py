"""Loaders: every MovieLens layout as a folder and as a zip, generic CSV/TSV/Parquet files.

Expected values are read from the fixture files by the standard-library parsers
of ``conftest.py``; the titles with non-ASCII characters are also spelled out here.
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, RELEASES, dataset_triples, genres_of, make_zip, reference

import fastmf
from fastmf import ColumnSpec, IdMap
from fastmf.data_prep.loaders import detect_format, load_raw

RELEASE_NAMES = list(RELEASES)


def _source(release: str, layout: str, tmp_path):
    """The fixture ``release`` as a folder, a flat zip, a zip with a top folder, or a folder one level up."""
    src = FIXTURES / release
    top = RELEASES[release][1]
    if layout == "folder":
        return str(src)
    if layout == "parent-folder":  # the user unpacked the zip and points at the folder around it
        shutil.copytree(src, tmp_path / "unpacked" / top)
        return str(tmp_path / "unpacked")
    if layout == "zip":
        return str(make_zip(src, tmp_path / f"{top}.zip"))
    if layout == "zip-top":  # the real releases: ml-1m.zip holds ml-1m/ratings.dat
        return str(make_zip(src, tmp_path / f"{top}.zip", top=top))
    raise AssertionError(layout)


@pytest.mark.parametrize("layout", ["folder", "zip", "zip-top", "parent-folder"])
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_movielens_release(release, layout, tmp_path):
    ref = reference(release)
    d = fastmf.load_dataset(_source(release, layout, tmp_path))

    assert d.n_ratings == len(ref.ratings)
    assert d.n_users == len(ref.users)
    assert d.n_items == len(ref.items)  # rated items only
    # every rating, with its user, item and timestamp, exactly as in the file
    assert dataset_triples(d) == ref.triples()

    # id maps: sorted original ids, both ways
    assert d.user_map.ids.tolist() == sorted(ref.users)
    assert d.item_map.ids.tolist() == sorted(ref.items)
    for m in (d.user_map, d.item_map):
        np.testing.assert_array_equal(m.index_of(m.ids), np.arange(len(m)))
        assert m.index_of(np.array([-12345]))[0] == -1

    # titles and genres of every rated movie
    for item in ref.items:
        title, genres = ref.movies[item]
        assert d.titles[d.item_map.index(item)] == title
        assert genres_of(d, item) == genres

    # rating values: float32, within the release's scale
    assert d.data.dtype == np.float32
    expected_range = RELEASES[release][2]
    if expected_range is not None:
        assert d.rating_range == expected_range
    lo, hi = d.rating_range
    assert lo <= 1.0 and hi == 5.0
    assert sorted(set(d.data.tolist())) == sorted({r[2] for r in ref.ratings})


@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_listed_movies_with_genre_lists(release, tmp_path):
    """The items table lists every movie of the metadata file (rated or not) with genre lists."""
    ref = reference(release)
    raw = load_raw(str(make_zip(FIXTURES / release, tmp_path / "r.zip", top=RELEASES[release][1])))
    rows = raw.items.to_pylist()
    assert {r["item_id"] for r in rows} == set(ref.movies)
    for r in rows:
        title, genres = ref.movies[r["item_id"]]
        assert r["title"] == title
        assert isinstance(r["genres"], list)
        assert tuple(sorted(r["genres"])) == genres
        assert "(no genres listed)" not in r["genres"]
    # the fixtures list at least one movie nobody rated
    assert set(ref.movies) - ref.items


def test_non_ascii_titles_are_decoded():
    """latin-1 (ml-100k u.item, ml-1m movies.dat) and UTF-8 (ml-20m movies.csv) titles."""
    d100k = fastmf.load_dataset(str(FIXTURES / "ml-100k"))
    assert d100k.title_of(d100k.item_map.index(1633)) == "Á köldum klaka (Cold Fever) (1994)"
    d1m = fastmf.load_dataset(str(FIXTURES / "ml-1m"))
    assert d1m.title_of(d1m.item_map.index(73)) == "Misérables, Les (1995)"
    assert d1m.title_of(d1m.item_map.index(1649)) == "Fast, Cheap & Out of Control (1997)"
    d20m = fastmf.load_dataset(str(FIXTURES / "ml-20m"))
    assert d20m.title_of(d20m.item_map.index(131262)) == 'Misérables, Les (2012) "Live"'
    assert d20m.title_of(d20m.item_map.index(11)) == "American President, The (1995)"


def test_no_genres_listed_means_none():
    d = fastmf.load_dataset(str(FIXTURES / "ml-20m"))
    assert genres_of(d, 131262) == ()
    assert "(no genres listed)" not in d.feature_names
    d10m = fastmf.load_dataset(str(FIXTURES / "ml-10M100K"))
    assert genres_of(d10m, 8606) == ()
    assert genres_of(d10m, 53996) == ("Action", "IMAX", "Sci-Fi", "Thriller")
    # ml-100k: movie 267 has only the "unknown" flag, which is no genre
    d100k = fastmf.load_dataset(str(FIXTURES / "ml-100k"))
    assert genres_of(d100k, 267) == ()
    assert genres_of(d100k, 50) == ("Action", "Adventure", "Romance", "Sci-Fi", "War")
    assert "unknown" not in d100k.feature_names


def test_ml10m_half_stars():
    d = fastmf.load_dataset(str(FIXTURES / "ml-10M100K"))
    assert np.any(d.data % 1 == 0.5)
    assert set(np.unique(d.data * 2).tolist()) <= set(range(1, 11))


def test_detect_format(tmp_path):
    assert detect_format(str(FIXTURES / "ml-100k")) == "ml-100k"
    assert detect_format(str(make_zip(FIXTURES / "ml-1m", tmp_path / "a.zip", top="ml-1m"))) == "ml-dat"
    assert detect_format(str(FIXTURES / "ml-10M100K")) == "ml-dat"
    assert detect_format(str(FIXTURES / "ml-20m")) == "ml-csv"
    assert detect_format(str(FIXTURES / "generic" / "reviews.csv")) == "csv"
    assert detect_format(str(FIXTURES / "generic" / "ratings.tsv")) == "csv"


# --------------------------------------------------------------------------- generic files


def _csv_rows(path, sep):
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=sep))


def test_generic_csv_custom_columns_string_ids():
    path = FIXTURES / "generic" / "reviews.csv"
    rows = _csv_rows(path, ",")
    spec = ColumnSpec(user="reviewer", item="sku", rating="grade", timestamp="epoch", rating_range=(1, 10))
    d = fastmf.load_dataset(str(path), spec)
    expected = sorted((r["reviewer"], r["sku"], float(r["grade"]), int(r["epoch"])) for r in rows)
    assert dataset_triples(d) == expected
    assert not d.user_map.is_int and not d.item_map.is_int
    assert d.user_map.ids.tolist() == sorted({r["reviewer"] for r in rows})
    assert d.user_map.index("carol") == sorted({r["reviewer"] for r in rows}).index("carol")
    with pytest.raises(KeyError):
        d.user_map.index("mallory")
    assert d.rating_range == (1.0, 10.0)


def test_generic_csv_rating_scale_defaults_to_half_stars():
    """Without --rating-range the 1..10 grades of reviews.csv are outside the default 0.5..5 scale."""
    spec = ColumnSpec(user="reviewer", item="sku", rating="grade", timestamp="epoch")
    with pytest.raises(ValueError, match="outside the scale"):
        fastmf.load_dataset(str(FIXTURES / "generic" / "reviews.csv"), spec)


def test_generic_tsv_guessed_columns():
    path = FIXTURES / "generic" / "ratings.tsv"
    rows = _csv_rows(path, "\t")
    d = fastmf.load_dataset(str(path))
    expected = sorted((int(r["user_id"]), int(r["item_id"]), float(r["rating"]), int(r["timestamp"])) for r in rows)
    assert dataset_triples(d) == expected
    assert d.user_map.is_int


def test_generic_custom_separator_without_timestamp():
    path = FIXTURES / "generic" / "semicolon.txt"
    rows = _csv_rows(path, ";")
    d = fastmf.load_dataset(str(path), ColumnSpec(user="u", item="i", rating="r", sep=";"))
    assert d.timestamps is None
    assert dataset_triples(d) == sorted((int(r["u"]), r["i"], float(r["r"]), None) for r in rows)
    # int user ids, string item ids
    assert d.user_map.is_int and not d.item_map.is_int


def test_parquet_with_string_user_ids(tmp_path):
    users = [f"u-{k:02d}" for k in (5, 1, 5, 3, 1, 9, 3, 5)]
    items = [10, 20, 30, 10, 40, 20, 50, 40]
    ratings = [4.0, 3.5, 2.0, 5.0, 1.0, 0.5, 4.5, 3.0]
    ts = [100, 101, 102, 103, 104, 105, 106, 107]
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"user": users, "movie_id": items, "stars": ratings, "time": ts}), path)
    d = fastmf.load_dataset(str(path))  # all four names are recognised spellings
    assert dataset_triples(d) == sorted(zip(users, items, ratings, ts))
    assert d.user_map.ids.tolist() == sorted(set(users))
    assert d.item_map.is_int and d.item_map.ids.tolist() == sorted(set(items))
    # explicit names work the same, and a missing timestamp column is optional
    pq.write_table(pa.table({"a": users, "b": items, "c": ratings}), tmp_path / "s.parquet")
    d2 = fastmf.load_dataset(str(tmp_path / "s.parquet"), ColumnSpec(user="a", item="b", rating="c"))
    assert d2.timestamps is None
    assert dataset_triples(d2) == sorted(zip(users, items, ratings, [None] * len(users)))


def test_parquet_timestamp_type_and_dictionary_ids(tmp_path):
    import datetime as dt

    when = [dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=s) for s in (0, 60, 3600)]
    table = pa.table(
        {
            "user_id": pa.array(["x", "y", "x"]).dictionary_encode(),
            "item_id": pa.array([1, 2, 2], pa.int32()),
            "rating": pa.array([1.0, 2.0, 3.0], pa.float64()),
            "timestamp": pa.array(when, pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    d = fastmf.load_dataset(str(tmp_path / "t.parquet"))
    base = int(when[0].timestamp())
    assert dataset_triples(d) == [("x", 1, 1.0, base), ("x", 2, 3.0, base + 3600), ("y", 2, 2.0, base + 60)]


def test_idmap_round_trip_and_coercion():
    m = IdMap(np.array([30, 10, 20], dtype=np.int64))
    np.testing.assert_array_equal(m.index_of([10, 20, 30, 40]), [1, 2, 0, -1])
    assert m.ids[m.index(20)] == 20
    # string ids that look like integers are converted for an integer map
    np.testing.assert_array_equal(m.index_of(np.array(["30", "10"])), [0, 1])
    s = IdMap(np.array(["b", "a", "10"]))
    np.testing.assert_array_equal(s.index_of([10]), [2])
    np.testing.assert_array_equal(s.index_of(np.array(["a", "zz"])), [1, -1])
    ext = m.extend([40, 10, 50, 40])
    assert ext.ids.tolist() == [30, 10, 20, 40, 50]
    assert m == IdMap(np.array([30, 10, 20]))
    assert not (m == ext)


# --------------------------------------------------------------------------- implicit (user, item[, weight]) tables


def test_implicit_csv_without_rating_column_loads_ones():
    path = FIXTURES / "implicit" / "clicks.csv"
    rows = _csv_rows(path, ",")
    d = fastmf.load_dataset(str(path))  # user, item, timestamp: nothing else, so implicit
    assert d.implicit and d.rating_range is None
    assert dataset_triples(d) == sorted((r["user"], r["item"], 1.0, int(r["timestamp"])) for r in rows)
    # the mark survives subsets (splits) and alignment onto other id maps
    assert d.subset(d.data > 0).implicit and d.align(d.subset(d.indices > 0)).implicit


def test_implicit_tsv_guessed_weight_column():
    path = FIXTURES / "implicit" / "plays.tsv"
    rows = _csv_rows(path, "\t")
    d = fastmf.load_dataset(str(path))  # "plays" is a recognised weight spelling
    assert d.implicit and d.timestamps is None
    assert dataset_triples(d) == sorted((int(r["user_id"]), int(r["item_id"]), float(r["plays"]), None) for r in rows)


def test_implicit_declared_with_extra_columns(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,session,strength\n1,2,s1,0.5\n1,3,s1,2\n2,2,s2,1\n")
    # an unrecognised column makes the file ambiguous: rating or not?
    with pytest.raises(ValueError, match="--implicit"):
        load_raw(str(path))
    d = fastmf.load_dataset(str(path), ColumnSpec(implicit=True))
    assert d.implicit and dataset_triples(d) == [(1, 2, 1.0, None), (1, 3, 1.0, None), (2, 2, 1.0, None)]
    d = fastmf.load_dataset(str(path), ColumnSpec(weight="strength"))
    assert d.implicit and dataset_triples(d) == [(1, 2, 0.5, None), (1, 3, 2.0, None), (2, 2, 1.0, None)]
    with pytest.raises(ValueError, match="cannot be combined"):
        load_raw(str(path), ColumnSpec(rating="strength", implicit=True))


def test_implicit_parquet_and_rating_files_stay_explicit(tmp_path):
    path = tmp_path / "i.parquet"
    pq.write_table(pa.table({"user_id": ["x", "y", "x"], "item_id": [3, 3, 4]}), path)
    d = fastmf.load_dataset(str(path))
    assert d.implicit and dataset_triples(d) == [("x", 3, 1.0, None), ("x", 4, 1.0, None), ("y", 3, 1.0, None)]
    pq.write_table(pa.table({"user_id": ["x"], "item_id": [3], "count": [0.0]}), path)
    with pytest.raises(ValueError, match="row 1.*not a positive number"):
        load_raw(str(path))
    # a file with ratings is not implicit
    assert not fastmf.load_dataset(str(FIXTURES / "generic" / "ratings.tsv")).implicit


def test_implicit_duplicates_are_resolved_like_ratings(tmp_path):
    from fastmf.data_prep.dataset import DuplicateRatingsWarning

    path = tmp_path / "dup.csv"
    path.write_text("user,item,weight\n1,2,3\n1,3,1\n1,2,5\n")
    with pytest.warns(DuplicateRatingsWarning, match=r"\b1 duplicate"):
        d = fastmf.load_dataset(str(path))
    assert dataset_triples(d) == [(1, 2, 5.0, None), (1, 3, 1.0, None)]  # the last in file order


def test_rating_models_refuse_implicit_tables_through_the_api():
    from fastmf.common.errors import FastMFError
    from fastmf.models.als import ALS
    from fastmf.models.bpr import BPR
    from fastmf.models.vi import VI

    data = fastmf.load_dataset(str(FIXTURES / "implicit" / "clicks.csv"))
    for model in (ALS(epochs=1), VI(epochs=1)):
        with pytest.raises(FastMFError, match="implicit .*needs ratings"):
            model.fit(data)
    plays = fastmf.load_dataset(str(FIXTURES / "implicit" / "plays.tsv"))  # integer ids, implicit
    rated = fastmf.load_dataset()
    als = ALS(factors=2, epochs=1).fit(rated.subset(rated.user_of_entry < 5))
    with pytest.raises(FastMFError, match="needs ratings"):
        als.evaluate(plays)
    bpr = BPR(factors=2, epochs=1).fit(data)  # rankers take every row as a positive
    assert bpr.samples_per_epoch_ > 0 and "auc" in bpr.evaluate(data)
