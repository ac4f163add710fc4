"""The one epoch loop every iterative model trains through, with early stopping on a validation split.

A model builds a *training state* (its parameters in the backend's precision plus the
update machinery) that follows a small protocol, and hands it to :func:`run_epochs`:

* ``state.epoch() -> dict``: one epoch of updates; extra fields for the history record;
* ``model._epoch_metrics(state, train, eval_set) -> dict``: the record's metrics (by default
  ``state.metrics(train, eval_set)``);
* ``state.finite(record) -> bool``: whether the epoch left every parameter finite;
  ``state.divergence_hint``: what to change when it did not;
* ``state.rmse(validation)``, ``state.snapshot()``, ``state.restore(snapshot)``: for early
  stopping (models with ``patience``).
"""

from __future__ import annotations

import time

import numpy as np

from fastmf.common.errors import DivergenceError
from fastmf.common.jit import watch_compiles
from fastmf.data_prep.dataset import Dataset
from fastmf.data_prep.splits import random_split


def validation_split(model, train: Dataset):
    """``(fit data, validation)``: with ``model.patience`` set, a seeded ``validation_frac`` share of
    ``train`` is held out for early stopping (the test set is never used); else ``(train, None)``."""
    if getattr(model, "patience", None) is None:
        return train, None
    split = random_split(train, model.validation_frac, model.random_state + 1)
    return split.train, split.test


def run_epochs(model, state, train: Dataset, eval_set: Dataset | None, validation: Dataset | None, callback) -> int:
    """Run ``model.epochs`` epochs of ``state``; returns the epoch whose parameters are kept.

    Each record holds ``epoch``, ``seconds`` (the epoch's updates, without any kernel
    compilation, which is ``compile_seconds`` when it happened), the state's extra fields and the model's
    metrics, and with a ``validation`` set ``val_rmse``; after ``model.patience`` epochs
    without a better one training stops, and the best epoch's parameters are restored (also
    when the epochs run out after it). An epoch that leaves a parameter non-finite stops
    training with a :class:`DivergenceError`.
    """
    best, best_epoch, since, snap = np.inf, int(model.epochs), 0, None
    for epoch in range(1, int(model.epochs) + 1):
        t0 = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging epoch is reported once, below
            with watch_compiles() as compiling:
                extra = state.epoch()
            record = {"epoch": epoch, "seconds": time.perf_counter() - t0 - compiling.seconds, **extra}
            if compiling.count:
                record["compile_seconds"] = compiling.seconds
            record.update(model._epoch_metrics(state, train, eval_set))
        if not state.finite(record):
            raise DivergenceError(
                f"{model.kind} diverged in epoch {epoch} (non-finite parameters): {state.divergence_hint}"
            )
        if validation is not None:
            record["val_rmse"] = state.rmse(validation)
        model._log(record, callback)
        if validation is None:
            continue
        if record["val_rmse"] < best - 1e-7:
            best, best_epoch, since, snap = record["val_rmse"], epoch, 0, state.snapshot()
        else:
            since += 1
            if since >= model.patience:
                break
    if since:
        state.restore(snap)
    return best_epoch
