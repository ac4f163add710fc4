"""Top-10 for every user (``recommend_all``) on the synthetic ml-32m shape (pytest-benchmark).

Run from the repository root (not part of the default test run):

    python3 -m pytest bench/bench_topk.py -p no:cacheprovider --benchmark-only

An ALS model is fitted for one epoch (its factors' values do not change the work), then three ways
of taking every user's 10 best unseen items are timed in the same process: the fused
score-and-select kernel (``topk_dot``, what ``recommend_all`` runs), the generic path (scores of
``SCORE_BATCH`` users formed by BLAS, then the top-K kernel), and BLAS forming the scores alone
(no selection at all). ``benchmark.extra_info`` holds the seconds of the other two and the ratios.
Targets (2 cores, full shape): fused <= 8 s at D=20 and <= 20 s at D=64, faster than BLAS alone.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from fastmf.common.layout import SCORE_BATCH
from fastmf.drivers import bench as B
from fastmf.models.base import Recommender

SCALE = float(os.environ.get("FASTMF_BENCH_SCALE", "1.0"))


@pytest.fixture(scope="module")
def train():
    import fastmf

    return fastmf.load_dataset(B.synthetic_folder(SCALE))


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _blas_scores_only(model) -> None:
    for lo in range(0, model.n_users, SCORE_BATCH):
        model._score_batch(np.arange(lo, min(lo + SCORE_BATCH, model.n_users)))


@pytest.mark.parametrize("factors", [20, 64])
def test_recommend_all_top10(benchmark, train, factors):
    import fastmf

    model = fastmf.ALS(factors=factors, epochs=1).fit(train)
    users = np.arange(model.n_users)
    eligible = np.ones(model.n_items, dtype=bool)
    model.recommend_indices(users[:100], k=10)  # compile outside the timing
    fused = benchmark.pedantic(model.recommend_indices, args=(users, 10), rounds=1, iterations=1)
    fused_seconds = benchmark.stats.stats.max
    generic_seconds = _seconds(lambda: Recommender._select(model, users, 10, True, eligible))
    blas_seconds = _seconds(lambda: _blas_scores_only(model))
    benchmark.extra_info.update(
        {
            "users": int(model.n_users),
            "items": int(model.n_items),
            "factors": factors,
            "fused_seconds": fused_seconds,
            "generic_seconds": generic_seconds,
            "blas_scores_only_seconds": blas_seconds,
            "speedup_vs_generic": generic_seconds / fused_seconds,
            "speedup_vs_blas_only": blas_seconds / fused_seconds,
        }
    )
    print(
        f"\nD={factors}: fused {fused_seconds:.2f} s, generic {generic_seconds:.2f} s, BLAS scores alone "
        f"{blas_seconds:.2f} s ({generic_seconds / fused_seconds:.1f}x, {blas_seconds / fused_seconds:.1f}x)"
    )
    assert fused[0].shape == (model.n_users, 10) and np.all(fused[0][:, 0] >= 0)
