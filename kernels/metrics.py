"""Error metrics and objectives of rating models, computed in parallel over CSR rows.

Scores are ``s = mu + b_u + b_i + U_u . V_i``; a user or item index beyond the
model's arrays (an id first seen in the test data) contributes nothing (it is
cold: zero bias and zero factors). A predicted rating is the score clipped to the
training scale, ``clip(s, lo, hi)`` (``lo = -inf, hi = inf``: no clipping): for a
rating ``r`` inside ``[lo, hi]``, ``|r - clip(s)| <= |r - s|``, so clipping never
increases an error. Per-row partial sums are reduced in a fixed order, so results
do not depend on the number of threads.
"""

import numpy as np
from numba import njit, prange

from fastmf.common.threads import runs_serially
from fastmf.kernels._linalg import FAST

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


@njit(cache=True, inline="always")
def clip(p, lo, hi):
    """``p`` clipped to ``[lo, hi]``."""
    return min(max(p, lo), hi)


@njit(cache=True)
def _ordered_sum(values):
    """``sum(values)`` left to right: a sequential function, so that a parallel caller's reduction
    does not depend on how many threads ran it."""
    total = 0.0
    for v in values:
        total += v
    return total


def error_sums(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi):
    """``(sum (r - s)^2, sum (r - clip(s, lo, hi))^2)`` over all ratings of the CSR matrix: the squared
    error of the scores (the training objective's) and of the predicted ratings. Per-row sums (on this
    thread for few ratings, :func:`fastmf.common.threads.runs_serially`), reduced in row order."""
    n_rows = indptr.shape[0] - 1
    raw = np.zeros(n_rows, dtype=np.float64)
    clipped = np.zeros(n_rows, dtype=np.float64)
    args = (indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi, raw, clipped)
    if runs_serially(indices.shape[0]):
        _row_errors(0, n_rows, *args)
    else:
        _row_errors_parallel(*args)
    return _ordered_sum(raw), _ordered_sum(clipped)


#: rows per task of :func:`_row_errors_parallel`
ROWS_PER_TASK = 256


@njit(cache=True, parallel=True)
def _row_errors_parallel(
    indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi, raw, clipped
):
    """:func:`_row_errors` of every row, in tasks of ``ROWS_PER_TASK`` rows run in parallel."""
    n_rows = indptr.shape[0] - 1
    for task in prange((n_rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        first = task * ROWS_PER_TASK
        last = min(first + ROWS_PER_TASK, n_rows)
        _row_errors(
            first,
            last,
            indptr,
            indices,
            data,
            mu,
            user_bias,
            item_bias,
            user_factors,
            item_factors,
            lo,
            hi,
            raw,
            clipped,
        )


@njit(cache=True, fastmath=FAST)
def _row_errors(
    first, last, indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi, raw, clipped
):
    """Rows ``first .. last - 1``: ``raw[u] = sum (r - s)^2`` and ``clipped[u] = sum (r - clip(s, lo, hi))^2``.

    :func:`predict_one` with the user's part hoisted out of the row's loop and the dot product summed on
    its own: LLVM then vectorises it, which made the sums over the ml-32m shape 0.40 -> 0.18 s.
    """
    d = item_factors.shape[1]
    n_items = item_bias.shape[0]
    for u in range(first, last):
        known_u = u < user_bias.shape[0]
        base = mu + user_bias[u] if known_u else mu
        s2 = 0.0
        c2 = 0.0
        for j in range(indptr[u], indptr[u + 1]):
            i = indices[j]
            p = base
            if i < n_items:
                p += item_bias[i]
                if known_u:
                    dot = 0.0
                    for k in range(d):
                        dot += user_factors[u, k] * item_factors[i, k]
                    p += dot
            e = data[j] - p
            s2 += e * e
            e = data[j] - clip(p, lo, hi)
            c2 += e * e
        raw[u] = s2
        clipped[u] = c2


def squared_errors(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi):
    """Per-rating squared errors ``(r - clip(s, lo, hi))^2`` in CSR order (for per-stratum reports), by rows
    (on this thread for few ratings, :func:`fastmf.common.threads.runs_serially`)."""
    out = np.empty(indices.shape[0], dtype=np.float64)
    args = (indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi, out)
    if runs_serially(indices.shape[0]):
        _row_squared_errors(0, indptr.shape[0] - 1, *args)
    else:
        _row_squared_errors_parallel(*args)
    return out


@njit(cache=True, parallel=True)
def _row_squared_errors_parallel(
    indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi, out
):
    """:func:`_row_squared_errors` of every row, in tasks of ``ROWS_PER_TASK`` rows run in parallel."""
    n_rows = indptr.shape[0] - 1
    for task in prange((n_rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        first = task * ROWS_PER_TASK
        last = min(first + ROWS_PER_TASK, n_rows)
        _row_squared_errors(
            first, last, indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi, out
        )


@njit(cache=True)
def _row_squared_errors(
    first, last, indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi, out
):
    """``out[j] = (r_j - clip(s_j, lo, hi))^2`` for the ratings ``j`` of rows ``first .. last - 1``."""
    for u in range(first, last):
        for j in range(indptr[u], indptr[u + 1]):
            e = data[j] - clip(predict_one(u, indices[j], mu, user_bias, item_bias, user_factors, item_factors), lo, hi)
            out[j] = e * e


@njit(cache=True, parallel=True)
def predict_pairs(users, items, mu, user_bias, item_bias, user_factors, item_factors, lo, hi):
    """Predicted ratings ``clip(s, lo, hi)`` for parallel arrays of (user index, item index); a negative
    index is unknown."""
    out = np.empty(users.shape[0], dtype=np.float64)
    big_u = user_bias.shape[0]
    big_i = item_bias.shape[0]
    for j in prange(users.shape[0]):
        u = users[j] if users[j] >= 0 else big_u
        i = items[j] if items[j] >= 0 else big_i
        out[j] = clip(predict_one(u, i, mu, user_bias, item_bias, user_factors, item_factors), lo, hi)
    return out


def sum_squares(x):
    """``sum x^2`` in float64 over a 1-D or 2-D array, reduced per row then over the rows in a fixed order.

    NumPy, in chunks of ``SQUARES_CHUNK`` rows (no float64 copy of a whole factor table): a pass over
    the factors takes milliseconds either way, while compiling a loop for each of its two signatures
    (factors and biases) cost 0.4-0.7 s of a first run."""
    x = np.asarray(x)
    n = x.shape[0]
    if n == 0:
        return 0.0
    flat = x.reshape(n, -1)
    part = np.empty(n, dtype=np.float64)
    for lo in range(0, n, SQUARES_CHUNK):
        block = flat[lo : lo + SQUARES_CHUNK].astype(np.float64)
        np.einsum("ij,ij->i", block, block, out=part[lo : lo + SQUARES_CHUNK])
    return float(part.sum())


#: rows of a table converted to float64 at a time by :func:`sum_squares`
SQUARES_CHUNK = 1 << 14
