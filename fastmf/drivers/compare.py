"""Several models on one split: ranking metrics side by side (``fastmf compare``) and the plain-ALS
baseline of ``fastmf train --compare-als``."""

from __future__ import annotations

from fastmf.common.errors import FastMFError
from fastmf.data_prep.dataset import Dataset
from fastmf.metrics.ranking import ranking_metrics
from fastmf.models import ALS
from fastmf.models.base import Recommender
from fastmf.registry import build_model, model_class


def compare(
    kinds,
    train: Dataset,
    test: Dataset,
    params: dict | None = None,
    threshold: float | None = 4.0,
    seed: int = 42,
    callback=None,
) -> list[dict]:
    """Fit each model kind on ``train`` and rank ``test`` with the same positives: one row per model.

    ``params`` maps a kind to its hyperparameters; every model gets ``seed``, and rankers get
    ``threshold``. Rating models rank by predicted rating. Every kind and setting is checked
    before the first model is fitted.
    """
    classes = [model_class(kind) for kind in kinds]
    models = []
    for cls in classes:
        given = {"random_state": seed, **(params or {}).get(cls.kind, {})}
        if "threshold" in cls.params:
            given.setdefault("threshold", threshold)
        models.append(build_model(cls.kind, given))
    rows = []
    for model in models:
        model.fit(train)
        if model.rating_model:
            metrics = ranking_metrics(model, train, test, threshold, seed=seed)
        else:
            metrics = model.evaluate(test)
        row = {"model": model.kind, "params": model.get_params(), "fit_seconds": model.fit_seconds_, **metrics}
        rows.append(row)
        if callback is not None:
            callback(row)
    return rows


def als_baseline(model: Recommender, train: Dataset, test: Dataset | None, callback=None) -> dict:
    """Plain ALS fitted with ``model``'s shared hyperparameters on the same ``train``; its metrics on ``test``.

    Returns ``{"params", "fit_seconds", "test_rmse", "test_mae", "rmse_by_stratum", "cold"}`` (the
    side-by-side baseline of ``fastmf train --compare-als``).
    """
    if test is None or not model.rating_model:
        raise FastMFError("--compare-als needs a rating model and test ratings (a split or --test)")
    params = {k: v for k, v in model.get_params().items() if k in ALS.params}
    als = ALS(**params).fit(train, callback=callback)
    return {"params": params, "fit_seconds": als.fit_seconds_, **als.evaluate(test)}
