"""Synthetic MovieLens-shaped ratings from a planted model with a known best RMSE.

Shape (defaults: ml-32m's 200,948 users, 84,432 items, 32,000,204 ratings):

* user activity: ``20 + Lomax`` degrees (every user has at least 20 ratings,
  the most active tens of thousands), rescaled to the exact rating count;
* item popularity: Zipf-Mandelbrot weights ``w_r ~ (r + q)^-a`` (rank ``r`` decreasing
  noisily with the item id, as in MovieLens) with ``a`` and
  ``q`` solved so that the most popular item gets ~100k ratings (ml-32m: 103k)
  and ~37% of items get three or fewer ratings; every item gets at least one.

Ratings: ``r = clip(round_half(mu + b_u + b_i + U_u.V_i + sigma*eps), 0.5, 5)``
with rank-``K`` Gaussian factors. The oracle RMSE (of the exact conditional
expectation ``E[r | planted]``) is the best any model can reach and is printed.
Genres come from the planted item factors: each genre is a direction in factor
space and an item takes the 1-3 genres its factor vector projects on most.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from scipy.special import erf

from fastmf.common.errors import FastMFError
from fastmf.data_prep.partitions import CHUNK_RATINGS, Chunk, block_bounds, check_count, write_partitioned
from fastmf.data_prep.prepared import write_prepared
from fastmf.kernels import sparse as sk
from fastmf.kernels import synth as ks
from fastmf.kernels.sampling import build_alias

ML32M_SHAPE = {"users": 200_948, "items": 84_432, "ratings": 32_000_204}
GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
MIN_USER_RATINGS = 20
#: bumped whenever the same configuration would generate different data or files (cache folders use it);
#: 3: version 2's ratings, written in MovieLens order (items ascending within each user)
GENERATOR_VERSION = 3
# Fit targets of the popularity curve, calibrated so that after sampling without
# replacement (heavy users saturate the head) the full shape shows ml-32m's
# statistics: top item ~100k ratings and ~37% of items with <= 3 ratings.
TOP_ITEM_SHARE = 0.0062
SPARSE_ITEM_SHARE = 0.722
USER_TAIL = 2.0


@dataclass
class SynthConfig:
    users: int = ML32M_SHAPE["users"]
    items: int = ML32M_SHAPE["items"]
    ratings: int = ML32M_SHAPE["ratings"]
    rank: int = 8
    sigma: float = 0.8
    mu: float = 3.55
    user_bias_sd: float = 0.35
    item_bias_sd: float = 0.45
    factor_var: float = 0.35
    seed: int = 42

    @classmethod
    def scaled(cls, scale: float = 1.0, **kw) -> SynthConfig:
        base = {k: max(1, int(round(v * scale))) for k, v in ML32M_SHAPE.items()}
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)


@dataclass
class SynthData:
    """Generated ratings with the planted parameters that produced them."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    expected: np.ndarray
    planted: dict
    items: pa.Table
    stats: dict = field(default_factory=dict)

    def ratings_table(self) -> pa.Table:
        return pa.table(
            {"user_id": self.user_ids, "item_id": self.item_ids, "rating": self.ratings, "timestamp": self.timestamps}
        )


@dataclass
class _Plan:
    """Everything drawn per user and per item, in :func:`generate`'s order from one generator ``rng``
    (which later draws continue): degrees, popularity weights, the items that cover the catalogue,
    the alias table and the planted parameters."""

    cfg: SynthConfig
    rng: np.random.Generator
    degrees: np.ndarray
    weights: np.ndarray
    pre_indptr: np.ndarray
    pre_items: np.ndarray
    prob: np.ndarray
    alias: np.ndarray
    planted: dict

    @classmethod
    def draw(cls, cfg: SynthConfig) -> _Plan:
        _check(cfg)
        rng = np.random.default_rng(cfg.seed)
        degrees = user_degrees(cfg.users, cfg.items, cfg.ratings, rng)
        weights = item_weights(cfg.items, cfg.ratings)
        weights = weights[popularity_rank_of_items(cfg.items, rng)]
        pre_indptr, pre_items = _cover_items(degrees, cfg.items, rng)
        prob, alias = build_alias(weights)
        k = cfg.rank
        scale = (cfg.factor_var / k) ** 0.25
        planted = {
            "mu": cfg.mu,
            "sigma": cfg.sigma,
            "user_bias": rng.normal(0, cfg.user_bias_sd, cfg.users).astype(np.float32),
            "item_bias": rng.normal(0, cfg.item_bias_sd, cfg.items).astype(np.float32),
            "user_factors": rng.normal(0, scale, (cfg.users, k)).astype(np.float32),
            "item_factors": rng.normal(0, scale, (cfg.items, k)).astype(np.float32),
        }
        return cls(cfg, rng, degrees, weights, pre_indptr, pre_items, prob, alias, planted)

    def ratings(self, first: int, last: int):
        """Users ``first..last - 1``: their CSR ``(indptr, items)``, ratings and expected ratings (the same
        values as in the whole set: every user draws from its own streams)."""
        cfg, p = self.cfg, self.planted
        lo, hi = self.pre_indptr[first], self.pre_indptr[last]
        indptr, items = ks.sample_items(
            self.degrees[first:last],
            self.pre_indptr[first : last + 1] - lo,
            self.pre_items[lo:hi],
            self.prob,
            self.alias,
            np.log(self.weights),
            cfg.seed,
            first,
        )
        ratings, expected = ks.planted_ratings(
            indptr,
            items,
            cfg.mu,
            p["user_bias"][first:last],
            p["item_bias"],
            p["user_factors"][first:last],
            p["item_factors"],
            cfg.sigma,
            cfg.seed,
            first,
        )
        return indptr, items, ratings, expected

    def items_table(self, genre_ids: list) -> pa.Table:
        n = self.cfg.items
        return pa.table(
            {
                "item_id": np.arange(1, n + 1, dtype=np.int64),
                "title": [f"Synthetic item {i}" for i in range(1, n + 1)],
                "genres": pa.array([[GENRES[g] for g in row] for row in genre_ids], type=pa.list_(pa.string())),
            }
        )


def generate(cfg: SynthConfig) -> SynthData:
    """Draw a synthetic data set (deterministic in ``cfg.seed``, independent of thread count)."""
    plan = _Plan.draw(cfg)
    rng, planted = plan.rng, plan.planted
    indptr, items, ratings, expected = plan.ratings(0, cfg.users)
    users = sk.row_ids(indptr)
    timestamps = (1_000_000_000 + rng.integers(0, 700_000_000, size=items.size)).astype(np.int64)
    # MovieLens order: items ascending within each user (the rows are drawn in sampling order)
    _, order = sk.coo_order(users, items, cfg.users, cfg.items)
    items, ratings, expected, timestamps = items[order], ratings[order], expected[order], timestamps[order]
    items_table = plan.items_table(planted_genres(planted["item_factors"], rng))
    oracle = float(np.sqrt(np.mean((ratings.astype(np.float64) - expected) ** 2)))
    counts = np.bincount(items, minlength=cfg.items)
    stats = _stats(cfg, plan.degrees, counts, oracle, float(ratings.mean(dtype=np.float64)), int(items.size))
    return SynthData(
        users.astype(np.int64) + 1,
        items.astype(np.int64) + 1,
        ratings,
        timestamps,
        expected,
        planted,
        items_table,
        stats,
    )


def _stats(cfg: SynthConfig, degrees, counts, oracle: float, mean_rating: float, n_ratings: int) -> dict:
    return {
        "ratings": n_ratings,
        "users": cfg.users,
        "items": cfg.items,
        "oracle_rmse": oracle,
        "mean_rating": mean_rating,
        "min_user_ratings": int(degrees.min()),
        "max_user_ratings": int(degrees.max()),
        "max_item_ratings": int(counts.max()),
        "items_le_3": int((counts <= 3).sum()),
    }


def write_synth_partitioned(
    out_dir: str,
    cfg: SynthConfig,
    partitions: int,
    force: bool = False,
    chunk_ratings: int = CHUNK_RATINGS,
    progress=None,
) -> dict:
    """Generate and write a synthetic set in the partitioned layout (:mod:`fastmf.data_prep.partitions`)
    without ever holding it whole: users are generated ``chunk_ratings`` at a time and streamed into the
    blocks. The users, items and ratings are those of :func:`generate` for the same configuration (each
    user draws from its own streams); the timestamps (a stream per chunk) and the genres (drawn before
    them) are not. Item blocks are balanced on the items' expected rating counts. ``progress(n)``, if
    given, is called with the ratings of each chunk as it is generated. Returns the statistics.
    """
    plan = _Plan.draw(cfg)
    check_count(partitions, cfg.users, cfg.items)
    items_table = plan.items_table(planted_genres(plan.planted["item_factors"], plan.rng))
    user_bounds = block_bounds(plan.degrees, partitions)
    item_bounds = block_bounds(plan.weights * cfg.ratings + 1.0, partitions)
    stats: dict = {}
    manifest = {
        "source": "fastmf synth",
        "format": "synthetic",
        "rating_range": [0.5, 5.0],
        "config": cfg.__dict__,
        "stats": stats,
    }

    def chunks():
        counts = np.zeros(cfg.items, dtype=np.int64)
        sse = total = 0.0
        cum = np.concatenate([[0], np.cumsum(plan.degrees)])
        u = 0
        while u < cfg.users:
            v = int(min(cfg.users, max(u + 1, np.searchsorted(cum, cum[u] + chunk_ratings, side="right") - 1)))
            indptr, items, ratings, expected = plan.ratings(u, v)
            _, order = sk.coo_order(sk.row_ids(indptr), items, v - u, cfg.items)  # items ascending in each row
            items, ratings, expected = items[order], ratings[order], expected[order]
            counts += np.bincount(items, minlength=cfg.items)
            sse += float(np.sum((ratings.astype(np.float64) - expected) ** 2))
            total += float(ratings.sum(dtype=np.float64))
            stamps = np.random.default_rng([cfg.seed, 1, u]).integers(0, 700_000_000, size=items.size)
            yield Chunk(u, indptr, items, ratings, (1_000_000_000 + stamps).astype(np.int64))
            if progress is not None:
                progress(int(items.size))
            u = v
        n = int(cum[-1])
        stats.update(_stats(cfg, plan.degrees, counts, float(np.sqrt(sse / n)), total / n, n))

    def planted_writer(path):
        with open(path, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in plan.planted.items()})

    ids = [np.arange(1, n + 1, dtype=np.int64) for n in (cfg.users, cfg.items)]
    write_partitioned(
        out_dir,
        *ids,
        chunks(),
        user_bounds,
        item_bounds,
        items_table,
        manifest,
        True,
        extra_files={"planted.npz": planted_writer},
        force=force,
    )
    return stats


def user_degrees(n_users: int, n_items: int, n_ratings: int, rng, tail: float = USER_TAIL) -> np.ndarray:
    """Heavy-tailed ratings-per-user: ``min + Lomax(tail)``, capped at a third of the items,
    rescaled to sum exactly to ``n_ratings`` (every user keeps at least ``min``)."""
    lo = min(MIN_USER_RATINGS, n_ratings // n_users)
    mean = n_ratings / n_users
    cap = max(lo, min(n_items // 3, n_ratings))
    if cap < mean:  # dense shapes: a third of the items cannot hold the mean degree
        cap = min(n_items, math.ceil(2 * mean))
    u = 1.0 - rng.random(n_users)
    shape = u ** (-1.0 / tail) - 1.0
    # scale the Lomax part by bisection so the capped mean matches
    s_lo, s_hi = 0.0, float(n_ratings)
    for _ in range(80):
        s = 0.5 * (s_lo + s_hi)
        if np.minimum(lo + s * shape, cap).mean() < mean:
            s_lo = s
        else:
            s_hi = s
    deg = np.minimum(np.floor(lo + s * shape), cap).astype(np.int64)
    diff = n_ratings - int(deg.sum())
    while diff != 0:
        step = 1 if diff > 0 else -1
        room = (deg < cap) if step > 0 else (deg > lo)
        cand = np.flatnonzero(room)
        if cand.size == 0:
            raise FastMFError("cannot fit that many ratings: raise --items or lower --ratings")
        pick = rng.choice(cand, size=min(abs(diff), cand.size), replace=False)
        deg[pick] += step
        diff -= step * pick.size
    return deg


def item_weights(n_items: int, n_ratings: int) -> np.ndarray:
    """Zipf-Mandelbrot popularity ``(r + q)^-a`` by popularity rank ``r = 1..n_items``.

    ``q`` sets the top item's share of draws and ``a`` the share of items whose
    expected draw count is at most 3 (targets ``TOP_ITEM_SHARE`` and
    ``SPARSE_ITEM_SHARE``, calibrated for the sampled ml-32m shape).
    """
    r = np.arange(1, n_items + 1, dtype=np.float64)

    def weights(a, q):
        w = (r + q) ** -a
        return w / w.sum()

    def q_for(a):
        lo, hi = 0.0, float(n_items)
        for _ in range(60):
            q = 0.5 * (lo + hi)
            if weights(a, q)[0] > TOP_ITEM_SHARE:
                lo = q
            else:
                hi = q
        return 0.5 * (lo + hi)

    a_lo, a_hi = 0.3, 6.0
    for _ in range(40):
        a = 0.5 * (a_lo + a_hi)
        w = weights(a, q_for(a))
        share = np.mean(w * n_ratings <= 3.0)
        if share < SPARSE_ITEM_SHARE:
            a_lo = a
        else:
            a_hi = a
    return weights(a, q_for(a))


def popularity_rank_of_items(n_items: int, rng) -> np.ndarray:
    """Popularity rank of each item index, decreasing with the index but noisily.

    As in MovieLens, where low movie ids are older films that gathered most
    ratings, item ``j`` gets the rank order of ``j + N(0, (n_items/4)^2)``: ids
    and popularity correlate, which is what makes a naive equal-count split of
    items across threads unbalanced.
    """
    keys = np.arange(n_items) + rng.normal(0.0, 0.25 * n_items, n_items)
    return np.argsort(np.argsort(keys, kind="stable"), kind="stable")


def _cover_items(degrees: np.ndarray, n_items: int, rng):
    """Give every item one rating: item -> a user drawn in proportion to spare degree."""
    spare = degrees.astype(np.float64)
    owners = np.searchsorted(np.cumsum(spare), rng.random(n_items) * spare.sum(), side="right")
    owners = np.minimum(owners, degrees.size - 1).astype(np.int32)
    # a user cannot hold more pre-assigned items than its degree
    counts = np.bincount(owners, minlength=degrees.size)
    over = counts > degrees
    if over.any():
        raise FastMFError("too few ratings to give every item one rating: raise --ratings")
    items = np.arange(n_items, dtype=np.int32)
    indptr, order = sk.counting_sort(owners, degrees.size)
    return indptr, items[order]


def planted_genres(item_factors: np.ndarray, rng) -> list:
    """1-3 genres per item: those whose direction the item's factor vector projects on most."""
    k = item_factors.shape[1]
    directions = rng.normal(size=(len(GENRES), k))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    proj = item_factors @ directions.T
    n_genres = rng.choice([1, 2, 3], size=item_factors.shape[0], p=[0.4, 0.35, 0.25])
    order = np.argsort(-proj, axis=1)
    return [order[i, : n_genres[i]].tolist() for i in range(item_factors.shape[0])]


def expected_rating(planted: dict, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``E[r | planted]`` for (user index, item index) pairs: the ground truth of a synthetic set."""
    m = (
        planted["mu"]
        + planted["user_bias"][users]
        + planted["item_bias"][items]
        + np.einsum("ij,ij->i", planted["user_factors"][users], planted["item_factors"][items])
    )
    sigma = float(planted["sigma"])
    e = np.zeros_like(m, dtype=np.float64)
    prev = np.zeros_like(e)
    for s in range(1, 11):
        v = 0.5 * s
        upper = np.ones_like(e) if s == 10 else 0.5 * (1 + erf((v + 0.25 - m) / (sigma * math.sqrt(2))))
        e += v * (upper - prev)
        prev = upper
    return e


def write_synth(out_dir: str, data: SynthData, cfg: SynthConfig, csv: bool = False, force: bool = False) -> None:
    """Write like ``fastmf prepare`` plus ``planted.npz`` (the true parameters, for oracle comparisons)."""
    manifest = {
        "source": "fastmf synth",
        "format": "synthetic",
        "users": cfg.users,
        "items": cfg.items,
        "rating_range": [0.5, 5.0],
        "config": cfg.__dict__,
        "stats": data.stats,
    }

    def planted_writer(path):
        with open(path, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in data.planted.items()})

    write_prepared(
        out_dir,
        data.ratings_table(),
        data.items,
        manifest,
        extra_files={"planted.npz": planted_writer},
        csv=csv,
        force=force,
    )


def load_planted(folder: str) -> dict | None:
    """The planted parameters of a synthetic folder, or None for real data."""
    path = os.path.join(folder, "planted.npz")
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


def _check(cfg: SynthConfig) -> None:
    if cfg.users < 1 or cfg.items < 2 or cfg.ratings < cfg.items:
        raise FastMFError("synthetic shape needs users >= 1, items >= 2 and ratings >= items")
    if cfg.ratings > cfg.users * cfg.items:
        raise FastMFError("too many ratings for that many users and items")
