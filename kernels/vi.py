"""Variational Bayes matrix factorisation: coordinate-ascent half-sweeps and predictive moments.

Model ``r_ui ~ N(mu + b_u + b_i + U_u . V_i, 1/lam)``, priors ``U_u, V_i ~ N(0, diag(tau)^-1)``,
posteriors ``q(U_u) = N(m_u, S_u)`` (and likewise for items); the biases are point
estimates with the penalty ``gamma/2 b^2``. A half-sweep updates every row entity ``e``
given the other side's posteriors ``(m_i, S_i)`` and their second moments
``P_i = E[V_i V_i^T] = m_i m_i^T + S_i``:

    b_e = lam sum_i (r_ei - mu - b_i - m_e . m_i) / (lam n_e + gamma)
    A_e = diag(tau) + lam sum_i P_i,   S_e = A_e^-1,   m_e = S_e lam sum_i m_i (r_ei - mu - b_e - b_i)

Weighted-lambda regularisation gives entity ``e`` the prior ``N(0, (rho_e diag(tau))^-1)`` and
the bias penalty ``gamma rho_e/2 b^2`` (``prior_scale``: ``rho_e`` is its rating count, at
least 1): ``gamma`` and ``diag(tau)`` in every update become ``gamma rho_e`` and
``rho_e diag(tau)``. An empty ``prior_scale`` means ``rho_e = 1``.

Each is the exact maximiser of the ELBO in that block, so the ELBO never decreases.
With a diagonal (mean-field per dimension) posterior ``q(U_e) = prod_d N(m_ed, s_ed)``
the optimum is ``s_ed = 1/A_dd`` (not ``(A^-1)_dd``) with ``A`` built from the other
side's ``m_i m_i^T + diag(s_i)``, and each ``m_ed`` is updated in turn (one Gauss-Seidel
pass over ``d``), each step again an exact coordinate maximiser.

While sweeping, every entity also returns its share of the expected squared error

    E_q sum_i (r_ei - mu - b_e - b_i - U_e . V_i)^2
        = sum_i e_i^2 - 2 m_e . sum_i m_i e_i + m_e^T (sum_i P_i) m_e + tr(S_e sum_i P_i)

(``e_i = r_ei - mu - b_e - b_i``), which follows from ``E[(U.V)^2] = tr(P_U P_V)`` and
``E[(U.V)^2] - (m_U . m_V)^2 = m_U^T S_V m_U + m_V^T S_U m_V + tr(S_U S_V)``; so the
ELBO after any half-sweep costs no extra pass over the ratings.

The full-covariance sweep reads, per rating, one contiguous float32 row of the other
side holding the packed lower triangle of ``P_i`` (``D(D+1)/2`` values), ``m_i`` and
``b_i`` (:func:`fastmf.common.layout.pack_rows`), so ``sum_i P_i`` needs additions only
(no Gram product). The user sweep gathers these rows (:func:`half_sweep_full`: the item
table is small and its popular rows stay in cache); the item sweep scatters instead
(:func:`scatter_sweep_full`): the user table is too large for the cache, so each user row
is streamed once and added into the accumulators of the items it rated. The diagonal
sweep builds ``sum_i m_i m_i^T`` with the vector Gram kernel of :mod:`fastmf.kernels._gram`
plus ``sum_i s_i``. Work is split into blocks of equal cost
(:func:`fastmf.common.layout.balanced_blocks`); per-block scratch is allocated once.
"""

import math

import numba
import numpy as np
from numba import njit, prange

from fastmf.common.layout import moments_width
from fastmf.kernels import _rng as rng
from fastmf.kernels._linalg import (
    FAST,
    GRAM_BLOCK,
    cho_inverse,
    cholesky,
    gather_moments,
    gather_scratch,
    logdet_from_cholesky,
    prefetch_span,
)
from fastmf.kernels._search import count_below

#: ratings between a packed row's prefetch and its use: a few rows of ~1 KB keep about as many
#: bytes in flight as the ALS kernels' ``PREFETCH_AHEAD`` rows of D floats
ROW_PREFETCH_AHEAD = 4

__all__ = ["half_sweep_full", "row_cuts", "scatter_sweep_full", "half_sweep_diag", "pair_moments", "draw"]


@njit(cache=True, inline="always")
def _add_moments(dst, row, r, wd, d):
    """Add one rating's moments to the accumulator ``dst``.

    With ``w = D(D+1)/2``, ``wd = w + D`` and ``n`` the padded row width, ``dst`` holds
    ``sum P`` (``[0, w)``), ``s = sum m`` (``[w, wd)``), the unused ``sum b`` (``wd``),
    ``c = sum r`` (``wd + 1``), ``c2 = sum r^2`` (``wd + 2``) and ``t = sum m r``
    (``[n, n + D)``): the whole padded ``row`` is added at once (its padding is zero, so
    ``c`` and ``c2`` are untouched), then the residual terms. ``t`` starts on a fresh cache
    line, so its loads never straddle the stores just made. ``r`` is float32.
    """
    n = row.shape[0]
    for k in range(n):
        dst[k] += row[k]
    w = wd - d
    for p in range(d):
        dst[n + p] += row[w + p] * r
    dst[wd + 1] += r
    dst[wd + 2] += r * r


@njit(cache=True, inline="always")
def _add_moments4(dst, rows, indices, data, j, mu, wd, d):
    """:func:`_add_moments` for the four ratings ``j .. j + 3`` at once: one read-modify-write
    of ``dst`` per four rows instead of one per row, so the accumulation waits far less on its
    own stores (the rows are summed pairwise first)."""
    r0 = rows[indices[j]]
    r1 = rows[indices[j + 1]]
    r2 = rows[indices[j + 2]]
    r3 = rows[indices[j + 3]]
    e0 = np.float32(data[j] - mu - r0[wd])
    e1 = np.float32(data[j + 1] - mu - r1[wd])
    e2 = np.float32(data[j + 2] - mu - r2[wd])
    e3 = np.float32(data[j + 3] - mu - r3[wd])
    n = r0.shape[0]
    for k in range(n):
        dst[k] += (r0[k] + r1[k]) + (r2[k] + r3[k])
    w = wd - d
    for p in range(d):
        dst[n + p] += (r0[w + p] * e0 + r1[w + p] * e1) + (r2[w + p] * e2 + r3[w + p] * e3)
    dst[wd + 1] += (e0 + e1) + (e2 + e3)
    dst[wd + 2] += (e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3)


@njit(cache=True, fastmath=FAST)
def _update_full(
    e, acc, n, own_bias, own_mean, own_cov, own_rows, own_logdet, lam, gamma, tau, esse, a, scratch, cov, m, scale
):
    """The full-covariance update of entity ``e`` from its ``n`` ratings' moments.

    ``acc`` holds the float64 sums of :func:`_add_moments` (``r_i = r_ei - mu - b_i``);
    ``a``, ``scratch``, ``cov`` (``D x D``) and ``m`` (``D``) are scratch; ``scale`` is the
    entity's prior scale ``rho_e``. Computes

        b = lam (c - m_old . s) / (lam n + gamma rho_e),   t = sum_i m_i (r_i - b)
        A = rho_e diag(tau) + lam sum_i P_i = L L^T,   S = A^-1,   m = lam S t,   log det S = -log det A
        esse = c2 - 2 b c + n b^2 - 2 m . t + sum_pq (m_p m_q + S_pq) (sum_i P_i)_pq

    and writes the bias, ``m_e``, ``S_e``, the packed row of ``P_e``, ``log det S_e`` and
    ``esse[e]``.
    """
    d = own_mean.shape[1]
    w = d * (d + 1) // 2
    wd = w + d
    t0 = own_rows.shape[1]
    c = acc[wd + 1]
    c2 = acc[wd + 2]
    b = 0.0
    if n > 0:
        dot = 0.0
        for p in range(d):
            dot += own_mean[e, p] * acc[w + p]
        b = lam * (c - dot) / (lam * n + gamma * scale)
    own_bias[e] = b
    k = 0
    for p in range(d):
        acc[t0 + p] -= b * acc[w + p]  # t = sum_i m_i e_i with the new bias
        for q in range(p + 1):
            a[p, q] = lam * acc[k]
            k += 1
        a[p, p] += tau[p] * scale
    cholesky(a, d)
    own_logdet[e] = -logdet_from_cholesky(a, d)
    cho_inverse(a, scratch, cov, d)
    for p in range(d):
        v = 0.0
        for q in range(d):
            v += cov[p, q] * acc[t0 + q]
        m[p] = lam * v
    err = c2 - 2.0 * b * c + n * b * b
    k = 0
    for p in range(d):
        err -= 2.0 * m[p] * acc[t0 + p]
        mp = m[p]
        off = 0.0
        for q in range(p):  # P_e entries below the diagonal count twice in the trace
            v = mp * m[q] + cov[p, q]
            own_rows[e, k + q] = v
            off += v * acc[k + q]
        v = mp * mp + cov[p, p]
        own_rows[e, k + p] = v
        err += 2.0 * off + v * acc[k + p]
        k += p + 1
        own_mean[e, p] = mp
        own_rows[e, w + p] = mp
        for q in range(d):
            own_cov[e, p, q] = cov[p, q]
    esse[e] = err
    own_rows[e, wd] = b


@njit(cache=True, inline="always")
def _update_scratch(d, width):
    """Per-task scratch of :func:`_update_full`: the float64 moments (zeroed), three ``D x D``
    matrices and a ``D`` vector, allocated once per block of entities."""
    return (
        np.zeros(width, dtype=np.float64),
        np.empty((d, d), dtype=np.float64),
        np.empty((d, d), dtype=np.float64),
        np.empty((d, d), dtype=np.float64),
        np.empty(d, dtype=np.float64),
    )


def half_sweep_full(
    indptr,
    indices,
    data,
    mu,
    own_bias,
    own_mean,
    own_cov,
    own_rows,
    own_logdet,
    other_rows,
    lam,
    gamma,
    tau,
    blocks,
    esse,
    prior_scale,
):
    """Full-covariance update of every row entity of the CSR matrix, in place, by gathering the other
    side's packed rows (:func:`_half_sweep_full`); ``blocks`` are handed to threads one at a time.
    ``prior_scale`` (rows, float64; empty: all 1) scales entity ``e``'s ``gamma`` and ``tau`` by ``rho_e``."""
    with numba.parallel_chunksize(1):
        _half_sweep_full(
            indptr,
            indices,
            data,
            mu,
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            other_rows,
            lam,
            gamma,
            tau,
            blocks,
            esse,
            prior_scale,
            moments_width(own_mean.shape[1]),
        )


def scatter_sweep_full(
    indices,
    data,
    mu,
    other_rows,
    cuts,
    acc32,
    acc64,
    counts,
    col_counts,
    own_bias,
    own_mean,
    own_cov,
    own_rows,
    own_logdet,
    lam,
    gamma,
    tau,
    blocks,
    esse,
    prior_scale,
):
    """Full-covariance update of every *column* entity of a CSR matrix (``indices``, ``data``), in place:
    the moments are scattered from the streamed row entities' packed rows (:func:`_scatter_moments`,
    over the column ranges ``cuts`` of :func:`row_cuts`) into the zeroed accumulators ``acc32``,
    ``acc64``, ``counts``, then every column entity is updated from them (:func:`_finish_full`, which
    re-zeroes them). ``col_counts[e]`` is column entity ``e``'s number of ratings; ``prior_scale`` as in
    :func:`half_sweep_full`, per column entity."""
    with numba.parallel_chunksize(1):
        _scatter_moments(indices, data, mu, other_rows, cuts, acc32, acc64, counts, own_mean.shape[1])
        _finish_full(
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            acc32,
            acc64,
            counts,
            col_counts,
            lam,
            gamma,
            tau,
            blocks,
            esse,
            prior_scale,
        )


def half_sweep_diag(
    indptr,
    indices,
    data,
    mu,
    own_bias,
    other_bias,
    own_mean,
    own_var,
    own_logdet,
    other_mean,
    other_var,
    lam,
    gamma,
    tau,
    blocks,
    esse,
    prior_scale,
):
    """Diagonal-covariance update of every row entity, in place (:func:`_half_sweep_diag`); ``prior_scale``
    as in :func:`half_sweep_full`."""
    with numba.parallel_chunksize(1):
        _half_sweep_diag(
            indptr,
            indices,
            data,
            mu,
            own_bias,
            other_bias,
            own_mean,
            own_var,
            own_logdet,
            other_mean,
            other_var,
            lam,
            gamma,
            tau,
            blocks,
            esse,
            prior_scale,
        )


@njit(cache=True, parallel=True)
def _half_sweep_full(
    indptr,
    indices,
    data,
    mu,
    own_bias,
    own_mean,
    own_cov,
    own_rows,
    own_logdet,
    other_rows,
    lam,
    gamma,
    tau,
    blocks,
    esse,
    prior_scale,
    acc_width,
):
    """Full-covariance update of every row entity of the CSR matrix, in place (gathering).

    ``other_rows`` holds per entity of the other side the packed lower triangle of
    ``m m^T + S`` (``w = D(D+1)/2`` floats), then ``m`` (``D``), then the bias (see
    :func:`fastmf.common.layout.pack_rows`), so each rating reads one contiguous row. The moments are
    summed in float32 over runs of ``GRAM_BLOCK`` ratings, then in float64; each
    entity is then updated by :func:`_update_full`, which writes ``own_bias``,
    ``own_mean``, ``own_cov`` (``S_e``), ``own_rows``, ``own_logdet`` (``log det S_e
    = -log det A_e`` from the Cholesky factor) and ``esse[e]`` (module docstring).
    """
    for blk in prange(blocks.shape[0] - 1):
        _gather_block(
            blocks[blk],
            blocks[blk + 1],
            indptr,
            indices,
            data,
            mu,
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            other_rows,
            lam,
            gamma,
            tau,
            esse,
            prior_scale,
            acc_width,
        )


@njit(cache=True, fastmath=FAST)
def _gather_block(
    lo,
    hi,
    indptr,
    indices,
    data,
    mu,
    own_bias,
    own_mean,
    own_cov,
    own_rows,
    own_logdet,
    other_rows,
    lam,
    gamma,
    tau,
    esse,
    prior_scale,
    acc_width,
):
    """:func:`_half_sweep_full` for entities ``lo .. hi - 1``, whose scratch is allocated once (a serial
    function, so that the parallel lowering handles a loop of one call: faster to compile)."""
    d = own_mean.shape[1]
    wd = d * (d + 1) // 2 + d
    width = acc_width
    scaled = prior_scale.shape[0] > 0
    n_total = indices.shape[0]
    flat = other_rows.reshape(-1)
    stride = other_rows.shape[1]
    part = np.zeros(width, dtype=np.float32)
    acc, a, scratch, cov, m = _update_scratch(d, width)
    for e in range(lo, hi):
        start = indptr[e]
        end = indptr[e + 1]
        acc[:] = 0.0
        for c0 in range(start, end, GRAM_BLOCK):
            part[:] = 0.0
            c1 = min(end, c0 + GRAM_BLOCK)
            for j in range(c0, c1 - 3, 4):
                for q in range(4):
                    ahead = j + q + ROW_PREFETCH_AHEAD
                    if ahead < n_total:
                        prefetch_span(flat, indices[ahead] * stride, stride)
                _add_moments4(part, other_rows, indices, data, j, mu, wd, d)
            for j in range(c1 - (c1 - c0) % 4, c1):
                ahead = j + ROW_PREFETCH_AHEAD
                if ahead < n_total:
                    prefetch_span(flat, indices[ahead] * stride, stride)
                i = indices[j]
                _add_moments(part, other_rows[i], np.float32(data[j] - mu - other_rows[i, wd]), wd, d)
            for k in range(width):
                acc[k] += part[k]
        _update_full(
            e,
            acc,
            end - start,
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            lam,
            gamma,
            tau,
            esse,
            a,
            scratch,
            cov,
            m,
            prior_scale[e] if scaled else 1.0,
        )


@njit(cache=True, parallel=True)
def row_cuts(indptr, indices, parts):
    """``cuts[p, u]``: the first entry of row ``u`` of a CSR matrix (sorted rows) whose column is
    ``>= parts[p]``, so the entries of row ``u`` in column range ``p`` are ``cuts[p, u]:cuts[p + 1, u]``."""
    n_rows = indptr.shape[0] - 1
    cuts = np.empty((parts.shape[0], n_rows), dtype=np.int64)
    for u in prange(n_rows):
        pos = indptr[u]
        for p in range(parts.shape[0]):
            pos += count_below(indices, pos, indptr[u + 1], parts[p])
            cuts[p, u] = pos
    return cuts


@njit(cache=True, parallel=True, fastmath=FAST)
def _scatter_moments(indices, data, mu, other_rows, cuts, acc32, acc64, counts, d):
    """Sum the moments of :func:`_update_full` for every *column* entity of a CSR matrix.

    ``d`` is the number of factors. The transpose of :func:`_half_sweep_full`'s gather: each row entity's packed row
    ``other_rows[u]`` is read in order and added into the accumulators of the columns
    it rated, so the large side's rows stream from memory instead of being fetched once
    per rating. Columns are split into ranges, each owned by one task (no two threads
    write one accumulator); ``cuts`` (:func:`row_cuts`) locates each range in every row.
    A column's moments are summed in float32 in ``acc32`` and flushed into the float64
    ``acc64`` every ``GRAM_BLOCK`` ratings (``counts`` tracks the run), the precision of
    the gather. All three must be zero on entry; :func:`_finish_full` consumes and re-zeroes them.
    """
    wd = d * (d + 1) // 2 + d
    width = acc32.shape[1]
    n_rows = cuts.shape[1]
    flat = acc32.reshape(-1)
    for part in prange(cuts.shape[0] - 1):
        for u in range(n_rows):
            first = cuts[part, u]
            last = cuts[part + 1, u]
            if first == last:
                continue
            row = other_rows[u]
            for j in range(first, last):
                if j + ROW_PREFETCH_AHEAD < last:
                    prefetch_span(flat, indices[j + ROW_PREFETCH_AHEAD] * width, width)
                i = indices[j]
                _add_moments(acc32[i], row, np.float32(data[j] - mu - row[wd]), wd, d)
                counts[i] += 1
                if counts[i] == GRAM_BLOCK:
                    counts[i] = 0
                    for k in range(width):
                        acc64[i, k] += acc32[i, k]
                        acc32[i, k] = 0.0


@njit(cache=True, parallel=True)
def _finish_full(
    own_bias,
    own_mean,
    own_cov,
    own_rows,
    own_logdet,
    acc32,
    acc64,
    counts,
    col_counts,
    lam,
    gamma,
    tau,
    blocks,
    esse,
    prior_scale,
):
    """Update every entity from the moments :func:`_scatter_moments` summed (see :func:`_update_full`).

    ``col_counts[e]`` is the entity's number of ratings; the accumulators are reset to zero.
    """
    for blk in prange(blocks.shape[0] - 1):
        _finish_block(
            blocks[blk],
            blocks[blk + 1],
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            acc32,
            acc64,
            counts,
            col_counts,
            lam,
            gamma,
            tau,
            esse,
            prior_scale,
        )


@njit(cache=True, fastmath=FAST)
def _finish_block(
    lo,
    hi,
    own_bias,
    own_mean,
    own_cov,
    own_rows,
    own_logdet,
    acc32,
    acc64,
    counts,
    col_counts,
    lam,
    gamma,
    tau,
    esse,
    prior_scale,
):
    """:func:`_finish_full` for entities ``lo .. hi - 1`` (a serial function, as :func:`_gather_block`)."""
    d = own_mean.shape[1]
    width = acc32.shape[1]
    scaled = prior_scale.shape[0] > 0
    acc, a, scratch, cov, m = _update_scratch(d, width)
    for e in range(lo, hi):
        if col_counts[e] >= GRAM_BLOCK:  # only then was anything flushed into acc64
            for k in range(width):
                acc[k] = acc64[e, k] + acc32[e, k]
                acc64[e, k] = 0.0
        else:
            for k in range(width):
                acc[k] = acc32[e, k]
        for k in range(width):
            acc32[e, k] = 0.0
        counts[e] = 0
        _update_full(
            e,
            acc,
            col_counts[e],
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            lam,
            gamma,
            tau,
            esse,
            a,
            scratch,
            cov,
            m,
            prior_scale[e] if scaled else 1.0,
        )


@njit(cache=True, parallel=True, fastmath=FAST)
def _half_sweep_diag(
    indptr,
    indices,
    data,
    mu,
    own_bias,
    other_bias,
    own_mean,
    own_var,
    own_logdet,
    other_mean,
    other_var,
    lam,
    gamma,
    tau,
    blocks,
    esse,
    prior_scale,
):
    """Diagonal-covariance (mean-field per dimension) update of every row entity, in place.

    ``s_ed = 1/A_dd`` and one Gauss-Seidel pass over ``d`` from the current means:
    ``m_ed = (lam t_d - sum_{q != d} A_dq m_eq) / A_dd`` with ``A = rho_e diag(tau) + lam (sum_i m_i m_i^T
    + diag(sum_i s_i))``; the bias penalty is ``gamma rho_e``. Writes ``own_bias``, ``own_mean``,
    ``own_var``, ``own_logdet`` (``sum_d log s_ed``) and ``esse``.
    """
    d = own_mean.shape[1]
    flat = other_mean.reshape(-1)
    scaled = prior_scale.shape[0] > 0
    for blk in prange(blocks.shape[0] - 1):
        y, gram, s, t = gather_scratch(d)
        vsum = np.empty(d, dtype=np.float64)
        m = np.empty(d, dtype=np.float64)
        for e in range(blocks[blk], blocks[blk + 1]):
            start = indptr[e]
            end = indptr[e + 1]
            c, c2 = gather_moments(
                start, end, indices, data, mu, other_bias, other_mean, flat, other_var, True, y, gram, s, t, vsum
            )
            n = end - start
            scale = prior_scale[e] if scaled else 1.0
            b = 0.0
            if n > 0:
                dot = 0.0
                for p in range(d):
                    dot += own_mean[e, p] * s[p]
                b = lam * (c - dot) / (lam * n + gamma * scale)
            own_bias[e] = b
            for p in range(d):
                t[p] -= b * s[p]
                m[p] = own_mean[e, p]
            logdet = 0.0
            for p in range(d):
                diag = tau[p] * scale + lam * (gram[p, p] + vsum[p])
                z = lam * t[p]
                for q in range(d):
                    if q != p:
                        g = gram[p, q] if q < p else gram[q, p]
                        z -= lam * g * m[q]
                m[p] = z / diag
                own_var[e, p] = 1.0 / diag
                logdet -= math.log(diag)
            own_logdet[e] = logdet
            err = c2 - 2.0 * b * c + n * b * b
            for p in range(d):
                err -= 2.0 * m[p] * t[p]
                err += (m[p] * m[p] + own_var[e, p]) * (gram[p, p] + vsum[p])
                for q in range(p):
                    err += 2.0 * m[p] * m[q] * gram[p, q]
                own_mean[e, p] = m[p]
            esse[e] = err


@njit(cache=True)
def _pair_variance(mu_u, cov_u, mu_i, cov_i, d):
    """``m_u^T S_i m_u + m_i^T S_u m_i + tr(S_u S_i)`` (full ``(D, D)`` or diagonal ``(D,)`` covariances)."""
    v = 0.0
    if cov_u.ndim == 2:
        for p in range(d):
            for q in range(d):
                v += (mu_u[p] * mu_u[q] + cov_u[p, q]) * cov_i[q, p] + mu_i[p] * mu_i[q] * cov_u[p, q]
    else:
        for p in range(d):
            v += (mu_u[p] * mu_u[p] + cov_u[p]) * cov_i[p] + mu_i[p] * mu_i[p] * cov_u[p]
    return v


@njit(cache=True, inline="always")
def _posterior(e, bias, mean, cov, prior_mean, prior_cov):
    """``(b_e, m_e, S_e)`` of entity ``e``; an index outside the arrays is cold: ``(0, prior)``."""
    if 0 <= e < bias.shape[0]:
        return np.float64(bias[e]), mean[e], cov[e]
    return 0.0, prior_mean, prior_cov


@njit(cache=True, parallel=True)
def pair_moments(
    users,
    items,
    mu,
    user_bias,
    item_bias,
    user_mean,
    user_cov,
    item_mean,
    item_cov,
    prior_mean,
    prior_cov,
    mean_out,
    var_out,
):
    """Mean ``mu + b_u + b_i + m_u . m_i`` and variance of ``U_u . V_i`` under q for index pairs.

    An index outside the arrays (negative, or an id first seen after training) is
    cold: zero bias and the prior ``N(prior_mean, prior_cov)`` for its factors.
    """
    d = user_mean.shape[1]
    for j in prange(users.shape[0]):
        b_u, mu_u, cov_u = _posterior(users[j], user_bias, user_mean, user_cov, prior_mean, prior_cov)
        b_i, mu_i, cov_i = _posterior(items[j], item_bias, item_mean, item_cov, prior_mean, prior_cov)
        p = mu + b_u + b_i
        for k in range(d):
            p += mu_u[k] * mu_i[k]
        mean_out[j] = p
        var_out[j] = _pair_variance(mu_u, cov_u, mu_i, cov_i, d)


@njit(cache=True, parallel=True)
def draw(mean, cov, streams, seed, out):
    """``out[j] = m_j + L_j z`` with ``L_j L_j^T = S_j`` and ``z ~ N(0, I)`` from stream ``streams[j]``.

    ``cov`` is ``(n, D, D)`` or, for diagonal posteriors, ``(n, D)``. Each row draws from its
    own SplitMix64 stream of ``seed``, so a draw does not depend on the thread count or on
    which other rows are drawn in the same call.
    """
    d = mean.shape[1]
    for j in prange(mean.shape[0]):
        state = rng.new_state(seed, streams[j])
        z = np.empty(d, dtype=np.float64)
        for p in range(d):
            z[p] = rng.normal(state)
        if cov.ndim == 3:
            a = np.empty((d, d), dtype=np.float64)
            for p in range(d):
                for q in range(p + 1):
                    a[p, q] = cov[j, p, q]
            cholesky(a, d)
            for p in range(d):
                v = mean[j, p]
                for q in range(p + 1):
                    v += a[p, q] * z[q]
                out[j, p] = v
        else:
            for p in range(d):
                out[j, p] = mean[j, p] + math.sqrt(cov[j, p]) * z[p]
