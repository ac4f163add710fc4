"""Models saved by fastmf 0.1 (the model format of every earlier release) still load and predict the same.

``tests/fixtures/models-0.1/`` holds one small model of every kind, written by fastmf 0.1 before
the architecture change, with ``expected.json``: what that version predicted and recommended
with them (users and items include ids unknown to the models).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fastmf

FOLDER = Path(__file__).parent / "fixtures" / "models-0.1"
EXPECTED = json.loads((FOLDER / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_models_saved_by_0_1_load_and_predict_the_same(name):
    want = EXPECTED[name]
    model = fastmf.load_model(str(FOLDER / name))
    np.testing.assert_allclose(model.predict(want["users"], want["items"]), want["predict"], rtol=1e-6, atol=1e-6)
    items, scores = model.recommend(want["recommend_user"], k=5)
    assert items.tolist() == want["recommend_items"]
    np.testing.assert_allclose(scores, want["recommend_scores"], rtol=1e-6, atol=1e-6)
    if "predict_std" in want:
        _, sd = model.predict(want["users"], want["items"], return_std=True)
        np.testing.assert_allclose(sd, want["predict_std"], rtol=1e-6)


def test_a_saved_model_round_trips_through_the_current_format(tmp_path):
    model = fastmf.load_model(str(FOLDER / "vi"))
    again = fastmf.load_model(model.save(str(tmp_path / "vi")))
    assert again.get_params() == model.get_params() and again.lam_ == model.lam_
