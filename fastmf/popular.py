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

from fastmf.data_prep.dataset import Dataset
from fastmf.ranking import Ranker


class MostPopular(Ranker):
    """Rank items by their number of training positives (ratings ``>= threshold``).

    ``seed`` only drives the sampled AUC of the evaluation. Counting is one
    vectorised pass, so there is a single (NumPy) backend.
    """

    kind = "popular"
    backend = "numpy"
    epochs = 1  # one counting pass (for progress display)

    def __init__(self, threshold: float | None = 4.0, seed: int = 42):
        self.threshold = threshold
        self.seed = seed

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        t0 = time.perf_counter()
        pos = self._fit_positives(train)
        self.item_bias_ = np.bincount(pos.indices, minlength=train.n_items).astype(np.float32)
        self.user_bias_ = np.zeros(train.n_users, dtype=np.float32)
        self.user_factors_ = np.zeros((train.n_users, 0), dtype=np.float32)
        self.item_factors_ = np.zeros((train.n_items, 0), dtype=np.float32)
        self._log({"epoch": 1, "seconds": time.perf_counter() - t0}, callback)

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        return 0.0, np.zeros(0)
