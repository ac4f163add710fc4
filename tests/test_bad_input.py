"""Bad input through the command line: one line on stderr, non-zero exit, no traceback, no partial output.

Every case is run through ``fastmf info`` and ``fastmf prepare`` in-process with
click's CliRunner; a few are also run as real ``fastmf`` subprocesses. The bad
line of each file is known by construction (physical line numbers, 1-based).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, make_zip

import fastmf
from fastmf.cli import main
from fastmf.common.errors import InputError

FASTMF = Path(sys.executable).parent / "fastmf"
HEADER = "userId,movieId,rating,timestamp\n"


def write(path: Path, text: str, encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@dataclass
class Case:
    make: Callable[[Path], tuple]  # tmp_path -> (source to pass, file the message must name)
    line: int | None = None  # "line N" expected in the message
    column: str | None = None  # "column 'x'" expected in the message
    args: tuple = ()
    contains: tuple = ()  # other fragments the message must hold
    extra_checks: dict = field(default_factory=dict)


def _ml_folder(tmp, ratings_text, name="ml-latest"):
    f = write(tmp / name / "ratings.csv", ratings_text)
    return tmp / name, f


def _flat_csv(tmp, text, name="r.csv"):
    f = write(tmp / name, text)
    return f, f


def _truncated_zip(tmp):
    z = make_zip(FIXTURES / "ml-1m", tmp / "ml-1m.zip", top="ml-1m")
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])
    return z, z


def _corrupt_member_zip(tmp):
    z = make_zip(FIXTURES / "ml-1m", tmp / "ml-1m.zip", top="ml-1m")
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("ml-1m/ratings.dat")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 4, start + 24):  # scramble the deflate stream, keep the central directory
        data[k] ^= 0x5A
    z.write_bytes(bytes(data))
    return z, f"{z}:ml-1m/ratings.dat"


def _garbage_parquet(tmp):
    f = write(tmp / "r.parquet", "this is not parquet\n")
    return f, f


def _truncated_parquet(tmp):
    f = tmp / "r.parquet"
    pq.write_table(pa.table({"user_id": np.arange(500), "item_id": np.arange(500) % 7, "rating": np.full(500, 3.0)}), f)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) * 2 // 3])
    return f, f


def _parquet_nan(tmp):
    f = tmp / "r.parquet"
    pq.write_table(pa.table({"user": ["a", "b", "c"], "item": [1, 2, 3], "stars": [4.0, float("nan"), 3.0]}), f)
    return f, f


def _parquet_text_rating(tmp):
    f = tmp / "r.parquet"
    pq.write_table(pa.table({"user_id": [1, 2, 3], "item_id": [1, 2, 3], "rating": ["4", "3.5", "good"]}), f)
    return f, f


def _parquet_zero_weight(tmp):
    f = tmp / "r.parquet"
    pq.write_table(pa.table({"user": [1, 1, 2], "item": ["a", "b", "a"], "weight": [2.0, 0.0, 1.0]}), f)
    return f, f


def _ml100k_with(tmp, bad_line):
    folder = tmp / "ml-100k"
    folder.mkdir()
    lines = (FIXTURES / "ml-100k" / "u.data").read_text().splitlines()
    lines[4] = bad_line  # physical line 5
    write(folder / "u.data", "\n".join(lines) + "\n")
    return folder, folder / "u.data"


def _ml1m_with(tmp, bad_line):
    folder = tmp / "ml-1m"
    folder.mkdir()
    lines = (FIXTURES / "ml-1m" / "ratings.dat").read_text().splitlines()
    lines[2] = bad_line  # physical line 3
    write(folder / "ratings.dat", "\n".join(lines) + "\n")
    return folder, folder / "ratings.dat"


def _unknown_folder(tmp):
    write(tmp / "stuff" / "notes.txt", "hello\n")
    return tmp / "stuff", tmp / "stuff"


CASES = {
    "missing-file": Case(lambda t: (t / "nope.csv", t / "nope.csv"), contains=("no such file",)),
    "unknown-format-file": Case(lambda t: _flat_csv(t, "{}\n", "r.json"), contains=("unknown format",)),
    "unknown-format-folder": Case(_unknown_folder, contains=("unknown format",)),
    "missing-column": Case(lambda t: _flat_csv(t, "user,item,score_x\n1,2,3\n"), contains=("rating", "--rating-col")),
    "misnamed-column": Case(
        lambda t: _flat_csv(t, HEADER + "1,2,3,4\n"), column="stars", args=("--rating-col", "stars")
    ),
    "missing-column-movielens": Case(
        lambda t: _ml_folder(t, "userId,movieId,stars,timestamp\n1,2,3,4\n"), column="rating"
    ),
    "non-numeric-rating": Case(
        lambda t: _flat_csv(t, HEADER + "1,2,3.5,10\n1,3,4,11\n2,3,abc,12\n"),
        line=4,
        column="rating",
        contains=("abc",),
    ),
    "non-numeric-rating-dat": Case(lambda t: _ml1m_with(t, "1::3::four::978300760"), line=3, column="rating"),
    "non-numeric-user-movielens": Case(
        lambda t: _ml_folder(t, HEADER + "1,2,3.5,10\nu7,3,4,11\n"), line=3, column="userId"
    ),
    "non-numeric-timestamp": Case(
        lambda t: _flat_csv(t, HEADER + "1,2,3.5,10\n1,3,4,1x\n"), line=3, column="timestamp"
    ),
    "nan-rating": Case(lambda t: _flat_csv(t, HEADER + "1,2,3.5,10\n1,3,4,11\n1,4,NaN,12\n"), line=4, column="rating"),
    "empty-rating": Case(lambda t: _flat_csv(t, HEADER + "1,2,3.5,10\n1,3,,11\n"), line=3, column="rating"),
    "nan-rating-parquet": Case(_parquet_nan, column="stars", contains=("row 2",)),
    "text-rating-parquet": Case(_parquet_text_rating, column="rating", contains=("good",)),
    "rating-above-scale": Case(
        lambda t: _flat_csv(t, HEADER + "1,2,3.5,10\n1,3,7,11\n"), line=3, column="rating", contains=("outside",)
    ),
    "rating-below-scale-custom-range": Case(
        lambda t: _flat_csv(t, HEADER + "1,2,3,10\n1,3,0.5,11\n"),
        line=3,
        column="rating",
        args=("--rating-range", "1,5"),
    ),
    "rating-zero-ml100k": Case(lambda t: _ml100k_with(t, "1\t2\t0\t881250949"), line=5, column="rating"),
    "rating-six-ml1m": Case(lambda t: _ml1m_with(t, "1::3::6::978300760"), line=3, column="rating"),
    "rating-custom-column-name": Case(
        lambda t: _flat_csv(t, "who,what,grade\na,b,4\nb,c,9\n"),
        line=3,
        column="grade",
        args=("--user-col", "who", "--item-col", "what", "--rating-col", "grade"),
    ),
    "empty-file": Case(lambda t: _flat_csv(t, ""), contains=("empty",)),
    "empty-movielens-ratings": Case(lambda t: _ml_folder(t, ""), contains=("empty",)),
    "header-only": Case(lambda t: _flat_csv(t, HEADER), contains=("empty",)),
    "short-row": Case(lambda t: _flat_csv(t, HEADER + "1,2,3.5,10\n1,3,4,11\n1,4,4\n"), line=4),
    "truncated-zip": Case(_truncated_zip, contains=("zip",)),
    "corrupt-zip-member": Case(_corrupt_member_zip, contains=("zip",)),
    "unreadable-parquet": Case(_garbage_parquet, contains=("Parquet",)),
    "truncated-parquet": Case(_truncated_parquet, contains=("Parquet",)),
    "implicit-negative-weight": Case(
        lambda t: _flat_csv(t, "user,item,weight\n1,2,3\n1,3,2\n2,3,-1\n"),
        line=4,
        column="weight",
        contains=("-1", "positive"),
    ),
    "implicit-text-weight": Case(
        lambda t: _flat_csv(t, "user,item,plays\n1,2,3\n1,3,lots\n"), line=3, column="plays", contains=("lots",)
    ),
    "implicit-zero-weight-parquet": Case(_parquet_zero_weight, column="weight", contains=("row 2", "positive")),
    "implicit-missing-item": Case(lambda t: _flat_csv(t, "user,item\n1,2\n1,\n"), line=3, column="item"),
    "implicit-with-rating-range": Case(
        lambda t: _flat_csv(t, "user,item\n1,2\n"),
        args=("--rating-range", "1,5"),
        contains=("--rating-range", "implicit"),
    ),
    "implicit-unknown-column": Case(
        lambda t: _flat_csv(t, "user,item,mood\n1,2,happy\n"), contains=("rating", "--rating-col", "--implicit")
    ),
}


def run(args) -> tuple:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def check_one_line_error(result, case: Case, named) -> str:
    assert result.exit_code == 1, result.output
    # the error was handled (no unhandled exception, so no traceback)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    msg = lines[0]
    assert msg.startswith("fastmf: error: ")
    assert str(named) in msg
    if case.line is not None:
        assert f"line {case.line}" in msg
    if case.column is not None:
        assert f"column '{case.column}'" in msg
    for frag in case.contains:
        assert frag in msg
    return msg


@pytest.mark.parametrize("name", list(CASES))
def test_info_bad_input(name, tmp_path):
    case = CASES[name]
    src, named = case.make(tmp_path)
    result = run(["info", src, *case.args])
    check_one_line_error(result, case, named)
    assert result.stdout == ""


@pytest.mark.parametrize("name", list(CASES))
def test_prepare_bad_input_leaves_nothing(name, tmp_path):
    case = CASES[name]
    src, named = case.make(tmp_path)
    parent = tmp_path / "out-parent"
    parent.mkdir()
    out = parent / "prepared"
    result = run(["prepare", src, out, *case.args])
    check_one_line_error(result, case, named)
    assert not out.exists()
    assert os.listdir(parent) == []  # no temporary folder left behind


def test_python_api_raises_value_error_with_location(tmp_path):
    f, _ = _flat_csv(tmp_path, HEADER + "1,2,3.5,10\n1,3,abc,11\n")
    with pytest.raises(ValueError) as info:
        fastmf.load_dataset(str(f))
    err = info.value
    assert isinstance(err, InputError)
    assert (err.path, err.line, err.column) == (str(f), 3, "rating")


def test_bad_rating_range_option(tmp_path):
    f, _ = _flat_csv(tmp_path, HEADER + "1,2,3.5,10\n")
    result = run(["info", f, "--rating-range", "one-five"])
    assert result.exit_code == 1
    assert [ln for ln in result.stderr.splitlines() if ln] == [
        "fastmf: error: --rating-range expects LO,HI (for example 1,5), got 'one-five'"
    ]


@pytest.mark.parametrize("kind", ["als", "bias", "vi", "features"])
def test_rating_models_refuse_implicit_tables(kind):
    """An implicit table has no ratings: rating models stop with one line (before any fitting)."""
    clicks = FIXTURES / "implicit" / "clicks.csv"
    result = run(["train", clicks, "--model", kind, "--json"])
    check_one_line_error(result, Case(lambda t: None, contains=(f"'{kind}' needs ratings", "bpr or popular")), clicks)
    assert result.stdout == ""
    result = run(["compare", clicks, "--models", f"popular,{kind}", "--test-frac", "0.5"])
    check_one_line_error(result, Case(lambda t: None, contains=(f"'{kind}' needs ratings",)), clicks)


# --------------------------------------------------------------------------- prepare: output side


def test_prepare_refuses_non_empty_output(tmp_path):
    out = tmp_path / "out"
    write(out / "keep.txt", "mine\n")
    for force in ([], ["--force"]):  # a folder fastmf did not write is never replaced
        result = run(["prepare", FIXTURES / "ml-1m", out, *force])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "not a fastmf prepared data folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert (out / "keep.txt").read_text() == "mine\n"
        assert sorted(os.listdir(tmp_path)) == ["out"]
    os.remove(out / "keep.txt")
    assert run(["prepare", FIXTURES / "ml-1m", out]).exit_code == 0  # an empty folder is taken
    result = run(["prepare", FIXTURES / "ml-1m", out])  # a prepared folder: only with --force
    assert result.exit_code == 1 and "--force" in result.stderr
    # --force replaces it
    result = run(["prepare", FIXTURES / "ml-1m", out, "--force"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["items.parquet", "manifest.json", "ratings.parquet"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_prepare_output_under_a_file(tmp_path):
    blocker = write(tmp_path / "file", "x")
    result = run(["prepare", FIXTURES / "ml-1m", blocker / "out"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and str(blocker) in result.stderr


def test_prepare_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    """A write that fails half-way (disk full) removes the temporary folder and leaves no output."""
    import fastmf.data_prep.prepared as prepared

    real = prepared.pq.write_table
    calls = []

    def failing_write(table, where, **kw):
        calls.append(where)
        if len(calls) == 2:  # ratings.parquet is written, items.parquet fails
            raise OSError(28, "No space left on device")
        return real(table, where, **kw)

    monkeypatch.setattr(prepared.pq, "write_table", failing_write)
    out = tmp_path / "prepared"
    result = run(["prepare", FIXTURES / "ml-20m", out])
    assert len(calls) == 2
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "No space left" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- duplicates


def test_duplicates_warn_and_keep_latest(tmp_path):
    # pair (1, 2) three times: the latest (t=30, rating 1) is in the middle of the file;
    # pair (2, 2) twice: the latest is the first line
    f, _ = _flat_csv(tmp_path, HEADER + "1,2,3.5,10\n2,2,5,9\n1,2,1,30\n1,3,2,5\n1,2,4.5,20\n2,2,0.5,8\n")
    out = tmp_path / "prepared"
    result = run(["prepare", f, out])
    assert result.exit_code == 0, result.output
    warn = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(warn) == 1 and warn[0].startswith("fastmf: warning:")
    assert "3 duplicate" in warn[0] and str(f) in warn[0]
    d = fastmf.load_dataset(str(out))
    got = {
        (u, i): (r, t)
        for u, i, r, t in zip(
            d.user_map.ids[d.user_of_entry].tolist(),
            d.item_map.ids[d.indices].tolist(),
            d.data.tolist(),
            d.timestamps.tolist(),
        )
    }
    assert got == {(1, 2): (1.0, 30), (1, 3): (2.0, 5), (2, 2): (5.0, 9)}
    # info reports the de-duplicated counts
    result = run(["info", f, "--json"])
    assert result.exit_code == 0
    assert '"ratings": 3' in result.stdout


# --------------------------------------------------------------------------- real subprocesses


def test_subprocess_errors_are_one_line(tmp_path):
    """The installed ``fastmf`` script: exit status 1, one stderr line, no traceback (run in parallel)."""
    chosen = ["missing-file", "non-numeric-rating", "truncated-zip", "unreadable-parquet"]
    procs = []
    for k, name in enumerate(chosen):
        case = CASES[name]
        work = tmp_path / str(k)
        work.mkdir()
        src, named = case.make(work)
        out_parent = work / "out-parent"
        out_parent.mkdir()
        cmd = [str(FASTMF), "prepare", str(src), str(out_parent / "prepared"), *case.args]
        procs.append(
            (
                name,
                case,
                named,
                out_parent,
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            )
        )
    for name, case, named, out_parent, p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 1, (name, stderr)
        assert "Traceback" not in stderr + stdout
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, (name, stderr)
        assert lines[0].startswith("fastmf: error: ") and str(named) in lines[0]
        if case.line is not None:
            assert f"line {case.line}" in lines[0]
        if case.column is not None:
            assert f"column '{case.column}'" in lines[0]
        assert os.listdir(out_parent) == []
