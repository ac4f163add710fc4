"""Weighted matrix factorisation for implicit feedback (WRMF; Hu, Koren and Volinsky 2008).

The model of implicit's ``AlternatingLeastSquares``: every (user, item) pair has a preference
``p_ui`` (1 for an observed interaction, 0 otherwise) and a confidence ``c_ui = 1 + alpha r_ui``
(``confidence="log"``: ``1 + alpha log(1 + r_ui / eps)``) for observed pairs, 1 for the others;
alternating exact block minimisations of

    J = sum_(u,i) c_ui (p_ui - x_u . y_i)^2 + lam (sum_u |x_u|^2 + sum_i |y_i|^2)

over all pairs, each solved through the precomputed ``Y^T Y`` (:mod:`fastmf.kernels.wrmf`), either
exactly (``solver="cholesky"``) or by ``cg_steps`` warm-started conjugate-gradient steps
(``solver="cg"``, the default of implicit; Takacs, Pilaszy and Tikk 2011). Neither increases ``J``.

The observed pairs are the rows of an implicit (user, item[, weight]) table, with ``r_ui`` its
weight (1 without one), or the ratings ``>= threshold`` of a rating table, with ``r_ui = 1``.
Items are ranked by ``x_u . y_i``. Note on implicit's parametrisation: it takes the confidence
as ``alpha' r_ui`` (no 1 +), so its ``alpha'`` on binary data is this model's ``1 + alpha``.
"""

from __future__ import annotations

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.common.params import Param, declare
from fastmf.common.search import Choice, LogUniform
from fastmf.common.threads import n_threads
from fastmf.data_prep.dataset import Dataset
from fastmf.kernels import sparse as ksparse
from fastmf.metrics.ranking import ranking_report
from fastmf.models import budget, hyper
from fastmf.models.als import work_blocks
from fastmf.models.backend import backend_of
from fastmf.models.ranker import Ranker
from fastmf.models.training import run_epochs


class WRMFState:
    """Factors being fitted and the observed pairs by user (``csr``) and by item (``csc``), with values
    ``r_ui``. Factors start from N(0, init_std^2) drawn in float32 (the same values on both backends)."""

    divergence_hint = "try a larger --lam or a smaller --alpha"

    def __init__(
        self,
        csr,
        csc,
        n_users,
        n_items,
        factors,
        backend,
        seed=42,
        lam=0.01,
        alpha=1.0,
        eps=1.0,
        log_scaling=False,
        cg_steps=3,
        init_std=0.01,
    ):
        self.backend = backend
        self.csr, self.csc = csr, csc
        self.lam, self.alpha, self.eps, self.log_scaling = float(lam), float(alpha), float(eps), bool(log_scaling)
        self.cg_steps = int(cg_steps)
        rng = np.random.default_rng(seed)
        self.user_factors = rng.normal(0.0, init_std, (n_users, factors)).astype(np.float32).astype(backend.FLOAT)
        self.item_factors = rng.normal(0.0, init_std, (n_items, factors)).astype(np.float32).astype(backend.FLOAT)
        self.user_blocks = work_blocks(csr[0], factors)
        self.item_blocks = work_blocks(csc[0], factors)

    def _sweep(self, mat, own, other, blocks) -> None:
        k = self.backend.wrmf
        k.half_sweep(
            *mat, own, other, k.gram(other), self.lam, self.alpha, self.eps, self.log_scaling, self.cg_steps, blocks
        )

    def epoch(self) -> dict:
        self._sweep(self.csr, self.user_factors, self.item_factors, self.user_blocks)
        self._sweep(self.csc, self.item_factors, self.user_factors, self.item_blocks)
        return {"objective": self.objective()}

    def objective(self) -> float:
        """``J`` of the module docstring (``tr(X^T X Y^T Y)`` stands for the sum over all pairs)."""
        k, sq = self.backend.wrmf, self.backend.metrics.sum_squares
        observed = k.observed_loss(
            *self.csr, self.user_factors, self.item_factors, self.alpha, self.eps, self.log_scaling
        )
        cross = float(np.sum(k.gram(self.user_factors) * k.gram(self.item_factors)))
        return observed + cross + self.lam * (sq(self.user_factors) + sq(self.item_factors))

    def finite(self, record: dict) -> bool:
        return bool(np.isfinite(record["objective"]))


class WRMF(Ranker):
    """Weighted matrix factorisation for implicit feedback, trained by alternating least squares.

    Defaults: ``factors`` D = 64, ``lam`` 0.01, ``alpha`` 1 (linear confidence), 15 ``epochs``,
    the conjugate-gradient ``solver`` with 3 ``cg_steps`` (implicit's defaults, but for D = 100),
    factors from N(0, 0.01^2); ``threshold`` 4 makes the positives of a rating table.
    """

    kind = "wrmf"
    epoch_eval_users = 2000
    params = declare(
        factors=hyper.FACTORS.but(default=64),
        lam=hyper.LAM.but(default=0.01, help="Ridge lambda of the user and item factors (1e-8 to 1e8)."),
        alpha=Param(
            1.0,
            "Confidence slope: c = 1 + alpha r (or 1 + alpha log(1 + r/eps); at most 1e8).",
            low=0.0,
            high=hyper.PRECISION_MAX,
        ),
        confidence=Param(
            "linear", "Confidence scaling of the observed values: linear or log.", choices=("linear", "log")
        ),
        eps=Param(
            1.0,
            "The eps of the log confidence scaling (1e-8 to 1e8).",
            low=hyper.PRECISION_MIN,
            high=hyper.PRECISION_MAX,
        ),
        solver=hyper.SOLVER.but(default="cg"),
        cg_steps=hyper.CG_STEPS,
        epochs=hyper.EPOCHS.but(default=15),
        threshold=hyper.THRESHOLD,
        init_std=Param(0.01, "Standard deviation of the initial factors N(0, s^2) (at most 10).", low=0.0, high=10.0),
        random_state=hyper.RANDOM_STATE,
        backend=hyper.BACKEND,
    )
    search_space = {
        "factors": LogUniform(16, 256, integer=True),
        "lam": LogUniform(1e-3, 10.0),
        "alpha": LogUniform(0.1, 100.0),
        "confidence": Choice(("linear", "log")),
    }

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        pos = self._fit_positives(train)
        values = pos.data if train.implicit else np.ones_like(pos.data)
        csr = (pos.indptr, pos.indices, values)
        csc = ksparse.transpose_csr(pos.indptr, pos.indices, values, train.n_items)
        state = WRMFState(
            csr,
            csc,
            train.n_users,
            train.n_items,
            int(self.factors),
            backend_of(self.backend),
            self.random_state,
            self.lam,
            self.alpha,
            self.eps,
            self.confidence == "log",
            self._cg_steps(),
            self.init_std,
        )
        self.user_factors_, self.item_factors_ = state.user_factors, state.item_factors
        self.user_bias_ = np.zeros(train.n_users, dtype=state.user_factors.dtype)
        self.item_bias_ = np.zeros(train.n_items, dtype=state.user_factors.dtype)
        self._epoch_task = None
        if eval_set is not None:
            self._epoch_task = self.ranking_task(eval_set).sample_users(self.epoch_eval_users, self.random_state)
        run_epochs(self, state, train, eval_set, None, callback)
        del self._epoch_task

    def training_cost(self, shape: budget.Shape, factors: int | None = None) -> budget.Cost:
        """WRMF's estimate (see :mod:`fastmf.models.budget`), with ``s`` bytes per float of the backend,
        ``E`` users + items, ``R`` observed pairs, ``L`` the longest row, ``T`` threads, ``k`` the CG steps:

        * memory: the factors ``E D s``, their float32 draws, two ``D x D`` Gram matrices, per thread the
          gathered rows ``L D`` (float32) and the ``D x D`` system, and ``PER_RATING_BYTES R``;
        * arithmetic per epoch: the Gram matrices ``2 E D^2``; with CG ``(k + 1) (2 E D^2 + 4 R D)``, exactly
          ``2 R D^2 + E D^3 / 3`` (the weighted Gram sums and the Cholesky solves);
        * traffic per epoch: :func:`fastmf.models.budget.sweep_traffic` with rows of ``D s`` bytes, and
          each side's factors read once more for its Gram matrix.
        """
        d = int(self.factors) if factors is None else int(factors)
        s = np.dtype(backend_of(self.backend).FLOAT).itemsize
        scratch = n_threads() * (4.0 * shape.largest * d + 16.0 * (d + 3) ** 2 + 512.0 * (d + 3))
        memory = shape.entities * d * (s + 4.0) + 16.0 * d * d + scratch + budget.PER_RATING_BYTES * shape.ratings
        steps = self._cg_steps()
        solve = (
            (steps + 1) * (2.0 * shape.entities * d * d + 4.0 * shape.ratings * d)
            if steps
            else (2.0 * shape.ratings * d * d + shape.entities * d**3 / 3)
        )
        traffic = budget.sweep_traffic(shape, d * s, d * s) + shape.entities * d * s  # and the Gram passes
        return budget.Cost(bytes=memory, flops=2.0 * shape.entities * d * d + solve, traffic=traffic)

    def _cg_steps(self) -> int:
        return hyper.cg_steps_of(self.solver, self.cg_steps)

    def _epoch_metrics(self, state: WRMFState, train, eval_set) -> dict:
        """With an ``eval_set``: the ranking AUCs on a fixed sample of its users."""
        if self._epoch_task is None:
            return {}
        report = ranking_report(self, self._epoch_task, seed=self.random_state)
        return {"auc": report["auc"], "sampled_auc": report["sampled_auc"]}

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        """A new user's factors from interactions with values ``r`` (weights, for a model trained on an
        implicit table; for one trained on ratings, the ratings ``>= threshold`` count with ``r = 1``; a
        list of items: ``r = 1``), solved exactly against the items:
        ``x = (Y^T Y + lam I + sum (c - 1) y y^T)^-1 sum c y`` (implicit's ``recalculate_user``)."""
        if values is None:
            values = np.ones(item_idx.size)
        elif self._rating_scale() is not None and self.threshold:  # ratings: the positives count, r = 1
            keep = values >= self.threshold
            item_idx, values = item_idx[keep], np.ones(int(keep.sum()))
        if item_idx.size == 0:
            raise FastMFError(f"fold_in needs at least one interaction (rating >= {self.threshold})")
        y = self.item_factors_.astype(np.float64)
        rows = y[item_idx]
        c = 1.0 + self.alpha * (np.log1p(values / self.eps) if self.confidence == "log" else values)
        a = y.T @ y + self.lam * np.eye(y.shape[1]) + (rows * (c - 1.0)[:, None]).T @ rows
        return 0.0, np.linalg.solve(a, c @ rows)
