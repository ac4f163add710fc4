"""WRMF (implicit-feedback ALS): closed forms, a monotone objective, backends, fold-in, weights, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from model_mixin import ModelTestMixin, small_split  # noqa: F401 (fixture)

import fastmf
from fastmf.cli import main
from fastmf.common.layout import balanced_blocks
from fastmf.models.backend import backend_of
from fastmf.models.wrmf import WRMFState


class TestWRMF(ModelTestMixin):
    backend_rtol = 1e-3

    def make_model(self, **params):
        return fastmf.WRMF(**{"factors": 8, "epochs": 3, **params})


class TestWRMFCholesky(ModelTestMixin):
    def make_model(self, **params):
        return fastmf.WRMF(**{"factors": 8, "epochs": 3, "solver": "cholesky", **params})


def _problem(seed, n_users, n_items, density):
    """A random implicit problem: CSR and CSC of observed pairs with positive values."""
    rng = np.random.default_rng(seed)
    m = sp.random(
        n_users,
        n_items,
        density=density,
        random_state=rng,
        format="csr",
        data_rvs=lambda k: rng.choice([1.0, 2.0, 5.0], k),
    )
    m.sort_indices()
    csr = (m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32))
    t = m.tocsc()
    t.sort_indices()
    csc = (t.indptr.astype(np.int64), t.indices.astype(np.int32), t.data.astype(np.float32))
    return m, csr, csc


def _state(backend, m, csr, csc, d=4, seed=0, cg_steps=0, lam=0.3, alpha=2.0, log_scaling=False):
    return WRMFState(
        csr,
        csc,
        m.shape[0],
        m.shape[1],
        d,
        backend_of(backend),
        seed,
        lam,
        alpha,
        1.0,
        log_scaling,
        cg_steps,
        init_std=0.3,
    )


def brute_objective(m, x, y, lam, alpha, log_scaling=False):
    """``sum over all pairs of c (p - x.y)^2 + lam (|X|^2 + |Y|^2)``, pair by pair."""
    dense = m.toarray()
    p = (dense > 0).astype(float)
    r = dense
    c = 1.0 + alpha * (np.log1p(r) if log_scaling else r)
    s = x.astype(float) @ y.astype(float).T
    return float(np.sum(c * (p - s) ** 2) + lam * (np.sum(x.astype(float) ** 2) + np.sum(y.astype(float) ** 2)))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("log_scaling", [False, True])
def test_objective_is_the_sum_over_all_pairs(backend, log_scaling):
    m, csr, csc = _problem(1, 12, 9, 0.3)
    state = _state(backend, m, csr, csc, log_scaling=log_scaling)
    want = brute_objective(m, state.user_factors, state.item_factors, 0.3, 2.0, log_scaling)
    assert state.objective() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_user_update_is_the_closed_form(backend):
    m, csr, csc = _problem(2, 20, 15, 0.25)
    state = _state(backend, m, csr, csc)
    y = state.item_factors.astype(float)
    state._sweep(state.csr, state.user_factors, state.item_factors, state.user_blocks)
    dense = m.toarray()
    for u in (0, 7, 19):
        c = 1.0 + 2.0 * dense[u]
        p = (dense[u] > 0).astype(float)
        a = (y.T * c) @ y + 0.3 * np.eye(4)  # the full weighted ridge problem over every item
        np.testing.assert_allclose(state.user_factors[u], np.linalg.solve(a, (y.T * c) @ p), rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    d=st.integers(1, 6),
    n_users=st.integers(2, 25),
    n_items=st.integers(2, 25),
    density=st.floats(0.05, 0.6),
    lam=st.floats(0.01, 5.0),
    alpha=st.floats(0.0, 20.0),
    cg_steps=st.sampled_from([0, 1, 3]),
    backend=st.sampled_from(["numba", "numpy"]),
)
def test_objective_never_increases_per_half_sweep(seed, d, n_users, n_items, density, lam, alpha, cg_steps, backend):
    m, csr, csc = _problem(seed, n_users, n_items, density)
    state = _state(backend, m, csr, csc, d, seed, cg_steps, lam, alpha)
    before = state.objective()
    rtol = 2e-5 if backend == "numba" else 1e-10
    for _ in range(2):
        for mat, own, other, blocks in (
            (state.csr, state.user_factors, state.item_factors, state.user_blocks),
            (state.csc, state.item_factors, state.user_factors, state.item_blocks),
        ):
            state._sweep(mat, own, other, blocks)
            after = state.objective()
            assert after <= before + rtol * abs(before) + 1e-9
            before = after


def test_backends_agree_on_a_sweep():
    m, csr, csc = _problem(3, 40, 30, 0.2)
    states = {b: _state(b, m, csr, csc, d=5, cg_steps=3) for b in ("numba", "numpy")}
    for s in states.values():
        s.epoch()
    np.testing.assert_allclose(states["numba"].user_factors, states["numpy"].user_factors, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(states["numba"].item_factors, states["numpy"].item_factors, rtol=1e-4, atol=1e-5)


def test_cg_approaches_the_exact_solution():
    m, csr, csc = _problem(4, 30, 20, 0.3)
    exact, cg = (_state("numba", m, csr, csc, d=5, cg_steps=k) for k in (0, 12))
    exact._sweep(exact.csr, exact.user_factors, exact.item_factors, exact.user_blocks)
    cg._sweep(cg.csr, cg.user_factors, cg.item_factors, cg.user_blocks)
    np.testing.assert_allclose(cg.user_factors, exact.user_factors, rtol=1e-3, atol=1e-4)


def test_gram_is_the_product_in_a_fixed_order():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(10_000, 7)).astype(np.float32)
    g = backend_of("numba").wrmf.gram(f)
    np.testing.assert_allclose(g, f.astype(float).T @ f.astype(float), rtol=1e-5)
    assert np.array_equal(g, g.T)
    blocks = balanced_blocks(np.arange(11, dtype=np.int64), 3, 4)
    assert blocks[0] == 0 and blocks[-1] == 10


def test_implicit_weights_are_the_values():
    users, items = np.repeat(np.arange(30), 4), (np.arange(120) * 7) % 25
    ones = fastmf.Dataset.from_arrays(users, items, np.ones(120), rating_range=None)
    weights = np.where(np.arange(120) % 3 == 0, 10.0, 1.0)
    weighted = fastmf.Dataset.from_arrays(users, items, weights, rating_range=None)
    a = fastmf.WRMF(factors=4, epochs=2, solver="cholesky").fit(ones)
    b = fastmf.WRMF(factors=4, epochs=2, solver="cholesky").fit(weighted)
    assert not np.allclose(a.user_factors_, b.user_factors_)


def test_fold_in_is_the_users_exact_update(small_split):
    model = fastmf.WRMF(factors=6, epochs=3, solver="cholesky").fit(small_split.train)
    u = int(np.argmax(np.diff(model.positive_indptr_)))
    seen = model.positive_indices_[model.positive_indptr_[u] : model.positive_indptr_[u + 1]]
    _, x = model._fold_in_state(seen, np.full(seen.size, 5.0))
    y = model.item_factors_.astype(float)
    c = np.ones(model.n_items)
    c[seen] += model.alpha
    p = np.zeros(model.n_items)
    p[seen] = 1.0
    a = (y.T * c) @ y + model.lam * np.eye(6)
    np.testing.assert_allclose(x, np.linalg.solve(a, (y.T * c) @ p), rtol=1e-6)
    with pytest.raises(fastmf.FastMFError, match="interaction"):
        model._fold_in_state(seen[:2], np.array([1.0, 2.0]))  # below the threshold: nothing liked


def test_cli_train_save_recommend_and_compare(tmp_path):
    runner = CliRunner()
    out = tmp_path / "w"
    res = runner.invoke(
        main,
        [
            "train",
            "--model",
            "wrmf",
            "--factors",
            "8",
            "--epochs",
            "3",
            "--solver",
            "cholesky",
            "--out",
            str(out),
            "--json",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["params"]["solver"] == "cholesky" and 0.5 < report["auc"] <= 1
    assert all(a["objective"] >= b["objective"] for a, b in zip(report["history"], report["history"][1:]))
    res = runner.invoke(main, ["recommend", str(out), "--user", "1", "-k", "5", "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        main,
        [
            "compare",
            "--models",
            "popular,wrmf",
            "--param",
            "wrmf.factors=8",
            "--param",
            "wrmf.epochs=2",
            "--json",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["models"]
    assert [r["model"] for r in rows] == ["popular", "wrmf"]
    res = runner.invoke(main, ["train", "--model", "wrmf", "--cg-steps", "0"])
    assert res.exit_code == 1 and "cg_steps" in res.stderr
