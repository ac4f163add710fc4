"""The training driver behind ``fastmf train``: fit on a split and report as plain data."""

from __future__ import annotations

from fastmf.data_prep.dataset import Dataset
from fastmf.metrics.ranking import ranking_metrics
from fastmf.models.base import Recommender


def train_report(
    model: Recommender,
    train: Dataset,
    test: Dataset | None,
    extra: dict | None = None,
    ranking: bool = False,
    threshold: float | None = 4.0,
) -> dict:
    """The JSON-ready summary of a fitted model: parameters, history and final metrics.

    With ``ranking`` a rating model is also scored by the ranking metrics of
    :mod:`fastmf.metrics.ranking` (positives: ratings ``>= threshold``); rankers always are.
    """
    history = model.history_
    out = {
        "model": model.kind,
        "params": model.get_params(),
        **(extra or {}),
        "train_ratings": train.n_ratings,
        "history": history,
        "fit_seconds": model.fit_seconds_,
        "compile_seconds": model.compile_seconds_,
    }
    if history:
        out["epochs_run"] = len(history)
        last = history[-1]
        for key in ("train_rmse", "objective", "elbo", "loss"):
            if key in last:
                out[key] = last[key]
    if getattr(model, "patience", None):
        out["best_epoch"] = model.best_epoch_
    if hasattr(model, "fit_summary"):  # learned extras, e.g. VI's precisions and uncertainty table
        out.update(model.fit_summary())
    if test is not None:
        out.update(model.evaluate(test))
        if ranking and model.rating_model:
            out.update(ranking_metrics(model, train, test, threshold, seed=model.random_state))
    return out
