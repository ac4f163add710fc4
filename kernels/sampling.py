"""Alias tables for drawing from discrete distributions in O(1) per draw (Vose 1991).

A table ``(prob, alias)`` over ``n`` outcomes is drawn from with one uniform column
``k`` and one uniform ``x``: the outcome is ``k`` if ``x < prob[k]`` else ``alias[k]``
(see ``alias_draw`` in the kernels' generator).
"""

import numpy as np
from numba import njit

__all__ = ["build_alias"]


@njit(cache=True)
def build_alias(weights):
    """Vose's alias table for drawing ``k`` with probability ``weights[k] / sum(weights)``.

    Returns ``(prob, alias)``: draw a uniform column ``k`` and a uniform ``x``;
    the result is ``k`` if ``x < prob[k]`` else ``alias[k]``.
    """
    n = weights.shape[0]
    total = 0.0
    for k in range(n):
        total += weights[k]
    scaled = np.empty(n, dtype=np.float64)
    for k in range(n):
        scaled[k] = weights[k] * n / total
    prob = np.ones(n, dtype=np.float64)
    alias = np.empty(n, dtype=np.int32)
    for k in range(n):
        alias[k] = k
    # two stacks, each initially in ascending outcome order
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    for k in range(n):
        ns, nl = _push(k, scaled[k] < 1.0, small, ns, large, nl)
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        nl -= 1
        g = large[nl]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = scaled[g] + scaled[s] - 1.0
        ns, nl = _push(g, scaled[g] < 1.0, small, ns, large, nl)
    return prob, alias


@njit(cache=True, inline="always")
def _push(k, below_one, small, ns, large, nl):
    """Outcome ``k`` onto the stack of small (scaled weight below one) or large outcomes; the new heights."""
    if below_one:
        small[ns] = k
        return ns + 1, nl
    large[nl] = k
    return ns, nl + 1
