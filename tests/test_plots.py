"""Figures: every PNG is rendered to a temporary folder and decoded back; matplotlib stays optional."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from fastmf.cli import main
from fastmf.data_prep.splits import random_split
from fastmf.models.als import ALS, BiasOnly

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_FIGURES = {
    "user_activity.png",
    "item_popularity.png",
    "rating_histogram.png",
    "genre_mean_rating.png",
    "genre_item_count.png",
    "top_items.png",
}


def assert_valid_pngs(folder, names):
    from PIL import Image

    assert {p.name for p in folder.iterdir()} == set(names)
    for name in names:
        path = folder / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.format == "PNG" and min(img.size) > 100
            assert np.asarray(img.convert("L")).std() > 0  # something was drawn


@pytest.fixture(scope="module")
def models(embedded, tmp_path_factory):
    """A saved ALS, a saved bias-only model and an ALS carrying genre feature vectors."""
    split = random_split(embedded, 0.1, 42)
    root = tmp_path_factory.mktemp("plots")
    als = ALS(factors=6, epochs=3).fit(split.train, eval_set=split.test)
    als.save(str(root / "als"))
    BiasOnly(epochs=2).fit(split.train).save(str(root / "bias"))
    with_features = ALS(factors=6, epochs=2).fit(split.train)
    rng = np.random.default_rng(0)
    with_features.feature_factors_ = rng.normal(size=(len(embedded.feature_names), 6)).astype(np.float32)
    with_features.feature_names_ = list(embedded.feature_names)
    return root, with_features


def test_plot_data_writes_every_figure(tmp_path):
    res = CliRunner().invoke(main, ["plot", "data", "--out", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    assert_valid_pngs(tmp_path / "figs", DATA_FIGURES)
    assert res.stdout.count("wrote ") == len(DATA_FIGURES)


def test_plot_model_writes_curves_and_item_map(models, tmp_path):
    root, _ = models
    res = CliRunner().invoke(main, ["plot", "model", str(root / "als"), "--out", str(tmp_path), "--min-ratings", "60"])
    assert res.exit_code == 0, res.output
    assert_valid_pngs(tmp_path, {"training_curves.png", "item_map.png"})
    assert "genre_vectors.png" in res.stderr  # skipped: plain ALS has no genre vectors


def test_plot_model_draws_genre_vectors_when_present(models, embedded, tmp_path):
    from fastmf.drivers.plots import plot_model

    _, model = models
    written, skipped = plot_model(model, str(tmp_path), embedded, min_ratings=100)
    assert skipped == []
    assert_valid_pngs(tmp_path, {"training_curves.png", "item_map.png", "genre_vectors.png"})


def test_plot_model_of_a_bias_only_model_skips_the_item_map(models, tmp_path):
    root, _ = models
    res = CliRunner().invoke(main, ["plot", "model", str(root / "bias"), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert_valid_pngs(tmp_path, {"training_curves.png"})
    assert "no item factors" in res.stderr


def test_without_matplotlib_the_commands_say_how_to_install_it(models, tmp_path, monkeypatch):
    root, _ = models
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    for args in (
        ["plot", "data", "--out", str(tmp_path / "d")],
        ["plot", "model", str(root / "als"), "--out", str(tmp_path / "m")],
    ):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "pip install 'fastmf[plot]'" in lines[0]
    assert not (tmp_path / "d").exists() and not (tmp_path / "m").exists()


def test_fastmf_imports_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "import fastmf, fastmf.cli, fastmf.drivers.plots, fastmf.drivers.analysis, fastmf.drivers.abtest; "
        "from fastmf.cli import main; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
