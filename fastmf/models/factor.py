"""Models with user/item factors and biases: shared prediction, scoring, fold-in and persistence.

Score ``s_ui = mu + b_u + b_i + U_u . V_i``; a user or item unseen in training is
cold: its bias and factors are zero (the prior mean). A predicted rating is the score
clipped to the training scale, ``r^_ui = clip(s_ui, lo, hi)`` (``rating_range_``; no
clipping for an implicit table), as Surprise and cornac predict: for a rating inside
the scale clipping never increases the error. Training minimises the objective of the
scores; recommendations rank by the scores.
"""

from __future__ import annotations

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.kernels import metrics as km
from fastmf.metrics.rating import rating_metrics
from fastmf.models import checks
from fastmf.models.backend import backend_of
from fastmf.models.base import Recommender
from fastmf.models.training import run_epochs, validation_split


def map_new_user(v: np.ndarray, res: np.ndarray, lam: float, gamma: float, precision, extra=None):
    """The MAP bias and factors of a new user against fixed items, in one exact solve.

    Minimises ``lam/2 sum_i (res_i - b - u . v_i)^2 + lam/2 u^T E u + gamma/2 b^2 + 1/2 u^T P u``
    over ``(b, u)`` with ``v`` the rated items' factors (``n x D``), ``res_i = r_i - mu - b_i``,
    ``P = diag(precision)`` the factors' prior precision (a scalar or ``D`` values) and ``E``
    (``extra``, ``D x D`` or ``None``) the items' summed posterior covariance (VI). With
    ``z_i = (1, v_i)`` it solves ``(lam sum z z^T + diag(gamma, P) + lam diag(0, E)) (b, u) =
    lam sum z_i res_i``. Returns ``(b, u, A)`` with ``A = P + lam (V^T V + E)`` the precision of
    ``u`` given ``b``.
    """
    n, d = v.shape
    z = np.empty((n, d + 1))
    z[:, 0] = 1.0
    z[:, 1:] = v
    system = lam * (z.T @ z)
    system[0, 0] += gamma
    a = system[1:, 1:]
    a[np.diag_indices(d)] += precision
    if extra is not None:
        a += lam * extra
    x = np.linalg.solve(system, lam * (z.T @ res))
    return float(x[0]), x[1:], a.copy()


class FactorModel(Recommender):
    """Holds ``user_factors_``, ``item_factors_``, ``user_bias_``, ``item_bias_`` and ``global_mean_``."""

    _saved_arrays = ("user_factors_", "item_factors_", "user_bias_", "item_bias_")
    _saved_scalars = Recommender._saved_scalars + ("global_mean_", "rating_range_")

    def _check_loaded(self, path: str) -> None:
        d = self.user_factors_.shape[1] if self.user_factors_.ndim == 2 else -1
        checks.check_shape(self.user_factors_, (self.n_users, d), "user_factors", path)
        checks.check_shape(self.item_factors_, (self.n_items, d), "item_factors", path)
        checks.check_shape(self.user_bias_, (self.n_users,), "user_bias", path)
        checks.check_shape(self.item_bias_, (self.n_items,), "item_bias", path)
        checks.check_finite(
            path,
            user_factors=self.user_factors_,
            item_factors=self.item_factors_,
            user_bias=self.user_bias_,
            item_bias=self.item_bias_,
            global_mean=np.asarray(self.global_mean_, dtype=np.float64),
        )

    def _fit(self, train, eval_set, callback) -> None:
        """Fit through the shared epoch loop (:mod:`fastmf.models.training`): the model's training state
        (``_training_state``) on ``train`` less the validation split (with ``patience``), kept by ``_keep``."""
        train, validation = validation_split(self, train)
        self.global_mean_ = train.global_mean
        state = self._training_state(train)
        self.best_epoch_ = run_epochs(self, state, train, eval_set, validation, callback)
        self._keep(state)

    def _training_state(self, train, state_class=None):
        """The model's training state (``_new_state``; of ``state_class`` when given, as a cluster's) on
        ``train``, whose reported RMSEs are of predictions clipped to the training scale."""
        state = self._new_state(train) if state_class is None else self._new_state(train, state_class)
        state.bounds = self._bounds()
        return state

    def _new_state(self, train, state_class=None):
        raise NotImplementedError

    def _keep(self, state) -> None:
        raise NotImplementedError

    def _epoch_metrics(self, state, train, eval_set) -> dict:
        """The metrics of one history record (see :mod:`fastmf.models.training`)."""
        return state.metrics(train, eval_set)

    # ------------------------------------------------------------------ prediction
    def _bounds(self) -> tuple:
        """``(lo, hi)`` predictions are clipped to: the training scale; unbounded for an implicit table and
        for a ranker (whose ``predict`` gives its scores)."""
        return (self.rating_model and self._rating_scale()) or (-np.inf, np.inf)

    def _model_arrays(self):
        return (float(self.global_mean_), self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_)

    def predict(self, users, items) -> np.ndarray:
        """Predicted ratings ``clip(s_ui, lo, hi)`` for parallel sequences of user ids and item ids (unknown
        ids are cold)."""
        self._check_fitted()
        u = self.user_map_.index_of(np.asarray(users))
        i = self.item_map_.index_of(np.asarray(items))
        if u.shape != i.shape:
            raise FastMFError("users and items must have the same length")
        return km.predict_pairs(u.astype(np.int64), i.astype(np.int64), *self._model_arrays(), *self._bounds())

    def _score_batch(self, users: np.ndarray) -> np.ndarray:
        scores = self.user_factors_[users] @ self.item_factors_.T
        scores += self.item_bias_[None, :]
        if self.rating_model:
            scores += (self.global_mean_ + self.user_bias_[users])[:, None]
        return scores

    def _linear_scores(self) -> bool:
        """Whether recommendations rank by ``_score_batch``'s ``offset_u + b_i + U_u . V_i`` (a subclass
        ranking by something else says no)."""
        return True

    def _select(self, users: np.ndarray, k: int, exclude_seen: bool, eligible: np.ndarray):
        """Scoring fused with the top-K selection (:meth:`_fused_topk`): the ``users x items`` scores
        are never formed, so all users go in one call."""
        if not self._linear_scores():
            return super()._select(users, k, exclude_seen, eligible)
        offsets = np.zeros(users.size)
        if self.rating_model:
            offsets = self.global_mean_ + self.user_bias_[users].astype(np.float64)
        return self._fused_topk(
            self.user_factors_[users],
            offsets,
            self.item_factors_,
            self.item_bias_,
            k,
            self._exclusions(users, exclude_seen),
            eligible,
        )

    def _fused_topk(self, query_vecs, offsets, item_vecs, item_bias, k, exclusions, eligible):
        """Best ``k`` eligible items of the scores ``offsets[q] + item_bias[c] + query_vecs[q] . item_vecs[c]``
        without the ``exclusions`` (``(indptr, indices, rows)``), by the backend's ``topk_dot``."""
        dtype = self.item_factors_.dtype
        out_idx = np.empty((len(query_vecs), k), dtype=np.int64)
        out_score = np.empty((len(query_vecs), k), dtype=np.float64)
        backend_of(self.backend).topk.topk_dot(
            np.ascontiguousarray(query_vecs, dtype=dtype),
            np.asarray(offsets, dtype=dtype),
            np.ascontiguousarray(np.asarray(item_vecs, dtype=dtype).T),
            np.asarray(item_bias, dtype=dtype),
            k,
            *exclusions,
            eligible,
            out_idx,
            out_score,
        )
        return out_idx, out_score

    def _score_vector(self, state) -> np.ndarray:
        bias, vector = state[0], state[1]
        scores = self.item_factors_ @ vector.astype(self.item_factors_.dtype) + self.item_bias_
        if self.rating_model:
            scores = scores + self.global_mean_ + bias
        return scores

    def fold_in_predict(self, ratings: dict, items, return_std: bool = False):
        """Predicted ratings of ``items`` (ids) for a new user described by ``{item_id: rating}``, folded in
        against the fixed items exactly as :meth:`fold_in` does (no refit): ``mu + b + b_i + u . V_i``
        with the new user's ``(b, u)``, clipped to the training scale. ``return_std`` (VI only) also
        returns the predictive standard deviations, as :meth:`predict` does for known users."""
        self._check_fitted()
        if not self.rating_model:
            raise FastMFError(f"a '{self.kind}' model ranks items and predicts no ratings")
        if return_std:
            raise FastMFError(f"a '{self.kind}' model has no predictive uncertainty (return_std needs a VI model)")
        if not isinstance(ratings, dict):
            raise FastMFError("fold_in_predict takes one new user as {item_id: rating}")
        state = self._fold_in_state(*self._fold_in_input(ratings))
        idx = self.item_indices(np.atleast_1d(items))
        return np.clip(self._new_user_means(state, idx), *self._bounds())

    def _new_user_means(self, state, idx: np.ndarray) -> np.ndarray:
        """``mu + b + b_i + u . V_i`` of a folded-in user ``state = (b, u, ...)`` for item indices ``idx``."""
        b, u = state[0], np.asarray(state[1], dtype=np.float64)
        return (
            self.global_mean_
            + b
            + self.item_bias_[idx].astype(np.float64)
            + self.item_factors_[idx].astype(np.float64) @ u
        )

    def similar_items(
        self, items, k: int = 10, allow=None, deny=None, min_item_ratings: int = 0, as_frame: bool = False
    ):
        """The ``k`` items most similar to each given item id: the largest cosines
        ``V_i . V_j / (|V_i| |V_j|)`` of the item factors (the item itself excluded; a zero vector
        has cosine 0). One id gives ``(item_ids, similarities)``; a sequence of ids ``(n, k)``
        arrays; ``as_frame`` a DataFrame (``user`` is then the query item). ``allow``, ``deny``
        and ``min_item_ratings`` as in :meth:`recommend`."""
        idx = self.item_indices(np.atleast_1d(items))
        v = self.item_factors_.astype(np.float64)
        if v.shape[1] == 0:
            raise FastMFError(f"model '{self.kind}' has no item factors to compare")
        norms = np.linalg.norm(v, axis=1)
        unit = v / np.where(norms > 0, norms, 1.0)[:, None]  # zero vectors stay zero: cosine 0
        top, sims = self._fused_topk(
            unit[idx],
            np.zeros(idx.size),
            unit,
            np.zeros(self.n_items),
            self._check_k(k),
            self._exclusions(idx, False, [[i] for i in idx]),
            self._eligible(allow, deny, min_item_ratings),
        )
        return self._results(items, self.item_map_.ids[idx], top, sims, as_frame)

    def _fold_in_residuals(self, item_idx: np.ndarray, values: np.ndarray | None):
        """``(V, r - mu - b_i)`` of a new user's rated items, in float64."""
        if values is None:
            raise FastMFError(f"a '{self.kind}' model folds in ratings: give {{item_id: rating}}")
        return (
            self.item_factors_[item_idx].astype(np.float64),
            values - self.global_mean_ - self.item_bias_[item_idx].astype(np.float64),
        )

    # ------------------------------------------------------------------ evaluation
    def squared_errors(self, data) -> np.ndarray:
        """Per-rating squared errors of the predicted ratings on a dataset aligned to the training maps
        (CSR order)."""
        return km.squared_errors(data.indptr, data.indices, data.data, *self._model_arrays(), *self._bounds())

    def _evaluate(self, test) -> dict:
        return rating_metrics(self, test)
