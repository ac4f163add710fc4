"""NumPy reference of the rating-error metrics (float64): see :mod:`fastmf.kernels.metrics`.

Predictions are ``mu + b_u + b_i + U_u . V_i``. A user or item index at or past
the end of the model's arrays (an id first seen in the test data) is cold: it
contributes no bias and no factors. :func:`predict_pairs` also reads a negative
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


def _chunk_errors(indptr, indices, data, lo, hi, arrays):
    """Errors ``r - prediction`` (float64) of the ratings of rows ``lo:hi``."""
    users = np.repeat(np.arange(lo, hi), np.diff(indptr[lo : hi + 1]))
    items = indices[indptr[lo] : indptr[hi]]
    return data[indptr[lo] : indptr[hi]].astype(np.float64) - _predict(users, items, *arrays)


def error_sums(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors):
    """``(sum of squared errors, sum of absolute errors)`` over all ratings of the CSR matrix.

    Vectorised over chunks of about ``CHUNK`` ratings (whole rows).
    """
    arrays = (mu, user_bias, item_bias, user_factors, item_factors)
    sse = sae = 0.0
    for lo, hi in _row_chunks(indptr):
        err = _chunk_errors(indptr, indices, data, lo, hi, arrays)
        sse += float(err @ err)
        sae += float(np.abs(err).sum())
    return sse, sae


def squared_errors(indptr, indices, data, mu, user_bias, item_bias, user_factors, item_factors):
    """Per-rating squared errors (float64) in CSR order (for per-stratum reports)."""
    arrays = (mu, user_bias, item_bias, user_factors, item_factors)
    out = np.empty(indices.shape[0], dtype=np.float64)
    for lo, hi in _row_chunks(indptr):
        out[indptr[lo] : indptr[hi]] = np.square(_chunk_errors(indptr, indices, data, lo, hi, arrays))
    return out


def predict_pairs(users, items, mu, user_bias, item_bias, user_factors, item_factors):
    """Predicted ratings (float64) for parallel arrays of (user index, item index); negative index = unknown."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    users = np.where(users >= 0, users, user_bias.shape[0])
    items = np.where(items >= 0, items, item_bias.shape[0])
    return _predict(users, items, mu, user_bias, item_bias, user_factors, item_factors)


def sum_squares(x):
    """``sum x^2`` (a float, computed in float64) over a 1-D or 2-D array, reduced per row then over rows."""
    x = np.asarray(x)
    n = x.shape[0]
    if n == 0:
        return 0.0
    flat = x.reshape(n, -1).astype(np.float64, copy=False)
    return float(np.einsum("ij,ij->i", flat, flat).sum())
