"""``fastmf prepare`` round trips and ``fastmf info --json`` against independently computed numbers."""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, ML_LATEST_SMALL, RELEASES, dataset_triples, embedded_folder, make_zip, reference

import fastmf
from fastmf.cli import main


def run_ok(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return result


def assert_same_dataset(a, b):
    assert a.user_map == b.user_map and a.item_map == b.item_map
    for x, y in zip(a.csr, b.csr):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.csc, b.csc):
        np.testing.assert_array_equal(x, y)
    if a.timestamps is None:
        assert b.timestamps is None
    else:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.feature_names == b.feature_names
    np.testing.assert_array_equal(a.feature_indptr, b.feature_indptr)
    np.testing.assert_array_equal(a.feature_indices, b.feature_indices)
    assert list(a.titles) == list(b.titles)
    assert a.rating_range == b.rating_range


def check_zstd(path):
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups >= 1
    for rg in range(meta.num_row_groups):
        for col in range(meta.num_columns):
            assert meta.row_group(rg).column(col).compression == "ZSTD"


@pytest.fixture(scope="module")
def prepared_embedded(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "ml-latest-small"
    result = run_ok(["prepare", embedded_folder(), out])
    return out, result


def test_prepare_embedded_round_trip(prepared_embedded, embedded, embedded_ref):
    out, result = prepared_embedded
    assert sorted(os.listdir(out)) == ["items.parquet", "manifest.json", "ratings.parquet"]
    assert f"{ML_LATEST_SMALL['ratings']:,} ratings" in result.stdout
    back = fastmf.load_dataset(str(out))
    assert_same_dataset(embedded, back)
    assert back.n_ratings == embedded_ref.users.size
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == str(embedded_folder())
    assert manifest["schema_version"] == 1
    assert (manifest["ratings"], manifest["users"], manifest["items"]) == (
        embedded_ref.users.size,
        np.unique(embedded_ref.users).size,
        np.unique(embedded_ref.items).size,
    )
    assert manifest["listed_items"] == len(embedded_ref.movies)
    for name in ("ratings.parquet", "items.parquet"):
        check_zstd(out / name)
    # the prepared ratings hold the raw triples
    table = pq.read_table(out / "ratings.parquet")
    assert table.column_names[:3] == ["user_id", "item_id", "rating"]
    assert str(table.schema.field("rating").type) == "float"
    raw = sorted(
        zip(
            embedded_ref.users.tolist(),
            embedded_ref.items.tolist(),
            embedded_ref.ratings.tolist(),
            embedded_ref.timestamps.tolist(),
        )
    )
    assert sorted(zip(*(table[c].to_pylist() for c in ("user_id", "item_id", "rating", "timestamp")))) == raw
    # the prepared folder is readable as a whole by other users (not left 0700 by mkdtemp)
    assert os.stat(out).st_mode & 0o055 == 0o055 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("release", ["ml-100k", "ml-20m"])
def test_prepare_fixture_round_trip(release, tmp_path):
    src = make_zip(FIXTURES / release, tmp_path / f"{release}.zip", top=RELEASES[release][1])
    out = tmp_path / "prepared"
    run_ok(["prepare", src, out])
    ref = reference(release)
    source = fastmf.load_dataset(str(src))
    back = fastmf.load_dataset(str(out))
    assert_same_dataset(source, back)
    assert dataset_triples(back) == ref.triples()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == str(src)
    assert manifest["schema_version"] == 1
    assert (manifest["ratings"], manifest["users"], manifest["items"]) == (
        len(ref.ratings),
        len(ref.users),
        len(ref.items),
    )
    assert manifest["listed_items"] == len(ref.movies)
    items = pq.read_table(out / "items.parquet").to_pylist()
    assert {r["item_id"]: (r["title"], tuple(sorted(r["genres"]))) for r in items} == ref.movies
    check_zstd(out / "ratings.parquet")
    check_zstd(out / "items.parquet")


def _ratings_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    return path.parent


def _in_order_rows(n_users=40, seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        for i in np.sort(rng.choice(500, size=int(rng.integers(1, 30)), replace=False)):
            rows.append((u, int(i) + 1, float(rng.integers(1, 11)) / 2, int(rng.integers(10**9, 2 * 10**9))))
    return rows


@pytest.mark.parametrize(
    "arrange, rewritten",
    [
        ("in order", False),  # the rows as read are the folder's ratings file
        ("items shuffled within users", True),  # users grouped (the early write starts), rows moved
        ("a duplicate pair", True),  # users grouped, one row dropped
        ("shuffled", None),  # users not grouped: no early write
    ],
)
def test_prepare_writes_the_early_ratings_file_only_when_it_is_the_answer(arrange, rewritten, tmp_path, monkeypatch):
    """Whatever the order of the source rows, the prepared ratings file is the same table (CSR order, the
    latest of a duplicate pair); a source already in that order is written once, in the early thread."""
    import fastmf.data_prep.prepare as prepare_module

    rows = _in_order_rows()
    want_rows = list(rows)
    if arrange == "items shuffled within users":
        rng = np.random.default_rng(0)
        by_user = {}
        for r in rows:
            by_user.setdefault(r[0], []).append(r)
        rows = [r for u in sorted(by_user) for r in rng.permutation(np.array(by_user[u], dtype=object)).tolist()]
    elif arrange == "a duplicate pair":
        u, i, _, t = rows[5]
        rows.insert(6, (u, i, 0.5, t + 1))  # the later rating of the pair is kept
        want_rows[5] = (u, i, 0.5, t + 1)
    elif arrange == "shuffled":
        rows = [rows[k] for k in np.random.default_rng(1).permutation(len(rows))]
    writes = []
    real = prepare_module.write_ratings
    monkeypatch.setattr(prepare_module, "write_ratings", lambda table, path: (writes.append(path), real(table, path)))
    out = tmp_path / "prepared"
    run_ok(["prepare", _ratings_csv(tmp_path / "src" / "ratings.csv", rows), out])
    got = pq.read_table(out / "ratings.parquet")
    assert [tuple(r.values()) for r in got.to_pylist()] == want_rows
    assert got.schema.field("rating").type == "float" and got.schema.field("user_id").type == "int64"
    assert len(writes) == {False: 1, True: 2, None: 1}[rewritten]
    assert sorted(os.listdir(tmp_path)) == ["prepared", "src"]


def test_prepare_early_write_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """The early ratings write runs in a thread; its failure (disk full) still ends the command with one
    line, no output folder and no temporary left behind."""
    import fastmf.data_prep.prepare as prepare_module

    def full(table, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prepare_module, "write_ratings", full)
    out = tmp_path / "prepared"
    src = _ratings_csv(tmp_path / "src" / "ratings.csv", _in_order_rows())
    result = CliRunner().invoke(main, ["prepare", str(src), str(out)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "No space left" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_prepare_generic_csv_with_cli_columns(tmp_path):
    out = tmp_path / "prepared"
    path = FIXTURES / "generic" / "reviews.csv"
    run_ok(
        [
            "prepare",
            path,
            out,
            "--user-col",
            "reviewer",
            "--item-col",
            "sku",
            "--rating-col",
            "grade",
            "--time-col",
            "epoch",
            "--rating-range",
            "1,10",
        ]
    )
    back = fastmf.load_dataset(str(out))
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert dataset_triples(back) == sorted((r["reviewer"], r["sku"], float(r["grade"]), int(r["epoch"])) for r in rows)
    assert back.rating_range == (1.0, 10.0)
    assert not (out / "items.parquet").exists()


# --------------------------------------------------------------------------- info --json


def test_info_json_embedded(embedded_ref, embedded):
    stats = json.loads(run_ok(["info", "--json"]).stdout)
    n = embedded_ref.users.size
    user_counts = list(Counter(embedded_ref.users.tolist()).values())
    item_counts = list(Counter(embedded_ref.items.tolist()).values())
    hist = Counter(f"{float(x):g}" for x in embedded_ref.rating_text)

    assert stats["ratings"] == n == ML_LATEST_SMALL["ratings"]
    assert stats["users"] == len(user_counts) == ML_LATEST_SMALL["users"]
    assert stats["items"] == len(item_counts) == ML_LATEST_SMALL["rated_items"]
    assert stats["density"] == pytest.approx(n / (len(user_counts) * len(item_counts)))
    assert stats["mean_rating"] == pytest.approx(float(np.mean(embedded_ref.ratings)), abs=1e-9)
    assert stats["rating_histogram"] == dict(hist)
    assert sum(stats["rating_histogram"].values()) == n
    assert set(stats["rating_histogram"]) == {f"{k / 2:g}" for k in range(1, 11)}
    assert stats["ratings_per_user"] == {
        "min": min(user_counts),
        "median": statistics.median(user_counts),
        "max": max(user_counts),
    }
    assert stats["ratings_per_user"]["min"] == 20  # every ml-latest-small user has at least 20 ratings
    assert stats["ratings_per_item"] == {
        "min": min(item_counts),
        "median": statistics.median(item_counts),
        "max": max(item_counts),
    }
    assert stats["items_with_at_most_3_ratings"] == sum(c <= 3 for c in item_counts)
    assert stats["has_timestamps"] is True
    assert stats["features"] == len({g for _, gs in embedded_ref.movies.values() for g in gs})
    # log-log slopes: least-squares line through (log10 k, log10 #{entities with k ratings})
    for key, counts in (("user_activity_loglog_slope", user_counts), ("item_popularity_loglog_slope", item_counts)):
        freq = Counter(counts)
        k = np.log10(sorted(freq))
        f = np.log10([freq[x] for x in sorted(freq)])
        assert stats[key] == pytest.approx(np.polyfit(k, f, 1)[0], rel=1e-9)


def test_info_text_and_fixture(tmp_path):
    text = run_ok(["info", FIXTURES / "ml-1m"]).stdout
    ref = reference("ml-1m")
    assert f"ratings             {len(ref.ratings):,}" in text
    assert f"users               {len(ref.users):,}" in text
    stats = json.loads(run_ok(["info", FIXTURES / "ml-1m", "--json"]).stdout)
    assert stats["rating_histogram"] == {f"{k:g}": v for k, v in sorted(Counter(r[2] for r in ref.ratings).items())}


# --------------------------------------------------------------------------- implicit (user, item[, weight]) tables

IMPLICIT = FIXTURES / "implicit"


def _pairs(path):
    import csv

    with open(path, newline="") as fh:
        return [(r["user"], r["item"]) for r in csv.DictReader(fh)]


def popularity_reference(train, test, k=5):
    """Most-popular ranking metrics from the definitions: only items with a training positive are ranked."""
    counts = Counter(item for _, item in train)
    seen = {}
    for user, item in train:
        seen.setdefault(user, set()).add(item)
    wanted = {}
    unknown = 0
    for user, item in test:
        if user in seen and item not in seen[user]:
            if item in counts:
                wanted.setdefault(user, set()).add(item)
            else:
                unknown += 1
    ndcg, auc = [], []
    for user, pos in wanted.items():
        ranked = sorted((c for c in counts if c not in seen[user]), key=lambda c: -counts[c])
        dcg = sum(1 / np.log2(r + 2) for r, c in enumerate(ranked[:k]) if c in pos)
        ndcg.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(k, len(pos)))))
        neg = [c for c in ranked if c not in pos]
        if neg:
            auc.append(
                statistics.mean((counts[p] > counts[n]) + 0.5 * (counts[p] == counts[n]) for p in pos for n in neg)
            )
    return {
        "ndcg@5": statistics.mean(ndcg),
        "auc": statistics.mean(auc),
        "ranking_users": len(wanted),
        "test_positives": sum(map(len, wanted.values())),
        "ranking_unknown_positives": unknown,
    }


def test_train_popular_on_implicit_tables():
    train, test = IMPLICIT / "clicks.csv", IMPLICIT / "clicks_test.csv"
    result = run_ok(["train", train, "--model", "popular", "--test", test, "--json", "-q"])
    report = json.loads(result.stdout)  # the note goes to stderr, stdout stays pure JSON
    notes = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert notes == [f"fastmf: note: {train} is an implicit (user, item[, weight]) table: every row is a positive"]
    want = popularity_reference(_pairs(train), _pairs(test))
    assert report["train_ratings"] == len(_pairs(train))
    for key, value in want.items():
        assert report[key] == pytest.approx(value), key
    assert report["ranking_cold_users"] == 1  # user f only appears in the test file


def test_train_bpr_on_implicit_tables(tmp_path):
    train, test = IMPLICIT / "clicks.csv", IMPLICIT / "clicks_test.csv"
    args = ["--model", "bpr", "--factors", "4", "--epochs", "2", "--test", test, "--json", "-q"]
    result = run_ok(["train", train, *args, "--threshold", "4"])
    assert "--threshold 4 does not apply" in result.stderr and "note" not in result.stdout
    report = json.loads(result.stdout)
    want = popularity_reference(_pairs(train), _pairs(test))
    assert report["history"][-1]["epoch"] == 2 and report["train_ratings"] == len(_pairs(train))
    assert (report["test_positives"], report["ranking_unknown_positives"]) == (
        want["test_positives"],
        want["ranking_unknown_positives"],
    )
    # a prepared copy is still implicit; a weighted TSV trains too (weights are kept, every row a positive)
    run_ok(["prepare", train, tmp_path / "clicks"])
    again = json.loads(run_ok(["train", tmp_path / "clicks", *args]).stdout)
    assert again["test_positives"] == want["test_positives"]
    plays = run_ok(
        [
            "train",
            IMPLICIT / "plays.tsv",
            "--model",
            "bpr",
            "--factors",
            "2",
            "--epochs",
            "1",
            "--test-frac",
            "0",
            "--json",
            "-q",
        ]
    )
    assert json.loads(plays.stdout)["train_ratings"] == len((IMPLICIT / "plays.tsv").read_text().splitlines()) - 1
