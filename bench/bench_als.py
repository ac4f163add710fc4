"""ALS and bias-only epoch benchmarks on the synthetic ml-32m shape (pytest-benchmark).

Run from the repository root (not part of the default test run):

    python3 -m pytest bench/bench_als.py -p no:cacheprovider --benchmark-only

``FASTMF_BENCH_SCALE`` (default 1.0) shrinks the shape; ``FASTMF_BENCH_CACHE`` moves
the generated data. Each configuration runs in a fresh subprocess through the same
worker as ``fastmf bench`` (``fastmf.drivers.bench.run_config``), which fits a few epochs and
reports the median epoch time excluding the first, ratings per second, the first
epoch's extra (compile) seconds and the subprocess's peak RSS; all of it goes to
``benchmark.extra_info``. Targets (2 cores, full shape): ALS D=20 under 2 s per epoch
and >= 50x numpy; D=64 >= 4 M ratings/s; peak RSS under 3 GB.
"""

from __future__ import annotations

import os

import pytest

from fastmf.drivers import bench as B

SCALE = float(os.environ.get("FASTMF_BENCH_SCALE", "1.0"))


@pytest.fixture(scope="module")
def folder():
    return B.synthetic_folder(SCALE)


def _measure(benchmark, config):
    record = benchmark.pedantic(B.run_subprocess, args=(config,), rounds=1, iterations=1)
    benchmark.extra_info.update(record)
    return record


@pytest.mark.parametrize("factors", [20, 64])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_als_epoch(benchmark, folder, backend, factors):
    epochs = 4 if backend == "numba" else 1
    record = _measure(
        benchmark,
        {
            "model": "als",
            "backend": backend,
            "threads": None,
            "data": folder,
            "scale": SCALE,
            "epochs": epochs,
            "params": {"factors": factors},
        },
    )
    assert record["ratings"] > 0 and record["epoch_seconds"] > 0


def test_bias_only_epoch(benchmark, folder):
    record = _measure(
        benchmark,
        {
            "model": "bias",
            "backend": "numba",
            "threads": None,
            "data": folder,
            "scale": SCALE,
            "epochs": 4,
            "params": {},
        },
    )
    assert record["epoch_seconds"] > 0
