"""The conventions users of scikit-learn, implicit and pandas bring, and the command line's promises.

Each test pins a point users stumbled on: clone, random_state, the not-fitted error, fit from a path,
batch calls by ids, the compile note, progress, strict and named JSON, flags that do not apply.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from model_mixin import small_split  # noqa: F401 (fixture)

import fastmf
from fastmf.cli import main
from fastmf.data_prep.dataset import embedded_path
from fastmf.data_prep.loaders import reading_progress
from fastmf.registry import MODELS

BUNDLED = Path(fastmf.__file__).parent / "datasets" / "ml-latest-small"


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_scikit_learn_clone_and_params(kind):
    sklearn_base = pytest.importorskip("sklearn.base")
    model = MODELS[kind](random_state=7)
    copy = sklearn_base.clone(model)
    assert copy is not model and copy.get_params(deep=True) == model.get_params()
    assert "seed" not in model.get_params() and model.get_params()["random_state"] == 7
    assert model.set_params(random_state=8) is model and model.random_state == 8
    with pytest.raises(ValueError, match="no parameter"):
        model.set_params(no_such_thing=1)


def test_an_unfitted_model_raises_what_scikit_learn_users_catch():
    model = fastmf.ALS()
    for call in (lambda: model.recommend(1), lambda: model.predict([1], [1]), lambda: model.save("x")):
        with pytest.raises(ValueError, match="not fitted"):
            call()
        with pytest.raises(AttributeError):
            call()
        with pytest.raises(fastmf.NotFittedError):
            call()


def test_fit_takes_a_path_and_a_pandas_frame():
    pd = pytest.importorskip("pandas")
    by_path = fastmf.BiasOnly(epochs=2).fit(str(BUNDLED))
    frame = pd.read_csv(BUNDLED / "ratings.csv")
    by_frame = fastmf.BiasOnly(epochs=2).fit(frame)
    np.testing.assert_allclose(by_path.item_bias_, by_frame.item_bias_)
    assert by_path.n_ratings if hasattr(by_path, "n_ratings") else True


def test_batch_fold_in_and_similar_items_by_id(small_split):
    model = fastmf.ALS(factors=6, epochs=3).fit(small_split.train)
    ids = small_split.train.item_map.ids[np.argsort(-small_split.train.item_counts)[:4]]
    sims, scores = model.similar_items(ids, k=5)
    assert sims.shape == (4, 5) and all(ids[r] not in sims[r] for r in range(4))
    one, one_scores = model.similar_items(ids[0], k=5)
    np.testing.assert_array_equal(one, sims[0])
    assert np.all(np.diff(one_scores) <= 1e-6) and one_scores[0] <= 1.0 + 1e-6


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "fastmf", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_compiling_is_said_when_it_happens_and_timed_apart(tmp_path):
    result = run("train", "--model", "bias", "--epochs", "2", env={"NUMBA_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "compiling kernels (first run only" in result.stderr
    assert "compiling kernels (first run only)" in result.stdout  # the fitted-in line gives its seconds apart
    again = run("train", "--model", "bias", "--epochs", "2", "--json", env={"NUMBA_CACHE_DIR": str(tmp_path)})
    report = json.loads(again.stdout)
    assert "compiling" not in again.stderr and report["compile_seconds"] < 0.05
    assert all("compile_seconds" not in r for r in report["history"])


def test_progress_bars_only_when_asked_or_on_a_terminal():
    runner = CliRunner()
    quiet = runner.invoke(main, ["train", "--epochs", "2", "--factors", "2", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    plain = runner.invoke(main, ["train", "--epochs", "2", "--factors", "2"])
    assert plain.exit_code == 0 and "epoch" not in plain.stderr  # stderr is not a terminal here
    shown = runner.invoke(main, ["train", "--epochs", "2", "--factors", "2", "--progress"])
    assert shown.exit_code == 0 and "2/2" in shown.stderr and "epoch" in shown.stderr


@pytest.mark.parametrize("partitions", [[], ["--partitions", "2"]], ids=["whole", "partitioned"])
def test_synth_shows_its_ratings_as_they_are_generated(tmp_path, partitions):
    """``fastmf synth`` is long work at full scale: a bar of ratings with --progress, nothing on stderr with
    -q, its statistics as JSON on stdout either way."""
    runner = CliRunner()
    args = ["synth", "--users", "300", "--items", "150", "--ratings", "8000", *partitions]
    shown = runner.invoke(main, [*args, str(tmp_path / "shown"), "--progress", "--json"])
    assert shown.exit_code == 0 and "8000/8000" in shown.stderr and "rating" in shown.stderr
    assert strict(shown.stdout)["ratings"] == 8000
    quiet = runner.invoke(main, [*args, str(tmp_path / "quiet"), "--progress", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == "" and "wrote" in quiet.stdout


def test_reading_a_large_input_file_shows_its_bytes(tmp_path):
    """Ingestion reports the bytes parsed of each delimited input file (every byte, once), under the same
    flags as the other bars."""
    ratings = tmp_path / "ratings.csv"
    shutil.copy(Path(embedded_path()) / "ratings.csv", ratings)
    seen = []

    class Bar:
        def update(self, n):
            seen.append(n)

        def close(self):
            seen.append("closed")

    with reading_progress(lambda display, total: seen.append((display, total)) or Bar()):
        fastmf.load_dataset(str(ratings))
    assert seen[0] == (str(ratings), ratings.stat().st_size) and seen[-1] == "closed"
    assert sum(n for n in seen[1:-1]) == ratings.stat().st_size
    runner = CliRunner()
    shown = runner.invoke(main, ["prepare", str(ratings), str(tmp_path / "prepared"), "--progress"])
    assert shown.exit_code == 0 and f"reading {ratings}" in shown.stderr and "2.37M" in shown.stderr
    quiet = runner.invoke(main, ["info", str(ratings), "--progress", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def strict(text):
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))


def test_every_command_prints_one_strict_json_object(tmp_path):
    runner = CliRunner()
    model = tmp_path / "m"
    outputs = [
        ["train", "--epochs", "2", "--factors", "2", "--out", model, "--json", "-q"],
        ["evaluate", model, "--json"],
        ["recommend", model, "--user", "1", "--json"],
        ["info", "--json"],
        ["analyze", model, "--similar", "1", "--json"],
        ["compare", "--models", "popular,bias", "--json", "-q"],
        ["tune", "--model", "bias", "--grid", "lam=0.5,1", "--json", "-q"],
        ["prepare", BUNDLED, tmp_path / "prep", "--json"],
    ]
    for args in outputs:
        result = runner.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, (args, result.output)
        assert isinstance(strict(result.stdout), dict), args
    trained = strict(runner.invoke(main, ["train", "--epochs", "2", "--factors", "2", "--json", "-q"]).stdout)
    assert trained["split"] == {"kind": "random", "seed": 42, "test_frac": 0.1}
    similar = strict(runner.invoke(main, ["analyze", str(model), "--similar", "1", "--json"]).stdout)
    assert "similarity" in similar["similar"]["items"][0] and "cosine" not in similar["similar"]["items"][0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "als", "--item-features", "tags.csv"], "--item-features applies to --model features"),
        (["train", "--leave-k", "2"], "--leave-k applies to --split user"),
        (["compare", "--models", "popular,svd"], "unknown model 'svd'"),
        (["tune", "--grid", "lam=0.1,abc"], "lam must be a number"),
        (["tune", "--grid", "factors=10,2.5"], "factors must be an integer"),
        (["tune", "--grid", "epochs=1e1"], "epochs must be an integer"),
        (["tune", "--grid", "lam=0.1,,0.2"], "lam must be a number"),
        (["train", "--model", "ALS", "--epochs", "0", "--lr", "0.1"], "--lr does not apply to --model als"),
    ],
)
def test_flags_that_do_not_apply_or_do_not_parse_are_one_line(tmp_path, args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_compare_checks_every_model_before_fitting_any(monkeypatch):
    fitted = []
    original = fastmf.MostPopular.fit
    monkeypatch.setattr(fastmf.MostPopular, "fit", lambda self, *a, **k: fitted.append(1) or original(self, *a, **k))
    result = CliRunner().invoke(main, ["compare", "--models", "popular,svd"])
    assert result.exit_code == 1 and not fitted
