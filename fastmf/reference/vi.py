"""NumPy reference of :mod:`fastmf.kernels.vi` (float64): the variational half-sweeps and predictive moments.

The same functions and state as the kernels: posteriors as means ``(n, D)``,
covariances ``(n, D, D)`` or variances ``(n, D)``, biases, ``log det S`` per entity and,
for full covariances, the packed rows of :func:`fastmf.common.layout.pack_rows` (lower
triangle of ``m m^T + S``, then ``m``, then the bias). Each entity's update is the
closed form stated in the kernel module's docstring, written as a careful NumPy user
would: per entity, the rated rows are gathered and summed with vectorised NumPy. The
scheduling arguments of the kernels (``blocks``, and the accumulators of the scattered
sweep) are honoured where they define the order and otherwise unused.
"""

from __future__ import annotations

import numpy as np

from fastmf.reference import _rng

__all__ = ["half_sweep_full", "row_cuts", "scatter_sweep_full", "half_sweep_diag", "pair_moments", "draw"]


def _entities(blocks):
    """The entities of the blocks, in order."""
    return range(int(blocks[0]), int(blocks[-1]))


def _scale_of(prior_scale, e) -> float:
    """Entity ``e``'s prior scale ``rho_e`` (an empty ``prior_scale``: 1)."""
    return float(prior_scale[e]) if len(prior_scale) else 1.0


def _unpack(packed: np.ndarray, d: int) -> np.ndarray:
    """The symmetric ``D x D`` matrix whose lower triangle (row-major) is ``packed``."""
    out = np.zeros((d, d))
    out[np.tril_indices(d)] = packed
    return out + np.tril(out, -1).T


def _update_full(
    e, p_sum, s, t, c, c2, n, own_bias, own_mean, own_cov, own_rows, own_logdet, lam, gamma, tau, esse, scale
):
    """Entity ``e`` from its ratings' sums: ``P = sum_i P_i``, ``s = sum_i m_i``, ``t = sum_i m_i r_i``,
    ``c = sum_i r_i``, ``c2 = sum_i r_i^2`` (``r_i = r_ei - mu - b_i``) and its prior scale ``rho`` (``scale``)::

        b = lam (c - m_old . s) / (lam n + gamma rho),   A = rho diag(tau) + lam P,   S = A^-1,   m = lam S (t - b s)
        esse = c2 - 2 b c + n b^2 - 2 m . (t - b s) + sum_pq (m m^T + S)_pq P_pq
    """
    d = own_mean.shape[1]
    b = lam * (c - own_mean[e].astype(np.float64) @ s) / (lam * n + gamma * scale) if n > 0 else 0.0
    t = t - b * s
    a = np.diag(scale * np.asarray(tau, dtype=np.float64)) + lam * p_sum
    chol = np.linalg.cholesky(a)
    inv_chol = np.linalg.inv(chol)
    cov = inv_chol.T @ inv_chol
    m = lam * (cov @ t)
    second = np.outer(m, m) + cov
    own_bias[e] = b
    own_mean[e] = m
    own_cov[e] = cov
    own_logdet[e] = -2.0 * np.sum(np.log(np.diag(chol)))
    esse[e] = c2 - 2.0 * b * c + n * b * b - 2.0 * (m @ t) + np.sum(second * p_sum)
    w = d * (d + 1) // 2
    own_rows[e, :w] = second[np.tril_indices(d)]
    own_rows[e, w : w + d] = m
    own_rows[e, w + d] = b


def _update_from_rows(
    e, rows, ratings, mu, own_bias, own_mean, own_cov, own_rows, own_logdet, lam, gamma, tau, esse, scale
):
    """:func:`_update_full` of entity ``e`` from the packed rows of the entities it rated and the ratings."""
    d = own_mean.shape[1]
    w = d * (d + 1) // 2
    rows = rows.astype(np.float64)
    r = ratings - mu - rows[:, w + d]
    means = rows[:, w : w + d]
    _update_full(
        e,
        _unpack(rows[:, :w].sum(axis=0), d),
        means.sum(axis=0),
        means.T @ r,
        r.sum(),
        r @ r,
        r.size,
        own_bias,
        own_mean,
        own_cov,
        own_rows,
        own_logdet,
        lam,
        gamma,
        tau,
        esse,
        scale,
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
    """Full-covariance update of every row entity of the CSR matrix (per entity, its rated rows gathered);
    ``prior_scale`` (empty: all 1) scales entity ``e``'s ``gamma`` and ``tau`` by ``rho_e``."""
    for e in _entities(blocks):
        lo, hi = indptr[e], indptr[e + 1]
        _update_from_rows(
            e,
            other_rows[indices[lo:hi]],
            data[lo:hi].astype(np.float64),
            mu,
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            lam,
            gamma,
            tau,
            esse,
            _scale_of(prior_scale, e),
        )


def row_cuts(indptr, indices, parts):
    """``cuts[p, u]``: the first entry of row ``u`` whose column is ``>= parts[p]`` (rows sorted)."""
    n_rows = indptr.shape[0] - 1
    width = int(max(parts[-1], indices.max() + 1 if indices.size else 0)) + 1
    keys = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr)) * width + indices
    rows = np.arange(n_rows, dtype=np.int64)
    return np.stack([np.searchsorted(keys, rows * width + p, side="left") for p in parts]).astype(np.int64)


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
    """Full-covariance update of every *column* entity of a CSR matrix (``indices``, ``data``): the same
    sums as the kernel's scatter, gathered per column here (the accumulators stay untouched);
    ``prior_scale`` per column entity, as in :func:`half_sweep_full`."""
    rows_of_entry = np.repeat(np.arange(cuts.shape[1]), cuts[-1] - cuts[0])
    order = np.argsort(indices, kind="stable")
    col_ptr = np.concatenate([[0], np.cumsum(col_counts)])
    for e in _entities(blocks):
        sel = order[col_ptr[e] : col_ptr[e + 1]]
        _update_from_rows(
            e,
            other_rows[rows_of_entry[sel]],
            data[sel].astype(np.float64),
            mu,
            own_bias,
            own_mean,
            own_cov,
            own_rows,
            own_logdet,
            lam,
            gamma,
            tau,
            esse,
            _scale_of(prior_scale, e),
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
    """Diagonal-covariance update of every row entity: ``s_ed = 1/A_dd`` and one Gauss-Seidel pass over
    ``d`` of ``m_ed = (lam t_d - sum_{q != d} A_dq m_eq) / A_dd`` from the current means, with
    ``A = rho_e diag(tau) + lam (V^T V + diag(sum_i s_i))`` and the bias penalty ``gamma rho_e``
    (``prior_scale``, empty: ``rho_e = 1``)."""
    d = own_mean.shape[1]
    tau = np.asarray(tau, dtype=np.float64)
    for e in _entities(blocks):
        idx = indices[indptr[e] : indptr[e + 1]]
        res = data[indptr[e] : indptr[e + 1]].astype(np.float64) - mu - other_bias[idx]
        v = other_mean[idx].astype(np.float64)
        var_sum = other_var[idx].astype(np.float64).sum(axis=0)
        scale = _scale_of(prior_scale, e)
        b = lam * np.sum(res - v @ own_mean[e]) / (lam * idx.size + gamma * scale) if idx.size else 0.0
        own_bias[e] = b
        err = res - b
        gram = v.T @ v
        a = np.diag(scale * tau) + lam * (gram + np.diag(var_sum))
        rhs = lam * (v.T @ err)
        m = own_mean[e].astype(np.float64)
        for p in range(d):
            m[p] = (rhs[p] - a[p] @ m + a[p, p] * m[p]) / a[p, p]
        s = 1.0 / np.diag(a)
        own_logdet[e] = -np.sum(np.log(np.diag(a)))
        own_mean[e] = m
        own_var[e] = s
        # E sum (err - U.V_i)^2 = |err - V m|^2 + sum_p s_p (sum_i m_ip^2) + sum_p (m_p^2 + s_p) sum_i s_ip
        resid = err - v @ m
        esse[e] = resid @ resid + s @ np.diag(gram) + (m * m + s) @ var_sum


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
    """Mean ``mu + b_u + b_i + m_u . m_i`` and variance ``m_u^T S_i m_u + m_i^T S_u m_i + tr(S_u S_i)`` of
    ``U_u . V_i`` per index pair; an index outside the arrays is cold (zero bias, the prior)."""
    ku = (users >= 0) & (users < user_bias.shape[0])
    ki = (items >= 0) & (items < item_bias.shape[0])
    full = user_cov.ndim == 3
    m_u = np.where(ku[:, None], user_mean[np.where(ku, users, 0)], prior_mean).astype(np.float64)
    m_i = np.where(ki[:, None], item_mean[np.where(ki, items, 0)], prior_mean).astype(np.float64)
    shape = (-1, 1, 1) if full else (-1, 1)
    s_u = np.where(ku.reshape(shape), user_cov[np.where(ku, users, 0)], prior_cov).astype(np.float64)
    s_i = np.where(ki.reshape(shape), item_cov[np.where(ki, items, 0)], prior_cov).astype(np.float64)
    mean_out[:] = (
        mu
        + np.where(ku, user_bias[np.where(ku, users, 0)], 0.0)
        + np.where(ki, item_bias[np.where(ki, items, 0)], 0.0)
        + np.einsum("jd,jd->j", m_u, m_i)
    )
    if full:
        var_out[:] = (
            np.einsum("jp,jpq,jq->j", m_u, s_i, m_u)
            + np.einsum("jp,jpq,jq->j", m_i, s_u, m_i)
            + np.einsum("jpq,jqp->j", s_u, s_i)
        )
    else:
        var_out[:] = (
            np.einsum("jd,jd->j", m_u * m_u, s_i)
            + np.einsum("jd,jd->j", m_i * m_i, s_u)
            + np.einsum("jd,jd->j", s_u, s_i)
        )


def draw(mean, cov, streams, seed, out):
    """``out[j] = m_j + L_j z`` with ``L_j L_j^T = S_j`` and ``z ~ N(0, I)`` from the SplitMix64 stream
    ``streams[j]`` of ``seed`` (the kernel's draws: ``z_p`` from calls ``2p + 1`` and ``2p + 2``)."""
    d = mean.shape[1]
    states = _rng.stream_seed(seed, np.asarray(streams))
    calls = np.arange(1, 2 * d + 1)
    raw = _rng.draws(states[:, None], calls[None, :])
    z = _rng.normal(raw[:, 0::2], raw[:, 1::2])
    if cov.ndim == 3:
        chol = np.linalg.cholesky(cov.astype(np.float64))
        out[:] = mean + np.einsum("jpq,jq->jp", chol, z)
    else:
        out[:] = mean + np.sqrt(cov.astype(np.float64)) * z
