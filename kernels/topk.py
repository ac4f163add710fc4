"""Parallel top-K selection with per-row exclusions: over the rows of a score matrix
(:func:`topk_rows`), or fused with the scoring of a factor model (:func:`topk_dot`), which
never writes the ``users x items`` score matrix."""

import numpy as np
from numba import njit, prange

__all__ = ["topk_dot", "topk_rows"]

#: users scored together by :func:`topk_dot` (each item factor loaded once per block)
USER_BLOCK = 8
#: items per block of :func:`topk_dot` (the block's scores stay in L1, its factors in L2)
ITEM_BLOCK = 512


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
            filled = _push(keys, vals, k, filled, scores[q, c], c)
        _drain(keys, vals, k, filled, out_idx[q], out_score[q])


@njit(cache=True, inline="always")
def _push(keys, vals, k, filled, score, col):
    """Offer ``(score, col)`` to the bounded min-heap ``keys[:filled]``; returns the new fill."""
    if filled < k:
        keys[filled] = score
        vals[filled] = col
        _sift_up(keys, vals, filled)
        return filled + 1
    if score > keys[0]:
        keys[0] = score
        vals[0] = col
        _sift_down(keys, vals, k, 0)
    return filled


@njit(cache=True, inline="always")
def _drain(keys, vals, k, filled, out_idx, out_score):
    """Write the heap best first: empty slots last (-1, -inf), then pop the minimum into the lowest
    free slot from the end."""
    for slot in range(filled, k):
        out_idx[slot] = -1
        out_score[slot] = -np.inf
    for slot in range(filled - 1, -1, -1):
        out_idx[slot] = vals[0]
        out_score[slot] = keys[0]
        keys[0] = keys[slot]
        vals[0] = vals[slot]
        _sift_down(keys, vals, slot, 0)


@njit(cache=True, parallel=True, fastmath={"contract"})
def topk_dot(
    user_vecs, offsets, item_vecs_t, item_bias, k, excl_indptr, excl_indices, row_of_query, allowed, out_idx, out_score
):
    """:func:`topk_rows` of the scores ``s_qc = offsets[q] + item_bias[c] + user_vecs[q] . item_vecs_t[:, c]``
    without forming them: blocks of :data:`USER_BLOCK` users run in parallel and sweep the items in
    blocks of :data:`ITEM_BLOCK`, scoring a block into a small buffer (passes of eight, then four,
    then single factors, each item factor row loaded once for the block's users and contiguous in the
    item direction so it vectorises; two users' chains of multiply-adds interleaved; every score's
    multiply-adds in factor order, as one rank-1 update per factor would do them). A vector pass then
    counts the block's scores above each full heap's minimum; only a block with some is offered, score
    by score, to the user's running heap. ``item_vecs_t`` is the ``D x n_items`` transpose of the
    item factors. Exclusions and ties as :func:`topk_rows`.
    """
    n_q, d = user_vecs.shape
    n_cols = item_vecs_t.shape[1]
    n_blocks = (n_q + USER_BLOCK - 1) // USER_BLOCK
    for blk in prange(n_blocks):
        q0 = blk * USER_BLOCK
        nb = min(USER_BLOCK, n_q - q0)
        keys = np.full((USER_BLOCK, k), -np.inf, dtype=np.float64)
        vals = np.full((USER_BLOCK, k), -1, dtype=np.int64)
        filled = np.zeros(USER_BLOCK, dtype=np.int64)
        floor = np.full(USER_BLOCK, -np.inf, dtype=np.float64)  # the heap minimum once full
        ptr = np.zeros(USER_BLOCK, dtype=np.int64)
        hi = np.zeros(USER_BLOCK, dtype=np.int64)
        for b in range(nb):
            r = row_of_query[q0 + b]
            if r >= 0 and r < excl_indptr.shape[0] - 1:
                ptr[b] = excl_indptr[r]
                hi[b] = excl_indptr[r + 1]
        buf = np.zeros((USER_BLOCK + 1, ITEM_BLOCK), dtype=item_vecs_t.dtype)  # + a spare row (pairs)
        for c0 in range(0, n_cols, ITEM_BLOCK):
            nc = min(ITEM_BLOCK, n_cols - c0)
            bias = item_bias[c0 : c0 + nc]
            for b in range(nb):
                row = buf[b]
                off = offsets[q0 + b]
                for j in range(nc):
                    row[j] = off + bias[j]
            # eight, then four factors a pass: each score is loaded and stored once per pass
            f = 0
            while f + 8 <= d:
                w0 = item_vecs_t[f, c0 : c0 + nc]
                w1 = item_vecs_t[f + 1, c0 : c0 + nc]
                w2 = item_vecs_t[f + 2, c0 : c0 + nc]
                w3 = item_vecs_t[f + 3, c0 : c0 + nc]
                w4 = item_vecs_t[f + 4, c0 : c0 + nc]
                w5 = item_vecs_t[f + 5, c0 : c0 + nc]
                w6 = item_vecs_t[f + 6, c0 : c0 + nc]
                w7 = item_vecs_t[f + 7, c0 : c0 + nc]
                for b in range(0, nb, 2):  # two users at once: two independent chains of multiply-adds
                    # an odd block's last user pairs with itself, its twin's scores going to a spare row
                    u = user_vecs[q0 + b]
                    x = user_vecs[q0 + min(b + 1, nb - 1)]
                    row = buf[b]
                    other = buf[b + 1 if b + 1 < nb else USER_BLOCK]
                    for j in range(nc):
                        t = row[j]
                        s = other[j]
                        t += u[f] * w0[j]
                        s += x[f] * w0[j]
                        t += u[f + 1] * w1[j]
                        s += x[f + 1] * w1[j]
                        t += u[f + 2] * w2[j]
                        s += x[f + 2] * w2[j]
                        t += u[f + 3] * w3[j]
                        s += x[f + 3] * w3[j]
                        t += u[f + 4] * w4[j]
                        s += x[f + 4] * w4[j]
                        t += u[f + 5] * w5[j]
                        s += x[f + 5] * w5[j]
                        t += u[f + 6] * w6[j]
                        s += x[f + 6] * w6[j]
                        t += u[f + 7] * w7[j]
                        s += x[f + 7] * w7[j]
                        row[j] = t
                        other[j] = s
                f += 8
            while f + 4 <= d:
                v0 = item_vecs_t[f, c0 : c0 + nc]
                v1 = item_vecs_t[f + 1, c0 : c0 + nc]
                v2 = item_vecs_t[f + 2, c0 : c0 + nc]
                v3 = item_vecs_t[f + 3, c0 : c0 + nc]
                for b in range(nb):
                    a0 = user_vecs[q0 + b, f]
                    a1 = user_vecs[q0 + b, f + 1]
                    a2 = user_vecs[q0 + b, f + 2]
                    a3 = user_vecs[q0 + b, f + 3]
                    row = buf[b]
                    for j in range(nc):  # the same multiply-adds in the same order as one factor a pass
                        t = row[j]
                        t += a0 * v0[j]
                        t += a1 * v1[j]
                        t += a2 * v2[j]
                        t += a3 * v3[j]
                        row[j] = t
                f += 4
            for g in range(f, d):
                v = item_vecs_t[g, c0 : c0 + nc]
                for b in range(nb):
                    a = user_vecs[q0 + b, g]
                    row = buf[b]
                    for j in range(nc):
                        row[j] += a * v[j]
            for b in range(nb):
                row = buf[b]
                fb = filled[b]
                low = floor[b]
                if fb == k:  # most blocks hold no score above the heap's minimum: one vector pass says so
                    above = 0
                    for j in range(nc):
                        above += row[j] > low
                    if above == 0:
                        continue
                for j in range(nc):
                    sc = row[j]
                    if fb == k and not sc > low:
                        continue
                    c = c0 + j
                    if not allowed[c]:
                        continue
                    while ptr[b] < hi[b] and excl_indices[ptr[b]] < c:
                        ptr[b] += 1
                    if ptr[b] < hi[b] and excl_indices[ptr[b]] == c:
                        continue
                    fb = _push(keys[b], vals[b], k, fb, sc, c)
                    if fb == k:
                        low = keys[b, 0]
                filled[b] = fb
                floor[b] = low
        for b in range(nb):
            _drain(keys[b], vals[b], k, filled[b], out_idx[q0 + b], out_score[q0 + b])
