"""Variational Bayes matrix factorisation: coordinate-ascent half-sweeps and predictive moments.

Model ``r_ui ~ N(mu + b_u + b_i + U_u . V_i, 1/lam)``, priors ``U_u, V_i ~ N(0, diag(tau)^-1)``,
posteriors ``q(U_u) = N(m_u, S_u)`` (and likewise for items); the biases are point
estimates with the penalty ``gamma/2 b^2``. A half-sweep updates every row entity ``e``
given the other side's posteriors ``(m_i, S_i)`` and their second moments
``P_i = E[V_i V_i^T] = m_i m_i^T + S_i``:

    b_e = lam sum_i (r_ei - mu - b_i - m_e . m_i) / (lam n_e + gamma)
    A_e = diag(tau) + lam sum_i P_i,   S_e = A_e^-1,   m_e = S_e lam sum_i m_i (r_ei - mu - b_e - b_i)

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
``b_i`` (:func:`pack_rows`), so ``sum_i P_i`` needs additions only (no Gram product). The
diagonal sweep builds ``sum_i m_i m_i^T`` with the tiled Gram kernel of
:mod:`fastmf.kernels.linalg` plus ``sum_i s_i``. Work is split into blocks of equal cost
(:func:`fastmf.kernels.als.balanced_blocks`); per-block scratch is allocated once.
"""

import math

import numpy as np
from numba import njit, prange

from fastmf.kernels import rng
from fastmf.kernels.linalg import (FAST, GRAM_BLOCK, PREFETCH_AHEAD, cho_inverse, cholesky, gather_rows, gram_add,
                                   logdet_from_cholesky, moments_add, padded_dim, prefetch_span)



def pack_rows(mean: np.ndarray, cov: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Per entity, float32: packed lower triangle of ``m m^T + S``, then ``m``, then the bias."""
    rows, cols = np.tril_indices(mean.shape[1])
    out = np.empty((mean.shape[0], rows.size + mean.shape[1] + 1), dtype=np.float32)
    for lo in range(0, mean.shape[0], 4096):
        m = mean[lo:lo + 4096].astype(np.float64)
        out[lo:lo + 4096, :rows.size] = m[:, rows] * m[:, cols] + cov[lo:lo + 4096][:, rows, cols]
    out[:, rows.size:-1] = mean
    out[:, -1] = bias
    return out


@njit(cache=True, parallel=True, fastmath=FAST)
def half_sweep_full(indptr, indices, data, mu, own_bias, own_mean, own_cov, own_rows, own_logdet, other_rows,
                    lam, gamma, tau, blocks, esse):
    """Full-covariance update of every row entity of the CSR matrix, in place.

    ``other_rows`` holds per entity of the other side the packed lower triangle of
    ``m m^T + S`` (``w = D(D+1)/2`` floats), then ``m`` (``D``), then the bias (see
    :func:`pack_rows`), so each rating reads one contiguous row. Writes ``own_bias``,
    ``own_mean``, ``own_cov`` (``S_e``), ``own_rows``, ``own_logdet`` (``log det S_e =
    -log det A_e`` from the Cholesky factor) and ``esse[e]`` (module docstring).
    """
    d = own_mean.shape[1]
    w = d * (d + 1) // 2
    wd = w + d
    n_total = indices.shape[0]
    n_blocks = blocks.shape[0] - 1
    flat = other_rows.reshape(-1)
    stride = other_rows.shape[1]
    for blk in prange(n_blocks):
        part = np.zeros(wd, dtype=np.float32)
        tpart = np.zeros(d, dtype=np.float32)
        acc = np.zeros(wd, dtype=np.float64)  # sum_i P_i (packed), then s = sum_i m_i
        a = np.empty((d, d), dtype=np.float64)
        scratch = np.empty((d, d), dtype=np.float64)
        cov = np.empty((d, d), dtype=np.float64)
        t = np.empty(d, dtype=np.float64)
        m = np.empty(d, dtype=np.float64)
        for e in range(blocks[blk], blocks[blk + 1]):
            start = indptr[e]
            end = indptr[e + 1]
            acc[:] = 0.0
            t[:] = 0.0
            c = 0.0
            c2 = 0.0
            for c0 in range(start, end, GRAM_BLOCK):
                c1 = min(end, c0 + GRAM_BLOCK)
                part[:] = 0.0
                tpart[:] = 0.0
                for j in range(c0, c1):
                    ahead = j + PREFETCH_AHEAD
                    if ahead < n_total:
                        prefetch_span(flat, indices[ahead] * stride, stride)
                    i = indices[j]
                    r = data[j] - mu - other_rows[i, wd]
                    c += r
                    c2 += r * r
                    for k in range(wd):
                        part[k] += other_rows[i, k]
                    for p in range(d):
                        tpart[p] += other_rows[i, w + p] * r
                for k in range(wd):
                    acc[k] += part[k]
                for p in range(d):
                    t[p] += tpart[p]
            n = end - start
            b = 0.0
            if n > 0:
                dot = 0.0
                for p in range(d):
                    dot += own_mean[e, p] * acc[w + p]
                b = lam * (c - dot) / (lam * n + gamma)
            own_bias[e] = b
            k = 0
            for p in range(d):
                t[p] -= b * acc[w + p]  # t = sum_i m_i e_i with the new bias
                for q in range(p + 1):
                    a[p, q] = lam * acc[k]
                    k += 1
                a[p, p] += tau[p]
            cholesky(a, d)
            own_logdet[e] = -logdet_from_cholesky(a, d)
            cho_inverse(a, scratch, cov, d)
            for p in range(d):
                v = 0.0
                for q in range(d):
                    v += cov[p, q] * t[q]
                m[p] = lam * v
            # expected squared error of this entity's ratings under the new posterior
            err = c2 - 2.0 * b * c + n * b * b
            k = 0
            for p in range(d):
                err -= 2.0 * m[p] * t[p]
                for q in range(p + 1):
                    f = 1.0 if p == q else 2.0
                    err += f * (m[p] * m[q] + cov[p, q]) * acc[k]
                    own_rows[e, k] = m[p] * m[q] + cov[p, q]
                    k += 1
            esse[e] = err
            for p in range(d):
                own_mean[e, p] = m[p]
                own_rows[e, w + p] = m[p]
                for q in range(d):
                    own_cov[e, p, q] = cov[p, q]
            own_rows[e, wd] = b


@njit(cache=True, parallel=True, fastmath=FAST)
def half_sweep_diag(indptr, indices, data, mu, own_bias, other_bias, own_mean, own_var, own_logdet,
                    other_mean, other_var, lam, gamma, tau, blocks, esse):
    """Diagonal-covariance (mean-field per dimension) update of every row entity, in place.

    ``s_ed = 1/A_dd`` and one Gauss-Seidel pass over ``d`` from the current means:
    ``m_ed = (lam t_d - sum_{q != d} A_dq m_eq) / A_dd``. Writes ``own_bias``,
    ``own_mean``, ``own_var``, ``own_logdet`` (``sum_d log s_ed``) and ``esse``.
    """
    d = own_mean.shape[1]
    dp = padded_dim(d)
    n_blocks = blocks.shape[0] - 1
    flat = other_mean.reshape(-1)
    for blk in prange(n_blocks):
        x = np.zeros((dp, GRAM_BLOCK), dtype=np.float32)
        res = np.zeros(GRAM_BLOCK, dtype=np.float32)
        gram = np.zeros((dp, dp), dtype=np.float32)
        vsum = np.empty(d, dtype=np.float64)
        s = np.empty(d, dtype=np.float64)
        t = np.empty(d, dtype=np.float64)
        m = np.empty(d, dtype=np.float64)
        for e in range(blocks[blk], blocks[blk + 1]):
            start = indptr[e]
            end = indptr[e + 1]
            gram[:, :] = 0.0
            vsum[:] = 0.0
            s[:] = 0.0
            t[:] = 0.0
            c = 0.0
            c2 = 0.0
            for c0 in range(start, end, GRAM_BLOCK):
                mb = min(GRAM_BLOCK, end - c0)
                mm = gather_rows(x, other_mean, flat, indices, c0, mb, d)
                for jj in range(mb):
                    i = indices[c0 + jj]
                    r = data[c0 + jj] - mu - other_bias[i]
                    res[jj] = r
                    c += r
                    c2 += r * r
                    for p in range(d):
                        vsum[p] += other_var[i, p]
                moments_add(x, res, mb, d, s, t)
                gram_add(x, mm, dp, gram)
            n = end - start
            b = 0.0
            if n > 0:
                dot = 0.0
                for p in range(d):
                    dot += own_mean[e, p] * s[p]
                b = lam * (c - dot) / (lam * n + gamma)
            own_bias[e] = b
            for p in range(d):
                t[p] -= b * s[p]
                m[p] = own_mean[e, p]
            logdet = 0.0
            for p in range(d):
                diag = tau[p] + lam * (gram[p, p] + vsum[p])
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


@njit(cache=True, parallel=True)
def pair_moments(users, items, mu, user_bias, item_bias, user_mean, user_cov, item_mean, item_cov,
                 prior_mean, prior_cov, mean_out, var_out):
    """Mean ``mu + b_u + b_i + m_u . m_i`` and variance of ``U_u . V_i`` under q for index pairs.

    An index outside the arrays (negative, or an id first seen after training) is
    cold: zero bias and the prior ``N(prior_mean, prior_cov)`` for its factors.
    """
    d = user_mean.shape[1]
    n_u = user_bias.shape[0]
    n_i = item_bias.shape[0]
    for j in prange(users.shape[0]):
        u = users[j]
        i = items[j]
        p = mu
        ku = 0 <= u < n_u
        ki = 0 <= i < n_i
        if ku:
            p += user_bias[u]
            mu_u = user_mean[u]
            cov_u = user_cov[u]
        else:
            mu_u = prior_mean
            cov_u = prior_cov
        if ki:
            p += item_bias[i]
            mu_i = item_mean[i]
            cov_i = item_cov[i]
        else:
            mu_i = prior_mean
            cov_i = prior_cov
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
