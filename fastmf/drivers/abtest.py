"""A/B experiments between recommenders, scored on outcomes that neither arm produces itself.

Assignment
    ``u = (int_big_endian(SHA-256(salt + ":" + str(user_id))[:8]) >> 11) / 2^53``, a
    number in [0, 1) that depends on nothing but the salt and the id, so it is
    the same in every run, process and machine. With traffic weights
    ``w_1..w_m`` (normalised) the user gets the first variant ``v`` with
    ``u < w_1 + ... + w_v``; any number of variants.

Outcomes (per user, from the ``K`` items the user's arm recommends, seen items excluded)
    Scoring an arm with its own model's predicted ratings (the ML-32M report's
    simulation) can only favour the arm whose predictions are used, so the
    outcomes come from truth the models did not see:

    * real data, the held-out test ratings ``T_u`` of the split the models were
      trained on, with positives ``P_u = {i in T_u: r_ui >= threshold}``:
      ``precision@K = |L_u ∩ P_u| / K``;
      ``NDCG@K = sum_r [L_ur in P_u] / log2(r + 1)`` divided by its maximum
      ``sum_{r <= min(K, |P_u|)} 1 / log2(r + 1)``;
      ``heldout_rating`` = mean ``r_ui`` over ``L_u ∩ T_u`` (not logged when empty);
      likes / dislikes = recommended items the user rated ``>= threshold`` / below it,
      ``like_rate`` = likes / (likes + dislikes) (not logged without feedback).
      Only users with at least one test positive are sampled.
    * synthetic data (a folder with ``planted.npz``): ``expected_rating`` = the
      mean planted ``E[r_ui]`` of the recommended items, and likes / dislikes from
      one rating per recommended item drawn from the planted distribution
      (seeded), liked when ``>= threshold``, and ``like_rate`` as above.

Statistics (per metric, every variant against the first, the control)
    * Welch's t-test: ``t = (mean_B - mean_A) / sqrt(s_A^2/n_A + s_B^2/n_B)``
      with Welch-Satterthwaite degrees of freedom (``scipy.stats.ttest_ind(equal_var=False)``);
    * per-arm mean with the t interval ``mean ± t_{1-alpha/2, n-1} s / sqrt(n)``;
    * bootstrap interval of ``mean_B - mean_A``: percentiles ``alpha/2`` and
      ``1 - alpha/2`` of the difference over resamples drawn with replacement
      within each arm (seeded);
    * chi-square test of independence of variant and like/dislike counts
      (``scipy.stats.chi2_contingency``, Yates-corrected for two arms, as in the
      ML-25M report). It counts every recommended item as an independent trial,
      but one user's likes are correlated, so its p-value is optimistic (an A/A
      simulation on planted data rejected more than twice as often as alpha);
      the Welch test of the per-user ``like_rate`` is the valid test of feedback;
    * users per arm for a two-sided two-sample t-test to detect a difference
      ``delta`` with power ``1 - beta``: the smallest ``n`` with
      ``P(|T| > t_{1-alpha/2, 2n-2}) >= 1 - beta`` where ``T`` is noncentral t
      with ``2n - 2`` degrees of freedom and noncentrality ``(delta/sd) sqrt(n/2)``
      (``sd``: pooled standard deviation), searched from the normal
      approximation ``n ~ 2 (z_{1-alpha/2} + z_{1-beta})^2 sd^2 / delta^2``;
    * a sample-ratio check: chi-square goodness of fit of the assignment counts to the weights.

Log
    Every assignment (metric ``assigned``, outcome ``u``) and outcome is a row
    ``experiment, run, variant, user, metric, outcome, timestamp``; each run is
    one Parquet file in the log folder, written atomically, with the run's
    settings in the file's metadata, so :func:`read_log` and :func:`analyze`
    re-create the report later.
"""

from __future__ import annotations

import datetime as _dt
import glob
import hashlib
import json
import os
import re
import uuid
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fastmf.common.errors import FastMFError
from fastmf.common.files import atomic_file
from fastmf.data_prep.dataset import Dataset
from fastmf.kernels import synth as ksynth

ASSIGNED = "assigned"
LIKES, DISLIKES = "likes", "dislikes"
META_KEY = b"fastmf.abtest"
VARIANT_NAMES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOG_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("run", pa.string()),
        ("variant", pa.string()),
        ("user", pa.string()),
        ("metric", pa.string()),
        ("outcome", pa.float64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)


def _stats():
    """``scipy.stats``, imported on first use: it takes 0.4 s, which every ``fastmf`` command paid."""
    from scipy import stats

    return stats


# --------------------------------------------------------------------------- assignment


def hash_unit(salt: str, user_ids) -> np.ndarray:
    """``u`` in [0, 1) of each user id under ``salt`` (see the module docstring)."""
    out = np.empty(len(user_ids), dtype=np.float64)
    prefix = f"{salt}:".encode()
    for j, uid in enumerate(np.asarray(user_ids).tolist()):
        digest = hashlib.sha256(prefix + str(uid).encode()).digest()
        out[j] = (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)
    return out


def normalise_weights(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size < 1 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise FastMFError(f"traffic weights must be non-negative numbers with a positive sum, got {list(weights)}")
    return w / w.sum()


def experiment_weights(weights, n_arms: int, what: str = "traffic weights") -> np.ndarray:
    """The normalised traffic weights of an experiment with ``n_arms`` arms: exactly one finite, positive
    weight per arm (an arm with weight 0 would get no users, and its comparison would be empty)."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    shown = ",".join(f"{x:g}" for x in w)
    if w.size != n_arms:
        raise FastMFError(f"{what}: expected {n_arms} weights, one per arm, got {w.size} ({shown})")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise FastMFError(
            f"{what}: every weight must be a finite positive number (an arm with weight 0 gets "
            f"no users to compare), got {shown}"
        )
    return w / w.sum()


def variant_of(units: np.ndarray, weights) -> np.ndarray:
    """Variant index (0 = control) of each ``u``: the first ``v`` with ``u < w_1 + ... + w_v``."""
    cum = np.cumsum(normalise_weights(weights))
    cum[-1] = 1.0
    return np.searchsorted(cum, units, side="right").astype(np.int64)


def assign(user_ids, salt: str, weights=(0.5, 0.5)) -> np.ndarray:
    """Variant index (0 = control) of each user id under ``salt`` and the traffic ``weights``."""
    return variant_of(hash_unit(salt, user_ids), weights)


# --------------------------------------------------------------------------- outcomes


def ranking_outcomes(rec: np.ndarray, users: np.ndarray, test: Dataset, threshold: float) -> dict:
    """Held-out outcomes of recommended item indices ``rec`` (rows: ``users``; -1 = empty slot).

    Returns per-user arrays ``precision``, ``ndcg``, ``heldout_rating`` (NaN
    when no recommended item was rated in ``test``), ``like_rate``, ``likes`` and ``dislikes``
    (definitions in the module docstring).
    """
    k = rec.shape[1]
    width = np.int64(max(test.n_items, int(rec.max(initial=0)) + 1))
    keys = test.user_of_entry.astype(np.int64) * width + test.indices
    order = np.argsort(keys, kind="stable")
    keys, ratings = keys[order], test.data[order].astype(np.float64)
    valid = rec >= 0
    query = np.where(valid, users[:, None].astype(np.int64) * width + rec, -1)
    pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
    rated = valid & (keys[pos] == query) if keys.size else np.zeros_like(valid)
    rating = np.where(rated, ratings[pos] if keys.size else 0.0, np.nan)
    liked = rated & (rating >= threshold)
    positives = np.bincount(test.user_of_entry[test.data >= threshold], minlength=test.n_users)[users]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate([[np.nan], np.cumsum(discount)])[np.minimum(positives, k)]
    n_rated = rated.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "precision": liked.sum(axis=1) / k,
            "ndcg": (liked * discount).sum(axis=1) / ideal,
            "heldout_rating": np.where(n_rated > 0, np.nansum(rating, axis=1) / n_rated, np.nan),
            **_feedback(liked.sum(axis=1), (rated & ~liked).sum(axis=1)),
        }


def planted_outcomes(
    rec: np.ndarray, planted_users: np.ndarray, planted_items: np.ndarray, planted: dict, threshold: float, seed: int
) -> dict:
    """Synthetic outcomes: per-user mean planted ``E[r]`` of the recommendations and simulated
    likes / dislikes (one rating per recommended item from the planted model, stream ``seed``).

    ``planted_users`` are the rows' indices in the planted arrays and
    ``planted_items`` maps the model's item indices to them.
    """
    valid = rec >= 0
    order = np.argsort(planted_users, kind="stable")
    n_planted = planted["user_bias"].shape[0]
    counts = np.zeros(n_planted, dtype=np.int64)
    counts[planted_users[order]] = valid[order].sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    items = planted_items[rec[order][valid[order]]].astype(np.int32)
    drawn, expected = ksynth.planted_ratings(
        indptr,
        items,
        float(planted["mu"]),
        planted["user_bias"],
        planted["item_bias"],
        planted["user_factors"],
        planted["item_factors"],
        float(planted["sigma"]),
        int(seed),
    )
    e_sorted = np.full(rec.shape, np.nan)
    r_sorted = np.full(rec.shape, np.nan)
    e_sorted[valid[order]], r_sorted[valid[order]] = expected, drawn
    e, r = np.empty_like(e_sorted), np.empty_like(r_sorted)
    e[order], r[order] = e_sorted, r_sorted
    liked = r >= threshold
    with np.errstate(invalid="ignore"):
        return {
            "expected_rating": np.nanmean(np.where(valid, e, np.nan), axis=1),
            **_feedback(liked.sum(axis=1), (valid & ~liked).sum(axis=1)),
        }


def _feedback(likes: np.ndarray, dislikes: np.ndarray) -> dict:
    """Like and dislike counts and the per-user like rate (NaN without feedback)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(likes + dislikes > 0, likes / (likes + dislikes), np.nan)
    return {"like_rate": rate, LIKES: likes.astype(np.float64), DISLIKES: dislikes.astype(np.float64)}


# --------------------------------------------------------------------------- statistics


def mean_interval(x: np.ndarray, alpha: float = 0.05) -> dict:
    """``n``, ``mean``, ``sd`` and the t interval of the mean."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    mean = float(x.mean()) if n else float("nan")
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = float(_stats().t.ppf(1 - alpha / 2, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "ci": [mean - half, mean + half]}


def welch(a: np.ndarray, b: np.ndarray) -> dict:
    """Welch's t-test of ``mean_b - mean_a`` (NaN when an arm has fewer than two values)."""
    if len(a) < 2 or len(b) < 2:
        return {"t": float("nan"), "df": float("nan"), "p": float("nan")}
    with warnings.catch_warnings():  # constant arms: scipy warns, t is NaN or infinite
        warnings.simplefilter("ignore", RuntimeWarning)
        r = _stats().ttest_ind(b, a, equal_var=False)
    return {"t": float(r.statistic), "df": float(r.df), "p": float(r.pvalue)}


def bootstrap_diff(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, n_boot: int = 2000, seed: int = 0):
    """Percentile bootstrap interval ``[lo, hi]`` of ``mean(b) - mean(a)``, the two arms resampled
    independently (``scipy.stats.bootstrap``; NaN for an empty arm)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0 or n_boot < 1:
        return [float("nan"), float("nan")]
    result = _stats().bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
        n_resamples=n_boot,
        confidence_level=1 - alpha,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
        batch=max(1, (1 << 22) // (a.size + b.size)),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def chi_square(likes, dislikes) -> dict | None:
    """Chi-square test of independence of variant and like/dislike (None when a row or column is empty)."""
    table = np.column_stack([likes, dislikes]).astype(np.float64)
    if np.any(table.sum(axis=0) == 0) or np.any(table.sum(axis=1) == 0):
        return None
    r = _stats().chi2_contingency(table)
    return {"chi2": float(r.statistic), "dof": int(r.dof), "p": float(r.pvalue)}


def t_test_power(n: int, d: float, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t-test with ``n`` per arm and standardised effect ``d``."""
    df = 2 * n - 2
    crit = _stats().t.ppf(1 - alpha / 2, df)
    nc = abs(d) * np.sqrt(n / 2)
    return float(_stats().nct.sf(crit, df, nc) + _stats().nct.cdf(-crit, df, nc))


def sample_size(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Users per arm needed to detect ``effect`` with ``power`` (None when ``effect`` or ``sd`` is 0/NaN)."""
    if not (np.isfinite(effect) and np.isfinite(sd)) or effect == 0 or sd <= 0:
        return None
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise FastMFError("power and alpha must be between 0 and 1")
    d = abs(effect) / sd
    z = _stats().norm.ppf(1 - alpha / 2) + _stats().norm.ppf(power)
    n = max(2, int(np.ceil(2 * (z / d) ** 2)))
    while t_test_power(n, d, alpha) < power:
        n += 1
    while n > 2 and t_test_power(n - 1, d, alpha) >= power:
        n -= 1
    return n


# --------------------------------------------------------------------------- experiment


@dataclass
class Arm:
    """One variant: a fitted model and its recommendation setting."""

    model: object
    min_item_ratings: int = 0
    label: str = ""

    def describe(self) -> dict:
        return {"label": self.label, "model": self.model.kind, "min_item_ratings": int(self.min_item_ratings)}


def check_trained_on(model, train: Dataset, name: str) -> None:
    """Error unless ``model`` was fitted on exactly ``train`` (same ids and training pattern)."""
    same = (
        len(model.user_map_) == train.n_users
        and len(model.item_map_) == train.n_items
        and np.array_equal(model.user_map_.ids, train.user_map.ids)
        and np.array_equal(model.item_map_.ids, train.item_map.ids)
        and np.array_equal(model.seen_indptr_, train.indptr)
        and np.array_equal(model.seen_indices_, train.indices)
    )
    if not same:
        raise FastMFError(
            f"model {name} was not trained on this split (train it with the same DATA, --split, --test-frac and --seed)"
        )


def run_experiment(
    arms: list[Arm],
    train: Dataset,
    test: Dataset | None = None,
    planted: dict | None = None,
    n_users: int = 1000,
    salt: str = "fastmf-abtest",
    weights=None,
    k: int = 10,
    threshold: float = 4.0,
    seed: int = 42,
    experiment: str | None = None,
    settings: dict | None = None,
) -> tuple[pa.Table, dict]:
    """Sample users, assign them, recommend with each arm and score on held-out or planted truth.

    Every arm's model must have been trained on ``train``. Real data needs
    ``test`` (the held-out half of the same split); synthetic data needs the
    ``planted`` parameters. Returns the log rows and the run's settings
    (``meta``), the inputs of :func:`analyze` and :func:`write_log`.
    """
    if len(arms) < 2 or len(arms) > len(VARIANT_NAMES):
        raise FastMFError(f"an experiment needs 2 to {len(VARIANT_NAMES)} arms, got {len(arms)}")
    weights = experiment_weights([1.0] * len(arms) if weights is None else weights, len(arms))
    if n_users < 2 or k < 1:
        raise FastMFError("--users must be at least 2 and -k at least 1")
    for v, arm in enumerate(arms):
        check_trained_on(arm.model, train, VARIANT_NAMES[v])
    if planted is not None:
        planted_users = _planted_index(train.user_map.ids, planted["user_bias"].shape[0], "user")
        planted_items = _planted_index(train.item_map.ids, planted["item_bias"].shape[0], "item")
        eligible = np.arange(train.n_users)
        mode = "planted"
    elif test is not None and test.n_ratings:
        positives = np.bincount(test.user_of_entry[test.data >= threshold], minlength=test.n_users)
        eligible = np.flatnonzero(positives[: train.n_users] > 0)
        mode = "heldout"
    else:
        raise FastMFError(
            "the experiment needs held-out truth: a test split (--test-frac > 0) or a synthetic folder with planted.npz"
        )
    if eligible.size < 2:
        raise FastMFError(f"only {eligible.size} users have test ratings >= {threshold:g}")
    rng = np.random.default_rng([seed, 0xAB])
    sample = np.sort(rng.choice(eligible, size=min(n_users, eligible.size), replace=False))
    user_ids = train.user_map.ids[sample]
    units = hash_unit(salt, user_ids)
    variant = variant_of(units, weights)
    per_arm = np.bincount(variant, minlength=len(arms))
    if per_arm.min() < 2:
        v = int(np.argmin(per_arm))
        raise FastMFError(
            f"arm {VARIANT_NAMES[v]} got {per_arm[v]} of the {sample.size} sampled users (traffic "
            f"{'/'.join(f'{100 * w:g}' for w in weights)}); each arm needs at least 2 to be compared: "
            "sample more users or give that arm more traffic"
        )
    metrics: dict[str, np.ndarray] = {}
    feedback_seed = int.from_bytes(hashlib.sha256(f"{salt}:{seed}:feedback".encode()).digest()[:4], "big")
    for v, arm in enumerate(arms):
        rows = np.flatnonzero(variant == v)
        if rows.size == 0:
            continue
        rec, _ = arm.model.recommend_indices(sample[rows], k, min_item_ratings=arm.min_item_ratings)
        if mode == "planted":
            out = planted_outcomes(rec, planted_users[sample[rows]], planted_items, planted, threshold, feedback_seed)
        else:
            out = ranking_outcomes(rec, sample[rows], test, threshold)
            out = {(f"{name}@{k}" if name in ("precision", "ndcg") else name): x for name, x in out.items()}
        for name, values in out.items():
            metrics.setdefault(name, np.full(sample.size, np.nan))[rows] = values
    now = _dt.datetime.now(_dt.UTC)
    run = now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]
    experiment = experiment or salt
    meta = {
        "experiment": experiment,
        "run": run,
        "salt": salt,
        "weights": weights.tolist(),
        "variants": [dict(name=VARIANT_NAMES[v], **arm.describe()) for v, arm in enumerate(arms)],
        "k": int(k),
        "threshold": float(threshold),
        "seed": int(seed),
        "mode": mode,
        "users_requested": int(n_users),
        "eligible_users": int(eligible.size),
        "primary": "expected_rating" if mode == "planted" else f"ndcg@{k}",
        "source": train.source,
        **(settings or {}),
    }
    names = np.asarray(list(VARIANT_NAMES))[variant]
    return log_table(experiment, run, names, user_ids, units, metrics, now), meta


def _planted_index(ids: np.ndarray, n: int, what: str) -> np.ndarray:
    """Planted-array index of synthetic ids (``fastmf synth`` numbers users and items from 1)."""
    if ids.dtype.kind not in "iu" or ids.size == 0 or ids.min() < 1 or ids.max() > n:
        raise FastMFError(f"the data's {what} ids do not match planted.npz ({n:,} {what}s numbered from 1)")
    return (ids - 1).astype(np.int64)


def log_table(
    experiment: str,
    run: str,
    variants: np.ndarray,
    user_ids: np.ndarray,
    units: np.ndarray,
    metrics: dict,
    when: _dt.datetime,
) -> pa.Table:
    """Long-format log rows: one ``assigned`` row per user plus one row per defined outcome."""
    parts = [(ASSIGNED, np.arange(units.size), units)]
    for name, values in metrics.items():
        rows = np.flatnonzero(np.isfinite(values))
        parts.append((name, rows, values[rows]))
    rows = np.concatenate([p[1] for p in parts])
    n = rows.size
    users = np.asarray(user_ids).astype(str)
    return pa.table(
        {
            "experiment": pa.array([experiment] * n, pa.string()),
            "run": pa.array([run] * n, pa.string()),
            "variant": pa.array(np.asarray(variants)[rows].astype(str), pa.string()),
            "user": pa.array(users[rows], pa.string()),
            "metric": pa.array(np.concatenate([[p[0]] * p[1].size for p in parts]).astype(str), pa.string()),
            "outcome": pa.array(np.concatenate([p[2] for p in parts]).astype(np.float64)),
            "timestamp": pa.array([when] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=LOG_SCHEMA,
    )


# --------------------------------------------------------------------------- log


def write_log(log_dir: str, table: pa.Table, meta: dict) -> str:
    """Append one run to the log folder: a new Parquet file (zstd) written atomically."""
    if os.path.exists(log_dir) and not os.path.isdir(log_dir):
        raise FastMFError(f"{log_dir}: the A/B log must be a folder")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", meta["experiment"])[:60] or "experiment"
    path = os.path.join(log_dir, f"{name}-{meta['run']}.parquet")
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    try:
        atomic_file(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    except OSError as exc:
        raise FastMFError(f"{path}: cannot write the A/B log: {exc.strerror or exc}") from None
    return path


def read_log(path: str) -> list[tuple[pa.Table, dict]]:
    """The runs of a log folder (or one log file), oldest first, as ``(table, meta)`` pairs."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.parquet")))
        if not files:
            raise FastMFError(f"{path}: no A/B log files (*.parquet) in this folder")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FastMFError(f"{path}: no such A/B log")
    runs = []
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException) as exc:
            raise FastMFError(f"{file}: unreadable A/B log file ({exc})") from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        missing = set(LOG_SCHEMA.names) - set(table.column_names)
        if raw is None or missing:
            raise FastMFError(
                f"{file}: not a fastmf A/B log file"
                + (f" (missing columns {', '.join(sorted(missing))})" if missing else "")
            )
        runs.append((table, json.loads(raw)))
    return sorted(runs, key=lambda r: r[1]["run"])


# --------------------------------------------------------------------------- analysis


def analyze(
    table: pa.Table,
    meta: dict,
    alpha: float = 0.05,
    power: float = 0.8,
    effect: float | None = None,
    n_boot: int = 2000,
) -> dict:
    """The report of one run from its log rows: counts, per-metric tests, chi-square, sample size, verdict.

    Variants are compared with the first (the control); with more than two
    variants the verdict uses the Bonferroni level ``alpha / (m - 1)``.
    ``effect`` (default: the observed difference of the primary metric) sets
    the sample-size calculation. The bootstrap is seeded with the run's seed,
    so re-analysing a log reproduces the live report.
    """
    if not 0 < alpha < 1:
        raise FastMFError(f"alpha must be between 0 and 1, got {alpha}")
    names = [v["name"] for v in meta["variants"]]
    variant = np.asarray(table["variant"].to_pylist(), dtype=object)
    metric = np.asarray(table["metric"].to_pylist(), dtype=object)
    outcome = table["outcome"].to_numpy()
    counts = [int(np.sum((metric == ASSIGNED) & (variant == v))) for v in names]
    expected = np.asarray(meta["weights"]) * sum(counts)
    srm = float(_stats().chisquare(counts, expected).pvalue) if np.all(expected > 0) else float("nan")

    def values(m, v):
        return outcome[(metric == m) & (variant == v)]

    metric_names = [m for m in dict.fromkeys(metric.tolist()) if m not in (ASSIGNED, LIKES, DISLIKES)]
    results = {}
    for m in metric_names:
        arms = {v: mean_interval(values(m, v), alpha) for v in names}
        control = values(m, names[0])
        versus = {}
        for v in names[1:]:
            treat = values(m, v)
            versus[v] = {
                "diff": arms[v]["mean"] - arms[names[0]]["mean"],
                **welch(control, treat),
                "diff_ci": bootstrap_diff(control, treat, alpha, n_boot, meta["seed"]),
            }
        results[m] = {"arms": arms, "versus_control": versus}
    likes = [float(values(LIKES, v).sum()) for v in names]
    dislikes = [float(values(DISLIKES, v).sum()) for v in names]
    feedback = {
        "likes": dict(zip(names, likes)),
        "dislikes": dict(zip(names, dislikes)),
        "test": chi_square(likes, dislikes),
    }
    primary = meta["primary"]
    size = None
    if primary in results and len(names) >= 2:
        r = results[primary]
        sds = [r["arms"][v]["sd"] for v in names[:2]]
        delta = r["versus_control"][names[1]]["diff"] if effect is None else effect
        pooled = float(np.sqrt(np.mean(np.square(sds))))
        size = {
            "metric": primary,
            "effect": float(abs(delta)),
            "sd": pooled,
            "alpha": alpha,
            "power": power,
            "per_arm": sample_size(delta, pooled, alpha, power),
        }
    report = {
        "experiment": meta["experiment"],
        "run": meta["run"],
        "meta": meta,
        "alpha": alpha,
        "counts": dict(zip(names, counts)),
        "sample_ratio_p": srm,
        "metrics": results,
        "feedback": feedback,
        "sample_size": size,
    }
    report["verdict"] = verdict(report)
    return report


def verdict(report: dict) -> str:
    """A plain-language conclusion on the primary metric (and a warning on a sample-ratio mismatch)."""
    meta = report["meta"]
    names = [v["name"] for v in meta["variants"]]
    primary = meta["primary"]
    lines = []
    if np.isfinite(report["sample_ratio_p"]) and report["sample_ratio_p"] < 0.001:
        lines.append(
            f"warning: the assignment counts do not fit the traffic weights (p = "
            f"{report['sample_ratio_p']:.2g}); check the assignment before trusting the result."
        )
    if primary not in report["metrics"]:
        return "\n".join(lines + [f"no outcomes for the primary metric {primary}"])
    level = report["alpha"] / max(1, len(names) - 1)
    r = report["metrics"][primary]
    for v in names[1:]:
        c = r["versus_control"][v]
        a, b = r["arms"][names[0]]["mean"], r["arms"][v]["mean"]
        if not np.isfinite(c["p"]):
            n_a, n_b = r["arms"][names[0]]["n"], r["arms"][v]["n"]
            lines.append(
                f"cannot compare {v} with {names[0]} on {primary}: {n_b} and {n_a} users with outcomes "
                "(the test needs at least 2 per arm, with some variation)."
            )
        elif c["p"] < level:
            better, worse = (v, names[0]) if c["diff"] > 0 else (names[0], v)
            means = {names[0]: a, v: b}
            lines.append(
                f"{better} beats {worse} on {primary}: {means[better]:.4f} vs {means[worse]:.4f} "
                f"({v} - {names[0]} = {c['diff']:+.4f}, bootstrap CI {c['diff_ci'][0]:+.4f} to "
                f"{c['diff_ci'][1]:+.4f}), Welch p = {c['p']:.2g} < {level:.3g}."
            )
        else:
            line = (
                f"no significant difference between {v} and {names[0]} on {primary}: {b:.4f} vs {a:.4f}, "
                f"Welch p = {c['p']:.2g} (level {level:.3g})."
            )
            size = report["sample_size"]
            if size and size["per_arm"] and v == names[1]:
                line += (
                    f" Detecting a difference of {size['effect']:.4f} with {size['power']:.0%} power "
                    f"would take about {size['per_arm']:,} users per arm."
                )
            lines.append(line)
    return "\n".join(lines)
