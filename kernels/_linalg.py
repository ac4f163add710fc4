"""Small dense linear algebra for per-entity solves inside parallel kernels.

All routines work in place on caller-provided scratch so that a parallel loop
over users or items allocates nothing per entity, and none calls BLAS (so no
BLAS threads are started inside a parallel region). :func:`gather_moments`
copies a block of factor rows (with each rating's residual) and accumulates
``sum_j y_j y_j^T`` with the register-blocked vector kernel of :mod:`fastmf.kernels._gram`;
the conjugate-gradient products (:func:`cg_times`) run over blocks of gathered rows with
the vector kernels of :mod:`fastmf.kernels._rowblock`.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf.common.layout import CACHE_LINE_FLOATS
from fastmf.kernels._gram import gram_update, gram_width
from fastmf.kernels._rowblock import LANES, add_weighted_rows, row_dots, vector_width

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
def gather_scratch(d):
    """Per-task scratch of :func:`gather_moments` for ``D = d``: the row block ``y`` (``GRAM_BLOCK`` rows
    of :func:`fastmf.kernels._gram.gram_width` ``(d + 2)`` columns), its Gram matrix and the float64
    ``D``-vectors ``s`` and ``t``."""
    width = gram_width(d + 2)
    return (
        np.zeros((GRAM_BLOCK, width), dtype=np.float32),
        np.zeros((width, width), dtype=np.float32),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
    )


@njit(cache=True, inline="always")
def gather_moments(
    start, end, indices, data, mu, other_bias, other_factors, flat, other_var, with_var, y, gram, s, t, vsum
):
    """The sums a half-sweep needs over one entity's ratings ``start:end``, accumulated from zero.

    With ``r_j = data[j] - mu - other_bias[i_j]`` and ``V_i`` the rows of ``other_factors``:
    ``gram = sum V_i V_i^T`` (lower triangle), ``s = sum V_i``, ``t = sum V_i r_i`` and, with
    ``with_var``, ``vsum = sum other_var[i]`` (the diagonal variational sweep's ``sum_i s_i``);
    returns ``(sum r, sum r^2)`` (float64). Each block of ``GRAM_BLOCK`` ratings is gathered into
    the rows ``y_j = [V_i, r_j, 1]`` (vector copies, rows beyond the gather prefetched
    ``PREFETCH_AHEAD`` entries ahead) and :func:`fastmf.kernels._gram.gram_update` adds
    ``sum_j y_j y_j^T`` into ``gram``, whose rows ``D`` and ``D + 1`` are then ``t`` and ``s``: one
    register-blocked pass makes all the float32 sums. ``y`` and ``gram`` come from
    :func:`gather_scratch`; ``flat`` is ``other_factors`` flattened (prefetching).
    """
    d = other_factors.shape[1]
    n_total = indices.shape[0]
    gram[:, :] = 0.0
    if with_var:
        vsum[:] = 0.0
    c = 0.0
    c2 = 0.0
    for c0 in range(start, end, GRAM_BLOCK):
        m = min(GRAM_BLOCK, end - c0)
        for jj in range(np.uint64(m)):
            # unsigned indices: no negative-index wraparound code in this loop (6.1 against 7.0 ns
            # per rating for the gather on one thread, D = 20)
            k = np.uint64(c0) + jj
            ahead = k + np.uint64(PREFETCH_AHEAD)
            if ahead < np.uint64(n_total):
                prefetch_span(flat, np.int64(indices[ahead]) * d, d)
            i = np.uint64(indices[k])
            for p in range(d):
                y[jj, p] = other_factors[i, p]
            r = data[k] - mu - other_bias[i]
            y[jj, d] = r
            y[jj, d + 1] = 1.0
            c += r
            c2 += r * r
            if with_var:
                for p in range(d):
                    vsum[p] += other_var[i, p]
        if d > 0:
            gram_update(y, m, d + 2, gram)
    for p in range(d):
        t[p] = gram[d, p]
        s[p] = gram[d + 1, p]
    return c, c2


#: rows of a gathered block that :func:`cg_times` runs over at once (held in L1)
CG_BLOCK = 64


@njit(cache=True, inline="always")
def cg_scratch(indptr, lo, hi, d):
    """Per-task scratch of the conjugate-gradient half-sweeps over entities ``lo:hi`` of a CSR matrix:
    ``rows`` (the longest entity's rated rows, float32, zero-padded to
    :func:`fastmf.kernels._rowblock.vector_width` ``(d)`` columns), the float64 ``D``-vectors ``u``,
    ``r``, ``p``, ``ap`` of :func:`cg_solve`, and the float32 ``v32``, ``acc32`` (that width) and
    ``dots`` (``CG_BLOCK``) of :func:`cg_times`."""
    longest = 0
    for e in range(lo, hi):
        longest = max(longest, indptr[e + 1] - indptr[e])
    width = vector_width(d)
    return (
        np.zeros((max(longest, 1), width), dtype=np.float32),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
        np.empty(d, dtype=np.float64),
        np.zeros(width, dtype=np.float32),
        np.zeros(width, dtype=np.float32),
        np.empty(CG_BLOCK, dtype=np.float32),
    )


@njit(cache=True, inline="always", fastmath=FAST)
def cg_times(rows, weight, scale, n, gram, ridge, v, out, d, v32, acc32, dots):
    """``out = (gram + ridge I + scale sum_{j<n} w_j rows_j rows_j^T) v`` with ``w_j = weight[j]``
    (an empty ``weight``: all 1; an empty ``gram``: no dense term).

    The sum over the gathered rows runs in float32 (``v32``, ``acc32``, ``dots``: scratch of
    :func:`cg_scratch`), the rows' own precision, one ``CG_BLOCK`` of rows at a time: their dot
    products with ``v`` (:func:`fastmf.kernels._rowblock.row_dots`), then the rows added with those
    weights (:func:`fastmf.kernels._rowblock.add_weighted_rows`), both from L1.
    """
    n_vectors = rows.shape[1] // LANES
    weighted = weight.shape[0] > 0
    for q in range(d):
        v32[q] = np.float32(v[q])
    acc32[:] = 0.0
    for b0 in range(0, n, CG_BLOCK):
        m = min(CG_BLOCK, n - b0)
        row_dots(rows, b0, m, n_vectors, v32, dots)
        if weighted:
            for j in range(m):
                dots[j] *= np.float32(weight[b0 + j])
        add_weighted_rows(rows, b0, m, n_vectors, dots, acc32)
    dense = gram.shape[0] > 0
    for p in range(d):
        t = ridge * v[p] + scale * np.float64(acc32[p])
        if dense:
            for q in range(d):
                t += gram[p, q] * v[q]
        out[p] = t


@njit(cache=True, inline="always", fastmath=FAST)
def cg_solve(rows, weight, scale, n, gram, ridge, b, u, r, p, ap, steps, d, v32, acc32, dots):
    """``steps`` conjugate-gradient steps on ``A u = b`` from the current ``u`` (in place), with ``A``
    the symmetric positive definite matrix of :func:`cg_times`; ``r``, ``p``, ``ap`` are scratch."""
    cg_times(rows, weight, scale, n, gram, ridge, u, ap, d, v32, acc32, dots)
    for q in range(d):
        r[q] = b[q] - ap[q]
    cg_iterate(rows, weight, scale, n, gram, ridge, u, r, p, ap, steps, d, v32, acc32, dots)


@njit(cache=True, inline="always", fastmath=FAST)
def cg_iterate(rows, weight, scale, n, gram, ridge, u, r, p, ap, steps, d, v32, acc32, dots):
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
        cg_times(rows, weight, scale, n, gram, ridge, p, ap, d, v32, acc32, dots)
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
