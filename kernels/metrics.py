"""Error metrics and objectives of rating models, computed in parallel over CSR rows.

Predictions are ``mu + b_u + b_i + U_u . V_i``; a user or item index beyond the
model's arrays (an id first seen in the test data) contributes nothing (it is
cold: zero bias and zero factors). Per-row partial sums are reduced in a
fixed order, so results do not depend on the number of threads.
"""

import numpy as np
from numba import njit, prange

__all__ = ["error_sums", "squared_errors", "predict_pairs", "sum_squares"]


@njit(cache=True, inline="always")
def predict_one(u, i, mu, user_bias, item_bias, user_factors, item_factors):
    p = mu
    known_u = u < user_bias.shape[0]
    known_i = i < item_bias.shape[0]
    if known_u:
        p += user_bias[u]
    if known_i:
        p += item_bias[i]
    if known_u and known_i:
        for k in range(user_factors.shape[1]):
            p += user_factors[u, k] * item_factors[i, k]
    return p


@njit(cache=True)
def _ordered_sum(values):
    """``sum(values)`` left to right: a sequential function, so that a parallel caller's reduction
    does not depend on how many threads ran it."""
    total = 0.0
    for v in values:
        total += v
    return total


@njit(cache=True, parallel=True)
def error_sums(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors):
    """``(sum of squared errors, sum of absolute errors)`` over all ratings of the CSR matrix."""
    n_rows = indptr.shape[0] - 1
    sq = np.zeros(n_rows, dtype=np.float64)
    ab = np.zeros(n_rows, dtype=np.float64)
    for u in prange(n_rows):
        s2 = 0.0
        s1 = 0.0
        for j in range(indptr[u], indptr[u + 1]):
            e = data[j] - predict_one(u, indices[j], mu, user_bias, item_bias, user_factors, item_factors)
            s2 += e * e
            s1 += abs(e)
        sq[u] = s2
        ab[u] = s1
    return _ordered_sum(sq), _ordered_sum(ab)


@njit(cache=True, parallel=True)
def squared_errors(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors):
    """Per-rating squared errors in CSR order (for per-stratum reports)."""
    n_rows = indptr.shape[0] - 1
    out = np.empty(indices.shape[0], dtype=np.float64)
    for u in prange(n_rows):
        for j in range(indptr[u], indptr[u + 1]):
            e = data[j] - predict_one(u, indices[j], mu, user_bias, item_bias, user_factors, item_factors)
            out[j] = e * e
    return out


@njit(cache=True, parallel=True)
def predict_pairs(users, items, mu, user_bias, item_bias, user_factors, item_factors):
    """Predicted ratings for parallel arrays of (user index, item index); negative index = unknown."""
    out = np.empty(users.shape[0], dtype=np.float64)
    big_u = user_bias.shape[0]
    big_i = item_bias.shape[0]
    for j in prange(users.shape[0]):
        u = users[j] if users[j] >= 0 else big_u
        i = items[j] if items[j] >= 0 else big_i
        out[j] = predict_one(u, i, mu, user_bias, item_bias, user_factors, item_factors)
    return out


@njit(cache=True, parallel=True)
def sum_squares(x):
    """``sum x^2`` over a 1-D or 2-D array, reduced per row in fixed order."""
    n = x.shape[0]
    if n == 0:
        return 0.0
    part = np.zeros(n, dtype=np.float64)
    flat = x.reshape(n, -1)
    for r in prange(n):
        s = 0.0
        for k in range(flat.shape[1]):
            v = np.float64(flat[r, k])
            s += v * v
        part[r] = s
    return _ordered_sum(part)
