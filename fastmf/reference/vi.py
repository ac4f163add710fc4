"""NumPy reference of the variational half-sweep (float64).

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
