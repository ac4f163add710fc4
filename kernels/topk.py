"""Parallel top-K selection with per-row exclusions: over the rows of a score matrix
(:func:`topk_rows`), or fused with the scoring of a factor model (:func:`topk_dot`), which
never writes the ``users x items`` score matrix."""

import numpy as np
from numba import njit, prange

from fastmf.kernels._scoretile import TILE, pack_items, score_tile
from fastmf.kernels._scoretile import USERS as TILE_USERS

__all__ = ["topk_dot", "topk_rows"]

#: users scored together by :func:`topk_dot` (each item factor loaded once per block)
USER_BLOCK = 128
#: items per block of :func:`topk_dot`, whole tiles (the block's scores stay in L1, its factors in L2)
ITEM_BLOCK = 21 * TILE


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


def topk_dot(
    user_vecs, offsets, item_vecs_t, item_bias, k, excl_indptr, excl_indices, row_of_query, allowed, out_idx, out_score
):
    """:func:`topk_rows` of the scores ``s_qc = offsets[q] + item_bias[c] + user_vecs[q] . item_vecs_t[:, c]``
    without forming them: blocks of :data:`USER_BLOCK` users run in parallel and sweep the items in
    blocks of :data:`ITEM_BLOCK`, scoring a block into a buffer by register tiles of four users and
    ``TILE`` items (:func:`fastmf.kernels._scoretile.score_tile`, over the items and biases packed once
    by :func:`fastmf.kernels._scoretile.pack_items`; every score's multiply-adds in factor order from
    ``item_bias[c]``), which also flag each user whose heap minimum some score of the block exceeds;
    only a flagged user's block is offered, score by score, to its running heap. A user's offset does
    not change its ranking: it is added to the selected scores. ``item_vecs_t`` is the ``D x n_items``
    transpose of the item factors (float32). Exclusions and ties as :func:`topk_rows`.
    """
    _topk_dot(
        user_vecs,
        offsets,
        pack_items(item_vecs_t, item_bias),
        item_vecs_t.shape[1],
        k,
        excl_indptr,
        excl_indices,
        row_of_query,
        allowed,
        out_idx,
        out_score,
    )


@njit(cache=True, parallel=True)
def _topk_dot(
    user_vecs, offsets, packed, n_cols, k, excl_indptr, excl_indices, row_of_query, allowed, out_idx, out_score
):
    """:func:`topk_dot` over the packed item tiles."""
    n_q = user_vecs.shape[0]
    n_blocks = (n_q + USER_BLOCK - 1) // USER_BLOCK
    for blk in prange(n_blocks):
        q0 = blk * USER_BLOCK
        nb = min(USER_BLOCK, n_q - q0)
        keys = np.full((USER_BLOCK, k), -np.inf, dtype=np.float64)
        vals = np.full((USER_BLOCK, k), -1, dtype=np.int64)
        filled = np.zeros(USER_BLOCK, dtype=np.int64)
        floor = np.full(USER_BLOCK, -np.inf, dtype=np.float32)  # the heap minimum once full
        above = np.zeros(USER_BLOCK, dtype=np.uint8)
        ptr = np.zeros(USER_BLOCK, dtype=np.int64)
        hi = np.zeros(USER_BLOCK, dtype=np.int64)
        for b in range(nb):
            r = row_of_query[q0 + b]
            if r >= 0 and r < excl_indptr.shape[0] - 1:
                ptr[b] = excl_indptr[r]
                hi[b] = excl_indptr[r + 1]
        buf = np.zeros((USER_BLOCK, ITEM_BLOCK), dtype=np.float32)
        for c0 in range(0, n_cols, ITEM_BLOCK):
            nc = min(ITEM_BLOCK, n_cols - c0)
            above[:] = 0
            for t in range((nc + TILE - 1) // TILE):
                for g in range(0, nb, TILE_USERS):
                    tile = c0 // TILE + t
                    score_tile(packed, tile, user_vecs, q0 + g, buf, g, t * TILE, floor, above, min(TILE_USERS, nb - g))
            for b in range(nb):
                if above[b] == 0:  # most blocks hold no score above a full heap's minimum
                    continue
                row = buf[b]
                fb = filled[b]
                for j in range(nc):
                    sc = row[j]
                    if fb == k and not sc > keys[b, 0]:
                        continue
                    c = c0 + j
                    if not allowed[c]:
                        continue
                    while ptr[b] < hi[b] and excl_indices[ptr[b]] < c:
                        ptr[b] += 1
                    if ptr[b] < hi[b] and excl_indices[ptr[b]] == c:
                        continue
                    fb = _push(keys[b], vals[b], k, fb, sc, c)
                filled[b] = fb
                if fb == k:
                    floor[b] = keys[b, 0]
        for b in range(nb):
            _drain(keys[b], vals[b], k, filled[b], out_idx[q0 + b], out_score[q0 + b])
            off = np.float64(offsets[q0 + b])
            for slot in range(filled[b]):
                out_score[q0 + b, slot] += off
