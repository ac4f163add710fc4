"""Rating metrics of fitted models on held-out ratings.

``RMSE = sqrt(sum e^2 / n)`` and ``MAE = sum |e| / n`` over the test ratings
(``e = r - r^``); test ratings are also split into strata by the item's number of
*training* ratings (``0``, ``1-3``, ``4-20``, ``>20``) so cold-start accuracy is
visible. A model is used through ``model.squared_errors(test)``, ``model.n_users``,
``model.n_items``, ``model.item_counts_`` and ``model.seen_indptr_``.
"""

from __future__ import annotations

import numpy as np

from fastmf.data_prep.dataset import Dataset


def rmse(sse: float, n: int) -> float:
    """``sqrt(sse / n)``; NaN for no ratings."""
    return float(np.sqrt(sse / n)) if n else float("nan")


STRATA = (("0", 0, 0), ("1-3", 1, 3), ("4-20", 4, 20), (">20", 21, np.iinfo(np.int64).max))


def train_item_counts(model, test: Dataset) -> np.ndarray:
    """Training-rating count of every test rating's item (0 for items unseen in training)."""
    counts = np.zeros(max(test.n_items, model.n_items), dtype=np.int64)
    counts[: model.n_items] = model.item_counts_
    return counts[test.indices]


def train_user_counts(model, test: Dataset) -> np.ndarray:
    counts = np.zeros(max(test.n_users, model.n_users), dtype=np.int64)
    counts[: model.n_users] = np.diff(model.seen_indptr_)
    return counts[test.user_of_entry]


def cold_report(model, test: Dataset) -> dict:
    """Counts of test ratings whose user or item has no training rating."""
    cu = train_user_counts(model, test) == 0
    ci = train_item_counts(model, test) == 0
    return {
        "test_ratings": test.n_ratings,
        "cold_user_ratings": int(cu.sum()),
        "cold_item_ratings": int(ci.sum()),
        "cold_ratings": int((cu | ci).sum()),
    }


def rmse_by_stratum(model, test: Dataset, squared_errors: np.ndarray | None = None) -> dict:
    """``{stratum: {"rmse", "count"}}`` by the item's training count (RMSE is NaN for an empty stratum)."""
    if squared_errors is None:
        squared_errors = model.squared_errors(test)
    counts = train_item_counts(model, test)
    out = {}
    for label, lo, hi in STRATA:
        mask = (counts >= lo) & (counts <= hi)
        n = int(mask.sum())
        out[label] = {"rmse": float(np.sqrt(squared_errors[mask].mean())) if n else float("nan"), "count": n}
    return out


def rating_metrics(model, test: Dataset) -> dict:
    """``test_rmse``, ``test_mae``, ``rmse_by_stratum`` and cold counts of a rating model on ``test``."""
    sq = model.squared_errors(test)
    n = test.n_ratings
    return {
        "test_rmse": rmse(float(sq.sum()), n),
        "test_mae": float(np.sqrt(sq).sum() / n) if n else float("nan"),
        "rmse_by_stratum": rmse_by_stratum(model, test, sq),
        "cold": cold_report(model, test),
    }
