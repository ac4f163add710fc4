"""Variational Bayes MF: updates vs closed forms, the exact ELBO and its monotonicity, learned
precisions, predictive uncertainty and calibration, ranking strategies, backends, CLI.

Expected values come from independent computations: scipy/numpy linear algebra for the
updates, scipy densities and entropies for the ELBO, Monte Carlo for the predictive
variance and the posterior draws, and ALS fits for the accuracy comparison.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import scipy.stats
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from model_mixin import ModelTestMixin, small_split  # noqa: F401 (fixture)

import fastmf
from fastmf.cli import main
from fastmf.common.errors import FastMFError
from fastmf.common.layout import pack_rows
from fastmf.data_prep.splits import random_split
from fastmf.data_prep.synth import SynthConfig, generate
from fastmf.kernels import sparse as ksparse
from fastmf.kernels import vi as kvi
from fastmf.models.als import ALS
from fastmf.models.backend import backend_of
from fastmf.models.vi import VI, VIState


class TestVI(ModelTestMixin):
    backend_rtol = 1e-3

    def make_model(self, **params):
        return VI(**{"factors": 6, "epochs": 4, "learn_hyper": True, **params})


class TestVIDiagonal(ModelTestMixin):
    backend_rtol = 1e-3

    def make_model(self, **params):
        return VI(**{"factors": 6, "epochs": 4, "covariance": "diagonal", **params})


# --------------------------------------------------------------------------- helpers


def _random_problem(seed, n_users, n_items, density):
    """Random half-star ratings; every user has one; the last item may have none."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, max(1, n_items - 1), n_users)] = True
    mask[:, -1] &= n_items < 4  # on most problems one item is left without ratings (it keeps the prior)
    rows, cols = np.nonzero(mask)
    vals = rng.choice(np.arange(1, 11) / 2, size=rows.size).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))
    m.sort_indices()
    return m


def _state(m, d, backend, covariance, seed=0, lam=0.7, gamma=1.3, tau=0.9, learn_hyper=False, reg_scaling="none"):
    indptr, indices, data = m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32)
    csc = ksparse.transpose_csr(indptr, indices, data, m.shape[1])
    return VIState(
        (indptr, indices, data),
        csc,
        m.shape[0],
        m.shape[1],
        d,
        float(data.mean()),
        backend_of(backend),
        seed,
        lam,
        gamma,
        tau,
        covariance,
        learn_hyper,
        reg_scaling,
    )


def _prior_scales(state, reg_scaling):
    """``rho_e`` of the users and of the items, from the rating counts: ``max(n_e, 1)`` with count, else 1."""
    indptr, indices, _ = state.csr
    counts = np.diff(indptr), np.bincount(indices, minlength=state.items.mean.shape[0])
    return tuple(np.maximum(c, 1.0) if reg_scaling == "count" else np.ones(c.size) for c in counts)


def _covariances(side) -> np.ndarray:
    cov = side.cov.astype(np.float64)
    return cov if cov.ndim == 3 else np.stack([np.diag(c) for c in cov])


def _randomise_items(state, seed):
    """Give the items random means, SPD covariances (diagonal ones for that option) and biases."""
    rng = np.random.default_rng(seed)
    items = state.items
    n, d = items.mean.shape
    items.mean[:] = rng.normal(0, 0.7, (n, d))
    items.bias[:] = rng.normal(0, 0.3, n)
    if items.cov.ndim == 3:
        x = rng.normal(0, 0.3, (n, d, d))
        items.cov[:] = x @ x.transpose(0, 2, 1) + 0.05 * np.eye(d)
        items.rows = pack_rows(items.mean, items.cov, items.bias, items.mean.dtype) if items.rows is not None else None
    else:
        items.cov[:] = rng.uniform(0.05, 0.5, (n, d))
    items.logdet[:] = np.linalg.slogdet(_covariances(items))[1]


def _direct_elbo(state, tau_users=None, tau_items=None, bias_var=None, reg_scaling="none") -> float:
    """The ELBO from scipy densities and entropies, rating by rating and entity by entity.

    With ``learn_hyper`` the biases are Gaussian, ``q(b_e) = N(b_e, bias_var[side][e])`` (default:
    the state's variances) under the prior ``N(0, 1/(gamma rho_e))``; else point estimates with the
    penalty ``gamma rho_e/2 b^2``. ``tau_users``/``tau_items``: separate prior precisions (default ``tau``);
    entity ``e``'s factors have the prior ``N(0, (rho_e diag(tau))^-1)`` (``rho_e``: :func:`_prior_scales`)."""
    indptr, indices, data = state.csr
    users = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    s_u, s_i = state.bias_variances() if bias_var is None else bias_var
    mu_u = state.users.mean[users].astype(np.float64)
    mu_i = state.items.mean[indices].astype(np.float64)
    su, si = _covariances(state.users)[users], _covariances(state.items)[indices]
    pred = state.mu + state.users.bias[users] + state.items.bias[indices] + np.einsum("jd,jd->j", mu_u, mu_i)
    # Var(U.V) = E[(U.V)^2] - (E U.V)^2 = tr(E[UU^T] E[VV^T]) - (m_u.m_i)^2
    pu = np.einsum("jp,jq->jpq", mu_u, mu_u) + su
    pi = np.einsum("jp,jq->jpq", mu_i, mu_i) + si
    var = np.einsum("jpq,jqp->j", pu, pi) - np.einsum("jd,jd->j", mu_u, mu_i) ** 2
    var += s_u[users] + s_i[indices]  # the biases are independent of the factors under q
    lik = np.sum(scipy.stats.norm.logpdf(data, pred, 1.0 / np.sqrt(state.lam))) - 0.5 * state.lam * var.sum()
    kl = 0.0
    rhos = _prior_scales(state, reg_scaling)
    for side, tau, rho in ((state.users, tau_users, rhos[0]), (state.items, tau_items, rhos[1])):
        tau = state.tau if tau is None else tau
        for m, s, r in zip(side.mean.astype(np.float64), _covariances(side), rho):
            prior = scipy.stats.multivariate_normal(np.zeros(tau.size), np.diag(1.0 / (r * tau)))
            cross = -prior.logpdf(m) + 0.5 * r * np.sum(tau * np.diag(s))  # -E_q[log p]
            kl += cross - scipy.stats.multivariate_normal(m, s).entropy()
    for side, s, rho in ((state.users, s_u, rhos[0]), (state.items, s_i, rhos[1])):
        b = side.bias.astype(np.float64)
        if not state.learn_hyper:
            kl += 0.5 * state.gamma * np.sum(rho * b**2)
        else:  # -E_q[log p(b)] - H[q(b)]
            bias_prior = scipy.stats.norm(0.0, 1.0 / np.sqrt(state.gamma * rho))
            kl += np.sum(
                -bias_prior.logpdf(b) + 0.5 * state.gamma * rho * s - scipy.stats.norm(b, np.sqrt(s)).entropy()
            )
    return float(lik - kl)


# --------------------------------------------------------------------------- updates


@pytest.mark.parametrize("reg_scaling", ["none", "count"])
def test_scattered_item_sweep_matches_the_gather(reg_scaling):
    """The numba item step sums its moments by scattering user rows (flushing float32 runs of
    GRAM_BLOCK ratings into float64); it must give what gathering over the CSC gives, also for
    items with several flushes, and scale each item's prior alike."""
    rng = np.random.default_rng(3)
    m = _random_problem(5, 400, 30, 0.05).tolil()
    m[:, 0] = rng.choice(np.arange(1, 11) / 2, size=(400, 1))  # item 0: 400 ratings, 3 flushes
    m[:150, 1] = 4.0  # item 1: 150 ratings, one flush
    m = m.tocsr()
    m.sort_indices()
    state = _state(m, 4, "numba", "full", reg_scaling=reg_scaling)
    for _ in range(2):  # the second round checks that the accumulators were consumed and reset
        state.user_step()
        gather = copy.deepcopy(state.items)
        kvi.half_sweep_full(
            *state.csc,
            state.mu,
            gather.bias,
            gather.mean,
            gather.cov,
            gather.rows,
            gather.logdet,
            state.users.rows,
            state.lam,
            state.gamma,
            state.tau,
            state.item_blocks,
            gather.esse,
            gather.prior_scale,
        )
        state.item_step()
        for name in ("bias", "mean", "cov", "rows", "logdet", "esse"):
            np.testing.assert_allclose(getattr(state.items, name), getattr(gather, name), rtol=1e-4, atol=1e-6)


def _user_step_from_random_items(m, d, backend, covariance, item_seed, reg_scaling="none"):
    """A state whose item posteriors are random, before and after one user step: returns the
    state (swept), the users' previous means, and the items' means, covariances and biases."""
    state = _state(m, d, backend, covariance, reg_scaling=reg_scaling)
    _randomise_items(state, item_seed)
    u0 = state.users.mean.astype(np.float64).copy()
    items = state.items
    s_items = _covariances(items) if covariance == "full" else items.cov.astype(np.float64)
    v, bi = items.mean.astype(np.float64), items.bias
    state.user_step()
    return state, u0, v, s_items, bi


def _user_row(m, u):
    """Item indices and float64 ratings of row ``u`` of a CSR matrix."""
    return m.indices[m.indptr[u] : m.indptr[u + 1]], m.data[m.indptr[u] : m.indptr[u + 1]].astype(np.float64)


@pytest.mark.parametrize("reg_scaling", ["none", "count"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_full_user_update_is_the_closed_form(backend, reg_scaling):
    m = _random_problem(1, 30, 40, 0.3)
    state, u0, v, s_items, bi = _user_step_from_random_items(m, 5, backend, "full", 2, reg_scaling)
    lam = state.lam
    for u in (0, 11, 29):
        idx, r = _user_row(m, u)
        # weighted-lambda: the prior N(0, (n_u diag(tau))^-1) and the bias penalty gamma n_u
        rho = idx.size if reg_scaling == "count" else 1
        gamma, tau = rho * state.gamma, rho * state.tau
        # bias: 1-D ridge problem on the expected residuals (the expectation of the ALS update)
        res = r - state.mu - bi[idx] - v[idx] @ u0[u]
        design = np.concatenate([np.sqrt(lam) * np.ones((idx.size, 1)), [[np.sqrt(gamma)]]])
        b = scipy.linalg.lstsq(design, np.concatenate([np.sqrt(lam) * res, [0.0]]))[0][0]
        assert state.users.bias[u] == pytest.approx(b, rel=1e-5, abs=1e-6)
        a = np.diag(tau) + lam * (v[idx].T @ v[idx] + s_items[idx].sum(axis=0))
        cov = scipy.linalg.inv(a)
        mean = cov @ (lam * v[idx].T @ (r - state.mu - b - bi[idx]))
        np.testing.assert_allclose(state.users.cov[u], cov, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(state.users.mean[u], mean, rtol=1e-4, atol=1e-5)
        assert state.users.logdet[u] == pytest.approx(-np.linalg.slogdet(a)[1], rel=1e-6)


@pytest.mark.parametrize("reg_scaling", ["none", "count"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_diagonal_user_update_is_the_mean_field_step(backend, reg_scaling):
    m = _random_problem(3, 25, 30, 0.35)
    state, u0, v, s_items, bi = _user_step_from_random_items(m, 4, backend, "diagonal", 4, reg_scaling)
    lam = state.lam
    for u in (0, 7, 24):
        idx, r = _user_row(m, u)
        rho = idx.size if reg_scaling == "count" else 1
        gamma, tau = rho * state.gamma, rho * state.tau
        b = lam * np.sum(r - state.mu - bi[idx] - v[idx] @ u0[u]) / (lam * idx.size + gamma)
        assert state.users.bias[u] == pytest.approx(b, rel=1e-5, abs=1e-6)
        a = np.diag(tau) + lam * (v[idx].T @ v[idx] + np.diag(s_items[idx].sum(axis=0)))
        # variances 1/A_dd (the mean-field optimum, not diag(A^-1)); means: one Gauss-Seidel pass
        # m_new = (D + L)^-1 (lam t - U m_old) with A = L + D + U
        np.testing.assert_allclose(state.users.cov[u], 1.0 / np.diag(a), rtol=1e-5)
        rhs = lam * v[idx].T @ (r - state.mu - b - bi[idx]) - np.triu(a, 1) @ u0[u]
        mean = scipy.linalg.solve_triangular(np.tril(a), rhs, lower=True)
        np.testing.assert_allclose(state.users.mean[u], mean, rtol=1e-4, atol=1e-5)
        assert not np.allclose(np.diag(scipy.linalg.inv(a)), 1.0 / np.diag(a))


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_count_scaled_item_update_is_the_closed_form(backend, covariance):
    """With reg_scaling count item i's step (for full covariances on numba: the scattered sweep) uses
    the prior precision rho_i diag(tau) and the bias penalty gamma rho_i, rho_i = max(n_i, 1)."""
    m = _random_problem(4, 30, 12, 0.4)
    state = _state(m, 3, backend, covariance, reg_scaling="count")
    state.user_step()
    us = state.users
    u, s_users, bu = us.mean.astype(np.float64), _covariances(us), us.bias.astype(np.float64)
    v0 = state.items.mean.astype(np.float64).copy()
    state.item_step()
    by_item = m.tocsc()
    lam = state.lam
    for i in range(m.shape[1]):
        idx = by_item.indices[by_item.indptr[i] : by_item.indptr[i + 1]]
        r = by_item.data[by_item.indptr[i] : by_item.indptr[i + 1]].astype(np.float64) - state.mu - bu[idx]
        rho = max(idx.size, 1)  # the last item is unrated: the unscaled prior
        b = lam * np.sum(r - u[idx] @ v0[i]) / (lam * idx.size + state.gamma * rho) if idx.size else 0.0
        assert state.items.bias[i] == pytest.approx(b, rel=1e-5, abs=1e-6)
        second = s_users[idx].sum(axis=0)
        a = rho * np.diag(state.tau) + lam * (
            u[idx].T @ u[idx] + (second if covariance == "full" else np.diag(np.diag(second)))
        )
        rhs = lam * u[idx].T @ (r - b)
        if covariance == "full":
            np.testing.assert_allclose(state.items.cov[i], scipy.linalg.inv(a), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(state.items.mean[i], scipy.linalg.solve(a, rhs), rtol=1e-4, atol=1e-5)
        else:  # the mean-field step: variances 1/A_dd, one Gauss-Seidel pass for the means
            np.testing.assert_allclose(state.items.cov[i], 1.0 / np.diag(a), rtol=1e-5)
            mean = scipy.linalg.solve_triangular(np.tril(a), rhs - np.triu(a, 1) @ v0[i], lower=True)
            np.testing.assert_allclose(state.items.mean[i], mean, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- ELBO


@pytest.mark.parametrize("reg_scaling", ["none", "count"])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("covariance", ["full", "diagonal"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_elbo_is_exact(covariance, backend, learn, reg_scaling):
    """Also with count-scaled priors N(0, (rho_e diag(tau))^-1): their log-determinants included."""
    state = _state(_random_problem(5, 12, 9, 0.4), 3, backend, covariance, learn_hyper=learn, reg_scaling=reg_scaling)
    tol = 1e-6 if backend == "numba" else 1e-10
    assert state.elbo() == pytest.approx(_direct_elbo(state, reg_scaling=reg_scaling), rel=tol)  # the start
    state.user_step()
    assert state.elbo() == pytest.approx(_direct_elbo(state, reg_scaling=reg_scaling), rel=tol)
    state.item_step()
    if learn:
        state.update_lam()
        state.update_gamma()
        state.update_tau()
    assert state.elbo() == pytest.approx(_direct_elbo(state, reg_scaling=reg_scaling), rel=tol)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    d=st.integers(1, 5),
    n_users=st.integers(2, 20),
    n_items=st.integers(2, 20),
    density=st.floats(0.05, 0.9),
    lam=st.floats(0.05, 5),
    gamma=st.floats(0.0, 5),
    tau=st.floats(0.05, 5),
    backend=st.sampled_from(["numba", "numpy"]),
    covariance=st.sampled_from(["full", "diagonal"]),
    learn=st.booleans(),
    reg_scaling=st.sampled_from(["none", "count"]),
)
def test_elbo_never_decreases(
    seed, d, n_users, n_items, density, lam, gamma, tau, backend, covariance, learn, reg_scaling
):
    gamma += 0.05 * learn  # a learned bias prior needs a positive starting precision
    state = _state(
        _random_problem(seed, n_users, n_items, density),
        d,
        backend,
        covariance,
        seed,
        lam,
        gamma,
        tau,
        learn,
        reg_scaling,
    )
    steps = [state.user_step, state.item_step] + (
        [state.update_lam, state.update_gamma, state.update_tau] if learn else []
    )
    rtol = 2e-6 if backend == "numba" else 1e-9
    previous = state.elbo()
    for _ in range(3):
        for step in steps:
            step()
            current = state.elbo()
            assert current >= previous - rtol * max(1.0, abs(previous))
            previous = current


@pytest.mark.parametrize("reg_scaling", ["none", "count"])
@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_learned_precisions_maximise_the_elbo(covariance, reg_scaling):
    """Also under count-scaled priors, whose fixed scales rho_e weight the sums of the updates."""
    state = _state(_random_problem(8, 25, 20, 0.3), 4, "numpy", covariance, learn_hyper=True, reg_scaling=reg_scaling)
    for _ in range(2):
        state.user_step()
        state.item_step()

    def direct(**kwargs):
        return _direct_elbo(state, reg_scaling=reg_scaling, **kwargs)

    def assert_maximiser(name, held):
        # the precision maximises the ELBO given q, the bias variances held where the step found them
        value, best = getattr(state, name), direct(bias_var=held)
        for factor in (0.98, 1.02):
            setattr(state, name, value * factor)
            assert direct(bias_var=held) < best
        setattr(state, name, value)

    s_u, s_i = state.bias_variances()
    state.update_lam()
    assert_maximiser("lam", (s_u, s_i))
    # stationarity in lam: N / lam = E[SSE] with the bias variances sum_e n_e s_e included
    counts = np.diff(state.csr[0]), np.diff(state.csc[0])
    assert state.n_ratings / state.lam == pytest.approx(state.esse + counts[0] @ s_u + counts[1] @ s_i, rel=1e-12)
    held = state.bias_variances()
    state.update_gamma()
    assert_maximiser("gamma", held)
    # the bias variances 1 / (lam n + gamma) then maximise it given the precisions
    best = state.elbo()
    s_u, s_i = state.bias_variances()
    assert direct() == pytest.approx(best, rel=1e-10)
    for factor in (0.98, 1.02):
        assert direct(bias_var=(s_u * factor, s_i)) < best
        assert direct(bias_var=(s_u, s_i * factor)) < best

    # tau jointly with the scale of each dimension: the optimum of separate user and item precisions
    n_u, n_i = state.users.mean.shape[0], state.items.mean.shape[0]
    rhos = _prior_scales(state, reg_scaling)

    def second_moments():  # sum_e rho_e (m_ed^2 + S_e,dd) over the users and over the items
        return [
            rho @ (side.mean.astype(np.float64) ** 2 + np.diagonal(_covariances(side), axis1=1, axis2=2))
            for side, rho in zip((state.users, state.items), rhos)
        ]

    a, b = second_moments()
    separate = direct(tau_users=n_u / a, tau_items=n_i / b)
    products = state.users.mean @ state.items.mean.T
    state.update_tau()
    assert state.elbo() == pytest.approx(separate, rel=1e-10)
    np.testing.assert_allclose(state.users.mean @ state.items.mean.T, products, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state.users.logdet, np.linalg.slogdet(_covariances(state.users))[1], rtol=1e-10)
    # balanced: the per-side optima coincide with the shared tau
    a, b = second_moments()
    np.testing.assert_allclose(n_u / a, state.tau, rtol=1e-10)
    np.testing.assert_allclose(n_i / b, state.tau, rtol=1e-10)
    best, tau = state.elbo(), state.tau.copy()
    for factor in (0.98, 1.02):
        for dim in range(tau.size):
            state.tau = tau.copy()
            state.tau[dim] *= factor
            assert state.elbo() < best
    state.tau = tau


# --------------------------------------------------------------------------- predictions


def test_predictive_variance_matches_monte_carlo(small_split):
    model = VI(factors=4, epochs=3, learn_hyper=True).fit(small_split.train)
    train = small_split.train
    users, items = np.array([0, 3, 100]), np.array([0, 5, int(np.argmin(train.item_counts))])
    mean, sd = model.predict(train.user_map.ids[users], train.item_map.ids[items], return_std=True)
    rng = np.random.default_rng(0)
    for j, (u, i) in enumerate(zip(users, items)):
        uu = rng.multivariate_normal(model.user_factors_[u], model.user_cov_[u], 200_000)
        vv = rng.multivariate_normal(model.item_factors_[i], model.item_cov_[i], 200_000)
        # the biases are Gaussian too (learn_hyper), independent of the factors
        biases = rng.normal(model.user_bias_[u], np.sqrt(model.user_bias_var_[u]), 200_000) + rng.normal(
            model.item_bias_[i], np.sqrt(model.item_bias_var_[i]), 200_000
        )
        draws = model.global_mean_ + biases + np.einsum("nd,nd->n", uu, vv)
        assert mean[j] == pytest.approx(draws.mean(), abs=0.02)
        assert sd[j] ** 2 - 1.0 / model.lam_ == pytest.approx(draws.var(), rel=0.03)
    # the variance of a bias is 1 / (lam n + gamma), n its training ratings
    n_u = np.diff(train.indptr)
    np.testing.assert_allclose(model.user_bias_var_, 1.0 / (model.lam_ * n_u + model.gamma_), rtol=1e-6)
    np.testing.assert_allclose(model.item_bias_var_, 1.0 / (model.lam_ * train.item_counts + model.gamma_), rtol=1e-6)


def test_cold_ids_get_the_prior_variance(small_split):
    model = VI(factors=4, epochs=2, learn_hyper=True, covariance="diagonal").fit(small_split.train)
    iid = small_split.train.item_map.ids[7]
    mean, sd = model.predict([-99, -99], [iid, -98], return_std=True)
    m_i, s_i, tau = model.item_factors_[7], model.item_cov_[7], model.tau_
    # U ~ N(0, diag(1/tau)): Var(U.V) = sum_d (m_id^2 + s_id) / tau_d; both cold: sum_d 1/tau_d^2;
    # a cold bias has the prior variance 1/gamma, a known one its posterior variance
    noise, cold_bias = 1.0 / model.lam_, 1.0 / model.gamma_
    assert sd[0] ** 2 == pytest.approx(
        np.sum((m_i**2 + s_i) / tau) + noise + cold_bias + model.item_bias_var_[7], rel=1e-5
    )
    assert sd[1] ** 2 == pytest.approx(np.sum(1.0 / tau**2) + noise + 2 * cold_bias, rel=1e-5)
    assert mean[1] == pytest.approx(model.global_mean_)


def test_report_setting_is_the_default_and_stays_fixed(small_split):
    model = VI(epochs=2)
    assert (model.factors, model.lam, model.tau, model.gamma, model.learn_hyper) == (20, 0.1, 1.0, 2.5, False)
    model.fit(small_split.train)
    assert model.lam_ == 0.1 and model.gamma_ == 2.5 and np.all(model.tau_ == 1.0)
    assert not model.user_bias_var_.any() and not model.item_bias_var_.any()  # point-estimate biases
    assert [r["lam"] for r in model.history_] == [0.1, 0.1]
    assert model.user_cov_.shape == (model.n_users, 20, 20) and model.user_cov_.dtype == np.float32


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_backends_agree_every_epoch(small_split, covariance):
    runs = {
        b: VI(factors=8, epochs=4, learn_hyper=True, covariance=covariance, backend=b).fit(
            small_split.train, eval_set=small_split.test
        )
        for b in ("numba", "numpy")
    }
    for a, b in zip(runs["numba"].history_, runs["numpy"].history_):
        assert a["elbo"] == pytest.approx(b["elbo"], rel=1e-5)
        assert a["lam"] == pytest.approx(b["lam"], rel=1e-4)
        assert abs(a["test_rmse"] - b["test_rmse"]) < 1e-4
    assert runs["numba"].gamma_ == pytest.approx(runs["numpy"].gamma_, rel=1e-4)
    np.testing.assert_allclose(runs["numba"].item_cov_, runs["numpy"].item_cov_, atol=1e-4)
    np.testing.assert_allclose(runs["numba"].tau_, runs["numpy"].tau_, rtol=1e-3)


@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_count_scaling_backends_agree_and_differ_from_fixed_priors(small_split, covariance, learn):
    params = {
        "factors": 6,
        "epochs": 3,
        "covariance": covariance,
        "learn_hyper": learn,
        "lam": 1.0,
        "tau": 0.05,
        "gamma": 0.05,
    }
    runs = {
        b: VI(**params, reg_scaling="count", backend=b).fit(small_split.train, eval_set=small_split.test)
        for b in ("numba", "numpy")
    }
    for a, b in zip(runs["numba"].history_, runs["numpy"].history_):
        assert a["elbo"] == pytest.approx(b["elbo"], rel=1e-5)
        assert abs(a["test_rmse"] - b["test_rmse"]) < 1e-4
    np.testing.assert_allclose(runs["numba"].item_cov_, runs["numpy"].item_cov_, atol=1e-4)
    np.testing.assert_allclose(runs["numba"].user_bias_, runs["numpy"].user_bias_, atol=1e-4)
    assert runs["numba"].gamma_ == pytest.approx(runs["numpy"].gamma_, rel=1e-4)
    fixed = VI(**params).fit(small_split.train)
    assert np.abs(fixed.item_cov_ - runs["numba"].item_cov_).max() > 1e-2


def test_thread_count_does_not_change_results(small_split):
    fastmf.set_threads(1)
    try:
        a = VI(factors=5, epochs=2, learn_hyper=True).fit(small_split.train)
    finally:
        fastmf.set_threads(None)
    b = VI(factors=5, epochs=2, learn_hyper=True).fit(small_split.train)
    np.testing.assert_array_equal(a.user_cov_, b.user_cov_)
    assert a.history_[-1]["elbo"] == b.history_[-1]["elbo"]


@pytest.fixture(scope="module")
def synthetic_split():
    cfg = SynthConfig(users=1000, items=500, ratings=100_000, seed=2)
    data = generate(cfg)
    return random_split(fastmf.Dataset.from_arrays(data.user_ids, data.item_ids, data.ratings), 0.1, seed=3)


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_calibrated_and_as_accurate_as_tuned_als_on_planted_data(synthetic_split, covariance):
    train, test = synthetic_split.train, synthetic_split.test
    report = VI(factors=8, epochs=15, learn_hyper=True, covariance=covariance).fit(train).evaluate(test)
    assert abs(report["coverage_50"] - 0.5) < 0.05 and abs(report["coverage_90"] - 0.9) < 0.05
    als = [
        ALS(factors=8, epochs=15, tau=tau, gamma=gamma).fit(train).evaluate(test)["test_rmse"]
        for tau in (0.25, 0.5, 1, 2)
        for gamma in (0.3, 1, 3)
    ]
    assert report["test_rmse"] <= min(als)
    # the report's fixed lam = 0.1 claims noise sd 3.2 stars: intervals far too wide
    fixed = VI(factors=8, epochs=3).fit(train).evaluate(test)
    assert fixed["coverage_50"] > 0.9


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
@pytest.mark.parametrize("reg_scaling", ["none", "count"])
def test_fold_in_of_a_training_user_repeats_its_user_step(small_split, reg_scaling, covariance):
    """With the items fixed, folding in a user's own ratings gives the point that repeated user steps
    (bias, then posterior) converge to: the same bias, mean and covariance, under count with the user's
    prior scaled by its rating count."""
    train = small_split.train
    model = VI(
        factors=4,
        epochs=2,
        covariance=covariance,
        reg_scaling=reg_scaling,
        lam=1.0,
        tau=0.3,
        gamma=0.2,
        backend="numpy",
    ).fit(train)
    state = VIState(
        train.csr,
        train.csc,
        train.n_users,
        train.n_items,
        4,
        model.global_mean_,
        backend_of("numpy"),
        lam=model.lam,
        gamma=model.gamma,
        tau=model.tau,
        covariance=covariance,
        reg_scaling=reg_scaling,
    )
    items = state.items
    items.mean[...], items.cov[...], items.bias[...] = model.item_factors_, model.item_cov_, model.item_bias_
    if items.rows is not None:
        items.rows[...] = pack_rows(items.mean, items.cov, items.bias, items.mean.dtype)
    u = 3
    state.user_blocks = np.array([u, u + 1])  # sweep user u alone
    for _ in range(300):
        state.user_step()
    lo, hi = train.indptr[u], train.indptr[u + 1]
    b, m, s = model._fold_in_state(train.indices[lo:hi], train.data[lo:hi].astype(np.float64))
    assert b == pytest.approx(state.users.bias[u], abs=1e-6)
    np.testing.assert_allclose(m, state.users.mean[u], atol=1e-6)
    np.testing.assert_allclose(s, state.users.cov[u], rtol=1e-6)


# --------------------------------------------------------------------------- uncertainty and ranking


@pytest.fixture(scope="module")
def fitted_vi(small_split):
    return VI(factors=6, epochs=6, learn_hyper=True).fit(small_split.train)


def test_uncertainty_table_follows_rating_counts(fitted_vi):
    table = fitted_vi.uncertainty_table(k=5)
    counts = fitted_vi.item_counts_
    variances = fitted_vi.item_variances()
    np.testing.assert_allclose(variances, np.trace(fitted_vi.item_cov_, axis1=1, axis2=2) / 6, rtol=1e-6)
    low, high = table["most_certain"], table["least_certain"]
    rated = np.sort(variances[counts > 0])
    np.testing.assert_allclose([r["variance"] for r in low], rated[:5])
    np.testing.assert_allclose([r["variance"] for r in high], rated[::-1][:5])
    assert min(r["ratings"] for r in low) > max(r["ratings"] for r in high)
    means = [table["by_count"][k]["mean_variance"] for k in ("1-3", "4-20", ">20")]
    assert means[0] > means[1] > means[2]


def test_ranking_strategies(fitted_vi, small_split):
    model = fitted_vi
    uid = small_split.train.user_map.ids[10]
    base_items, base_scores = model.recommend(uid, k=8)
    for strategy in ("penalized", "ucb"):
        items, scores = model.recommend(uid, k=8, strategy=strategy, beta=2.0)
        mean, sd = model.predict(np.full(items.size, uid), items, return_std=True)
        var = sd**2 - 1.0 / model.lam_ - model.user_bias_var_[10]
        expected = mean / (1.0 + var) if strategy == "penalized" else mean + 2.0 * np.sqrt(var)
        np.testing.assert_allclose(scores, expected, rtol=1e-4)
        ids, sc = model.recommend_all(k=8, users=[uid], strategy=strategy, beta=2.0)
        np.testing.assert_array_equal(ids[0], items)
    a = model.recommend(uid, k=8, strategy="thompson", seed=1)
    b = model.recommend(uid, k=8, strategy="thompson", seed=1)
    c = model.recommend(uid, k=8, strategy="thompson", seed=2)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    # the mean strategy is the base ranking, and nothing is left behind by a strategy call
    np.testing.assert_array_equal(model.recommend(uid, k=8, strategy="mean")[0], base_items)
    assert not hasattr(model, "_rank")
    with pytest.raises(FastMFError, match="strategy"):
        model.recommend(uid, strategy="greedy")
    items, _ = model.fold_in({int(small_split.train.item_map.ids[0]): 5.0}, k=5, strategy="ucb")
    assert len(items) == 5


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_score_variance_is_the_predictive_variance_of_every_item(small_split, covariance):
    model = VI(factors=4, epochs=2, learn_hyper=True, covariance=covariance).fit(small_split.train)
    users = np.array([2, 9])
    var = model.score_variance(model.user_factors_[users], model.user_cov_[users])
    for row, u in enumerate(users):
        uid = np.full(model.n_items, model.user_map_.ids[u])
        _, sd = model.predict(uid, model.item_map_.ids, return_std=True)
        np.testing.assert_allclose(var[row], sd**2 - 1.0 / model.lam_ - model.user_bias_var_[u], rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_posterior_draws_have_the_posterior_moments(covariance):
    rng = np.random.default_rng(0)
    d, n = 3, 40_000
    mean = rng.normal(size=d).astype(np.float32)
    x = rng.normal(size=(d, d))
    cov = (
        (x @ x.T + 0.1 * np.eye(d)).astype(np.float32)
        if covariance == "full"
        else rng.uniform(0.1, 1, d).astype(np.float32)
    )
    out = np.empty((n, d))
    kvi.draw(np.tile(mean, (n, 1)), np.tile(cov, (n,) + (1,) * cov.ndim), np.arange(n), 7, out)
    np.testing.assert_allclose(out.mean(axis=0), mean, atol=0.05)
    expected = cov if covariance == "full" else np.diag(cov)
    np.testing.assert_allclose(np.cov(out.T), expected, atol=0.06 * np.abs(expected).max())


def test_bad_parameters():
    with pytest.raises(FastMFError, match="covariance"):
        VI(covariance="banded").fit(fastmf.load_dataset())
    with pytest.raises(FastMFError, match="factors"):
        VI(factors=0).fit(fastmf.load_dataset())


# --------------------------------------------------------------------------- command line


def test_cli_train_vi_json_and_recommend(tmp_path):
    runner = CliRunner()
    out = tmp_path / "vi"
    res = runner.invoke(
        main,
        [
            "train",
            "--model",
            "vi",
            "--factors",
            "5",
            "--epochs",
            "3",
            "--learn-hyper",
            "--covariance",
            "diagonal",
            "--json",
            "-q",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["params"]["covariance"] == "diagonal" and report["params"]["learn_hyper"] is True
    assert all({"elbo", "lam", "train_rmse", "test_rmse"} <= set(r) for r in report["history"])
    elbos = [r["elbo"] for r in report["history"]]
    assert elbos == sorted(elbos)
    assert 0 < report["coverage_50"] < report["coverage_90"] < 1
    assert report["lam"] == report["history"][-1]["lam"] and len(report["tau"]) == 5 and report["gamma"] > 0
    assert len(report["uncertainty"]["most_certain"]) == 5
    for strategy in ("penalized", "ucb", "thompson"):
        rec = runner.invoke(
            main,
            [
                "recommend",
                str(out),
                "--user",
                "1",
                "-k",
                "4",
                "--strategy",
                strategy,
                "--beta",
                "1.5",
                "--seed",
                "3",
                "--json",
            ],
        )
        assert rec.exit_code == 0, rec.output
        assert len(json.loads(rec.stdout)) == 4
    text = runner.invoke(main, ["train", "--model", "vi", "--factors", "3", "--epochs", "1", "-q"])
    assert text.exit_code == 0 and "coverage_90" in text.output and "least certain" in text.output
    runner.invoke(
        main, ["train", "--model", "als", "--factors", "3", "--epochs", "1", "-q", "--out", str(tmp_path / "als")]
    )
    bad = runner.invoke(main, ["recommend", str(tmp_path / "als"), "--user", "1", "--strategy", "ucb"])
    assert bad.exit_code == 1 and "--model vi" in bad.output
    bad = runner.invoke(main, ["train", "--model", "als", "--covariance", "full"])
    assert bad.exit_code == 1 and "does not apply" in bad.output
