"""Training on a Dask cluster (issue 16): a distributed fit equals the local fit on the same split, the
fitted model works as a local one, checkpoints resume to the same factors, a killed worker costs nothing
but time, and every mistake on the command line is one line. Tiny LocalClusters (threads, not processes,
except where a worker process must die)."""

from __future__ import annotations

import json
import os
import signal
import threading

import numpy as np
import pytest

pytest.importorskip("distributed")

from click.testing import CliRunner  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import fastmf  # noqa: E402
import fastmf.distributed as fd  # noqa: E402
from fastmf.cli import main  # noqa: E402
from fastmf.common.errors import FastMFError  # noqa: E402
from fastmf.data_prep.dataset import embedded_path  # noqa: E402
from fastmf.data_prep.prepare import prepare  # noqa: E402
from fastmf.data_prep.splits import random_split  # noqa: E402
from fastmf.data_prep.synth import SynthConfig, write_synth_partitioned  # noqa: E402
from fastmf.registry import build_model, load_model  # noqa: E402

FITTED = ("user_factors_", "item_factors_", "user_bias_", "item_bias_")


@pytest.fixture(scope="module")
def ml3(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("dist") / "ml3")
    prepare(embedded_path(), out, partitions=3)
    return out


@pytest.fixture(scope="module")
def synth2(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("dist") / "synth2")
    write_synth_partitioned(out, SynthConfig(users=400, items=150, ratings=12_000, seed=7), 2, chunk_ratings=5000)
    return out


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def local_fit(kind: str, folder: str, params: dict, test_frac: float = 0.1, seed: int = 42):
    split = random_split(fastmf.load_dataset(folder), test_frac, seed)
    return build_model(kind, {**params, "random_state": seed}).fit(split.train, split.test), split


def assert_same_fit(dist, local) -> None:
    for name in FITTED + (("user_cov_", "item_cov_", "tau_") if local.kind == "vi" else ()):
        np.testing.assert_allclose(getattr(dist, name), getattr(local, name), rtol=0, atol=1e-5, err_msg=name)
    assert dist.global_mean_ == pytest.approx(local.global_mean_, abs=1e-12)
    assert len(dist.history_) == len(local.history_)
    for d, s in zip(dist.history_, local.history_):
        assert d["train_rmse"] == pytest.approx(s["train_rmse"], abs=1e-6)
        assert d["test_rmse"] == pytest.approx(s["test_rmse"], abs=1e-6)
        for key in ("objective", "elbo", "lam"):
            if key in s:
                assert d[key] == pytest.approx(s[key], rel=1e-6), key
        assert d["bytes_moved"] > 0


@pytest.mark.parametrize(
    "kind, params",
    [
        ("als", {"factors": 8, "epochs": 4}),
        ("features", {"factors": 8, "epochs": 3, "feature_bias": True}),
        ("vi", {"factors": 6, "epochs": 3}),
    ],
)
def test_a_distributed_fit_equals_the_local_fit_on_ml_latest_small(ml3, client, kind, params):
    local, split = local_fit(kind, ml3, params)
    dist = fd.fit(build_model(kind, {**params, "random_state": 42}), ml3, client, test_frac=0.1)
    assert type(dist) is type(local)
    assert_same_fit(dist, local)
    assert dist.evaluate(split.test)["test_rmse"] == pytest.approx(local.evaluate(split.test)["test_rmse"], abs=1e-6)


@pytest.mark.parametrize(
    "kind, params",
    [
        ("als", {"factors": 6, "epochs": 3, "reg_scaling": "count"}),
        ("als", {"factors": 6, "epochs": 3, "solver": "cg", "cg_steps": 2}),
        ("bias", {"epochs": 3}),
        ("vi", {"factors": 4, "epochs": 3, "covariance": "diagonal", "learn_hyper": True}),
        ("vi", {"factors": 4, "epochs": 3, "learn_hyper": True, "reg_scaling": "count"}),
    ],
)
def test_a_distributed_fit_equals_the_local_fit_on_synthetic_data(synth2, client, kind, params):
    local, _ = local_fit(kind, synth2, params, test_frac=0.2, seed=3)
    dist = fd.fit(build_model(kind, {**params, "random_state": 3}), synth2, client, test_frac=0.2)
    assert_same_fit(dist, local)


def test_the_fitted_model_predicts_recommends_and_saves_as_a_local_one(ml3, client, tmp_path):
    local, split = local_fit("als", ml3, {"factors": 5, "epochs": 2})
    dist = fd.fit(build_model("als", {"factors": 5, "epochs": 2}), ml3, client)
    user = local.user_map_.ids[3]
    assert np.array_equal(dist.recommend(user, k=10)[0], local.recommend(user, k=10)[0])
    assert np.array_equal(dist.seen_indices_, local.seen_indices_)
    assert dist.rating_range_ == local.rating_range_
    assert list(dist.item_titles_) == list(local.item_titles_)
    dist.save(str(tmp_path / "m"))
    back = load_model(str(tmp_path / "m"))
    users, items = split.test.user_map.ids[:5], split.test.item_map.ids[:5]
    np.testing.assert_allclose(back.predict(users, items), local.predict(users, items), atol=1e-5)


@pytest.mark.parametrize("kind", ["als", "vi", "bpr"])
def test_checkpoints_resume_to_the_factors_of_an_undisturbed_run(synth2, client, tmp_path, kind):
    whole = fd.fit(build_model(kind, {"factors": 4, "epochs": 4}), synth2, client)
    ck = str(tmp_path / "ck")
    fd.fit(build_model(kind, {"factors": 4, "epochs": 2}), synth2, client, checkpoint=ck, checkpoint_every=2)
    resumed = fd.fit(build_model(kind, {"factors": 4, "epochs": 4}), synth2, client, checkpoint=ck, resume=True)
    for name in FITTED:
        assert np.array_equal(getattr(resumed, name), getattr(whole, name)), name
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3, 4]
    with pytest.raises(FastMFError, match="other hyperparameters"):
        fd.fit(build_model(kind, {"factors": 5, "epochs": 4}), synth2, client, checkpoint=ck, resume=True)


def test_dsgd_bpr_ranks_as_well_as_local_bpr_on_ml_latest_small(ml3, client):
    """DSGD (P x P strata, item groups drawn anew each epoch) against Hogwild BPR on the same split."""
    params = {"factors": 32, "epochs": 20, "lr": 0.1, "reg": 0.01, "random_state": 42}
    split = random_split(fastmf.load_dataset(ml3), 0.1, 42)
    local = build_model("bpr", params).fit(split.train)
    dist = fd.fit(build_model("bpr", params), ml3, client, test_frac=0.1)
    assert type(dist) is type(local)
    assert np.array_equal(dist.positive_indices_, local.positive_indices_)
    assert dist.samples_per_epoch_ == local.samples_per_epoch_
    auc_local, auc_dist = local.evaluate(split.test)["auc"], dist.evaluate(split.test)["auc"]
    assert auc_local > 0.9
    assert abs(auc_dist - auc_local) <= 0.01, (auc_dist, auc_local)
    assert all(r["bytes_moved"] > 0 and np.isfinite(r["loss"]) for r in dist.history_)


def test_models_not_distributed_and_early_stopping_are_refused(synth2, client):
    with pytest.raises(FastMFError, match="supports the models"):
        fd.fit(build_model("popular", {}), synth2, client)
    with pytest.raises(FastMFError, match="patience"):
        fd.fit(build_model("als", {"patience": 2}), synth2, client)


@pytest.mark.slow
def test_a_killed_worker_does_not_change_the_result(synth2):
    """Real worker processes: after the second epoch's record a timer SIGKILLs one while the third epoch's
    tasks run; what it held (blocks, factors) is recomputed by the scheduler (blocks reloaded from the
    folder; the nanny restarts the process) and the factors are those of an undisturbed run."""
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as c,
    ):
        whole = fd.fit(build_model("als", {"factors": 4, "epochs": 6}), synth2, c)
        pid = sorted(c.run(os.getpid).values())[0]
        timers = []

        def kill_soon(record):
            if record["epoch"] == 2:
                timers.append(threading.Timer(0.005, os.kill, (pid, signal.SIGKILL)))
                timers[0].start()

        disturbed = fd.fit(build_model("als", {"factors": 4, "epochs": 6}), synth2, c, callback=kill_soon)
        timers[0].join()
        assert pid not in c.run(os.getpid).values()  # the worker died (and was replaced)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(disturbed, name), getattr(whole, name), err_msg=name)


def test_train_cluster_on_the_command_line(synth2, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "train",
            synth2,
            "--cluster",
            "local:1",
            "--epochs",
            "2",
            "--factors",
            "3",
            "--json",
            "--out",
            str(tmp_path / "m"),
            "--checkpoint",
            str(tmp_path / "ck"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["workers"] == 1 and report["epochs_run"] == 2 and report["bytes_moved"] > 0
    assert report["dashboard"] and "test_rmse" in report
    assert "epoch 2/2" in result.stderr and "moved" in result.stderr and "dashboard" in result.stderr
    assert os.path.exists(tmp_path / "ck" / "checkpoint.npz")
    assert load_model(str(tmp_path / "m")).kind == "als"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "popular", "--cluster", "local:2"], "not distributed yet"),
        (["--cluster", "local:0"], "local:N needs N"),
        (["--cluster", "spark://x"], "--cluster must be"),
        (["--cluster", "local:1", "--split", "time"], "--split does not apply"),
        (["--cluster", "local:1", "--test", "x.csv"], "--test does not apply"),
        (["--checkpoint", "ck"], "apply to training on a cluster"),
        (["--resume"], "apply to training on a cluster"),
        (["--cluster", "local:1", "--resume"], "--resume needs --checkpoint DIR"),
        (["--cluster", "local:1", "--resume", "--checkpoint", "nowhere"], "--resume needs --checkpoint DIR"),
    ],
)
def test_command_line_mistakes_are_one_line(synth2, args, message):
    result = CliRunner().invoke(main, ["train", synth2, *args])
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_data_that_is_not_partitioned_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["train", str(tmp_path), "--cluster", "local:1"])
    assert result.exit_code != 0 and "not a partitioned folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_a_split_the_fit_is_that_of_the_whole_data(synth2, client):
    local = build_model("als", {"factors": 4, "epochs": 2}).fit(fastmf.load_dataset(synth2))
    dist = fd.fit(build_model("als", {"factors": 4, "epochs": 2}), synth2, client, test_frac=0.0)
    for name in FITTED:
        np.testing.assert_allclose(getattr(dist, name), getattr(local, name), rtol=0, atol=1e-5, err_msg=name)
    assert "test_rmse" not in dist.history_[-1]
    assert dist.history_[-1]["train_rmse"] == pytest.approx(local.history_[-1]["train_rmse"], abs=1e-6)
