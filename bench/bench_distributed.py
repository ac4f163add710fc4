"""Distributed ALS (a Dask LocalCluster) against the single-process engine on the same cores (issue 16).

Not part of the default test run (bench/ is outside ``testpaths``). Run from the repository root:

    python3 bench/bench_distributed.py [--epochs 5] [--factors 20] [--model als] [--scale 1]
    python3 -m pytest bench/bench_distributed.py -p no:cacheprovider --benchmark-only
    python3 bench/bench_distributed.py --out-of-core FOLDER --workers 2 --memory-limit 3.5GB --epochs 2

The data is the synthetic ml-32m shape in the partitioned layout (2 blocks per side), generated on
first use into ``FASTMF_BENCH_CACHE`` (default ``~/.cache/fastmf/bench``) as
``synth-v3-ml32m-x{scale}-seed42-p2`` by ``fastmf synth --partitions 2`` (the ratings of the unpartitioned
``synth-v3-ml32m-x{scale}-seed42`` set). Measured, on the same data with no test split:

* single process, 2 Numba threads: ``model.fit`` on the folder loaded whole;
* LocalCluster of 2 worker processes x 1 thread: ``fastmf.distributed.fit``.

Each reports the median epoch seconds after the first (the updates only, as ``fastmf train``'s
history), the fit's wall seconds per epoch (metrics and, for the cluster, the round trips included),
the bytes moved per epoch (cluster) and the overhead ratio cluster / single process. The numbers are
those of this machine at the time of the run: other processes sharing the cores make them noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from fastmf.common.threads import set_threads
from fastmf.data_prep.dataset import load_dataset
from fastmf.data_prep.synth import GENERATOR_VERSION, SynthConfig, write_synth_partitioned
from fastmf.drivers.bench import cache_dir
from fastmf.registry import build_model

PARTITIONS = 2


def partitioned_folder(scale: float, seed: int = 42) -> str:
    folder = os.path.join(cache_dir(), f"synth-v{GENERATOR_VERSION}-ml32m-x{scale:g}-seed{seed}-p{PARTITIONS}")
    if not os.path.exists(os.path.join(folder, "manifest.json")):
        print(f"generating {folder}", file=sys.stderr)
        write_synth_partitioned(folder, SynthConfig.scaled(scale, seed=seed), PARTITIONS, force=True)
    return folder


def _steady(history) -> float:
    seconds = [r["seconds"] for r in history]
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def measure(model: str = "als", factors: int = 20, epochs: int = 5, scale: float = 1.0) -> dict:
    from distributed import Client, LocalCluster

    import fastmf.distributed as fd

    folder = partitioned_folder(scale)
    params = {"factors": factors, "epochs": epochs}
    threads = set_threads(2)
    data = load_dataset(folder)
    local = build_model(model, params)
    t0 = time.perf_counter()
    local.fit(data)
    local_total = time.perf_counter() - t0
    local_wall = local_total / epochs
    n_ratings = data.n_ratings
    del data
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        t0 = time.perf_counter()
        dist = fd.fit(build_model(model, params), folder, client, test_frac=0.0, keep_seen=False)
        total = time.perf_counter() - t0
        rss = client.run(_rss_mb)  # {worker address: (pid, RSS now)}
    moved = [r["bytes_moved"] for r in dist.history_]
    record = {
        "model": model,
        "factors": factors,
        "epochs": epochs,
        "ratings": n_ratings,
        "scale": scale,
        "single_threads": threads,
        "cluster": "LocalCluster 2 workers x 1 thread (processes)",
        "single_epoch_seconds": _steady(local.history_),
        "cluster_epoch_seconds": _steady(dist.history_),
        "single_wall_seconds_per_epoch": local_wall,
        "single_setup_and_metrics_seconds": local_total - sum(r["seconds"] for r in local.history_),
        "cluster_wall_seconds_per_epoch": total / epochs,
        "cluster_setup_seconds": total - sum(r["seconds"] + r["metrics_seconds"] for r in dist.history_),
        "cluster_metrics_seconds_per_epoch": statistics.median(r["metrics_seconds"] for r in dist.history_),
        "cluster_bytes_moved_per_epoch": statistics.median(moved),
        "cluster_worker_rss_mb_after": sorted(v[1] for v in rss.values()),
        "train_rmse_single": local.history_[-1]["train_rmse"],
        "train_rmse_cluster": dist.history_[-1]["train_rmse"],
    }
    record["overhead_ratio"] = record["cluster_epoch_seconds"] / record["single_epoch_seconds"]
    record["overhead_ratio_wall"] = record["cluster_wall_seconds_per_epoch"] / record["single_wall_seconds_per_epoch"]
    return record


def _rss_mb() -> tuple:
    """The worker's resident memory after training (not its peak: ``ru_maxrss`` of a forked worker
    starts from the parent's, here the single-process run's)."""
    import psutil

    return os.getpid(), psutil.Process().memory_info().rss / 2**20


class PeakRSS:
    """The largest resident memory of each worker process, polled every ``interval`` seconds (a worker's
    ``ru_maxrss`` is useless here: Linux keeps the parent's across fork and exec)."""

    def __init__(self, pids, interval: float = 0.2):
        import threading

        import psutil

        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(interval,), daemon=True)

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for pid, proc in self.procs.items():
                try:
                    self.peak[pid] = max(self.peak[pid], proc.memory_info().rss)
                except Exception:  # a worker that died and was replaced
                    pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def out_of_core(folder: str, workers: int = 2, memory_limit: str = "3.5GB", epochs: int = 2, factors: int = 20) -> dict:
    """ALS on a partitioned folder too large for one worker: ``workers`` worker processes of 1 thread, each
    limited to ``memory_limit`` (Dask spills and pauses past its fractions of it); the peak RSS per worker."""
    import dask
    from distributed import Client, LocalCluster

    import fastmf.distributed as fd
    from fastmf.data_prep.partitions import open_partitions

    parts = open_partitions(folder)
    # the limit is a hard ceiling: no spilling of blocks to disk (they would be reloaded every half-sweep)
    memory = {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": 0.92,
        "distributed.worker.memory.terminate": 0.97,
        # idle workers would steal the (input-less) block loading tasks and end up holding more blocks
        "distributed.scheduler.work-stealing": False,
    }
    with (
        dask.config.set(memory),
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        t0 = time.perf_counter()
        with PeakRSS(pids) as peak:
            model = fd.fit(
                build_model("als", {"factors": factors, "epochs": epochs}),
                folder,
                client,
                test_frac=0.0,
                keep_seen=False,
            )
        total = time.perf_counter() - t0
    return {
        "ratings": parts.n_ratings,
        "users": parts.n_users,
        "items": parts.n_items,
        "partitions": parts.count,
        "table_bytes_in_memory": 12 * parts.n_ratings,
        "workers": workers,
        "memory_limit": memory_limit,
        "epochs": epochs,
        "factors": factors,
        "epoch_seconds": [r["seconds"] for r in model.history_],
        "train_rmse": [r["train_rmse"] for r in model.history_],
        "bytes_moved_per_epoch": [r["bytes_moved"] for r in model.history_],
        "total_seconds": total,
        "worker_peak_rss_bytes": sorted(peak.peak.values()),
        "worker_memory_config": memory,
    }


def test_distributed_overhead(benchmark):
    import pytest

    pytest.importorskip("distributed")
    record = benchmark.pedantic(
        measure, kwargs={"scale": float(os.environ.get("FASTMF_BENCH_SCALE", "1.0"))}, rounds=1, iterations=1
    )
    benchmark.extra_info.update(record)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="als")
    parser.add_argument("--factors", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--out-of-core",
        metavar="FOLDER",
        default=None,
        help="Instead: ALS on this partitioned folder with --workers processes of --memory-limit each.",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="3.5GB")
    args = parser.parse_args()
    if args.out_of_core:
        print(
            json.dumps(
                out_of_core(args.out_of_core, args.workers, args.memory_limit, args.epochs, args.factors), indent=2
            )
        )
    else:
        print(json.dumps(measure(args.model, args.factors, args.epochs, args.scale), indent=2))
