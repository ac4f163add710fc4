"""Numerical safety: absurd hyperparameters, seeds and thread counts, memory and time blow-ups, fold-in
ratings off the training scale, strict JSON and empty A/B arms are refused up front with one line.

One test per point of the brief (each reproduced on the code before the fix), each checking the exit
status or exception, the one-line message and that no model folder (or A/B log) was written; plus a
hypothesis test that random hyperparameters inside the declared ranges either train to finite
parameters or stop with a :class:`DivergenceError`, and the divergence path of every iterative model.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmf
from fastmf.cli import main
from fastmf.common import jsonio
from fastmf.common.errors import DivergenceError, FastMFError
from fastmf.data_prep.dataset import Dataset
from fastmf.drivers import abtest as AB
from fastmf.drivers import bench as B
from fastmf.models import budget, hyper
from fastmf.models.als import ALSState
from fastmf.models.bpr import BPRState
from fastmf.models.features import FeatureState
from fastmf.models.vi import VIState
from fastmf.registry import model_class

FIXTURES = Path(__file__).parent / "fixtures"
ML_SMALL_RATINGS = "100,836"


# --------------------------------------------------------------------------- helpers


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *fragments) -> str:
    """The single ``fastmf: error:`` line of a refused command (exit status 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastmf: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def strict_json(text: str):
    """``json.loads`` that refuses the non-JSON constants NaN, Infinity and -Infinity."""

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def tiny_data() -> Dataset:
    """300 half-star ratings of 30 users and 24 items from a planted rank-3 model, with genres."""
    rng = np.random.default_rng(5)
    n_users, n_items = 30, 24
    u, v = rng.normal(0, 0.8, (n_users, 3)), rng.normal(0, 0.8, (n_items, 3))
    users, items = np.divmod(rng.choice(n_users * n_items, 300, replace=False), n_items)
    stars = np.clip(np.round(2 * (3.5 + (u[users] * v[items]).sum(1) + rng.normal(0, 0.5, 300))) / 2, 0.5, 5.0)
    genres = "abcde"
    pairs = [(i, genres[(i * k) % 5]) for i in range(n_items) for k in range(1, 2 + i % 3)]
    return Dataset.from_arrays(users, items, stars).with_features([p[0] for p in pairs], [p[1] for p in pairs])


TINY = tiny_data()


def learned_non_finite(model) -> list:
    """Names of learned float arrays or scalars holding a NaN or an infinity."""
    bad = []
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
            bad.append(name)
        elif isinstance(value, float) and not math.isfinite(value):
            bad.append(name)
    return bad


# --------------------------------------------------------------------------- 1. absurd hyperparameters


@pytest.mark.parametrize(
    "args, named",
    [
        (["--tau", "1e-20"], "--tau: tau must be a number in [1e-08, 1e+08], got 1e-20"),
        (["--lam", "1e30", "--tau", "1e-30"], "--lam: lam must be a number in [1e-08, 1e+08], got 1e+30"),
        (["--gamma", "-1"], "--gamma: gamma must be a number in [0, 1e+08]"),
        (["--model", "features", "--beta", "1e-30"], "--beta: beta must be a number in [1e-08, 1e+08]"),
        (["--model", "vi", "--tau", "1e-20"], "--tau: tau must be a number in [1e-08, 1e+08]"),
        (["--model", "bpr", "--lr", "1e6"], "--lr: lr must be a number in (0, 10], got 1000000.0"),
        (["--model", "bpr", "--init-std", "1e39", "--epochs", "0"], "--init-std: init_std must be a number in [0, 10]"),
        (["--model", "bpr", "--reg", "inf"], "--reg: reg must be a number in [0, 100], got inf"),
        (["--factors", "100000"], "--factors: factors must be an integer in [0, 4096], got 100000"),
        (["--epochs", "1000000000"], "--epochs: epochs must be an integer in [0, 100000], got 1000000000"),
    ],
)
def test_absurd_hyperparameters_are_refused_before_training(tmp_path, args, named):
    out = tmp_path / "model"
    one_line_error(cli("train", *args, "--out", out, "-q"), named)
    assert not out.exists()
    # the same range in Python: the declaration is the one source of both
    flag = named.split(":", 1)[0]
    name, raw = flag.lstrip("-").replace("-", "_"), args[args.index(flag) + 1]
    cls = model_class(args[1] if args[0] == "--model" else "als")
    value = int(raw) if cls.params[name].kind is int else float(raw)
    with pytest.raises(FastMFError, match=re.escape(f"{cls.__name__} {named.split(': ', 1)[1].split(', got')[0]}")):
        cls(**{name: value})


def _in_range(name, p):
    """Values of one declared hyperparameter inside its range (numbers: the edges and log-uniform draws);
    epochs and factors are capped so that each draw trains in milliseconds."""
    caps = {"epochs": 4, "factors": 6, "fold_in_passes": 3, "fold_in_samples": 10}
    if p.choices:
        return st.sampled_from(p.choices)
    if p.kind is bool:
        return st.booleans()
    if p.kind is int:
        return st.integers(int(p.low or 0), min(int(p.high), caps.get(name, int(p.high))))
    low = p.low if p.low > 0 else 1e-12
    draws = st.floats(math.log10(low), math.log10(p.high)).map(lambda x: min(max(10.0**x, p.low), p.high))
    edges = [p.high] if p.low_open else [p.low, p.high]
    return st.one_of(st.sampled_from(edges), draws.filter(lambda x: x > p.low or not p.low_open))


#: not drawn: early stopping needs its own split, and a random threshold leaves no positives (a user error)
NOT_DRAWN = ("patience", "validation_frac", "threshold")
ITERATIVE = (fastmf.ALS, fastmf.BiasOnly, fastmf.FeatureALS, fastmf.VI, fastmf.BPR)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_declared_setting_trains_to_finite_parameters_or_stops_with_divergence(data):
    cls = data.draw(st.sampled_from(ITERATIVE))
    params = data.draw(st.fixed_dictionaries({n: _in_range(n, p) for n, p in cls.params.items() if n not in NOT_DRAWN}))
    if cls is fastmf.BPR:
        params["threshold"] = 0.0
    try:
        model = cls(**params)
    except FastMFError:  # a refused combination (VI's learn_hyper with gamma 0)
        assert cls is fastmf.VI and params["learn_hyper"] and params["gamma"] < hyper.PRECISION_MIN
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            model.fit(TINY)
        except DivergenceError as exc:
            assert "diverged in epoch" in str(exc)
            assert not hasattr(model, "item_map_") and not hasattr(model, "user_factors_")  # nothing half-fitted
            return
    assert not learned_non_finite(model), (cls.__name__, params, learned_non_finite(model))
    assert all(math.isfinite(v) for r in model.history_ for k, v in r.items() if isinstance(v, float)), params


def _poison(state_cls, array_of):
    """A state ``epoch`` that sets one parameter to NaN in epoch 2 (as an overflow would)."""
    original = state_cls.epoch

    def epoch(self):
        out = original(self)
        self._poison_count = getattr(self, "_poison_count", 0) + 1
        if self._poison_count == 2:
            array_of(self)[0, 0] = np.nan
        return out

    return epoch


@pytest.mark.parametrize(
    "kind, state_cls, array_of",
    [
        ("als", ALSState, lambda s: s.user_factors),
        ("features", FeatureState, lambda s: s.item_factors),
        ("vi", VIState, lambda s: s.users.mean),
        ("bpr", BPRState, lambda s: s.item_factors),
    ],
)
def test_divergence_stops_training_and_saves_nothing(tmp_path, monkeypatch, kind, state_cls, array_of):
    monkeypatch.setattr(state_cls, "epoch", _poison(state_cls, array_of))
    out = tmp_path / "M"
    one_line_error(
        cli("train", "--model", kind, "--epochs", "4", "--out", out, "-q"),
        f"{kind} diverged in epoch 2 (non-finite parameters)",
    )
    assert not out.exists()
    model = model_class(kind)(epochs=4)
    fitted = model_class(kind)(epochs=1).fit(TINY)
    with pytest.raises(DivergenceError, match="epoch 2"):
        fitted.set_params(epochs=4).fit(TINY)  # a refit that diverges leaves no stale or NaN state behind
    assert not hasattr(fitted, "item_map_") and not hasattr(fitted, "item_factors_")
    with pytest.raises(FastMFError, match="not fitted"):
        fitted.recommend(0)
    with pytest.raises(DivergenceError):
        model.fit(TINY)


def test_bpr_unlikely_triples_do_not_fake_a_divergence():
    """Large initial factors make some triples' likelihood ~1e-170: the kernel's running product of the
    likelihoods underflowed to 0 (an infinite loss, reported as divergence at any learning rate)."""
    model = fastmf.BPR(factors=8, lr=1e-8, init_std=10.0, epochs=2, threshold=0).fit(TINY)
    assert all(math.isfinite(r["loss"]) for r in model.history_)


# --------------------------------------------------------------------------- 2. seeds and threads


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--seed", "-1"], "--seed must be an integer in [0, 9223372036854775807], got -1"),
        (
            ["train", "--model", "bpr", "--seed", str(2**64)],
            f"--seed must be an integer in [0, 9223372036854775807], got {2**64}",
        ),
        (["compare", "--seed", "-1"], "--seed must be an integer in [0, 9223372036854775807], got -1"),
        (["train", "--threads", "-1"], "--threads must be a non-negative integer (0: all cores), got -1"),
        (["bench", "--threads", "1,-2"], "--threads must be a non-negative integer (0: all cores), got -2"),
    ],
)
def test_bad_seeds_and_thread_counts_are_one_precise_line(tmp_path, args, message):
    out = tmp_path / "M"
    extra = ["--out", out] if args[0] == "train" else []
    assert one_line_error(cli(*args, *extra, "-q"), message) == f"fastmf: error: {message}"
    assert not out.exists()
    with pytest.raises(
        FastMFError, match=re.escape(f"BPR random_state must be an integer in [0, 9223372036854775807], got {2**64}")
    ):
        fastmf.BPR(random_state=2**64)
    with pytest.raises(FastMFError, match=r"random_state must be an integer in \[0, 9223372036854775807\], got -1"):
        fastmf.ALS(random_state=-1)
    with pytest.raises(FastMFError, match="threads must be a non-negative integer"):
        fastmf.set_threads(-1)


# --------------------------------------------------------------------------- 3. memory and time budgets


def test_memory_and_time_blow_ups_are_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: int(9.8e9))
    out = tmp_path / "M"
    # VI with full covariances at D = 512: about 32 GB for ml-latest-small (covariances, packed rows and
    # the items' moment accumulators)
    msg = one_line_error(
        cli("train", "--model", "vi", "--factors", "512", "--test-frac", "0", "--out", out, "-q"),
        "VI with D=512 full covariance needs about ",
        f"GB for {ML_SMALL_RATINGS} ratings, 9.8 GB are available: use --covariance diagonal or --factors <= ",
    )
    assert not out.exists()
    best = int(re.search(r"--factors <= (\d+)$", msg).group(1))
    data = fastmf.load_dataset()
    counts = np.diff(data.indptr)
    shape = budget.Shape(data.n_users, data.n_items, data.n_ratings, max(counts.max(), data.item_counts.max()))
    vi = fastmf.VI(factors=512)
    assert vi.training_cost(shape, best).bytes <= 9.8e9 < vi.training_cost(shape, best + 1).bytes
    assert vi.training_cost(shape).bytes > 20e9
    # the brief's 1.6 M ratings (synthetic scale 0.05: 10k users, 4.2k items): the covariances alone are 15 GB
    assert vi.training_cost(budget.Shape(10_048, 4_222, 1_600_010, 3_000)).bytes > 15e9
    # D = 4096 on 5,000 ratings: terabytes, refused in Python too, before anything is allocated
    small = data.subset(np.arange(data.n_ratings) < 5000)
    model = fastmf.VI(factors=4096)
    with pytest.raises(FastMFError, match=r"VI with D=4096 full covariance needs about [\d.]+ TB for 5,000 ratings"):
        model.fit(small)
    assert not hasattr(model, "item_map_")
    # ALS at D = 4096: an epoch of about 2.4e14 flops, hours at 20 GFLOP/s
    msg = one_line_error(
        cli("train", "--factors", "4096", "--test-frac", "0", "--out", out, "-q"),
        f"ALS with D=4096 needs about 2.4e+14 floating-point operations per epoch for "
        f"{ML_SMALL_RATINGS} ratings, about 3.3 hours at 20 GFLOP/s (the limit is 1 hour per "
        "epoch): use --factors <= ",
    )
    assert not out.exists()
    best = int(msg.rsplit(" ", 1)[1])
    als = fastmf.ALS(factors=4096)
    assert als.training_cost(shape, best).flops <= 3600 * 20e9 < als.training_cost(shape, best + 1).flops
    # an accepted but slow setting is announced (D = 1024: about 3.9e12 flops, 3 minutes an epoch)
    with pytest.warns(UserWarning, match=r"ALS with D=1024 needs about 3.9e\+12 .* an epoch may take about 3 "):
        fastmf.ALS(factors=1024)._check_budget(data)


def _cgroup_tree(root, proc_line, groups):
    """A fake ``/proc/self/cgroup`` holding ``proc_line`` and a cgroup mount at ``root`` with ``groups``:
    {relative folder: {file name: content}}."""
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cgroup").write_text(proc_line + "\n")
    for folder, files in groups.items():
        (root / "fs" / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / "fs" / folder / name).write_text(text)
    return str(root / "proc" / "cgroup"), str(root / "fs")


@pytest.mark.parametrize(
    "proc_line, groups, room",
    [
        # cgroup v2: the tightest limit on the path, less the usage that is not inactive file cache
        (
            "0::/a/b",
            {
                ".": {"memory.max": "max\n", "memory.current": "9000000000\n"},
                "a": {
                    "memory.max": "4000000000\n",
                    "memory.current": "1000000000\n",
                    "memory.stat": "anon 1\ninactive_file 250000000\n",
                },
                "a/b": {"memory.max": "max\n", "memory.current": "800000000\n"},
            },
            3_250_000_000,
        ),
        # cgroup v1: the memory controller's line; the root's near-2^63 "limit" is none
        (
            "5:cpu,cpuacct:/x\n4:memory:/x",
            {
                "memory": {"memory.limit_in_bytes": "9223372036854771712\n", "memory.usage_in_bytes": "5\n"},
                "memory/x": {
                    "memory.limit_in_bytes": "2000000000\n",
                    "memory.usage_in_bytes": "1500000000\n",
                    "memory.stat": "inactive_file 1\ntotal_inactive_file 500000000\n",
                },
            },
            1_000_000_000,
        ),
        # a container: its own group is the mount's root, the listed path does not exist under it
        ("0::/docker/abc", {".": {"memory.max": "3000000000", "memory.current": "1000000000"}}, 2_000_000_000),
        # over the limit: no room, never negative
        ("0::/", {".": {"memory.max": "1000", "memory.current": "5000"}}, 0),
        # no limit anywhere, or files that do not hold numbers: no cgroup bound
        ("0::/", {".": {"memory.max": "max", "memory.current": "12"}}, None),
        ("0::/", {".": {"memory.max": "lots", "memory.current": "12"}}, None),
        ("4:memory:/", {"memory": {"memory.limit_in_bytes": "", "memory.usage_in_bytes": "1"}}, None),
    ],
)
def test_available_memory_respects_the_cgroup_limit(tmp_path, monkeypatch, proc_line, groups, room):
    proc, mount = _cgroup_tree(tmp_path, proc_line, groups)
    monkeypatch.setattr(budget, "PROC_CGROUP", proc)
    monkeypatch.setattr(budget, "CGROUP_ROOT", mount)
    monkeypatch.setattr(budget, "_system_available", lambda: 2_500_000_000)
    assert budget.cgroup_room() == room
    assert budget.available_memory() == (2_500_000_000 if room is None else min(room, 2_500_000_000))


def test_no_cgroup_file_means_no_cgroup_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "PROC_CGROUP", str(tmp_path / "missing"))
    assert budget.cgroup_room() is None
    assert budget.available_memory() == budget._system_available()


def test_recommend_k_is_capped_at_the_catalogue(tmp_path):
    model = fastmf.ALS(factors=4, epochs=1).fit(TINY)
    seen = np.diff(model.seen_indptr_)
    items, scores = model.recommend(0, k=1_000_000_000)
    assert items.size == model.n_items - seen[0] and np.all(np.diff(scores) <= 0)
    idx, top = model.recommend_all(k=10**12, users=[0, 1])
    assert idx.shape == (2, model.n_items)
    items, _ = model.fold_in({0: 4.0}, k=10**9)
    assert items.size == model.n_items - 1
    path = tmp_path / "m"
    model.save(str(path))
    res = cli("recommend", path, "--user", "0", "-k", "1000000000", "--json")
    assert res.exit_code == 0, res.output
    assert len(strict_json(res.stdout)["recommendations"]) == model.n_items - seen[0]


# --------------------------------------------------------------------------- 4. fold-in ratings


def test_fold_in_ratings_are_checked_against_the_training_scale(tmp_path):
    path = tmp_path / "als"
    model = fastmf.ALS(factors=4, epochs=2).fit(TINY)
    assert model.rating_range_ == [0.5, 5.0]
    model.save(str(path))
    listing = sorted(p.name for p in tmp_path.iterdir())
    for value in ("nan", "inf", "1e9", "-1", "5.5"):
        one_line_error(
            cli("recommend", path, "--rate", f"1={value}"),
            f"the rating of item 1 must be within the training scale 0.5..5, got {float(value)!r}",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # nothing written
    assert cli("recommend", path, "--rate", "1=4.5").exit_code == 0
    loaded = fastmf.load_model(str(path))
    assert loaded.rating_range_ == [0.5, 5.0]
    for m in (model, loaded):
        with pytest.raises(FastMFError, match=r"item 1 must be within the training scale 0.5..5, got 9.0"):
            m.fold_in({1: 9.0})
    # a wider scale given with the data (or present in a scipy matrix) is kept and accepted
    wide = Dataset.from_arrays(TINY.user_of_entry, TINY.indices, TINY.data * 2, rating_range=(1.0, 10.0))
    assert fastmf.ALS(factors=2, epochs=1).fit(wide).fold_in({1: 9.0})[0].size
    # a model saved by fastmf 0.1 has no rating_range_: the MovieLens scale 0.5..5 applies
    old = fastmf.load_model(str(FIXTURES / "models-0.1" / "als"))
    assert not hasattr(old, "rating_range_")
    with pytest.raises(FastMFError, match="training scale 0.5..5, got 9.0"):
        old.fold_in({int(old.item_map_.ids[0]): 9.0})
    assert old.fold_in({int(old.item_map_.ids[0]): 4.0})[0].size
    # BPR on an implicit table: weights must be finite and positive, and every given item is liked
    implicit = Dataset.from_arrays(TINY.user_of_entry, TINY.indices, np.ones(TINY.n_ratings), rating_range=None)
    bpr = fastmf.BPR(factors=4, epochs=2).fit(implicit)
    assert bpr.rating_range_ is None
    for value in (float("nan"), float("inf"), 0.0, -2.0):
        with pytest.raises(FastMFError, match="weight of item 1 must be a finite positive number"):
            bpr.fold_in({1: value})
    assert bpr.fold_in({1: 1.0, 2: 3.0})[0].size


# --------------------------------------------------------------------------- 5. strict JSON


def test_json_output_is_strict_and_unavailable_metrics_are_null(tmp_path, monkeypatch):
    out = tmp_path / "M"
    # a test fraction so small that the test set is empty: test_rmse is not available
    res = cli("train", "--model", "vi", "--epochs", "1", "--test-frac", "0.000001", "--json", "-q", "--out", out)
    assert res.exit_code == 0, res.output
    report = strict_json(res.stdout)
    assert report["test_rmse"] is None and report["test_mae"] is None and report["mean_sd"] is None
    assert report["coverage_50"] is None and report["coverage_90"] is None  # not 0% coverage
    assert report["cold"]["test_ratings"] == 0
    assert all(r["test_rmse"] is None for r in report["history"])
    text = cli("train", "--model", "bias", "--epochs", "1", "--test-frac", "0.000001", "-q")
    assert text.exit_code == 0 and re.search(r"^test_rmse +n/a$", text.stdout, re.M), text.stdout
    model = fastmf.load_model(str(out))
    assert math.isnan(model.evaluate(fastmf.load_dataset().subset(np.zeros(100_836, dtype=bool)))["test_rmse"])
    # info on one rating: the log-log slopes are not available
    one = tmp_path / "one.csv"
    one.write_text("userId,movieId,rating\n1,1,4\n")
    res = cli("info", one, "--json")
    assert res.exit_code == 0, res.output
    info = strict_json(res.stdout)
    assert info["user_activity_loglog_slope"] is None
    # bench --json writes strict JSON too (the measurement itself is replaced by a record with gaps)
    record = {
        "model": "als",
        "backend": "numba",
        "factors": 2,
        "threads": 1,
        "ratings": 1,
        "epochs": 1,
        "epoch_seconds": 0.0,
        "compile_seconds": float("nan"),
        "first_epoch_seconds": 0.0,
        "fit_seconds": 0.0,
        "peak_rss_mb": 1.0,
        "numba_threading_layer": None,
        "scale": None,
        "params": {"factors": 2},
        "ratings_per_s": float("inf"),
    }
    monkeypatch.setattr(B, "run_subprocess", lambda cfg: dict(record, threads=cfg["threads"]))
    target = tmp_path / "bench.json"
    res = cli(
        "bench",
        "--data",
        one,
        "--factors",
        "2",
        "--threads",
        "1",
        "--backends",
        "numba",
        "--out",
        target,
        "--json",
        "-q",
    )
    assert res.exit_code == 0, res.output
    assert strict_json(target.read_text())[0]["ratings_per_s"] is None
    assert strict_json(res.stdout)["records"][0]["compile_seconds"] is None
    # the encoder: nested, NumPy and tuple values
    text = jsonio.dumps({"a": [np.float32("nan"), (1.5, -np.inf)], "b": np.array([1.0, np.nan]), "c": np.int64(3)})
    assert strict_json(text) == {"a": [None, [1.5, None]], "b": [1.0, None], "c": 3}


# --------------------------------------------------------------------------- 6. A/B traffic


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ab")
    paths = []
    for kind in ("bias", "als"):
        path = folder / kind
        assert cli("train", "--model", kind, "--epochs", "1", "--out", path, "-q").exit_code == 0
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    "traffic, message",
    [
        (
            "100,0",
            "--traffic: every weight must be a finite positive number (an arm with weight 0 gets no users to "
            "compare), got 100,0",
        ),
        ("-1,2", "--traffic: every weight must be a finite positive number"),
        ("nan,1", "--traffic: every weight must be a finite positive number"),
        ("inf,1", "--traffic: every weight must be a finite positive number"),
        ("50,30,20", "--traffic: expected 2 weights, one per arm, got 3 (50,30,20)"),
        ("99.9,0.1", "arm B got 0 of the 50 sampled users (traffic 99.9/0.1); each arm needs at least 2"),
    ],
)
def test_abtest_refuses_empty_or_malformed_arms(tmp_path, two_models, traffic, message):
    log = tmp_path / "log"
    one_line_error(cli("abtest", *two_models, "--traffic", traffic, "--users", "50", "--log", log, "-q"), message)
    assert not log.exists()
    with pytest.raises(FastMFError, match="every weight must be a finite positive number"):
        AB.experiment_weights([1.0, 0.0], 2)
