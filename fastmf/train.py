"""The training driver behind ``fastmf train`` and ``fastmf tune``: data, split, fit, report."""

from __future__ import annotations

import inspect
import itertools
import sys
import time

import numpy as np

from fastmf.data_prep.dataset import Dataset
from fastmf.data_prep.splits import make_split, random_split
from fastmf.errors import FastMFError


def model_class(kind: str):
    from fastmf.models import MODELS

    if kind not in MODELS:
        raise FastMFError(f"unknown model '{kind}' (choose from {', '.join(MODELS)})")
    return MODELS[kind]


def build_model(kind: str, params: dict):
    """A model of ``kind`` with the given hyperparameters; an error names any that do not apply."""
    cls = model_class(kind)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(k for k, v in params.items() if v is not None and k not in accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise FastMFError(f"{flags} does not apply to --model {kind}")
    return cls(**{k: v for k, v in params.items() if v is not None})


def split_data(data: Dataset, test: Dataset | None, split: str, test_frac: float | None, seed: int, k: int = 1):
    """``(train, test)``: the given test set, or a split of ``data`` (``test_frac=0``: no test)."""
    if test is not None:
        frac = 0.0 if test_frac is None else test_frac
        train = random_split(data, frac, seed).train if frac > 0 else data
        return train, train.align(test)
    frac = 0.1 if test_frac is None else test_frac
    if frac == 0 and split != "user":
        return data, None
    s = make_split(data, split, frac, seed, k)
    return s.train, s.test


def epoch_printer(total: int, stream=None):
    """A ``fit`` callback that prints one line per epoch on stderr."""
    stream = stream or sys.stderr

    def show(record: dict) -> None:
        parts = [f"epoch {record['epoch']:>3}/{total}"]
        for key, value in record.items():
            if key in ("epoch", "seconds") or not isinstance(value, (int, float)):
                continue
            parts.append(f"{key} {value:.5g}")
        parts.append(f"{record['seconds']:.2f} s")
        print("  ".join(parts), file=stream, flush=True)

    return show


def train_report(model, train: Dataset, test: Dataset | None, extra: dict | None = None, ranking: bool = False,
                 threshold: float | None = 4.0) -> dict:
    """The JSON-ready summary of a fitted model: parameters, history and final metrics.

    With ``ranking`` a rating model is also scored by the ranking metrics of
    :mod:`fastmf.ranking` (positives: ratings ``>= threshold``); rankers always are.
    """
    history = model.history_
    out = {"model": model.kind, "params": model.get_params(), **(extra or {}),
           "train_ratings": train.n_ratings, "history": history,
           "fit_seconds": model.fit_seconds_}
    if history:
        out["epochs_run"] = len(history)
        last = history[-1]
        for key in ("train_rmse", "objective", "elbo", "loss"):
            if key in last:
                out[key] = last[key]
    if getattr(model, "best_epoch_", None) is not None and getattr(model, "patience", None):
        out["best_epoch"] = model.best_epoch_
    if hasattr(model, "fit_summary"):  # learned extras, e.g. VI's precisions and uncertainty table
        out.update(model.fit_summary())
    if test is not None:
        out.update(model.evaluate(test))
        if ranking and model.rating_model:
            from fastmf.ranking import ranking_metrics

            out.update(ranking_metrics(model, train, test, threshold, seed=getattr(model, "seed", 0)))
    return out


def parse_grid(spec: str) -> list[dict]:
    """``"lam=0.05,0.1 tau=1,2"`` -> the Cartesian product as a list of parameter dicts."""
    axes = []
    for part in spec.split():
        if "=" not in part:
            raise FastMFError(f"--grid entries look like name=v1,v2; got '{part}'")
        name, values = part.split("=", 1)
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(int(v) if v.lstrip("-").isdigit() else float(v))
            except ValueError:
                parsed.append(v)
        axes.append([(name.replace("-", "_"), v) for v in parsed])
    if not axes:
        raise FastMFError("--grid is empty")
    return [dict(combo) for combo in itertools.product(*axes)]


def tune(kind: str, train: Dataset, test: Dataset | None, grid: list[dict], base: dict,
         validation_frac: float = 0.1, seed: int = 42, callback=None) -> dict:
    """Score every grid point on a validation split carved from ``train`` (never on ``test``).

    Rating models are scored by RMSE (lower is better), rankers by NDCG@10
    (higher is better); ``result["metric"]`` names it. The best setting is
    then refit on all of ``train`` and, if ``test`` is given, evaluated on it.
    Returns ``{"metric": ..., "rows": [...], "best": {...}}``.
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
