"""Predictions, training epochs and evaluation metrics against independent NumPy computations.

* cold ids: ``predict`` gives ``mu + b_i`` for an unseen user on a known item, ``mu + b_u`` for
  a known user on an unseen item and ``mu`` when both are unseen (ALS, FeatureALS, VI); VI's
  predictive standard deviation of a cold id uses the prior ``N(0, diag(1/tau))`` for its factors
  and ``1/gamma`` for its bias (``learn_hyper``; else the bias is a point at 0);
* one and two ALS epochs (and bias-only epochs) recomputed from the closed forms of the module
  docstrings of ``fastmf/als.py`` and ``kernels/als.py``, from the model's initial factors;
* ``evaluate``'s ``test_rmse``, ``test_mae``, per-stratum RMSE and cold counts recomputed from
  the learned arrays, on test data with ids unseen in training.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from model_mixin import small_split  # noqa: F401 (fixture)

import fastmf

COLD_USERS = np.array([-1, 10**9])  # ids that are in no training map
COLD_ITEMS = np.array([-2, 10**9 + 1])

MODELS = {
    "als": lambda: fastmf.ALS(factors=4, epochs=3),
    "features": lambda: fastmf.FeatureALS(factors=4, epochs=3, feature_bias=True),
    "vi-full": lambda: fastmf.VI(factors=4, epochs=3, learn_hyper=True),
    "vi-diagonal": lambda: fastmf.VI(factors=4, epochs=3, learn_hyper=True, covariance="diagonal"),
    "vi-fixed": lambda: fastmf.VI(factors=4, epochs=3),
    "bias": lambda: fastmf.BiasOnly(epochs=3),
}


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request, small_split):
    return MODELS[request.param]().fit(small_split.train)


def known_ids(model, small_split, n=6):
    """Ids of ``n`` users and ``n`` items with training ratings and clearly non-zero biases."""
    train = small_split.train
    users = np.flatnonzero((train.user_counts > 0) & (np.abs(model.user_bias_) > 0.02))[:n]
    items = np.flatnonzero((train.item_counts > 5) & (np.abs(model.item_bias_) > 0.02))[:n]
    assert users.size == n and items.size == n
    return users, items, train.user_map.ids[users], train.item_map.ids[items]


# --------------------------------------------------------------------------- cold predictions


def test_cold_predictions_are_the_bias_closed_forms(fitted, small_split):
    m = fitted
    u, i, uid, iid = known_ids(m, small_split)
    mu, b_u, b_i = m.global_mean_, m.user_bias_.astype(np.float64), m.item_bias_.astype(np.float64)
    n = u.size
    cold_u, cold_i = np.resize(COLD_USERS, n), np.resize(COLD_ITEMS, n)
    # unseen user, known item: mu + b_i
    np.testing.assert_allclose(m.predict(cold_u, iid), mu + b_i[i], rtol=0, atol=1e-9)
    # known user, unseen item: mu + b_u
    np.testing.assert_allclose(m.predict(uid, cold_i), mu + b_u[u], rtol=0, atol=1e-9)
    # both unseen: mu
    np.testing.assert_allclose(m.predict(cold_u, cold_i), np.full(n, mu), rtol=0, atol=1e-12)
    # both known: the full model
    full = (
        mu
        + b_u[u]
        + b_i[i]
        + np.einsum("nd,nd->n", m.user_factors_[u].astype(np.float64), m.item_factors_[i].astype(np.float64))
    )
    np.testing.assert_allclose(m.predict(uid, iid), full, rtol=0, atol=1e-5)
    # all of them in one call, mixed
    users = np.concatenate([cold_u, uid, cold_u, uid])
    items = np.concatenate([iid, cold_i, cold_i, iid])
    np.testing.assert_allclose(
        m.predict(users, items), np.concatenate([mu + b_i[i], mu + b_u[u], np.full(n, mu), full]), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("fitted", ["vi-full", "vi-diagonal", "vi-fixed"], indirect=True)
def test_vi_cold_predictive_moments(fitted, small_split):
    """``predict(return_std=True)``: a cold id's factors have the prior ``N(0, diag(1/tau))`` and its bias
    the prior variance ``1/gamma`` (``learn_hyper``; else 0); ``sd^2 = var(b_u + b_i + U.V) + 1/lam``."""
    m = fitted
    u, i, uid, iid = known_ids(m, small_split)
    n = u.size
    cold_u, cold_i = np.resize(COLD_USERS, n), np.resize(COLD_ITEMS, n)
    prior = 1.0 / m.tau_.astype(np.float64)
    cold_bias = 1.0 / m.gamma_ if m.learn_hyper else 0.0
    noise = 1.0 / m.lam_

    def diag(cov):
        cov = cov.astype(np.float64)
        return cov.diagonal(axis1=1, axis2=2) if cov.ndim == 3 else cov

    m_i, m_u = m.item_factors_[i].astype(np.float64), m.user_factors_[u].astype(np.float64)
    mu, b_u, b_i = m.global_mean_, m.user_bias_.astype(np.float64), m.item_bias_.astype(np.float64)
    # cold user, known item: Var(U.V_i) = sum_d (m_id^2 + S_i,dd) / tau_d
    mean, sd = m.predict(cold_u, iid, return_std=True)
    np.testing.assert_allclose(mean, mu + b_i[i], atol=1e-6)
    var = ((m_i**2 + diag(m.item_cov_[i])) * prior).sum(axis=1) + cold_bias + m.item_bias_var_[i] + noise
    np.testing.assert_allclose(sd**2, var, rtol=1e-5)
    # known user, cold item
    mean, sd = m.predict(uid, cold_i, return_std=True)
    np.testing.assert_allclose(mean, mu + b_u[u], atol=1e-6)
    var = ((m_u**2 + diag(m.user_cov_[u])) * prior).sum(axis=1) + m.user_bias_var_[u] + cold_bias + noise
    np.testing.assert_allclose(sd**2, var, rtol=1e-5)
    # both cold: tr(diag(1/tau)^2) + two prior bias variances + noise
    mean, sd = m.predict(cold_u, cold_i, return_std=True)
    np.testing.assert_allclose(mean, np.full(n, mu), atol=1e-9)
    np.testing.assert_allclose(sd**2, np.full(n, np.sum(prior**2) + 2 * cold_bias + noise), rtol=1e-5)
    if m.learn_hyper:
        assert m.lam_ != pytest.approx(m.lam) and m.gamma_ != pytest.approx(m.gamma)


# --------------------------------------------------------------------------- ALS epochs from the closed forms


def reference_half_sweep(mat, own_bias, own_factors, other_bias, other_factors, mu, lam, gamma, tau):
    """Every row entity in turn: ``b = lam sum(r - mu - b_o - f.g_o) / (lam n + gamma)`` with its current
    factors ``f``, then ``f = (lam G^T G + tau I)^-1 lam G^T (r - mu - b - b_o)``; no ratings: b = 0, f = 0."""
    d = own_factors.shape[1]
    for e in range(mat.shape[0]):
        lo, hi = mat.indptr[e], mat.indptr[e + 1]
        if lo == hi:
            own_bias[e], own_factors[e] = 0.0, 0.0
            continue
        idx = mat.indices[lo:hi]
        res = mat.data[lo:hi].astype(np.float64) - mu - other_bias[idx]
        g = other_factors[idx]
        own_bias[e] = lam * np.sum(res - g @ own_factors[e]) / (lam * (hi - lo) + gamma)
        if d:
            own_factors[e] = np.linalg.solve(lam * g.T @ g + tau * np.eye(d), lam * g.T @ (res - own_bias[e]))


_REFERENCE_CACHE: dict = {}


def reference_als(train, d, epochs, seed, lam, gamma, tau):
    """Memoised :func:`compute_reference_als` (the backends compare with the same recomputation)."""
    key = (id(train), d, epochs, seed, lam, gamma, tau)
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = compute_reference_als(train, d, epochs, seed, lam, gamma, tau)
    return _REFERENCE_CACHE[key]


def compute_reference_als(train, d, epochs, seed, lam, gamma, tau):
    """``epochs`` ALS epochs (users, then items) in float64 from the model's initial state: factors
    ``N(0, 1/sqrt(D))`` drawn with ``default_rng(seed)``, users then items, rounded to float32; biases 0."""
    rng = np.random.default_rng(seed)
    shape_u, shape_i = (train.n_users, d), (train.n_items, d)
    user_f = (
        rng.normal(0.0, 1.0 / np.sqrt(d), shape_u).astype(np.float32).astype(np.float64) if d else np.zeros(shape_u)
    )
    item_f = (
        rng.normal(0.0, 1.0 / np.sqrt(d), shape_i).astype(np.float32).astype(np.float64) if d else np.zeros(shape_i)
    )
    user_b, item_b = np.zeros(train.n_users), np.zeros(train.n_items)
    by_user = sp.csr_matrix((train.data, train.indices, train.indptr), shape=(train.n_users, train.n_items))
    by_item = sp.csr_matrix(by_user.T)
    by_item.sort_indices()
    mu = float(np.mean(train.data, dtype=np.float64))
    for _ in range(epochs):
        reference_half_sweep(by_user, user_b, user_f, item_b, item_f, mu, lam, gamma, tau)
        reference_half_sweep(by_item, item_b, item_f, user_b, user_f, mu, lam, gamma, tau)
    return user_f, item_f, user_b, item_b


# float32 numba kernels, and a NumPy backend that forms r - mu in float32 (see the report):
# both within 1e-5 of the float64 recomputation here; a skipped or wrong step is off by O(0.1)
EPOCH_ATOL = {"numpy": 2e-6, "numba": 1e-5}


@pytest.mark.parametrize("epochs", [1, 2])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_als_epochs_match_the_closed_forms(small_split, backend, epochs):
    train = small_split.train
    assert (train.item_counts == 0).any()  # items without training ratings are covered too
    model = fastmf.ALS(factors=5, epochs=epochs, backend=backend, random_state=3).fit(train)
    user_f, item_f, user_b, item_b = reference_als(train, 5, epochs, 3, model.lam, model.gamma, model.tau)
    atol = EPOCH_ATOL[backend]
    assert model.global_mean_ == pytest.approx(float(np.mean(train.data, dtype=np.float64)), rel=1e-12)
    np.testing.assert_allclose(model.user_bias_, user_b, rtol=0, atol=atol)
    np.testing.assert_allclose(model.user_factors_, user_f, rtol=0, atol=atol)
    np.testing.assert_allclose(model.item_bias_, item_b, rtol=0, atol=atol)
    np.testing.assert_allclose(model.item_factors_, item_f, rtol=0, atol=atol)


@pytest.mark.parametrize("epochs", [1, 2])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_bias_only_epochs_match_the_closed_forms(small_split, backend, epochs):
    train = small_split.train
    model = fastmf.BiasOnly(epochs=epochs, backend=backend).fit(train)
    _, _, user_b, item_b = reference_als(train, 0, epochs, 42, model.lam, model.gamma, 1.0)
    assert model.user_factors_.shape == (train.n_users, 0) and model.item_factors_.shape == (train.n_items, 0)
    np.testing.assert_allclose(model.user_bias_, user_b, rtol=0, atol=EPOCH_ATOL[backend])
    np.testing.assert_allclose(model.item_bias_, item_b, rtol=0, atol=EPOCH_ATOL[backend])


# --------------------------------------------------------------------------- evaluate


def cold_test_set(small_split):
    """The held-out ratings by id, plus ratings of users and items that training never saw
    (each extra rating with its own unseen id, so no (user, item) pair repeats)."""
    test = small_split.test
    users = test.user_map.ids[test.user_of_entry]
    items = test.item_map.ids[test.indices]
    ratings = test.data.astype(np.float64)
    known_u, known_i = users[:40], items[:40]
    extra_u = np.concatenate([-1000 - np.arange(30), known_u[:30], -2000 - np.arange(10)])
    extra_i = np.concatenate([known_i[:30], -3000 - np.arange(30), -4000 - np.arange(10)])
    extra_r = np.random.default_rng(0).choice(np.arange(1, 11) / 2, extra_u.size)
    return np.concatenate([users, extra_u]), np.concatenate([items, extra_i]), np.concatenate([ratings, extra_r])


def independent_predictions(model, users, items):
    """``clip(mu + b_u + b_i + U_u.V_i, lo, hi)`` (the training scale) with an unknown user or item
    contributing nothing, by id."""
    uidx = {v: k for k, v in enumerate(model.user_map_.ids.tolist())}
    iidx = {v: k for k, v in enumerate(model.item_map_.ids.tolist())}
    out = np.empty(len(users))
    for j, (uid, iid) in enumerate(zip(users.tolist(), items.tolist())):
        u, i = uidx.get(uid), iidx.get(iid)
        p = model.global_mean_
        if u is not None:
            p += float(model.user_bias_[u])
        if i is not None:
            p += float(model.item_bias_[i])
        if u is not None and i is not None:
            p += float(model.user_factors_[u].astype(np.float64) @ model.item_factors_[i].astype(np.float64))
        out[j] = min(max(p, model.rating_range_[0]), model.rating_range_[1])
    return out


def test_evaluate_rmse_and_mae_are_independent_computations(fitted, small_split):
    users, items, ratings = cold_test_set(small_split)
    report = fitted.evaluate(fastmf.Dataset.from_arrays(users, items, ratings))
    r = ratings.astype(np.float32).astype(np.float64)  # ratings are stored as float32
    predictions = independent_predictions(fitted, users, items)
    assert predictions.min() == 0.5 or predictions.max() == 5.0  # some scores are off the scale
    err = r - predictions
    assert report["test_rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-6)
    assert report["test_mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-6)
    # per stratum of the item's training count (0 for unseen items), and the cold counts
    train = small_split.train
    item_count = dict(zip(train.item_map.ids.tolist(), train.item_counts.tolist()))
    user_count = dict(zip(train.user_map.ids.tolist(), train.user_counts.tolist()))
    counts = np.array([item_count.get(i, 0) for i in items.tolist()])
    for label, lo, hi in (("0", 0, 0), ("1-3", 1, 3), ("4-20", 4, 20), (">20", 21, np.inf)):
        mask = (counts >= lo) & (counts <= hi)
        got = report["rmse_by_stratum"][label]
        assert got["count"] == int(mask.sum())
        if mask.any():
            assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err[mask] ** 2)), rel=1e-6)
    cold_u = np.array([user_count.get(u, 0) == 0 for u in users.tolist()])
    assert report["cold"]["test_ratings"] == len(ratings)
    assert report["cold"]["cold_user_ratings"] == int(cold_u.sum())
    assert report["cold"]["cold_item_ratings"] == int((counts == 0).sum())
    assert report["cold"]["cold_ratings"] == int((cold_u | (counts == 0)).sum())
