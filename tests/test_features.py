"""Hierarchical feature model: closed forms, monotone objective, backends, cold start, add_items, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from model_mixin import ModelTestMixin, small_split  # noqa: F401 (fixture)

import fastmf
from fastmf import load_model
from fastmf.cli import main
from fastmf.common.errors import FastMFError
from fastmf.data_prep.splits import Split
from fastmf.kernels import features as kfeat
from fastmf.kernels import sparse as ksparse
from fastmf.models.als import ALS
from fastmf.models.backend import backend_of
from fastmf.models.features import FeatureALS, FeatureState, item_weights, unique_item_features
from fastmf.reference import features as ref


class TestFeatureALS(ModelTestMixin):
    def make_model(self, **params):
        return FeatureALS(**{"factors": 8, "epochs": 4, "feature_bias": True, **params})


# --------------------------------------------------------------------------- random problems


def _random_problem(seed, n_users, n_items, density, n_features, cold_items=0):
    """Ratings (CSR) and an item-feature CSR; the last ``cold_items`` items have no ratings."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    mask[:, n_items - cold_items :] = False
    rows, cols = np.nonzero(mask)
    vals = rng.choice(np.arange(1, 11) / 2, size=rows.size).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))
    m.sort_indices()
    fmask = rng.random((n_items, n_features)) < 0.3
    fmask[rng.random(n_items) < 0.2] = False  # some items without features
    fptr, fidx = sp.csr_matrix(fmask).indptr.astype(np.int64), sp.csr_matrix(fmask).indices.astype(np.int32)
    return m, fptr, fidx


def _state(
    m,
    fptr,
    fidx,
    n_features,
    d,
    backend,
    seed=0,
    lam=0.7,
    gamma=1.3,
    tau=0.9,
    beta=1.1,
    feature_bias=True,
    reg_scaling="none",
):
    indptr, indices, data = m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32)
    csc = ksparse.transpose_csr(indptr, indices, data, m.shape[1])
    return FeatureState(
        (indptr, indices, data),
        csc,
        m.shape[0],
        m.shape[1],
        d,
        float(data.mean()),
        fptr,
        fidx,
        n_features,
        backend_of(backend),
        seed,
        lam,
        gamma,
        tau,
        beta,
        feature_bias,
        reg_scaling=reg_scaling,
    )


def _w_matrix(fptr, fidx, n_features):
    """The item-feature weight matrix W (W_if = 1/sqrt(|F_i|)) as a dense array."""
    w = item_weights(fptr)
    dense = np.zeros((fptr.size - 1, n_features))
    rows = np.repeat(np.arange(fptr.size - 1), np.diff(fptr))
    dense[rows, fidx] = w[rows]
    return dense


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_item_update_is_the_ridge_solution_around_the_prior_mean(backend):
    n_f, d = 6, 4
    m, fptr, fidx = _random_problem(2, 30, 25, 0.3, n_f, cold_items=2)
    st_ = _state(m, fptr, fidx, n_f, d, backend)
    rng = np.random.default_rng(1)
    st_.user_factors[:] = rng.normal(size=st_.user_factors.shape)
    st_.user_bias[:] = rng.normal(size=30)
    st_.feature_factors[:] = rng.normal(size=(n_f, d))
    st_.feature_biases[:] = rng.normal(size=n_f)
    w = _w_matrix(fptr, fidx, n_f)
    c, mb = w @ st_.feature_factors.astype(np.float64), w @ st_.feature_biases.astype(np.float64)
    st_.item_prior_mean[:], st_.item_prior_bias[:] = c, mb
    v0 = st_.item_factors.astype(np.float64).copy()
    u, bu, mu = st_.user_factors.astype(np.float64), st_.user_bias.astype(np.float64), st_.mu
    lam, gamma, tau = st_.lam, st_.gamma, st_.tau
    st_.item_step()
    mt = m.T.tocsr()
    for i in (0, 11, 22, 23, 24):
        idx = mt.indices[mt.indptr[i] : mt.indptr[i + 1]]
        r = mt.data[mt.indptr[i] : mt.indptr[i + 1]].astype(np.float64)
        # bias: argmin lam/2 sum (r - mu - b_u - b - U.v0)^2 + gamma/2 (b - m_i)^2, as a stacked least squares
        res = r - mu - bu[idx] - u[idx] @ v0[i]
        a = np.concatenate([np.sqrt(lam) * np.ones((idx.size, 1)), [[np.sqrt(gamma)]]])
        b = scipy.linalg.lstsq(a, np.concatenate([np.sqrt(lam) * res, [np.sqrt(gamma) * mb[i]]]))[0][0]
        assert st_.item_bias[i] == pytest.approx(b, rel=1e-5, abs=1e-5)
        # factors: [sqrt(lam) U; sqrt(tau) I] v = [sqrt(lam) (r - mu - b_u - b); sqrt(tau) c_i]
        design = np.vstack([np.sqrt(lam) * u[idx], np.sqrt(tau) * np.eye(d)])
        target = np.concatenate([np.sqrt(lam) * (r - mu - bu[idx] - b), np.sqrt(tau) * c[i]])
        np.testing.assert_allclose(st_.item_factors[i], scipy.linalg.lstsq(design, target)[0], rtol=1e-4, atol=1e-4)
    # items without ratings sit exactly on their prior means
    np.testing.assert_allclose(st_.item_factors[-2:], c[-2:], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(st_.item_bias[-2:], mb[-2:], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("module", [kfeat, ref], ids=["numba", "numpy"])
def test_feature_cycle_converges_to_the_joint_ridge_solution(module):
    n_items, n_f, d, tau, beta = 40, 7, 3, 0.8, 1.7
    _, fptr, fidx = _random_problem(5, 10, n_items, 0.3, n_f)
    fptr, fidx = unique_item_features(fptr, fidx, n_f)
    rng = np.random.default_rng(3)
    v = rng.normal(size=(n_items, d))
    feats = rng.normal(size=(n_f, d))
    w = _w_matrix(fptr, fidx, n_f)
    weights = item_weights(fptr)
    fptr_t, perm = ksparse.counting_sort(fidx, n_f)
    items = ksparse.row_ids(fptr)[perm]
    prior = w @ feats
    # one update of feature 0: tau sum_i w_i (v_i - w_i sum_{l != 0} F_l) / (beta + tau sum_i w_i^2)
    rest = w[:, 1:] @ feats[1:]
    has0 = w[:, 0] > 0
    expected0 = tau * w[has0, 0] @ (v[has0] - rest[has0]) / (beta + tau * np.sum(w[has0, 0] ** 2))
    module.feature_cycle(fptr_t, items, weights, v, prior, feats, tau, beta, np.zeros(0))
    np.testing.assert_allclose(feats[0], expected0, rtol=1e-10)
    np.testing.assert_allclose(prior, w @ feats, rtol=1e-9, atol=1e-12)  # c kept current
    for _ in range(300):
        module.feature_cycle(fptr_t, items, weights, v, prior, feats, tau, beta, np.zeros(0))
    # minimiser of tau/2 |V - W F|^2 + beta/2 |F|^2, solved independently
    joint = np.linalg.solve(beta * np.eye(n_f) + tau * w.T @ w, tau * w.T @ v)
    np.testing.assert_allclose(feats, joint, rtol=1e-6, atol=1e-8)
    out = np.empty_like(prior)
    module.prior_means(fptr, fidx, weights, feats, out)
    np.testing.assert_allclose(out, w @ feats, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("module", [kfeat, ref], ids=["numba", "numpy"])
def test_count_weighted_feature_cycle_converges_to_the_weighted_ridge_solution(module):
    """With item scales s_i the feature step minimises tau/2 sum_i s_i |V_i - c_i|^2 + beta/2 |F|^2."""
    n_items, n_f, d, tau, beta = 30, 5, 2, 0.6, 1.3
    _, fptr, fidx = _random_problem(9, 10, n_items, 0.3, n_f)
    fptr, fidx = unique_item_features(fptr, fidx, n_f)
    rng = np.random.default_rng(1)
    v, feats = rng.normal(size=(n_items, d)), np.zeros((n_f, d))
    scale = rng.integers(1, 20, n_items).astype(np.float64)
    w = _w_matrix(fptr, fidx, n_f)
    fptr_t, perm = ksparse.counting_sort(fidx, n_f)
    items = ksparse.row_ids(fptr)[perm]
    prior = w @ feats
    for _ in range(500):
        module.feature_cycle(fptr_t, items, item_weights(fptr), v, prior, feats, tau, beta, scale)
    joint = np.linalg.solve(beta * np.eye(n_f) + tau * w.T @ (scale[:, None] * w), tau * w.T @ (scale[:, None] * v))
    np.testing.assert_allclose(feats, joint, rtol=1e-6, atol=1e-8)


def test_numba_feature_kernels_equal_the_reference():
    n_items, n_f, d = 60, 9, 5
    _, fptr, fidx = _random_problem(8, 10, n_items, 0.3, n_f)
    rng = np.random.default_rng(4)
    v = rng.normal(size=(n_items, d))
    feats = rng.normal(size=(n_f, d))
    weights = item_weights(fptr)
    fptr_t, perm = ksparse.counting_sort(fidx, n_f)
    items = ksparse.row_ids(fptr)[perm]
    outs = []
    for module in (kfeat, ref):
        f, p = feats.copy(), _w_matrix(fptr, fidx, n_f) @ feats
        for _ in range(3):
            module.feature_cycle(fptr_t, items, weights, v, p, f, 1.3, 0.6, np.zeros(0))
        outs.append((f, p))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-12, atol=1e-13)


def test_repeated_item_features_are_dropped():
    ptr, idx = unique_item_features(np.array([0, 3, 3, 5]), np.array([2, 0, 2, 1, 1], dtype=np.int32), 3)
    assert ptr.tolist() == [0, 2, 2, 3] and idx.tolist() == [0, 2, 1]


# --------------------------------------------------------------------------- objective


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    d=st.integers(0, 5),
    n_users=st.integers(2, 20),
    n_items=st.integers(2, 20),
    n_features=st.integers(1, 6),
    density=st.floats(0.05, 0.9),
    lam=st.floats(0.01, 5),
    gamma=st.floats(0.0, 5),
    tau=st.floats(0.01, 5),
    beta=st.floats(0.01, 5),
    feature_bias=st.booleans(),
    cold=st.integers(0, 2),
    backend=st.sampled_from(["numba", "numpy"]),
    reg_scaling=st.sampled_from(["none", "count"]),
)
def test_objective_never_increases_per_step(
    seed, d, n_users, n_items, n_features, density, lam, gamma, tau, beta, feature_bias, cold, backend, reg_scaling
):
    m, fptr, fidx = _random_problem(seed, n_users, n_items, density, n_features, cold_items=min(cold, n_items - 1))
    st_ = _state(m, fptr, fidx, n_features, d, backend, seed, lam, gamma, tau, beta, feature_bias, reg_scaling)
    previous = st_.objective()
    for _ in range(3):
        for step in (st_.user_step, st_.item_step, st_.feature_step):
            step()
            current = st_.objective()
            assert current <= previous + 1e-4 * max(1.0, abs(previous))
            previous = current


# --------------------------------------------------------------------------- backends and model behaviour


def test_backends_agree_every_epoch(small_split):
    runs = {
        b: FeatureALS(factors=10, epochs=5, feature_bias=True, backend=b).fit(
            small_split.train, eval_set=small_split.test
        )
        for b in ("numba", "numpy")
    }
    for a, b in zip(runs["numba"].history_, runs["numpy"].history_):
        assert abs(a["train_rmse"] - b["train_rmse"]) < 1e-4 and abs(a["test_rmse"] - b["test_rmse"]) < 1e-4
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-4)
        assert a["feature_seconds"] >= 0 and a["feature_seconds"] <= a["seconds"]
    np.testing.assert_allclose(runs["numba"].feature_factors_, runs["numpy"].feature_factors_, atol=2e-3)
    np.testing.assert_allclose(runs["numba"].feature_bias_, runs["numpy"].feature_bias_, atol=2e-4)


def test_without_features_it_is_plain_als(small_split):
    train = small_split.train
    bare = fastmf.Dataset(train.user_map, train.item_map, train.indptr, train.indices, train.data)
    with pytest.warns(UserWarning, match="no item features"):
        f = FeatureALS(factors=6, epochs=3, feature_bias=True).fit(bare)
    a = ALS(factors=6, epochs=3).fit(bare)
    np.testing.assert_array_equal(f.item_factors_, a.item_factors_)
    np.testing.assert_array_equal(f.user_bias_, a.user_bias_)
    assert f.feature_factors_.shape == (0, 6)


def test_cold_items_get_their_prior_mean(small_split):
    model = FeatureALS(factors=6, epochs=3, feature_bias=True).fit(small_split.train)
    cold = np.flatnonzero(model.item_counts_ == 0)
    assert cold.size > 0
    w = _w_matrix(model.item_feature_indptr_, model.item_feature_indices_, len(model.feature_names_))
    np.testing.assert_allclose(model.item_factors_[cold], (w @ model.feature_factors_)[cold], atol=1e-6)
    np.testing.assert_allclose(model.item_bias_[cold], (w @ model.feature_bias_)[cold], atol=1e-6)


def _cold_split(data, seed=0):
    """10% of items held out entirely, 10% keep 1-3 training ratings, the rest: 10% of ratings to test."""
    rng = np.random.default_rng(seed)
    group = rng.choice(3, size=data.n_items, p=[0.1, 0.1, 0.8])
    keep = rng.integers(1, 4, size=data.n_items)
    order = np.lexsort((rng.random(data.n_ratings), data.indices))
    starts = np.searchsorted(data.indices[order], np.arange(data.n_items))
    rank = np.empty(data.n_ratings, dtype=np.int64)
    rank[order] = np.arange(data.n_ratings) - starts[data.indices[order]]
    g = data.indices
    test = np.where(group[g] == 0, True, np.where(group[g] == 1, rank >= keep[g], rng.random(data.n_ratings) < 0.1))
    return Split(data.subset(~test), data.subset(test), "cold")


@pytest.mark.parametrize("source", ["ml-latest-small", "synthetic"])
def test_features_beat_als_on_cold_strata(source, tmp_path):
    if source == "synthetic":  # genres planted from the true item factors
        from fastmf.data_prep.synth import SynthConfig, generate, write_synth

        cfg = SynthConfig(users=600, items=800, ratings=30_000, seed=5)
        write_synth(str(tmp_path / "s"), generate(cfg), cfg)
        data = fastmf.load_dataset(str(tmp_path / "s"))
    else:
        data = fastmf.load_dataset()
    split = _cold_split(data)
    feat = FeatureALS(epochs=20).fit(split.train).evaluate(split.test)["rmse_by_stratum"]
    als = ALS(epochs=20).fit(split.train).evaluate(split.test)["rmse_by_stratum"]
    for stratum in ("0", "1-3"):
        assert feat[stratum]["count"] > 1000 and feat[stratum]["count"] == als[stratum]["count"]
        # observed gaps are 0.03-0.05 RMSE on both data sets
        assert feat[stratum]["rmse"] < als[stratum]["rmse"] - 0.015, (stratum, feat, als)


# --------------------------------------------------------------------------- new items


@pytest.fixture(scope="module")
def genre_model(small_split):
    return FeatureALS(factors=8, epochs=5, feature_bias=True).fit(small_split.train)


def test_add_items_predict_and_recommend(genre_model, small_split, tmp_path):
    model = FeatureALS(**genre_model.get_params()).fit(small_split.train)
    n_before = model.n_items
    model.add_items({10_000_001: ["Adventure", "animation"], 10_000_000: []})
    assert model.n_items == n_before + 2
    f = {n: k for k, n in enumerate(model.feature_names_)}
    pair = [f["Adventure"], f["Animation"]]
    c = model.feature_factors_[pair].astype(np.float64).sum(axis=0) / np.sqrt(2)
    m = float(model.feature_bias_[pair].astype(np.float64).sum()) / np.sqrt(2)
    uid = small_split.train.user_map.ids[0]
    u = model.user_index(uid)
    expected = model.global_mean_ + model.user_bias_[u] + m + model.user_factors_[u].astype(np.float64) @ c
    pred = model.predict([uid, uid], [10_000_001, 10_000_000])
    assert pred[0] == pytest.approx(expected, rel=1e-5)
    assert pred[1] == pytest.approx(model.global_mean_ + model.user_bias_[u], rel=1e-5)  # no features: zero prior
    assert model.predict_new(uid, ["Animation", "Adventure"]) == pytest.approx(expected, rel=1e-5)
    items, scores = model.recommend(uid, k=model.n_items)
    assert 10_000_001 in items.tolist()
    assert scores[items.tolist().index(10_000_001)] == pytest.approx(expected, rel=1e-5)
    loaded = load_model(model.save(str(tmp_path / "m")))
    np.testing.assert_allclose(loaded.predict([uid], [10_000_001]), pred[:1], rtol=1e-6)
    with pytest.raises(FastMFError, match="already in the model"):
        model.add_items({10_000_001: ["Drama"]})
    with pytest.raises(FastMFError, match="unknown feature 'Cartoons'"):
        model.add_items({10_000_002: ["Cartoons"]})


def test_similar_is_the_top_cosine(genre_model):
    ids, sims = genre_model.similar(["Adventure", "Animation"], k=5)
    c, _ = genre_model.prior_of(["Adventure", "Animation"])
    v = genre_model.item_factors_.astype(np.float64)
    norms = np.linalg.norm(v, axis=1)
    cos = (v @ c) / np.where(norms > 0, norms, np.inf) / np.linalg.norm(c)  # zero vectors: cosine 0
    best = np.argsort(-cos)[:5]
    np.testing.assert_allclose(sims, cos[best], rtol=1e-5)
    assert set(ids.tolist()) == set(genre_model.item_map_.ids[best].tolist())
    popular_ids, _ = genre_model.similar(["Adventure", "Animation"], k=5, min_item_ratings=20)
    assert np.all(genre_model.item_counts_[genre_model.item_map_.index_of(popular_ids)] >= 20)


# --------------------------------------------------------------------------- command line


def test_cli_train_compare_als_and_similar(tmp_path):
    runner = CliRunner()
    out = tmp_path / "model"
    args = [
        "train",
        "--model",
        "features",
        "--factors",
        "6",
        "--epochs",
        "4",
        "--feature-bias",
        "--beta",
        "2",
        "--compare-als",
        "--out",
        str(out),
    ]
    res = runner.invoke(main, args + ["--json", "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["params"]["beta"] == 2 and report["params"]["feature_bias"] is True
    assert all("feature_seconds" in r for r in report["history"])
    assert report["compare_als"]["params"]["factors"] == 6
    for key in ("rmse_by_stratum", "compare_als"):
        strata = report[key] if key == "rmse_by_stratum" else report[key]["rmse_by_stratum"]
        assert set(strata) == {"0", "1-3", "4-20", ">20"}
    text = runner.invoke(main, args + ["-q"])
    assert text.exit_code == 0 and "plain als" in text.output and "features" in text.output
    sim = runner.invoke(
        main, ["similar", str(out), "--features", "Adventure,Animation", "--user", "1", "-k", "4", "--json"]
    )
    assert sim.exit_code == 0, sim.output
    got = json.loads(sim.stdout)
    model = load_model(str(out))
    assert got["new_item_rating"] == pytest.approx(model.predict_new(1, ["Adventure", "Animation"]))
    ids = [r["item_id"] for r in got["items"]]
    assert len(ids) == 4
    np.testing.assert_allclose([r["predicted_rating"] for r in got["items"]], model.predict([1] * 4, ids), rtol=1e-6)
    bad = runner.invoke(main, ["similar", str(out), "--features", "Nope"])
    assert bad.exit_code == 1 and "unknown feature 'Nope'" in bad.output
    als_flag = runner.invoke(main, ["train", "--model", "als", "--beta", "1"])
    assert als_flag.exit_code == 1 and "--beta does not apply" in als_flag.output


def test_cli_item_features_file(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("movieId,tag\n1,pixar\n1,fun\n2,fun\n3114,pixar\n999999,unknown item\n")
    out = tmp_path / "m"
    res = CliRunner().invoke(
        main,
        [
            "train",
            "--model",
            "features",
            "--factors",
            "4",
            "--epochs",
            "2",
            "--item-features",
            str(path),
            "--out",
            str(out),
            "-q",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    model = load_model(str(out))
    assert model.feature_names_ == ["fun", "pixar"]
    rows = model.item_map_.index_of(np.array([1, 2, 3114]))
    feats = [
        model.item_feature_indices_[model.item_feature_indptr_[r] : model.item_feature_indptr_[r + 1]].tolist()
        for r in rows
    ]
    assert feats == [[0, 1], [0], [1]] and model.item_feature_indptr_[-1] == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("movieId\n1\n2\n")
    res = CliRunner().invoke(main, ["train", "--model", "features", "--item-features", str(bad), "-q"])
    assert res.exit_code == 1 and "bad.csv" in res.output and "two columns" in res.output
