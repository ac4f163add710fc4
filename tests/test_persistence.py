"""Every learned attribute of every model kind survives ``save`` / ``fastmf.load_model`` exactly.

Learned attributes are the instance attributes ending in ``_`` (scikit-learn convention).
Arrays must come back with the same dtype and values, scalars and lists equal, the history
as its JSON round trip, id maps with the same ids. Predictions (with VI's predictive standard
deviations) must be identical after loading, for known and for unknown ids.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_mixin import small_split  # noqa: F401 (fixture)
from wrapper_data import learned_attributes

import fastmf

#: learned attributes that ``save`` does not write today (reported as a gap; they are
#: fit-time diagnostics, not used by prediction): the early-stopping epoch and BPR's sample count

MODELS = {
    "als": lambda: fastmf.ALS(factors=4, epochs=2),
    "bias": lambda: fastmf.BiasOnly(epochs=2),
    "features": lambda: fastmf.FeatureALS(factors=4, epochs=2, feature_bias=True),
    "vi-full": lambda: fastmf.VI(factors=4, epochs=2, learn_hyper=True),
    "vi-diagonal": lambda: fastmf.VI(factors=4, epochs=2, learn_hyper=True, covariance="diagonal"),
    "bpr": lambda: fastmf.BPR(factors=4, epochs=2),
    "popular": lambda: fastmf.MostPopular(),
}
VI_LEARNED = ("lam_", "gamma_", "tau_", "user_cov_", "item_cov_", "user_bias_var_", "item_bias_var_")


@pytest.fixture(scope="module", params=list(MODELS))
def saved(request, small_split, tmp_path_factory):
    model = MODELS[request.param]().fit(small_split.train, eval_set=small_split.test)
    path = model.save(str(tmp_path_factory.mktemp("models") / request.param))
    return model, fastmf.load_model(path)


def assert_same_value(key, a, b):
    if key == "history_":
        assert b == json.loads(json.dumps(a)), key
    elif isinstance(a, fastmf.IdMap):
        assert isinstance(b, fastmf.IdMap) and a.ids.dtype == b.ids.dtype and np.array_equal(a.ids, b.ids), key
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), key
        assert a.dtype == b.dtype and a.shape == b.shape, f"{key}: {a.dtype}{a.shape} -> {b.dtype}{b.shape}"
        assert np.array_equal(a, b), f"{key} changed by save/load"
    elif a is None:
        assert b is None, key
    else:
        assert type(b) is type(a) and b == a, f"{key}: {a!r} -> {b!r}"


def test_every_learned_attribute_survives(saved):
    model, loaded = saved
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    before, after = set(learned_attributes(model)), set(learned_attributes(loaded))
    assert after <= before, f"load invents {after - before}"
    assert before <= after, f"not restored by load: {sorted(before - after)}"
    for key in sorted(after):
        assert_same_value(key, getattr(model, key), getattr(loaded, key))


@pytest.mark.parametrize("saved", ["vi-full", "vi-diagonal"], indirect=True)
def test_vi_learned_precisions_and_covariances_survive(saved):
    model, loaded = saved
    # learn_hyper moved the precisions away from the constructor's: a load that fell back on
    # the hyperparameters would give different values
    assert model.lam_ != pytest.approx(model.lam) and model.gamma_ != pytest.approx(model.gamma)
    assert not np.allclose(model.tau_, model.tau)
    for key in VI_LEARNED:
        assert_same_value(key, getattr(model, key), getattr(loaded, key))


def _query_ids(model, small_split):
    """(users, items): known pairs, unknown users, unknown items and both unknown."""
    train = small_split.train
    users = list(train.user_map.ids[[0, 1, 2, 3]]) + [-5, -5, train.user_map.ids[4], -6]
    items = list(train.item_map.ids[[0, 10, 20, 30]]) + [train.item_map.ids[5], train.item_map.ids[6], -7, -8]
    return np.asarray(users), np.asarray(items)


def test_predictions_are_identical_after_load(saved, small_split):
    model, loaded = saved
    users, items = _query_ids(model, small_split)
    np.testing.assert_array_equal(loaded.predict(users, items), model.predict(users, items))
    uid = small_split.train.user_map.ids[3]
    for a, b in zip(model.recommend(uid, k=10), loaded.recommend(uid, k=10)):
        np.testing.assert_array_equal(a, b)
    if isinstance(model, fastmf.VI):
        mean_a, sd_a = model.predict(users, items, return_std=True)
        mean_b, sd_b = loaded.predict(users, items, return_std=True)
        np.testing.assert_array_equal(mean_b, mean_a)
        np.testing.assert_array_equal(sd_b, sd_a)
        assert np.all(np.isfinite(sd_a)) and np.all(sd_a > 0)


def test_fold_in_is_identical_after_load(saved, small_split):
    model, loaded = saved
    liked = {int(i): 4.5 for i in small_split.train.item_map.ids[np.argsort(-small_split.train.item_counts)[:4]]}
    for a, b in zip(model.fold_in(liked, k=10), loaded.fold_in(liked, k=10)):
        np.testing.assert_array_equal(a, b)
