"""Sparse-matrix construction kernels: stable counting sorts from COO to CSR/CSC.

A CSR matrix sorted by (row, column) is built with two stable counting sorts,
first by column and then by row, so that entries with equal (row, column) stay
in input order (this is what duplicate resolution relies on). Each pass is O(nnz).
"""

import numpy as np
from numba import njit

from fastmf.common.threads import runs_serially

__all__ = [
    "counting_sort",
    "take_int32",
    "coo_order",
    "lex_sorted",
    "latest_of_duplicates",
    "transpose_csr",
    "row_ids",
]


@njit(cache=True)
def _key_indptr(keys, n_keys):
    """``indptr`` (int64) of integer ``keys`` in ``[0, n_keys)``: ``indptr[k + 1] - indptr[k]`` counts key
    ``k``, so ``indptr[k]`` is where key ``k``'s entries start once sorted."""
    indptr = np.zeros(n_keys + 1, dtype=np.int64)
    for j in range(keys.shape[0]):
        indptr[keys[j] + 1] += 1
    for k in range(n_keys):
        indptr[k + 1] += indptr[k]
    return indptr


@njit(cache=True)
def counting_sort(keys, n_keys):
    """Stable counting sort of integer ``keys`` in ``[0, n_keys)``.

    Returns ``(indptr, perm)``: ``indptr[k]:indptr[k+1]`` is the range of sorted
    positions holding key ``k`` and ``keys[perm]`` is sorted.
    """
    indptr = _key_indptr(keys, n_keys)
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
    """Permutation that sorts (rows, cols) lexicographically, stable among equal pairs.

    Rows already in order (a file written user by user) need only each row's columns sorted: a stable
    sort per row, holding nothing beyond the permutation; otherwise two stable counting sorts.
    """
    if _nondecreasing(rows):
        return _order_within_rows(rows, cols, n_rows)
    _, by_col = counting_sort(cols, n_cols)
    rows_by_col = take_int32(rows, by_col)
    indptr, order = counting_sort(rows_by_col, n_rows)
    for j in range(order.shape[0]):  # compose in place: order = by_col[by_row]
        order[j] = by_col[order[j]]
    return indptr, order


@njit(cache=True)
def _nondecreasing(values):
    for j in range(1, values.shape[0]):
        if values[j] < values[j - 1]:
            return False
    return True


#: entries a row's stable sort orders by insertion before merging runs
RUN = 16


@njit(cache=True)
def _order_within_rows(rows, cols, n_rows):
    """:func:`coo_order` of rows in non-decreasing order: each row's entries stably sorted by column (runs of
    :data:`RUN` by insertion, then merged bottom-up; a row already in order is left as it is). Written out
    rather than ``np.argsort``, whose compilation costs more than a second on a first run."""
    indptr = _key_indptr(rows, n_rows)
    longest = 0
    for r in range(n_rows):
        longest = max(longest, indptr[r + 1] - indptr[r])
    order = np.empty(rows.shape[0], dtype=np.int64)
    tmp = np.empty(longest, dtype=np.int64)
    for r in range(n_rows):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        ordered = True
        for j in range(start, end):
            order[j] = j
            if j > start and cols[j] < cols[j - 1]:
                ordered = False
        if ordered:
            continue
        for lo in range(start, end, RUN):  # insertion sort of each run (stable: moves past greater only)
            for j in range(lo + 1, min(lo + RUN, end)):
                e = order[j]
                q = j
                while q > lo and cols[order[q - 1]] > cols[e]:
                    order[q] = order[q - 1]
                    q -= 1
                order[q] = e
        width = RUN
        while width < n:  # merge neighbouring runs (stable: the left one wins ties)
            for lo in range(0, n, 2 * width):
                mid = min(lo + width, n)
                hi = min(lo + 2 * width, n)
                a, b, o = lo, mid, lo
                while a < mid and b < hi:
                    if cols[order[start + b]] < cols[order[start + a]]:
                        tmp[o] = order[start + b]
                        b += 1
                    else:
                        tmp[o] = order[start + a]
                        a += 1
                    o += 1
                while a < mid:
                    tmp[o] = order[start + a]
                    a += 1
                    o += 1
                while b < hi:
                    tmp[o] = order[start + b]
                    b += 1
                    o += 1
            for j in range(n):
                order[start + j] = tmp[j]
            width *= 2
    return indptr, order


@njit(cache=True)
def lex_sorted(rows, cols):
    """Whether the (rows, cols) pairs are already in lexicographic order (equal pairs allowed): then
    :func:`coo_order`, being stable, would return the identity."""
    for j in range(1, rows.shape[0]):
        if rows[j] < rows[j - 1] or (rows[j] == rows[j - 1] and cols[j] < cols[j - 1]):
            return False
    return True


def latest_of_duplicates(indptr, indices, timestamps, has_time):
    """Keep-mask over CSR entries: of each run of equal (row, column) keep one entry.

    The kept entry has the largest timestamp; ties (or no timestamps) keep the
    last one in input order. Returns (keep mask, number of dropped entries). Whether any row has two
    equal columns side by side is asked of NumPy first (0.02 s for 32 M entries): most data has none,
    and then no kernel is compiled (0.4 s of a cold first run) nor run.
    """
    equal = indices[1:] == indices[:-1]
    bounds = indptr[1:-1]
    equal[bounds[(bounds > 0) & (bounds < indices.shape[0])] - 1] = False  # pairs across two rows
    if not equal.any():
        return np.ones(indices.shape[0], dtype=np.bool_), 0
    return _latest_of_duplicates(indptr, indices, timestamps, has_time)


@njit(cache=True)
def _latest_of_duplicates(indptr, indices, timestamps, has_time):
    """:func:`latest_of_duplicates` by one pass over the rows."""
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


def transpose_csr(indptr, indices, data, n_cols):
    """CSC ``(col_ptr, row indices (int32), data)`` of a CSR matrix (rows within each column come out in
    ascending order). Few entries (:func:`fastmf.common.threads.runs_serially`) are ordered by NumPy's
    stable sort, in milliseconds and with nothing to compile (0.4-0.8 s of a cold first run); more by
    :func:`_transpose_csr`. Both give the same arrays."""
    if runs_serially(indices.shape[0]):
        order = np.argsort(indices, kind="stable")
        col_ptr = np.zeros(n_cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(indices, minlength=n_cols), out=col_ptr[1:])
        return col_ptr, row_ids(indptr)[order], data[order]
    return _transpose_csr(indptr, indices, data, n_cols)


@njit(cache=True)
def _transpose_csr(indptr, indices, data, n_cols):
    """:func:`transpose_csr` by a counting sort that scatters every entry straight to its place, row by
    row: nothing is held beyond the output (no permutation)."""
    n_rows = indptr.shape[0] - 1
    col_ptr = _key_indptr(indices, n_cols)
    fill = col_ptr[:-1].copy()
    out_idx = np.empty(indices.shape[0], dtype=np.int32)
    out_dat = np.empty(indices.shape[0], dtype=data.dtype)
    for r in range(n_rows):
        for j in range(indptr[r], indptr[r + 1]):
            c = indices[j]
            p = fill[c]
            out_idx[p] = r
            out_dat[p] = data[j]
            fill[c] = p + 1
    return col_ptr, out_idx, out_dat


def row_ids(indptr):
    """Row index of every CSR entry (int32); NumPy's ``repeat`` of int32 row numbers runs as fast as a
    compiled loop (0.02 s for 32 M entries) and compiles nothing."""
    return np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int32), np.diff(indptr))
