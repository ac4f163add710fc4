"""Evaluation of fitted models on held-out ratings.

Rating metrics (RMSE, MAE) are computed by parallel kernels; test ratings are
also split into strata by the item's number of *training* ratings
(``0``, ``1-3``, ``4-20``, ``>20``) so cold-start accuracy is visible.
"""

from __future__ import annotations

import numpy as np

from fastmf.data_prep.dataset import Dataset
from fastmf.kernels import metrics as km

STRATA = (("0", 0, 0), ("1-3", 1, 3), ("4-20", 4, 20), (">20", 21, np.iinfo(np.int64).max))


def train_item_counts(model, test: Dataset) -> np.ndarray:
    """Training-rating count of every test rating's item (0 for items unseen in training)."""
    counts = np.zeros(max(test.n_items, model.n_items), dtype=np.int64)
    counts[:model.n_items] = model.item_counts_
    return counts[test.indices]


def train_user_counts(model, test: Dataset) -> np.ndarray:
    counts = np.zeros(max(test.n_users, model.n_users), dtype=np.int64)
    counts[:model.n_users] = np.diff(model.seen_indptr_)
    return counts[test.user_of_entry]


def cold_report(model, test: Dataset) -> dict:
    """Counts of test ratings whose user or item has no training rating."""
    cu = train_user_counts(model, test) == 0
    ci = train_item_counts(model, test) == 0
    return {"test_ratings": test.n_ratings, "cold_user_ratings": int(cu.sum()),
            "cold_item_ratings": int(ci.sum()), "cold_ratings": int((cu | ci).sum())}


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
    n = max(1, test.n_ratings)
    return {
        "test_rmse": float(np.sqrt(sq.sum() / n)),
        "test_mae": float(np.sqrt(sq).sum() / n),
        "rmse_by_stratum": rmse_by_stratum(model, test, sq),
        "cold": cold_report(model, test),
    }


def factor_squared_errors(model, test: Dataset) -> np.ndarray:
    """Per-rating squared errors of ``mu + b_u + b_i + U_u.V_i`` (CSR order of ``test``)."""
    return km.squared_errors(test.indptr, test.indices, test.data, *model._model_arrays())


def als_baseline(model, train: Dataset, test: Dataset | None) -> dict:
    """Plain ALS fitted with ``model``'s shared hyperparameters on the same ``train``; its metrics on ``test``.

    Returns ``{"params", "fit_seconds", "test_rmse", "test_mae", "rmse_by_stratum", "cold"}`` (the
    side-by-side baseline of ``fastmf train --compare-als``).
    """
    from fastmf.als import ALS
    from fastmf.errors import FastMFError

    if test is None or not model.rating_model:
        raise FastMFError("--compare-als needs a rating model and test ratings (a split or --test)")
    params = {k: v for k, v in model.get_params().items() if k in ALS._param_names()}
    als = ALS(**params).fit(train)
    return {"params": params, "fit_seconds": als.fit_seconds_, **als.evaluate(test)}


def format_strata(rows: dict) -> str:
    """A table of RMSE per stratum for one or more models: ``{model name: rmse_by_stratum}``."""
    names = list(rows)
    lines = ["item's training ratings " + "".join(f"{n:>16}" for n in names) + f"{'count':>10}"]
    first = rows[names[0]]
    for label, _, _ in STRATA:
        cells = "".join(f"{rows[n][label]['rmse']:>16.4f}" for n in names)
        lines.append(f"{label:<24}{cells}{first[label]['count']:>10,}")
    return "\n".join(lines)
