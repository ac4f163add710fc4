"""Explicit-feedback ALS: biased latent factors (``ALS``) and biases only (``BiasOnly``).

Objective (minimised), with ``lam`` the data precision, ``gamma`` the bias and
``tau`` the factor regulariser (the ML-32M report's parametrisation):

    J = lam/2 sum_(u,i) (r_ui - mu - b_u - b_i - U_u.V_i)^2
        + gamma/2 (sum b_u^2 + sum b_i^2) + tau/2 (sum |U_u|^2 + sum |V_i|^2)

With ``reg_scaling="count"`` (weighted-lambda, Zhou et al. 2008) each user's and
item's ridges are scaled by its number of training ratings ``n_e`` (at least 1):
the prior terms become ``gamma/2 sum_e n_e b_e^2`` and ``tau/2 sum_e n_e |U_e|^2``.

Each epoch updates every user (bias, then factors) and then every item, each
an exact block minimisation of ``J`` (see ``fastmf.kernels.als``). The
``numba`` backend runs those half-sweeps as parallel kernels in float32; the
``numpy`` backend is the float64 reference.

Besides the classes, :func:`fit_als` is a functional entry point over plain
CSR arrays for libraries that want fastmf as a backend without its classes.
"""

from __future__ import annotations

import numpy as np

from fastmf.common.layout import aligned_copy, balanced_blocks, uniform_blocks
from fastmf.common.params import declare
from fastmf.common.search import Ridge
from fastmf.common.threads import n_threads
from fastmf.data_prep.dataset import Dataset
from fastmf.kernels import sparse as ksparse
from fastmf.metrics.rating import rmse
from fastmf.models import budget, hyper
from fastmf.models.backend import backend_of
from fastmf.models.budget import Cost, Shape
from fastmf.models.factor import FactorModel, map_new_user

#: equal-cost entity blocks per thread, handed out dynamically
BLOCKS_PER_THREAD = 16


def init_factors(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Factors drawn from N(0, (1/sqrt(D))^2) (standard deviation 1/sqrt(D))."""
    return rng.normal(0.0, 1.0 / np.sqrt(d), size=(n, d)) if d else np.zeros((n, 0))


def work_blocks(indptr: np.ndarray, d: int, work_split: str = "balanced") -> np.ndarray:
    """Entity ranges handed to threads: ``BLOCKS_PER_THREAD`` equal-cost blocks per thread, or with
    ``work_split="naive"`` one equal-count block per thread (what a plain ``prange`` does)."""
    if work_split == "naive":
        return uniform_blocks(indptr.shape[0] - 1, n_threads())
    return balanced_blocks(indptr, d, n_threads() * BLOCKS_PER_THREAD)


def ridge_scale(indptr: np.ndarray, reg_scaling: str):
    """Per-entity ridge multipliers ``s_e``: ``None`` (all 1) for ``"none"``, the rating counts
    ``max(n_e, 1)`` (float64) of the CSR rows for ``"count"``."""
    if reg_scaling == "none":
        return None
    return np.maximum(np.diff(indptr), 1).astype(np.float64)


def fold_in_scale(n_ratings: int, reg_scaling: str) -> int:
    """The ridge multiplier of a new entity with ``n_ratings`` ratings (:func:`ridge_scale` of one row)."""
    return max(n_ratings, 1) if reg_scaling == "count" else 1


def weighted_squares(x: np.ndarray, scale) -> float:
    """``sum_e s_e |x_e|^2`` in float64 over the rows of ``x`` (``s_e = 1`` when ``scale`` is None)."""
    if x.size == 0:
        return 0.0
    rows = np.square(x, dtype=np.float64)
    if rows.ndim == 2:
        rows = rows.sum(axis=1)
    return float(rows.sum() if scale is None else rows @ scale)


class ALSState:
    """Parameters being fitted, in the backend's precision, plus the half-sweep machinery.

    ``csr``/``csc`` are ``(indptr, indices, data)`` of the training ratings by user and by
    item; ``backend`` the kernel package (:mod:`fastmf.models.backend`). Factors start from
    N(0, 1/D) draws rounded to float32 (the same values on both backends), biases from zero.
    ``reg_scaling`` ``"count"`` scales each entity's ridges by its rating count (:func:`ridge_scale`);
    ``cg_steps`` 0 solves each factor exactly, more runs that many conjugate-gradient steps.
    """

    divergence_hint = "try a larger --tau or --gamma, or a smaller --lam"
    #: ``(lo, hi)`` the predicted ratings of the reported RMSEs are clipped to (set by the model)
    bounds = (-np.inf, np.inf)

    def __init__(
        self,
        csr,
        csc,
        n_users,
        n_items,
        factors,
        mu,
        backend,
        seed=42,
        lam=0.1,
        gamma=2.5,
        tau=1.0,
        fit_bias=True,
        work_split="balanced",
        reg_scaling="none",
        cg_steps=0,
    ):
        self.backend = backend
        self.csr, self.csc = csr, csc
        self.mu = float(mu)
        self.lam, self.gamma, self.tau, self.fit_bias = float(lam), float(gamma), float(tau), bool(fit_bias)
        self.cg_steps = int(cg_steps)
        dtype = backend.FLOAT
        rng = np.random.default_rng(seed)
        # cache-line aligned: a row of D = 64 floats spans four lines instead of five, for every gather
        self.user_factors = aligned_copy(init_factors(n_users, factors, rng).astype(np.float32).astype(dtype))
        self.item_factors = aligned_copy(init_factors(n_items, factors, rng).astype(np.float32).astype(dtype))
        self.user_bias = np.zeros(n_users, dtype=dtype)
        self.item_bias = np.zeros(n_items, dtype=dtype)
        # prior means of the item side (empty: zero); FeatureState centres them on features
        self.item_prior_mean = np.zeros((0, factors), dtype=dtype)
        self.item_prior_bias = np.zeros(0, dtype=dtype)
        self._no_prior = (self.item_prior_mean, self.item_prior_bias)
        self.user_scale, self.item_scale = ridge_scale(csr[0], reg_scaling), ridge_scale(csc[0], reg_scaling)
        self.user_blocks = work_blocks(csr[0], factors, work_split)
        self.item_blocks = work_blocks(csc[0], factors, work_split)

    def user_step(self) -> None:
        self.backend.als.half_sweep(
            *self.csr,
            self.mu,
            self.user_bias,
            self.item_bias,
            self.user_factors,
            self.item_factors,
            self.lam,
            self.gamma,
            self.tau,
            self.user_blocks,
            self.fit_bias,
            *self._no_prior,
            self.user_scale,
            self.cg_steps,
        )

    def item_step(self) -> None:
        self.backend.als.half_sweep(
            *self.csc,
            self.mu,
            self.item_bias,
            self.user_bias,
            self.item_factors,
            self.user_factors,
            self.lam,
            self.gamma,
            self.tau,
            self.item_blocks,
            self.fit_bias,
            self.item_prior_mean,
            self.item_prior_bias,
            self.item_scale,
            self.cg_steps,
        )

    def epoch(self) -> dict:
        """One epoch of block updates; returns extra entries for the history record."""
        self.user_step()
        self.item_step()
        return {}

    def arrays(self):
        return self.mu, self.user_bias, self.item_bias, self.user_factors, self.item_factors

    def error_sums(self, mat) -> tuple:
        """``(SSE of the scores, SSE of the predicted ratings)`` on a CSR matrix: the objective's squared
        error and the RMSE's (scores clipped to ``bounds``)."""
        return self.backend.metrics.error_sums(*mat, *self.arrays(), *self.bounds)

    def _sq(self, x) -> float:
        return self.backend.metrics.sum_squares(x) if x.size else 0.0

    def _penalty(self, precision: float, user_values, item_values) -> float:
        """``precision/2 (sum_u s_u |user_values_u|^2 + sum_i s_i |item_values_i|^2)``."""
        if self.user_scale is None:
            return 0.5 * precision * (self._sq(user_values) + self._sq(item_values))
        return (
            0.5
            * precision
            * (weighted_squares(user_values, self.user_scale) + weighted_squares(item_values, self.item_scale))
        )

    def objective(self, sse: float | None = None) -> float:
        """``J`` of the module docstring on the training ratings (``sse``: their squared error, if known)."""
        if sse is None:
            sse, _ = self.error_sums(self.csr)
        return (
            0.5 * self.lam * sse
            + self._penalty(self.gamma, self.user_bias, self.item_bias)
            + self._penalty(self.tau, self.user_factors, self.item_factors)
        )

    def rmse(self, data: Dataset) -> float:
        """RMSE of the predicted ratings (the scores clipped to ``bounds``) on ``data``."""
        return rmse(self.error_sums(data.csr)[1], data.n_ratings)

    def metrics(self, train: Dataset, eval_set: Dataset | None) -> dict:
        """``train_rmse``, ``test_rmse`` (with ``eval_set``) and the objective of one history record."""
        sse, clipped = self.error_sums(train.csr)
        out = {"train_rmse": rmse(clipped, train.n_ratings)}
        if eval_set is not None:
            out["test_rmse"] = self.rmse(eval_set)
        out["objective"] = self.objective(sse)
        return out

    def finite(self, record: dict) -> bool:
        """The objective sums every parameter's square: finite iff they all are (and the errors)."""
        return bool(np.isfinite(record["objective"]))

    def _fitted(self):
        return self.user_factors, self.item_factors, self.user_bias, self.item_bias

    def snapshot(self):
        return tuple(a.copy() for a in self._fitted())

    def restore(self, snap) -> None:
        for target, src in zip(self._fitted(), snap):
            target[...] = src


def fit_als(
    indptr,
    indices,
    data,
    n_items=None,
    factors=20,
    lam=0.1,
    gamma=2.5,
    tau=1.0,
    epochs=20,
    seed=42,
    backend="numba",
    fit_bias=True,
    reg_scaling="none",
) -> dict:
    """Functional ALS over a user-by-item CSR matrix given as plain arrays.

    Returns ``{"user_factors", "item_factors", "user_bias", "item_bias",
    "global_mean", "objective"}`` (objective per epoch). ``factors=0`` fits the
    bias-only model; ``reg_scaling="count"`` the weighted-lambda ridges.
    """
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    data = np.ascontiguousarray(data, dtype=np.float32)
    n_users = indptr.shape[0] - 1
    n_items = int(indices.max()) + 1 if n_items is None else int(n_items)
    # the hyperparameters' ranges and the memory and time budget of the ALS class
    model = ALS(
        factors=factors,
        lam=lam,
        gamma=gamma,
        tau=tau,
        epochs=epochs,
        random_state=seed,
        backend=backend,
        reg_scaling=reg_scaling,
    )
    counts = np.diff(indptr)
    shape = Shape(
        n_users,
        n_items,
        int(data.shape[0]),
        max(int(counts.max(initial=0)), int(np.bincount(indices, minlength=1).max())),
    )
    budget.check(model._budget_label(factors), lambda k: model.training_cost(shape, k), factors, shape.ratings)
    csc = ksparse.transpose_csr(indptr, indices, data, n_items)
    mu = float(data.mean(dtype=np.float64)) if data.size else 0.0
    state = ALSState(
        (indptr, indices, data),
        csc,
        n_users,
        n_items,
        factors,
        mu,
        backend_of(backend),
        seed,
        lam,
        gamma,
        tau,
        fit_bias,
        reg_scaling=reg_scaling,
    )
    objective = []
    for _ in range(epochs):
        state.epoch()
        objective.append(state.objective())
    return {
        "user_factors": state.user_factors,
        "item_factors": state.item_factors,
        "user_bias": state.user_bias,
        "item_bias": state.item_bias,
        "global_mean": mu,
        "objective": objective,
    }


class ALSFamily(FactorModel):
    """What ALS, the bias-only and the feature model share: their training state (:class:`ALSState`),
    fitted by :meth:`FactorModel._fit`, and the exact fold-in of a new user (:func:`map_new_user`)."""

    _saved_scalars = FactorModel._saved_scalars + ("best_epoch_",)

    def _dimension(self) -> int:
        """The latent dimension D (0 for the bias-only model)."""
        return int(self.factors)

    def _ridge(self) -> float:
        """The factors' prior precision ``tau`` (none without factors)."""
        return float(self.tau)

    def training_cost(self, shape: Shape, factors: int | None = None) -> Cost:
        """ALS's estimate (see :mod:`fastmf.models.budget`), with ``s`` bytes per float of the backend
        (4 numba, 8 numpy), ``E`` users + items, ``R`` ratings, ``T`` threads:

        * memory: the factors and biases ``E (D + 1) s`` (twice with ``patience``: the best epoch's
          snapshot), the float64 draws they start from and their float32 rounding, ``12 D`` bytes per
          row of the larger side, per thread the ``D x D`` system (float64) and Gram matrix (float32)
          and a ``D x 128`` gather buffer, with numpy the largest entity's ``n_e x D`` factors (float64),
          and ``PER_RATING_BYTES R``;
        * arithmetic per epoch: ``2 R (D^2 + 2D)`` for both half-sweeps' Gram sums and right-hand
          sides and ``E (D^3/3 + 2 D^2)`` for the Cholesky solves; with ``k`` conjugate-gradient steps
          instead, ``2 R D (4 k + 7)`` (the gathered rows' sums and ``A u``, then one ``4 n D`` pass per
          step) and ``E k 12 D`` for the steps' vector updates, and per thread the longest entity's
          gathered rows ``4 L D`` bytes;
        * traffic per epoch: :func:`fastmf.models.budget.sweep_traffic` with rows of ``(D + 1) s`` bytes.
        """
        d = self._dimension() if factors is None else int(factors)
        s = np.dtype(backend_of(self.backend).FLOAT).itemsize
        state = shape.entities * (d + 1) * s + self._extra_floats(shape, d) * s
        snapshots = 2 if getattr(self, "patience", None) is not None else 1
        start = 12.0 * d * max(shape.users, shape.items)
        scratch = n_threads() * (12.0 * (d + 3) ** 2 + 4.0 * 128 * (d + 3))
        gather = 8.0 * shape.largest * d if self.backend == "numpy" else 0.0
        steps = self._cg_steps()
        if steps:
            gather = max(gather, n_threads() * 4.0 * shape.largest * d)
            flops = 2.0 * shape.ratings * d * (4 * steps + 7) + shape.entities * steps * 12.0 * d
        else:
            flops = 2.0 * shape.ratings * (d * d + 2 * d) + shape.entities * (d**3 / 3 + 2 * d * d)
        memory = snapshots * state + start + scratch + gather + budget.PER_RATING_BYTES * shape.ratings
        traffic = budget.sweep_traffic(shape, (d + 1) * s, (d + 1) * s)  # factors and bias of each row
        return Cost(bytes=memory, flops=flops + self._extra_flops(shape, d), traffic=traffic)

    def _extra_floats(self, shape: Shape, d: int) -> float:
        """State beyond the factors and biases, in floats (the feature model's priors)."""
        return 0.0

    def _extra_flops(self, shape: Shape, d: int) -> float:
        """Arithmetic per epoch beyond the two half-sweeps (the feature model's feature step)."""
        return 0.0

    def _new_state(self, train: Dataset, state_class: type = ALSState) -> ALSState:
        """The training state (``state_class``, an :class:`ALSState` or a subclass: :mod:`fastmf.distributed`
        passes one whose half-sweeps run on a cluster) on ``train`` and ``global_mean_``."""
        return state_class(
            train.csr,
            train.csc,
            train.n_users,
            train.n_items,
            self._dimension(),
            self.global_mean_,
            backend_of(self.backend),
            self.random_state,
            self.lam,
            self.gamma,
            self._ridge(),
            work_split=self.work_split,
            reg_scaling=self.reg_scaling,
            cg_steps=self._cg_steps(),
        )

    def _cg_steps(self) -> int:
        """The half-sweeps' solver switch (:func:`fastmf.models.hyper.cg_steps_of`): exact here."""
        return 0

    def _keep(self, state: ALSState) -> None:
        """Store the fitted parameters as learned attributes."""
        self.user_factors_, self.item_factors_ = state.user_factors, state.item_factors
        self.user_bias_, self.item_bias_ = state.user_bias, state.item_bias

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        """The new user's MAP bias and factors against the fixed items (:func:`map_new_user`)."""
        v, res = self._fold_in_residuals(item_idx, values)
        scale = fold_in_scale(len(item_idx), self.reg_scaling)
        b, u, _ = map_new_user(v, res, float(self.lam), scale * float(self.gamma), scale * self._ridge())
        return b, u


class ALS(ALSFamily):
    """Biased matrix factorisation trained by alternating least squares.

    Defaults follow the ML-32M report: D = 20, ``lam`` = 0.1 (data precision), ``gamma`` = 2.5
    (bias regulariser), ``tau`` = 1.0 (factor regulariser), 20 ``epochs``; factors start from
    N(0, 1/sqrt(D)) and biases from 0 with a fixed ``seed``. ``patience`` enables early stopping
    on a validation split of ``validation_frac`` carved from the training data (the parameters of
    the best validation epoch are kept). ``reg_scaling="count"`` scales each user's and item's
    ``tau`` and ``gamma`` by its number of ratings (weighted-lambda, ALS-WR). ``solver="cg"`` replaces
    each exact factor solve by ``cg_steps`` warm-started conjugate-gradient steps on the same system
    (Takacs, Pilaszy and Tikk 2011): ``O(k n D)`` per entity instead of ``O(n D^2 + D^3)``, and the
    objective still never increases.
    """

    kind = "als"
    params = declare(
        factors=hyper.FACTORS,
        lam=hyper.LAM,
        gamma=hyper.GAMMA,
        tau=hyper.TAU,
        epochs=hyper.EPOCHS,
        random_state=hyper.RANDOM_STATE,
        backend=hyper.BACKEND,
        patience=hyper.PATIENCE,
        validation_frac=hyper.VALIDATION_FRAC,
        reg_scaling=hyper.REG_SCALING,
        work_split=hyper.WORK_SPLIT,
        solver=hyper.SOLVER,
        cg_steps=hyper.CG_STEPS,
    )
    search_space = {
        "factors": hyper.SEARCH_FACTORS,
        "tau": hyper.SEARCH_TAU,
        "gamma": hyper.SEARCH_GAMMA,
        "reg_scaling": hyper.SEARCH_REG_SCALING,
    }

    def _cg_steps(self) -> int:
        return hyper.cg_steps_of(self.solver, self.cg_steps)


class BiasOnly(ALSFamily):
    """``r^_ui = mu + b_u + b_i``, trained by ALS (the ML-32M report's lam = 1.0, gamma = 0.1).

    The same half-sweeps as :class:`ALS` with D = 0, so the updates reduce to
    ``b_u = lam sum_i (r_ui - mu - b_i) / (lam n_u + gamma)`` and symmetrically for items.
    """

    kind = "bias"
    params = declare(
        lam=hyper.LAM.but(default=1.0),
        gamma=hyper.GAMMA.but(default=0.1),
        epochs=hyper.EPOCHS.but(default=10),
        random_state=hyper.RANDOM_STATE,
        backend=hyper.BACKEND,
        patience=hyper.PATIENCE,
        validation_frac=hyper.VALIDATION_FRAC,
        reg_scaling=hyper.REG_SCALING,
        work_split=hyper.WORK_SPLIT,
    )
    #: the default gamma / lam is 0.1
    search_space = {"gamma": Ridge(0.003, 30.0), "reg_scaling": hyper.SEARCH_REG_SCALING}

    def _dimension(self) -> int:
        return 0

    def _ridge(self) -> float:
        return 0.0
