"""Descriptive statistics of a rating dataset (``fastmf info``)."""

from __future__ import annotations

import numpy as np

from fastmf.data_prep.dataset import Dataset


def loglog_slope(degrees: np.ndarray) -> float:
    """Slope of the least-squares line through ``(log10 k, log10 #{entities with degree k})``.

    Only degrees ``k >= 1`` that occur are used; this is the slope of the degree
    distribution drawn on log-log axes (the ML-32M report quotes -1.93 for user
    activity and -0.62 for item popularity on ml-32m).
    """
    degrees = np.asarray(degrees)
    degrees = degrees[degrees > 0]
    if degrees.size == 0:
        return float("nan")
    values, counts = np.unique(degrees, return_counts=True)
    if values.size < 2:
        return float("nan")
    slope, _ = np.polyfit(np.log10(values), np.log10(counts), 1)
    return float(slope)


def _summary(counts: np.ndarray) -> dict:
    if counts.size == 0:
        return {"min": 0, "median": 0.0, "max": 0}
    return {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())}


def describe(data: Dataset) -> dict:
    """Counts, density, rating histogram, per-user/per-item summaries and log-log slopes."""
    values, counts = np.unique(data.data, return_counts=True)
    user_counts = data.user_counts
    item_counts = data.item_counts
    return {
        "source": data.source,
        "ratings": data.n_ratings,
        "users": data.n_users,
        "items": data.n_items,
        "density": data.density,
        "mean_rating": data.global_mean,
        "rating_histogram": {f"{v:g}": int(c) for v, c in zip(values.tolist(), counts.tolist())},
        "ratings_per_user": _summary(user_counts),
        "ratings_per_item": _summary(item_counts),
        "items_with_at_most_3_ratings": int((item_counts <= 3).sum()),
        "user_activity_loglog_slope": loglog_slope(user_counts),
        "item_popularity_loglog_slope": loglog_slope(item_counts),
        "features": len(data.feature_names),
        "has_timestamps": data.timestamps is not None,
    }


def format_describe(stats: dict) -> str:
    """Human-readable rendering of :func:`describe`."""
    lines = [
        f"source              {stats['source']}",
        f"ratings             {stats['ratings']:,}",
        f"users               {stats['users']:,}",
        f"items               {stats['items']:,}",
        f"density             {stats['density']:.4%}",
        f"mean rating         {stats['mean_rating']:.4f}",
    ]
    for who in ("user", "item"):
        s = stats[f"ratings_per_{who}"]
        lines.append(f"ratings per {who:<7} min {s['min']:,}  median {s['median']:g}  max {s['max']:,}")
    lines += [
        f"items with <= 3     {stats['items_with_at_most_3_ratings']:,}",
        f"log-log slope       users {stats['user_activity_loglog_slope']:.2f}   "
        f"items {stats['item_popularity_loglog_slope']:.2f}",
        f"item features       {stats['features']}",
        "rating histogram",
    ]
    total = max(1, stats["ratings"])
    peak = max(stats["rating_histogram"].values(), default=1)
    for value, count in stats["rating_histogram"].items():
        bar = "#" * max(1, int(40 * count / peak))
        lines.append(f"  {value:>4}  {count:>12,}  {count / total:6.1%}  {bar}")
    return "\n".join(lines)
