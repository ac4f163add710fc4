"""PNG figures of a data set (``fastmf plot data``) and of a saved model (``fastmf plot model``).

matplotlib is an optional extra (``pip install 'fastmf[plot]'``): it is
imported only when a figure is drawn, and through its object-oriented API
(``matplotlib.figure.Figure`` rendered by the Agg canvas), so no global
backend is selected and no window is ever opened. Every file is written to a
temporary name and renamed into place. The numbers behind the figures come
from :mod:`fastmf.drivers.analysis`.
"""

from __future__ import annotations

import os

import numpy as np

from fastmf._version import __version__
from fastmf.common.errors import FastMFError
from fastmf.common.files import atomic_file, check_target
from fastmf.drivers import analysis as A

INSTALL_HINT = "plotting needs matplotlib, which is not installed: pip install 'fastmf[plot]'"
DPI = 110
#: history keys drawn as the model's objective, in order of preference
OBJECTIVES = ("objective", "elbo", "loss")
#: how many of the most-rated items get their title written on the item map
LABELLED_ITEMS = 6


def require_matplotlib():
    """The matplotlib ``Figure`` class; a one-line :class:`FastMFError` saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise FastMFError(INSTALL_HINT) from None
    return Figure


#: the files ``plot data`` and ``plot model`` may write
DATA_FIGURES = ("user_activity.png", "item_popularity.png", "rating_histogram.png", "genre_mean_rating.png",
                "genre_item_count.png", "top_items.png")
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
        self.figure = require_matplotlib()
        self.written: list[str] = []
        self.skipped: list[str] = []

    def new(self, width: float = 6.4, height: float = 4.4):
        return self.figure(figsize=(width, height), layout="constrained")

    def save(self, fig, name: str) -> None:
        path = os.path.join(self.out_dir, name)
        try:
            atomic_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": SOFTWARE}),
                        replaceable=is_figure, what="figure")
        except OSError as exc:
            raise FastMFError(f"{path}: cannot write the figure: {exc.strerror or exc}") from None
        self.written.append(path)


# --------------------------------------------------------------------------- data


def plot_data(data, out_dir: str) -> tuple[list[str], list[str]]:
    """Figures of a :class:`~fastmf.data_prep.dataset.Dataset`; returns ``(written paths, skipped notes)``.

    ``user_activity.png``, ``item_popularity.png`` (degree distributions on
    log-log axes with the fitted power law), ``rating_histogram.png``,
    ``genre_mean_rating.png``, ``genre_item_count.png`` and ``top_items.png``.
    """
    w = _Writer(out_dir, DATA_FIGURES)
    for name, degrees, who in (("user_activity.png", data.user_counts, "user"),
                               ("item_popularity.png", data.item_counts, "item")):
        w.save(_degree_figure(w, A.degree_fit(degrees), who), name)

    values, counts = A.rating_histogram(data)
    fig = w.new()
    ax = fig.add_subplot()
    step = float(np.min(np.diff(values))) if values.size > 1 else 1.0
    ax.bar(values, counts, width=0.8 * step, color="tab:blue")
    ax.set(xlabel="rating", ylabel="ratings", title=f"Rating histogram (mean {data.global_mean:.3f})")
    w.save(fig, "rating_histogram.png")

    genres = A.genre_stats(data)
    if genres["names"]:
        names = np.asarray(genres["names"])
        order = np.argsort(genres["mean_rating"])
        w.save(_barh(w, names[order], genres["mean_rating"][order], "mean rating",
                     "Average rating by genre", xlim=(max(0.0, np.nanmin(genres["mean_rating"]) - 0.3), None)),
               "genre_mean_rating.png")
        order = np.argsort(genres["n_items"])
        w.save(_barh(w, names[order], genres["n_items"][order], "items", "Items per genre"),
               "genre_item_count.png")
    else:
        w.skipped.append("genre figures: the data has no genres")

    top = A.top_items(data, 10)[::-1]
    w.save(_barh(w, [_short(t["title"]) for t in top], [t["ratings"] for t in top], "ratings",
                 "Ten most-rated items"), "top_items.png")
    return w.written, w.skipped


def _degree_figure(w: _Writer, fit: dict, who: str):
    fig = w.new()
    ax = fig.add_subplot()
    ax.loglog(fit["values"], fit["counts"], ".", alpha=0.6, label=f"{who}s")
    if np.isfinite(fit["slope"]):
        k = np.array([fit["values"][0], fit["values"][-1]], dtype=np.float64)
        ax.loglog(k, 10 ** fit["intercept"] * k ** fit["slope"], "r-", label=f"power law, slope {fit['slope']:.2f}")
    what = "user activity" if who == "user" else "item popularity"
    ax.set(xlabel=f"ratings per {who}", ylabel=f"number of {who}s", title=f"Degree distribution: {what}")
    ax.legend()
    return fig


def _barh(w: _Writer, labels, values, xlabel: str, title: str, xlim=None):
    fig = w.new(6.4, max(3.0, 0.28 * len(labels) + 1.2))
    ax = fig.add_subplot()
    ax.barh(np.arange(len(labels)), values, color="tab:blue")
    ax.set_yticks(np.arange(len(labels)), labels=list(labels), fontsize=8)
    ax.set(xlabel=xlabel, title=title)
    if xlim is not None:
        ax.set_xlim(*xlim)
    return fig


def _short(title: str, n: int = 40) -> str:
    return title if len(title) <= n else title[:n - 1] + "~"


# --------------------------------------------------------------------------- model


def plot_model(model, out_dir: str, data=None, min_ratings: int = 100) -> tuple[list[str], list[str]]:
    """Figures of a fitted model; returns ``(written paths, skipped notes)``.

    ``training_curves.png``: the per-epoch history (RMSEs, then the
    objective/ELBO/loss, then any other metric). ``item_map.png``: PCA of the
    item factors of items with ``>= min_ratings`` training ratings, x shifted
    by ``0.1 b_i``, coloured by first genre in ``data`` (the model's training
    data, for genres; ``None`` leaves items uncoloured). ``genre_vectors.png``:
    PCA of ``feature_factors_`` labelled by ``feature_names_`` when the model
    has them.
    """
    w = _Writer(out_dir, MODEL_FIGURES)
    history = getattr(model, "history_", None) or []
    if history:
        w.save(_curves_figure(w, history, model.kind), "training_curves.png")
    else:
        w.skipped.append("training_curves.png: the model has no training history")

    try:
        emb = A.embedding_map(model, data, min_ratings)
    except FastMFError as exc:
        w.skipped.append(f"item_map.png: {exc}")
    else:
        w.save(_item_map_figure(w, emb, min_ratings, model.kind), "item_map.png")

    features = getattr(model, "feature_factors_", None)
    if features is not None and np.ndim(features) == 2 and np.shape(features)[0] >= 2:
        names = getattr(model, "feature_names_", None)
        names = [f"feature {f}" for f in range(len(features))] if names is None else [str(n) for n in names]
        w.save(_features_figure(w, np.asarray(features), names), "genre_vectors.png")
    else:
        w.skipped.append("genre_vectors.png: the model has no genre feature vectors")
    return w.written, w.skipped


def _curves_figure(w: _Writer, history: list[dict], kind: str):
    keys = [k for k in history[0] if k not in ("epoch", "seconds")
            and all(isinstance(r.get(k), (int, float)) for r in history)]
    rmse = [k for k in keys if k.endswith("rmse")]
    objective = [k for k in OBJECTIVES if k in keys][:1]
    others = [k for k in keys if k not in rmse and k not in objective]
    panels = [(title, p) for title, p in (("RMSE", rmse), (objective[0] if objective else "", objective),
                                          ("other metrics", others)) if p]
    fig = w.new(4.2 * max(1, len(panels)), 3.8)
    epochs = [r["epoch"] for r in history]
    for n, (title, panel) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), n + 1)
        for key in panel:
            ax.plot(epochs, [r[key] for r in history], marker="o", ms=3, label=key)
        ax.set(xlabel="epoch", title=title)
        ax.legend(fontsize=8)
    fig.suptitle(f"{kind}: training history")
    return fig


def _item_map_figure(w: _Writer, emb: dict, min_ratings: int, kind: str):
    fig = w.new(7.5, 5.5)
    ax = fig.add_subplot()
    genres, counts = np.unique(emb["genre"].astype(str), return_counts=True)
    genres = genres[np.argsort(-counts, kind="stable")]
    for g, colour in zip(genres, _palette(len(genres))):
        mask = emb["genre"] == g
        ax.scatter(emb["x"][mask], emb["y"][mask], s=10, color=colour, alpha=0.75, label=f"{g} ({mask.sum()})")
    for j in np.argsort(-emb["counts"], kind="stable")[:LABELLED_ITEMS]:
        ax.annotate(_short(emb["titles"][j], 28), (emb["x"][j], emb["y"][j]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    e = emb["explained"]
    ax.set(xlabel=f"PC1 ({e[0]:.0%} of variance) + {A.BIAS_SHIFT} b_i", ylabel=f"PC2 ({e[1]:.0%})",
           title=f"{kind}: item factors of {len(emb['items']):,} items with >= {min_ratings} ratings")
    ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), title="first genre")
    return fig


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


def _features_figure(w: _Writer, features: np.ndarray, names: list[str]):
    coords, e = A.pca_2d(features)
    norms = np.linalg.norm(features, axis=1)
    fig = w.new(6.4, 5.2)
    ax = fig.add_subplot()
    points = ax.scatter(coords[:, 0], coords[:, 1], c=norms, cmap="viridis", s=30)
    for (x, y), name in zip(coords, names):
        ax.annotate(str(name), (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    fig.colorbar(points, ax=ax, label="vector norm")
    ax.set(xlabel=f"PC1 ({e[0]:.0%})", ylabel=f"PC2 ({e[1]:.0%})", title="Genre feature vectors")
    return fig
