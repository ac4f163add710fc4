"""Models with user/item factors and biases: shared prediction, scoring and persistence.

Prediction ``r^_ui = mu + b_u + b_i + U_u . V_i``; a user or item unseen in
training is cold: its bias and factors are zero (the prior mean).
"""

from __future__ import annotations

import numpy as np

from fastmf.base import Recommender
from fastmf.errors import FastMFError, ModelFileError
from fastmf.evaluation import factor_squared_errors, rating_metrics
from fastmf.kernels import metrics as km


class FactorModel(Recommender):
    """Holds ``user_factors_``, ``item_factors_``, ``user_bias_``, ``item_bias_`` and ``global_mean_``."""

    _saved_arrays = ("user_factors_", "item_factors_", "user_bias_", "item_bias_")

    def _extra_header(self) -> dict:
        return {"global_mean": float(self.global_mean_)}

    def _load_extra(self, header: dict) -> None:
        self.global_mean_ = float(header.get("global_mean", 0.0))

    def _check_loaded(self, path: str) -> None:
        n_u, n_i = self.n_users, self.n_items
        if (self.user_factors_.shape[0] != n_u or self.user_bias_.shape[0] != n_u
                or self.item_factors_.shape[0] != n_i or self.item_bias_.shape[0] != n_i
                or self.user_factors_.shape[1] != self.item_factors_.shape[1]):
            raise ModelFileError(f"{path}: factor and bias arrays do not match the id maps")

    # ------------------------------------------------------------------ prediction
    def _model_arrays(self):
        return (float(self.global_mean_), self.user_bias_, self.item_bias_,
                self.user_factors_, self.item_factors_)

    def predict(self, users, items) -> np.ndarray:
        """Predicted ratings for parallel sequences of user ids and item ids (unknown ids are cold)."""
        self._check_fitted()
        u = self.user_map_.index_of(np.asarray(users))
        i = self.item_map_.index_of(np.asarray(items))
        if u.shape != i.shape:
            raise FastMFError("users and items must have the same length")
        return km.predict_pairs(u.astype(np.int64), i.astype(np.int64), *self._model_arrays())

    def _score_batch(self, users: np.ndarray) -> np.ndarray:
        scores = self.user_factors_[users] @ self.item_factors_.T
        scores += self.item_bias_[None, :]
        if self.rating_model:
            scores += (self.global_mean_ + self.user_bias_[users])[:, None]
        return scores

    def _score_vector(self, state) -> np.ndarray:
        bias, vector = state
        scores = self.item_factors_ @ vector.astype(self.item_factors_.dtype) + self.item_bias_
        if self.rating_model:
            scores = scores + self.global_mean_ + bias
        return scores

    # ------------------------------------------------------------------ evaluation
    def squared_errors(self, data) -> np.ndarray:
        """Per-rating squared errors on a dataset aligned to the training maps (CSR order)."""
        return factor_squared_errors(self, data)

    def _evaluate(self, test) -> dict:
        return rating_metrics(self, test)
