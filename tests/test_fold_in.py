"""Fold-in of a new user against an independent solution of its MAP objective.

With the item side fixed, a new user with ratings ``r_i`` of items ``i`` gets

    (b, u) = argmin lam/2 sum_i E[(r_i - mu - b - b_i - u.V_i)^2] + gamma/2 b^2 + 1/2 u^T diag(tau) u

(ALS and FeatureALS: ``V_i`` fixed, so the expectation is the plain squared error; VI:
``V_i ~ q(V_i) = N(m_i, S_i)`` and ``E[(e - u.V_i)^2] = (e - u.m_i)^2 + u^T S_i u``, with the
learned ``lam_``, ``gamma_``, ``tau_``). The minimiser is computed here as one stacked
least-squares problem with ``scipy.linalg.lstsq``: rows ``sqrt(lam) [1, V_i]`` with targets
``sqrt(lam) (r_i - mu - b_i)``, a row ``[sqrt(gamma), 0]`` and rows ``[0, R]`` with
``R^T R = diag(tau) + lam sum_i S_i``, all with target 0. The model's ``_fold_in_state`` and
the scores of the public ``fold_in`` (``mu + b + b_i + V_i.u``) must match it.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from model_mixin import small_split  # noqa: F401 (fixture)

import fastmf

#: agreement required with the exact minimiser: the models stop after 10 bias/factor alternations,
#: which leaves about 1e-5 at the learned VI precisions (far below what a wrong solution is off by)
TOL = 3e-5


def map_fold_in(mu, item_bias, item_factors, values, lam, gamma, tau, item_cov=None):
    """``(b, u, H)``: the MAP solution of the module docstring and ``H``, the objective's Hessian in ``u``
    (divided by nothing: ``H = lam V^T V + diag(tau) + lam sum_i S_i``). ``item_cov``: the ``S_i``,
    ``(n, D, D)`` or their diagonals ``(n, D)``; None for point-estimate items."""
    v = np.asarray(item_factors, dtype=np.float64)
    n, d = v.shape
    reg = np.diag(np.broadcast_to(np.asarray(tau, dtype=np.float64), (d,)))
    if item_cov is not None:
        cov = np.asarray(item_cov, dtype=np.float64)
        reg = reg + lam * (cov.sum(axis=0) if cov.ndim == 3 else np.diag(cov.sum(axis=0)))
    root = scipy.linalg.cholesky(reg)  # upper: root^T root = reg
    design = np.vstack(
        [
            np.sqrt(lam) * np.hstack([np.ones((n, 1)), v]),
            np.hstack([[[np.sqrt(gamma)]], np.zeros((1, d))]),
            np.hstack([np.zeros((d, 1)), root]),
        ]
    )
    target = np.concatenate([np.sqrt(lam) * (np.asarray(values, np.float64) - mu - item_bias), np.zeros(1 + d)])
    x = scipy.linalg.lstsq(design, target)[0]
    u_cols = design[:, 1:]
    return float(x[0]), x[1:], u_cols.T @ u_cols


def new_user(train, n: int, pattern: str, seed: int = 0):
    """Item indices (among the 80 most rated training items) and ratings of a new user.

    ``low`` / ``high`` users rate far below / above the mean, so the solution has a large bias
    (a wrong sign of the bias in the factor equation shows); ``mixed`` ratings span the scale."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(np.argsort(-train.item_counts, kind="stable")[:80], n, replace=False))
    choices = {
        "low": [0.5, 1.0, 1.5, 2.0, 3.0],
        "high": [5.0, 5.0, 4.5, 4.5, 4.0],
        "mixed": [0.5, 1.0, 2.0, 3.0, 4.0, 5.0],
    }[pattern]
    return idx, rng.choice(choices, n)


def item_arrays(model, idx):
    return (model.item_bias_[idx].astype(np.float64), model.item_factors_[idx].astype(np.float64))


def check_public_scores(model, train, idx, values, b, u, k=25):
    """``fold_in`` returns the top-``k`` unrated items by ``mu + b + b_i + V_i.u`` and exactly those scores."""
    ids = train.item_map.ids[idx]
    got_ids, got_scores = model.fold_in(dict(zip(ids.tolist(), values.tolist())), k=k)
    expected = model.global_mean_ + b + model.item_bias_.astype(np.float64) + model.item_factors_.astype(np.float64) @ u
    assert len(got_ids) == k and not set(got_ids.tolist()) & set(ids.tolist())
    # the scores of the returned items are the closed form (scores pass through float32)
    np.testing.assert_allclose(got_scores, expected[model.item_map_.index_of(got_ids)], rtol=2e-6, atol=2e-6)
    # and they are the k best of the items the user has not rated
    expected[idx] = -np.inf
    np.testing.assert_allclose(got_scores, np.sort(expected)[::-1][:k], rtol=2e-6, atol=2e-6)


# --------------------------------------------------------------------------- ALS and FeatureALS


@pytest.fixture(scope="module", params=["als", "features"])
def point_model(request, small_split):
    if request.param == "als":
        return fastmf.ALS(factors=6, epochs=3).fit(small_split.train)
    return fastmf.FeatureALS(factors=5, epochs=3, feature_bias=True).fit(small_split.train)


@pytest.mark.parametrize("pattern,n", [("low", 25), ("high", 12), ("mixed", 40), ("low", 2)])
def test_fold_in_state_is_the_map_solution(point_model, small_split, pattern, n):
    m = point_model
    idx, values = new_user(small_split.train, n, pattern)
    bias_i, v = item_arrays(m, idx)
    b_exp, u_exp, _ = map_fold_in(m.global_mean_, bias_i, v, values, m.lam, m.gamma, m.tau)
    # the case is not degenerate: a zero vector or a flipped bias term would be far off
    assert abs(b_exp) > 0.05 and np.linalg.norm(u_exp) > 0.05
    b, u = m._fold_in_state(idx, values)
    assert b == pytest.approx(b_exp, rel=TOL, abs=TOL)
    np.testing.assert_allclose(u, u_exp, rtol=TOL, atol=TOL)
    check_public_scores(m, small_split.train, idx, values, b_exp, u_exp)


@pytest.fixture(scope="module")
def als_model(small_split):
    return fastmf.ALS(factors=4, epochs=2, gamma=1.0, tau=0.5).fit(small_split.train)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 30), seed=st.integers(0, 10_000), ratings=st.lists(st.floats(0.5, 5.0), min_size=30, max_size=30)
)
def test_fold_in_state_is_the_map_solution_for_any_ratings(als_model, small_split, n, seed, ratings):
    idx, _ = new_user(small_split.train, n, "mixed", seed)
    values = np.asarray(ratings[:n])
    bias_i, v = item_arrays(als_model, idx)
    b_exp, u_exp, _ = map_fold_in(als_model.global_mean_, bias_i, v, values, 0.1, 1.0, 0.5)
    b, u = als_model._fold_in_state(idx, values)
    assert b == pytest.approx(b_exp, rel=TOL, abs=TOL)
    np.testing.assert_allclose(u, u_exp, rtol=TOL, atol=TOL)


def test_fold_in_is_the_map_solution_with_weak_regularisation(small_split):
    model = fastmf.ALS(factors=4, epochs=3, lam=1.0, gamma=0.1, tau=0.05).fit(small_split.train)
    idx, values = new_user(small_split.train, 5, "mixed", seed=2)  # a new user with few ratings
    bias_i, v = item_arrays(model, idx)
    b_exp, u_exp, _ = map_fold_in(model.global_mean_, bias_i, v, values, 1.0, 0.1, 0.05)
    b, u = model._fold_in_state(idx, values)
    assert b == pytest.approx(b_exp, rel=1e-3, abs=1e-3)
    np.testing.assert_allclose(u, u_exp, rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------- VI


@pytest.fixture(scope="module", params=["full", "diagonal"])
def vi_model(request, small_split):
    return fastmf.VI(factors=5, epochs=3, learn_hyper=True, covariance=request.param).fit(small_split.train)


@pytest.mark.parametrize("pattern,n", [("low", 25), ("high", 10), ("mixed", 60), ("low", 1)])
def test_vi_fold_in_state_is_the_map_solution(vi_model, small_split, pattern, n):
    m = vi_model
    # learned precisions that differ from the constructor's: using those instead would show
    assert m.lam_ != pytest.approx(m.lam) and m.gamma_ != pytest.approx(m.gamma)
    assert np.ptp(m.tau_) > 1e-4
    idx, values = new_user(small_split.train, n, pattern)
    bias_i, v = item_arrays(m, idx)
    b_exp, m_exp, hess = map_fold_in(m.global_mean_, bias_i, v, values, m.lam_, m.gamma_, m.tau_, m.item_cov_[idx])
    assert abs(b_exp) > 0.05 and np.linalg.norm(m_exp) > 0.02
    b, mean, cov = m._fold_in_state(idx, values)
    assert b == pytest.approx(b_exp, rel=TOL, abs=TOL)
    np.testing.assert_allclose(mean, m_exp, rtol=TOL, atol=TOL)
    # q(U) = N(m, S): S is the inverse Hessian (full) or the mean-field variances 1 / diag(H)
    if m.covariance == "full":
        np.testing.assert_allclose(cov @ hess, np.eye(hess.shape[0]), atol=1e-9)
    else:
        np.testing.assert_allclose(cov, 1.0 / np.diag(hess), rtol=1e-9)
    check_public_scores(m, small_split.train, idx, values, b_exp, m_exp)


def test_vi_expected_error_includes_the_item_covariances(vi_model, small_split):
    """The item covariances matter here: the solution without them (plain ridge on the means) is
    measurably different, so a fold-in that ignored them would fail the test above."""
    m = vi_model
    idx, values = new_user(small_split.train, 25, "low")
    bias_i, v = item_arrays(m, idx)
    with_cov = map_fold_in(m.global_mean_, bias_i, v, values, m.lam_, m.gamma_, m.tau_, m.item_cov_[idx])[1]
    without = map_fold_in(m.global_mean_, bias_i, v, values, m.lam_, m.gamma_, m.tau_)[1]
    assert np.abs(with_cov - without).max() > 1e-4


# --------------------------------------------------------------------------- fold_in_predict


def test_fold_in_predict_is_the_folded_in_users_prediction(point_model, small_split):
    m = point_model
    idx, values = new_user(small_split.train, 20, "mixed")
    ratings = {m.item_map_.ids[i].item(): float(r) for i, r in zip(idx, values)}
    bias_i, v = item_arrays(m, np.arange(m.n_items))
    b, u, _ = map_fold_in(m.global_mean_, item_arrays(m, idx)[0], item_arrays(m, idx)[1], values, m.lam, m.gamma, m.tau)
    items = m.item_map_.ids[[0, 5, 17]]
    np.testing.assert_allclose(
        m.fold_in_predict(ratings, items), (m.global_mean_ + b + bias_i + v @ u)[[0, 5, 17]], rtol=TOL, atol=TOL
    )
    with pytest.raises(fastmf.FastMFError, match="no predictive uncertainty"):
        m.fold_in_predict(ratings, items, return_std=True)
    with pytest.raises(fastmf.FastMFError, match="one new user"):
        m.fold_in_predict([ratings], items)


def test_vi_fold_in_predict_carries_the_predictive_sd(vi_model, small_split):
    """sd^2 = s_b + s_i + m^T S_i m + m_i^T S m_i + tr(S S_i) + 1/lam with the new user's posterior N(m, S)
    (the MAP solution and inverse Hessian above), its bias variance s_b = 1/(lam n + gamma) and the
    item's bias variance s_i."""
    m = vi_model
    idx, values = new_user(small_split.train, 15, "mixed")
    ratings = {m.item_map_.ids[i].item(): float(r) for i, r in zip(idx, values)}
    bias_i, v = item_arrays(m, idx)
    b, mean_u, hess = map_fold_in(m.global_mean_, bias_i, v, values, m.lam_, m.gamma_, m.tau_, m.item_cov_[idx])
    cov_u = np.linalg.inv(hess) if m.covariance == "full" else np.diag(1.0 / np.diag(hess))
    items = np.array([3, 40, 99])
    mean, sd = m.fold_in_predict(ratings, m.item_map_.ids[items], return_std=True)
    expected_mean, expected_var = [], []
    for i in items:
        mi = m.item_factors_[i].astype(np.float64)
        si = np.asarray(m.item_cov_[i], dtype=np.float64)
        si = si if si.ndim == 2 else np.diag(si)
        expected_mean.append(m.global_mean_ + b + m.item_bias_[i] + mi @ mean_u)
        expected_var.append(
            mean_u @ si @ mean_u
            + mi @ cov_u @ mi
            + np.trace(cov_u @ si)
            + m.item_bias_var_[i]
            + 1.0 / (m.lam_ * len(idx) + m.gamma_)
            + 1.0 / m.lam_
        )
    np.testing.assert_allclose(mean, expected_mean, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(sd, np.sqrt(expected_var), rtol=1e-4)
    np.testing.assert_allclose(m.fold_in_predict(ratings, m.item_map_.ids[items]), mean)
