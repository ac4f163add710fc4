"""Parallel top-K selection over rows of a score matrix, with per-row exclusions."""

import numpy as np
from numba import njit, prange

__all__ = ["topk_rows"]


@njit(cache=True, inline="always")
def _swap(keys, vals, a, b):
    keys[a], keys[b] = keys[b], keys[a]
    vals[a], vals[b] = vals[b], vals[a]


@njit(cache=True, inline="always")
def _sift_down(keys, vals, k, pos):
    """Restore the min-heap property (by ``keys``) of ``keys[:k]`` from ``pos`` down."""
    while True:
        left = 2 * pos + 1
        if left >= k:
            return
        small = left
        right = left + 1
        if right < k and keys[right] < keys[left]:
            small = right
        if keys[small] >= keys[pos]:
            return
        _swap(keys, vals, small, pos)
        pos = small


@njit(cache=True, inline="always")
def _sift_up(keys, vals, pos):
    """Restore the min-heap property from ``pos`` up (after an insertion there)."""
    while pos > 0:
        parent = (pos - 1) // 2
        if keys[pos] >= keys[parent]:
            return
        _swap(keys, vals, pos, parent)
        pos = parent


@njit(cache=True, parallel=True)
def topk_rows(scores, k, excl_indptr, excl_indices, row_of_query, allowed, out_idx, out_score):
    """Best ``k`` columns of each row of ``scores``, best first.

    Row ``q`` excludes ``excl_indices[excl_indptr[r]:excl_indptr[r + 1]]`` with
    ``r = row_of_query[q]`` (``r < 0``: no exclusions) and every column where
    ``allowed`` is False. Unfilled slots (fewer than ``k`` eligible columns) get
    index -1 and score -inf. A bounded min-heap keeps this ``O(n log k)`` per row.
    """
    n_q, n_cols = scores.shape
    for q in prange(n_q):
        keys = np.full(k, -np.inf)
        vals = np.full(k, -1, dtype=np.int64)
        r = row_of_query[q]
        lo = 0
        hi = 0
        if r >= 0 and r < excl_indptr.shape[0] - 1:
            lo = excl_indptr[r]
            hi = excl_indptr[r + 1]
        # exclusions are sorted: walk them alongside the columns
        ptr = lo
        filled = 0
        for c in range(n_cols):
            while ptr < hi and excl_indices[ptr] < c:
                ptr += 1
            if ptr < hi and excl_indices[ptr] == c:
                continue
            if not allowed[c]:
                continue
            sc = scores[q, c]
            if filled < k:
                keys[filled] = sc
                vals[filled] = c
                _sift_up(keys, vals, filled)
                filled += 1
            elif sc > keys[0]:
                keys[0] = sc
                vals[0] = c
                _sift_down(keys, vals, k, 0)
        # empty slots last, then pop the minimum into the lowest free slot from the end
        for slot in range(filled, k):
            out_idx[q, slot] = -1
            out_score[q, slot] = -np.inf
        for slot in range(filled - 1, -1, -1):
            out_idx[q, slot] = vals[0]
            out_score[q, slot] = keys[0]
            last = slot
            keys[0] = keys[last]
            vals[0] = vals[last]
            _sift_down(keys, vals, last, 0)
