"""Hyperparameter search behind ``fastmf tune``, always scored on a validation split carved from
the training data (never on the test set).

* :func:`tune`: the grid the user typed (``--grid``), each point trained for the given epochs;
* :func:`search`: a search by itself within a budget of fits (``--budget``): settings drawn from
  the model's ``search_space`` (:mod:`fastmf.common.search`; the model's defaults are the first),
  trained by successive halving (Jamieson and Talwalkar 2016; Li et al., Hyperband 2018): all
  for a ninth of the epochs, the best third for a third, the best third of those for all of them.
  Rating models are scored by their best validation RMSE over the epochs (early stopping), and the
  winner is refit on the whole training data for its best number of epochs.

The best setting can be written to a parameters file (:func:`write_params`) that
``fastmf train --params FILE`` reads back (:func:`read_params`, which trusts nothing in it).
"""

from __future__ import annotations

import itertools
import json
import os
import time

import numpy as np

from fastmf.common import jsonio
from fastmf.common.errors import FastMFError
from fastmf.common.files import atomic_file
from fastmf.common.search import sample, sample_near, typical_count
from fastmf.data_prep.dataset import Dataset
from fastmf.data_prep.splits import random_split
from fastmf.registry import build_model, model_class

#: successive halving keeps the best 1/ETA of the settings at each rung and trains them ETA times longer
ETA = 3
#: fits of ``fastmf tune`` without ``--grid`` or ``--budget``
DEFAULT_BUDGET = 40
#: at most this many rungs (a ninth, a third, all of the epochs)
MAX_RUNGS = 3
#: the share of the budget spent refining the halving's winner (budgets of at least ``1/REFINE_SHARE``
#: fits), within ``REFINE_WIDTH`` of each range's log-width around it
REFINE_SHARE = 0.25
REFINE_WIDTH = 0.1
#: the ``format`` tag of a parameters file, and the largest one read
PARAMS_FORMAT = "fastmf-params"
PARAMS_MAX_BYTES = 1 << 20


def parse_setting(kind: str, name: str, text: str, where: str = "--grid"):
    """The value ``text`` of hyperparameter ``name`` of model ``kind``, parsed and checked by its declaration."""
    cls = model_class(kind)
    key = name.strip().replace("-", "_")
    if key not in cls.params:
        raise FastMFError(
            f"{where}: --model {cls.kind} has no hyperparameter '{name}' (it has: {', '.join(cls.params)})"
        )
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


def metric_of(kind: str) -> str:
    """What tuning model ``kind`` optimises: ``rmse`` (rating models, lower is better) or ``ndcg@10``
    (rankers, higher is better)."""
    return "rmse" if model_class(kind).rating_model else "ndcg@10"


def _score(kind: str, params: dict, split, early_stopping: bool) -> tuple[float, int | None]:
    """The validation score of ``params`` fitted on ``split.train`` and the epoch it was reached at:
    with ``early_stopping`` a rating model's best epoch, otherwise the last (``None`` for rankers)."""
    if not model_class(kind).rating_model:
        return float(build_model(kind, params).fit(split.train).evaluate(split.test)["ndcg@10"]), None
    model = build_model(kind, params).fit(split.train, eval_set=split.test)
    curve = [r.get("test_rmse", np.nan) for r in model.history_]
    if not curve:
        return float("nan"), None
    at = int(np.nanargmin(curve)) if early_stopping and not np.all(np.isnan(curve)) else len(curve) - 1
    return float(curve[at]), at + 1


def _rank_key(metric: str):
    """Sort key putting the best score first and failed (NaN) ones last."""
    key = f"val_{metric}"
    return lambda r: (bool(np.isnan(r[key])), -r[key] if metric != "rmse" else r[key])


def _finish(
    kind: str, train: Dataset, test: Dataset | None, metric: str, best_params: dict, val: float, result: dict
) -> dict:
    """Refit ``best_params`` on all of ``train``, evaluate on ``test``, and complete ``result``."""
    result["best"] = {"params": best_params, f"val_{metric}": val}
    final = build_model(kind, best_params).fit(train, eval_set=test)
    if test is not None:
        result["best"][f"test_{metric}"] = final.evaluate(test)[metric if metric != "rmse" else "test_rmse"]
    result["model"] = final
    return result


def tune(
    kind: str,
    train: Dataset,
    test: Dataset | None,
    grid: list[dict],
    base: dict,
    validation_frac: float = 0.1,
    seed: int = 42,
    callback=None,
) -> dict:
    """Score every grid point on a validation split carved from ``train`` (never on ``test``).

    Rating models are scored by RMSE (lower is better), rankers by NDCG@10
    (higher is better); ``result["metric"]`` names it. The best setting is
    then refit on all of ``train`` and, if ``test`` is given, evaluated on it.
    Returns ``{"metric": ..., "rows": [...], "best": {...}, "model": fitted best}``.
    """
    metric = metric_of(kind)
    split = random_split(train, validation_frac, seed + 7)
    rows = []
    for point in grid:
        t0 = time.perf_counter()
        score, _ = _score(kind, {**base, **point}, split, early_stopping=False)
        row = {**point, f"val_{metric}": score, "seconds": time.perf_counter() - t0}
        rows.append(row)
        if callback is not None:
            callback(row)
    best = min(rows, key=_rank_key(metric))
    best_params = {k: best[k] for k in grid[0]}
    return _finish(
        kind, train, test, metric, {**base, **best_params}, best[f"val_{metric}"], {"metric": metric, "rows": rows}
    )


def halving_rungs(budget: int, epochs: int | None) -> list[tuple[int, int | None]]:
    """``[(settings, epochs), ...]`` per rung of successive halving within ``budget`` fits.

    The most rungs (up to :data:`MAX_RUNGS`) whose first has at least ``ETA^(rungs-1)`` settings and
    a ninth of the epochs at least one, then as many first-rung settings ``n`` as the budget allows:
    ``sum_j max(1, n // ETA^j) <= budget``. Rung ``j`` trains ``round(epochs / ETA^(last - j))``
    epochs (``None`` for a model without epochs: one rung).
    """
    for n_rungs in range(MAX_RUNGS, 0, -1):
        last = n_rungs - 1
        if epochs is None and n_rungs > 1 or epochs is not None and epochs // ETA**last < 1:
            continue
        n = budget
        while n >= 1 and sum(max(1, n // ETA**j) for j in range(n_rungs)) > budget:
            n -= 1
        if n >= ETA**last:
            return [
                (max(1, n // ETA**j), None if epochs is None else max(1, round(epochs / ETA ** (last - j))))
                for j in range(n_rungs)
            ]
    return [(budget, epochs)]


def refine_count(budget: int) -> int:
    """Fits of the refinement rung: a quarter of the budget, none below four fits."""
    return int(budget * REFINE_SHARE) if budget * REFINE_SHARE >= 1 else 0


def search(
    kind: str,
    train: Dataset,
    test: Dataset | None,
    budget: int,
    base: dict,
    validation_frac: float = 0.1,
    seed: int = 42,
    callback=None,
) -> dict:
    """Search model ``kind``'s ``search_space`` within ``budget`` fits on a validation split of ``train``.

    Hyperparameters given in ``base`` are held fixed (not searched). Successive halving over
    :func:`halving_rungs` of the budget less a refinement share (:func:`refine_count`): rung 0 trains
    the model's defaults and ``n - 1`` random settings, each later rung the best ``1/ETA`` of the
    previous for ``ETA`` times the epochs (from scratch, so a setting's score never depends on the
    order of fits). A last rung then trains settings drawn around the halving's winner
    (:func:`~fastmf.common.search.sample_near`) for as many epochs as its final rung, since the
    coarse draws of a few dozen settings rarely land on the best region's centre. A fit that fails
    (a divergence, a setting too large for the memory budget) scores NaN and is reported with its
    error. The best of the last two rungs is refit on all of ``train`` (rating models for their best
    validation epoch count).
    Returns ``{"metric", "search", "rows", "best", "model"}`` like :func:`tune`.
    """
    cls = model_class(kind)
    space = {name: spec for name, spec in cls.search_space.items() if base.get(name) is None}
    if not space:
        raise FastMFError(
            f"--model {cls.kind} has nothing to search"
            + (" (every searched hyperparameter is fixed on the command line)" if cls.search_space else "")
        )
    if budget < 1:
        raise FastMFError(f"--budget must be at least 1 fit, got {budget}")
    metric = metric_of(kind)
    split = random_split(train, validation_frac, seed + 7)
    settings = {name: p.default for name, p in cls.params.items()}
    settings.update({k: v for k, v in base.items() if v is not None})
    epochs = settings.get("epochs")
    refine = refine_count(int(budget))
    rungs = halving_rungs(int(budget) - refine, epochs)
    context = {
        "lam": float(settings.get("lam", 1.0)),
        "typical_count": typical_count(split.train.indptr, split.train.csc[0]),
    }
    rng = np.random.default_rng(seed)
    points = [{name: settings[name] for name in space}]
    points += sample(space, rungs[0][0] - 1, rng, context)

    def run_rung(j: int, points: list[dict], rung_epochs) -> list[dict]:
        """Score every setting of ``points`` trained for ``rung_epochs``: rung ``j``'s rows."""
        rung_rows = []
        for point in points:
            params = {**settings, **point}
            if rung_epochs is not None:
                params["epochs"] = rung_epochs
            t0 = time.perf_counter()
            row = {"rung": j, **point}
            try:
                score, best_epoch = _score(kind, params, split, early_stopping=True)
            except FastMFError as exc:
                score, best_epoch, row["error"] = float("nan"), None, str(exc)
            row.update(
                {
                    "epochs": rung_epochs,
                    "best_epoch": best_epoch,
                    f"val_{metric}": score,
                    "seconds": time.perf_counter() - t0,
                }
            )
            rung_rows.append(row)
            if callback is not None:
                callback(row)
        return rung_rows

    rows = []
    for j, (keep, rung_epochs) in enumerate(rungs):
        rung_rows = run_rung(j, points[:keep], rung_epochs)
        rows += rung_rows
        ranked = sorted(rung_rows, key=_rank_key(metric))
        points = [{name: r[name] for name in space} for r in ranked]
    if refine:  # the refinement rung, around the halving's winner
        refined = run_rung(len(rungs), sample_near(space, points[0], refine, rng, context, REFINE_WIDTH), rungs[-1][1])
        rows += refined
        ranked = sorted(rung_rows + refined, key=_rank_key(metric))
    best = ranked[0]
    if np.isnan(best[f"val_{metric}"]):
        raise FastMFError(f"tune: every setting failed; the first error: {rows[0].get('error', 'no score')}")
    best_params = {**settings, **{name: best[name] for name in space}}
    if best["best_epoch"] is not None:
        best_params["epochs"] = best["best_epoch"]
    info = {
        "budget": int(budget),
        "fits": len(rows),
        "rungs": [{"settings": n, "epochs": e} for n, e in rungs]
        + ([{"settings": refine, "epochs": rungs[-1][1], "around_best": True}] if refine else []),
        "searched": sorted(space),
        "typical_count": context["typical_count"],
    }
    return _finish(
        kind, train, test, metric, best_params, best[f"val_{metric}"], {"metric": metric, "search": info, "rows": rows}
    )


def write_params(path: str, kind: str, params: dict, scores: dict) -> bool:
    """Write ``{"format", "model", "params", "scores"}`` as JSON to ``path`` (replacing only a parameters
    file); returns whether one was replaced."""
    doc = {"format": PARAMS_FORMAT, "version": 1, "model": kind, "params": params, "scores": scores}

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(jsonio.dumps(doc, indent=2) + "\n")

    return atomic_file(path, write, replaceable=is_params_file, what="parameters file")


def _load_params_doc(path: str) -> dict:
    try:
        if os.path.getsize(path) > PARAMS_MAX_BYTES:
            raise FastMFError(f"{path}: larger than {PARAMS_MAX_BYTES:,} bytes; not a fastmf parameters file")
        with open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"), parse_constant=_refuse_constant)
    except OSError as exc:
        raise FastMFError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FastMFError(f"{path}: not a fastmf parameters file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != PARAMS_FORMAT:
        raise FastMFError(f"{path}: not a fastmf parameters file (written by fastmf tune --save-params)")
    return doc


def _refuse_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not a number", name, 0)


def is_params_file(path: str) -> bool:
    """Whether ``path`` is a parameters file written by :func:`write_params`."""
    try:
        _load_params_doc(path)
    except FastMFError:
        return False
    return True


def read_params(path: str) -> tuple[str, dict]:
    """``(model kind, hyperparameters)`` of a parameters file, every value checked against the model's
    declaration (one line naming the file and the bad entry)."""
    doc = _load_params_doc(path)
    if doc.get("version") != 1:
        raise FastMFError(f"{path}: parameters file version {doc.get('version')!r} is not supported (1 is)")
    try:
        cls = model_class(doc.get("model"))
    except FastMFError as exc:
        raise FastMFError(f"{path}: {exc}") from None
    params = doc.get("params")
    if not isinstance(params, dict):
        raise FastMFError(f"{path}: 'params' must be an object of hyperparameters")
    for name, value in params.items():
        if name not in cls.params:
            raise FastMFError(f"{path}: --model {cls.kind} has no hyperparameter '{name}'")
        cls.params[name].check(value, owner=f"{path}:")
    return cls.kind, params
