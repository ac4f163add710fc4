"""``fastmf train DATA --cluster local:N|tcp://HOST:PORT``: training on a Dask cluster
(:mod:`fastmf.drivers.distributed`).

Loaded only when ``--cluster``, ``--checkpoint`` or ``--resume`` is given, so the other commands never
import Dask.
"""

from __future__ import annotations

import os

import click

from fastmf.cli.options import emit_json
from fastmf.common.errors import FastMFError
from fastmf.data_prep.partitions import open_partitions
from fastmf.drivers.distributed import SUPPORTED, Cluster
from fastmf.drivers.distributed import fit as cluster_fit

#: flags of a local train that a cluster run does not take, with the value that means "not given"
LOCAL_ONLY = {
    "compare_als": False,
    "ranking": False,
    "split": "random",
    "leave_k": None,
    "test_path": None,
    "item_features": None,
    "user_col": None,
    "item_col": None,
    "rating_col": None,
    "time_col": None,
    "sep": None,
    "rating_range": None,
    "weight_col": None,
    "implicit": False,
}


def _flag(name: str) -> str:
    return "--test" if name == "test_path" else "--" + name.replace("_", "-")


def train_on_cluster(
    model, data, spec, checkpoint_dir, checkpoint_every, resume, out_dir, replacing, as_json, quiet, kw
) -> None:
    if spec is None:
        raise FastMFError(
            "--checkpoint and --resume apply to training on a cluster: add --cluster local:N or "
            "--cluster tcp://HOST:PORT"
        )
    if model.kind not in SUPPORTED:
        raise FastMFError(
            f"--cluster trains --model {', '.join(SUPPORTED)}; --model {model.kind} is not distributed yet"
        )
    for name, unset in LOCAL_ONLY.items():
        if name in kw and kw[name] != unset:
            raise FastMFError(
                f"{_flag(name)} does not apply with --cluster (a random split of DATA by --test-frac and --seed)"
            )
    if data is None:
        raise FastMFError("--cluster needs DATA: a folder written by fastmf prepare SOURCE OUT --partitions N")
    if os.path.isdir(data) and not os.path.isfile(os.path.join(data, "manifest.json")):
        raise FastMFError(f"{data}: not a partitioned folder: write one with fastmf prepare SOURCE OUT --partitions N")
    if resume and not os.path.isfile(os.path.join(checkpoint_dir or "", "checkpoint.json")):
        raise FastMFError("--resume needs --checkpoint DIR holding a checkpoint (written by a run with --checkpoint)")
    open_partitions(data)  # a mistaken DATA is reported before a cluster starts
    test_frac = 0.1 if kw.get("test_frac") is None else float(kw["test_frac"])
    seed = kw.get("seed")
    with Cluster(spec) as cluster:
        dashboard = cluster.dashboard
        if not quiet:
            click.echo(f"cluster {spec}: {cluster.workers} workers, dashboard {dashboard or 'none'}", err=True)

        def progress(record):
            if quiet:
                return
            fit = f"train RMSE {record['train_rmse']:.4f}" if "train_rmse" in record else f"loss {record['loss']:.4f}"
            test = f"  test RMSE {record['test_rmse']:.4f}" if "test_rmse" in record else ""
            click.echo(
                f"epoch {record['epoch']}/{model.epochs}  {record['seconds']:.2f} s  {fit}{test}  "
                f"moved {record['bytes_moved'] / 1e6:.1f} MB  dashboard {dashboard or 'none'}",
                err=True,
            )

        cluster_fit(
            model,
            data,
            cluster.client,
            test_frac=test_frac,
            seed=seed,
            callback=progress,
            checkpoint=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
        )
        workers = cluster.workers
    history = model.history_
    report = {
        "model": model.kind,
        "params": model.get_params(),
        "cluster": spec,
        "workers": workers,
        "dashboard": dashboard,
        "split": "random",
        "test_frac": test_frac,
        "seed": seed,
        "history": history,
        "epochs_run": len(history),
        "fit_seconds": model.fit_seconds_,
        "bytes_moved": int(sum(r.get("bytes_moved", 0) for r in history)),
    }
    for key in ("train_rmse", "test_rmse", "objective", "elbo", "loss"):
        if history and key in history[-1]:
            report[key] = history[-1][key]
    if checkpoint_dir:
        report["checkpoint"] = checkpoint_dir
    if out_dir:
        model.save(out_dir)
        report["model_dir"] = out_dir
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"{model.kind}: fitted on {spec} ({workers} workers) in {report['fit_seconds']:.2f} s, "
        f"{report['bytes_moved'] / 1e6:.1f} MB moved"
    )
    for key in ("train_rmse", "test_rmse", "loss"):
        if key in report:
            click.echo(f"{key:<12}{report[key]:.4f}")
    if out_dir:
        click.echo(f"saved to {out_dir}" + (" (replacing the model that was there)" if replacing else ""))
