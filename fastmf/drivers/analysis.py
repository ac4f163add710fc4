"""Analyses that make a data set and a fitted model readable (``fastmf plot``, ``fastmf analyze``).

Data: degree distributions with two power-law fits (the log-log least-squares
slope that ``fastmf info`` and the reports quote, and the maximum-likelihood
fit of Clauset, Shalizi & Newman that the figures draw), per-genre counts and
mean ratings, the most-rated items. Model: a 2-D PCA map of the item
factors (the ML-32M report's picture), polarizing items by two measures and
nearest items by cosine similarity. Everything here is NumPy; the figures are
drawn by :mod:`fastmf.drivers.plots`.

Polarizing items, side by side:

* factor norm ``||V_i||`` (ML-32M report): a long item vector means the
  model's prediction for the item swings strongly with the user's taste;
* rating variance ``(1/n_i) sum_u (r_ui - rbar_i)^2`` (ML-25M report): raters
  of the item disagree.

Both lists only consider items with at least ``min_ratings`` ratings (rare
items have poorly estimated vectors and noisy variances).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastmf.common.errors import FastMFError
from fastmf.data_prep.dataset import Dataset, IdMap
from fastmf.data_prep.stats import loglog_slope

NO_GENRE = "(no genre)"
#: the ML-32M report's popularity adjustment of the embedding map: x + 0.1 b_i
BIAS_SHIFT = 0.1
#: item factors all smaller than this (in absolute value) have collapsed to zero: nothing to map
COLLAPSED = 1e-6


# --------------------------------------------------------------------------- data


def degree_fit(degrees: np.ndarray) -> dict:
    """Degree distribution with its two power-law fits.

    ``values``/``counts``: each degree ``k >= 1`` that occurs and the number of
    entities with it; ``ccdf``: the empirical ``P(X >= k)`` at each value.

    * ``slope`` and ``intercept``: the least-squares line
      ``log10 count = intercept + slope log10 k`` through the histogram on
      log-log axes (:func:`fastmf.data_prep.stats.loglog_slope`, the number
      ``fastmf info`` prints and the ML-32M report quotes). It is easy to read
      but biased: every degree weighs the same, so the sparse tail of counts
      1 and 2 pulls the line flat.
    * ``power_law``: the maximum-likelihood fit of :func:`power_law_fit`
      (exponent ``alpha``, lower bound ``xmin``), which the figures draw.
    """
    degrees = np.asarray(degrees)
    values, counts = np.unique(degrees[degrees > 0], return_counts=True)
    slope = loglog_slope(degrees)
    intercept = (
        float(np.mean(np.log10(counts)) - slope * np.mean(np.log10(values))) if np.isfinite(slope) else float("nan")
    )
    n = counts.sum()
    ccdf = (n - np.concatenate([[0], np.cumsum(counts)[:-1]])) / max(n, 1)
    return {
        "values": values,
        "counts": counts,
        "ccdf": ccdf,
        "slope": slope,
        "intercept": intercept,
        "power_law": power_law_fit(degrees),
    }


#: ``power_law_fit`` only considers lower bounds that leave at least this many entities in the tail
MIN_TAIL = 50


def power_law_fit(degrees: np.ndarray, xmin: int | None = None, min_tail: int = MIN_TAIL) -> dict:
    """Maximum-likelihood fit of a discrete power law ``p(x) ~ x^-alpha`` for ``x >= xmin``.

    Clauset, Shalizi & Newman (2009, SIAM Review 51:661, eq. 3.7): for the
    ``n`` degrees ``x_i >= xmin``,

        alpha = 1 + n / sum_i ln(x_i / (xmin - 1/2)),

    the maximum-likelihood estimator of the discrete power law in its
    continuous approximation (a power law on ``[xmin - 1/2, inf)`` binned to
    integers), whose tail is ``P(X >= x) = ((x - 1/2) / (xmin - 1/2))^(1 - alpha)``.
    The standard error is ``(alpha - 1) / sqrt(n)``.

    ``xmin`` (when not given) is chosen as in the paper: the value among the
    observed degrees that minimises the Kolmogorov-Smirnov distance ``ks``
    between the tail's empirical distribution and the fitted one; only values
    leaving at least ``min_tail`` entities are tried (all values when fewer
    entities than that, down to the smallest). Degrees ``<= 0`` are ignored.

    Returns ``alpha``, ``xmin``, ``n_tail`` (entities with ``x >= xmin``), ``n``
    (entities with ``x >= 1``), ``ks`` and ``sigma``; ``alpha`` is NaN when the
    tail has fewer than two distinct values.
    """
    x = np.asarray(degrees)
    x = x[x > 0]
    values, counts = np.unique(x, return_counts=True)
    n = int(counts.sum())
    nan = {
        "alpha": float("nan"),
        "xmin": int(values[0]) if values.size else 1,
        "n_tail": n,
        "n": n,
        "ks": float("nan"),
        "sigma": float("nan"),
    }
    if values.size < 2:
        return nan
    logs = np.log(values.astype(np.float64))
    tail_n = np.cumsum(counts[::-1])[::-1]  # entities with x >= values[k]
    tail_log = np.cumsum((counts * logs)[::-1])[::-1]  # sum of ln x_i over them
    if xmin is not None:
        candidates = np.flatnonzero(values >= xmin)[:1]
        if candidates.size == 0 or candidates[0] > values.size - 2:
            return {**nan, "xmin": int(xmin), "n_tail": int(np.sum(x >= xmin))}
        lower = np.array([float(xmin)])
    else:
        usable = (tail_n >= min(min_tail, n)) & (np.arange(values.size) <= values.size - 2)
        candidates = np.flatnonzero(usable)
        lower = values[candidates].astype(np.float64)
    best = None
    for k, lo in zip(candidates, lower):
        nt = tail_n[k]
        alpha = 1.0 + nt / (tail_log[k] - nt * np.log(lo - 0.5))
        ks = _ks_distance(values[k:], counts[k:], lo, alpha)
        if best is None or ks < best[0]:
            best = (ks, lo, alpha, nt)
    ks, lo, alpha, nt = best
    return {
        "alpha": float(alpha),
        "xmin": int(lo),
        "n_tail": int(nt),
        "n": n,
        "ks": float(ks),
        "sigma": float((alpha - 1.0) / np.sqrt(nt)),
    }


def _ks_distance(values: np.ndarray, counts: np.ndarray, xmin: float, alpha: float) -> float:
    """``max_x |S(x) - P(x)|`` between the empirical and fitted distributions of the tail ``x >= xmin``.

    Both are step functions on the integers; the largest gap lies at an observed
    value, either just before its step (``P(X >= v)``) or just after it (``P(X <= v)``)."""
    n = counts.sum()
    base = xmin - 0.5
    emp_ge = 1.0 - (np.cumsum(counts) - counts) / n
    emp_le = np.cumsum(counts) / n
    fit_ge = ((values - 0.5) / base) ** (1.0 - alpha)
    fit_le = 1.0 - ((values + 0.5) / base) ** (1.0 - alpha)
    return float(max(np.max(np.abs(emp_ge - fit_ge)), np.max(np.abs(emp_le - fit_le))))


def power_law_ccdf(fit: dict, x) -> np.ndarray:
    """The fitted ``P(X >= x)`` over all entities (``x >= xmin``): the tail's share ``n_tail / n``
    times ``((x - 1/2) / (xmin - 1/2))^(1 - alpha)``, the line drawn over the empirical CCDF."""
    x = np.asarray(x, dtype=np.float64)
    return fit["n_tail"] / fit["n"] * ((x - 0.5) / (fit["xmin"] - 0.5)) ** (1.0 - fit["alpha"])


def rating_histogram(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rating values and how often each occurs."""
    return np.unique(data.data, return_counts=True)


def genre_stats(data: Dataset) -> dict:
    """Per genre: ``n_items`` (rated items tagged with it), ``n_ratings`` and ``mean_rating``
    (the mean of every rating given to an item of the genre)."""
    fptr, fidx, names = data.item_features()
    n = len(names)
    rows = np.repeat(np.arange(data.n_items), np.diff(fptr))
    item_sum = np.bincount(data.indices, weights=data.data.astype(np.float64), minlength=data.n_items)
    n_items = np.bincount(fidx, minlength=n)
    n_ratings = np.bincount(fidx, weights=data.item_counts[rows], minlength=n)
    rating_sum = np.bincount(fidx, weights=item_sum[rows], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = rating_sum / n_ratings
    return {"names": list(names), "n_items": n_items, "n_ratings": n_ratings.astype(np.int64), "mean_rating": mean}


def top_items(data: Dataset, k: int = 10) -> list[dict]:
    """The ``k`` most-rated items (ties by item index): id, title, ratings and mean rating."""
    counts = data.item_counts
    order = np.lexsort((np.arange(counts.size), -counts))[:k]
    sums = np.bincount(data.indices, weights=data.data.astype(np.float64), minlength=data.n_items)
    return [
        {
            "item_id": data.item_map.ids[i].item(),
            "title": data.title_of(i),
            "ratings": int(counts[i]),
            "mean_rating": float(sums[i] / counts[i]),
        }
        for i in order
    ]


#: MovieLens lists these among the genres, but they name a release format: an item gets one as its
#: primary genre only when it has no other genre
FORMAT_TAGS = frozenset({"IMAX"})
#: how :func:`primary_genres` chooses, for legends and captions
PRIMARY_GENRE_RULE = "rarest of the item's genres"


def primary_genres(data: Dataset, item_ids) -> np.ndarray:
    """The most specific genre of each item id: of its genres, the one the fewest items carry.

    MovieLens lists an item's genres alphabetically, so its first genre says
    little (about half the popular films would be "Action" or "Adventure");
    the rarest one is the most telling ("Sci-Fi" for *Action|Sci-Fi|Thriller*,
    "Animation" for *Toy Story*). Frequencies count the items of ``data``'s
    items file (``items_table``) carrying each genre, or, without one, the
    rows of its item-feature matrix. Ties go to the genre first in name order;
    :data:`FORMAT_TAGS` come last. ``NO_GENRE`` for items without genres or
    unknown to ``data``.
    """
    item_ids = np.asarray(item_ids)
    out = np.full(item_ids.shape[0], NO_GENRE, dtype=object)
    table = data.items_table
    if table is not None and "genres" in table.column_names:
        genres = table["genres"]
        genres = genres.combine_chunks() if isinstance(genres, pa.ChunkedArray) else genres
        owner_ids = np.asarray(table["item_id"].to_numpy())
        parent = np.asarray(pc.list_parent_indices(genres).to_numpy(), dtype=np.int64)
        flat = np.asarray(pc.list_flatten(genres).to_pylist(), dtype=object)
    else:
        fptr, fidx, feature_names = data.item_features()
        owner_ids = data.item_map.ids
        parent = np.repeat(np.arange(data.n_items), np.diff(fptr))
        flat = np.asarray(feature_names, dtype=object)[fidx] if fidx.size else np.zeros(0, object)
    if flat.size == 0:
        return out
    names, codes = np.unique(flat.astype(str), return_inverse=True)
    # an item listing a genre twice counts once
    pairs = np.unique(np.stack([parent, codes]), axis=1)
    parent, codes = pairs
    frequency = np.bincount(codes, minlength=names.size)
    is_format = np.isin(names, list(FORMAT_TAGS))
    # per item: format tags last, then the rarest, then by name (codes follow name order)
    order = np.lexsort((codes, frequency[codes], is_format[codes], parent))
    rows, first = np.unique(parent[order], return_index=True)
    owners = IdMap(owner_ids[rows])
    chosen = names[codes[order][first]].astype(object)
    pos = owners.index_of(item_ids) if len(owners) else np.full(item_ids.shape[0], -1)
    found = pos >= 0
    out[found] = chosen[pos[found]]
    return out


# --------------------------------------------------------------------------- model


def check_same_items(model, data: Dataset) -> None:
    """Error unless ``data`` describes the model's items (same ids with the same titles).

    Only checked when both carry titles: at least half of the model's items
    must appear in ``data`` under the same title.
    """
    if model.item_titles_ is None or data.titles is None:
        return
    idx = data.item_map.index_of(model.item_map_.ids)
    found = idx >= 0
    same = np.asarray([str(data.titles[j]) == str(t) for j, t in zip(idx[found], model.item_titles_[found])])
    if same.sum() < 0.5 * model.n_items:
        raise FastMFError(
            f"{data.source or 'DATA'}: its items do not match the model's "
            f"({int(same.sum()):,} of {model.n_items:,} ids have the model's title); "
            "give the data the model was trained on"
        )


def item_factors(model) -> np.ndarray:
    """The model's item factors as float64; an error for models without them (bias-only, popularity)."""
    v = getattr(model, "item_factors_", None)
    if v is None or v.ndim != 2 or v.shape[1] == 0:
        raise FastMFError(f"model '{model.kind}' has no item factors: this analysis needs a model with latent factors")
    return np.asarray(v, dtype=np.float64)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection of the rows of ``x`` on its first two principal axes.

    Rows are centred, ``x - mean = U S W^T`` (SVD) and the coordinates are
    ``(x - mean) W[:, :2]``; returns them with the share of variance each axis
    explains. Axes are signed so that their largest loading is positive
    (deterministic output). A one-column ``x`` gives a zero second axis.
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, s, wt = np.linalg.svd(centred, full_matrices=False)
    axes = wt[:2].copy()
    signs = np.sign(axes[np.arange(axes.shape[0]), np.argmax(np.abs(axes), axis=1)])
    axes *= np.where(signs == 0, 1.0, signs)[:, None]
    coords = np.zeros((x.shape[0], 2))
    coords[:, : axes.shape[0]] = centred @ axes.T
    total = float(np.sum(s**2))
    explained = np.zeros(2)
    explained[: axes.shape[0]] = (s[:2] ** 2) / total if total > 0 else 0.0
    return coords, explained


def embedding_map(model, data: Dataset | None, min_ratings: int = 100, bias_shift: float = BIAS_SHIFT) -> dict:
    """2-D map of the item factors of items with at least ``min_ratings`` training ratings.

    ``x = PC1 + bias_shift * b_i`` (the ML-32M report shifts popular items
    right by ``0.1 b_i``), ``y = PC2``; ``genre`` is each item's most specific
    genre in ``data`` (:func:`primary_genres`; ``NO_GENRE`` for all when ``data``
    is None). Returns item indices, ``x``, ``y``, ``genre``, ``titles``,
    ``counts`` and ``explained`` (variance share of the two axes). An error when
    fewer than three items qualify, or when their factors are all below
    :data:`COLLAPSED` (VI's fixed report setting shrinks them to about 1e-10:
    their principal axes would be rounding noise).
    """
    v = item_factors(model)
    items = np.flatnonzero(model.item_counts_ >= min_ratings)
    if items.size < 3:
        raise FastMFError(
            f"only {items.size} items have at least {min_ratings} training ratings: "
            "lower --min-ratings to draw the item map"
        )
    largest = float(np.max(np.abs(v[items])))
    if largest < COLLAPSED:
        raise FastMFError(
            f"the item factors of the {items.size:,} items with at least {min_ratings} training ratings "
            f"are all zero (largest |V| {largest:.1e}): the model shrank them away, so there is no map"
        )
    coords, explained = pca_2d(v[items])
    bias = getattr(model, "item_bias_", None)
    shift = bias_shift * np.asarray(bias, dtype=np.float64)[items] if bias is not None else 0.0
    return {
        "items": items,
        "x": coords[:, 0] + shift,
        "y": coords[:, 1],
        "genre": (
            primary_genres(data, model.item_map_.ids[items])
            if data is not None
            else np.full(items.size, NO_GENRE, dtype=object)
        ),
        "titles": [model.title(i) for i in items],
        "counts": model.item_counts_[items],
        "explained": explained,
    }


def rating_variance(data: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item: ``(count, mean, variance)`` with the population variance ``(1/n) sum (r - mean)^2``."""
    r = data.data.astype(np.float64)
    counts = data.item_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(data.indices, weights=r, minlength=data.n_items) / counts
        dev = (r - mean[data.indices]) ** 2
        var = np.bincount(data.indices, weights=dev, minlength=data.n_items) / counts
    return counts, mean, var


def polarizing(model, data: Dataset, min_ratings: int = 100, k: int = 10) -> dict:
    """Items with the largest and smallest factor norm and with the largest rating variance.

    Norms come from the model (items with ``>= min_ratings`` training
    ratings, counts are training counts); variances from ``data`` (items with
    ``>= min_ratings`` ratings in it). Each row: ``item_id``, ``title``,
    ``value``, ``ratings``.
    """
    norms = np.linalg.norm(item_factors(model), axis=1)
    eligible = np.flatnonzero(model.item_counts_ >= min_ratings)
    largest = eligible[np.lexsort((eligible, -norms[eligible]))][:k]
    smallest = eligible[np.lexsort((eligible, norms[eligible]))][:k]

    def model_rows(idx):
        return [
            {
                "item_id": model.item_map_.ids[i].item(),
                "title": model.title(i),
                "value": float(norms[i]),
                "ratings": int(model.item_counts_[i]),
            }
            for i in idx
        ]

    counts, _, var = rating_variance(data)
    keep = np.flatnonzero(counts >= max(min_ratings, 1))
    by_var = keep[np.lexsort((keep, -var[keep]))][:k]
    return {
        "min_ratings": min_ratings,
        "largest_norm": model_rows(largest),
        "smallest_norm": model_rows(smallest),
        "largest_variance": [
            {
                "item_id": data.item_map.ids[i].item(),
                "title": data.title_of(i),
                "value": float(var[i]),
                "ratings": int(counts[i]),
            }
            for i in by_var
        ],
    }


def similar_items(model, item_index: int, k: int = 10, min_ratings: int = 0) -> list[dict]:
    """The ``k`` items most similar to item ``item_index`` (:meth:`~fastmf.models.factor.FactorModel.similar_items`:
    cosine of the item factors), as rows with their title, ``similarity`` and training ratings."""
    item_factors(model)  # a clear error for models without factors
    ids, sims = model.similar_items(model.item_map_.ids[item_index], k, min_item_ratings=min_ratings)
    idx = model.item_map_.index_of(ids)
    return [
        {
            "item_id": model.item_map_.ids[j].item(),
            "title": model.title(j),
            "similarity": float(s),
            "ratings": int(model.item_counts_[j]),
        }
        for j, s in zip(idx, sims)
    ]


# --------------------------------------------------------------------------- text
