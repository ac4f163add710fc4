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
