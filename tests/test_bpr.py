"""BPR and most-popular: SGD step against the gradient, samplers, Hogwild vs sequential, backends, CLI, quality.

The test-only kernels ``draw_triples`` / ``apply_triples`` (tests/bpr_kernels.py) give the triples a one-chunk
epoch draws and their sequential application; the NumPy reference (``fastmf.reference.bpr``) must draw exactly
those triples and apply them like the kernel, up to rounding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
from bpr_kernels import apply_triples, draw_triples
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from model_mixin import ModelTestMixin, small_split  # noqa: F401 (fixture)

import fastmf
from fastmf import load_model
from fastmf.cli import main
from fastmf.common.errors import DivergenceError, FastMFError
from fastmf.data_prep.dataset import Dataset
from fastmf.data_prep.splits import random_split
from fastmf.kernels import bpr as kbpr
from fastmf.kernels._search import first_key_above
from fastmf.kernels.sampling import build_alias
from fastmf.metrics.ranking import positives
from fastmf.models.backend import backend_of
from fastmf.models.bpr import BPR, BPRState, share_below
from fastmf.models.popular import MostPopular
from fastmf.reference import _rng
from fastmf.reference import bpr as ref


def numba_triples(state, n, epoch=0, chunk=0):
    """The first ``n`` triples chunk ``chunk`` of a numba epoch of ``state`` draws (one chunk: in the order applied)."""
    return draw_triples(
        state.indptr,
        state.indices,
        state.user_prob,
        state.user_alias,
        state.n_items,
        n,
        state.seed,
        epoch,
        state.neg_prob,
        state.neg_alias,
        state.popularity,
        state.share_below,
        state.member_filter,
        chunk,
    )


def reference_triples(state, n, epoch=0, chunk=0, first=0):
    """Triples ``first, ..., first + n - 1`` of chunk ``chunk`` of an epoch of ``state``, drawn by the reference."""
    stream = _rng.stream_seed(_rng.stream_seed(state.seed, epoch), chunk)
    return ref._draw_chunk(
        stream,
        first,
        n,
        state.indptr,
        state.indices,
        state.user_prob,
        state.user_alias,
        state.n_items,
        state.neg_prob,
        state.neg_alias,
        state.popularity,
    )


def single_thread(fn):
    fastmf.set_threads(1)
    try:
        return fn()
    finally:
        fastmf.set_threads(None)


class TestBPR(ModelTestMixin):
    def make_model(self, **params):
        return BPR(**{"factors": 8, "epochs": 3, **params})

    def test_same_seed_same_model(self, small_split):
        # with one thread a seeded fit is reproducible bit for bit
        a, b, c = single_thread(lambda: [self.make_model(random_state=s).fit(small_split.train) for s in (3, 3, 4)])
        np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
        np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
        assert not np.array_equal(a.item_factors_, c.item_factors_)

    def test_numba_and_numpy_backends_agree(self, small_split):
        # with one thread both backends apply the same triples in the same order: the fits differ by rounding
        # only (predictions agree to ~2e-6 after 3 epochs at D = 8, in float32 vs float64)
        single_thread(lambda: ModelTestMixin.test_numba_and_numpy_backends_agree(self, small_split))


class TestMostPopular(ModelTestMixin):
    def make_model(self, **params):
        return MostPopular(**params)

    def test_numba_and_numpy_backends_agree(self, fitted, small_split):
        # one (NumPy) backend; the scores are the positives' counts, counted here independently
        train = small_split.train
        liked = train.item_map.ids[train.indices[train.data >= 4.0]]
        ids, counts = np.unique(liked, return_counts=True)
        np.testing.assert_array_equal(fitted.predict(np.full(ids.size, train.user_map.ids[0]), ids), counts)
        never = np.setdiff1d(train.item_map.ids, ids)
        assert not fitted.predict(np.full(never.size, train.user_map.ids[0]), never).any()
        with pytest.raises(TypeError):
            MostPopular(backend="numba")


# --------------------------------------------------------------------------- the SGD step


def objective(theta, u, i, j, reg, d):
    """ln sigma(x_uij) - reg/2 |theta_uij|^2 for theta = (U_u, V_i, V_j, b_i, b_j) flattened."""
    wu, vi, vj, bi, bj = theta[:d], theta[d : 2 * d], theta[2 * d : 3 * d], theta[3 * d], theta[3 * d + 1]
    x = bi - bj + wu @ (vi - vj)
    return -np.logaddexp(0.0, -x) - 0.5 * reg * (theta @ theta)


def step(seed, d, lr, reg, scale, reference=False):
    """One SGD step on the triple (1, 2, 4), by the kernel's ``sgd_step`` or the reference's."""
    rng = np.random.default_rng(seed)
    uf, rows = rng.normal(0, scale, (3, d)), rng.normal(0, scale, (5, d + 1))  # rows: [V_c, b_c]
    vf, b = rows[:, :d], rows[:, d]
    theta = np.concatenate([uf[1], vf[2], vf[4], b[[2, 4]]])
    apply = ref._apply if reference else apply_triples
    apply(np.array([1]), np.array([2]), np.array([4]), uf, rows, lr, reg, True)
    return theta, np.concatenate([uf[1], vf[2], vf[4], b[[2, 4]]])


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_sgd_step_follows_the_gradient(seed, reference):
    d, lr, reg = 5, 0.1, 0.03
    before, after = step(seed, d, lr, reg, 1.0, reference)
    h = 1e-6
    grad = np.array(
        [
            (objective(before + h * e, 1, 2, 4, reg, d) - objective(before - h * e, 1, 2, 4, reg, d)) / (2 * h)
            for e in np.eye(before.size)
        ]
    )
    np.testing.assert_allclose((after - before) / lr, grad, rtol=1e-6, atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 12), reg=st.floats(0.0, 0.5), scale=st.floats(0.01, 2.0))
def test_small_sgd_step_increases_the_triple_objective(seed, d, reg, scale):
    before, after = step(seed, d, 1e-3, reg, scale)
    assert objective(after, 1, 2, 4, reg, d) >= objective(before, 1, 2, 4, reg, d) - 1e-12


# --------------------------------------------------------------------------- sampling


@settings(max_examples=60, deadline=None)
@given(
    row=st.sets(st.integers(0, 40), max_size=40),
    n_items=st.integers(41, 45),
    key=st.integers(0, 2**64 - 1),
    hint=st.integers(-5, 50),
    pad=st.integers(0, 3),
    popularity=st.booleans(),
    weights=st.lists(st.integers(0, 9), min_size=45, max_size=45),
)
def test_kth_missing_enumerates_the_complement_from_any_hint(row, n_items, key, hint, pad, popularity, weights):
    # the row sits at offset ``pad`` of a larger array; the search's start guess never changes its answer
    indices = np.array([-1] * pad + sorted(row) + [99], dtype=np.int32)
    start, end = pad, pad + len(row)
    missing = np.setdiff1d(np.arange(n_items), sorted(row))
    got = [kbpr.kth_missing(indices, start, end, k, start + hint) for k in range(missing.size)]
    assert got == missing.tolist()
    for value in range(-1, n_items + 1):
        want = start + np.searchsorted(indices[start:end], value)
        assert first_key_above(indices, start, end, value - 1, 0, start + hint) == want
    weights = np.array(weights[:n_items], dtype=np.float64) + 1.0  # popularity weights, and the search guesses
    bounds = np.array([start, end], dtype=np.int64)  # the row as row 0 of a CSR matrix
    for member_filter in (kbpr.member_filter(bounds, indices, n_items), np.full(8, ~np.uint64(0))):  # a full filter
        j = kbpr.draw_negative(  # says "maybe" to everything: then each draw is searched
            np.uint64(key),
            np.zeros(1, np.uint64),
            indices,
            start,
            end,
            n_items,
            *build_alias(weights),
            popularity,
            share_below(weights),
            0,
            member_filter,
        )
        assert j in missing


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(1, 40), n_items=st.integers(1, 3000))
def test_member_filter_holds_every_positive_and_few_others(seed, n_rows, n_items):
    """No positive is ever reported absent (a Bloom filter has no false negatives), few absent pairs are
    reported present (about 2% at 10 bits a positive), and the NumPy twin builds the same bits."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, min(n_items, 200) + 1, n_rows)
    rows = [np.sort(rng.choice(n_items, size=k, replace=False)) for k in lengths]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.concatenate(rows + [np.zeros(0)]).astype(np.int32)
    bits = kbpr.member_filter(indptr, indices, n_items)
    np.testing.assert_array_equal(bits, ref.member_filter(indptr, indices, n_items))
    held = [kbpr.may_hold(bits, u, c, n_items) for u in range(n_rows) for c in rows[u]]
    assert all(held)
    probe = rng.integers(0, n_items, (2000, 1))
    absent = [(u, c) for u, c in zip(rng.integers(0, n_rows, 2000), probe[:, 0]) if c not in set(rows[u])]
    if indices.size >= 500 and absent:
        false_positives = np.mean([kbpr.may_hold(bits, u, c, n_items) for u, c in absent])
        assert false_positives < 0.06


def tiny_positives():
    # 10 items; user 0 likes 2, 5, 7; items 1, 4 and 6 are nobody's positive
    users = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    items = [2, 5, 7, 0, 2, 3, 2, 3, 8, 0, 9]
    return Dataset.from_arrays(
        users, items, [5.0] * len(users), item_map=fastmf.IdMap(np.arange(10)), user_map=fastmf.IdMap(np.arange(4))
    )


@pytest.mark.parametrize("negatives", ["uniform", "popularity"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_negatives_follow_their_distribution(negatives, backend):
    pos = tiny_positives()
    state = BPRState(pos, 2, negatives, backend_of(backend), seed=3)
    # the catalogue: the 7 items with a positive; the sampler works on catalogue indices
    np.testing.assert_array_equal(state.items, [0, 2, 3, 5, 7, 8, 9])
    n = 60_000
    users, items, neg = (numba_triples if backend == "numba" else reference_triples)(state, n)
    items, neg = state.items[items], state.items[neg]
    # (u, i) uniform over the 11 positives
    pairs = users * 10 + items
    assert np.isin(pairs, pos.user_of_entry * 10 + pos.indices).all()
    assert scipy.stats.chisquare(np.unique(pairs, return_counts=True)[1]).pvalue > 1e-4
    mine = neg[users == 0]
    assert not np.isin(mine, [2, 5, 7]).any()
    # uniform over the catalogue (items 1, 4, 6 are nobody's positive: never negatives), or by popularity
    weights = (
        (np.bincount(pos.indices, minlength=10) > 0).astype(float)
        if negatives == "uniform"
        else np.bincount(pos.indices, minlength=10).astype(float)
    )
    weights[[2, 5, 7]] = 0.0
    support = np.flatnonzero(weights)
    counts = np.bincount(mine, minlength=10)
    assert counts[np.setdiff1d(np.arange(10), support)].sum() == 0
    expected = weights[support] / weights.sum() * mine.size
    assert scipy.stats.chisquare(counts[support], expected).pvalue > 1e-4


@pytest.mark.parametrize("negatives", ["uniform", "popularity"])
def test_one_chunk_hogwild_is_the_sequential_run(negatives, small_split):
    pos = positives(small_split.train, 4.0)
    a = BPRState(pos, 7, negatives, backend_of("numba"), seed=9)
    b = BPRState(pos, 7, negatives, backend_of("numba"), seed=9)
    loss = np.zeros(1)
    kbpr.hogwild_epoch(
        a.indptr,
        a.indices,
        a.user_prob,
        a.user_alias,
        a.user_factors,
        a.item_rows,
        0.05,
        0.01,
        True,
        20_000,
        9,
        2,
        1,
        a.neg_prob,
        a.neg_alias,
        a.popularity,
        a.share_below,
        a.member_filter,
        loss,
    )
    triples = numba_triples(b, 20_000, epoch=2)
    assert apply_triples(*triples, b.user_factors, b.item_rows, 0.05, 0.01, True) == loss[0]
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_rows, b.item_rows)


@pytest.mark.parametrize("negatives", ["uniform", "popularity"])
def test_reference_draws_the_kernels_triples(negatives, small_split):
    state = BPRState(positives(small_split.train, 4.0), 4, negatives, backend_of("numpy"), seed=11)
    n = state.n_samples
    for epoch, chunk in ((0, 0), (3, 2)):
        want = numba_triples(state, n, epoch, chunk)
        got = reference_triples(state, n, epoch, chunk)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        # any block of a chunk's stream
        for g, w in zip(reference_triples(state, 777, epoch, chunk, first=1234), want):
            np.testing.assert_array_equal(g, w[1234 : 1234 + 777])


def test_reference_popularity_fallback_is_the_kernels(monkeypatch):
    # users 0-49 like the 10 popular items (96% of the mass); user 50 likes 18 of the 20 items (99.4%): most of
    # its negatives come from the uniform fallback after MAX_POPULAR_TRIES rejected popularity draws
    users = np.concatenate([np.repeat(np.arange(50), 10), np.full(18, 50), [51, 51, 51]])
    items = np.concatenate([np.tile(np.arange(10), 50), np.arange(18), [0, 18, 19]])
    pos = Dataset.from_arrays(
        users, items, np.ones(users.size), item_map=fastmf.IdMap(np.arange(20)), user_map=fastmf.IdMap(np.arange(52))
    )
    state = BPRState(pos, 2, "popularity", backend_of("numpy"), seed=5)
    fallback = 2 * ref.MAX_POPULAR_TRIES + 1
    used = []
    draws = _rng.draws
    monkeypatch.setattr(_rng, "draws", lambda s, calls: (used.append((calls, np.size(s))), draws(s, calls))[1])
    got = reference_triples(state, 20_000, epoch=1)
    for g, w in zip(got, numba_triples(state, 20_000, epoch=1)):
        np.testing.assert_array_equal(g, w)
    assert sum(size for calls, size in used if isinstance(calls, int) and calls == fallback) > 100


def close(got, want, rtol):
    """Equal within ``rtol`` relative to each element or to the largest one (small elements)."""
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("negatives", ["uniform", "popularity"])
def test_one_epoch_of_both_backends_agrees(negatives, small_split):
    # one thread: the same triples in the same order, float32 (numba) vs float64 (numpy)
    pos = positives(small_split.train, 4.0)
    states = {b: BPRState(pos, 8, negatives, backend_of(b), seed=1, lr=0.05, reg=0.01) for b in ("numba", "numpy")}
    np.testing.assert_array_equal(states["numba"].user_factors, states["numpy"].user_factors)
    loss = single_thread(lambda: {b: s.epoch()["loss"] for b, s in states.items()})
    assert loss["numba"] == pytest.approx(loss["numpy"], rel=1e-4)
    for name in ("user_factors", "item_factors", "item_bias"):
        got, want = getattr(states["numba"], name), getattr(states["numpy"], name)
        assert got.dtype == np.float32 and want.dtype == np.float64
        close(got, want, 2e-4)


@pytest.mark.parametrize("negatives", ["uniform", "popularity"])
def test_reference_epoch_is_the_kernels_in_float64(negatives, small_split):
    # the kernel on float64 arrays, with one thread running its 3 chunks in order, is the reference up to the
    # kernel's fastmath reassociation; the per-chunk losses (product of likelihoods vs summed logaddexp) agree
    state = BPRState(positives(small_split.train, 4.0), 8, negatives, backend_of("numpy"), seed=2)
    arrays = [a.copy() for a in (state.user_factors, state.item_rows)]
    loss = {"numba": np.zeros(3), "numpy": np.zeros(3)}
    args = (
        *(0.05, 0.01, True, state.n_samples, state.seed, 4, 3),
        *(state.neg_prob, state.neg_alias, state.popularity, state.share_below, state.member_filter),
    )
    head = (state.indptr, state.indices, state.user_prob, state.user_alias)
    single_thread(lambda: kbpr.hogwild_epoch(*head, *arrays, *args, loss["numba"]))
    ref.hogwild_epoch(*head, state.user_factors, state.item_rows, *args, loss["numpy"])
    np.testing.assert_allclose(loss["numba"], loss["numpy"], rtol=1e-12)
    assert (loss["numpy"] > 0.3 * state.n_samples / 3).all()  # every chunk applied its third of the triples
    for got, want in zip(arrays, (state.user_factors, state.item_rows)):
        close(got, want, 1e-12)


@pytest.mark.parametrize("d", [1, 15, 16, 20, 64])
def test_item_rows_hold_factor_and_bias_on_lines_of_their_own(d, small_split):
    # [V_c, b_c] per item, each row starting on a cache line and padded to whole lines with zeros; the
    # state's item_factors and item_bias are views of it, so an epoch's updates show through them
    state = BPRState(positives(small_split.train, 4.0), d, "uniform", backend_of("numba"), seed=3)
    rows = state.item_rows
    assert rows.flags.c_contiguous and rows.ctypes.data % 64 == 0 and rows.strides[0] % 64 == 0
    assert d + 1 <= rows.shape[1] < d + 1 + 16 and not rows[:, d + 1 :].any()
    assert np.shares_memory(state.item_factors, rows) and np.shares_memory(state.item_bias, rows)
    before = rows.copy()
    state.epoch()
    assert not np.array_equal(state.item_bias, before[:, d]) and not np.array_equal(state.item_factors, before[:, :d])
    np.testing.assert_array_equal(state.item_factors, rows[:, :d])
    np.testing.assert_array_equal(state.item_bias, rows[:, d])
    assert not rows[:, d + 1 :].any()  # the padding is never written


@pytest.mark.parametrize("negatives", ["uniform", "popularity"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_untouched_rows_stay_cold(negatives, backend):
    # items 1, 4, 6 have no positive: outside the catalogue, never sampled, their rows stay zero
    model = BPR(factors=3, epochs=2, negatives=negatives, backend=backend).fit(tiny_positives())
    assert not model.item_factors_[[1, 4, 6]].any() and not model.item_bias_[[1, 4, 6]].any()
    assert model.item_factors_[[0, 2, 3, 5, 7, 8, 9]].all() and model.item_bias_[[0, 2, 3, 5, 7, 8, 9]].all()
    data = Dataset.from_arrays([0, 0, 1, 2], [0, 1, 0, 1], [5.0, 5.0, 2.0, 5.0])
    model = BPR(factors=3, epochs=2).fit(data)
    assert not model.user_factors_[1].any()  # user 1 has no positive
    assert not model.user_factors_[0].any()  # user 0 likes every item: nothing to rank, not sampled
    assert model.samples_per_epoch_ == 1


# --------------------------------------------------------------------------- training


def test_divergence_is_a_clear_error(small_split):
    with pytest.raises(DivergenceError, match=r"epoch 1 .*smaller --lr"):
        BPR(factors=4, epochs=3, lr=10.0, reg=100.0).fit(small_split.train)  # lr * reg > 2: the shrinkage overshoots


def test_implicit_tables_use_every_interaction():
    users, items = np.repeat(np.arange(30), 5), (np.arange(150) * 7) % 40
    data = Dataset.from_arrays(users, items, np.ones(150))
    for threshold in (None, 0):
        model = BPR(factors=4, epochs=2, threshold=threshold).fit(data)
        assert model.positive_indices_.size == 150 and model.samples_per_epoch_ == 150
    with pytest.raises(FastMFError, match="threshold 0"):
        BPR(factors=4, epochs=2).fit(data)


def test_loss_decreases_and_history_carries_auc(small_split):
    model = BPR(factors=16, epochs=8).fit(small_split.train, eval_set=small_split.test)
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < 0.6 * losses[0]
    assert all({"epoch", "seconds", "loss", "auc", "sampled_auc"} <= r.keys() for r in model.history_)
    assert model.history_[-1]["auc"] > model.history_[0]["auc"]
    assert model.history_[-1]["lr"] == pytest.approx(0.05 * 0.98**7)
    assert model.samples_per_epoch_ == positives(small_split.train, 4.0).n_ratings


def test_no_item_bias_keeps_biases_at_zero(small_split):
    model = BPR(factors=4, epochs=2, item_bias=False).fit(small_split.train)
    assert not model.item_bias_.any()


def test_fold_in_ranks_the_liked_items_first(small_split):
    model = single_thread(lambda: BPR(factors=16, epochs=10).fit(small_split.train))
    u = int(np.argmax(np.diff(model.positive_indptr_)))
    liked = model.positive_indices_[model.positive_indptr_[u] : model.positive_indptr_[u + 1]]
    state = model._fold_in_state(liked, None)
    scores = model._score_vector(state)
    others = np.setdiff1d(np.arange(model.n_items), liked)
    auc = (scores[liked][:, None] > scores[others][None, :]).mean()
    assert auc > 0.9
    ids = model.item_map_.ids
    items, _ = model.fold_in({ids[liked[0]]: 5.0, ids[liked[1]]: 1.0}, k=20)
    assert ids[liked[0]] not in items and ids[liked[1]] not in items  # both given items are excluded
    with pytest.raises(FastMFError, match="liked"):
        model.fold_in({ids[liked[0]]: 1.0})


def test_quality_on_ml_latest_small():
    """The report's settings rank well above most-popular (cornac's protocol: known items only).

    Their NDCG@10 averages 0.127 over model seeds (sd 0.006, so one run may fall under the issue's 0.12);
    their AUC (about 0.922) stays below cornac's 0.933 because of the report's N(0, 0.1) initialisation:
    from cornac's (sd 1 / (D sqrt 12)) the same kernel reaches 0.931.
    """
    split = random_split(fastmf.load_dataset(), 0.1, seed=42)
    pop = MostPopular().fit(split.train).evaluate(split.test)
    report, small_init = single_thread(
        lambda: [BPR(**p).fit(split.train).evaluate(split.test) for p in ({}, {"init_std": 1 / (64 * 12**0.5)})]
    )
    assert report["ndcg@10"] > pop["ndcg@10"] + 0.02 and report["auc"] > pop["auc"] + 0.02
    assert report["ranking_unknown_positives"] == pop["ranking_unknown_positives"] > 0
    assert small_init["auc"] > report["auc"] + 0.004


# --------------------------------------------------------------------------- command line


def test_cli_train_json_save_and_recommend(tmp_path):
    runner = CliRunner()
    out = tmp_path / "bpr"
    res = runner.invoke(
        main,
        [
            "train",
            "--model",
            "bpr",
            "--factors",
            "8",
            "--epochs",
            "3",
            "--lr",
            "0.1",
            "--reg",
            "0.01",
            "--negatives",
            "popularity",
            "--no-item-bias",
            "--init-std",
            "0.05",
            "--json",
            "-q",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["params"]["item_bias"] is False and report["params"]["negatives"] == "popularity"
    assert report["params"]["init_std"] == 0.05
    assert [set(r) >= {"epoch", "seconds", "loss", "auc"} for r in report["history"]] == [True] * 3
    keys = {
        "auc",
        "sampled_auc",
        "loss",
        *(f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map") for k in (5, 10, 20)),
    }
    assert keys <= report.keys()
    pop = json.loads(runner.invoke(main, ["train", "--model", "popular", "--json", "-q"]).stdout)
    assert keys - {"loss"} <= pop.keys() and pop["ranking_users"] == report["ranking_users"]
    model = load_model(str(out))
    assert isinstance(model, BPR) and not model.item_bias_.any()
    rec = runner.invoke(main, ["recommend", str(out), "--rate", "Toy Story (1995)=5", "-k", "5", "--json"])
    assert rec.exit_code == 0, rec.output
    assert len(json.loads(rec.stdout)["recommendations"]) == 5
    text = runner.invoke(main, ["train", "--model", "bpr", "--factors", "4", "--epochs", "1", "--backend", "numpy"])
    assert text.exit_code == 0 and "ndcg@K" in text.output and "sampled_auc" in text.output
    bad = runner.invoke(main, ["train", "--model", "als", "--lr", "0.1"])
    assert bad.exit_code != 0 and "--lr does not apply" in bad.output
    diverged = runner.invoke(main, ["train", "--model", "bpr", "--lr", "10", "--reg", "100", "--epochs", "2", "-q"])
    assert diverged.exit_code == 1 and "smaller --lr" in diverged.output and "Traceback" not in diverged.output


def test_cli_tune_scores_rankers_by_validation_ndcg():
    res = CliRunner().invoke(
        main, ["tune", "--model", "bpr", "--grid", "reg=0.001,0.05", "--factors", "8", "--epochs", "3", "--json", "-q"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["metric"] == "ndcg@10" and len(out["rows"]) == 2
    best = max(out["rows"], key=lambda r: r["val_ndcg@10"])
    assert out["best"]["params"]["reg"] == best["reg"] and "test_ndcg@10" in out["best"]
