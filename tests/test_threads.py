"""``fastmf.set_threads`` really changes the number of threads the parallel kernels run on.

The existing tests compare results between thread counts; they would still pass if
``set_threads`` silently kept one thread. These check that, after ``set_threads(2)``, a parallel
region runs on two distinct threads, that a fit runs with two threads set (recorded from the
epoch callback) and that results are then bit-for-bit those of one thread.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from model_mixin import parallel_kernels, small_split  # noqa: F401 (fixtures)

import fastmf

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")


@numba.njit(parallel=True, cache=False)
def thread_ids(n):
    """The Numba thread id that ran each of ``n`` iterations (each does a little work)."""
    out = np.empty(n, dtype=np.int64)
    for k in numba.prange(n):
        acc = 0.0
        for j in range(2000):
            acc += np.sqrt(k + j)
        out[k] = numba.get_thread_id() + (0 if acc >= 0 else 1)
    return out


@pytest.fixture
def restore_threads():
    before = numba.get_num_threads()
    yield
    fastmf.set_threads(before)


def test_set_threads_returns_and_sets_the_count(restore_threads):
    limit = numba.config.NUMBA_NUM_THREADS
    assert fastmf.set_threads(2) == 2 and numba.get_num_threads() == 2
    assert fastmf.set_threads(1) == 1 and numba.get_num_threads() == 1
    assert fastmf.set_threads(None) == limit and numba.get_num_threads() == limit
    assert fastmf.set_threads(0) == limit
    assert fastmf.set_threads(10 * limit) == limit  # clamped to what Numba was started with


def test_two_threads_run_a_parallel_region(restore_threads):
    fastmf.set_threads(1)
    assert set(np.unique(thread_ids(4000)).tolist()) == {0}  # the probe can tell one thread
    fastmf.set_threads(2)
    ids, counts = np.unique(thread_ids(4000), return_counts=True)
    assert ids.tolist() == [0, 1], "set_threads(2) but the parallel loop ran on one thread"
    assert counts.min() > 0


def _fit_recording_threads(model, train, threads):
    fastmf.set_threads(threads)
    seen = []
    # epoch records only: a cold cache also announces {"event": "compiling"}
    model.fit(train, callback=lambda record: "epoch" in record and seen.append(numba.get_num_threads()))
    assert seen == [threads] * len(model.history_)
    assert set(np.unique(thread_ids(1000)).tolist()) == set(range(threads))
    return model


def test_als_on_two_threads_equals_one_thread(small_split, restore_threads, parallel_kernels):
    two = _fit_recording_threads(fastmf.ALS(factors=6, epochs=3), small_split.train, 2)
    one = _fit_recording_threads(fastmf.ALS(factors=6, epochs=3), small_split.train, 1)
    for key in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(two, key), getattr(one, key), err_msg=key)
    assert [r["objective"] for r in two.history_] == [r["objective"] for r in one.history_]


def test_error_sums_do_not_depend_on_the_thread_count(small_split, restore_threads, parallel_kernels):
    two = _fit_recording_threads(fastmf.ALS(factors=6, epochs=3), small_split.train, 2)
    one = _fit_recording_threads(fastmf.ALS(factors=6, epochs=3), small_split.train, 1)
    np.testing.assert_array_equal(two.user_factors_, one.user_factors_)
    assert [r["train_rmse"] for r in two.history_] == [r["train_rmse"] for r in one.history_]
    assert [r["objective"] for r in two.history_] == [r["objective"] for r in one.history_]


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_vi_on_two_threads_equals_one_thread(small_split, restore_threads, covariance):
    make = lambda: fastmf.VI(factors=5, epochs=2, learn_hyper=True, covariance=covariance)  # noqa: E731
    two = _fit_recording_threads(make(), small_split.train, 2)
    one = _fit_recording_threads(make(), small_split.train, 1)
    for key in ("user_factors_", "item_factors_", "user_cov_", "item_cov_", "tau_"):
        np.testing.assert_array_equal(getattr(two, key), getattr(one, key), err_msg=key)
    assert (two.lam_, two.gamma_) == (one.lam_, one.gamma_)
    assert [r["elbo"] for r in two.history_] == [r["elbo"] for r in one.history_]
