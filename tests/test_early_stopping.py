"""Early stopping (``patience=``) keeps the parameters of the best validation epoch.

With ``patience`` set, ``fit`` holds out a ``validation_frac`` share of the training data
(``random_split(train, validation_frac, seed + 1)``, see ``Recommender._validation_split``),
records ``val_rmse`` per epoch and stops after ``patience`` epochs without improvement. The
fitted model must then equal, exactly, a fresh model fitted without early stopping for
``best_epoch`` epochs on the same fit data (same thread count, so bit-for-bit).

Each configuration below overfits the data, so it stops before its last epoch with its best
epoch a few epochs back: keeping the last epoch's parameters would differ from the best's.
"""

from __future__ import annotations

import numpy as np
import pytest
from model_mixin import small_split  # noqa: F401 (fixture)
from wrapper_data import learned_attributes, planted  # noqa: F401 (fixture)

import fastmf

#: learned attributes that legitimately differ between the early-stopped fit and the fresh one
NOT_PARAMETERS = {
    "history_",
    "fit_seconds_",
    "compile_seconds_",
    "best_epoch_",
    "seen_indptr_",
    "seen_indices_",
    "item_counts_",
    "user_map_",
    "item_map_",
    "item_titles_",
}

CASES = {
    # name: (data fixture, model factory); every factory takes epochs= and patience=
    "als": ("planted", lambda **kw: fastmf.ALS(factors=8, lam=1.0, tau=2.0, **kw)),
    "bias": ("small_split", lambda **kw: fastmf.BiasOnly(lam=1.0, gamma=0.001, **kw)),
    "features": ("planted", lambda **kw: fastmf.FeatureALS(factors=8, lam=0.7, tau=2.0, feature_bias=True, **kw)),
    "vi-full": ("planted", lambda **kw: fastmf.VI(factors=8, lam=1.0, tau=0.5, **kw)),
    "vi-diagonal": ("planted", lambda **kw: fastmf.VI(factors=8, lam=5.0, tau=0.05, covariance="diagonal", **kw)),
    "vi-learn-hyper": ("planted", lambda **kw: fastmf.VI(factors=8, lam=1.0, tau=1.0, learn_hyper=True, **kw)),
}
EPOCHS, PATIENCE = 25, 2


def fit_data(request, name):
    data = request.getfixturevalue(CASES[name][0])
    return data.train if name == "bias" else data


def parameters(model) -> dict:
    return {k: getattr(model, k) for k in learned_attributes(model) if k not in NOT_PARAMETERS}


def assert_same_parameters(a, b, what):
    pa, pb = parameters(a), parameters(b)
    assert sorted(pa) == sorted(pb)
    for key in pa:
        if isinstance(pa[key], np.ndarray):
            assert pa[key].dtype == pb[key].dtype, f"{what}: {key} dtype"
            assert np.array_equal(pa[key], pb[key]), f"{what}: {key} differs"
        else:
            assert pa[key] == pb[key], f"{what}: {key} differs ({pa[key]!r} != {pb[key]!r})"


@pytest.mark.parametrize("name", list(CASES))
def test_early_stopping_keeps_the_best_epoch(request, name):
    data = fit_data(request, name)
    make = CASES[name][1]
    model = make(epochs=EPOCHS, patience=PATIENCE).fit(data)
    vals = [r["val_rmse"] for r in model.history_]
    best = int(np.argmin(vals)) + 1
    assert model.best_epoch_ == best
    # it did stop early, patience epochs after the best one, which is not the last one run
    assert len(vals) == best + PATIENCE < EPOCHS, vals
    assert min(vals[best:]) > vals[best - 1]

    # the same fit data the model used: the validation share carved with seed + 1 left out
    carved = fastmf.random_split(data, model.validation_frac, model.random_state + 1).train
    fresh = make(epochs=best, patience=None).fit(carved)
    # the fresh run retraces the early-stopped one epoch by epoch (same fit data)
    assert [r["train_rmse"] for r in fresh.history_] == [r["train_rmse"] for r in model.history_[:best]]
    assert_same_parameters(model, fresh, f"{name}: early-stopped model vs {best} epochs")
    # sanity: the parameters of the last epoch run are different, so keeping them would fail above
    last = make(epochs=len(vals), patience=None).fit(carved)
    assert not np.array_equal(
        last.item_factors_ if last.item_factors_.size else last.item_bias_,
        model.item_factors_ if model.item_factors_.size else model.item_bias_,
    )


def test_without_patience_all_epochs_run_on_all_data(planted):
    """No validation carve-out without ``patience``: all epochs, every training rating, no val_rmse."""
    model = fastmf.ALS(factors=4, epochs=5).fit(planted)
    assert len(model.history_) == 5 and model.best_epoch_ == 5
    assert all("val_rmse" not in r for r in model.history_)
    assert model.history_[0]["train_rmse"] == fastmf.ALS(factors=4, epochs=1).fit(planted).history_[0]["train_rmse"]
    assert model.global_mean_ == pytest.approx(float(np.mean(planted.data, dtype=np.float64)), rel=1e-12)


@pytest.mark.parametrize("name", ["als", "vi-full"])
def test_best_epoch_is_kept_when_the_epochs_run_out_within_the_patience(request, name):
    data = fit_data(request, name)
    make = CASES[name][1]
    best = make(epochs=EPOCHS, patience=PATIENCE).fit(data).best_epoch_
    # one epoch more than the best: the run ends inside the patience window
    model = make(epochs=best + 1, patience=PATIENCE).fit(data)
    if not (model.best_epoch_ == best and len(model.history_) == best + 1):
        pytest.fail("precondition: the shorter run should retrace the longer one")
    carved = fastmf.random_split(data, model.validation_frac, model.random_state + 1).train
    assert_same_parameters(model, make(epochs=best, patience=None).fit(carved), f"{name}: kept vs best epoch")
