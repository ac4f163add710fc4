"""Ranking metrics over users, computed in parallel from a batch of score rows.

For a user ``u`` with test positives ``T`` (sorted item indices, none of them
a training positive) and training positives ``S``, the *eligible* items are
the allowed ones (``allowed[c]``: the items with a training positive) not in
``S``; ``T`` holds allowed items only. The top-``K`` list ``R`` holds the ``K`` best eligible
items by score (from :func:`fastmf.kernels.topk.topk_rows`), ``h_k = 1`` if
the item at rank ``k`` (1-based) is in ``T``:

* ``precision@K = sum_{k<=K} h_k / K``; ``recall@K = sum_{k<=K} h_k / |T|``;
* ``NDCG@K = DCG / IDCG`` with ``DCG = sum_{k<=K} h_k / log2(k + 1)`` (binary
  relevance) and ``IDCG = sum_{k<=min(K, |T|)} 1 / log2(k + 1)``;
* ``AP@K = sum_{k<=K} h_k precision@k / min(K, |T|)`` (MAP@K is its mean);
* ``AUC = (#{(p, n): s_p > s_n} + 0.5 #{(p, n): s_p = s_n}) / (|T| |N|)`` over
  every test positive ``p`` and every eligible non-positive ``n`` (eligible
  items not in ``T``): exact, over all items, not sampled. NaN when ``N`` is empty.

A slot of ``R`` that could not be filled (fewer than ``K`` eligible items)
counts as a miss. Results are per user, so their sums do not depend on the
number of threads.
"""

import math

import numpy as np
from numba import njit, prange

from fastmf.kernels._search import count_below, first_above, row_contains

__all__ = ["user_metrics"]

# metric columns of the per-user output
PRECISION, RECALL, NDCG, AP = 0, 1, 2, 3
#: users with at most this many test positives count them linearly in the AUC
SHORT = 16


@njit(cache=True, parallel=True)
def user_metrics(
    scores, rows, top, ks, test_indptr, test_indices, train_indptr, train_indices, allowed, out_metrics, out_auc
):
    """Per-user metrics of the module docstring for the score rows of one batch.

    ``scores[q]`` are the scores of all items for user ``rows[q]``; ``top[q]``
    its best ``max(ks)`` eligible items (-1 for unfilled slots); ``ks``
    ascending. Test and training positives are CSR matrices over users with
    sorted rows; ``allowed`` (one flag per item) marks the items ranked. Writes
    ``out_metrics[q, m, metric]`` for ``K = ks[m]`` and ``out_auc[q]``.
    """
    n_q, n_items = scores.shape
    n_k = ks.shape[0]
    for q in prange(n_q):
        u = rows[q]
        t0 = test_indptr[u]
        t1 = test_indptr[u + 1]
        n_pos = t1 - t0
        s0 = train_indptr[u]
        s1 = train_indptr[u + 1]
        # top-K metrics
        hits = 0
        dcg = 0.0
        ap = 0.0
        idcg = 0.0
        m = 0
        for k in range(ks[n_k - 1]):
            item = top[q, k]
            if item >= 0 and row_contains(test_indices, t0, t1, item):
                hits += 1
                dcg += 1.0 / math.log2(k + 2.0)
                ap += hits / (k + 1.0)
            if k < n_pos:
                idcg += 1.0 / math.log2(k + 2.0)
            while m < n_k and ks[m] == k + 1:
                out_metrics[q, m, PRECISION] = hits / ks[m]
                out_metrics[q, m, RECALL] = hits / n_pos
                out_metrics[q, m, NDCG] = dcg / idcg
                out_metrics[q, m, AP] = ap / min(ks[m], n_pos)
                m += 1
        # exact AUC: positives' scores sorted, then each eligible negative located among them
        pos_scores = np.empty(n_pos, dtype=np.float64)
        for p in range(n_pos):
            pos_scores[p] = scores[q, test_indices[t0 + p]]
        pos_scores.sort()
        correct = 0.0
        n_neg = 0
        tp = t0
        sp = s0
        for c in range(n_items):
            if not allowed[c]:
                continue
            while sp < s1 and train_indices[sp] < c:
                sp += 1
            if sp < s1 and train_indices[sp] == c:
                continue
            while tp < t1 and test_indices[tp] < c:
                tp += 1
            if tp < t1 and test_indices[tp] == c:
                continue
            n_neg += 1
            sc = scores[q, c]
            if n_pos <= SHORT:  # branch-free counts beat a binary search on short lists
                above = 0
                tied = 0
                for p in range(n_pos):
                    above += pos_scores[p] > sc
                    tied += pos_scores[p] == sc
                correct += above + 0.5 * tied
            else:
                below = count_below(pos_scores, 0, n_pos, sc)
                above = first_above(pos_scores, below, n_pos, sc)
                correct += (n_pos - above) + 0.5 * (above - below)
        out_auc[q] = correct / (n_pos * n_neg) if n_neg > 0 else np.nan
