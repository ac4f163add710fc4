"""Every figure is readable: not blank, axes labelled, legends off the data, no text over other text.

The figures are built by the same functions ``fastmf plot data`` and ``fastmf plot model`` use
(:func:`fastmf.drivers.plots.data_figures`, :func:`~fastmf.drivers.plots.model_figures`) on a small
slice of ml-latest-small (its first 120 users) and models of every kind trained for a few epochs;
each is rendered to PNG in memory and decoded back with ``matplotlib.image.imread``.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import fastmf
from fastmf.data_prep.dataset import build_dataset
from fastmf.data_prep.splits import random_split
from fastmf.models import ALS, BPR, VI, FeatureALS, MostPopular

pytest.importorskip("matplotlib")

from fastmf.drivers import analysis as A  # noqa: E402
from fastmf.drivers import plots  # noqa: E402

MIN_RATINGS = 20  # the item map of the small data: items with this many training ratings
KINDS = ("als", "features", "vi", "bpr", "popular")


# --------------------------------------------------------------------------- data and models


@pytest.fixture(scope="module")
def small(embedded):
    """The ratings of ml-latest-small's first 120 users, with its movies file (titles and genres)."""
    rows = np.arange(embedded.indptr[120])
    users = np.repeat(embedded.user_map.ids[:120], np.diff(embedded.indptr[:121]))
    table = pa.table(
        {
            "user_id": users,
            "item_id": embedded.item_map.ids[embedded.indices[rows]],
            "rating": embedded.data[rows],
            "timestamp": embedded.timestamps[rows],
        }
    )
    return build_dataset(table, embedded.items_table, source="ml-latest-small, 120 users")


@pytest.fixture(scope="module")
def models(small):
    split = random_split(small, 0.1, 42)
    train, test = split.train, split.test
    fastmf.set_threads(1)  # Hogwild BPR is reproducible on one thread: the same curves, the same layout
    try:
        return {
            "als": ALS(factors=4, epochs=4).fit(train, eval_set=test),
            "features": FeatureALS(factors=4, epochs=4).fit(train, eval_set=test),
            "vi": VI(factors=4, epochs=4, learn_hyper=True).fit(train, eval_set=test),
            "bpr": BPR(factors=8, epochs=4).fit(train, eval_set=test),
            "popular": MostPopular().fit(train, eval_set=test),
        }
    finally:
        fastmf.set_threads(None)


@pytest.fixture(scope="module")
def data_figs(small):
    return {name: (fig, note) for name, fig, note in plots.data_figures(small)}


@pytest.fixture(scope="module")
def model_figs(models, small):
    return {
        kind: {name: (fig, note) for name, fig, note in plots.model_figures(m, small, MIN_RATINGS)}
        for kind, m in models.items()
    }


def all_figures(data_figs, model_figs):
    figs = [(name, fig) for name, (fig, _) in data_figs.items()]
    figs += [(f"{kind}/{name}", fig) for kind, by_name in model_figs.items() for name, (fig, _) in by_name.items()]
    return [(name, fig) for name, fig in figs if fig is not None]


# --------------------------------------------------------------------------- what the checks look at


def render(fig) -> np.ndarray:
    from matplotlib.image import imread

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=plots.DPI)
    buf.seek(0)
    return imread(buf, format="png")


def plot_axes(fig):
    """The figure's axes that hold data (colour bars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def texts(fig):
    """Every piece of text drawn: titles, axis labels, visible tick labels, annotations, legend entries."""
    fig.draw_without_rendering()
    out = [t for t in [fig._suptitle] if t is not None and t.get_text()]
    for ax in fig.axes:
        out += [t for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text()]
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lo, hi), max(lo, hi)
            for tick in itertools.chain(axis.get_major_ticks(), axis.get_minor_ticks()):
                if tick.label1.get_visible() and tick.label1.get_text() and lo <= tick.get_loc() <= hi:
                    out.append(tick.label1)
        out += [t for t in ax.texts if t.get_text()]
        if ax.get_legend() is not None:
            out += ax.get_legend().get_texts()
    return out


def text_box(t):
    from matplotlib.text import Annotation, Text

    if isinstance(t, Annotation):
        t.get_window_extent()  # places the text
    return Text.get_window_extent(t)


def data_pixels(ax) -> np.ndarray:
    """Display coordinates of plotted points and of points along plotted lines."""
    pts = [np.zeros((0, 2))]
    for line in ax.get_lines():
        px = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        if line.get_linestyle() not in ("None", "", " ") and len(px) > 1:
            px = np.concatenate([a + np.linspace(0, 1, 40)[:, None] * (b - a) for a, b in zip(px[:-1], px[1:])])
        pts.append(px)
    for coll in ax.collections:
        if hasattr(coll, "get_segments"):
            for seg in coll.get_segments():
                a, b = coll.get_transform().transform(np.asarray(seg, dtype=float))[[0, -1]]
                pts.append(a + np.linspace(0, 1, 40)[:, None] * (b - a))
        elif len(coll.get_offsets()):
            pts.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float)))
    out = np.concatenate(pts)
    return out[np.all(np.isfinite(out), axis=1)]


def covered(box, pts: np.ndarray) -> int:
    return int(np.sum((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)))


# --------------------------------------------------------------------------- every figure


def test_every_figure_is_drawn_or_skipped_with_a_note(data_figs, model_figs):
    assert list(data_figs) == list(plots.DATA_FIGURES)
    assert all(fig is not None for fig, _ in data_figs.values())
    drawn = {kind: {name for name, (fig, _) in figs.items() if fig is not None} for kind, figs in model_figs.items()}
    assert drawn == {
        "als": {"training_curves.png", "item_map.png"},
        "features": {"training_curves.png", "item_map.png", "genre_vectors.png"},
        "vi": {"training_curves.png", "item_map.png"},
        "bpr": {"training_curves.png", "item_map.png"},
        "popular": set(),
    }
    for figs in model_figs.values():
        assert all(note for fig, note in figs.values() if fig is None)


def test_no_figure_is_blank(data_figs, model_figs):
    for name, fig in all_figures(data_figs, model_figs):
        img = render(fig)
        rgb = np.round(img[..., :3] * 255).astype(np.uint32).reshape(-1, 3)
        background = np.all(rgb >= 250, axis=1)
        assert 0.03 < 1 - background.mean() < 0.9, name
        colours = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])
        assert colours.size > 30, name
        assert min(img.shape[:2]) > 300, name


def test_every_axis_is_labelled_and_every_figure_titled(data_figs, model_figs):
    for name, fig in all_figures(data_figs, model_figs):
        assert any(ax.get_title() for ax in fig.axes) or fig._suptitle is not None, name
        for ax in plot_axes(fig):
            assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (name, ax.get_title())
            assert ax.get_title().strip(), name
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                assert ax.get_ylabel().strip(), name


def test_no_text_overlaps_other_text_or_leaves_the_figure(data_figs, model_figs):
    for name, fig in all_figures(data_figs, model_figs):
        items = texts(fig)
        boxes = [text_box(t) for t in items]
        frame = fig.bbox
        for t, box in zip(items, boxes):
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1, (name, t.get_text())
            assert frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1, (name, t.get_text())
            assert "~" not in t.get_text(), (name, t.get_text())
        legend_texts = {id(t) for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()}
        for (t1, b1), (t2, b2) in itertools.combinations(zip(items, boxes), 2):
            if id(t1) in legend_texts and id(t2) in legend_texts:
                continue  # entries of one legend are laid out by matplotlib
            assert not b1.shrunk(0.98, 0.9).overlaps(b2.shrunk(0.98, 0.9)), (name, t1.get_text(), t2.get_text())


def test_legends_cover_no_data(data_figs, model_figs):
    seen = 0
    for name, fig in all_figures(data_figs, model_figs):
        fig.draw_without_rendering()
        for ax in plot_axes(fig):
            legend = ax.get_legend()
            if legend is None:
                continue
            seen += 1
            assert covered(legend.get_window_extent(), data_pixels(ax)) == 0, name
            # a legend only where several things share the axes
            assert len(legend.get_texts()) >= 2 or len(ax.get_lines()) + len(ax.collections) >= 2, name
    assert seen >= 6


def test_point_labels_overlap_no_point(model_figs):
    for kind in ("als", "features", "bpr"):
        fig = model_figs[kind]["item_map.png"][0]
        fig.draw_without_rendering()
        ax = fig.axes[0]
        pts = data_pixels(ax)
        labels = [t for t in ax.texts]
        assert len(labels) == plots.LABELLED_ITEMS
        # a label may touch its own point's marker; it covers no other point
        assert sum(covered(text_box(t).shrunk(0.9, 0.8), pts) for t in labels) <= 1, kind


# --------------------------------------------------------------------------- the reported problems, one by one


def test_popular_model_writes_no_blank_training_curves(models, small, tmp_path):
    fig, note = dict((n, (f, t)) for n, f, t in plots.model_figures(models["popular"], small))["training_curves.png"]
    assert fig is None and "one-pass" in note
    written, skipped = plots.plot_model(models["popular"], str(tmp_path), small)
    assert written == [] and not (tmp_path / "training_curves.png").exists()
    assert any(s.startswith("training_curves.png: ") for s in skipped)
    one_epoch = ALS(factors=2, epochs=1).fit(small)
    assert plots.curve_panels(one_epoch.history_)[2] is not None


def test_popular_model_from_the_command_line(models, tmp_path):
    from fastmf.cli import main

    models["popular"].save(str(tmp_path / "pop"))
    res = CliRunner().invoke(main, ["plot", "model", str(tmp_path / "pop"), "--out", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    assert "wrote" not in res.stdout and "skipped training_curves.png" in res.stderr


def test_bpr_curves_put_each_quantity_on_its_own_axis(model_figs, models):
    fig = model_figs["bpr"]["training_curves.png"][0]
    by_label = {line.get_label(): ax for ax in fig.axes for line in ax.get_lines()}
    assert {"loss", "learning rate", "exact AUC (all items)", "sampled AUC (report protocol)"} <= set(by_label)
    auc_axes = by_label["exact AUC (all items)"]
    assert by_label["sampled AUC (report protocol)"] is auc_axes
    assert by_label["learning rate"] is not auc_axes and by_label["loss"] is not auc_axes
    assert by_label["learning rate"] is not by_label["loss"]
    assert [line.get_label() for line in by_label["learning rate"].get_lines()] == ["learning rate"]
    assert "AUC" in auc_axes.get_ylabel() and "learning rate" in by_label["learning rate"].get_ylabel()
    assert "loss" not in auc_axes.get_ylabel()


def test_curves_leave_out_timings_and_constants(models):
    history = [
        {"epoch": e, "seconds": 1.0 / e, "feature_seconds": 0.1, "train_rmse": 1 / e, "lam": 0.1} for e in range(1, 4)
    ]
    panels, constants, reason = plots.curve_panels(history)
    assert reason is None and constants == {"lam": 0.1}
    assert [[k for k, _ in series] for _, _, series in panels] == [["train_rmse"]]
    fig = plots.curves_figure(history, "vi")
    assert "λ = 0.1 in every epoch" in fig._suptitle.get_text()
    vi = models["vi"].history_
    assert any("λ" in ax.get_ylabel() for ax in plots.curves_figure(vi, "vi").axes)  # learned: it moves


def test_item_map_is_coloured_by_the_stated_genre_rule(model_figs, models, small):
    fig = model_figs["features"]["item_map.png"][0]
    legend = fig.axes[0].get_legend()
    assert "rarest" in legend.get_title().get_text()
    model = models["features"]
    items = np.flatnonzero(model.item_counts_ >= MIN_RATINGS)
    genres = A.primary_genres(small, model.item_map_.ids[items])
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(
        f"{g} ({n})" for g, n in zip(*np.unique(genres.astype(str), return_counts=True))
    )


def test_titles_are_shortened_at_a_word_boundary():
    assert plots.shorten("Star Wars: Episode IV - A New Hope (1977)", 40) == "Star Wars: Episode IV - A New… (1977)"
    assert plots.shorten("Star Wars: Episode IV - A New Hope (1977)", 34) == "Star Wars: Episode IV… (1977)"
    assert plots.shorten("Shawshank Redemption, The (1994)", 34) == "Shawshank Redemption, The (1994)"
    assert plots.shorten("a very long genre name without any year at all", 20) == "a very long genre…"
    assert plots.shorten("Supercalifragilisticexpialidocious", 12) == "Supercalifr…"
    for text in ("Lord of the Rings: The Fellowship of the Ring, The (2001)", "x " * 40, "word" * 30):
        for n in (12, 24, 40):
            short = plots.shorten(text, n)
            assert len(short) <= n and "~" not in short and (short == text.strip() or "…" in short)


def test_top_items_titles_keep_their_year(data_figs):
    fig = data_figs["top_items.png"][0]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 10 and all(label.endswith(")") for label in labels)


def test_crowded_genre_vectors_get_separate_labels():
    """Genres whose vectors nearly coincide (Adventure and IMAX in the features model) are named apart."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 6))
    features = np.concatenate([base, base[:8] + 0.01 * rng.normal(size=(8, 6))])
    names = [f"Genre {i}" for i in range(10)] + [f"Close to genre {i}" for i in range(8)]
    fig = plots.features_figure(features, names)
    fig.draw_without_rendering()
    labels = fig.axes[0].texts
    assert len(labels) == 18
    boxes = [text_box(t) for t in labels]
    for b1, b2 in itertools.combinations(boxes, 2):
        assert not b1.overlaps(b2)


def test_bar_charts_grow_with_their_labels_and_cap_them():
    names = [f"genre number {i}" for i in range(60)]
    genres = {
        "names": names,
        "n_items": np.arange(60) + 1,
        "n_ratings": np.arange(60) * 10 + 5,
        "mean_rating": np.linspace(2.5, 4.2, 60),
    }
    few = plots.genre_count_figure({k: v[:10] for k, v in genres.items()})
    many = plots.genre_count_figure(genres)
    assert many.get_figheight() > few.get_figheight() * 2
    assert len(many.axes[0].get_yticklabels()) == plots.MAX_BARS
    assert f"{plots.MAX_BARS} largest of 60" in many.axes[0].get_title()
    for fig in (many, few):
        boxes = [text_box(t) for t in fig.axes[0].get_yticklabels()]
        assert not any(b1.overlaps(b2) for b1, b2 in zip(boxes, boxes[1:]))


def test_degree_figures_draw_the_ml_fit_over_the_data_it_fits(data_figs, small):
    for name, degrees in (("user_activity.png", small.user_counts), ("item_popularity.png", small.item_counts)):
        fig = data_figs[name][0]
        ax = fig.axes[0]
        fit = A.degree_fit(degrees)["power_law"]
        line = [ln for ln in ax.get_lines() if ln.get_label().startswith("ML fit")]
        assert len(line) == 1, name
        label = line[0].get_label()
        assert f"α = {fit['alpha']:.2f}" in label and f"x ≥ {fit['xmin']:,}" in label
        x, y = line[0].get_data()
        assert x[0] == fit["xmin"] and y[0] == pytest.approx(np.mean(degrees >= fit["xmin"]))
        points = np.concatenate([ln.get_xydata() for ln in ax.get_lines() if ln.get_linestyle() == "None"])
        assert points[:, 1] == pytest.approx([np.mean(degrees >= k) for k in points[:, 0]])
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert "P(X ≥ x)" in ax.get_ylabel()


def test_data_without_genres_titles_or_a_rating_scale(tmp_path):
    """An implicit (user, item, weight) table: degree figures, a weight histogram, top items by id."""
    rng = np.random.default_rng(5)
    pairs = np.unique(np.column_stack([rng.integers(0, 300, 4000), np.minimum(rng.zipf(1.6, 4000), 500)]), axis=0)
    table = pa.table(
        {"user_id": pairs[:, 0], "item_id": pairs[:, 1], "rating": rng.integers(1, 4, len(pairs)).astype(np.float32)}
    )
    data = build_dataset(table, None, rating_range=None)
    figs = {name: (fig, note) for name, fig, note in plots.data_figures(data)}
    assert figs["genre_mean_rating.png"][0] is None and "no genres" in figs["genre_mean_rating.png"][1]
    assert figs["rating_histogram.png"][0].axes[0].get_xlabel() == "weight"
    for name in ("user_activity.png", "item_popularity.png", "rating_histogram.png", "top_items.png"):
        assert figs[name][0] is not None
        render(figs[name][0])
    flat = A.degree_fit(np.full(50, 7))
    assert np.isnan(flat["power_law"]["alpha"])
    fig = plots.degree_figure(flat, "user")
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["users"]
