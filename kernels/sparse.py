"""Sparse-matrix construction kernels: stable counting sorts from COO to CSR/CSC.

A CSR matrix sorted by (row, column) is built with two stable counting sorts,
first by column and then by row, so that entries with equal (row, column) stay
in input order (this is what duplicate resolution relies on). Each pass is O(nnz).
"""

import numpy as np
from numba import njit

__all__ = ["counting_sort", "take_int32", "coo_order", "latest_of_duplicates", "transpose_csr", "row_ids"]


@njit(cache=True)
def counting_sort(keys, n_keys):
    """Stable counting sort of integer ``keys`` in ``[0, n_keys)``.

    Returns ``(indptr, perm)``: ``indptr[k]:indptr[k+1]`` is the range of sorted
    positions holding key ``k`` and ``keys[perm]`` is sorted.
    """
    indptr = np.zeros(n_keys + 1, dtype=np.int64)
    for j in range(keys.shape[0]):
        indptr[keys[j] + 1] += 1
    for k in range(n_keys):
        indptr[k + 1] += indptr[k]
    fill = indptr[:-1].copy()
    perm = np.empty(keys.shape[0], dtype=np.int64)
    for j in range(keys.shape[0]):
        k = keys[j]
        perm[fill[k]] = j
        fill[k] += 1
    return indptr, perm


@njit(cache=True)
def take_int32(values, perm):
    out = np.empty(perm.shape[0], dtype=np.int32)
    for j in range(perm.shape[0]):
        out[j] = values[perm[j]]
    return out


@njit(cache=True)
def coo_order(rows, cols, n_rows, n_cols):
    """Permutation that sorts (rows, cols) lexicographically, stable among equal pairs."""
    _, by_col = counting_sort(cols, n_cols)
    rows_by_col = take_int32(rows, by_col)
    indptr, order = counting_sort(rows_by_col, n_rows)
    for j in range(order.shape[0]):  # compose in place: order = by_col[by_row]
        order[j] = by_col[order[j]]
    return indptr, order


@njit(cache=True)
def latest_of_duplicates(indptr, indices, timestamps, has_time):
    """Keep-mask over CSR entries: of each run of equal (row, column) keep one entry.

    The kept entry has the largest timestamp; ties (or no timestamps) keep the
    last one in input order. Returns (keep mask, number of dropped entries).
    """
    n = indices.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    dropped = 0
    for r in range(indptr.shape[0] - 1):
        start = indptr[r]
        end = indptr[r + 1]
        j = start
        while j < end:
            k = j + 1
            while k < end and indices[k] == indices[j]:
                k += 1
            if k - j > 1:
                best = j
                for m in range(j + 1, k):
                    if not has_time or timestamps[m] >= timestamps[best]:
                        best = m
                for m in range(j, k):
                    keep[m] = m == best
                dropped += k - j - 1
            j = k
    return keep, dropped


@njit(cache=True)
def transpose_csr(indptr, indices, data, n_cols):
    """CSC of a CSR matrix (rows within each column come out in ascending order)."""
    n_rows = indptr.shape[0] - 1
    col_ptr, perm = counting_sort(indices, n_cols)
    rows = np.empty(indices.shape[0], dtype=np.int32)
    for r in range(n_rows):
        for j in range(indptr[r], indptr[r + 1]):
            rows[j] = r
    out_idx = np.empty(indices.shape[0], dtype=np.int32)
    out_dat = np.empty(indices.shape[0], dtype=data.dtype)
    for p in range(perm.shape[0]):
        out_idx[p] = rows[perm[p]]
        out_dat[p] = data[perm[p]]
    return col_ptr, out_idx, out_dat


@njit(cache=True)
def row_ids(indptr):
    """Row index of every CSR entry (int32)."""
    out = np.empty(indptr[-1], dtype=np.int32)
    for r in range(indptr.shape[0] - 1):
        for j in range(indptr[r], indptr[r + 1]):
            out[j] = r
    return out
