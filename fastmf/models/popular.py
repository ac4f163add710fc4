"""The most-popular baseline: every user gets the items with the most training positives.

Score ``s_ui = n_i``, the number of training positives (ratings ``>=
threshold``) of item ``i``, the same for every user; it is stored as the item
bias of a factor model with no factors, so recommendation, ranking
evaluation and persistence are those of every other model. It is the
reference a personalised ranker (BPR) has to beat on the same split.
"""

from __future__ import annotations

import time

import numpy as np

from fastmf.common.params import declare
from fastmf.data_prep.dataset import Dataset
from fastmf.models import hyper
from fastmf.models.ranker import Ranker


class MostPopular(Ranker):
    """Rank items by their number of training positives (ratings ``>= threshold``).

    ``seed`` only drives the sampled AUC of the evaluation. Counting is one
    vectorised pass (no kernels, so no backend choice): its single history record
    is that pass.
    """

    kind = "popular"
    params = declare(threshold=hyper.THRESHOLD, random_state=hyper.RANDOM_STATE)

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        t0 = time.perf_counter()
        pos = self._fit_positives(train)
        self.item_bias_ = np.bincount(pos.indices, minlength=train.n_items).astype(np.float32)
        self.user_bias_ = np.zeros(train.n_users, dtype=np.float32)
        self.user_factors_ = np.zeros((train.n_users, 0), dtype=np.float32)
        self.item_factors_ = np.zeros((train.n_items, 0), dtype=np.float32)
        self._log({"epoch": 1, "seconds": time.perf_counter() - t0}, callback)

    def _linear_scores(self) -> bool:
        """No factors and no backend: rank through the generic scores (one count per item)."""
        return False

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        return 0.0, np.zeros(0)
