"""The explicit vector kernels (Gram sums, the gather built on them, four-lane Cholesky solves,
the row-block products of the conjugate-gradient steps) against float64 NumPy on random inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from fastmf.kernels._cholesky4 import LANES, solve_lanes
from fastmf.kernels._gram import gram_update, gram_width
from fastmf.kernels._linalg import CG_BLOCK, GRAM_BLOCK, cg_scratch, cg_times, gather_moments, gather_scratch
from fastmf.kernels._rowblock import LANES as ROW_LANES
from fastmf.kernels._rowblock import add_weighted_rows, row_dots, vector_width


@njit
def _row_dots(rows, j0, m, n_vectors, p, out):
    row_dots(rows, j0, m, n_vectors, p, out)


@njit
def _add_weighted_rows(rows, j0, m, n_vectors, w, acc):
    add_weighted_rows(rows, j0, m, n_vectors, w, acc)


@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 140), m=st.integers(0, 70), j0=st.integers(0, 9), seed=st.integers(0, 2**32 - 1))
def test_row_block_products_match_numpy(d, m, j0, seed):
    """Dot products of rows ``j0 .. j0 + m - 1`` with a vector, and those rows summed with weights, every
    row count around the eight-row groups and every width around the eight-vector column chunks; nothing
    outside the rows and entries asked for is written."""
    rng = np.random.default_rng(seed)
    width = vector_width(d)
    n_vectors = width // ROW_LANES
    rows = np.zeros((j0 + m + 3, width), dtype=np.float32)
    rows[:, :d] = rng.standard_normal((j0 + m + 3, d))
    p = np.zeros(width, dtype=np.float32)
    p[:d] = rng.standard_normal(d)
    out = np.full(m + 2, 7.0, dtype=np.float32)
    _row_dots(rows, j0, m, n_vectors, p, out)
    block = rows[j0 : j0 + m].astype(np.float64)
    np.testing.assert_allclose(out[:m], block @ p, rtol=1e-5, atol=1e-4)
    assert (out[m:] == 7.0).all()
    w = rng.standard_normal(m).astype(np.float32)
    start = rng.standard_normal(width).astype(np.float32)
    acc = start.copy()
    _add_weighted_rows(rows, j0, m, n_vectors, w, acc)
    np.testing.assert_allclose(acc, start + w.astype(np.float64) @ block, rtol=1e-5, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 70),
    n=st.integers(0, 3 * CG_BLOCK + 5),
    weighted=st.booleans(),
    dense=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_cg_times_is_the_system_matrix_times_a_vector(d, n, weighted, dense, seed):
    """``(gram + ridge I + scale sum_j w_j y_j y_j^T) v`` over several row blocks, with and without
    per-row weights and a dense term."""
    rng = np.random.default_rng(seed)
    indptr = np.array([0, n], dtype=np.int64)
    rows, _, _, _, _, v32, acc32, dots = cg_scratch(indptr, 0, 1, d)
    rows[:n, :d] = rng.standard_normal((n, d))
    weight = rng.uniform(0.1, 3.0, n) if weighted else np.zeros(0)
    gram = rng.standard_normal((d, d)) if dense else np.zeros((0, 0))
    scale, ridge = 0.7, 1.3
    v = rng.standard_normal(d)
    out = np.empty(d)
    cg_times(rows, weight, scale, n, gram, ridge, v, out, d, v32, acc32, dots)
    y = rows[:n, :d].astype(np.float64)
    w = weight if weighted else np.ones(n)
    want = ridge * v + scale * (y.T @ (w * (y @ v)))
    if dense:
        want += gram @ v
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-3)


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
