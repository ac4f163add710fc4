"""NumPy reference of :mod:`fastmf.kernels.als` (float64): the ALS half-sweep."""

from __future__ import annotations

import numpy as np

from fastmf.reference._krylov import cg_solve

__all__ = ["half_sweep"]


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
    """Per entity of the blocks, in order: ``b = (lam sum(r - mu - b_i - U.V_i) + gamma m)/(lam n + gamma)``,
    then ``U = (lam V^T V + tau I)^{-1} (lam V^T (r - mu - b - b_i) + tau c)``, in place.

    ``prior_mean`` (rows x D) and ``prior_bias`` (rows) are the prior means ``c`` and ``m``
    (empty: zero); an entity without ratings gets ``b = m`` and ``U = c``. With ``fit_bias``
    False the biases stay at zero. A ``ridge_scale`` (not ``None``) multiplies entity ``e``'s ``gamma`` and
    ``tau`` by ``ridge_scale[e]`` (weighted-lambda). ``cg_steps`` > 0 replaces the solve by that many
    conjugate-gradient steps on the same system from the current ``U``."""
    d = own_factors.shape[1]
    has_mean = len(prior_mean) > 0
    has_bias_mean = len(prior_bias) > 0
    for e in range(int(blocks[0]), int(blocks[-1])):
        idx = indices[indptr[e] : indptr[e + 1]]
        res = data[indptr[e] : indptr[e + 1]].astype(np.float64) - mu - other_bias[idx]
        v = other_factors[idx]
        scale = float(ridge_scale[e]) if ridge_scale is not None and len(ridge_scale) else 1.0
        m = prior_bias[e] if has_bias_mean else 0.0
        b = 0.0
        if fit_bias:
            b = (
                (lam * np.sum(res - v @ own_factors[e]) + gamma * scale * m) / (lam * idx.size + gamma * scale)
                if idx.size
                else m
            )
        own_bias[e] = b
        if d and not idx.size:
            own_factors[e] = prior_mean[e] if has_mean else 0.0
        elif d:
            rhs = lam * (v.T @ (res - b))
            if has_mean:
                rhs = rhs + tau * scale * prior_mean[e]
            a = lam * (v.T @ v) + tau * scale * np.eye(d)
            own_factors[e] = cg_solve(a, rhs, own_factors[e], cg_steps) if cg_steps else np.linalg.solve(a, rhs)
