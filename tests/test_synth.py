"""``fastmf synth``: determinism, shape guarantees, half-star ratings and the printed oracle RMSE.

All shapes are small (20,000 ratings) so the whole file runs in a few seconds.
"""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import dataset_triples

import fastmf
from fastmf.cli import main
from fastmf.data_prep.synth import GENRES, expected_rating

SHAPE = ["--users", "300", "--items", "200", "--ratings", "20000"]


def synth(out, *extra):
    result = CliRunner().invoke(main, ["synth", str(out), *SHAPE, *extra])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    return {
        "a": (base / "a", synth(base / "a", "--seed", "1")),
        "b": (base / "b", synth(base / "b", "--seed", "1")),
        "c": (base / "c", synth(base / "c", "--seed", "2")),
    }


def ratings_of(folder):
    return pq.read_table(folder / "ratings.parquet")


def test_same_seed_identical_other_seed_different(runs):
    a, b, c = (ratings_of(runs[k][0]) for k in "abc")
    assert a.equals(b)
    assert (runs["a"][0] / "ratings.parquet").read_bytes() == (runs["b"][0] / "ratings.parquet").read_bytes()
    assert not a.equals(c)
    pa_, pc_ = np.load(runs["a"][0] / "planted.npz"), np.load(runs["c"][0] / "planted.npz")
    assert not np.array_equal(pa_["user_factors"], pc_["user_factors"])


def test_shape_guarantees(runs):
    t = ratings_of(runs["a"][0])
    users = t["user_id"].to_numpy()
    items = t["item_id"].to_numpy()
    assert t.num_rows == 20000
    assert np.unique(users).size == 300 and np.unique(items).size == 200
    per_user = np.unique(users, return_counts=True)[1]
    per_item = np.unique(items, return_counts=True)[1]
    assert per_user.min() >= 20
    assert per_item.min() >= 1
    pairs = users.astype(np.int64) * (items.max() + 1) + items
    assert np.unique(pairs).size == pairs.size, "duplicate (user, item) pairs"
    manifest = json.loads((runs["a"][0] / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["ratings"] == 20000
    # the folder loads like a prepared one, without duplicate warnings
    d = fastmf.load_dataset(str(runs["a"][0]))
    assert (d.n_users, d.n_items, d.n_ratings) == (300, 200, 20000)


def test_half_star_ratings(runs):
    r = ratings_of(runs["a"][0])["rating"].to_numpy()
    assert r.dtype == np.float32
    assert r.min() >= 0.5 and r.max() <= 5.0
    np.testing.assert_array_equal(r * 2, np.round(r * 2))
    # the planted model spreads ratings over most of the scale
    assert np.unique(r).size >= 8


def test_planted_and_oracle_rmse(runs):
    folder, result = runs["a"]
    planted = dict(np.load(folder / "planted.npz"))
    for key, shape in (
        ("user_factors", (300, 8)),
        ("item_factors", (200, 8)),
        ("user_bias", (300,)),
        ("item_bias", (200,)),
    ):
        assert planted[key].shape == shape
    t = ratings_of(folder)
    # ids are 1-based positions in the planted arrays
    u = t["user_id"].to_numpy() - 1
    i = t["item_id"].to_numpy() - 1
    r = t["rating"].to_numpy().astype(np.float64)
    e = expected_rating(planted, u, i)
    rmse = float(np.sqrt(np.mean((r - e) ** 2)))
    m = re.search(r"oracle, planted model\): ([0-9.]+)", result.stdout)
    assert m, result.stdout
    assert float(m.group(1)) == pytest.approx(rmse, abs=2e-4)
    # the oracle beats predicting the global mean, and cannot beat the rounding noise floor
    assert rmse < np.std(r)
    assert 0.3 < rmse < float(planted["sigma"]) + 0.1


def test_json_stats_match_data(tmp_path):
    out = tmp_path / "s"
    result = synth(out, "--seed", "3", "--json")
    stats = json.loads(result.stdout)
    t = ratings_of(out)
    r = t["rating"].to_numpy()
    per_user = np.unique(t["user_id"].to_numpy(), return_counts=True)[1]
    per_item = np.unique(t["item_id"].to_numpy(), return_counts=True)[1]
    assert stats["ratings"] == t.num_rows == 20000
    assert stats["mean_rating"] == pytest.approx(float(r.astype(np.float64).mean()))
    assert stats["min_user_ratings"] == per_user.min() and stats["max_user_ratings"] == per_user.max()
    assert stats["max_item_ratings"] == per_item.max()
    assert stats["items_le_3"] == int((per_item <= 3).sum())
    items = pq.read_table(out / "items.parquet").to_pylist()
    assert len(items) == 200
    assert all(1 <= len(row["genres"]) <= 3 and set(row["genres"]) <= set(GENRES) for row in items)


def test_csv_output_is_movielens_format(tmp_path):
    out = tmp_path / "s"
    synth(out, "--seed", "4", "--csv")
    with open(out / "ratings.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["userId", "movieId", "rating", "timestamp"]
    assert len(rows) == 20001
    with open(out / "movies.csv", newline="") as fh:
        movies = list(csv.reader(fh))
    assert movies[0] == ["movieId", "title", "genres"] and len(movies) == 201
    # the CSV pair, as a MovieLens folder, loads to the same data as the Parquet files
    ml = tmp_path / "ml-synth"
    ml.mkdir()
    shutil.copy(out / "ratings.csv", ml / "ratings.csv")
    shutil.copy(out / "movies.csv", ml / "movies.csv")
    from_csv = fastmf.load_dataset(str(ml))
    from_parquet = fastmf.load_dataset(str(out))
    assert dataset_triples(from_csv) == dataset_triples(from_parquet)
    expected = sorted((int(a), int(b), float(c), int(d)) for a, b, c, d in rows[1:])
    assert dataset_triples(from_csv) == expected
    assert from_csv.feature_names == from_parquet.feature_names
    np.testing.assert_array_equal(from_csv.feature_indices, from_parquet.feature_indices)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--scale", "0"], "--scale"),
        (["--users", "10", "--items", "5", "--ratings", "51"], "too many ratings"),
    ],
)
def test_synth_bad_arguments(tmp_path, args, fragment):
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "s"), *args])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0]
    assert not (tmp_path / "s").exists()
