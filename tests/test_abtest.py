"""A/B testing: hash assignment, held-out and planted outcomes, statistics, the log and the command.

Expected values come from independent computations: brute-force set arithmetic
for the ranking metrics, the planted model's normal CDF for simulated likes,
textbook formulas and published tables for the tests and sample sizes, and
Monte Carlo simulation for error rates.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from scipy import stats

import fastmf
from fastmf import load_model
from fastmf.cli import main
from fastmf.common.errors import FastMFError
from fastmf.data_prep.dataset import Dataset
from fastmf.data_prep.splits import random_split
from fastmf.data_prep.synth import SynthConfig, expected_rating, generate
from fastmf.drivers import abtest as AB
from fastmf.models.als import ALS, BiasOnly

# --------------------------------------------------------------------------- assignment


def test_hash_unit_is_the_documented_sha256_prefix():
    ids = [1, 42, "user-7", 10**12]
    digest = [hashlib.sha256(f"exp:{u}".encode()).hexdigest() for u in ids]
    expected = [int(h[:16], 16) // 2**11 / 2**53 for h in digest]
    assert AB.hash_unit("exp", np.asarray(ids, dtype=object)).tolist() == expected


def test_assignment_is_stable_across_processes():
    ids = np.arange(1, 2001)
    here = AB.assign(ids, "stable-salt", (0.3, 0.7))
    code = (
        "import numpy as np; from fastmf.drivers.abtest import assign; "
        "print(''.join(map(str, assign(np.arange(1, 2001), 'stable-salt', (0.3, 0.7)))))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == "".join(map(str, here))
    assert np.array_equal(here, AB.assign(ids, "stable-salt", (0.3, 0.7)))


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.2, 0.3, 0.5), (1, 1, 1, 1)])
def test_assignment_is_balanced_on_100k_ids(weights):
    ids = np.arange(100_000)
    variant = AB.assign(ids, "balance", weights)
    counts = np.bincount(variant, minlength=len(weights))
    expected = np.asarray(weights, dtype=float) / np.sum(weights) * ids.size
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_hash_units_are_uniform_and_salts_independent():
    ids = np.arange(100_000)
    u = AB.hash_unit("one", ids)
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    same = AB.assign(ids, "one") == AB.assign(ids, "two")
    # independent salts agree on half the users: binomial(1e5, 0.5) within 4 sd
    assert abs(same.mean() - 0.5) < 4 * math.sqrt(0.25 / ids.size)


def test_zero_weight_variant_gets_nobody_and_bad_weights_are_refused():
    assert set(AB.assign(np.arange(5000), "z", (1, 0, 1)).tolist()) == {0, 2}
    for bad in ((-1, 2), (0, 0), (float("nan"), 1)):
        with pytest.raises(FastMFError):
            AB.assign(np.arange(3), "z", bad)


# --------------------------------------------------------------------------- outcomes


def _brute_force(rec_row, test_items: dict, threshold: float, k: int) -> dict:
    """Held-out metrics of one user from plain Python sets and loops."""
    positives = {i for i, r in test_items.items() if r >= threshold}
    hits = [i >= 0 and i in positives for i in rec_row]
    dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(positives))))
    rated = [test_items[i] for i in rec_row if i >= 0 and i in test_items]
    return {
        "precision": sum(hits) / k,
        "ndcg": dcg / idcg if idcg else float("nan"),
        "heldout_rating": sum(rated) / len(rated) if rated else float("nan"),
        "likes": sum(hits),
        "dislikes": len(rated) - sum(hits),
        "like_rate": sum(hits) / len(rated) if rated else float("nan"),
    }


def test_ranking_outcomes_match_brute_force():
    rng = np.random.default_rng(3)
    n_users, n_items, k = 40, 30, 6
    users, items, ratings = [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=rng.integers(0, 12), replace=False)
        users += [u] * chosen.size
        items += chosen.tolist()
        ratings += (rng.integers(1, 11, chosen.size) / 2).tolist()
    test = Dataset.from_scipy(sp.csr_matrix((ratings, (users, items)), shape=(n_users, n_items)))
    assert test.n_users == n_users and test.n_ratings == len(ratings)
    sample = rng.choice(n_users, size=25, replace=False)
    rec = np.stack([rng.choice(n_items, size=k, replace=False) for _ in sample])
    rec[rng.random(rec.shape) < 0.1] = -1
    out = AB.ranking_outcomes(rec, sample, test, 4.0)
    for j, u in enumerate(sample):
        lo, hi = test.indptr[u], test.indptr[u + 1]
        truth = dict(zip(test.indices[lo:hi].tolist(), test.data[lo:hi].astype(float).tolist()))
        want = _brute_force(rec[j].tolist(), truth, 4.0, k)
        for name, value in want.items():
            assert out[name][j] == pytest.approx(value, nan_ok=True), (name, u)


@pytest.fixture(scope="module")
def synthetic():
    """A small planted data set, split 90/10 like `fastmf train`."""
    cfg = SynthConfig(users=1200, items=300, ratings=36_000, rank=6, seed=5)
    data = generate(cfg)
    ds = Dataset.from_arrays(data.user_ids, data.item_ids, data.ratings, data.timestamps)
    split = random_split(ds, 0.1, 42)
    return split, data.planted


@pytest.fixture(scope="module")
def synthetic_models(synthetic):
    split, _ = synthetic
    good = ALS(factors=6, epochs=8, random_state=1).fit(split.train)
    poor = BiasOnly(epochs=4).fit(split.train)
    return good, poor


def test_planted_outcomes_use_the_true_expectation_and_simulate_likes(synthetic, synthetic_models):
    split, planted = synthetic
    users = np.arange(0, 1200, 2)
    rec, _ = synthetic_models[0].recommend_indices(users, 10)
    ids_u = split.train.user_map.ids[users] - 1
    item_index = split.train.item_map.ids - 1
    out = AB.planted_outcomes(rec, ids_u, item_index, planted, 4.0, seed=11)
    truth = expected_rating(planted, np.repeat(ids_u, 10), item_index[rec.ravel()]).reshape(rec.shape)
    np.testing.assert_allclose(out["expected_rating"], truth.mean(axis=1), rtol=1e-5)
    assert np.all(out["likes"] + out["dislikes"] == 10)
    # P(like) = P(mu + b_u + b_i + U.V + sigma eps >= threshold - 1/4) under half-star rounding
    u, i = np.repeat(ids_u, 10), item_index[rec.ravel()]
    m = (
        planted["mu"]
        + planted["user_bias"][u]
        + planted["item_bias"][i]
        + np.einsum("ij,ij->i", planted["user_factors"][u], planted["item_factors"][i])
    )
    p = stats.norm.sf((3.75 - m) / planted["sigma"])
    assert abs(out["likes"].sum() - p.sum()) < 4 * math.sqrt(np.sum(p * (1 - p)))
    again = AB.planted_outcomes(rec, ids_u, item_index, planted, 4.0, seed=11)
    assert np.array_equal(again["likes"], out["likes"])


# --------------------------------------------------------------------------- statistics


def test_welch_matches_the_textbook_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40), rng.normal(0.3, 2, 70)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    r = AB.welch(a, b)
    assert r["t"] == pytest.approx(t) and r["df"] == pytest.approx(df)
    assert r["p"] == pytest.approx(2 * stats.t.sf(abs(t), df))


def test_mean_interval_is_the_t_interval():
    x = np.random.default_rng(1).exponential(size=30)
    r = AB.mean_interval(x, 0.1)
    half = stats.t.ppf(0.95, 29) * x.std(ddof=1) / math.sqrt(30)
    assert r["ci"] == pytest.approx([x.mean() - half, x.mean() + half])


def test_bootstrap_interval_agrees_with_normal_theory_and_is_seeded():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 3000), rng.normal(0.2, 1.5, 2000)
    lo, hi = AB.bootstrap_diff(a, b, 0.05, 2000, seed=9)
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    d = b.mean() - a.mean()
    assert lo == pytest.approx(d - 1.96 * se, abs=0.15 * se)
    assert hi == pytest.approx(d + 1.96 * se, abs=0.15 * se)
    assert AB.bootstrap_diff(a, b, 0.05, 2000, seed=9) == [lo, hi]


def test_chi_square_reproduces_the_ml25m_report():
    # ML-25M report: A 353 likes / 147 dislikes, B 305 / 195 -> chi2 ~ 9.82, p ~ 0.00173
    r = AB.chi_square([353, 305], [147, 195])
    assert r["chi2"] == pytest.approx(9.82, abs=0.005) and r["p"] == pytest.approx(0.00173, abs=5e-5)
    assert AB.chi_square([0, 0], [3, 4]) is None


@pytest.mark.parametrize("d, n", [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_sample_size_matches_published_power_tables(d, n):
    # two-sided two-sample t-test, alpha 0.05, power 0.8 (Cohen 1988; G*Power)
    assert AB.sample_size(d, 1.0, 0.05, 0.8) == n
    assert AB.sample_size(2 * d, 2.0, 0.05, 0.8) == n


def test_sample_size_gives_the_power_it_promises_by_simulation():
    n = AB.sample_size(0.5, 1.0, 0.05, 0.8)
    rng = np.random.default_rng(4)
    reps = 4000
    a, b = rng.normal(0, 1, (reps, n)), rng.normal(0.5, 1, (reps, n))
    power = np.mean(stats.ttest_ind(b, a, axis=1, equal_var=False).pvalue < 0.05)
    assert abs(power - 0.8) < 4 * math.sqrt(0.8 * 0.2 / reps)
    assert AB.sample_size(0.0, 1.0) is None


def test_aa_experiments_reject_at_about_alpha(synthetic, synthetic_models):
    """The same model in both arms, re-assigned under 400 salts: Welch rejects ~alpha of the time."""
    split, planted = synthetic
    model = synthetic_models[0]
    table, _ = AB.run_experiment([AB.Arm(model), AB.Arm(model)], split.train, None, planted, n_users=800, salt="aa")
    metric = np.asarray(table["metric"].to_pylist())
    users, outcome = np.asarray(table["user"].to_pylist()), table["outcome"].to_numpy()
    alpha, runs = 0.05, 400
    tolerance = 3.5 * math.sqrt(alpha * (1 - alpha) / runs)
    for name in ("expected_rating", "like_rate"):
        ids, y = users[metric == name], outcome[metric == name]
        rejections = 0
        for s in range(runs):
            arm = AB.assign(ids, f"aa-{s}")
            rejections += AB.welch(y[arm == 0], y[arm == 1])["p"] < alpha
        assert abs(rejections / runs - alpha) < tolerance, name


def test_planted_effect_is_detected(synthetic, synthetic_models):
    split, planted = synthetic
    good, poor = synthetic_models
    table, meta = AB.run_experiment(
        [AB.Arm(good, label="als"), AB.Arm(poor, label="bias")],
        split.train,
        split.test,
        planted,
        n_users=1000,
        salt="planted",
        k=10,
    )
    assert meta["mode"] == "planted" and meta["primary"] == "expected_rating"
    report = AB.analyze(table, meta, n_boot=500)
    r = report["metrics"]["expected_rating"]["versus_control"]["B"]
    assert r["diff"] < 0 and r["p"] < 1e-3 and r["diff_ci"][1] < 0
    assert report["verdict"].startswith("A beats B")
    assert report["feedback"]["test"]["p"] < 0.05
    assert sum(report["counts"].values()) == 1000


# --------------------------------------------------------------------------- experiment on real data


@pytest.fixture(scope="module")
def real_models(tmp_path_factory):
    """ALS and bias-only trained by `fastmf train` on the embedded data's default split."""
    root = tmp_path_factory.mktemp("abtest")
    runner = CliRunner()
    for kind, extra in (("als", ["--factors", "8", "--epochs", "6"]), ("bias", [])):
        res = runner.invoke(main, ["train", "--model", kind, "--out", str(root / kind), "-q", *extra])
        assert res.exit_code == 0, res.output
    return root


def test_split_must_match_the_models_training(real_models):
    model = load_model(str(real_models / "als"))
    data = fastmf.load_dataset()
    right, wrong = random_split(data, 0.1, 42), random_split(data, 0.1, 7)
    AB.check_trained_on(model, right.train, "A")
    other = BiasOnly(epochs=1).fit(wrong.train)
    with pytest.raises(FastMFError, match="model B was not trained on this split"):
        AB.run_experiment([AB.Arm(model), AB.Arm(other)], right.train, right.test, n_users=50)
    with pytest.raises(FastMFError, match="model A was not trained on this split"):
        AB.run_experiment([AB.Arm(model), AB.Arm(model)], wrong.train, wrong.test, n_users=50)


def test_cli_abtest_logs_and_reports(real_models, tmp_path):
    log = tmp_path / "log"
    args = [
        "abtest",
        str(real_models / "als"),
        str(real_models / "bias"),
        "--users",
        "300",
        "--salt",
        "cli",
        "--log",
        str(log),
        "--bootstrap",
        "300",
        "-q",
    ]
    res = CliRunner().invoke(main, args + ["--json"])
    assert res.exit_code == 0, res.output
    live = json.loads(res.stdout)
    assert sum(live["counts"].values()) == 300
    assert set(live["metrics"]) == {"precision@10", "ndcg@10", "heldout_rating", "like_rate"}
    assert live["metrics"]["ndcg@10"]["versus_control"]["B"]["diff"] < 0  # ALS ranks held-out positives better
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0 and "verdict:" in text.stdout and "sample ratio check" in text.stdout
    files = sorted(log.glob("*.parquet"))
    assert len(files) == 2  # one file per run
    import pyarrow.parquet as pq

    table = pq.read_table(files[0])
    assert table.schema.names == AB.LOG_SCHEMA.names
    assigned = table.filter(table["metric"].to_numpy(zero_copy_only=False) == "assigned")
    assert assigned.num_rows == 300
    units = AB.hash_unit("cli", np.asarray(assigned["user"].to_pylist()).astype(np.int64))
    assert np.allclose(units, assigned["outcome"].to_numpy())
    report = CliRunner().invoke(main, ["abtest", "--report", str(log), "--json", "--bootstrap", "300"])
    assert report.exit_code == 0, report.output
    runs = json.loads(report.stdout)["runs"]
    assert len(runs) == 2
    again = next(r for r in runs if r["run"] == live["run"])
    assert again["metrics"] == live["metrics"] and again["verdict"] == live["verdict"]


def test_cli_abtest_errors_are_one_line(real_models, tmp_path):
    runner = CliRunner()
    cases = [
        (["abtest", str(real_models / "als")], "give MODEL_A and MODEL_B"),
        (
            ["abtest", str(real_models / "als"), str(real_models / "bias"), "--seed", "7", "--log", str(tmp_path)],
            "model A was not trained on this split",
        ),
        (["abtest", "--report", str(tmp_path / "missing")], "no such A/B log"),
        (["abtest", str(real_models / "als"), str(real_models / "bias"), "--traffic", "1,x"], "--traffic"),
    ]
    bad = tmp_path / "bad.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), bad)
    cases.append((["abtest", "--report", str(bad)], "not a fastmf A/B log"))
    for args, message in cases:
        res = runner.invoke(main, args)
        assert res.exit_code == 1, (args, res.output)
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_abtest_on_a_synthetic_folder_uses_the_planted_truth(tmp_path):
    runner = CliRunner()
    syn = tmp_path / "syn"
    assert (
        runner.invoke(
            main, ["synth", str(syn), "--users", "600", "--items", "200", "--ratings", "15000", "--seed", "3"]
        ).exit_code
        == 0
    )
    for kind, extra in (("als", ["--factors", "6", "--epochs", "6"]), ("bias", [])):
        res = runner.invoke(main, ["train", str(syn), "--model", kind, "--out", str(tmp_path / kind), "-q", *extra])
        assert res.exit_code == 0, res.output
    res = runner.invoke(
        main,
        [
            "abtest",
            str(tmp_path / "als"),
            str(tmp_path / "bias"),
            str(syn),
            "--users",
            "400",
            "--salt",
            "syn",
            "--log",
            str(tmp_path / "log"),
            "--json",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["meta"]["mode"] == "planted"
    assert set(report["metrics"]) == {"expected_rating", "like_rate"}
    assert sum(report["counts"].values()) == 400
