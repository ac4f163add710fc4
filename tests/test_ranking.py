"""Ranking metrics: the parallel kernels against a plain NumPy reference, closed forms, the sampled AUC."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats
from click.testing import CliRunner

import fastmf
from fastmf.cli import main
from fastmf.data_prep.dataset import Dataset
from fastmf.data_prep.splits import random_split
from fastmf.metrics.ranking import KS, RankingTask, pooled_auc, ranking_metrics, ranking_report, sampled_pairs
from fastmf.models.als import ALS
from fastmf.models.popular import MostPopular


class ScoreTable:
    """A stand-in model whose scores are a fixed matrix."""

    rating_model = False

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)
        self.n_users, self.n_items = self.scores.shape

    def _score_batch(self, users):
        return self.scores[users]


def reference_metrics(scores, train_rows, test_rows, ks):
    """Per-user metrics straight from the definitions (sorting, sets and pairwise comparisons).

    Only known items (with a training positive of some user) are ranked or counted as test positives;
    also returns the number of users evaluated and of test positives dropped for being on unknown items.
    """
    n_items = scores.shape[1]
    known = set().union(*map(set, train_rows))
    rows = []
    unknown = 0
    for u, (seen, test) in enumerate(zip(train_rows, test_rows)):
        fresh = set(test) - set(seen)
        test = fresh & known
        unknown += len(fresh - known)
        if not test:
            continue
        eligible = [c for c in range(n_items) if c not in seen and c in known]
        ranked = sorted(eligible, key=lambda c: -scores[u, c])
        row = {}
        for k in ks:
            hits = [c in test for c in ranked[:k]] + [False] * max(0, k - len(ranked))
            n_hit = sum(hits)
            row[f"precision@{k}"] = n_hit / k
            row[f"recall@{k}"] = n_hit / len(test)
            dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / np.log2(r + 2) for r in range(min(k, len(test))))
            row[f"ndcg@{k}"] = dcg / idcg
            row[f"map@{k}"] = sum(sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h) / min(k, len(test))
        negatives = [c for c in eligible if c not in test]
        pos = np.array([scores[u, c] for c in sorted(test)], dtype=np.float64)
        neg = np.array([scores[u, c] for c in negatives], dtype=np.float64)
        row["auc"] = (
            ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
            if neg.size
            else np.nan
        )
        rows.append(row)
    return {key: float(np.nanmean([r[key] for r in rows])) for key in rows[0]}, len(rows), unknown


def csr(rows, n_items):
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate([sorted(r) for r in rows] + [[]]).astype(np.int32)
    return indptr, indices


#: the last items of a random problem never get a training positive (unknown: not ranked)
UNKNOWN_ITEMS = 5


def random_problem(seed, n_users=40, n_items=60, ties=False):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, (n_users, n_items)) if ties else rng.normal(size=(n_users, n_items))
    train_rows, test_rows = [], []
    for u in range(n_users):
        # a few heavy users exercise the binary-search path of the AUC kernel (more than 16 positives)
        n_train = rng.integers(0, n_items - UNKNOWN_ITEMS - 5) if u % 7 == 0 else rng.integers(0, 8)
        seen = rng.permutation(n_items - UNKNOWN_ITEMS)[:n_train]
        n_test = rng.integers(17, 30) if u % 5 == 0 else rng.integers(0, 4)
        train_rows.append(seen.tolist())
        test_rows.append(rng.permutation(np.setdiff1d(np.arange(n_items), seen))[:n_test].tolist())
    # one user with a test positive that is also a training positive (must be ignored)
    test_rows[1] = test_rows[1] + train_rows[1][:1]
    return scores, train_rows, test_rows


def task_of(scores, train_rows, test_rows):
    n_users, n_items = scores.shape
    model = ScoreTable(scores)
    rows, cols = zip(*[(u, c) for u, r in enumerate(test_rows) for c in r]) if any(test_rows) else ((), ())
    test = Dataset.from_scipy(sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items)))
    return model, RankingTask.build(model, csr(train_rows, n_items), test, threshold=None)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_kernel_matches_reference(seed, ties):
    scores, train_rows, test_rows = random_problem(seed, ties=ties)
    model, task = task_of(scores, train_rows, test_rows)
    got = ranking_report(model, task, ks=KS)
    want, n_users, unknown = reference_metrics(model.scores, train_rows, test_rows, KS)
    assert got["ranking_users"] == n_users
    assert got["ranking_unknown_positives"] == unknown > 0
    assert got["auc"] == pytest.approx(want["auc"], abs=1e-12)
    if not ties:  # with tied scores the order inside the top K is not defined
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key


def test_closed_forms_of_perfect_and_reversed_scores():
    rng = np.random.default_rng(3)
    n_users, n_items = 12, 50
    train_rows = [rng.permutation(n_items)[:5].tolist() for _ in range(n_users)]
    known = set().union(*map(set, train_rows))  # test positives on known items only: all of them are ranked
    test_rows = [
        [c for c in rng.permutation(n_items)[: 3 + u] if c not in train_rows[u] and c in known] for u in range(n_users)
    ]
    perfect = rng.normal(size=(n_users, n_items))
    for u, row in enumerate(test_rows):
        perfect[u, row] += 100.0
    model, task = task_of(perfect, train_rows, test_rows)
    got = ranking_report(model, task, ks=(5, 10))
    assert got["auc"] == 1.0 and got["ndcg@5"] == pytest.approx(1.0) and got["map@10"] == pytest.approx(1.0)
    n_test = np.array([len(r) for r in test_rows])
    assert got["precision@5"] == pytest.approx(np.mean(np.minimum(n_test, 5) / 5))
    assert got["recall@10"] == pytest.approx(np.mean(np.minimum(n_test, 10) / n_test))
    model, task = task_of(-perfect, train_rows, test_rows)
    got = ranking_report(model, task, ks=(5,))
    assert got["auc"] == 0.0 and got["precision@5"] == 0.0 and got["ndcg@5"] == 0.0


def test_short_lists_count_unfilled_slots_as_misses():
    # 6 items, 3 training positives: only 3 eligible items for K = 5 (a second user makes items 3-5 known)
    scores = np.tile(np.arange(6, dtype=float), (2, 1))
    model, task = task_of(scores, [[0, 1, 2], [3, 4, 5]], [[3], []])
    got = ranking_report(model, task, ks=(5,))
    assert got["precision@5"] == pytest.approx(1 / 5)
    assert got["recall@5"] == 1.0 and got["auc"] == 0.0  # item 3 scores below items 4 and 5


def test_sampled_pairs_follow_the_protocol():
    scores, train_rows, test_rows = random_problem(11, n_users=300, n_items=40)
    model, task = task_of(scores, train_rows, test_rows)
    users, pos, neg = sampled_pairs(task, 100, seed=5)
    assert users.size == 100 and np.unique(users).size == 100
    for u, i, j in zip(users, pos, neg):
        assert i in test_rows[u] and i not in train_rows[u]
        assert j not in test_rows[u] and j not in train_rows[u]
    known = set().union(*map(set, train_rows))
    assert all(j in known for j in neg) and all(i in known for i in pos)
    # fewer test users than asked: all of those with a known non-positive item
    all_users = sampled_pairs(task, 10_000, seed=5)[0]
    expected = [u for u in task.users if len((set(train_rows[u]) | set(test_rows[u])) & known) < len(known)]
    assert sorted(all_users) == expected and len(expected) < task.users.size


def test_pooled_auc_is_the_mann_whitney_statistic():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 20, 300).astype(float), rng.integers(0, 25, 300).astype(float)
    u = scipy.stats.mannwhitneyu(pos, neg).statistic
    assert pooled_auc(pos, neg) == pytest.approx(u / (pos.size * neg.size))


def test_items_without_training_positive_are_not_ranked():
    train = Dataset.from_arrays([1, 1, 2, 2, 5, 5, 3, 3], [10, 11, 10, 11, 10, 12, 10, 13], [5, 5, 4, 5, 5, 4, 2, 3])
    model = MostPopular().fit(train)  # popularity: item 10 -> 3, 11 -> 2, 12 -> 1; 13: rated, never positive
    test = Dataset.from_arrays([3, 3, 3, 4, 1], [11, 99, 13, 10, 99], [5, 5, 4, 5, 4])  # 99: new item; 4: new user
    got = ranking_metrics(model, train, test)
    # user 3 (training positives: none) ranks the known items 10, 11, 12; its positives 99 and 13 are unknown
    # and dropped (user 1's 99 too); 11 (second) against the negatives 10 and 12: 0 + 1  ->  1 / 2
    assert got["auc"] == pytest.approx(0.5)
    assert got["ranking_users"] == 1 and got["ranking_cold_users"] == 1 and got["test_positives"] == 1
    assert got["ranking_unknown_positives"] == 3
    assert got["ndcg@5"] == pytest.approx(1 / np.log2(3)) and got["precision@5"] == pytest.approx(1 / 5)


def test_results_do_not_depend_on_the_thread_count():
    scores, train_rows, test_rows = random_problem(2, n_users=200, n_items=80)
    model, task = task_of(scores, train_rows, test_rows)
    fastmf.set_threads(1)
    try:
        one = ranking_report(model, task)
    finally:
        fastmf.set_threads(None)
    assert ranking_report(model, task) == one


def test_als_and_popular_on_one_table():
    split = random_split(fastmf.load_dataset(), 0.1, seed=1)
    als = ALS(factors=8, epochs=3).fit(split.train)
    pop = MostPopular().fit(split.train)
    a = ranking_metrics(als, split.train, split.test)
    p = pop.evaluate(split.test)
    assert a.keys() <= p.keys() and p["scored_ratings"] == split.test.n_ratings and p["training_ratings"] == 0
    assert a["ranking_users"] == p["ranking_users"] and a["test_positives"] == p["test_positives"]
    for key in ("auc", "ndcg@10", "map@20"):
        assert 0.0 <= a[key] <= 1.0


def test_cli_ranking_flag_for_als():
    res = CliRunner().invoke(
        main,
        [
            "train",
            "--model",
            "als",
            "--factors",
            "4",
            "--epochs",
            "2",
            "--ranking",
            "--threshold",
            "4.5",
            "--json",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    for key in (
        "test_rmse",
        "auc",
        "sampled_auc",
        *(f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map") for k in KS),
    ):
        assert key in report, key
    plain = json.loads(
        CliRunner().invoke(main, ["train", "--model", "als", "--factors", "4", "--epochs", "2", "--json", "-q"]).stdout
    )
    assert "auc" not in plain
    bad = CliRunner().invoke(main, ["train", "--model", "als", "--threshold", "4"])
    assert bad.exit_code != 0 and "--threshold does not apply" in bad.output


def test_cli_compare_puts_models_on_one_split():
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "compare",
            "--models",
            "popular,als,bpr",
            "--param",
            "bpr.factors=8",
            "--param",
            "bpr.epochs=2",
            "--param",
            "als.factors=4",
            "--json",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rows = {r["model"]: r for r in out["models"]}
    assert list(rows) == ["popular", "als", "bpr"]
    assert rows["bpr"]["params"]["factors"] == 8 and rows["bpr"]["params"]["threshold"] == 4.0
    assert len({r["ranking_users"] for r in rows.values()}) == 1
    assert len({r["test_positives"] for r in rows.values()}) == 1
    text = runner.invoke(main, ["compare", "--models", "popular", "-q"])
    assert text.exit_code == 0 and text.output.splitlines()[0].split()[:3] == ["model", "auc", "sampled_auc"]
    bad = runner.invoke(main, ["compare", "--param", "reg=0.1"])
    assert bad.exit_code == 1 and "KIND.NAME=VALUE" in bad.output
