"""Ranking evaluation for every model.

Positives are the ratings ``>= threshold`` (all ratings when ``threshold`` is
None or 0), or every row of an implicit (user, item[, weight]) table
(``Dataset.implicit``), whatever the threshold. A model is judged on the
*test positives* of each user: test ratings ``>= threshold`` that are not
also training positives.

Only *known* items are ranked: items with at least one training positive (of
any user), the items a ranker is trained on. An item without one (new in the
test data, or rated only below the threshold in training) is dropped both from
the candidates and from the test positives, as cornac's ``ranking_eval``
(``exclude_unknowns=True``, its default) and LensKit (items known to the
model) do; ``ranking_unknown_positives`` counts the test positives dropped so.
Each evaluated user ranks every known item they have no training positive for,
and the metrics of :mod:`fastmf.kernels.ranking` are averaged over the users
with at least one (known) test positive:

* ``auc``: exact per-user AUC over all eligible items (not sampled);
* ``precision@K``, ``recall@K``, ``ndcg@K``, ``map@K`` for K in 5, 10, 20;
* ``sampled_auc``: the ML-32M report's protocol, reported beside it for
  comparison only: 1,000 random test users, one random test positive and one
  random known non-positive (neither a training nor a test positive) each, and one
  AUC over the pooled 1,000 positive and 1,000 negative scores (pairs across
  users count too, so it is far easier than the per-user AUC).

Rating models (ALS) rank by predicted rating, rankers (BPR, most popular) by
their score, through the same ``_score_batch`` used by ``recommend``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.common.keys import contains_sorted, positive_keys
from fastmf.common.layout import SCORE_BATCH
from fastmf.data_prep.dataset import Dataset
from fastmf.kernels import metrics as km
from fastmf.kernels import ranking as kr
from fastmf.kernels.topk import topk_rows

KS = (5, 10, 20)
SAMPLED_AUC_USERS = 1000
METRIC_NAMES = ("precision", "recall", "ndcg", "map")  # column order of kernels.ranking


def positives(data: Dataset, threshold: float | None) -> Dataset:
    """The ratings ``>= threshold`` of ``data`` (all of them when ``threshold`` is None or 0 or ``data`` is an
    implicit table)."""
    if not threshold or data.implicit:
        return data
    return data.subset(data.data >= threshold)


@dataclass
class RankingTask:
    """What a ranking evaluation needs, on the model's indices.

    ``train_*``: training positives (CSR over the model's users, sorted rows);
    ``test_*``: test positives on known items that are not training positives
    (CSR over at least the model's users); ``n_items``: width of the score rows
    (the model's items plus items first seen in the test data); ``known``:
    whether each of those has a training positive (the items ranked);
    ``users``: the model's users with at least one such test positive;
    ``cold_users``: test users with positives the model has never seen (not
    evaluated); ``unknown_positives``: test positives of the model's users on
    items that are not known (dropped).
    """

    train_indptr: np.ndarray
    train_indices: np.ndarray
    test_indptr: np.ndarray
    test_indices: np.ndarray
    n_items: int
    known: np.ndarray
    users: np.ndarray
    cold_users: int
    unknown_positives: int

    @classmethod
    def build(cls, model, train_pos: tuple, test: Dataset, threshold: float | None) -> RankingTask:
        """``train_pos = (indptr, indices)`` of the training positives; ``test`` aligned to the model."""
        train_indptr, train_indices = train_pos
        test = positives(test, threshold)
        n_items = max(model.n_items, test.n_items)
        rows = test.user_of_entry.astype(np.int64)
        known = np.bincount(train_indices, minlength=n_items) > 0
        # drop test positives that are training positives (possible with a separate --test file)
        fresh = ~contains_sorted(positive_keys(train_indptr, train_indices, n_items), rows * n_items + test.indices)
        cold_users = np.unique(rows[fresh & (rows >= model.n_users)]).size
        unknown = int((fresh & ~known[test.indices] & (rows < model.n_users)).sum())
        keep = fresh & known[test.indices]
        counts = np.bincount(rows[keep], minlength=test.n_users)
        test_indptr = np.zeros(test.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=test_indptr[1:])
        with_pos = np.flatnonzero(counts)
        return cls(
            train_indptr,
            train_indices,
            test_indptr,
            test.indices[keep],
            n_items,
            known,
            with_pos[with_pos < model.n_users].astype(np.int64),
            int(cold_users),
            unknown,
        )

    @cached_property
    def keys(self) -> tuple:
        """Sorted keys ``u * n_items + i`` of the training and of the test positives."""
        return (
            positive_keys(self.train_indptr, self.train_indices, self.n_items),
            positive_keys(self.test_indptr, self.test_indices, self.n_items),
        )

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training or a test positive."""
        want = users.astype(np.int64) * self.n_items + items
        return contains_sorted(self.keys[0], want) | contains_sorted(self.keys[1], want)

    def sample_users(self, n: int, seed: int) -> RankingTask:
        """The same task on at most ``n`` of its users, drawn once with ``seed``."""
        if self.users.size <= n:
            return self
        users = np.sort(np.random.default_rng(seed).choice(self.users, n, replace=False))
        return RankingTask(
            self.train_indptr,
            self.train_indices,
            self.test_indptr,
            self.test_indices,
            self.n_items,
            self.known,
            users,
            self.cold_users,
            self.unknown_positives,
        )


def score_rows(model, users: np.ndarray, n_items: int) -> np.ndarray:
    """float32 scores ``(len(users), n_items)``; items beyond the model's get the cold-item score."""
    scores = model._score_batch(users)
    if n_items == model.n_items:
        return np.ascontiguousarray(scores, dtype=np.float32)
    out = np.empty((users.size, n_items), dtype=np.float32)
    out[:, : model.n_items] = scores
    # an unknown item has zero bias and factors: the model's (unclipped) score for item index -1
    out[:, model.n_items :] = km.predict_pairs(
        users, np.full(users.size, -1, dtype=np.int64), *model._model_arrays(), -np.inf, np.inf
    )[:, None]
    return out


def ranking_report(model, task: RankingTask, ks=KS, seed: int = 0, sampled_users: int = SAMPLED_AUC_USERS) -> dict:
    """``auc``, ``sampled_auc`` and ``precision@K``/``recall@K``/``ndcg@K``/``map@K`` of ``model`` on ``task``."""
    ks = np.asarray(sorted(set(int(k) for k in ks)), dtype=np.int64)
    if ks.size == 0 or ks[0] < 1:
        raise FastMFError("ranking cut-offs K must be positive integers")
    users = task.users
    metrics = np.full((users.size, ks.size, len(METRIC_NAMES)), np.nan)
    auc = np.full(users.size, np.nan)
    kmax = int(ks[-1])
    for lo in range(0, users.size, SCORE_BATCH):
        batch = users[lo : lo + SCORE_BATCH]
        scores = score_rows(model, batch, task.n_items)
        top = np.empty((batch.size, kmax), dtype=np.int64)
        top_scores = np.empty((batch.size, kmax), dtype=np.float64)
        topk_rows(scores, kmax, task.train_indptr, task.train_indices, batch, task.known, top, top_scores)
        kr.user_metrics(
            scores,
            batch,
            top,
            ks,
            task.test_indptr,
            task.test_indices,
            task.train_indptr,
            task.train_indices,
            task.known,
            metrics[lo : lo + batch.size],
            auc[lo : lo + batch.size],
        )
    out = {
        "auc": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
        "sampled_auc": sampled_auc(model, task, sampled_users, seed),
    }
    for m, k in enumerate(ks):
        for c, name in enumerate(METRIC_NAMES):
            out[f"{name}@{k}"] = float(metrics[:, m, c].mean()) if users.size else float("nan")
    out["ranking_users"] = int(users.size)
    out["test_positives"] = int(task.test_indptr[users + 1].sum() - task.test_indptr[users].sum())
    out["ranking_cold_users"] = task.cold_users
    out["ranking_unknown_positives"] = task.unknown_positives
    return out


def sampled_pairs(task: RankingTask, n_users: int = SAMPLED_AUC_USERS, seed: int = 0):
    """``(users, positives, negatives)`` of the report's protocol: ``n_users`` distinct random test users
    (all of them if there are fewer), one random test positive and one random known non-positive item each."""
    known = np.flatnonzero(task.known)
    counts = np.diff(task.train_indptr)[task.users] + np.diff(task.test_indptr)[task.users]
    candidates = task.users[counts < known.size]  # users with at least one known non-positive item
    rng = np.random.default_rng(seed)
    users = rng.choice(candidates, min(n_users, candidates.size), replace=False)
    lo, hi = task.test_indptr[users], task.test_indptr[users + 1]
    pos = task.test_indices[lo + (rng.random(users.size) * (hi - lo)).astype(np.int64)].astype(np.int64)
    neg = np.empty(users.size, dtype=np.int64)
    todo = np.arange(users.size)
    while todo.size:  # redraw the negatives that hit a training or test positive
        neg[todo] = known[rng.integers(0, known.size, todo.size)]
        todo = todo[task.is_positive(users[todo], neg[todo])]
    return users, pos, neg


def pooled_auc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """Share of all (positive, negative) score pairs ordered correctly, ties counting 0.5."""
    neg = np.sort(neg_scores)
    below = np.searchsorted(neg, pos_scores, side="left")
    tied = np.searchsorted(neg, pos_scores, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (pos_scores.size * neg.size))


def sampled_auc(model, task: RankingTask, n_users: int = SAMPLED_AUC_USERS, seed: int = 0) -> float:
    """The ML-32M report's pooled AUC (module docstring) over :func:`sampled_pairs`; NaN without test users."""
    users, pos, neg = sampled_pairs(task, n_users, seed)
    if users.size == 0:
        return float("nan")
    pos_scores = np.empty(users.size)
    neg_scores = np.empty(users.size)
    for start in range(0, users.size, SCORE_BATCH):
        rows = np.arange(start, min(start + SCORE_BATCH, users.size))
        scores = score_rows(model, users[rows], task.n_items)
        pos_scores[rows] = scores[rows - start, pos[rows]]
        neg_scores[rows] = scores[rows - start, neg[rows]]
    return pooled_auc(pos_scores, neg_scores)


def ranking_metrics(model, train, test, threshold: float | None = 4.0, ks=KS, seed: int = 0) -> dict:
    """Ranking metrics of any fitted model: training positives from ``train``, test positives from ``test``.

    Both are ratings in any accepted form (re-indexed on the model's id maps);
    positives are ratings ``>= threshold``.
    """
    train_pos = positives(model.aligned(train), threshold)
    if train_pos.n_users != model.n_users:
        raise FastMFError("train holds users the model was not trained on: pass the model's training data")
    task = RankingTask.build(model, (train_pos.indptr, train_pos.indices), model.aligned(test), threshold)
    return ranking_report(model, task, ks, seed)
