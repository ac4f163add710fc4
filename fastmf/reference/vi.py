"""NumPy reference of the variational half-sweep and the expected squared error (float64).

Covariances are ``(n, D, D)`` (full) or ``(n, D)`` (diagonal variances); see
:mod:`fastmf.kernels.vi` for the updates.
"""

from __future__ import annotations

import numpy as np


def half_sweep(indptr, indices, data, mu, own_bias, other_bias, own_mean, own_cov, own_logdet,
               other_mean, other_cov, lam, gamma, tau, esse):
    """Per entity: the bias, then ``q(U_e)``; writes ``own_*`` and the entity's expected squared error."""
    d = own_mean.shape[1]
    full = own_cov.ndim == 3
    for e in range(indptr.shape[0] - 1):
        idx = indices[indptr[e]:indptr[e + 1]]
        res = data[indptr[e]:indptr[e + 1]] - mu - other_bias[idx]
        v = other_mean[idx]
        cov_sum = other_cov[idx].sum(axis=0) if full else np.diag(other_cov[idx].sum(axis=0))
        b = 0.0
        if idx.size:
            b = lam * np.sum(res - v @ own_mean[e]) / (lam * idx.size + gamma)
        own_bias[e] = b
        err = res - b
        a = np.diag(tau) + lam * (v.T @ v + cov_sum)
        rhs = lam * (v.T @ err)
        if full:
            chol = np.linalg.cholesky(a)
            inv_chol = np.linalg.inv(chol)
            s = inv_chol.T @ inv_chol
            m = s @ rhs
            own_logdet[e] = -2.0 * np.sum(np.log(np.diag(chol)))
        else:
            s = np.diag(1.0 / np.diag(a))
            m = own_mean[e].astype(np.float64)
            for p in range(d):  # one Gauss-Seidel pass
                m[p] = (rhs[p] - a[p] @ m + a[p, p] * m[p]) / a[p, p]
            own_logdet[e] = -np.sum(np.log(np.diag(a)))
        own_mean[e] = m
        own_cov[e] = s if full else np.diag(s)
        # E sum (err - U.V_i)^2 = |err - V m|^2 + m^T (sum S_i) m + tr(S V^T V) + tr(S sum S_i)
        resid = err - v @ m
        esse[e] = resid @ resid + m @ cov_sum @ m + np.sum(s * (v.T @ v)) + np.sum(s * cov_sum)


def pair_moments(users, items, mu, user_bias, item_bias, user_mean, user_cov, item_mean, item_cov, chunk=65536):
    """Mean ``mu + b_u + b_i + m_u . m_i`` and variance of ``U_u . V_i`` for known index pairs."""
    mean = np.empty(users.shape[0])
    var = np.empty(users.shape[0])
    full = user_cov.ndim == 3
    for lo in range(0, users.shape[0], chunk):
        u, i = users[lo:lo + chunk], items[lo:lo + chunk]
        mu_u, mu_i, su, si = user_mean[u], item_mean[i], user_cov[u], item_cov[i]
        mean[lo:lo + chunk] = mu + user_bias[u] + item_bias[i] + np.einsum("jd,jd->j", mu_u, mu_i)
        if full:
            var[lo:lo + chunk] = (np.einsum("jp,jpq,jq->j", mu_u, si, mu_u) + np.einsum("jp,jpq,jq->j", mu_i, su, mu_i)
                                  + np.einsum("jpq,jqp->j", su, si))
        else:
            var[lo:lo + chunk] = np.einsum("jd,jd->j", mu_u ** 2 + su, si) + np.einsum("jd,jd->j", mu_i ** 2, su)
    return mean, var
