"""NumPy reference of the per-user ranking metrics: the maths is in :mod:`fastmf.kernels.ranking`'s docstring.

Precision, recall, NDCG and AP at each ``K`` come from the top-``K`` lists
(cumulative sums over ranks, in the kernel's order of summation); the AUC is
exact, with ties counting 0.5, from a merge of each user's test-positive scores
with its eligible negatives' scores. Edge cases, as in the kernel: a user with
no test positives gets recall, NDCG, AP and AUC NaN (0/0) and precision 0; the
AUC is NaN when the user has no eligible negative.

NaN scores: here a comparison with NaN is false (a NaN positive or negative adds
nothing to the AUC's numerator, but still counts in ``|T| |N|``). The kernel does
that for users with at most ``SHORT`` test positives only; for longer lists its
binary search counts a NaN negative as below every positive and a NaN positive
as above every negative.
"""

from __future__ import annotations

import numpy as np

from fastmf.common.keys import row_entries

__all__ = ["user_metrics"]

# metric columns of the per-user output (as in the kernel)
PRECISION, RECALL, NDCG, AP = 0, 1, 2, 3


def _auc_numerators(pos_q, pos_s, neg_q, neg_s, n_q):
    """Per query, ``#{(p, n): s_p > s_n} + 0.5 #{(p, n): s_p = s_n}`` (NaN compares false).

    Scores are replaced by their ranks among all the batch's scores, so that
    ``q * n_ranks + rank`` sorts by query, then score: each negative then finds,
    by two binary searches, the positives of its query above and tied with it.
    """
    pos_ok = ~np.isnan(pos_s)
    neg_ok = ~np.isnan(neg_s)
    values = np.concatenate([pos_s[pos_ok], neg_s[neg_ok]])
    uniq, rank = np.unique(values, return_inverse=True)
    n_ranks = max(uniq.shape[0], 1)
    n_pos_ok = int(pos_ok.sum())
    pos_key = np.sort(pos_q[pos_ok] * n_ranks + rank[:n_pos_ok])
    q = neg_q[neg_ok]
    neg_key = q * n_ranks + rank[n_pos_ok:]
    lo = np.searchsorted(pos_key, neg_key, side="left")
    hi = np.searchsorted(pos_key, neg_key, side="right")
    end = np.searchsorted(pos_key, (q + 1) * n_ranks, side="left")
    return np.bincount(q, weights=(end - hi) + 0.5 * (hi - lo), minlength=n_q)


def user_metrics(
    scores, rows, top, ks, test_indptr, test_indices, train_indptr, train_indices, allowed, out_metrics, out_auc
):
    """Per-user metrics of the kernel module's docstring for the score rows of one batch.

    ``scores[q]`` are the scores of all items for user ``rows[q]``; ``top[q]``
    its best ``max(ks)`` eligible items (-1 for unfilled slots); ``ks`` ascending
    (the kernel leaves the columns of an out-of-order ``K`` unwritten). Test and
    training positives are CSR matrices over users with sorted rows; ``allowed``
    (one flag per item) marks the items ranked. Writes ``out_metrics[q, m, metric]``
    for ``K = ks[m]`` and ``out_auc[q]``.
    """
    scores = np.asarray(scores)
    n_q, n_items = scores.shape
    rows = np.asarray(rows, dtype=np.int64)
    ks = np.asarray(ks, dtype=np.int64)
    kmax = int(ks[-1])
    n_pos = (test_indptr[rows + 1] - test_indptr[rows]).astype(np.int64)
    pos_q, pos_c = row_entries(test_indptr, test_indices, rows)
    is_test = np.zeros((n_q, n_items), dtype=bool)
    is_test[pos_q, pos_c] = True

    # top-K metrics: h[q, k] = 1 if the item at rank k + 1 is a test positive
    items = np.asarray(top)[:, :kmax]
    h = ((items >= 0) & is_test[np.arange(n_q)[:, None], np.maximum(items, 0)]).astype(np.float64)
    rank = np.arange(kmax, dtype=np.float64)
    disc = 1.0 / np.log2(rank + 2.0)
    hits = np.cumsum(h, axis=1)
    dcg = np.cumsum(h * disc, axis=1)
    ap = np.cumsum(h * hits / (rank + 1.0), axis=1)
    idcg = np.cumsum(np.where(rank[None, :] < n_pos[:, None], disc, 0.0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for m, k in enumerate(ks.tolist()):
            out_metrics[:, m, PRECISION] = hits[:, k - 1] / k
            out_metrics[:, m, RECALL] = hits[:, k - 1] / n_pos
            out_metrics[:, m, NDCG] = dcg[:, k - 1] / idcg[:, k - 1]
            out_metrics[:, m, AP] = ap[:, k - 1] / np.minimum(k, n_pos)

    # exact AUC over the eligible negatives: allowed, not a training positive, not a test positive
    negative = np.repeat(np.asarray(allowed, dtype=bool)[None, :n_items], n_q, axis=0) & ~is_test
    train_q, train_c = row_entries(train_indptr, train_indices, rows)
    inside = (train_c >= 0) & (train_c < n_items)
    negative[train_q[inside], train_c[inside]] = False
    neg_q, neg_c = np.nonzero(negative)
    correct = _auc_numerators(
        pos_q, scores[pos_q, pos_c].astype(np.float64), neg_q, scores[neg_q, neg_c].astype(np.float64), n_q
    )
    n_neg = np.bincount(neg_q, minlength=n_q)
    with np.errstate(divide="ignore", invalid="ignore"):
        out_auc[:] = np.where(n_neg > 0, correct / (n_pos * n_neg), np.nan)
