"""Explicit-feedback ALS: biased latent factors (``ALS``) and biases only (``BiasOnly``).

Objective (minimised), with ``lam`` the data precision, ``gamma`` the bias and
``tau`` the factor regulariser (the ML-32M report's parametrisation):

    J = lam/2 sum_(u,i) (r_ui - mu - b_u - b_i - U_u.V_i)^2
        + gamma/2 (sum b_u^2 + sum b_i^2) + tau/2 (sum |U_u|^2 + sum |V_i|^2)

Each epoch updates every user (bias, then factors) and then every item, each
an exact block minimisation of ``J`` (see ``fastmf.kernels.als``). The
``numba`` backend runs those half-sweeps as parallel kernels in float32; the
``numpy`` backend is the float64 reference.

Besides the classes, :func:`fit_als` is a functional entry point over plain
CSR arrays for libraries that want fastmf as a backend without its classes.
"""

from __future__ import annotations

import numba
import numpy as np

from fastmf.data_prep.dataset import Dataset
from fastmf.errors import FastMFError
from fastmf.factor import FactorModel
from fastmf.kernels import als as kals
from fastmf.kernels import metrics as km
from fastmf.kernels import sparse as ksparse
from fastmf.reference import als as ref

BLOCKS_PER_THREAD = 16


def init_factors(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Factors drawn from N(0, (1/sqrt(D))^2) (standard deviation 1/sqrt(D))."""
    return rng.normal(0.0, 1.0 / np.sqrt(d), size=(n, d)) if d else np.zeros((n, 0))


class ALSState:
    """Parameters being fitted, in the backend's precision, plus the half-sweep machinery.

    ``csr``/``csc`` are ``(indptr, indices, data)`` of the training ratings by
    user and by item. Entities are split into ``BLOCKS_PER_THREAD`` blocks per
    thread of equal estimated cost, handed out dynamically. ``balance=False`` is
    the naive split a plain ``prange`` over entities makes (one equal-count block
    per thread), kept only to measure what balancing buys.
    """

    def __init__(self, csr, csc, n_users, n_items, factors, mu, backend="numba", seed=42,
                 lam=0.1, gamma=2.5, tau=1.0, fit_bias=True, balance=True, init=None):
        self.backend = backend
        self.csr, self.csc = csr, csc
        self.mu = float(mu)
        self.lam, self.gamma, self.tau, self.fit_bias = float(lam), float(gamma), float(tau), bool(fit_bias)
        dtype = np.float32 if backend == "numba" else np.float64
        if init is None:
            rng = np.random.default_rng(seed)
            # both backends start from the same float32-representable values
            u = init_factors(n_users, factors, rng).astype(np.float32)
            v = init_factors(n_items, factors, rng).astype(np.float32)
            init = (u, v, np.zeros(n_users), np.zeros(n_items))
        u, v, bu, bi = init
        self.user_factors = np.ascontiguousarray(u, dtype=dtype)
        self.item_factors = np.ascontiguousarray(v, dtype=dtype)
        self.user_bias = np.ascontiguousarray(bu, dtype=dtype)
        self.item_bias = np.ascontiguousarray(bi, dtype=dtype)
        # prior means of the item side (empty: zero); FeatureState centres them on genres
        self.item_prior_mean = np.zeros((0, factors), dtype=dtype)
        self.item_prior_bias = np.zeros(0, dtype=dtype)
        self._no_prior = (self.item_prior_mean, self.item_prior_bias)
        if backend == "numba":
            threads = numba.get_num_threads()
            if balance:
                self.user_blocks = kals.balanced_blocks(csr[0], factors, threads * BLOCKS_PER_THREAD)
                self.item_blocks = kals.balanced_blocks(csc[0], factors, threads * BLOCKS_PER_THREAD)
            else:
                self.user_blocks = kals.uniform_blocks(n_users, threads)
                self.item_blocks = kals.uniform_blocks(n_items, threads)

    def user_step(self) -> None:
        self._sweep(self.csr, self.user_bias, self.item_bias, self.user_factors, self.item_factors,
                    getattr(self, "user_blocks", None), self._no_prior)

    def item_step(self) -> None:
        self._sweep(self.csc, self.item_bias, self.user_bias, self.item_factors, self.user_factors,
                    getattr(self, "item_blocks", None), (self.item_prior_mean, self.item_prior_bias))

    def _sweep(self, mat, own_b, other_b, own_f, other_f, blocks, prior) -> None:
        indptr, indices, data = mat
        if self.backend == "numba":
            with numba.parallel_chunksize(1):
                kals.half_sweep(indptr, indices, data, self.mu, own_b, other_b, own_f, other_f,
                                self.lam, self.gamma, self.tau, blocks, self.fit_bias, *prior)
        else:
            ref.half_sweep(indptr, indices, data, self.mu, own_b, other_b, own_f, other_f,
                           self.lam, self.gamma, self.tau, self.fit_bias, *prior)

    def epoch(self) -> dict:
        """One epoch of block updates; returns extra entries for the history record."""
        self.user_step()
        self.item_step()
        return {}

    def arrays(self):
        return self.mu, self.user_bias, self.item_bias, self.user_factors, self.item_factors

    def error_sums(self, mat) -> tuple:
        indptr, indices, data = mat
        fn = km.error_sums if self.backend == "numba" else ref.error_sums
        return fn(indptr, indices, data, *self.arrays())

    def objective(self, sse: float | None = None) -> float:
        """``J`` of the module docstring on the training ratings (``sse``: their squared error, if known)."""
        if sse is None:
            sse, _ = self.error_sums(self.csr)
        sq = km.sum_squares if self.backend == "numba" else (lambda x: float(np.sum(np.square(x, dtype=np.float64))))
        return (0.5 * self.lam * sse + 0.5 * self.gamma * (sq(self.user_bias) + sq(self.item_bias))
                + 0.5 * self.tau * (sq(self.user_factors) + sq(self.item_factors)))

    def rmse(self, data: Dataset) -> float:
        return _rmse(self.error_sums(data.csr)[0], data.n_ratings)

    def metrics(self, train: Dataset, eval_set: Dataset | None) -> dict:
        """``train_rmse``, ``test_rmse`` (with ``eval_set``) and the objective of one history record."""
        sse, _ = self.error_sums(train.csr)
        out = {"train_rmse": _rmse(sse, train.n_ratings)}
        if eval_set is not None:
            out["test_rmse"] = self.rmse(eval_set)
        out["objective"] = self.objective(sse)
        return out

    def snapshot(self):
        return tuple(a.copy() for a in (self.user_factors, self.item_factors, self.user_bias, self.item_bias))

    def restore(self, snap) -> None:
        for target, src in zip((self.user_factors, self.item_factors, self.user_bias, self.item_bias), snap):
            target[...] = src


def fit_als(indptr, indices, data, n_items=None, factors=20, lam=0.1, gamma=2.5, tau=1.0, epochs=20,
            seed=42, backend="numba", fit_bias=True) -> dict:
    """Functional ALS over a user-by-item CSR matrix given as plain arrays.

    Returns ``{"user_factors", "item_factors", "user_bias", "item_bias",
    "global_mean", "objective"}`` (objective per epoch). ``factors=0`` fits the
    bias-only model.
    """
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    data = np.ascontiguousarray(data, dtype=np.float32)
    n_users = indptr.shape[0] - 1
    n_items = int(indices.max()) + 1 if n_items is None else int(n_items)
    csc = ksparse.transpose_csr(indptr, indices, data, n_items)
    mu = float(data.mean(dtype=np.float64)) if data.size else 0.0
    state = ALSState((indptr, indices, data), csc, n_users, n_items, factors, mu, backend, seed,
                     lam, gamma, tau, fit_bias)
    objective = []
    for _ in range(epochs):
        state.user_step()
        state.item_step()
        objective.append(state.objective())
    return {"user_factors": state.user_factors, "item_factors": state.item_factors,
            "user_bias": state.user_bias, "item_bias": state.item_bias, "global_mean": mu,
            "objective": objective}


class ALS(FactorModel):
    """Biased matrix factorisation trained by alternating least squares.

    Parameters follow the ML-32M report: ``factors`` D = 20, ``lam`` = 0.1 (data
    precision), ``gamma`` = 2.5 (bias regulariser), ``tau`` = 1.0 (factor
    regulariser), 20 ``epochs``; factors start from N(0, 1/sqrt(D)) and biases
    from 0 with a fixed ``seed``. ``patience`` enables early stopping on a
    validation split of ``validation_frac`` carved from the training data (the
    parameters of the best validation epoch are kept).
    """

    kind = "als"

    def __init__(self, factors: int = 20, lam: float = 0.1, gamma: float = 2.5, tau: float = 1.0,
                 epochs: int = 20, seed: int = 42, backend: str = "numba", patience: int | None = None,
                 validation_frac: float = 0.05):
        self.factors = factors
        self.lam = lam
        self.gamma = gamma
        self.tau = tau
        self.epochs = epochs
        self.seed = seed
        self.backend = backend
        self.patience = patience
        self.validation_frac = validation_frac

    def _check_params(self) -> None:
        if int(self.factors) < 0 or self.epochs < 0:
            raise FastMFError("factors and epochs must be non-negative")
        if self.lam <= 0 or self.tau <= 0 or self.gamma < 0:
            raise FastMFError("lam and tau must be positive and gamma non-negative")

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        self._check_params()
        train, validation = self._validation_split(train)
        self.global_mean_ = train.global_mean
        state = self._new_state(train)
        self.best_epoch_ = self._run_epochs(state, train, eval_set, validation, callback)
        self._keep(state)

    def _new_state(self, train: Dataset) -> ALSState:
        return ALSState(train.csr, train.csc, train.n_users, train.n_items, int(self.factors),
                        self.global_mean_, self.backend, self.seed, self.lam, self.gamma, self.tau,
                        balance=getattr(self, "_balance", True))

    def _keep(self, state: ALSState) -> None:
        """Store the fitted parameters as learned attributes."""
        self.user_factors_, self.item_factors_ = state.user_factors, state.item_factors
        self.user_bias_, self.item_bias_ = state.user_bias, state.item_bias

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        """Solve a new user's bias and factors against the fixed items (a few alternations)."""
        v = self.item_factors_[item_idx].astype(np.float64)
        res = values - self.global_mean_ - self.item_bias_[item_idx]
        d = v.shape[1]
        u = np.zeros(d)
        b = 0.0
        for _ in range(10):
            b = self.lam * np.sum(res - v @ u) / (self.lam * len(item_idx) + self.gamma)
            if d:
                u = np.linalg.solve(self.lam * v.T @ v + self.tau * np.eye(d), self.lam * v.T @ (res - b))
        return b, u


class BiasOnly(ALS):
    """``r^_ui = mu + b_u + b_i``, trained by ALS (the ML-32M report's lam = 1.0, gamma = 0.1).

    The same half-sweeps as :class:`ALS` with D = 0, so the updates reduce to
    ``b_u = lam sum_i (r_ui - mu - b_i) / (lam n_u + gamma)`` and symmetrically for items.
    """

    kind = "bias"
    factors = 0
    tau = 1.0  # unused with no factors; keeps the objective's factor term at zero

    def __init__(self, lam: float = 1.0, gamma: float = 0.1, epochs: int = 10, seed: int = 42,
                 backend: str = "numba", patience: int | None = None, validation_frac: float = 0.05):
        self.lam = lam
        self.gamma = gamma
        self.epochs = epochs
        self.seed = seed
        self.backend = backend
        self.patience = patience
        self.validation_frac = validation_frac


def _rmse(sse: float, n: int) -> float:
    return float(np.sqrt(sse / n)) if n else float("nan")
