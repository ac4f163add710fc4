"""The base of the implicit-feedback rankers (BPR, most popular): factor models fitted to positives."""

from __future__ import annotations

from fastmf.common.errors import FastMFError
from fastmf.data_prep.dataset import Dataset
from fastmf.metrics.ranking import RankingTask, positives, ranking_report
from fastmf.models import checks
from fastmf.models.factor import FactorModel


class Ranker(FactorModel):
    """A factor model fitted to positives only: scores ``b_i + U_u . V_i``, evaluated by ranking.

    Keeps the training positives (``positive_indptr_``, ``positive_indices_``)
    to exclude them when ranking; ``user_bias_`` stays zero and
    ``global_mean_`` is 0 so the shared prediction, recommendation and
    persistence code applies unchanged. Subclasses take ``threshold`` and ``seed``.
    """

    rating_model = False
    _saved_arrays = FactorModel._saved_arrays + ("positive_indptr_", "positive_indices_")

    def _fit_positives(self, train: Dataset) -> Dataset:
        pos = positives(train, self.threshold)
        if pos.n_ratings == 0:
            raise FastMFError(
                f"no training ratings >= threshold {self.threshold} "
                "(for implicit data with every rating 1, use threshold 0)"
            )
        self.positive_indptr_, self.positive_indices_ = pos.indptr, pos.indices
        self.global_mean_ = 0.0
        return pos

    def ranking_task(self, test: Dataset) -> RankingTask:
        """The evaluation task of ``test`` (aligned to the model) against the training positives."""
        return RankingTask.build(self, (self.positive_indptr_, self.positive_indices_), test, self.threshold)

    def _evaluate(self, test: Dataset) -> dict:
        return ranking_report(self, self.ranking_task(test), seed=self.random_state)

    def _check_loaded(self, path: str) -> None:
        super()._check_loaded(path)
        checks.check_csr(self.positive_indptr_, self.positive_indices_, self.n_users, self.n_items, "positives", path)
