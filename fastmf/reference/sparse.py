"""NumPy reference of the sparse-matrix construction kernels: see :mod:`fastmf.kernels.sparse`.

The kernels' stable counting sorts are stable ``np.argsort(kind="stable")``
calls here, so every permutation is the same, entry for entry: entries with
equal keys (equal (row, column) pairs) stay in input order, which is what
duplicate resolution relies on. Output dtypes are the kernels' (int64 ``indptr``
and permutations, int32 row and column indices).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "counting_sort",
    "take_int32",
    "coo_order",
    "lex_sorted",
    "latest_of_duplicates",
    "transpose_csr",
    "row_ids",
]


def _indptr(keys, n_keys):
    """``indptr`` (int64) of sorted ``keys`` in ``[0, n_keys)``: ``indptr[k + 1] - indptr[k]`` = count of ``k``."""
    keys = np.asarray(keys)
    if keys.size and (keys.min() < 0 or keys.max() >= n_keys):
        raise ValueError(f"keys must lie in [0, {n_keys})")  # the kernel writes out of bounds instead
    indptr = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_keys), out=indptr[1:])
    return indptr


def counting_sort(keys, n_keys):
    """Stable sort of integer ``keys`` in ``[0, n_keys)``: ``(indptr, perm)`` with ``keys[perm]`` sorted
    and ``indptr[k]:indptr[k+1]`` the sorted positions holding key ``k``."""
    return _indptr(keys, n_keys), np.argsort(keys, kind="stable").astype(np.int64, copy=False)


def take_int32(values, perm):
    """``values[perm]`` as int32 (out-of-range values wrap around, as the kernel's cast does)."""
    return np.asarray(values)[perm].astype(np.int32)


def coo_order(rows, cols, n_rows, n_cols):
    """``(indptr, order)``: ``order`` sorts (rows, cols) lexicographically, stable among equal pairs;
    ``indptr`` delimits the rows. Two stable passes, by column then by row, as in the kernel."""
    by_col = np.argsort(cols, kind="stable")
    rows_by_col = take_int32(rows, by_col)
    indptr = _indptr(rows_by_col, n_rows)
    return indptr, by_col[np.argsort(rows_by_col, kind="stable")].astype(np.int64, copy=False)


def lex_sorted(rows, cols):
    """Whether the (rows, cols) pairs are in lexicographic order (equal pairs allowed)."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    step = np.diff(rows)
    return bool(np.all((step > 0) | ((step == 0) & (np.diff(cols) >= 0))))


def latest_of_duplicates(indptr, indices, timestamps, has_time):
    """``(keep mask, number dropped)``: of each run of equal consecutive (row, column) entries keep one,
    the one with the largest timestamp, the last one in input order among ties (or without timestamps)."""
    n = indices.shape[0]
    keep = np.ones(n, dtype=bool)
    lo, hi = int(indptr[0]), int(indptr[-1])
    if hi - lo < 2:
        return keep, 0
    idx = indices[lo:hi]
    # a run starts at a row start or where the column changes
    starts = np.zeros(hi - lo, dtype=bool)
    row_start = np.asarray(indptr[:-1], dtype=np.int64) - lo
    starts[row_start[row_start < hi - lo]] = True  # row starts (empty rows share the next row's start)
    starts[1:] |= idx[1:] != idx[:-1]
    starts[0] = True
    run = np.cumsum(starts) - 1
    n_runs = int(run[-1]) + 1
    # order entries by (run, timestamp, position): the last of each run is the one kept
    order = np.arange(hi - lo)
    if has_time:
        order = np.argsort(timestamps[lo:hi], kind="stable")
        order = order[np.argsort(run[order], kind="stable")]
    last = np.flatnonzero(np.diff(run[order], append=n_runs))  # positions in ``order`` ending a run
    keep[lo:hi] = False
    keep[lo + order[last]] = True
    return keep, (hi - lo) - n_runs


def transpose_csr(indptr, indices, data, n_cols):
    """CSC ``(col_ptr, row indices (int32), data)`` of a CSR matrix; rows ascending within each column."""
    col_ptr, perm = counting_sort(indices, n_cols)
    return col_ptr, row_ids(indptr)[perm], np.asarray(data)[perm]


def row_ids(indptr):
    """Row index (int32) of every CSR entry."""
    indptr = np.asarray(indptr)
    return np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int32), np.diff(indptr))
