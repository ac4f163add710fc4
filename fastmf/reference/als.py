"""NumPy reference of the ALS half-sweep and error sums (float64)."""

from __future__ import annotations

import numpy as np


def half_sweep(indptr, indices, data, mu, own_bias, other_bias, own_factors, other_factors,
               lam, gamma, tau, fit_bias=True, prior_mean=None, prior_bias=None):
    """Per entity: ``b = (lam sum(r - mu - b_i - U.V_i) + gamma m)/(lam n + gamma)``, then
    ``U = (lam V^T V + tau I)^{-1} (lam V^T (r - mu - b - b_i) + tau c)``, in place.

    ``prior_mean`` (rows x D) and ``prior_bias`` (rows) are the prior means ``c``
    and ``m`` (``None`` or empty: zero); an entity without ratings gets ``b = m``."""
    d = own_factors.shape[1]
    ridge = tau * np.eye(d)
    has_mean = prior_mean is not None and len(prior_mean) > 0
    has_bias_mean = prior_bias is not None and len(prior_bias) > 0
    for e in range(indptr.shape[0] - 1):
        idx = indices[indptr[e]:indptr[e + 1]]
        res = data[indptr[e]:indptr[e + 1]] - mu - other_bias[idx]
        v = other_factors[idx]
        m = prior_bias[e] if has_bias_mean else 0.0
        b = 0.0
        if fit_bias:
            b = (lam * np.sum(res - v @ own_factors[e]) + gamma * m) / (lam * idx.size + gamma) if idx.size else m
        own_bias[e] = b
        if d:
            rhs = lam * (v.T @ (res - b))
            if has_mean:
                rhs = rhs + tau * prior_mean[e]
            own_factors[e] = np.linalg.solve(lam * (v.T @ v) + ridge, rhs)


def error_sums(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, chunk=1 << 20):
    """``(sum of squared errors, sum of absolute errors)``; indices past the arrays are cold (zero).

    Vectorised over chunks of about ``chunk`` ratings (whole rows), so the gathered
    factor rows never take more than ``chunk x D`` floats at a time.
    """
    n_rows = indptr.shape[0] - 1
    cuts = np.searchsorted(indptr, np.arange(0, indptr[-1], chunk), side="right") - 1
    bounds = np.unique(np.concatenate([cuts, [n_rows]]))
    sse = sae = 0.0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        users = np.repeat(np.arange(lo, hi), np.diff(indptr[lo:hi + 1]))
        items = indices[indptr[lo]:indptr[hi]].astype(np.int64)
        ku = users < user_bias.shape[0]
        ki = items < item_bias.shape[0]
        pred = np.full(users.shape[0], mu, dtype=np.float64)
        pred[ku] += user_bias[users[ku]]
        pred[ki] += item_bias[items[ki]]
        both = ku & ki
        pred[both] += np.einsum("ij,ij->i", user_factors[users[both]], item_factors[items[both]])
        err = data[indptr[lo]:indptr[hi]] - pred
        sse += float(err @ err)
        sae += float(np.abs(err).sum())
    return sse, sae
