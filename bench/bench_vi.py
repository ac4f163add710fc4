"""Variational Bayes epoch benchmarks beside ALS on the synthetic ml-32m shape (pytest-benchmark).

Run from the repository root (not part of the default test run):

    python3 -m pytest bench/bench_vi.py -p no:cacheprovider --benchmark-only

``FASTMF_BENCH_SCALE`` (default 1.0) shrinks the shape; ``FASTMF_BENCH_CACHE`` moves
the generated data. Every configuration runs in a fresh subprocess through the worker
of ``fastmf bench`` (:func:`fastmf.drivers.bench.run_config`: median epoch time excluding the
first, ratings per second, compile seconds, the subprocess's peak RSS), and all of it
goes to ``benchmark.extra_info``.

* ``test_vi_beside_als``: ALS, VI with full and with diagonal covariances at the same
  D = 20, measured back to back; target: a full-covariance epoch within 2x of an ALS
  epoch (the ML-32M report's VI ran about 9x slower than its ALS).
* ``test_vi_numba_vs_numpy``: each covariance option on both backends in the same run
  (the NumPy reference runs one epoch), reporting the speed-up.

The same figures from the command line: ``fastmf bench --model vi`` (full covariance),
``fastmf bench --model vi --param covariance=diagonal`` and ``fastmf bench --model als``.
"""

from __future__ import annotations

import os

import pytest

from fastmf.drivers import bench as B

SCALE = float(os.environ.get("FASTMF_BENCH_SCALE", "1.0"))
FACTORS = 20
TARGET_RATIO_FULL_VS_ALS = 2.0


@pytest.fixture(scope="module")
def folder():
    return B.synthetic_folder(SCALE)


def _config(folder, model, backend, **params):
    return {
        "model": model,
        "backend": backend,
        "threads": None,
        "data": folder,
        "scale": SCALE,
        "epochs": 4 if backend == "numba" else 1,
        "params": {"factors": FACTORS, **params},
    }


def _run_all(configs):
    return {name: B.run_subprocess(cfg) for name, cfg in configs.items()}


def test_vi_beside_als(benchmark, folder):
    configs = {
        "als": _config(folder, "als", "numba"),
        "vi_full": _config(folder, "vi", "numba", covariance="full"),
        "vi_diagonal": _config(folder, "vi", "numba", covariance="diagonal"),
    }
    records = benchmark.pedantic(_run_all, args=(configs,), rounds=1, iterations=1)
    als = records["als"]["epoch_seconds"]
    for name, record in records.items():
        benchmark.extra_info[f"{name}_epoch_seconds"] = record["epoch_seconds"]
        benchmark.extra_info[f"{name}_peak_rss_mb"] = record["peak_rss_mb"]
        benchmark.extra_info[f"{name}_ratings_per_s"] = record["ratings_per_s"]
    ratio = records["vi_full"]["epoch_seconds"] / als
    benchmark.extra_info.update(
        {
            "ratings": records["als"]["ratings"],
            "factors": FACTORS,
            "scale": SCALE,
            "vi_full_vs_als": ratio,
            "vi_diagonal_vs_als": records["vi_diagonal"]["epoch_seconds"] / als,
            "target_full_vs_als": TARGET_RATIO_FULL_VS_ALS,
        }
    )
    assert ratio <= TARGET_RATIO_FULL_VS_ALS


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_vi_numba_vs_numpy(benchmark, folder, covariance):
    configs = {b: _config(folder, "vi", b, covariance=covariance) for b in ("numba", "numpy")}
    records = benchmark.pedantic(_run_all, args=(configs,), rounds=1, iterations=1)
    for backend, record in records.items():
        benchmark.extra_info[f"{backend}_epoch_seconds"] = record["epoch_seconds"]
        benchmark.extra_info[f"{backend}_peak_rss_mb"] = record["peak_rss_mb"]
    benchmark.extra_info["speedup_vs_numpy"] = records["numpy"]["epoch_seconds"] / records["numba"]["epoch_seconds"]
    assert records["numba"]["epoch_seconds"] < records["numpy"]["epoch_seconds"]
