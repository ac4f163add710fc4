"""Model files and outputs as an attacker or an unlucky user would meet them.

Every hostile case is refused with one line (a :class:`ModelFileError`, or exit status 1 and one
``fastmf: error:`` line on the command line), never a traceback, a crash or a silent wrong load,
and nothing a user owns is changed. The crash and concurrency tests kill and race real processes
(bounded in count and time).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import fastmf
from fastmf.cli import main
from fastmf.common.errors import ModelFileError
from fastmf.models import io

KINDS = {
    "als": lambda: fastmf.ALS(factors=3, epochs=2),
    "bias": lambda: fastmf.BiasOnly(epochs=2),
    "features": lambda: fastmf.FeatureALS(factors=3, epochs=2),
    "vi": lambda: fastmf.VI(factors=3, epochs=2, learn_hyper=True),
    "vi-diagonal": lambda: fastmf.VI(factors=3, epochs=2, covariance="diagonal"),
    "bpr": lambda: fastmf.BPR(factors=3, epochs=2, threshold=3.0),
    "popular": lambda: fastmf.MostPopular(threshold=3.0),
}


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 40, 700), rng.integers(0, 30, 700)
    keep = np.unique(users * 1000 + items, return_index=True)[1]
    data = fastmf.Dataset.from_arrays(users[keep], items[keep], rng.choice(np.arange(1, 11) / 2, 700)[keep])
    return data.with_features(np.arange(30), [f"g{k % 4}" for k in range(30)])


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    """One saved model file of every kind."""
    folder = tmp_path_factory.mktemp("models")
    return {kind: make().fit(tiny).save(str(folder / kind)) for kind, make in KINDS.items()}


def state(model) -> dict:
    """Every array and scalar a loaded model holds, for exact comparison."""
    out = {}
    for key, value in vars(model).items():
        if key.endswith("_") and not key.startswith("_"):
            out[key] = value.ids if hasattr(value, "ids") else value
    return out


def same_state(a, b) -> bool:
    sa, sb = state(a), state(b)
    if sa.keys() != sb.keys():
        return False
    for key, value in sa.items():
        other = sb[key]
        if isinstance(value, np.ndarray):
            if not (isinstance(other, np.ndarray) and value.dtype == other.dtype and np.array_equal(value, other)):
                return False
        elif json.dumps(value, default=str) != json.dumps(other, default=str):
            return False
    return True


def rewrite(path, edit_header=None, arrays=None):
    """Rewrite a model file with its header edited by ``edit_header(header)`` and/or some arrays replaced,
    with valid checksums (an attacker who knows the format)."""
    saved = io.read_model(path)
    data = dict(saved.arrays, **(arrays or {}))
    io.write_model(path + ".new", saved.kind, saved.params, data, saved.history, saved.fit_seconds, saved.extra)
    if edit_header is not None:
        raw = open(path + ".new", "rb").read()
        length = int.from_bytes(raw[8:16], "little")
        start = -(-(16 + length) // 64) * 64
        header = json.loads(raw[16 : 16 + length])
        edit_header(header)
        blob = json.dumps(header).encode()
        new_start = -(-(16 + len(blob)) // 64) * 64
        blob += b" " * (new_start - 16 - len(blob))
        raw = raw[:8] + len(blob).to_bytes(8, "little") + blob + raw[start:]
        open(path + ".new", "wb").write(raw)
    os.replace(path + ".new", path)


def one_line_error(path, match):
    with pytest.raises(ModelFileError, match=match) as info:
        fastmf.load_model(path)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- tampered files


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_round_trips_exactly(saved, kind, tiny):
    model = fastmf.load_model(saved[kind])
    assert same_state(model, fastmf.load_model(saved[kind]))
    assert type(model).kind == KINDS[kind]().kind


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h.update(kind=["als"]), "kind"),
        (lambda h: h.pop("params"), "'params'"),
        (lambda h: h.update(arrays=["user_factors_"]), "'arrays'"),
        (lambda h: h["arrays"]["user_factors_"].pop("shape"), "shape"),
        (lambda h: h["extra"].update(global_mean="abc"), "global_mean"),
        (lambda h: h.update(history="long"), "'history'"),
        (lambda h: h.update(format_version="2"), "format version"),
        (lambda h: h["params"].update(factors="many"), "parameters"),
        (lambda h: h["arrays"]["user_factors_"].update(dtype="|O"), "not allowed|dtype"),
        (lambda h: h["arrays"].update({"../outside/secret_": h["arrays"]["user_factors_"]}), "is not one"),
        (lambda h: h["arrays"].update({"recommend": h["arrays"]["user_factors_"]}), "is not one"),
        (lambda h: h["arrays"]["user_factors_"].update(offset=10**12), "does not fit"),
        (lambda h: h.update(kind="svd"), "unknown model kind"),
    ],
)
def test_malformed_headers_are_one_line(saved, tmp_path, edit, match):
    path = str(tmp_path / "m")
    open(path, "wb").write(open(saved["als"], "rb").read())
    rewrite(path, edit_header=edit)
    one_line_error(path, match)


@pytest.mark.parametrize(
    "kind, name, bad, match",
    [
        ("als", "seen_indptr_", lambda a: np.concatenate([[-(2**40)], a[1:]]), "seen indptr"),
        ("als", "seen_indices_", lambda a: a + 10**6, "out of range"),
        ("bpr", "positive_indices_", lambda a: a[::-1].copy(), "sorted"),
        ("als", "user_factors_", lambda a: np.where(a == a.flat[0], np.nan, a), "non-finite"),
        ("vi", "item_cov_", lambda a: -a, "positive"),
        ("vi-diagonal", "tau_", lambda a: np.zeros_like(a), "positive"),
        ("als", "user_ids_", lambda a: np.full_like(a, a[0]), "duplicate"),
        ("features", "item_feature_indices_", lambda a: a + 100, "out of range"),
        ("als", "item_bias_", lambda a: a[:-1], "shape"),
        ("als", "user_factors_", lambda a: a.astype(np.float16), "dtype"),
    ],
)
def test_inconsistent_arrays_with_valid_checksums_are_refused(saved, tmp_path, kind, name, bad, match):
    path = str(tmp_path / "m")
    open(path, "wb").write(open(saved[kind], "rb").read())
    rewrite(path, arrays={name: bad(io.read_model(path).arrays[name])})
    one_line_error(path, match)


def test_a_crafted_index_never_reaches_a_kernel(saved, tmp_path):
    """The segfault of fastmf 0.1: ``recommend`` on a model whose seen_indptr starts at -2**40, in a child process."""
    path = str(tmp_path / "m")
    open(path, "wb").write(open(saved["als"], "rb").read())
    indptr = io.read_model(path).arrays["seen_indptr_"].copy()
    indptr[0] = -(2**40)
    rewrite(path, arrays={"seen_indptr_": indptr})
    result = CliRunner().invoke(main, ["recommend", path, "--user", "1"])
    assert result.exit_code == 1 and "seen indptr" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_pickled_payload_is_refused(tmp_path):
    path = str(tmp_path / "m")
    evil = np.array([{"a": 1}], dtype=object)
    with pytest.raises(ModelFileError, match="dtype object"):
        io.write_model(path, "als", {}, {"user_ids_": evil}, [], None, {})
    # a header that declares an object array is refused before anything is read
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    np.save(legacy / "user_ids.npy", evil, allow_pickle=True)
    (legacy / "header.json").write_text(
        json.dumps(
            {
                "format": "fastmf-model",
                "format_version": 1,
                "kind": "als",
                "params": {},
                "history": [],
                "extra": {},
                "arrays": {"user_ids_": {"shape": [1], "dtype": "object"}},
            }
        )
    )
    one_line_error(str(legacy), "not allowed|not listed")


def test_legacy_folders_do_not_read_outside_or_through_links(tmp_path):
    legacy = tmp_path / "legacy"
    src = os.path.join(os.path.dirname(__file__), "fixtures", "models-0.1", "als")
    os.makedirs(legacy)
    for name in os.listdir(src):
        open(legacy / name, "wb").write(open(os.path.join(src, name), "rb").read())
    secret = tmp_path / "secret.npy"
    np.save(secret, np.load(legacy / "user_factors.npy"))
    os.remove(legacy / "user_factors.npy")
    os.symlink(secret, legacy / "user_factors.npy")
    one_line_error(str(legacy), "not a file inside the model folder")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_random_corruption_is_refused_or_harmless(saved, tmp_path, kind):
    """Random bytes written into the file, and truncations: refused with one line, or (bytes that fell in
    the padding between arrays) a load identical to the original. Bounded: 40 cases per kind."""
    original = open(saved[kind], "rb").read()
    reference = fastmf.load_model(saved[kind])
    rng = np.random.default_rng(sum(map(ord, kind)))
    path = str(tmp_path / "m")
    outcomes = {"refused": 0, "identical": 0}
    for case in range(40):
        raw = bytearray(original)
        if case % 4 == 3:
            raw = raw[: int(rng.integers(0, len(raw)))]
        else:
            at = int(rng.integers(0, len(raw)))
            raw[at : at + 64] = rng.integers(0, 256, len(raw[at : at + 64]), dtype=np.uint8).tobytes()
        open(path, "wb").write(bytes(raw))
        try:
            loaded = fastmf.load_model(path)
        except ModelFileError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
            continue
        assert same_state(loaded, reference), f"case {case}: a corrupt file loaded as a different model"
        outcomes["identical"] += 1
    assert outcomes["refused"] >= 30, outcomes


# --------------------------------------------------------------------------- crashes and concurrent readers

WRITER = """
import sys, fastmf
fastmf.set_threads(1)
a, target = [fastmf.load_model(p) for p in sys.argv[1:3]], sys.argv[3]
print("ready", flush=True)
k = 0
while True:
    a[k % 2].save(target)
    k += 1
"""


@pytest.fixture(scope="module")
def two_models(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two")
    paths = [fastmf.ALS(factors=3, epochs=e).fit(tiny).save(str(folder / f"m{e}")) for e in (1, 3)]
    digests = {hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}
    return paths, digests


def test_a_save_killed_at_any_point_leaves_the_old_or_the_new_model(two_models, tmp_path):
    paths, digests = two_models
    target = str(tmp_path / "model")
    open(target, "wb").write(open(paths[0], "rb").read())
    rng = np.random.default_rng(5)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, *paths, target], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.15)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert hashlib.sha256(open(target, "rb").read()).hexdigest() in digests
        fastmf.load_model(target)
    leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".model.")]
    fastmf.load_model(paths[1]).save(target)  # the next write removes the killed writers' temporaries
    assert [f for f in os.listdir(tmp_path) if f.startswith(".model.")] == [], leftovers


READER = """
import hashlib, sys, time, fastmf
target, deadline, n = sys.argv[1], time.time() + float(sys.argv[2]), 0
seen = set()
while time.time() < deadline:
    m = fastmf.load_model(target)
    seen.add(hashlib.sha256(m.user_factors_.tobytes()).hexdigest())
    n += 1
print(n, *sorted(seen))
"""


def test_readers_never_see_a_mix_while_a_writer_replaces_the_model(two_models, tmp_path):
    paths, _ = two_models
    expected = {hashlib.sha256(fastmf.load_model(p).user_factors_.tobytes()).hexdigest() for p in paths}
    target = str(tmp_path / "model")
    open(target, "wb").write(open(paths[0], "rb").read())
    writer = subprocess.Popen([sys.executable, "-c", WRITER, *paths, target], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    try:
        readers = [
            subprocess.run([sys.executable, "-c", READER, target, "4"], capture_output=True, text=True, timeout=120)
            for _ in range(2)
        ]
    finally:
        writer.kill()
        writer.wait()
    for r in readers:
        assert r.returncode == 0, r.stderr[-2000:]
        count, *seen = r.stdout.split()
        assert int(count) > 20 and set(seen) <= expected


# --------------------------------------------------------------------------- outputs


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def refused(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for w in words:
        assert w in result.stderr


def test_train_never_overwrites_a_users_folder_or_file(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "thesis.txt").write_text("x")
    refused(run(["train", "--epochs", "1", "--out", folder]), "not a fastmf model")
    assert os.listdir(folder) == ["thesis.txt"] and (folder / "thesis.txt").read_text() == "x"
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    refused(run(["train", "--epochs", "1", "--out", notes]), "not a fastmf model")
    assert notes.read_text() == "mine"


def test_train_refuses_the_current_folder_and_the_data(tmp_path, monkeypatch):
    data = tmp_path / "ratings.csv"
    data.write_text("userId,movieId,rating\n1,1,4\n1,2,3\n2,1,5\n2,2,2\n3,1,4\n")
    monkeypatch.chdir(tmp_path)
    refused(run(["train", data, "--epochs", "1", "--out", "."]), "current folder")
    refused(run(["train", data, "--epochs", "1", "--out", tmp_path.parent]), "current folder")
    refused(run(["train", data, "--epochs", "1", "--out", data]), "input data")
    sub = tmp_path / "sub"
    sub.mkdir()
    nested = sub / "ratings.csv"
    nested.write_text(data.read_text())
    refused(run(["train", nested, "--epochs", "1", "--out", sub]), "input data")
    assert sorted(os.listdir(tmp_path)) == ["ratings.csv", "sub"] and os.listdir(sub) == ["ratings.csv"]


def test_retraining_into_a_model_replaces_it_and_says_so(tmp_path):
    out = tmp_path / "m"
    assert run(["train", "--epochs", "1", "--factors", "2", "--out", out]).exit_code == 0
    result = run(["train", "--epochs", "2", "--factors", "2", "--out", out])
    assert result.exit_code == 0 and "replacing the model that was there" in result.stdout
    assert len(fastmf.load_model(str(out)).history_) == 2
    assert os.listdir(tmp_path) == ["m"]


def test_outputs_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = fastmf.ALS(factors=2, epochs=1).fit(fastmf.load_dataset()).save(str(tmp_path / "m"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale_file = tmp_path / f".m.tmp-{dead}-0badc0de"
    stale_file.write_text("partial")
    stale_dir = tmp_path / f".m.old-{dead}-0badc0df"
    stale_dir.mkdir()
    live = tmp_path / f".m.tmp-{os.getppid()}-0badc0e0"  # a running process's temporary stays
    live.write_text("in progress")
    fastmf.ALS(factors=2, epochs=1).fit(fastmf.load_dataset()).save(str(tmp_path / "m"))
    assert sorted(os.listdir(tmp_path)) == sorted(["m", live.name])


def test_plot_and_bench_never_replace_a_users_file(tmp_path):
    pytest.importorskip("matplotlib")
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "top_items.png").write_text("my drawing")
    refused(run(["plot", "data", "--out", figs]), "not a fastmf figure")
    assert os.listdir(figs) == ["top_items.png"]
    (tmp_path / "bench.json").write_text("[1, 2]")
    refused(run(["bench", "--out", tmp_path / "bench.json", "--scale", "0.001"]), "not a fastmf benchmark")
    assert (tmp_path / "bench.json").read_text() == "[1, 2]"
