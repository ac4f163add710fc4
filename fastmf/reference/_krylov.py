"""Conjugate gradient in NumPy (float64): the reference of the kernels' ``cg_solve``."""

from __future__ import annotations

import numpy as np


def cg_solve(a: np.ndarray, b: np.ndarray, x: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` conjugate-gradient steps on ``a x = b`` (``a`` symmetric positive definite) from ``x``.

    Stops early once the squared residual is at most 1e-30. Returns the last iterate (a new array).
    """
    x = np.array(x, dtype=np.float64)
    r = b - a @ x
    p = r.copy()
    rs = r @ r
    for _ in range(steps):
        if rs <= 1e-30:
            break
        ap = a @ p
        step = rs / (p @ ap)
        x += step * p
        r -= step * ap
        rs_new = r @ r
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x
