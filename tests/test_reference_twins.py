"""NumPy twins of the Numba kernels: same names, signatures and ``__all__``, and the same results.

``fastmf/reference/<m>.py`` mirrors ``kernels/<m>.py`` for the modules of ``TWINS``:
integer and sparse outputs must be equal (values and dtypes), float outputs close
(bit-identical where the twins sum in the same order, e.g. the AUC and the
synthetic ratings). Top-K indices are compared on tie-free scores: the kernel's
heap resolves ties in heap order (see ``fastmf.reference.topk``). Inputs are small,
so the whole file runs in a few seconds once the kernels are compiled.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmf.kernels
import fastmf.reference
from fastmf.kernels import metrics as k_metrics
from fastmf.kernels import ranking as k_ranking
from fastmf.kernels import sampling as k_sampling
from fastmf.kernels import sparse as k_sparse
from fastmf.kernels import synth as k_synth
from fastmf.kernels import topk as k_topk
from fastmf.reference import metrics as r_metrics
from fastmf.reference import ranking as r_ranking
from fastmf.reference import sampling as r_sampling
from fastmf.reference import sparse as r_sparse
from fastmf.reference import synth as r_synth
from fastmf.reference import topk as r_topk

#: every public kernel module (the private ``_linalg``, ``_rng``, ``_search`` are inlined helpers)
KERNEL_MODULES = sorted(p.stem for p in Path(fastmf.kernels.__path__[0]).glob("*.py") if not p.stem.startswith("_"))
TWINS = {
    "als": ["half_sweep"],
    "bpr": ["hogwild_epoch", "member_filter"],
    "features": ["feature_cycle", "prior_means"],
    "metrics": ["error_sums", "squared_errors", "predict_pairs", "sum_squares"],
    "ranking": ["user_metrics"],
    "sampling": ["build_alias"],
    "sparse": [
        "counting_sort",
        "take_int32",
        "coo_order",
        "lex_sorted",
        "latest_of_duplicates",
        "transpose_csr",
        "row_ids",
    ],
    "synth": ["sample_items", "planted_ratings"],
    "topk": ["topk_dot", "topk_rows"],
    "vi": ["half_sweep_full", "row_cuts", "scatter_sweep_full", "half_sweep_diag", "pair_moments", "draw"],
    "wrmf": ["gram", "half_sweep", "observed_loss"],
}
PAIRS = [(m, f) for m, names in TWINS.items() for f in names]


def _modules(name):
    return importlib.import_module(f"fastmf.kernels.{name}"), importlib.import_module(f"fastmf.reference.{name}")


def _csr(rows):
    """int64 indptr and int32 indices of a list of index rows."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    return indptr, np.concatenate([np.zeros(0, dtype=np.int32)] + [np.asarray(r, dtype=np.int32) for r in rows])


def assert_same(a, b):
    """Equal values, types and dtypes, element for element (tuples recursively)."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b and type(a) is type(b), (a, b)


# --------------------------------------------------------------------------- the mirror itself


def test_every_kernel_module_has_a_twin():
    assert KERNEL_MODULES == sorted(TWINS)
    for name in KERNEL_MODULES:
        assert getattr(fastmf.kernels, name) is importlib.import_module(f"fastmf.kernels.{name}")
        assert getattr(fastmf.reference, name) is importlib.import_module(f"fastmf.reference.{name}")


@pytest.mark.parametrize("module", sorted(TWINS))
def test_all_lists_exactly_the_twins(module):
    kmod, rmod = _modules(module)
    assert kmod.__all__ == TWINS[module]
    assert rmod.__all__ == TWINS[module]
    public = {
        n
        for n, v in vars(rmod).items()
        if inspect.isfunction(v) and not n.startswith("_") and v.__module__ == rmod.__name__
    }
    assert public == set(TWINS[module]), "reference functions outside __all__ must be private"


@pytest.mark.parametrize("module,name", PAIRS)
def test_same_signature(module, name):
    kmod, rmod = _modules(module)
    kernel, ref = getattr(kmod, name), getattr(rmod, name)
    assert inspect.signature(getattr(kernel, "py_func", kernel)) == inspect.signature(ref)
    assert ref.__doc__


@pytest.mark.parametrize("module", sorted(TWINS))
def test_reference_imports_only_numpy_scipy_and_reference_helpers(module):
    _, rmod = _modules(module)
    assert rmod.__doc__
    tree = ast.parse(inspect.getsource(rmod))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = (
                [node.module]
                if node.module != "fastmf.reference"
                else [f"fastmf.reference.{a.name}" for a in node.names]
            )
        else:
            continue
        for n in names:
            assert n.split(".")[0] in {"__future__", "math", "numpy", "scipy"} or n in {
                "fastmf.reference._rng",
                "fastmf.reference._krylov",
                "fastmf.common.keys",
            }, n


# --------------------------------------------------------------------------- metrics


def _rating_model(rng, n_users, n_items, d, dtype=np.float32):
    """``(mu, user_bias, item_bias, user_factors, item_factors)`` as the models hold them (float32)."""
    return (
        float(rng.normal(3.5, 0.3)),
        rng.normal(0, 0.4, n_users).astype(dtype),
        rng.normal(0, 0.4, n_items).astype(dtype),
        rng.normal(0, 0.5, (n_users, d)).astype(dtype),
        rng.normal(0, 0.5, (n_items, d)).astype(dtype),
    )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    d=st.integers(0, 6),
    n_users=st.integers(0, 12),
    n_items=st.integers(1, 12),
    cold=st.integers(0, 3),
    bounds=st.sampled_from([(-np.inf, np.inf), (0.5, 5.0), (2.0, 3.5)]),
)
def test_metrics_agree(seed, d, n_users, n_items, cold, bounds):
    """Rows and columns past the model's arrays (cold users and items) included, predictions clipped
    to ``bounds`` or not. The kernels multiply float32 factors in float32 (``sum_squares`` too:
    Numba's ``float()`` keeps float32), the reference in float64: close, not equal."""
    rng = np.random.default_rng(seed)
    model = (*_rating_model(rng, n_users, n_items, d), *bounds)
    rows = [
        np.sort(rng.choice(n_items + cold, rng.integers(0, n_items + cold + 1), replace=False))
        for _ in range(n_users + cold)
    ]
    indptr, indices = _csr(rows)
    data = rng.choice(np.arange(1, 11) / 2, indices.size).astype(np.float32)
    want, got = k_metrics.error_sums(indptr, indices, data, *model), r_metrics.error_sums(indptr, indices, data, *model)
    assert isinstance(got, tuple) and all(isinstance(x, float) for x in got)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # the kernel multiplies float32 in float32
    want = k_metrics.squared_errors(indptr, indices, data, *model)
    got = r_metrics.squared_errors(indptr, indices, data, *model)
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    users = rng.integers(-2, n_users + 3, 50).astype(np.int64)
    items = rng.integers(-2, n_items + 3, 50).astype(np.int64)
    want, got = k_metrics.predict_pairs(users, items, *model), r_metrics.predict_pairs(users, items, *model)
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    for x in model[1:-2]:
        assert isinstance(r_metrics.sum_squares(x), float)
        np.testing.assert_allclose(r_metrics.sum_squares(x), k_metrics.sum_squares(x), rtol=1e-6)


@pytest.mark.parametrize("metrics", [k_metrics, r_metrics], ids=["numba", "numpy"])
def test_predictions_are_the_scores_clipped_to_the_scale(metrics):
    """``predict_pairs`` is ``clip(score)``; ``error_sums`` gives the squared error of the scores and
    of the clipped predictions, which for ratings inside the scale is never larger; ``squared_errors``
    sums to the latter."""
    rng = np.random.default_rng(5)
    mu, user_bias, item_bias, user_factors, item_factors = _rating_model(rng, 30, 20, 4)
    user_factors *= 3.0  # scores well outside 1..4
    model = (mu, user_bias, item_bias, user_factors, item_factors)
    users, items = np.repeat(np.arange(30), 20), np.tile(np.arange(20), 30)
    scores = metrics.predict_pairs(users, items, *model, -np.inf, np.inf)
    assert scores.min() < 1.0 and scores.max() > 4.0
    np.testing.assert_array_equal(metrics.predict_pairs(users, items, *model, 1.0, 4.0), np.clip(scores, 1.0, 4.0))
    indptr = np.arange(0, 601, 20, dtype=np.int64)
    data = rng.choice(np.arange(2, 9) / 2, 600).astype(np.float32)
    raw, clipped = metrics.error_sums(indptr, items.astype(np.int32), data, *model, 1.0, 4.0)
    np.testing.assert_allclose(raw, np.sum((data - scores) ** 2), rtol=1e-6)
    np.testing.assert_allclose(clipped, np.sum((data - np.clip(scores, 1.0, 4.0)) ** 2), rtol=1e-6)
    assert clipped < raw
    squared = metrics.squared_errors(indptr, items.astype(np.int32), data, *model, 1.0, 4.0)
    np.testing.assert_allclose(squared.sum(), clipped, rtol=1e-9)


def test_metrics_edge_cases():
    rng = np.random.default_rng(3)
    model = (*_rating_model(rng, 3, 4, 2), -np.inf, np.inf)
    empty = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
    assert r_metrics.error_sums(*empty, *model) == k_metrics.error_sums(*empty, *model) == (0.0, 0.0)
    assert_same(r_metrics.squared_errors(*empty, *model), k_metrics.squared_errors(*empty, *model))
    # an unknown user and item: the prediction is mu
    u, i = np.array([-1, 3, 0], dtype=np.int64), np.array([-1, -1, 99], dtype=np.int64)
    np.testing.assert_allclose(
        r_metrics.predict_pairs(u, i, *model), [model[0], model[0], model[0] + float(model[1][0])], rtol=1e-12
    )
    for x in (np.zeros(0, np.float32), np.zeros((0, 3), np.float32), np.arange(6, dtype=np.float32).reshape(2, 3)):
        assert r_metrics.sum_squares(x) == k_metrics.sum_squares(x)


# --------------------------------------------------------------------------- topk


def _topk_problem(rng, n_q, n_cols, ties):
    if ties:
        scores = rng.integers(-2, 3, (n_q, n_cols)).astype(np.float32)
        scores[rng.random((n_q, n_cols)) < 0.1] = -np.inf
    else:  # distinct scores, one -inf at most
        scores = (rng.permutation(n_q * n_cols).reshape(n_q, n_cols) - 10.0).astype(np.float32)
        if scores.size and rng.random() < 0.5:
            scores.flat[rng.integers(scores.size)] = -np.inf
    n_rows = int(rng.integers(0, 5))
    excl = [np.unique(rng.integers(0, n_cols + 3, rng.integers(0, n_cols + 2))) for _ in range(n_rows)]
    indptr, indices = _csr(excl)
    rows = rng.integers(-2, n_rows + 2, n_q).astype(np.int64)  # no exclusions for r < 0 or r >= n_rows
    allowed = rng.random(n_cols) < 0.8
    return scores, indptr, indices, rows, allowed


def _topk(fn, scores, k, *args):
    out_idx = np.full((scores.shape[0], k), -7, dtype=np.int64)
    out_score = np.full((scores.shape[0], k), 7.0)
    assert fn(scores, k, *args, out_idx, out_score) is None
    return out_idx, out_score


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_q=st.integers(0, 10), n_cols=st.integers(0, 25), k=st.integers(0, 30))
def test_topk_agrees_on_tie_free_scores(seed, n_q, n_cols, k):
    """Indices and scores equal, including -1/-inf slots when fewer than k columns are eligible."""
    problem = _topk_problem(np.random.default_rng(seed), n_q, n_cols, ties=False)
    assert_same(
        _topk(r_topk.topk_rows, problem[0], k, *problem[1:]), _topk(k_topk.topk_rows, problem[0], k, *problem[1:])
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_q=st.integers(1, 10), n_cols=st.integers(1, 25), k=st.integers(1, 30))
def test_topk_with_ties(seed, n_q, n_cols, k):
    """With ties the scores still agree exactly, and so does every column scored above the k-th score;
    the reference takes tied columns lowest first (the kernel in heap order)."""
    scores, *rest = _topk_problem(np.random.default_rng(seed), n_q, n_cols, ties=True)
    ref_idx, ref_score = _topk(r_topk.topk_rows, scores, k, *rest)
    ker_idx, ker_score = _topk(k_topk.topk_rows, scores, k, *rest)
    np.testing.assert_array_equal(ref_score, ker_score)
    for q in range(n_q):
        filled = ref_idx[q] >= 0
        np.testing.assert_array_equal(filled, ker_idx[q] >= 0)
        np.testing.assert_array_equal(scores[q, ker_idx[q, filled]], ker_score[q, filled])
        boundary = ref_score[q, filled].min() if filled.any() else np.inf
        above = ref_score[q] > boundary
        assert set(ref_idx[q, above]) == set(ker_idx[q, above])
        # reference order: score descending, then column ascending
        keys = list(zip(-ref_score[q, filled], ref_idx[q, filled]))
        assert keys == sorted(keys)


def _dot_problem(rng, n_q, n_cols, d, ties):
    """Integer factors, biases and offsets (every score exact in float32); without ``ties`` the item
    biases are 100 apart, more than any dot product, so the scores of a row are distinct."""
    user_vecs = rng.integers(-2, 3, (n_q, d)).astype(np.float32)
    item_vecs_t = rng.integers(-2, 3, (d, n_cols)).astype(np.float32)
    item_bias = (rng.integers(-1, 2, n_cols) if ties else 100.0 * rng.permutation(n_cols)).astype(np.float32)
    offsets = rng.integers(-3, 4, n_q).astype(np.float32)
    _, indptr, indices, rows, allowed = _topk_problem(rng, n_q, n_cols, ties)
    scores = offsets[:, None] + item_bias[None, :] + user_vecs @ item_vecs_t
    return (user_vecs, offsets, item_vecs_t, item_bias), scores, (indptr, indices, rows, allowed)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_q=st.integers(0, 300),
    n_cols=st.integers(0, 1200),
    d=st.integers(0, 9),
    k=st.integers(1, 30),
    ties=st.booleans(),
)
def test_fused_topk_is_topk_of_the_formed_scores(seed, n_q, n_cols, d, k, ties):
    """Across several user blocks (128 users, in register tiles of 8) and item blocks (504 items, tiles of
    24; the last tile padded): the fused kernel and its twin select from
    ``offset + b_i + U V^T`` exactly what top-K of the formed matrix selects (tie-free: the same
    indices; with ties: the same scores)."""
    factors, scores, rest = _dot_problem(np.random.default_rng(seed), n_q, n_cols, d, ties)
    want = _topk(r_topk.topk_rows, scores, k, *rest)
    for fn in (k_topk.topk_dot, r_topk.topk_dot):
        out_idx = np.full((n_q, k), -7, dtype=np.int64)
        out_score = np.full((n_q, k), 7.0)
        assert fn(*factors, k, *rest, out_idx, out_score) is None
        if ties:
            np.testing.assert_array_equal(out_score, want[1])
            np.testing.assert_array_equal(out_idx >= 0, want[0] >= 0)
        else:
            assert_same((out_idx, out_score), want)


# --------------------------------------------------------------------------- ranking


def _ranking_problem(rng, n_users, n_items, n_q, ties):
    allowed = rng.random(n_items) < 0.85
    train, test = [], []
    for _ in range(n_users):
        perm = rng.permutation(n_items)
        a, b = int(rng.integers(0, n_items // 3 + 1)), int(rng.integers(0, n_items // 2 + 1))
        train.append(np.sort(perm[:a]))
        t = perm[a : a + b]
        test.append(np.sort(t[allowed[t]]))  # test positives are allowed, never training positives
    rows = rng.integers(0, n_users, n_q).astype(np.int64)
    if ties:
        scores = rng.integers(0, 4, (n_q, n_items)).astype(np.float32)
    else:
        scores = rng.standard_normal((n_q, n_items)).astype(np.float32)
    return scores, rows, _csr(test), _csr(train), allowed


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_users=st.integers(1, 8),
    n_items=st.integers(2, 50),
    n_q=st.integers(1, 8),
    ties=st.booleans(),
    ks=st.sets(st.integers(1, 12), min_size=1, max_size=4),
)
def test_user_metrics_agree(seed, n_users, n_items, n_q, ties, ks):
    """Users without test positives (NaN metrics), with more than SHORT positives (the kernel's binary
    search) and tied scores (AUC ties count 0.5) included; the AUC is exact, hence equal."""
    scores, rows, (tip, tix), (sip, six), allowed = _ranking_problem(
        np.random.default_rng(seed), n_users, n_items, n_q, ties
    )
    ks = np.array(sorted(ks), dtype=np.int64)
    top = np.empty((n_q, ks[-1]), dtype=np.int64)
    k_topk.topk_rows(scores, int(ks[-1]), sip, six, rows, allowed, top, np.empty((n_q, ks[-1])))
    out = []
    for fn in (k_ranking.user_metrics, r_ranking.user_metrics):
        metrics, auc = np.full((n_q, ks.size, 4), -7.0), np.full(n_q, -7.0)
        assert fn(scores, rows, top, ks, tip, tix, sip, six, allowed, metrics, auc) is None
        out.append((metrics, auc))
    (km, ka), (rm, ra) = out
    np.testing.assert_array_equal(ra, ka)
    np.testing.assert_allclose(rm, km, rtol=1e-12, atol=0)


def test_user_metrics_closed_forms():
    """One user, items 0..5 scored 5..0: positives {0, 2}, training positive {5}, item 4 not allowed."""
    scores = np.array([[5, 4, 3, 2, 1, 0]], dtype=np.float32)
    tip, tix = _csr([[0, 2]])
    sip, six = _csr([[5]])
    allowed = np.array([True, True, True, True, False, True])
    top = np.array([[0, 1, 2, 3]], dtype=np.int64)
    ks = np.array([1, 2, 4], dtype=np.int64)
    metrics, auc = np.full((1, 3, 4), -7.0), np.full(1, -7.0)
    r_ranking.user_metrics(scores, np.zeros(1, np.int64), top, ks, tip, tix, sip, six, allowed, metrics, auc)
    idcg2 = 1 + 1 / np.log2(3)
    np.testing.assert_allclose(
        metrics[0], [[1, 0.5, 1, 1], [0.5, 0.5, 1 / idcg2, 0.5], [0.5, 1, (1 + 0.5) / idcg2, (1 + 2 / 3) / 2]]
    )
    assert auc[0] == 3 / 4  # negatives 1, 3: item 0 beats both, item 2 beats 3 only


# --------------------------------------------------------------------------- sparse


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 60),
    n_rows=st.integers(1, 8),
    n_cols=st.integers(1, 8),
    wide=st.booleans(),
)
def test_sparse_agree(seed, n, n_rows, n_cols, wide):
    """Permutations, indptr, masks and their dtypes equal; few distinct keys, so many duplicates."""
    rng = np.random.default_rng(seed)
    itype = np.int64 if wide else np.int32
    keys = rng.integers(0, n_cols, n).astype(itype)
    assert_same(r_sparse.counting_sort(keys, n_cols), k_sparse.counting_sort(keys, n_cols))
    perm = rng.integers(0, max(n, 1), n).astype(np.int64)
    assert_same(r_sparse.take_int32(keys, perm), k_sparse.take_int32(keys, perm))
    rows = rng.integers(0, n_rows, n).astype(np.int32)
    cols = keys.astype(np.int32)
    indptr, order = k_sparse.coo_order(rows, cols, n_rows, n_cols)
    assert_same(r_sparse.coo_order(rows, cols, n_rows, n_cols), (indptr, order))
    for r, c in ((rows, cols), (rows[order], cols[order]), (np.sort(rows), cols)):
        assert_same(r_sparse.coo_order(r, c, n_rows, n_cols), k_sparse.coo_order(r, c, n_rows, n_cols))
        assert k_sparse.lex_sorted(r, c) == r_sparse.lex_sorted(r, c)
        # sorted exactly when the stable sort is the identity
        assert k_sparse.lex_sorted(r, c) == np.array_equal(k_sparse.coo_order(r, c, n_rows, n_cols)[1], np.arange(n))
    indices = cols[order]
    timestamps = rng.integers(0, 3, n).astype(np.int64)[order]  # few values: timestamp ties
    for has_time in (True, False):
        ts = timestamps if has_time else np.zeros(0, dtype=np.int64)
        want = r_sparse.latest_of_duplicates(indptr, indices, ts, has_time)
        assert_same(want, k_sparse.latest_of_duplicates(indptr, indices, ts, has_time))
        assert_same(want, k_sparse._latest_of_duplicates(indptr, indices, ts, has_time))  # the pass over the rows
    data = rng.random(n).astype(np.float64 if wide else np.float32)
    want = r_sparse.transpose_csr(indptr, indices, data, n_cols)
    assert_same(want, k_sparse.transpose_csr(indptr, indices, data, n_cols))  # few entries: NumPy's sort
    assert_same(want, k_sparse._transpose_csr(indptr, indices, data, n_cols))  # the counting sort of large data
    assert_same(r_sparse.row_ids(indptr), k_sparse.row_ids(indptr))


def test_coo_order_of_long_sorted_rows_with_ties():
    """Rows in order with long, unsorted, tied columns: the per-row merge sort is the stable sort."""
    rng = np.random.default_rng(5)
    rows = np.sort(rng.integers(0, 4, 5000)).astype(np.int32)
    cols = rng.integers(0, 50, 5000).astype(np.int32)
    assert_same(r_sparse.coo_order(rows, cols, 4, 50), k_sparse.coo_order(rows, cols, 4, 50))


def test_latest_of_duplicates_rule():
    """Largest timestamp wins, the last one in input order among equal timestamps; runs stop at row ends."""
    indptr = np.array([0, 4, 6], dtype=np.int64)
    indices = np.array([1, 1, 1, 2, 2, 2], dtype=np.int32)
    ts = np.array([5, 9, 9, 1, 3, 3], dtype=np.int64)
    keep, dropped = r_sparse.latest_of_duplicates(indptr, indices, ts, True)
    assert keep.tolist() == [False, False, True, True, False, True] and dropped == 3
    keep, dropped = r_sparse.latest_of_duplicates(indptr, indices, ts, False)
    assert keep.tolist() == [False, False, True, True, False, True] and dropped == 3
    for mod in (r_sparse, k_sparse):  # the same column ending one row and starting the next is no duplicate
        keep, dropped = mod.latest_of_duplicates(
            np.array([0, 2, 2, 4]), np.array([1, 2, 2, 3], dtype=np.int32), ts, True
        )
        assert keep.all() and dropped == 0
        keep, dropped = mod.latest_of_duplicates(np.array([0, 3]), np.array([1, 2, 2], dtype=np.int32), ts, True)
        assert keep.tolist() == [True, False, True] and dropped == 1
    with pytest.raises(ValueError):
        r_sparse.counting_sort(np.array([0, 3]), 3)


# --------------------------------------------------------------------------- synth


def _sampling_problem(rng, n_users, n_items):
    """Degrees (some users above n_items / 8: the Gumbel branch), pre-assigned items covering every item
    (as ``fastmf.data_prep.synth`` assigns them), and the alias table of Zipf-like weights."""
    degrees = rng.integers(1, max(2, n_items // 4), n_users).astype(np.int64)
    degrees[rng.random(n_users) < 0.3] = rng.integers(n_items // 8 + 1, n_items + 1)
    owners = rng.integers(0, n_users, n_items)
    counts = np.bincount(owners, minlength=n_users)
    degrees = np.maximum(degrees, counts)
    pre_indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=pre_indptr[1:])
    pre_items = np.argsort(owners, kind="stable").astype(np.int32)
    weights = (np.arange(1, n_items + 1) + 2.0) ** -1.1
    weights = weights[rng.permutation(n_items)]
    prob, alias = k_sampling.build_alias(weights)
    return degrees, pre_indptr, pre_items, prob, alias, np.log(weights)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(-(2**40), 2**40), n_users=st.integers(1, 40), n_items=st.integers(2, 120))
def test_sample_items_same_items_same_order(seed, n_users, n_items):
    problem = _sampling_problem(np.random.default_rng(abs(seed)), n_users, n_items)
    want = k_synth.sample_items(*problem, seed)
    assert_same(r_synth.sample_items(*problem, seed), want)
    indptr, items = want
    for u in range(n_users):  # distinct items, pre-assigned ones first
        row = items[indptr[u] : indptr[u + 1]]
        assert np.unique(row).size == row.size
        pre = problem[2][problem[1][u] : problem[1][u + 1]]
        np.testing.assert_array_equal(row[: pre.size], pre)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(-(2**40), 2**40),
    n_users=st.integers(1, 30),
    n_items=st.integers(2, 60),
    d=st.integers(0, 8),
    sigma=st.floats(0.1, 1.5),
)
def test_planted_ratings_bit_identical(seed, n_users, n_items, d, sigma):
    rng = np.random.default_rng(abs(seed))
    rows = [np.sort(rng.choice(n_items, rng.integers(0, n_items + 1), replace=False)) for _ in range(n_users)]
    indptr, items = _csr(rows)
    mu, *planted = _rating_model(rng, n_users, n_items, d)
    want = k_synth.planted_ratings(indptr, items, mu, *planted, sigma, seed)
    got = r_synth.planted_ratings(indptr, items, mu, *planted, sigma, seed)
    assert_same(got[0], want[0])
    assert got[1].dtype == np.float32
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-6)


def test_synth_shape_of_the_generator():
    """On the inputs ``fastmf.data_prep.synth.generate`` builds (both branches of the sampler used)."""
    from fastmf.data_prep import synth as dps

    cfg = dps.SynthConfig(users=300, items=200, ratings=20_000, seed=3)
    rng = np.random.default_rng(cfg.seed)
    degrees = dps.user_degrees(cfg.users, cfg.items, cfg.ratings, rng)
    weights = dps.item_weights(cfg.items, cfg.ratings)[dps.popularity_rank_of_items(cfg.items, rng)]
    pre_indptr, pre_items = dps._cover_items(degrees, cfg.items, rng)
    prob, alias = k_sampling.build_alias(weights)
    args = (degrees, pre_indptr, pre_items, prob, alias, np.log(weights), cfg.seed)
    gumbel = 8 * degrees > cfg.items
    assert gumbel.any() and not gumbel.all()
    indptr, items = k_synth.sample_items(*args)
    assert_same(r_synth.sample_items(*args), (indptr, items))
    planted = (
        rng.normal(0, 0.35, cfg.users).astype(np.float32),
        rng.normal(0, 0.45, cfg.items).astype(np.float32),
        rng.normal(0, 0.5, (cfg.users, 8)).astype(np.float32),
        rng.normal(0, 0.5, (cfg.items, 8)).astype(np.float32),
    )
    want = k_synth.planted_ratings(indptr, items, cfg.mu, *planted, cfg.sigma, cfg.seed)
    got = r_synth.planted_ratings(indptr, items, cfg.mu, *planted, cfg.sigma, cfg.seed)
    assert_same(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- sampling


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=60).filter(lambda w: sum(w) > 0))
def test_alias_tables_are_identical(weights):
    weights = np.asarray(weights, dtype=np.float64)
    assert_same(k_sampling.build_alias(weights), r_sampling.build_alias(weights))
