"""PNG figures of a data set (``fastmf plot data``) and of a saved model (``fastmf plot model``).

matplotlib is an optional extra (``pip install 'fastmf[plot]'``): it is
imported only when a figure is drawn, and through its object-oriented API
(``matplotlib.figure.Figure`` rendered by the Agg canvas), so no global
backend is selected and no window is ever opened. Every file is written to a
temporary name and renamed into place. The numbers behind the figures come
from :mod:`fastmf.drivers.analysis`.

Each figure is built by a function of its data that returns the ``Figure``
(:func:`data_figures` and :func:`model_figures` list them in the order the
commands write them), so tests can inspect exactly what is drawn. The rules
every figure follows: both axes labelled with their unit, one quantity per
y axis, a legend only where several series share an axis and then in a
corner free of data (else outside the axes), titles and item names cut at a
word boundary with "…", point labels placed where they overlap neither each
other nor the points, and figures sized to the number of labels they carry.
"""

from __future__ import annotations

import os
import re

import numpy as np

from fastmf._version import __version__
from fastmf.common.errors import FastMFError
from fastmf.common.files import atomic_file, check_target
from fastmf.drivers import analysis as A

INSTALL_HINT = "plotting needs matplotlib, which is not installed: pip install 'fastmf[plot]'"
DPI = 110
#: how many of the most-rated items get their title written on the item map
LABELLED_ITEMS = 6
#: the most bars a bar chart shows (the title says when some are left out)
MAX_BARS = 40
#: the most genre vectors labelled by name (the longest ones)
MAX_LABELS = 40


def require_matplotlib():
    """The matplotlib ``Figure`` class; a one-line :class:`FastMFError` saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise FastMFError(INSTALL_HINT) from None
    return Figure


def new_figure(width: float = 6.4, height: float = 4.4):
    """An empty ``Figure`` (constrained layout) of ``width`` x ``height`` inches."""
    return require_matplotlib()(figsize=(width, height), layout="constrained")


#: the files ``plot data`` and ``plot model`` may write
DATA_FIGURES = (
    "user_activity.png",
    "item_popularity.png",
    "rating_histogram.png",
    "genre_mean_rating.png",
    "genre_item_count.png",
    "top_items.png",
)
MODEL_FIGURES = ("training_curves.png", "item_map.png", "genre_vectors.png")
#: the PNG text chunk that marks a figure as fastmf's (an existing file is replaced only when it has it)
SOFTWARE = f"fastmf {__version__}"


def is_figure(path: str) -> bool:
    """Whether ``path`` is a PNG figure that fastmf drew."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00fastmf " in head


class _Writer:
    """Saves figures as PNG files in ``out_dir`` and remembers what was written or skipped.

    Every file it may write (``names``) is checked before the first figure is drawn: an existing
    file is replaced only when it is a figure fastmf drew, so nothing is half written."""

    def __init__(self, out_dir: str, names):
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise FastMFError(f"{out_dir}: exists and is not a folder")
        for name in names:
            check_target(os.path.join(out_dir, name), is_figure, "figure")
        self.out_dir = out_dir
        require_matplotlib()
        self.written: list[str] = []
        self.skipped: list[str] = []

    def save(self, fig, name: str) -> None:
        path = os.path.join(self.out_dir, name)
        try:
            atomic_file(
                path,
                lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": SOFTWARE}),
                replaceable=is_figure,
                what="figure",
            )
        except OSError as exc:
            raise FastMFError(f"{path}: cannot write the figure: {exc.strerror or exc}") from None
        self.written.append(path)

    def write_all(self, figures) -> tuple[list[str], list[str]]:
        """Save each ``(name, figure, note)`` of ``figures``; a ``None`` figure is skipped with its note."""
        for name, fig, note in figures:
            if fig is None:
                self.skipped.append(f"{name}: {note}")
            else:
                self.save(fig, name)
        return self.written, self.skipped


# --------------------------------------------------------------------------- text

_YEAR = re.compile(r"\s*\(\d{4}(?:[-–]\d{0,4})?\)\s*$")


def shorten(text: str, n: int = 40) -> str:
    """``text`` in at most ``n`` characters: cut at a word boundary and marked with "…".

    A trailing year in parentheses (MovieLens titles) is kept:
    ``"Star Wars: Episode IV - A New Hope (1977)"`` -> ``"Star Wars: Episode IV - A New… (1977)"``.
    """
    text = " ".join(str(text).split())
    if len(text) <= n:
        return text
    year = _YEAR.search(text)
    suffix = " " + year.group(0).strip() if year and len(year.group(0).strip()) + 8 <= n else ""
    head = text[: year.start()] if suffix else text
    room = n - len(suffix) - 1
    cut = head[: room + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space >= room // 2 else head[:room]
    words = cut.rstrip(" ,;:-–").split(" ")
    while len(words) > 1 and words[-1].lower().strip(",;:-–") in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(" ,;:-–") + "…" + suffix


#: words a shortened title does not end on
_DANGLING = frozenset({"", "a", "an", "the", "of", "and", "&", "to", "in", "on", "for", "with", "at", "by", "or"})


# --------------------------------------------------------------------------- layout helpers


def _data_pixels(ax) -> np.ndarray:
    """Display coordinates of what is plotted in ``ax``: markers, points along lines (every few
    pixels), scatter offsets, line-collection segments and points spread over bars."""
    from matplotlib.collections import LineCollection

    pts = [np.zeros((0, 2))]
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=np.float64)
        if not line.get_visible() or xy.size == 0:
            continue
        px = line.get_transform().transform(xy)
        pts.append(_densify(px) if line.get_linestyle() not in ("None", "", " ") else px)
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                pts.append(_densify(coll.get_transform().transform(np.asarray(seg, dtype=np.float64))))
        else:
            offsets = np.asarray(coll.get_offsets(), dtype=np.float64)
            if offsets.size:
                pts.append(coll.get_offset_transform().transform(offsets))
    for patch in ax.patches:
        box = patch.get_window_extent()
        gx, gy = np.meshgrid(np.linspace(box.x0, box.x1, 9), np.linspace(box.y0, box.y1, 5))
        pts.append(np.column_stack([gx.ravel(), gy.ravel()]))
    out = np.concatenate(pts)
    return out[np.all(np.isfinite(out), axis=1)]


def _densify(px: np.ndarray, step: float = 3.0) -> np.ndarray:
    """Points every ``step`` pixels along the polyline ``px``."""
    px = px[np.all(np.isfinite(px), axis=1)]
    if len(px) < 2:
        return px
    out = [px[:1]]
    for a, b in zip(px[:-1], px[1:]):
        k = max(1, int(np.hypot(*(b - a)) / step))
        t = np.arange(1, k + 1)[:, None] / k
        out.append(a + t * (b - a))
    return np.concatenate(out)


def _inside(box, pts: np.ndarray, pad: float = 2.0) -> np.ndarray:
    return (
        (pts[:, 0] >= box.x0 - pad)
        & (pts[:, 0] <= box.x1 + pad)
        & (pts[:, 1] >= box.y0 - pad)
        & (pts[:, 1] <= box.y1 + pad)
    )


_LEGEND_CORNERS = (
    "upper right",
    "upper left",
    "lower left",
    "lower right",
    "center right",
    "center left",
    "upper center",
    "lower center",
)


def _legend(ax, **kw):
    """A legend in the first corner of ``ax`` that covers no data; outside on the right when none is free."""
    fig = ax.get_figure()
    fig.draw_without_rendering()  # final layout, so data and legend sizes are in final pixels
    pts = _data_pixels(ax)
    for loc in _LEGEND_CORNERS:
        legend = ax.legend(loc=loc, **kw)
        if not _inside(legend.get_window_extent(), pts).any():
            return legend
        legend.remove()
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)


def _label_points(ax, xy: np.ndarray, labels: list[str], fontsize: float = 8) -> None:
    """Write each label next to its point, where it stays inside the axes and overlaps neither the
    labels placed before it (nor a legend inside the axes) and, if possible, no plotted point.

    Candidates are the eight directions around the point at growing distances (with a thin leader
    line once the label is not beside its point); the first free one wins."""
    from matplotlib.text import Text

    fig = ax.get_figure()
    fig.draw_without_rendering()
    frame = ax.get_window_extent()
    pts = _data_pixels(ax)
    own = ax.transData.transform(np.asarray(xy, dtype=np.float64))
    taken = []
    legend = ax.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent())
    for (x, y), p, label in zip(xy, own, labels):
        others = pts[np.hypot(*(pts - p).T) > 4.0]
        best = None
        for n, (dx, dy, ha, va) in enumerate(_label_offsets()):
            kw = dict(xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=fontsize)
            if abs(dx) + abs(dy) > 12:
                kw["arrowprops"] = dict(arrowstyle="-", lw=0.5, color="0.45", shrinkA=0, shrinkB=2)
            ann = ax.annotate(label, (x, y), **kw)
            ann.set_in_layout(False)
            ann.get_window_extent()  # places the text at its offset (an annotation does it when drawn)
            box = Text.get_window_extent(ann)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            clashes = sum(box.overlaps(t) for t in taken)
            score = (not inside, clashes, int(_inside(box, others, 1.0).sum()), n)
            if best is None or score < best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, ann, box)
            else:
                ann.remove()
            if score[:3] == (False, 0, 0):
                break
        taken.append(best[2].padded(2.0))


def _label_offsets():
    for d in (3.0, 9.0, 18.0, 30.0):
        s = 1.4 * d
        yield from (
            (d, d, "left", "bottom"),
            (-d, d, "right", "bottom"),
            (d, -d, "left", "top"),
            (-d, -d, "right", "top"),
            (s, 0.0, "left", "center"),
            (-s, 0.0, "right", "center"),
            (0.0, s, "center", "bottom"),
            (0.0, -s, "center", "top"),
        )


def _thousands(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _palette(n: int) -> list:
    """``n`` colours: the ten strong tab20 colours first, then their light partners."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return [cmap(order[i % 20]) for i in range(n)]


# --------------------------------------------------------------------------- data


def plot_data(data, out_dir: str) -> tuple[list[str], list[str]]:
    """Figures of a :class:`~fastmf.data_prep.dataset.Dataset`; returns ``(written paths, skipped notes)``.

    The figures of :func:`data_figures`, every target checked before the first is drawn.
    """
    return _Writer(out_dir, DATA_FIGURES).write_all(data_figures(data))


def data_figures(data):
    """``(file name, Figure or None, note)`` for each figure of ``plot data``, built one at a time.

    ``user_activity.png``, ``item_popularity.png`` (:func:`degree_figure`:
    complementary CDF with the maximum-likelihood power law),
    ``rating_histogram.png``, ``genre_mean_rating.png``,
    ``genre_item_count.png`` (skipped without genres) and ``top_items.png``.
    """
    for name, degrees, who in (
        ("user_activity.png", data.user_counts, "user"),
        ("item_popularity.png", data.item_counts, "item"),
    ):
        yield name, degree_figure(A.degree_fit(degrees), who), None
    yield "rating_histogram.png", rating_histogram_figure(data), None
    genres = A.genre_stats(data)
    if genres["names"]:
        yield "genre_mean_rating.png", genre_mean_figure(genres, data), None
        yield "genre_item_count.png", genre_count_figure(genres), None
    else:
        for name in ("genre_mean_rating.png", "genre_item_count.png"):
            yield name, None, "the data has no genres"
    yield "top_items.png", top_items_figure(A.top_items(data, 10)), None


def _unit(data) -> str:
    """How a rating value is read: its scale, or a weight for implicit data."""
    if data.rating_range is None:
        return "weight"
    lo, hi = data.rating_range
    return f"rating ({lo:g} to {hi:g} scale)"


def degree_figure(fit: dict, who: str):
    """Complementary CDF ``P(X >= x)`` of a degree distribution on log-log axes, with the
    maximum-likelihood power law (:func:`fastmf.drivers.analysis.power_law_fit`) drawn over the
    tail ``x >= xmin`` it was fitted to; degrees below ``xmin`` are drawn in grey."""
    fig = new_figure(6.4, 4.6)
    ax = fig.add_subplot()
    pl = fit["power_law"]
    values, ccdf = fit["values"], fit["ccdf"]
    tail = values >= pl["xmin"] if np.isfinite(pl["alpha"]) else np.ones(values.size, bool)
    if (~tail).any():
        ax.loglog(values[~tail], ccdf[~tail], "o", ms=3, color="0.65", label=f"x < {pl['xmin']:,} (not fitted)")
    ax.loglog(
        values[tail],
        ccdf[tail],
        "o",
        ms=3,
        color="tab:blue",
        alpha=0.8,
        label=f"{who}s" + (f", x ≥ {pl['xmin']:,}" if (~tail).any() else ""),
    )
    if np.isfinite(pl["alpha"]):
        x = np.geomspace(pl["xmin"], values[-1], 200)
        ax.loglog(
            x,
            A.power_law_ccdf(pl, x),
            "-",
            color="tab:red",
            lw=1.8,
            label=f"ML fit, α = {pl['alpha']:.2f} ± {pl['sigma']:.2f}, x ≥ {pl['xmin']:,}\n"
            f"({pl['n_tail']:,} of {pl['n']:,} {who}s; KS distance {pl['ks']:.3f})",
        )
    ax.set_ylim(0.5 / max(pl["n"], 1), 1.6)
    what = "User activity" if who == "user" else "Item popularity"
    ax.set(
        xlabel=f"x = ratings per {who}",
        ylabel=f"P(X ≥ x): share of {who}s with ≥ x ratings",
        title=f"{what}: complementary CDF and power-law fit",
    )
    _legend(ax, fontsize=8)
    return fig


def rating_histogram_figure(data):
    values, counts = A.rating_histogram(data)
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    step = float(np.min(np.diff(values))) if values.size > 1 else 1.0
    ax.bar(values, counts, width=0.8 * step, color="tab:blue")
    if values.size <= 12:
        ax.set_xticks(values, labels=[f"{v:g}" for v in values])
    ax.set(
        xlabel=_unit(data),
        ylabel="number of ratings",
        title=f"Rating histogram ({data.n_ratings:,} ratings, mean {data.global_mean:.2f})",
    )
    _thousands(ax, "y")
    return fig


def genre_mean_figure(genres: dict, data):
    """Mean rating per genre as points with stems from the mean of all ratings (a bar chart
    would have to start at zero to be honest, and then hides the differences)."""
    names = np.asarray(genres["names"])
    keep = _most(genres["n_ratings"])
    order = keep[np.argsort(genres["mean_rating"][keep], kind="stable")]
    mean, overall = genres["mean_rating"][order], data.global_mean
    fig = _bar_canvas(len(order))
    ax = fig.add_subplot()
    y = np.arange(order.size)
    ax.hlines(y, overall, mean, color="tab:blue", lw=2)
    ax.plot(mean, y, "o", color="tab:blue", ms=6)
    ax.axvline(overall, color="0.3", ls="--", lw=1, label=f"all ratings: {overall:.2f}")
    ax.set_yticks(y, labels=[shorten(n, 30) for n in names[order]], fontsize=9)
    ax.set_ylim(-0.7, order.size - 0.3)
    span = max(float(np.nanmax(np.abs(mean - overall))), 0.05)
    ax.set_xlim(overall - 1.25 * span, overall + 1.25 * span)
    ax.set(
        xlabel=f"mean {_unit(data)} of the genre's ratings",
        ylabel="genre",
        title="Average rating by genre" + _left_out(order.size, names.size, "most-rated"),
    )
    _legend(ax, fontsize=8)
    return fig


def genre_count_figure(genres: dict):
    names = np.asarray(genres["names"])
    keep = _most(genres["n_items"])
    order = keep[np.argsort(genres["n_items"][keep], kind="stable")]
    return _barh(
        [shorten(n, 30) for n in names[order]],
        genres["n_items"][order],
        "number of items",
        "genre",
        "Items per genre" + _left_out(order.size, names.size, "largest"),
    )


def top_items_figure(top: list[dict]):
    top = top[::-1]
    return _barh(
        [shorten(t["title"], 40) for t in top],
        [t["ratings"] for t in top],
        "number of ratings",
        "item",
        f"The {len(top)} most-rated items",
    )


def _most(values: np.ndarray) -> np.ndarray:
    """Indices of the ``MAX_BARS`` largest ``values`` (all when there are fewer)."""
    return np.argsort(-np.asarray(values), kind="stable")[:MAX_BARS]


def _left_out(shown: int, total: int, which: str) -> str:
    return "" if shown == total else f" ({shown} {which} of {total})"


def _bar_canvas(n: int):
    """A figure tall enough for ``n`` horizontal bars with readable labels."""
    return new_figure(6.8, max(3.0, 0.27 * n + 1.4))


def _barh(labels, values, xlabel: str, ylabel: str, title: str):
    """Horizontal bars, one label per bar, the value written at the end of each bar."""
    fig = _bar_canvas(len(labels))
    ax = fig.add_subplot()
    values = np.asarray(values)
    y = np.arange(len(labels))
    ax.barh(y, values, color="tab:blue")
    ax.set_yticks(y, labels=list(labels), fontsize=9)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    top = float(values.max()) if values.size else 1.0
    ax.set_xlim(0, 1.14 * top if top > 0 else 1.0)
    for yy, v in zip(y, values):
        ax.annotate(f"{v:,.0f}", (v, yy), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set(xlabel=xlabel, title=title)
    if ylabel:
        ax.set_ylabel(ylabel)
    _thousands(ax, "x")
    return fig


# --------------------------------------------------------------------------- model


def plot_model(model, out_dir: str, data=None, min_ratings: int = 100) -> tuple[list[str], list[str]]:
    """Figures of a fitted model; returns ``(written paths, skipped notes)``.

    The figures of :func:`model_figures`, every target checked before the first is drawn.
    """
    return _Writer(out_dir, MODEL_FIGURES).write_all(model_figures(model, data, min_ratings))


def model_figures(model, data=None, min_ratings: int = 100):
    """``(file name, Figure or None, note)`` for each figure of ``plot model``, built one at a time.

    ``training_curves.png`` (:func:`curves_figure`; skipped when the history
    has no per-epoch curve, as for the one-pass most-popular model).
    ``item_map.png``: PCA of the item factors of items with ``>= min_ratings``
    training ratings, x shifted by ``0.1 b_i``, coloured by each item's most
    specific genre in ``data`` (:func:`fastmf.drivers.analysis.primary_genres`;
    ``data`` is the model's training data, ``None`` leaves items uncoloured).
    ``genre_vectors.png``: PCA of ``feature_factors_`` labelled by
    ``feature_names_`` when the model has them.
    """
    panels, constants, reason = curve_panels(getattr(model, "history_", None) or [])
    if reason:
        yield "training_curves.png", None, reason
    else:
        yield "training_curves.png", curves_figure(model.history_, model.kind), None
    try:
        emb = A.embedding_map(model, data, min_ratings)
    except FastMFError as exc:
        yield "item_map.png", None, str(exc)
    else:
        yield "item_map.png", item_map_figure(emb, min_ratings, model.kind), None
    features = getattr(model, "feature_factors_", None)
    if features is not None and np.ndim(features) == 2 and np.shape(features)[0] >= 2:
        names = getattr(model, "feature_names_", None)
        names = [f"feature {f}" for f in range(len(features))] if names is None else [str(n) for n in names]
        yield "genre_vectors.png", features_figure(np.asarray(features), names), None
    else:
        yield "genre_vectors.png", None, "the model has no genre feature vectors"


#: history keys drawn by ``training_curves.png``: key -> (panel, legend label)
SERIES = {
    "train_rmse": ("rmse", "training set"),
    "val_rmse": ("rmse", "validation split"),
    "test_rmse": ("rmse", "test set"),
    "objective": ("objective", "objective"),
    "elbo": ("elbo", "ELBO"),
    "loss": ("loss", "loss"),
    "auc": ("auc", "exact AUC (all items)"),
    "sampled_auc": ("auc", "sampled AUC (report protocol)"),
    "lr": ("lr", "learning rate"),
    "lam": ("lam", "λ"),
}
#: panel -> (title, y-axis label); each panel is one quantity on its own axis
PANELS = {
    "rmse": ("RMSE per epoch", "RMSE (rating units)"),
    "objective": ("Training objective (minimised)", "λ/2·squared error + penalties"),
    "elbo": ("Evidence lower bound (maximised)", "ELBO (nats)"),
    "loss": ("BPR loss (minimised)", "mean −ln σ(x̂ui − x̂uj) per triple (nats)"),
    "auc": ("Ranking AUC on test users", "AUC (0.5 random, 1 perfect)"),
    "lr": ("Learning-rate schedule", "learning rate (lr·decay^epoch)"),
    "lam": ("Learned noise precision", "λ (1 / rating units²)"),
}


def curve_panels(history: list[dict]) -> tuple[list[tuple[str, str, list]], dict, str | None]:
    """What ``training_curves.png`` draws: ``(panels, constants, reason)``.

    ``panels``: ``(title, y label, [(key, legend label), ...])``, one quantity
    each (RMSEs together, then the objective, ELBO or loss, AUCs, the learning
    rate, the noise precision, then any other numeric key alone). Timings
    (``seconds``, ``feature_seconds``) are not drawn, nor keys that keep one
    value in every epoch (``constants``, named in the title). ``reason`` says
    why nothing is worth drawing (``None`` otherwise): a single record (the
    most-popular model is one pass) or nothing that changes between epochs.
    """
    if len(history) < 2:
        return (
            [],
            {},
            (
                f"the training history has {len(history)} record{'' if len(history) == 1 else 's'} "
                "(a one-pass fit), so there is no per-epoch curve to draw"
            ),
        )
    keys = [
        k
        for k in history[0]
        if k != "epoch"
        and not k.endswith("seconds")
        and all(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) for r in history)
    ]
    constants, moving = {}, []
    for k in keys:
        v = np.asarray([r[k] for r in history], dtype=np.float64)
        if np.all(v == v[0]):
            constants[k] = float(v[0])
        elif np.isfinite(v).sum() >= 2:
            moving.append(k)
    if not moving:
        return [], constants, "no quantity in the training history changes from epoch to epoch"
    panels = []
    for panel, (title, ylabel) in PANELS.items():
        series = [(k, SERIES[k][1]) for k in moving if k in SERIES and SERIES[k][0] == panel]
        if series:
            panels.append((title, ylabel, series))
    panels += [(k, k, [(k, k)]) for k in moving if k not in SERIES]
    return panels, constants, None


def curves_figure(history: list[dict], kind: str):
    """The per-epoch history of :func:`curve_panels`, one panel per quantity."""
    from matplotlib.ticker import MaxNLocator

    panels, constants, _ = curve_panels(history)
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = new_figure(4.4 * cols, 3.5 * rows + 0.4)
    epochs = [r["epoch"] for r in history]
    for n, (title, ylabel, series) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, n + 1)
        for key, label in series:
            ax.plot(epochs, [r[key] for r in history], marker="o", ms=3, label=label)
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(series) > 1:
            _legend(ax, fontsize=8)
    fixed = ", ".join(f"{SERIES.get(k, (None, k))[1]} = {v:g}" for k, v in constants.items())
    fig.suptitle(f"{kind}: training history" + (f" ({shorten(fixed, 60)} in every epoch)" if fixed else ""))
    return fig


def item_map_figure(emb: dict, min_ratings: int, kind: str):
    """The items' factor map, coloured by most specific genre, the most-rated items named."""
    fig = new_figure(8.2, 5.8)
    ax = fig.add_subplot()
    genre = emb["genre"].astype(str)
    genres, counts = np.unique(genre, return_counts=True)
    order = np.lexsort((genres, -counts, genres == A.NO_GENRE))
    colours = _palette(len(genres))
    for g, colour in zip(genres[order], colours):
        mask = genre == g
        ax.scatter(
            emb["x"][mask],
            emb["y"][mask],
            s=14,
            color="0.6" if g == A.NO_GENRE else colour,
            alpha=0.8,
            label=f"{g} ({mask.sum()})",
            linewidths=0,
        )
    e = emb["explained"]
    ax.set(
        xlabel=f"PC1 of the item factors ({e[0]:.0%} of variance) + {A.BIAS_SHIFT} b_i",
        ylabel=f"PC2 of the item factors ({e[1]:.0%} of variance)",
        title=f"{kind}: item factors of the {len(emb['items']):,} items with ≥ {min_ratings:,} ratings",
    )
    ax.margins(0.08)
    if len(genres) > 1 or genres[0] != A.NO_GENRE:
        ax.legend(
            fontsize=8,
            markerscale=1.3,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            title=f"genre: {A.PRIMARY_GENRE_RULE.replace(' of ', chr(10) + 'of ')}",
            title_fontsize=8,
        )
    named = np.argsort(-emb["counts"], kind="stable")[:LABELLED_ITEMS]
    _label_points(
        ax,
        np.column_stack([emb["x"][named], emb["y"][named]]),
        [shorten(emb["titles"][j], 34) for j in named],
        fontsize=7.5,
    )
    return fig


def features_figure(features: np.ndarray, names: list[str]):
    """The genre vectors' PCA, coloured by length, each (of the ``MAX_LABELS`` longest) named."""
    coords, e = A.pca_2d(features)
    norms = np.linalg.norm(features, axis=1)
    size = float(np.clip(5.0 + 0.06 * len(names), 5.0, 11.0))
    fig = new_figure(size + 1.4, size)
    ax = fig.add_subplot()
    points = ax.scatter(coords[:, 0], coords[:, 1], c=norms, cmap="viridis", s=30)
    ax.margins(0.12)
    fig.colorbar(points, ax=ax, label="length ‖F_f‖ of the genre vector")
    named = np.argsort(-norms, kind="stable")[:MAX_LABELS]
    ax.set(
        xlabel=f"PC1 of the genre vectors ({e[0]:.0%} of variance)",
        ylabel=f"PC2 of the genre vectors ({e[1]:.0%} of variance)",
        title="Genre feature vectors F_f" + _left_out(named.size, len(names), "longest named"),
    )
    _label_points(ax, coords[named], [shorten(names[j], 24) for j in named], fontsize=8)
    return fig
