"""The explicit vector kernels (Gram sums, the gather built on them, four-lane Cholesky solves)
against float64 NumPy on random inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf.kernels._cholesky4 import LANES, solve_lanes
from fastmf.kernels._gram import gram_update, gram_width
from fastmf.kernels._linalg import GRAM_BLOCK, gather_moments, gather_scratch


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 70), m=st.integers(0, GRAM_BLOCK), seed=st.integers(0, 2**32 - 1))
def test_gram_update_adds_the_lower_triangle_of_y_t_y(rows, m, seed):
    rng = np.random.default_rng(seed)
    width = gram_width(rows)
    y = np.zeros((GRAM_BLOCK, width), dtype=np.float32)
    y[:m, :rows] = rng.standard_normal((m, rows))
    start = rng.standard_normal((width, width)).astype(np.float32)
    gram = start.copy()
    gram_update(y, m, rows, gram)
    want = start[:rows, :rows].astype(np.float64) + y[:m, :rows].T.astype(np.float64) @ y[:m, :rows]
    low = np.tril_indices(rows)
    np.testing.assert_allclose(gram[:rows, :rows][low], want[low], rtol=1e-5, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(0, 40), n=st.integers(0, 3 * GRAM_BLOCK + 5), seed=st.integers(0, 2**32 - 1))
def test_gather_moments_match_numpy(d, n, seed):
    rng = np.random.default_rng(seed)
    n_other = 50
    factors = rng.standard_normal((n_other, d)).astype(np.float32)
    bias = rng.standard_normal(n_other).astype(np.float32)
    indices = rng.integers(0, n_other, n).astype(np.int32)
    data = rng.uniform(0.5, 5.0, n).astype(np.float32)
    mu = 3.5
    y, gram, s, t = gather_scratch(d)
    vsum = np.empty(d)
    var = rng.uniform(0.1, 1.0, (n_other, d)).astype(np.float32)
    c, c2 = gather_moments(0, n, indices, data, mu, bias, factors, factors.reshape(-1), var, True, y, gram, s, t, vsum)
    v = factors[indices].astype(np.float64)
    r = data.astype(np.float64) - mu - bias[indices]
    low = np.tril_indices(d)
    np.testing.assert_allclose(gram[:d, :d][low], (v.T @ v)[low], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(s, v.sum(axis=0), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(t, v.T @ r, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(vsum, var[indices].sum(axis=0, dtype=np.float64), rtol=1e-5, atol=1e-3)
    assert np.isclose(c, r.sum(), rtol=1e-6, atol=1e-4)
    assert np.isclose(c2, (r * r).sum(), rtol=1e-6, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 40), used=st.integers(1, LANES), seed=st.integers(0, 2**32 - 1))
def test_four_lane_cholesky_solves_each_lane(d, used, seed):
    rng = np.random.default_rng(seed)
    a4 = rng.standard_normal((d, d, LANES))  # the strict upper triangle is never read
    b4 = rng.standard_normal((d, LANES))
    systems, rhs = [], []
    for lane in range(used):
        v = rng.standard_normal((3 * d, d))
        a = v.T @ v / d + rng.uniform(0.01, 2.0) * np.eye(d)
        systems.append(a)
        rhs.append(b4[:, lane].copy())
        a4[:, :, lane] = np.tril(a) + np.triu(a4[:, :, lane], 1)
    solve_lanes(a4, b4, used, d)
    for lane in range(used):
        np.testing.assert_allclose(b4[:, lane], np.linalg.solve(systems[lane], rhs[lane]), rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(np.tril(a4[:, :, lane]), np.linalg.cholesky(systems[lane]), rtol=1e-9, atol=1e-12)
    assert np.all(b4[:, used:] == 0.0)


def test_four_lane_cholesky_marks_an_indefinite_lane_only():
    d = 5
    a4 = np.zeros((d, d, LANES))
    b4 = np.ones((d, LANES))
    for lane in range(LANES):
        a4[:, :, lane] = np.eye(d) * (lane + 1)
    a4[2, 2, 1] = -1.0
    solve_lanes(a4, b4, LANES, d)
    assert np.isnan(b4[:, 1]).any()
    for lane in (0, 2, 3):
        np.testing.assert_allclose(b4[:, lane], 1.0 / (lane + 1))
