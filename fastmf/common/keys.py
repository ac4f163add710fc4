"""Membership of (row, column) pairs in a CSR pattern through sorted integer keys.

Entry ``(u, i)`` of a matrix with ``n_items`` columns has key ``u * n_items + i``; the
keys of a CSR matrix with sorted rows are sorted, so membership is a binary search.
"""

from __future__ import annotations

import numpy as np


def positive_keys(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> np.ndarray:
    """Keys ``u * n_items + i`` of the entries of a CSR matrix (sorted when its rows are)."""
    return np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr)) * n_items + indices


def contains_sorted(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` occurs in the sorted array ``keys``."""
    if keys.size == 0:
        return np.zeros(values.shape, dtype=bool)
    at = np.minimum(np.searchsorted(keys, values), keys.size - 1)
    return keys[at] == values


def row_entries(indptr, indices, rows):
    """``(q, value)`` for every entry of CSR rows ``rows[q]``, grouped by ``q``, in CSR order."""
    starts = indptr[rows].astype(np.int64)
    counts = indptr[rows + 1].astype(np.int64) - starts
    owner = np.repeat(np.arange(rows.shape[0]), counts)
    first = np.cumsum(counts) - counts
    pos = np.arange(owner.shape[0]) - first[owner] + starts[owner]
    return owner, indices[pos].astype(np.int64)
