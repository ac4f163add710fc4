"""``fastmf evaluate`` and ``fastmf bench`` end to end through the command line.

``evaluate``'s metrics are recomputed from the saved model file (read here with NumPy, following
the format's description) and the bundled ratings parsed with the ``csv``
module (the ``embedded_ref`` fixture of conftest.py); ``bench``'s records are checked for
their fields, the numba/numpy ratio and against in-process fits of the same configurations.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import fastmf
from fastmf.cli import main


def run(args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def read_saved_model(path):
    """``(header, {array name: array})`` straight from a model file, as the README describes the format:
    8 magic bytes, the header's length (8 bytes, little-endian), the JSON header, then the arrays at
    their offsets from the first 64-byte boundary after the header."""
    raw = open(path, "rb").read()
    assert raw[:8] == b"FASTMF\x00\x02"
    length = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + length])
    start = -(-(16 + length) // 64) * 64
    arrays = {
        name: np.frombuffer(raw[start + m["offset"] : start + m["offset"] + m["nbytes"]], dtype=m["dtype"]).reshape(
            m["shape"]
        )
        for name, m in header["arrays"].items()
    }
    return header, arrays


def test_train_then_evaluate_json(tmp_path, embedded_ref):
    out = tmp_path / "model"
    trained = json.loads(run(["train", "--epochs", "2", "--factors", "4", "--out", out, "--json", "-q"]).stdout)
    assert trained["model"] == "als" and len(trained["history"]) == 2
    report = json.loads(run(["evaluate", out, "--json", "--include-training"]).stdout)
    assert report["model"] == "als" and report["model_dir"] == str(out)
    held_out = json.loads(run(["evaluate", out, "--json"]).stdout)

    header, a = read_saved_model(out)
    assert header["kind"] == "als" and header["params"]["factors"] == 4
    mu = header["extra"]["global_mean"]
    uidx = {v: k for k, v in enumerate(a["user_ids_"].tolist())}
    iidx = {v: k for k, v in enumerate(a["item_ids_"].tolist())}
    u = np.array([uidx.get(x, -1) for x in embedded_ref.users.tolist()])
    i = np.array([iidx.get(x, -1) for x in embedded_ref.items.tolist()])
    ku, ki = u >= 0, i >= 0
    pred = np.full(u.size, mu)
    pred[ku] += a["user_bias_"][u[ku]]
    pred[ki] += a["item_bias_"][i[ki]]
    both = ku & ki
    pred[both] += np.einsum(
        "nd,nd->n", a["user_factors_"][u[both]].astype(np.float64), a["item_factors_"][i[both]].astype(np.float64)
    )
    lo, hi = header["extra"]["rating_range"]
    assert (lo, hi) == (0.5, 5.0) and (pred < lo).any() | (pred > hi).any()
    err = embedded_ref.ratings - np.clip(pred, lo, hi)  # predictions are the scores clipped to the scale
    # with --include-training every bundled rating is scored (train's 90% included)
    assert report["cold"]["test_ratings"] == report["scored_ratings"] == embedded_ref.ratings.size
    assert report["training_ratings"] == trained["train_ratings"] and report["training_ratings_scored"]
    assert report["test_rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-6)
    assert report["test_mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-6)
    # by default only the held-out 10% is scored: exactly train's test split and its RMSE
    assert held_out["scored_ratings"] == embedded_ref.ratings.size - trained["train_ratings"]
    assert held_out["test_rmse"] == pytest.approx(trained["test_rmse"], rel=1e-9)
    assert trained["test_rmse"] > report["test_rmse"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "synth"
    run(["synth", folder, "--users", "300", "--items", "150", "--ratings", "8000", "--seed", "3"])
    return str(folder)


def test_bench_records(prepared, tmp_path):
    out = tmp_path / "bench.json"
    res = run(
        [
            "bench",
            "--model",
            "als",
            "--data",
            prepared,
            "--factors",
            "4",
            "--threads",
            "1",
            "--epochs",
            "2",
            "--numpy-epochs",
            "1",
            "--no-series",
            "--out",
            out,
            "-q",
        ]
    )
    with open(out) as fh:
        records = json.load(fh)
    assert sorted(r["backend"] for r in records) == ["numba", "numpy"]
    data = fastmf.load_dataset(prepared)
    by = {r["backend"]: r for r in records}
    for backend, epochs in (("numba", 2), ("numpy", 1)):
        r = by[backend]
        assert {
            "model",
            "backend",
            "factors",
            "threads",
            "ratings",
            "epochs",
            "epoch_seconds",
            "compile_seconds",
            "first_epoch_seconds",
            "fit_seconds",
            "peak_rss_mb",
            "ratings_per_s",
            "params",
            "last_train_rmse",
            "last_objective",
        } <= set(r)
        assert (r["model"], r["factors"], r["threads"], r["epochs"]) == ("als", 4, 1, epochs)
        assert r["ratings"] == data.n_ratings == 8000
        assert r["epoch_seconds"] > 0 and r["first_epoch_seconds"] > 0 and r["fit_seconds"] > 0
        assert r["compile_seconds"] >= 0 and r["peak_rss_mb"] > 0
        assert r["ratings_per_s"] == pytest.approx(r["ratings"] / r["epoch_seconds"])
        # the worker fitted exactly this configuration: same training error as an in-process fit
        model = fastmf.ALS(factors=4, epochs=epochs, backend=backend).fit(data)
        assert r["last_train_rmse"] == pytest.approx(model.history_[-1]["train_rmse"], rel=1e-9)
        assert r["last_objective"] == pytest.approx(model.history_[-1]["objective"], rel=1e-9)
    assert by["numba"]["numba_threading_layer"] and by["numpy"]["numba_threading_layer"] is None
    # the numba/numpy ratio of the same run, on the numba record only
    assert "speedup_vs_numpy" not in by["numpy"]
    assert by["numba"]["speedup_vs_numpy"] == pytest.approx(by["numpy"]["epoch_seconds"] / by["numba"]["epoch_seconds"])
    assert by["numba"]["speedup_vs_numpy"] > 0
    # the counted arithmetic is ALS's closed count for this shape: 2 R (D^2 + 2D) + E (D^3/3 + 2 D^2)
    d, shape = 4, data.n_users + data.n_items
    for r in records:
        assert r["flops_per_epoch"] == pytest.approx(2 * 8000 * (d * d + 2 * d) + shape * (d**3 / 3 + 2 * d * d))
    assert f"wrote {out}" in res.stdout and "numba" in res.stdout


def test_bench_roofline(prepared):
    """--roofline measures the machine and puts each run's counted rate against the peak of its cores."""
    args = [
        "bench",
        "--model",
        "als",
        "--data",
        prepared,
        "--factors",
        "4",
        "--threads",
        "1",
        "--epochs",
        "2",
        "--backends",
        "numba",
        "--no-series",
        "--roofline",
        "-q",
    ]
    out = json.loads(run([*args, "--json"]).output)
    machine, (r,) = out["machine"], out["records"]
    assert machine["cores"] >= 1 and machine["peak_gflops"] > 0 and machine["bandwidth_gbs"] > 0
    assert r["gflops"] == pytest.approx(r["flops_per_epoch"] / r["epoch_seconds"] / 1e9)
    assert r["peak_fraction"] == pytest.approx(r["gflops"] * machine["cores"] / machine["peak_gflops"])
    # the traffic an epoch must move, counted from the shape: per rating and side its index and value and
    # the other side's factors and bias, per entity its own (float32, D = 4)
    data = fastmf.load_dataset(str(prepared))
    want = 2 * data.n_ratings * (8 + 5 * 4) + (data.n_users + data.n_items) * (5 * 4 + 8)
    assert r["traffic_per_epoch"] == want
    assert r["traffic_gbs"] == pytest.approx(want / r["epoch_seconds"] / 1e9)
    assert r["bandwidth_fraction"] == pytest.approx(r["traffic_gbs"] * machine["cores"] / machine["bandwidth_gbs"])
    table = run(args).output
    assert "of peak" in table and "of bandwidth" in table
