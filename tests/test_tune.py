"""``fastmf tune`` searching by itself: the successive-halving schedule, the search ranges, the search
on real data (validation only, the defaults first, early stopping) and the parameters file round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from model_mixin import small_split  # noqa: F401 (fixture)

import fastmf
from fastmf.cli import main
from fastmf.common.errors import FastMFError
from fastmf.common.search import Choice, LogUniform, Ridge, sample, sample_near, typical_count
from fastmf.drivers import tune as tune_driver
from fastmf.drivers.tune import ETA, REFINE_WIDTH, halving_rungs, read_params, refine_count, search, write_params
from fastmf.registry import MODELS

# --------------------------------------------------------------------------- the schedule


def test_default_budget_schedule():
    assert halving_rungs(40, 20) == [(28, 2), (9, 7), (3, 20)]
    assert halving_rungs(1, 20) == [(1, 20)]
    assert halving_rungs(5, 20) == [(4, 7), (1, 20)]
    assert halving_rungs(10, None) == [(10, None)]


@given(budget=st.integers(1, 500), epochs=st.one_of(st.none(), st.integers(1, 200)))
def test_schedule_stays_within_budget_and_ends_with_full_training(budget, epochs):
    rungs = halving_rungs(budget, epochs)
    assert sum(n for n, _ in rungs) <= budget
    counts = [n for n, _ in rungs]
    assert counts == sorted(counts, reverse=True) and counts[-1] >= 1
    assert all(counts[j + 1] == max(1, counts[0] // ETA ** (j + 1)) for j in range(len(rungs) - 1))
    assert rungs[-1][1] == epochs
    if epochs is not None:
        lengths = [e for _, e in rungs]
        assert lengths == sorted(lengths) and lengths[0] >= 1
    # the budget is used: one more first-rung setting would not fit
    first = counts[0] + 1
    assert len(rungs) == 1 or sum(max(1, first // ETA**j) for j in range(len(rungs))) > budget


# --------------------------------------------------------------------------- the ranges


@given(u=st.floats(0.0, 1.0, exclude_max=True), low=st.floats(1e-4, 10), span=st.floats(1.0, 1e4))
def test_log_uniform_values_are_its_quantiles_and_stay_in_range(u, low, span):
    x = LogUniform(low, low * span).value(u, {})
    assert low * (1 - 1e-3) <= x <= low * span * (1 + 1e-3)
    assert math.log(x) == pytest.approx(math.log(low) + u * math.log(span), abs=1e-3)
    k = LogUniform(8, 128, integer=True).value(u, {})
    assert isinstance(k, int) and 8 <= k <= 128


@pytest.mark.parametrize("seed", range(5))
def test_draws_cover_every_range_evenly(seed):
    """A low-discrepancy sequence leaves no third of a budget's bins empty in any range or choice (27
    independent uniforms leave one of 9 bins empty about a third of the time)."""
    space = {
        "factors": LogUniform(1, 512),
        "tau": LogUniform(1e-3, 1e3),
        "lr": LogUniform(1.0, 1e9),
        "mode": Choice(tuple("abc")),
    }
    points = sample(space, 27, np.random.default_rng(seed), {})
    assert len(points) == 27 and len({tuple(p.values()) for p in points}) == 27
    for name, (low, high) in {"factors": (1, 512), "tau": (1e-3, 1e3), "lr": (1.0, 1e9)}.items():
        bins = np.clip(np.floor(9 * np.log([p[name] / low for p in points]) / math.log(high / low)), 0, 8)
        assert set(bins.astype(int)) == set(range(9)), name
    assert {p["mode"] for p in points} == set("abc")


def test_ridge_is_relative_to_lam_and_per_typical_count_under_count_scaling():
    space = {"tau": Ridge(0.5, 0.5), "reg_scaling": Choice(("none", "count"))}
    seen = set()
    for point in sample(space, 20, np.random.default_rng(0), {"lam": 0.2, "typical_count": 8.0}):
        assert list(point) == ["tau", "reg_scaling"]  # the declared order, choices drawn first
        expected = 0.2 * 0.5 / (8.0 if point["reg_scaling"] == "count" else 1.0)
        assert point["tau"] == pytest.approx(expected, rel=1e-3)
        seen.add(point["reg_scaling"])
    assert seen == {"none", "count"}


@given(seed=st.integers(0, 1000), width=st.floats(0.01, 0.5), where=st.floats(0.0, 1.0))
def test_draws_near_a_setting_stay_in_its_box_and_in_range(seed, width, where):
    """Each value moves at most ``width`` of its range's log-width from the centre, never outside the
    range (a centre at an edge stays at or inside it); choices stay; a Ridge's range is in its scheme's
    units."""
    space = {
        "factors": LogUniform(8, 128, integer=True),
        "tau": Ridge(0.1, 300.0),
        "reg_scaling": Choice(("none", "count")),
    }
    context = {"lam": 0.1, "typical_count": 25.0}
    center = sample(space, 1, np.random.default_rng(seed), context)[0]
    center["factors"] = int(round(8 * 16**where))
    unit = 0.1 / (25.0 if center["reg_scaling"] == "count" else 1.0)
    for point in sample_near(space, center, 12, np.random.default_rng(seed), context, width):
        assert point["reg_scaling"] == center["reg_scaling"]
        assert 8 <= point["factors"] <= 128
        assert abs(math.log(point["factors"] / center["factors"])) <= width * math.log(16) + math.log(1 + 1 / 8)
        assert unit * 0.1 * (1 - 1e-3) <= point["tau"] <= unit * 300.0 * (1 + 1e-3)
        assert abs(math.log(point["tau"] / center["tau"])) <= width * math.log(3000.0) + 1e-3


def test_typical_count_is_the_geometric_mean_of_the_median_counts():
    users = np.array([0, 2, 6, 16])  # counts 2, 4, 10: median 4
    items = np.array([0, 1, 10])  # counts 1, 9: median 5
    assert typical_count(users, items) == pytest.approx(math.sqrt(4 * 5))
    assert typical_count(np.array([0]), np.array([0, 0])) == 1.0


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_searched_name_is_a_hyperparameter_and_draws_are_valid(kind):
    cls = MODELS[kind]
    rng = np.random.default_rng(0)
    lam = cls.params["lam"].default if "lam" in cls.params else 1.0
    for point in sample(cls.search_space, 50, rng, {"lam": lam, "typical_count": 20.0}):
        cls(**point)  # every draw passes the model's declared ranges


# --------------------------------------------------------------------------- the search


@pytest.fixture(scope="module")
def als_search():
    data = fastmf.load_dataset()
    split = fastmf.random_split(data, 0.1, seed=42)
    calls = []
    result = search("als", split.train, split.test, 8, {"random_state": 42, "epochs": 9}, 0.1, 42, calls.append)
    return split, result, calls


def test_search_scores_on_validation_and_refits_the_winner(als_search):
    split, result, calls = als_search
    rows = result["rows"]
    assert calls == rows and result["search"]["fits"] == len(rows) <= 8
    assert [r["rung"] for r in rows] == sorted(r["rung"] for r in rows)
    # the defaults are the first setting tried
    defaults = fastmf.ALS()
    assert all(rows[0][k] == getattr(defaults, k) for k in ("factors", "tau", "gamma", "reg_scaling"))
    # the refinement rung: a quarter of the budget, around the halving's winner, as long as its last rung
    final = max(r["rung"] for r in rows)
    refined, halved = [r for r in rows if r["rung"] == final], [r for r in rows if r["rung"] == final - 1]
    assert result["search"]["fits"] == 8 and len(refined) == refine_count(8) == 2
    assert result["search"]["rungs"][-1] == {"settings": 2, "epochs": 9, "around_best": True}
    center = min(halved, key=lambda r: r["val_rmse"])
    for r in refined:
        assert r["epochs"] == halved[0]["epochs"] == 9 and r["reg_scaling"] == center["reg_scaling"]
        assert abs(math.log(r["tau"] / center["tau"])) <= REFINE_WIDTH * math.log(3000.0) + 1e-3
    best = min(refined + halved, key=lambda r: r["val_rmse"])
    assert result["best"]["val_rmse"] == best["val_rmse"]
    params = result["best"]["params"]
    assert all(params[k] == best[k] for k in ("factors", "tau", "gamma", "reg_scaling"))
    assert params["epochs"] == best["best_epoch"] <= 9
    # the final model is the winner refit on all of train for its best epoch count
    refit = fastmf.ALS(**params).fit(split.train)
    np.testing.assert_array_equal(refit.user_factors_, result["model"].user_factors_)
    assert result["best"]["test_rmse"] == pytest.approx(refit.evaluate(split.test)["test_rmse"])


def test_search_never_looks_at_the_test_set(als_search):
    split, result, _ = als_search
    blind = search("als", split.train, None, 8, {"random_state": 42, "epochs": 9}, 0.1, 42)
    assert blind["best"]["params"] == result["best"]["params"] and "test_rmse" not in blind["best"]
    assert [r["val_rmse"] for r in blind["rows"]] == [r["val_rmse"] for r in result["rows"]]


def test_a_row_scores_its_best_validation_epoch(als_search):
    split, result, _ = als_search
    row = result["rows"][3]
    params = {**{k: row[k] for k in ("factors", "tau", "gamma", "reg_scaling")}, "epochs": row["epochs"]}
    inner = fastmf.random_split(split.train, 0.1, seed=42 + 7)
    model = fastmf.ALS(random_state=42, **params).fit(inner.train, eval_set=inner.test)
    curve = [r["test_rmse"] for r in model.history_]
    assert row["val_rmse"] == pytest.approx(min(curve)) and row["best_epoch"] == int(np.argmin(curve)) + 1


def test_given_hyperparameters_are_not_searched(small_split):
    result = search("als", small_split.train, None, 4, {"random_state": 1, "epochs": 3, "factors": 5}, 0.1, 1)
    assert "factors" not in result["rows"][0] and "factors" not in result["search"]["searched"]
    assert result["best"]["params"]["factors"] == 5 and result["model"].user_factors_.shape[1] == 5
    with pytest.raises(FastMFError, match="nothing to search"):
        search("popular", small_split.train, None, 4, {}, 0.1, 1)
    with pytest.raises(FastMFError, match="every searched hyperparameter is fixed"):
        search("bias", small_split.train, None, 4, {"gamma": 1.0, "reg_scaling": "none"}, 0.1, 1)


def test_failed_fits_are_reported_and_skipped(small_split, monkeypatch):
    real = tune_driver._score

    def flaky(kind, params, split, early_stopping):
        if params["factors"] > 30:
            raise FastMFError("ALS diverged (simulated)")
        return real(kind, params, split, early_stopping)

    monkeypatch.setattr(tune_driver, "_score", flaky)
    result = search("als", small_split.train, None, 10, {"random_state": 3, "epochs": 3}, 0.1, 3)
    failed = [r for r in result["rows"] if "error" in r]
    assert failed and all(np.isnan(r["val_rmse"]) and "diverged" in r["error"] for r in failed)
    assert result["best"]["params"]["factors"] <= 30


def test_rankers_are_searched_by_validation_ndcg(small_split):
    result = search(
        "wrmf", small_split.train, small_split.test, 4, {"random_state": 0, "epochs": 3, "factors": 8}, 0.1, 0
    )
    assert result["metric"] == "ndcg@10" and "test_ndcg@10" in result["best"]
    final = result["rows"][-1]["rung"]
    last = [r for r in result["rows"] if r["rung"] >= final - 1]  # the halving's last rung and the refinement
    assert result["best"]["val_ndcg@10"] == max(r["val_ndcg@10"] for r in last)


# --------------------------------------------------------------------------- the parameters file


def _tune_to_file(runner, path, *extra):
    return runner.invoke(
        main, ["tune", "--budget", "4", "--epochs", "3", "--save-params", str(path), "--json", "-q", *extra]
    )


def test_save_params_then_train_with_them(tmp_path):
    runner = CliRunner()
    path = tmp_path / "best.json"
    res = _tune_to_file(runner, path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    kind, params = read_params(str(path))
    assert kind == "als" and params == out["best"]["params"]
    trained = runner.invoke(main, ["train", "--params", str(path), "--json", "-q"])
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["model"] == "als" and all(report["params"][k] == v for k, v in params.items())
    assert report["test_rmse"] == pytest.approx(out["best"]["test_rmse"], rel=1e-6)
    # a flag overrides the file; another model is refused
    override = json.loads(
        runner.invoke(main, ["train", "--params", str(path), "--factors", "3", "--json", "-q"]).stdout
    )
    assert override["params"]["factors"] == 3 and override["params"]["tau"] == params["tau"]
    wrong = runner.invoke(main, ["train", "--params", str(path), "--model", "bpr"])
    assert wrong.exit_code == 1 and "holds hyperparameters of --model als" in wrong.stderr
    # re-tuning into the same file replaces it; a file fastmf did not write is never replaced
    assert _tune_to_file(runner, path).exit_code == 0
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    refused = _tune_to_file(runner, notes)
    assert refused.exit_code == 1 and "not a fastmf parameters file" in refused.stderr
    assert notes.read_text() == '{"mine": 1}'


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not json", "invalid JSON"),
        (b'{"format": "fastmf-params", "version": 1, "model": "als", "params": {"tau": NaN}}', "NaN is not a number"),
        (b'{"format": "other"}', "not a fastmf parameters file"),
        (b"[1, 2]", "not a fastmf parameters file"),
        (b'{"format": "fastmf-params", "version": 2, "model": "als", "params": {}}', "version 2 is not supported"),
        (b'{"format": "fastmf-params", "version": 1, "model": "svd", "params": {}}', "unknown model 'svd'"),
        (b'{"format": "fastmf-params", "version": 1, "model": "als", "params": []}', "'params' must be an object"),
        (
            b'{"format": "fastmf-params", "version": 1, "model": "als", "params": {"lr": 0.1}}',
            "has no hyperparameter 'lr'",
        ),
        (b'{"format": "fastmf-params", "version": 1, "model": "als", "params": {"tau": -1}}', "tau must be"),
        (b'{"format": "fastmf-params", "version": 1, "model": "als", "params": {"factors": 2.5}}', "factors must be"),
        (b'{"format": "fastmf-params", "version": 1, "model": "als", "params": {"factors": "20"}}', "factors must be"),
        (b"\xff\xfe{}", "invalid JSON"),
        (b"{" + b" " * (2 << 20) + b"}", "larger than"),
    ],
)
def test_hostile_params_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    res = CliRunner().invoke(main, ["train", "--params", str(path), "--epochs", "1"])
    assert res.exit_code == 1, res.output
    assert message in res.stderr and str(path) in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune", "--grid", "lam=1", "--budget", "3"], "not both"),
        (["tune", "--model", "popular"], "nothing to search"),
        (["tune", "--budget", "0"], "--budget"),
        (["train", "--params", "no/such/file.json"], "cannot read"),
    ],
)
def test_tune_and_params_misuse_is_one_line(args, message):
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and message in res.output
    assert "Traceback" not in res.output


def test_write_params_round_trips_every_model_kind(tmp_path):
    for kind, cls in MODELS.items():
        path = tmp_path / f"{kind}.json"
        params = cls().get_params()
        write_params(str(path), kind, params, {})
        assert read_params(str(path)) == (kind, params)
