"""NumPy reference of the rating-error metrics (float64): see :mod:`fastmf.kernels.metrics`.

Scores are ``s = mu + b_u + b_i + U_u . V_i`` and predicted ratings ``clip(s, lo, hi)``.
A user or item index at or past the end of the model's arrays (an id first seen in the
test data) is cold: it contributes no bias and no factors. :func:`predict_pairs` also reads a negative
index as unknown, hence cold. Everything is computed in float64 (the kernels
accumulate in float64 too; they multiply float32 factors in float32, so the two
backends agree to rounding, not bit for bit).
"""

from __future__ import annotations

import numpy as np

__all__ = ["error_sums", "squared_errors", "predict_pairs", "sum_squares"]

#: ratings per vectorised chunk: the gathered factor rows never exceed ``CHUNK x D`` floats
CHUNK = 1 << 20


def _predict(users, items, mu, user_bias, item_bias, user_factors, item_factors):
    """float64 predictions for index arrays; an index ``>=`` the array length is cold."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    ku = users < user_bias.shape[0]
    ki = items < item_bias.shape[0]
    pred = np.full(users.shape[0], mu, dtype=np.float64)
    pred[ku] += user_bias[users[ku]]
    pred[ki] += item_bias[items[ki]]
    both = ku & ki
    pred[both] += np.einsum(
        "ij,ij->i",
        user_factors[users[both]].astype(np.float64, copy=False),
        item_factors[items[both]].astype(np.float64, copy=False),
    )
    return pred


def _row_chunks(indptr):
    """``(lo, hi)`` row ranges of about ``CHUNK`` ratings each (whole rows), covering every rating."""
    n_rows = indptr.shape[0] - 1
    cuts = np.searchsorted(indptr, np.arange(0, indptr[-1], CHUNK), side="right") - 1
    bounds = np.unique(np.concatenate([cuts, [n_rows]]))
    return zip(bounds[:-1].tolist(), bounds[1:].tolist())


def _chunk_scores(indptr, indices, data, first, last, arrays):
    """Ratings and scores (float64) of the ratings of rows ``first:last``."""
    users = np.repeat(np.arange(first, last), np.diff(indptr[first : last + 1]))
    items = indices[indptr[first] : indptr[last]]
    return data[indptr[first] : indptr[last]].astype(np.float64), _predict(users, items, *arrays)


def error_sums(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi):
    """``(sum (r - s)^2, sum (r - clip(s, lo, hi))^2)`` over all ratings of the CSR matrix.

    Vectorised over chunks of about ``CHUNK`` ratings (whole rows).
    """
    arrays = (mu, user_bias, item_bias, user_factors, item_factors)
    raw = clipped = 0.0
    for first, last in _row_chunks(indptr):
        r, s = _chunk_scores(indptr, indices, data, first, last, arrays)
        err = r - s
        raw += float(err @ err)
        err = r - np.clip(s, lo, hi)
        clipped += float(err @ err)
    return raw, clipped


def squared_errors(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors, lo, hi):
    """Per-rating squared errors ``(r - clip(s, lo, hi))^2`` (float64) in CSR order (for per-stratum reports)."""
    arrays = (mu, user_bias, item_bias, user_factors, item_factors)
    out = np.empty(indices.shape[0], dtype=np.float64)
    for first, last in _row_chunks(indptr):
        r, s = _chunk_scores(indptr, indices, data, first, last, arrays)
        out[indptr[first] : indptr[last]] = np.square(r - np.clip(s, lo, hi))
    return out


def predict_pairs(users, items, mu, user_bias, item_bias, user_factors, item_factors, lo, hi):
    """Predicted ratings ``clip(s, lo, hi)`` (float64) for parallel arrays of (user index, item index); a
    negative index is unknown."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    users = np.where(users >= 0, users, user_bias.shape[0])
    items = np.where(items >= 0, items, item_bias.shape[0])
    return np.clip(_predict(users, items, mu, user_bias, item_bias, user_factors, item_factors), lo, hi)


def sum_squares(x):
    """``sum x^2`` (a float, computed in float64) over a 1-D or 2-D array, reduced per row then over rows."""
    x = np.asarray(x)
    n = x.shape[0]
    if n == 0:
        return 0.0
    flat = x.reshape(n, -1).astype(np.float64, copy=False)
    return float(np.einsum("ij,ij->i", flat, flat).sum())
