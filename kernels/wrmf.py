"""Weighted matrix factorisation for implicit feedback (Hu, Koren and Volinsky 2008): the half-sweeps.

Every (user, item) pair has a preference ``p_ui`` (1 for an observed interaction, 0 otherwise)
and a confidence ``c_ui = 1 + alpha r_ui`` (or, with ``log_scaling``, ``1 + alpha log(1 + r_ui/eps)``)
for an observed pair with value ``r_ui``, 1 for every other pair. The objective (minimised) is

    J = sum_(u,i) c_ui (p_ui - x_u . y_i)^2 + lam (sum_u |x_u|^2 + sum_i |y_i|^2)

over all pairs. Given the items, a user's block is a ridge problem solved by

    x_u = (Y^T Y + lam I + sum_(i in N(u)) (c_ui - 1) y_i y_i^T)^-1 sum_(i in N(u)) c_ui y_i

with ``Y^T Y`` computed once per half-sweep (:func:`gram`), so a user costs ``O(n_u D^2 + D^3)``
with the exact solver (``cg_steps = 0``: a Cholesky factorisation); items symmetrically. The
conjugate-gradient solver (Takacs, Pilaszy and Tikk 2011) runs ``cg_steps`` CG steps on the
same system, warm-started from the current ``x_u``, at ``O(cg_steps (D^2 + n_u D))`` per user.
Every CG iterate minimises the block's quadratic over a Krylov space containing the previous
iterate, so neither solver ever increases ``J``.

No sum over all pairs is formed: ``sum_(u,i) (x_u . y_i)^2 = tr(X^T X Y^T Y)``, so
``J = sum_observed [c (1 - s)^2 - s^2] + tr(X^T X Y^T Y) + lam (|X|^2 + |Y|^2)`` with
``s = x_u . y_i``; :func:`observed_loss` computes the first sum. Work is split into blocks
of equal cost (:func:`fastmf.common.layout.balanced_blocks`), handed to threads one at a time;
a block gathers each entity's rated rows once into contiguous scratch.
"""

import math

import numba
import numpy as np
from numba import njit, prange

from fastmf.kernels._gram import flush_lower, gram_update, gram_width
from fastmf.kernels._linalg import (
    FAST,
    GRAM_BLOCK,
    cg_scratch,
    cg_solve,
    cho_solve,
    cholesky,
    prefetch_span,
)

__all__ = ["gram", "half_sweep", "observed_loss"]

#: rows summed per task by :func:`gram`
GRAM_ROWS = 4096


@njit(cache=True, inline="always")
def confidence(r, alpha, eps, log_scaling):
    """``c = 1 + alpha r`` or ``1 + alpha log(1 + r / eps)``."""
    if log_scaling:
        return 1.0 + alpha * math.log(1.0 + r / eps)
    return 1.0 + alpha * r


def gram(factors):
    """``F^T F`` (``D x D``, float64) of a factor matrix, summed over row blocks in a fixed order."""
    d = factors.shape[1]
    n_parts = max(1, -(-factors.shape[0] // GRAM_ROWS))
    parts = np.zeros((n_parts, d, d), dtype=np.float64)
    _gram_parts(factors, parts)
    total = np.zeros((d, d), dtype=np.float64)
    for part in parts:  # fixed order: independent of the thread count
        total += part
    return np.tril(total) + np.tril(total, -1).T


@njit(cache=True, parallel=True, fastmath=FAST)
def _gram_parts(factors, parts):
    """``parts[k]`` (lower triangle) = the Gram matrix of rows ``k GRAM_ROWS ..`` of ``factors``."""
    n, d = factors.shape
    width = gram_width(d)
    for k in prange(parts.shape[0]):
        y = np.zeros((GRAM_BLOCK, width), dtype=np.float32)
        acc = np.zeros((width, width), dtype=np.float32)
        stop = min(n, (k + 1) * GRAM_ROWS)
        for c0 in range(k * GRAM_ROWS, stop, GRAM_BLOCK):
            m = min(GRAM_BLOCK, stop - c0)
            for jj in range(m):
                for p in range(d):
                    y[jj, p] = factors[c0 + jj, p]
            gram_update(y, m, d, acc)
            flush_lower(acc, parts[k], d)


def half_sweep(indptr, indices, data, own_factors, other_factors, gram, lam, alpha, eps, log_scaling, cg_steps, blocks):
    """Update ``own_factors`` in place for every row of the CSR matrix of observed pairs (values ``data``).

    ``gram`` is ``Y^T Y`` of ``other_factors`` (:func:`gram`); ``cg_steps`` 0 solves each block
    exactly, more runs that many conjugate-gradient steps from the current factors.
    """
    with numba.parallel_chunksize(1):
        _half_sweep(
            indptr, indices, data, own_factors, other_factors, gram, lam, alpha, eps, log_scaling, cg_steps, blocks
        )


@njit(cache=True, parallel=True)
def _half_sweep(
    indptr, indices, data, own_factors, other_factors, gram, lam, alpha, eps, log_scaling, cg_steps, blocks
):
    """:func:`half_sweep`: the blocks of entities in parallel, each by :func:`_sweep_block` (a loop of
    one call is what Numba's parallel lowering then transforms: faster to compile)."""
    for blk in prange(blocks.shape[0] - 1):
        _sweep_block(
            blocks[blk],
            blocks[blk + 1],
            indptr,
            indices,
            data,
            own_factors,
            other_factors,
            gram,
            lam,
            alpha,
            eps,
            log_scaling,
            cg_steps,
        )


@njit(cache=True, fastmath=FAST)
def _sweep_block(
    lo, hi, indptr, indices, data, own_factors, other_factors, gram, lam, alpha, eps, log_scaling, cg_steps
):
    """The update of entities ``lo .. hi - 1``, whose scratch is allocated once."""
    d = own_factors.shape[1]
    width = gram_width(d)
    flat = other_factors.reshape(-1)
    n_total = indices.shape[0]
    # rows: the entity's rated rows, gathered once
    rows, u, r, p, ap, v32, acc32, dots = cg_scratch(indptr, lo, hi, d)
    weight = np.empty(rows.shape[0], dtype=np.float64)  # their c - 1
    y = np.zeros((GRAM_BLOCK, width), dtype=np.float32)
    acc = np.zeros((width, width), dtype=np.float32)
    a = np.empty((d, d), dtype=np.float64)
    b = np.empty(d, dtype=np.float64)
    for e in range(lo, hi):
        start = indptr[e]
        n = indptr[e + 1] - start
        b[:] = 0.0
        for j in range(n):
            ahead = start + j + 32
            if ahead < n_total:
                prefetch_span(flat, indices[ahead] * d, d)
            i = indices[start + j]
            c = confidence(data[start + j], alpha, eps, log_scaling)
            weight[j] = c - 1.0
            for q in range(d):
                v = other_factors[i, q]
                rows[j, q] = v
                b[q] += c * v
        if cg_steps == 0:
            _solve_exact(rows, weight, n, gram, lam, b, a, y, acc, d)
            for q in range(d):
                own_factors[e, q] = b[q]
        else:
            for q in range(d):
                u[q] = own_factors[e, q]
            cg_solve(rows, weight, 1.0, n, gram, lam, b, u, r, p, ap, cg_steps, d, v32, acc32, dots)
            for q in range(d):
                own_factors[e, q] = u[q]


@njit(cache=True, inline="always", fastmath=FAST)
def _solve_exact(rows, weight, n, gram, lam, b, a, y, acc, d):
    """``b <- (gram + lam I + sum_j weight_j rows_j rows_j^T)^-1 b`` by Cholesky (the weighted Gram
    accumulated in float32 runs of ``GRAM_BLOCK`` rows ``sqrt(weight_j) rows_j`` copied into ``y``, each
    run summed in ``acc``, which is zero on entry and on return)."""
    for p in range(d):
        for q in range(p + 1):
            a[p, q] = gram[p, q]
        a[p, p] += lam
    for c0 in range(0, n, GRAM_BLOCK):
        m = min(GRAM_BLOCK, n - c0)
        for jj in range(m):
            w = np.float32(math.sqrt(weight[c0 + jj]))
            for p in range(d):
                y[jj, p] = w * rows[c0 + jj, p]
        gram_update(y, m, d, acc)
        flush_lower(acc, a, d)
    cholesky(a, d)
    cho_solve(a, b, d)


@njit(cache=True, parallel=True, fastmath=FAST)
def observed_loss(indptr, indices, data, user_factors, item_factors, alpha, eps, log_scaling):
    """``sum over observed pairs of c (1 - s)^2 - s^2`` with ``s = x_u . y_i`` (module docstring)."""
    n_rows = indptr.shape[0] - 1
    part = np.zeros(n_rows, dtype=np.float64)
    d = user_factors.shape[1]
    for u in prange(n_rows):
        total = 0.0
        for j in range(indptr[u], indptr[u + 1]):
            i = indices[j]
            s = 0.0
            for q in range(d):
                s += np.float64(user_factors[u, q]) * item_factors[i, q]
            c = confidence(data[j], alpha, eps, log_scaling)
            total += c * (1.0 - s) * (1.0 - s) - s * s
        part[u] = total
    out = 0.0
    for v in part:  # sequential: independent of the thread count
        out += v
    return out
