"""NumPy reference of :mod:`fastmf.kernels.wrmf` (float64): the weighted-MF half-sweeps.

Per entity, its rated rows are gathered and the block system of the kernel module's docstring
is formed and solved with NumPy (``np.linalg.solve``), or the same conjugate-gradient steps are
run; ``blocks`` only give the order.
"""

from __future__ import annotations

import numpy as np

from fastmf.reference._krylov import cg_solve

__all__ = ["gram", "half_sweep", "observed_loss"]


def _confidence(r, alpha, eps, log_scaling):
    r = np.asarray(r, dtype=np.float64)
    return 1.0 + alpha * (np.log1p(r / eps) if log_scaling else r)


def gram(factors):
    """``F^T F`` (``D x D``, float64)."""
    f = factors.astype(np.float64)
    return f.T @ f


def half_sweep(indptr, indices, data, own_factors, other_factors, gram, lam, alpha, eps, log_scaling, cg_steps, blocks):
    """Per entity: ``x = (G + lam I + sum (c - 1) y y^T)^-1 sum c y`` exactly (``cg_steps`` 0), or
    ``cg_steps`` conjugate-gradient steps on that system from the current ``x``."""
    d = own_factors.shape[1]
    base = gram + lam * np.eye(d)
    for e in range(int(blocks[0]), int(blocks[-1])):
        rows = other_factors[indices[indptr[e] : indptr[e + 1]]].astype(np.float64)
        c = _confidence(data[indptr[e] : indptr[e + 1]], alpha, eps, log_scaling)
        a = base + (rows * (c - 1.0)[:, None]).T @ rows
        b = c @ rows
        if cg_steps == 0:
            own_factors[e] = np.linalg.solve(a, b)
            continue
        own_factors[e] = cg_solve(a, b, own_factors[e], cg_steps)


def observed_loss(indptr, indices, data, user_factors, item_factors, alpha, eps, log_scaling):
    """``sum over observed pairs of c (1 - s)^2 - s^2`` with ``s = x_u . y_i``."""
    users = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    s = np.einsum("jd,jd->j", user_factors[users].astype(np.float64), item_factors[indices].astype(np.float64))
    c = _confidence(data, alpha, eps, log_scaling)
    return float(np.sum(c * (1.0 - s) ** 2 - s * s))
