"""NumPy reference of :mod:`fastmf.kernels.sampling`: Vose's alias table, the same table bit for bit."""

from __future__ import annotations

import numpy as np

__all__ = ["build_alias"]


def build_alias(weights):
    """Vose's alias table for drawing ``k`` with probability ``weights[k] / sum(weights)``: ``(prob, alias)``.

    The total is summed in order (``cumsum``) and the small and large outcomes are paired
    as stacks, as in the kernel, so the tables are identical.
    """
    n = weights.shape[0]
    total = np.cumsum(weights, dtype=np.float64)[-1] if n else 0.0
    scaled = (weights * n / total).astype(np.float64)
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n).astype(np.int32)
    small = [int(k) for k in np.flatnonzero(scaled < 1.0)]
    large = [int(k) for k in np.flatnonzero(~(scaled < 1.0))]
    while small and large:
        s = small.pop()
        g = large.pop()
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = scaled[g] + scaled[s] - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias
