"""Small dense linear algebra for per-entity solves inside parallel kernels.

All routines work in place on caller-provided scratch so that a parallel loop
over users or items allocates nothing per entity, and none calls BLAS (so no
BLAS threads are started inside a parallel region). The Gram-matrix helpers
gather a block of factor rows transposed and accumulate ``sum_j x_j x_j^T``
with 4x4 register tiles, which LLVM turns into full-width SIMD FMAs.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf.common.layout import CACHE_LINE_FLOATS

# Reassociation lets LLVM vectorise reductions; no NaN/inf assumptions are made.
FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, inline="always")
def cholesky(a, d):
    """In-place lower Cholesky factor of the symmetric positive definite ``a[:d, :d]``.

    On return ``a[j, k]`` for ``k <= j`` holds ``L`` with ``A = L L^T``; the
    strict upper triangle is left untouched. Returns False if ``A`` is not
    positive definite.
    """
    for j in range(d):
        s = a[j, j]
        for k in range(j):
            s -= a[j, k] * a[j, k]
        if s <= 0.0:
            return False
        ljj = math.sqrt(s)
        a[j, j] = ljj
        inv = 1.0 / ljj
        for i in range(j + 1, d):
            t = a[i, j]
            for k in range(j):
                t -= a[i, k] * a[j, k]
            a[i, j] = t * inv
    return True


@njit(cache=True, inline="always")
def cho_solve(l, b, d):
    """Solve ``L L^T x = b`` in place in ``b[:d]`` given the lower factor ``l``."""
    for i in range(d):
        t = b[i]
        for k in range(i):
            t -= l[i, k] * b[k]
        b[i] = t / l[i, i]
    for i in range(d - 1, -1, -1):
        t = b[i]
        for k in range(i + 1, d):
            t -= l[k, i] * b[k]
        b[i] = t / l[i, i]


@njit(cache=True, inline="always", fastmath=FAST)
def cho_inverse(l, w, out, d):
    """``out[:d, :d] = (L L^T)^-1`` (full symmetric) from the lower factor ``l``; ``w`` is scratch.

    Row-oriented, so every inner loop runs along contiguous memory: the rows of
    ``W = L^-1`` come from ``w_i = (e_i - sum_{k<i} L_ik w_k) / L_ii``, and
    ``A^-1 = W^T W = sum_k w_k w_k^T`` is accumulated as rank-one row updates.
    No allocation: ``w`` (``d x d``) is caller scratch.
    """
    for i in range(d):
        for j in range(i + 1):
            w[i, j] = 0.0
        for k in range(i):
            lik = l[i, k]
            for j in range(k + 1):
                w[i, j] -= lik * w[k, j]
        inv = 1.0 / l[i, i]
        for j in range(i):
            w[i, j] *= inv
        w[i, i] = inv
    for p in range(d):
        for q in range(p + 1):
            out[p, q] = 0.0
    for k in range(d):
        for p in range(k + 1):
            wkp = w[k, p]
            for q in range(p + 1):
                out[p, q] += wkp * w[k, q]
    for p in range(d):
        for q in range(p):
            out[q, p] = out[p, q]


@njit(cache=True, inline="always")
def logdet_from_cholesky(l, d):
    """``log det(L L^T) = 2 sum log L_jj``."""
    s = 0.0
    for j in range(d):
        s += math.log(l[j, j])
    return 2.0 * s


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to load ``arr.flat[idx]`` into cache (``llvm.prefetch``, read, high locality)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty, _ = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


GRAM_BLOCK = 128
PREFETCH_AHEAD = 32


@njit(cache=True, inline="always")
def prefetch_span(flat, start, length):
    """Prefetch every cache line of ``flat[start:start + length]`` (4-byte elements).

    A row that does not start on a line boundary reaches into one more line than
    its length suggests, so the last element is prefetched too.
    """
    for off in range(0, length, CACHE_LINE_FLOATS):
        prefetch(flat, start + off)
    if length > 0:
        prefetch(flat, start + length - 1)


@njit(cache=True, inline="always")
def padded_dim(d):
    """``d`` rounded up to a multiple of 4 (the register tile of :func:`gram_add`)."""
    return (d + 3) // 4 * 4


@njit(cache=True, inline="always")
def gather_rows(x, factors, flat, indices, start, m, d):
    """``x[:d, jj] = factors[indices[start + jj]]`` for ``jj < m``, zero-padding to a multiple of 16.

    ``x`` holds a block of factor rows transposed (one row per dimension) so that
    :func:`gram_add` can run along the block with full SIMD vectors; rows beyond
    the gather are prefetched ``PREFETCH_AHEAD`` entries ahead. The transposed stores are
    scalar, one cache line per dimension, and bound the gather: two rows are written together,
    so that each pair of consecutive stores lands in one line and the core retires them in one
    cycle (7.0 against 10.5 ns per rating, one thread, the ml-32m shape's user side, D = 20).
    """
    n = indices.shape[0]
    jj = 0
    while jj + 1 < m:
        ahead = start + jj + PREFETCH_AHEAD
        if ahead + 1 < n:
            prefetch_span(flat, indices[ahead] * d, d)
            prefetch_span(flat, indices[ahead + 1] * d, d)
        i = indices[start + jj]
        k = indices[start + jj + 1]
        for p in range(d):
            x[p, jj] = factors[i, p]
            x[p, jj + 1] = factors[k, p]
        jj += 2
    if jj < m:
        i = indices[start + jj]
        for p in range(d):
            x[p, jj] = factors[i, p]
    mm = (m + 15) // 16 * 16
    for jj in range(m, mm):
        for p in range(d):
            x[p, jj] = 0.0
    return mm


@njit(cache=True, inline="always")
def gather_scratch(d):
    """Per-task scratch of :func:`gather_moments` for ``D = d``: the transposed gather buffer ``x``,
    the residuals ``res``, the Gram matrix and the ``D``-vectors ``s`` and ``t``."""
    dp = padded_dim(d)
    return (
        np.zeros((dp, GRAM_BLOCK), dtype=np.float32),
        np.zeros(GRAM_BLOCK, dtype=np.float32),
        np.zeros((dp, dp), dtype=np.float32),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
    )


@njit(cache=True, inline="always")
def gather_moments(
    start, end, indices, data, mu, other_bias, other_factors, flat, other_var, with_var, x, res, gram, s, t, vsum
):
    """The sums a half-sweep needs over one entity's ratings ``start:end``, accumulated from zero.

    With ``r_j = data[j] - mu - other_bias[i_j]`` and ``V_i`` the rows of ``other_factors``:
    ``gram = sum V_i V_i^T`` (lower triangle, padded to :func:`padded_dim`), ``s = sum V_i``,
    ``t = sum V_i r_i`` and, with ``with_var``, ``vsum = sum other_var[i]`` (the diagonal
    variational sweep's ``sum_i s_i``); returns ``(sum r, sum r^2)``. ``x`` (``dp x GRAM_BLOCK``)
    and ``res`` (``GRAM_BLOCK``) are scratch; ``flat`` is ``other_factors`` flattened (prefetching).
    """
    d = other_factors.shape[1]
    dp = gram.shape[0]
    gram[:, :] = 0.0
    s[:] = 0.0
    t[:] = 0.0
    if with_var:
        vsum[:] = 0.0
    c = 0.0
    c2 = 0.0
    for c0 in range(start, end, GRAM_BLOCK):
        m = min(GRAM_BLOCK, end - c0)
        mm = gather_rows(x, other_factors, flat, indices, c0, m, d)
        for jj in range(m):
            i = indices[c0 + jj]
            r = data[c0 + jj] - mu - other_bias[i]
            res[jj] = r
            c += r
            c2 += r * r
            if with_var:
                for p in range(d):
                    vsum[p] += other_var[i, p]
        moments_add(x, res, m, d, s, t)
        gram_add(x, mm, dp, gram)
    return c, c2


@njit(cache=True, inline="always")
def moments_add(x, res, m, d, s, t):
    """``s[p] += sum_jj x[p, jj]`` and ``t[p] += sum_jj x[p, jj] res[jj]`` over the first ``m`` columns.

    With ``x`` a gathered block of factor rows (see :func:`gather_rows`) and ``res``
    the residuals of its ratings, ``s`` and ``t`` accumulate ``sum_i V_i`` and
    ``sum_i V_i r_i`` of a half-sweep. A block's sums are float32, as the Gram tiles of
    :func:`gram_add` (eight lanes per vector, no conversions), and are added to the float64
    totals: float64 block sums made the gather and moments of ALS's user side 3.6 ns per rating
    slower (18.0 against 14.6 ns on one thread, the ml-32m shape, D = 20).
    """
    for p in range(d):
        sp = np.float32(0.0)
        tp = np.float32(0.0)
        for jj in range(m):
            sp += x[p, jj]
            tp += x[p, jj] * res[jj]
        s[p] += sp
        t[p] += tp


@njit(cache=True, inline="always")
def gram_add(x, mm, dp, gram):
    """``gram[p, q] += sum_jj x[p, jj] x[q, jj]`` on the lower triangle (4x4 tiles, ``q0 <= p0``)."""
    for p0 in range(0, dp, 4):
        for q0 in range(0, p0 + 1, 4):
            a00 = a01 = a02 = a03 = np.float32(0.0)
            a10 = a11 = a12 = a13 = np.float32(0.0)
            a20 = a21 = a22 = a23 = np.float32(0.0)
            a30 = a31 = a32 = a33 = np.float32(0.0)
            for jj in range(mm):
                x0 = x[p0, jj]
                x1 = x[p0 + 1, jj]
                x2 = x[p0 + 2, jj]
                x3 = x[p0 + 3, jj]
                y0 = x[q0, jj]
                y1 = x[q0 + 1, jj]
                y2 = x[q0 + 2, jj]
                y3 = x[q0 + 3, jj]
                a00 += x0 * y0
                a01 += x0 * y1
                a02 += x0 * y2
                a03 += x0 * y3
                a10 += x1 * y0
                a11 += x1 * y1
                a12 += x1 * y2
                a13 += x1 * y3
                a20 += x2 * y0
                a21 += x2 * y1
                a22 += x2 * y2
                a23 += x2 * y3
                a30 += x3 * y0
                a31 += x3 * y1
                a32 += x3 * y2
                a33 += x3 * y3
            gram[p0, q0] += a00
            gram[p0, q0 + 1] += a01
            gram[p0, q0 + 2] += a02
            gram[p0, q0 + 3] += a03
            gram[p0 + 1, q0] += a10
            gram[p0 + 1, q0 + 1] += a11
            gram[p0 + 1, q0 + 2] += a12
            gram[p0 + 1, q0 + 3] += a13
            gram[p0 + 2, q0] += a20
            gram[p0 + 2, q0 + 1] += a21
            gram[p0 + 2, q0 + 2] += a22
            gram[p0 + 2, q0 + 3] += a23
            gram[p0 + 3, q0] += a30
            gram[p0 + 3, q0 + 1] += a31
            gram[p0 + 3, q0 + 2] += a32
            gram[p0 + 3, q0 + 3] += a33


@njit(cache=True, inline="always")
def cg_scratch(indptr, lo, hi, d):
    """Per-task scratch of the conjugate-gradient half-sweeps over entities ``lo:hi`` of a CSR matrix:
    ``rows`` (the longest entity's rated rows, float32), the float64 ``D``-vectors ``u``, ``r``,
    ``p``, ``ap`` of :func:`cg_solve` and its float32 ``v32``, ``acc32``; and that longest length."""
    longest = 0
    for e in range(lo, hi):
        longest = max(longest, indptr[e + 1] - indptr[e])
    return (
        np.empty((longest, d), dtype=np.float32),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float32),
        np.empty(d, dtype=np.float32),
        longest,
    )


@njit(cache=True, inline="always", fastmath=FAST)
def cg_times(rows, weight, n, gram, ridge, v, out, d, v32, acc32):
    """``out = (gram + ridge I + sum_{j<n} weight_j rows_j rows_j^T) v`` (an empty ``gram``: no dense term).

    The sum over the gathered rows runs in float32 (``v32``, ``acc32``: scratch), the rows' own
    precision, at twice the SIMD width of float64.
    """
    for q in range(d):
        v32[q] = np.float32(v[q])
        acc32[q] = np.float32(0.0)
    for j in range(n):
        s = np.float32(0.0)
        for q in range(d):
            s += rows[j, q] * v32[q]
        s *= np.float32(weight[j])
        for q in range(d):
            acc32[q] += s * rows[j, q]
    dense = gram.shape[0] > 0
    for p in range(d):
        t = ridge * v[p] + np.float64(acc32[p])
        if dense:
            for q in range(d):
                t += gram[p, q] * v[q]
        out[p] = t


@njit(cache=True, inline="always", fastmath=FAST)
def cg_solve(rows, weight, n, gram, ridge, b, u, r, p, ap, steps, d, v32, acc32):
    """``steps`` conjugate-gradient steps on ``A u = b`` from the current ``u`` (in place), with ``A``
    the symmetric positive definite matrix of :func:`cg_times`; ``r``, ``p``, ``ap`` are scratch."""
    cg_times(rows, weight, n, gram, ridge, u, ap, d, v32, acc32)
    for q in range(d):
        r[q] = b[q] - ap[q]
    cg_iterate(rows, weight, n, gram, ridge, u, r, p, ap, steps, d, v32, acc32)


@njit(cache=True, inline="always", fastmath=FAST)
def cg_iterate(rows, weight, n, gram, ridge, u, r, p, ap, steps, d, v32, acc32):
    """The steps of :func:`cg_solve` from ``u`` and its residual ``r = b - A u`` (both updated in place).

    Every iterate minimises ``u^T A u / 2 - b^T u`` over the starting point plus a Krylov space, so
    the quadratic never increases (Takacs, Pilaszy and Tikk 2011: warm-started CG for ALS).
    """
    rs = 0.0
    for q in range(d):
        p[q] = r[q]
        rs += r[q] * r[q]
    for _ in range(steps):
        if rs <= 1e-30:
            return
        cg_times(rows, weight, n, gram, ridge, p, ap, d, v32, acc32)
        pap = 0.0
        for q in range(d):
            pap += p[q] * ap[q]
        step = rs / pap
        rs_new = 0.0
        for q in range(d):
            u[q] += step * p[q]
            r[q] -= step * ap[q]
            rs_new += r[q] * r[q]
        for q in range(d):
            p[q] = r[q] + (rs_new / rs) * p[q]
        rs = rs_new
