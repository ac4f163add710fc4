"""NumPy reference of top-K selection over rows of a score matrix: see :mod:`fastmf.kernels.topk`.

Row ``q`` keeps its ``k`` best *eligible* columns, best first: a column is
eligible when ``allowed`` is True for it and it is not among the exclusions
``excl_indices[excl_indptr[r]:excl_indptr[r + 1]]`` of ``r = row_of_query[q]``
(``r < 0`` or past the last exclusion row: no exclusions). Slots left over when
fewer than ``k`` columns are eligible get index -1 and score -inf; an eligible
column whose score is -inf is returned with its own index.

Ties: the reference resolves them by column, lowest first, both for which of
several equal scores at the boundary make the list and for their order in it.
The kernel's bounded min-heap resolves ties in heap order instead, so the two
backends agree on the scores (always) and on the indices when the scores of a row
have no ties (the kernel never lets a later column displace an equal score, but
which of several equal scores it evicts, and their output order, depend on the
heap layout). A NaN score ranks as -inf here; in the kernel it breaks the heap
order, so its result is unspecified.
"""

from __future__ import annotations

import numpy as np

from fastmf.common.keys import row_entries

__all__ = ["topk_dot", "topk_rows"]


def topk_rows(scores, k, excl_indptr, excl_indices, row_of_query, allowed, out_idx, out_score):
    """Best ``k`` eligible columns of each row of ``scores``, best first, written to ``out_idx``/``out_score``.

    Unfilled slots get -1 and -inf; ties go to the lowest column (see the module docstring).
    Vectorised: the ``min(k, n_cols)``-th best key of each row by ``np.partition``,
    the tied boundary columns taken lowest first, then a stable sort of the ``k`` kept.
    """
    scores = np.asarray(scores)
    n_q, n_cols = scores.shape
    k = int(k)
    out_idx[:, :] = -1
    out_score[:, :] = -np.inf
    kk = min(k, n_cols)
    if n_q == 0 or kk <= 0:
        return
    # eligibility: allowed columns minus each query's exclusions
    eligible = np.repeat(np.asarray(allowed, dtype=bool)[None, :n_cols], n_q, axis=0)
    rows = np.asarray(row_of_query, dtype=np.int64)
    has_excl = np.flatnonzero((rows >= 0) & (rows < excl_indptr.shape[0] - 1))
    owner, cols = row_entries(excl_indptr, excl_indices, rows[has_excl])
    inside = (cols >= 0) & (cols < n_cols)
    eligible[has_excl[owner[inside]], cols[inside]] = False
    # ascending key: -score (NaN score -> +inf, i.e. ranked as -inf); NaN marks ineligible (sorts last)
    key = -scores.astype(np.float64)
    key[np.isnan(key)] = np.inf
    key[~eligible] = np.nan
    kth = np.partition(key, kk - 1, axis=1)[:, kk - 1 : kk]  # NaN when fewer than kk eligible columns
    below = key < kth
    tied = key == kth
    room = kk - below.sum(axis=1, keepdims=True)
    take = below | (tied & (np.cumsum(tied, axis=1) <= room))
    short = np.isnan(kth[:, 0])
    take[short] = eligible[short]
    # the kept columns of each row, in column order, then stably sorted by key (ties: lowest column first)
    q, c = np.nonzero(take)
    counts = np.bincount(q, minlength=n_q)
    slot = np.arange(q.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    sel_key = np.full((n_q, kk), np.nan)
    sel_col = np.full((n_q, kk), -1, dtype=np.int64)
    sel_key[q, slot] = key[q, c]
    sel_col[q, slot] = c
    order = np.argsort(sel_key, axis=1, kind="stable")
    best = np.take_along_axis(sel_col, order, axis=1)
    filled = best >= 0
    out_idx[:, :kk] = best
    out_score[:, :kk] = np.where(filled, scores[np.arange(n_q)[:, None], np.maximum(best, 0)], -np.inf)


def topk_dot(
    user_vecs, offsets, item_vecs_t, item_bias, k, excl_indptr, excl_indices, row_of_query, allowed, out_idx, out_score
):
    """:func:`topk_rows` of the scores ``offsets[q] + item_bias[c] + user_vecs[q] . item_vecs_t[:, c]``,
    formed in full (the kernel fuses the two steps)."""
    scores = np.asarray(offsets)[:, None] + np.asarray(item_bias)[None, :] + np.asarray(user_vecs) @ item_vecs_t
    topk_rows(scores, k, excl_indptr, excl_indices, row_of_query, allowed, out_idx, out_score)
