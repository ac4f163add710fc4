"""Every data input is untrusted, and every entry point refuses bad data with the same one-line error.

Prepared folders, pyarrow tables, pandas frames, scipy matrices and ``Dataset.from_arrays``
go through the checks CSV files get (``fastmf.data_prep.validate.check_ratings``); ids past
2^63 stay exact; a UTF-8 byte order mark is read; MovieLens metadata is decoded in its real
encoding; malformed manifests and prepared Parquet files stop with one line. Each test
asserts the exception (or exit status 1 and one stderr line), the file or input named with
its row/line and column, and that nothing was written.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import FIXTURES

import fastmf
from fastmf import ALS, Dataset
from fastmf.cli import main
from fastmf.common.errors import FastMFError, InputError
from fastmf.data_prep.dataset import DuplicateRatingsWarning
from fastmf.data_prep.loaders import read_item_features

HEADER = "userId,movieId,rating,timestamp\n"
BOM = b"\xef\xbb\xbf"
BIG = 2**64 - 1  # two distinct unsigned ids past 2^63: BIG and BIG - 1


# --------------------------------------------------------------------------- helpers


def snapshot(*folders) -> dict:
    """Every file under ``folders`` with its size and modification time (to show nothing was written)."""
    files = {}
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            for name in dirs + names:
                path = os.path.join(root, name)
                st = os.stat(path)
                files[path] = (st.st_size, st.st_mtime_ns)
    return files


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result) -> str:
    """The single ``fastmf: error:`` line of a failed command (exit 1, no traceback, nothing on stdout)."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastmf: error: ")
    return lines[0]


def cli_refuses(src, tmp_path, *fragments, args=()) -> str:
    """``fastmf info SRC`` and ``fastmf prepare SRC OUT`` both stop with one line holding ``fragments``;
    the prepare leaves no output (and no temporary folder) and neither command touches the input."""
    before = snapshot(tmp_path)
    msg = one_line(run(["info", src, *args]))
    parent = tmp_path / "out-parent"
    parent.mkdir()
    msg2 = one_line(run(["prepare", src, parent / "prepared", *args]))
    assert msg2 == msg
    assert os.listdir(parent) == []
    parent.rmdir()
    assert snapshot(tmp_path) == before
    for frag in fragments:
        assert str(frag) in msg, (frag, msg)
    return msg


def api_refuses(call, tmp_path, monkeypatch, *fragments, error=InputError) -> str:
    """A Python call raises ``error`` (a ValueError) with a one-line message holding ``fragments`` and
    writes nothing (the working directory is ``tmp_path``)."""
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "\n" not in msg
    for frag in fragments:
        assert str(frag) in msg, (frag, msg)
    assert snapshot(tmp_path) == before
    return msg


@pytest.fixture()
def prepared(tmp_path) -> Path:
    """A prepared folder of the ml-20m fixture (30 ratings of 5 users; written by ``fastmf prepare``)."""
    out = tmp_path / "prepared"
    result = run(["prepare", FIXTURES / "ml-20m", out])
    assert result.exit_code == 0, result.output
    return out


def rewrite_ratings(folder: Path, column: str, values, kind=None) -> Path:
    """Replace one column of a prepared folder's ratings.parquet."""
    path = folder / "ratings.parquet"
    table = pq.read_table(path)
    table = table.set_column(table.column_names.index(column), column, pa.array(values, kind))
    pq.write_table(table, path)
    return path


def rewrite_manifest(folder: Path, change) -> Path:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(change(manifest)))
    return path


def _ratings(folder: Path) -> list:
    return pq.read_table(folder / "ratings.parquet")["rating"].to_pylist()


# --------------------------------------------------------------------------- 1. one validation for every entry point


def test_prepared_folder_nan_rating(prepared, tmp_path):
    ratings = _ratings(prepared)
    ratings[2] = float("nan")
    path = rewrite_ratings(prepared, "rating", ratings, pa.float32())
    cli_refuses(prepared, tmp_path, path, "row 3:", "column 'rating'", "rating is NaN or infinite")


def test_prepared_folder_infinite_rating_through_train(prepared, tmp_path):
    """Before: trained silently into an all-NaN model. Now train stops before fitting; no model is saved."""
    ratings = _ratings(prepared)
    ratings[-1] = float("inf")
    path = rewrite_ratings(prepared, "rating", ratings, pa.float32())
    before = snapshot(tmp_path)
    msg = one_line(run(["train", prepared, "--epochs", "1", "--out", tmp_path / "model"]))
    assert f"{path}, column 'rating': row {len(ratings)}: rating is NaN or infinite" in msg
    assert not (tmp_path / "model").exists() and snapshot(tmp_path) == before


def test_prepared_folder_rating_outside_the_manifest_scale(prepared, tmp_path):
    ratings = _ratings(prepared)
    ratings[4] = 7.0
    path = rewrite_ratings(prepared, "rating", ratings, pa.float32())
    cli_refuses(
        prepared,
        tmp_path,
        path,
        "row 5:",
        "column 'rating'",
        "rating 7 is outside the scale 0.5..5",
        prepared / "manifest.json",
    )


def test_prepared_folder_missing_user_id(prepared, tmp_path):
    users = pq.read_table(prepared / "ratings.parquet")["user_id"].to_pylist()
    users[6] = None
    path = rewrite_ratings(prepared, "user_id", users, pa.int64())
    cli_refuses(prepared, tmp_path, path, "row 7:", "column 'user_id'", "missing value")


def test_prepared_folder_empty_ratings(prepared, tmp_path):
    path = prepared / "ratings.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    cli_refuses(prepared, tmp_path, path, "no ratings")


def test_prepared_implicit_folder_weight_not_positive(tmp_path):
    """An implicit folder (manifest rating_range null) holds weights: each must be positive and finite."""
    out = tmp_path / "clicks"
    assert run(["prepare", FIXTURES / "implicit" / "plays.tsv", out]).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["rating_range"] is None
    weights = _ratings(out)
    weights[1] = 0.0
    path = rewrite_ratings(out, "rating", weights, pa.float32())
    cli_refuses(out, tmp_path, path, "row 2:", "column 'rating'", "weight 0 is not a positive number")


def test_arrow_table_nan_rating(tmp_path, monkeypatch):
    table = pa.table({"userId": [1, 2, 3], "movieId": [10, 10, 11], "rating": [4.0, float("nan"), 3.0]})
    msg = api_refuses(lambda: Dataset.from_table(table), tmp_path, monkeypatch)
    assert msg == "the table, column 'rating': row 1: rating is NaN or infinite"


def test_arrow_table_missing_item_id(tmp_path, monkeypatch):
    table = pa.table({"user": ["a", "b", "c"], "item": [1, None, 2], "stars": [4.0, 3.0, 3.0]})
    msg = api_refuses(lambda: Dataset.from_table(table), tmp_path, monkeypatch)
    assert msg == "the table, column 'item': row 1: missing value"


def test_arrow_table_rating_text_that_is_not_a_number(tmp_path, monkeypatch):
    table = pa.table({"user_id": [1, 2, 3], "item_id": [1, 2, 3], "rating": ["4", "3.5", "good"]})
    msg = api_refuses(lambda: Dataset.from_table(table), tmp_path, monkeypatch)
    assert msg == "the table, column 'rating': row 2: cannot read rating value 'good' as a number"


def test_pandas_frame_out_of_scale_rating(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"userId": ["a", "b", "c"], "movieId": [1, 2, 3], "rating": [4.0, 30.0, 3.0]})
    api_refuses(
        lambda: Dataset.from_table(frame),
        tmp_path,
        monkeypatch,
        "the table, column 'rating': row 1: rating 30 is outside the scale 0.5..5",
        "rating_range=",
    )
    # the same frame on its own scale loads
    assert Dataset.from_table(frame, rating_range=(1, 50)).rating_range == (1.0, 50.0)


def test_pandas_frame_missing_user(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"user": [1.0, np.nan, 3.0], "item": [1, 2, 3], "rating": [4.0, 3.0, 3.0]})
    api_refuses(
        lambda: Dataset.from_table(frame), tmp_path, monkeypatch, "the table, column 'user': row 1: missing value"
    )


def test_scipy_matrix_infinite_rating(tmp_path, monkeypatch):
    m = sp.csr_matrix(np.array([[0, 4.0, 0], [0, 0, np.inf], [1.0, 0, 0]]))
    msg = api_refuses(lambda: Dataset.from_scipy(m), tmp_path, monkeypatch)
    assert msg == "the matrix: row 1, column 2: rating is NaN or infinite"


def test_scipy_matrix_explicit_zero_is_outside_the_scale(tmp_path, monkeypatch):
    m = sp.csr_matrix((np.array([4.0, 0.0]), (np.array([0, 2]), np.array([1, 0]))), shape=(3, 3))
    api_refuses(
        lambda: Dataset.from_scipy(m),
        tmp_path,
        monkeypatch,
        "the matrix: row 2, column 0: rating 0 is outside the scale 0.5..5",
        "rating_range=",
    )
    # counts of an implicit matrix are weights
    d = Dataset.from_scipy(sp.csr_matrix(np.array([[0, 7.0], [2.0, 0]])), rating_range=None)
    assert d.implicit and sorted(d.data.tolist()) == [2.0, 7.0]


def test_arrays_out_of_scale_rating_names_the_keyword(tmp_path, monkeypatch):
    msg = api_refuses(lambda: Dataset.from_arrays([1, 2, 3], [1, 1, 2], [1, 10, 7]), tmp_path, monkeypatch)
    assert msg.startswith(
        "the arrays, column 'ratings': row 1: rating 10 is outside the scale 0.5..5 (pass rating_range=(lo, hi)"
    )
    d = Dataset.from_arrays([1, 2, 3], [1, 1, 2], [1, 10, 7], rating_range=(1, 10))
    assert d.rating_range == (1.0, 10.0) and d.data.tolist() == [1.0, 10.0, 7.0]


def test_arrays_implicit_weights_must_be_positive(tmp_path, monkeypatch):
    api_refuses(
        lambda: Dataset.from_arrays([1, 2, 3], [1, 1, 2], [2.0, -1.0, 1.0], rating_range=None),
        tmp_path,
        monkeypatch,
        "the arrays, column 'ratings': row 1: weight -1 is not a positive number",
    )


def test_arrays_empty(tmp_path, monkeypatch):
    msg = api_refuses(lambda: Dataset.from_arrays([], [], []), tmp_path, monkeypatch)
    assert msg == "the arrays: no ratings"


def test_arrays_bad_rating_range_keyword(tmp_path, monkeypatch):
    api_refuses(
        lambda: Dataset.from_arrays([1], [1], [3.0], rating_range=(5, 1)),
        tmp_path,
        monkeypatch,
        "rating_range",
        "lo < hi",
        error=FastMFError,
    )


def test_model_fit_refuses_nan_before_training(tmp_path, monkeypatch):
    """The reproduction: a NaN rating in a table trained into an all-NaN model. Now fit stops first."""
    table = pa.table({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 3], "rating": [4.0, 3.0, float("nan"), 5.0]})
    model = ALS(factors=2, epochs=1)
    api_refuses(
        lambda: model.fit(table), tmp_path, monkeypatch, "the table, column 'rating': row 2: rating is NaN or infinite"
    )
    assert not hasattr(model, "user_map_")


def test_same_error_through_every_entry_point(tmp_path):
    """Rating 7 on the third row: the same words from a CSV, a Parquet file, a prepared folder,
    a table, arrays and a matrix, each naming where it is."""
    users, items, ratings = [1, 1, 2], [1, 2, 1], [4.0, 3.0, 7.0]
    csv = tmp_path / "r.csv"
    csv.write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in zip(users, items, ratings)))
    parquet = tmp_path / "r.parquet"
    pq.write_table(pa.table({"user": users, "item": items, "rating": ratings}), parquet)
    folder = tmp_path / "prepared"
    assert run(["prepare", csv, folder, "--rating-range", "1,10"]).exit_code == 0
    rewrite_manifest(folder, lambda m: dict(m, rating_range=[0.5, 5]))
    messages = {}
    for name, call in {
        "csv": lambda: fastmf.load_dataset(str(csv)),
        "parquet": lambda: fastmf.load_dataset(str(parquet)),
        "prepared": lambda: fastmf.load_dataset(str(folder)),
        "table": lambda: Dataset.from_table(pa.table({"user": users, "item": items, "rating": ratings})),
        "arrays": lambda: Dataset.from_arrays(users, items, ratings),
        "matrix": lambda: Dataset.from_scipy(sp.csr_matrix((ratings, (users, items)))),
    }.items():
        with pytest.raises(InputError) as info:
            call()
        messages[name] = str(info.value)
    assert messages["csv"] == f"{csv}, line 4, column 'rating': rating 7 is outside the scale 0.5..5"
    assert messages["parquet"] == f"{parquet}, column 'rating': row 3: rating 7 is outside the scale 0.5..5"
    assert messages["prepared"].startswith(
        f"{folder / 'ratings.parquet'}, column 'rating': row 3: rating 7 is outside the scale 0.5..5 (the scale of"
    )
    assert messages["table"].startswith("the table, column 'rating': row 2: rating 7 is outside the scale 0.5..5")
    assert messages["arrays"].startswith("the arrays, column 'ratings': row 2: rating 7 is outside the scale 0.5..5")
    assert messages["matrix"].startswith("the matrix: row 2, column 1: rating 7 is outside the scale 0.5..5")


# --------------------------------------------------------------------------- 2. ids past 2^63


def test_unsigned_ids_past_2_63_stay_distinct(tmp_path):
    csv = tmp_path / "big.csv"
    csv.write_text(f"user,item,rating\n{BIG},1,3\n{BIG - 1},1,4\n7,2,5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateRatingsWarning)  # before: a false duplicate warning
        d = fastmf.load_dataset(str(csv))
    assert d.n_users == 3 and d.n_ratings == 3
    assert d.user_map.ids.tolist() == [7, BIG - 1, BIG]
    assert d.data[d.user_map.index_of([BIG, BIG - 1])].tolist() == [3.0, 4.0]
    # exact through a prepared folder and through the Python constructors too
    out = tmp_path / "prepared"
    assert run(["prepare", csv, out]).exit_code == 0
    assert fastmf.load_dataset(str(out)).user_map.ids.tolist() == [7, BIG - 1, BIG]
    assert Dataset.from_arrays([BIG, BIG - 1, 7], [1, 1, 2], [3, 4, 5]).user_map.ids.tolist() == [7, BIG - 1, BIG]


def test_movielens_id_past_int64_is_refused_with_its_line(tmp_path):
    folder = tmp_path / "ml-latest"
    folder.mkdir()
    (folder / "ratings.csv").write_text(HEADER + "1,1,3.5,10\n" + f"{BIG},2,4,11\n")
    cli_refuses(folder, tmp_path, folder / "ratings.csv", "line 3", "column 'userId'", "64-bit")


# --------------------------------------------------------------------------- 3. byte order mark


def test_bom_generic_csv(tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_bytes(BOM + b"user,item,rating\n1,10,4\n2,10,3.5\n")
    d = fastmf.load_dataset(str(csv))  # before: "missing user column" while the column is there
    assert d.user_map.ids.tolist() == [1, 2] and sorted(d.data.tolist()) == [3.5, 4.0]


def test_bom_movielens_ratings_csv(tmp_path):
    folder = tmp_path / "ml-latest"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(BOM + (HEADER + "1,1,3.5,10\n2,1,4,11\n").encode())
    (folder / "movies.csv").write_bytes(BOM + b"movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    d = fastmf.load_dataset(str(folder))
    assert d.n_ratings == 2 and d.timestamps.tolist() == [10, 11]
    assert d.title_of(0) == "Toy Story (1995)"


# --------------------------------------------------------------------------- 4. MovieLens metadata encodings


def _release_with_movies(folder: Path, layout: str, title: str, encoding: str) -> Path:
    folder.mkdir(parents=True)
    if layout == "dat":
        (folder / "ratings.dat").write_text("1::73::5::978300760\n2::1::4::978300761\n")
        (folder / "movies.dat").write_bytes(f"1::Toy Story (1995)::Comedy\n73::{title}::Drama\n".encode(encoding))
    else:
        (folder / "ratings.csv").write_text(HEADER + "1,73,5,978300760\n2,1,4,978300761\n")
        (folder / "movies.csv").write_bytes(
            f'movieId,title,genres\n1,Toy Story (1995),Comedy\n73,"{title}",Drama\n'.encode(encoding)
        )
    return folder


@pytest.mark.parametrize("layout", ["dat", "csv"])
def test_latin1_movies_file_loads_with_the_right_title(tmp_path, layout):
    folder = _release_with_movies(tmp_path / "latin-1", layout, "Misérables, Les (1995)", "latin-1")
    d = fastmf.load_dataset(str(folder))  # before (csv): an Arrow "Invalid UTF8 payload" traceback
    assert d.title_of(d.item_map.index(73)) == "Misérables, Les (1995)"
    assert d.title_of(d.item_map.index(1)) == "Toy Story (1995)"
    # the same release in UTF-8 gives the same titles
    utf8 = _release_with_movies(tmp_path / "utf-8", layout, "Misérables, Les (1995)", "utf-8")
    assert fastmf.load_dataset(str(utf8)).titles.tolist() == d.titles.tolist()


def test_mixed_encoding_movies_file_is_one_line_with_its_line(tmp_path):
    folder = tmp_path / "ml-latest"
    folder.mkdir()
    (folder / "ratings.csv").write_text(HEADER + "1,1,5,10\n")
    (folder / "movies.csv").write_bytes(
        "movieId,title,genres\n1,Café (2001),Drama\n".encode() + "2,Misérables (1995),Drama\n".encode("latin-1")
    )
    cli_refuses(folder, tmp_path, folder / "movies.csv", "line 3", "not UTF-8")


def test_unparseable_movies_file_is_one_line_with_its_line(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5::978300760\n")
    (folder / "movies.dat").write_bytes("1::Misérables (1995)::Drama\n2::no genres\n".encode("latin-1"))
    cli_refuses(folder, tmp_path, folder / "movies.dat", "line 2", "cannot parse")


def test_latin1_item_features_file(tmp_path):
    """``--item-features`` files are decoded like MovieLens metadata (before: an Arrow traceback)."""
    path = tmp_path / "features.csv"
    path.write_bytes("item,feature\n1,Café\n2,Noir\n".encode("latin-1"))
    before = snapshot(tmp_path)
    items, features = read_item_features(str(path))
    assert items.to_pylist() == [1, 2] and features.to_pylist() == ["Café", "Noir"]
    assert snapshot(tmp_path) == before


def test_generic_csv_id_that_is_not_utf8(tmp_path):
    """A ratings file is not guessed at: a latin-1 id is one line naming its line and column."""
    path = tmp_path / "r.csv"
    path.write_bytes("user,item,rating\nana,1,3\nJosé,1,4\n".encode("latin-1"))
    cli_refuses(path, tmp_path, path, "line 3", "column 'user'", "not valid UTF-8")


# --------------------------------------------------------------------------- 5. malformed manifest.json


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: dict(m, rating_range="0.5-5"), "rating_range"),
        (lambda m: dict(m, rating_range=[1, 2, 3]), "rating_range"),
        (lambda m: dict(m, rating_range=[5, 1]), "rating_range"),
        (lambda m: dict(m, users="many"), "users"),
        (lambda m: dict(m, has_timestamps="yes"), "has_timestamps"),
    ],
    ids=["rating_range-string", "rating_range-three", "rating_range-reversed", "users-string", "flag-string"],
)
def test_malformed_manifest_field(prepared, tmp_path, change, field):
    path = rewrite_manifest(prepared, change)
    cli_refuses(prepared, tmp_path, path, f"field '{field}' must be")


def test_manifest_that_is_not_an_object(prepared, tmp_path):
    path = prepared / "manifest.json"
    path.write_text('["rating_range", [0.5, 5]]\n')
    cli_refuses(prepared, tmp_path, path, "expected a JSON object")


def test_manifest_null_and_legacy_zero_scale_mean_implicit(prepared):
    for scale in (None, [0, 0]):
        rewrite_manifest(prepared, lambda m, s=scale: dict(m, rating_range=s))
        d = fastmf.load_dataset(str(prepared))
        assert d.implicit and d.n_ratings == 30


# --------------------------------------------------------------------------- 6. prepared Parquet column types


def test_prepared_rating_column_of_strings(prepared, tmp_path):
    path = rewrite_ratings(prepared, "rating", [str(r) for r in _ratings(prepared)])
    cli_refuses(prepared, tmp_path, path, "column 'rating'", "type string")


def test_prepared_user_id_float_with_nan(prepared, tmp_path):
    users = [float(u) for u in pq.read_table(prepared / "ratings.parquet")["user_id"].to_pylist()]
    users[3] = float("nan")
    path = rewrite_ratings(prepared, "user_id", users, pa.float64())
    cli_refuses(prepared, tmp_path, path, "row 4:", "column 'user_id'", "missing value")


def test_prepared_items_with_wrong_genres_type(prepared, tmp_path):
    path = prepared / "items.parquet"
    items = pq.read_table(path)
    pq.write_table(items.set_column(2, "genres", pa.array(["Drama"] * items.num_rows)), path)
    cli_refuses(prepared, tmp_path, path, "column 'genres'", "lists of strings")


def test_untouched_prepared_folder_still_loads(prepared, tmp_path):
    """The checks refuse nothing that ``fastmf prepare`` writes (a copy loads like the original source)."""
    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    d = fastmf.load_dataset(str(copy))
    src = fastmf.load_dataset(str(FIXTURES / "ml-20m"))
    assert d.n_ratings == src.n_ratings and d.user_map == src.user_map and d.titles.tolist() == src.titles.tolist()
