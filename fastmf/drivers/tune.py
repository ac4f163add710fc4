"""Hyperparameter search behind ``fastmf tune``: grid points scored on a validation split."""

from __future__ import annotations

import itertools
import time

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.data_prep.dataset import Dataset
from fastmf.data_prep.splits import random_split
from fastmf.registry import build_model, model_class


def parse_setting(kind: str, name: str, text: str, where: str = "--grid"):
    """The value ``text`` of hyperparameter ``name`` of model ``kind``, parsed and checked by its declaration."""
    cls = model_class(kind)
    key = name.strip().replace("-", "_")
    if key not in cls.params:
        raise FastMFError(f"{where}: --model {cls.kind} has no hyperparameter '{name}' "
                          f"(it has: {', '.join(cls.params)})")
    return key, cls.params[key].parse(text, owner=f"{where} {cls.kind}")


def parse_grid(kind: str, spec: str, where: str = "--grid") -> list[dict]:
    """``"lam=0.05,0.1 tau=1,2"`` -> the Cartesian product as a list of parameter dicts, every value
    parsed with the type and range of model ``kind``'s hyperparameter (one line for a bad one)."""
    axes = []
    for part in spec.split():
        name, sep, values = part.partition("=")
        if not sep or not name or not values:
            raise FastMFError(f"{where} entries look like name=v1,v2; got '{part}'")
        axes.append([parse_setting(kind, name, v, where) for v in values.split(",")])
    if not axes:
        raise FastMFError(f"{where} is empty")
    return [dict(combo) for combo in itertools.product(*axes)]


def tune(kind: str, train: Dataset, test: Dataset | None, grid: list[dict], base: dict,
         validation_frac: float = 0.1, seed: int = 42, callback=None) -> dict:
    """Score every grid point on a validation split carved from ``train`` (never on ``test``).

    Rating models are scored by RMSE (lower is better), rankers by NDCG@10
    (higher is better); ``result["metric"]`` names it. The best setting is
    then refit on all of ``train`` and, if ``test`` is given, evaluated on it.
    Returns ``{"metric": ..., "rows": [...], "best": {...}, "model": fitted best}``.
    """
    ranker = not model_class(kind).rating_model
    metric = "ndcg@10" if ranker else "rmse"
    split = random_split(train, validation_frac, seed + 7)
    rows = []
    for point in grid:
        params = {**base, **point}
        t0 = time.perf_counter()
        if ranker:
            score = build_model(kind, params).fit(split.train).evaluate(split.test)[metric]
        else:
            model = build_model(kind, params).fit(split.train, eval_set=split.test)
            score = model.history_[-1].get("test_rmse", np.nan) if model.history_ else np.nan
        row = {**point, f"val_{metric}": float(score), "seconds": time.perf_counter() - t0}
        rows.append(row)
        if callback is not None:
            callback(row)
    best = min(rows, key=lambda r: (np.isnan(r[f"val_{metric}"]), -r[f"val_{metric}"] if ranker
                                    else r[f"val_{metric}"]))
    best_params = {k: best[k] for k in grid[0]}
    result = {"metric": metric, "rows": rows,
              "best": {"params": best_params, f"val_{metric}": best[f"val_{metric}"]}}
    final = build_model(kind, {**base, **best_params}).fit(train, eval_set=test)
    if test is not None:
        result["best"][f"test_{metric}"] = final.evaluate(test)[metric if ranker else "test_rmse"]
    result["model"] = final
    return result
