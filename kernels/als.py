"""ALS half-sweeps for biased matrix factorisation (and the bias-only model, D = 0).

Model: ``r_ui ~ mu + b_u + b_i + U_u . V_i``; objective (minimised)

    lam/2 sum (r_ui - r^_ui)^2 + gamma/2 (sum b_u^2 + sum b_i^2) + tau/2 (sum |U_u|^2 + sum |V_i|^2).

A half-sweep updates every row entity ``e`` (users, or items on the transposed
matrix) given the other side, first the bias with the current factor, then the
factor with the new bias:

    b_e = (lam * sum_i (r_ei - mu - b_i - U_e . V_i) + gamma m_e) / (lam * n_e + gamma)
    U_e = (lam * sum_i V_i V_i^T + tau I)^{-1} (lam * sum_i V_i (r_ei - mu - b_e - b_i) + tau c_e)

``c_e`` and ``m_e`` are optional prior means (``U_e ~ N(c_e, tau^-1 I)``,
``b_e ~ N(m_e, gamma^-1)``; zero for plain ALS, the genre-centred priors of
``fastmf.features``); the objective's prior terms become
``tau/2 |U_e - c_e|^2`` and ``gamma/2 (b_e - m_e)^2``. An entity without
ratings gets its prior means: ``U_e = c_e``, ``b_e = m_e``.

Weighted-lambda regularisation (ALS-WR, Zhou et al. 2008) scales both ridges of
entity ``e`` by ``s_e`` (``ridge_scale``; its rating count ``n_e``, at least 1):
``gamma`` and ``tau`` above become ``gamma s_e`` and ``tau s_e``, and so do the
objective's prior terms of that entity. An empty ``ridge_scale`` means ``s_e = 1``.

Both come from one pass over the entity's ratings, accumulating
``G = sum V_i V_i^T``, ``s = sum V_i``, ``t = sum V_i (r - mu - b_i)`` and
``c = sum (r - mu - b_i)``: then ``U_e . sum_i V_i = U_e . s`` gives the bias,
and the right-hand side is ``lam (t - b_e s)``. Each step is an exact block
minimisation, so the objective never increases. The exact factor systems of a block's
entities are solved four at a time, one per lane of a vector (:mod:`fastmf.kernels._cholesky4`):
an entity's factor is written when its group is solved, which changes nothing, since no
other update of the half-sweep reads it.

With ``cg_steps`` k > 0 the factor is not solved exactly but takes k conjugate-gradient
steps on the same system from its current value (Takacs, Pilaszy and Tikk 2011): the
entity's rated rows are gathered once into contiguous scratch, the gather pass forms each
rating's residual at the current factor and the sums of the rows and of their residuals
(so the bias and the system's residual ``lam sum_i V_i (r - mu - b_e - b_i - U_e . V_i) +
tau (c_e - U_e)`` need no other pass), then every step is one pass over the rows
(``A p = lam sum_i V_i (V_i . p) + tau p``, 4 n D flops against the Gram matrix's n D^2).
Each iterate minimises the block's quadratic over a Krylov space containing the current
factor, so the objective still never increases.

Work is split into contiguous blocks of equal estimated cost
(``n_e (D^2 + 2D) + D^3/3``) so heavy users on power-law data do not pile up
on one thread (:func:`fastmf.common.layout.balanced_blocks`); each block allocates its scratch once.
The parallel loop over blocks only calls a serial function per block (:func:`_sweep_block`,
:func:`_sweep_block_cg`): Numba's parallel lowering then transforms a loop of one call rather
than the whole update, which cut the cold compilation of ``fastmf train`` from about 6 to 4.4 s.
"""

import numba
import numpy as np
from numba import njit, prange

from fastmf.common.threads import runs_serially
from fastmf.kernels._cholesky4 import LANES, solve_lanes
from fastmf.kernels._linalg import (
    CG_BLOCK,
    FAST,
    PREFETCH_AHEAD,
    cg_iterate,
    cg_scratch,
    gather_moments,
    gather_scratch,
    prefetch_span,
)
from fastmf.kernels._rowblock import LANES as ROW_LANES
from fastmf.kernels._rowblock import add_weighted_rows, row_dots

__all__ = ["half_sweep"]

#: ``ridge_scale`` of an unscaled half-sweep (``s_e = 1`` for every entity)
NO_SCALE = np.zeros(0, dtype=np.float64)


def half_sweep(
    indptr,
    indices,
    data,
    mu,
    own_bias,
    other_bias,
    own_factors,
    other_factors,
    lam,
    gamma,
    tau,
    blocks,
    fit_bias,
    prior_mean,
    prior_bias,
    ridge_scale=None,
    cg_steps=0,
):
    """Update ``own_bias`` and ``own_factors`` in place for every row of the CSR matrix.

    ``blocks`` are entity-range boundaries (:func:`fastmf.common.layout.balanced_blocks`), handed
    to threads one at a time; with ``fit_bias`` False the biases stay at zero. ``prior_mean``
    (rows x D) and ``prior_bias`` (rows) are the prior means ``c_e`` and ``m_e``; pass empty
    arrays (0 rows) for zero means. ``ridge_scale`` (rows, float64) scales entity ``e``'s ``gamma`` and
    ``tau`` by ``s_e`` (weighted-lambda); ``None`` or empty: unscaled. ``cg_steps`` 0 solves each
    factor exactly (Cholesky); more runs that many warm-started conjugate-gradient steps.
    """
    head = (indptr, indices, data, mu, own_bias, other_bias, own_factors, other_factors, lam, gamma, tau)
    tail = (fit_bias, prior_mean, prior_bias, NO_SCALE if ridge_scale is None else ridge_scale)
    extra = (cg_steps,) if cg_steps else ()
    if runs_serially(indices.shape[0]):  # every block in turn on this thread: the same updates
        (_sweep_block_cg if cg_steps else _sweep_block)(blocks[0], blocks[-1], *head, *tail, *extra)
        return
    with numba.parallel_chunksize(1):
        (_half_sweep_cg if cg_steps else _half_sweep)(*head, blocks, *tail, *extra)


@njit(cache=True, inline="always")
def _entity_priors(e, gamma, tau, ridge_scale, prior_bias):
    """Entity ``e``'s ridges ``gamma s_e``, ``tau s_e`` (``s_e`` = ``ridge_scale[e]``, 1 when it is empty)
    and its bias prior mean ``m_e`` (0 when ``prior_bias`` is empty)."""
    scale = ridge_scale[e] if ridge_scale.shape[0] > 0 else 1.0
    mb = prior_bias[e] if prior_bias.shape[0] > 0 else 0.0
    return gamma * scale, tau * scale, mb


@njit(cache=True, inline="always")
def _entity_bias(lam, gamma_e, n, residual, mb, fit_bias):
    """``b_e = (lam sum_i (r - mu - b_i - U_e . V_i) + gamma_e m_e) / (lam n_e + gamma_e)`` from that
    ``residual`` sum; ``m_e`` for an entity without ratings, 0 when biases are not fitted."""
    if not fit_bias:
        return 0.0
    if n == 0:
        return mb
    return (lam * residual + gamma_e * mb) / (lam * n + gamma_e)


@njit(cache=True, parallel=True)
def _half_sweep(
    indptr,
    indices,
    data,
    mu,
    own_bias,
    other_bias,
    own_factors,
    other_factors,
    lam,
    gamma,
    tau,
    blocks,
    fit_bias,
    prior_mean,
    prior_bias,
    ridge_scale,
):
    """:func:`half_sweep`: the blocks of entities in parallel, each by :func:`_sweep_block`."""
    for blk in prange(blocks.shape[0] - 1):
        _sweep_block(
            blocks[blk],
            blocks[blk + 1],
            indptr,
            indices,
            data,
            mu,
            own_bias,
            other_bias,
            own_factors,
            other_factors,
            lam,
            gamma,
            tau,
            fit_bias,
            prior_mean,
            prior_bias,
            ridge_scale,
        )


@njit(cache=True, fastmath=FAST)
def _sweep_block(
    lo,
    hi,
    indptr,
    indices,
    data,
    mu,
    own_bias,
    other_bias,
    own_factors,
    other_factors,
    lam,
    gamma,
    tau,
    fit_bias,
    prior_mean,
    prior_bias,
    ridge_scale,
):
    """The exact update of entities ``lo .. hi - 1``; the scratch (a gathered row block, the Gram
    matrix, the system) is allocated once. A serial function of its own, so that Numba's parallel
    lowering of :func:`_half_sweep` handles a loop of one call instead of this whole body."""
    d = own_factors.shape[1]
    has_mean = prior_mean.shape[0] > 0
    flat = other_factors.reshape(-1)
    y, gram, s, t = gather_scratch(d)
    a4 = np.empty((d, d, LANES), dtype=np.float64)
    b4 = np.empty((d, LANES), dtype=np.float64)
    pending = np.empty(LANES, dtype=np.int64)
    lane = 0
    for e in range(lo, hi):
        start = indptr[e]
        end = indptr[e + 1]
        c, _ = gather_moments(
            start,
            end,
            indices,
            data,
            mu,
            other_bias,
            other_factors,
            flat,
            other_factors,
            False,
            y,
            gram,
            s,
            t,
            s,
        )
        n = end - start
        gamma_e, tau_e, mb = _entity_priors(e, gamma, tau, ridge_scale, prior_bias)
        dot = 0.0
        for p in range(d):
            dot += own_factors[e, p] * s[p]
        b = _entity_bias(lam, gamma_e, n, c - dot, mb, fit_bias)
        own_bias[e] = b
        if d == 0:
            continue
        for p in range(d):
            for q in range(p + 1):
                a4[p, q, lane] = lam * gram[p, q]
            a4[p, p, lane] += tau_e
            v = lam * (t[p] - b * s[p])
            if has_mean:
                v += tau_e * prior_mean[e, p]
            b4[p, lane] = v
        pending[lane] = e
        lane += 1
        if lane == LANES:
            _store_solutions(a4, b4, pending, lane, own_factors, d)
            lane = 0
    if lane > 0:
        _store_solutions(a4, b4, pending, lane, own_factors, d)


@njit(cache=True, inline="always")
def _store_solutions(a4, b4, pending, used, own_factors, d):
    """Solve the ``used`` pending systems (one per lane) and write each factor to its entity's row."""
    solve_lanes(a4, b4, used, d)
    for lane in range(used):
        for p in range(d):
            own_factors[pending[lane], p] = b4[p, lane]


@njit(cache=True, parallel=True)
def _half_sweep_cg(
    indptr,
    indices,
    data,
    mu,
    own_bias,
    other_bias,
    own_factors,
    other_factors,
    lam,
    gamma,
    tau,
    blocks,
    fit_bias,
    prior_mean,
    prior_bias,
    ridge_scale,
    cg_steps,
):
    """:func:`half_sweep` with ``cg_steps`` conjugate-gradient steps on each factor's system: the blocks of
    entities in parallel, each by :func:`_sweep_block_cg`."""
    for blk in prange(blocks.shape[0] - 1):
        _sweep_block_cg(
            blocks[blk],
            blocks[blk + 1],
            indptr,
            indices,
            data,
            mu,
            own_bias,
            other_bias,
            own_factors,
            other_factors,
            lam,
            gamma,
            tau,
            fit_bias,
            prior_mean,
            prior_bias,
            ridge_scale,
            cg_steps,
        )


@njit(cache=True, fastmath=FAST)
def _sweep_block_cg(
    lo,
    hi,
    indptr,
    indices,
    data,
    mu,
    own_bias,
    other_bias,
    own_factors,
    other_factors,
    lam,
    gamma,
    tau,
    fit_bias,
    prior_mean,
    prior_bias,
    ridge_scale,
    cg_steps,
):
    """``cg_steps`` conjugate-gradient steps on the system ``(lam sum_i V_i V_i^T + tau I) U = rhs`` of each
    entity ``lo .. hi - 1`` from its current ``U``: the rated rows are gathered once into contiguous float32
    scratch and each step costs one pass over them (``4 n D`` flops), where the exact solve accumulates
    the ``D x D`` Gram matrix (``n D^2``). The gather runs ``CG_BLOCK`` rows at a time and, while the
    block is in L1, forms each rating's residual at the current factor, ``r - mu - b_i - U . V_i``, and
    adds the block's rows and their residual-weighted rows into the system's sums."""
    d = own_factors.shape[1]
    has_mean = prior_mean.shape[0] > 0
    flat = other_factors.reshape(-1)
    n_total = indices.shape[0]
    no_gram = np.zeros((0, 0), dtype=np.float64)
    no_weight = np.zeros(0, dtype=np.float64)
    # rows: the entity's rated rows, gathered once
    rows, u, r, p, ap, v32, acc32, dots = cg_scratch(indptr, lo, hi, d)
    n_vectors = rows.shape[1] // ROW_LANES
    sum32 = np.zeros(rows.shape[1], dtype=np.float32)
    residual = np.empty(CG_BLOCK, dtype=np.float32)
    ones = np.ones(CG_BLOCK, dtype=np.float32)
    for e in range(lo, hi):
        start = indptr[e]
        n = indptr[e + 1] - start
        for q in range(d):
            v32[q] = own_factors[e, q]
        acc32[:] = 0.0
        sum32[:] = 0.0
        c = 0.0
        for b0 in range(0, n, CG_BLOCK):
            m = min(CG_BLOCK, n - b0)
            for jj in range(np.uint64(m)):  # unsigned: no negative-index wraparound code (gather_moments)
                k = np.uint64(start + b0) + jj
                ahead = k + np.uint64(PREFETCH_AHEAD)
                if ahead < np.uint64(n_total):
                    prefetch_span(flat, np.int64(indices[ahead]) * d, d)
                i = np.uint64(indices[k])
                for q in range(d):
                    rows[np.uint64(b0) + jj, q] = other_factors[i, q]
                residual[jj] = np.float32(data[k] - mu - other_bias[i])
            row_dots(rows, b0, m, n_vectors, v32, dots)
            for j in range(m):
                residual[j] -= dots[j]
                c += residual[j]
            add_weighted_rows(rows, b0, m, n_vectors, residual, acc32)
            add_weighted_rows(rows, b0, m, n_vectors, ones, sum32)
        gamma_e, tau_e, mb = _entity_priors(e, gamma, tau, ridge_scale, prior_bias)
        b = _entity_bias(lam, gamma_e, n, c, mb, fit_bias)
        own_bias[e] = b
        if n == 0:  # the system is tau U = tau c_e: its solution, exactly (as the exact solve gives it)
            for q in range(d):
                own_factors[e, q] = prior_mean[e, q] if has_mean else 0.0
            continue
        # the residual of the factor system at the current U:
        # lam sum_i V_i (r - mu - b - b_i - U . V_i) + tau (c_e - U), from the gather's sums
        for q in range(d):
            u[q] = own_factors[e, q]
            mean = prior_mean[e, q] if has_mean else 0.0
            r[q] = lam * (np.float64(acc32[q]) - b * np.float64(sum32[q])) + tau_e * (mean - u[q])
        cg_iterate(rows, no_weight, lam, n, no_gram, tau_e, u, r, p, ap, cg_steps, d, v32, acc32, dots)
        for q in range(d):
            own_factors[e, q] = u[q]
