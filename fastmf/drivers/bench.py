"""``fastmf bench``: epoch time, throughput, compile time and peak memory per configuration.

Each configuration (model, backend, factors, threads) runs in a fresh
subprocess that loads the synthetic ml-32m-shaped set (generated once into a
cache folder, ``--scale`` to shrink it), fits a few epochs and reports:

* ``epoch_seconds``: median epoch time excluding the first epoch (which pays
  JIT compilation or cache loading); the NumPy backend runs a single epoch;
* ``ratings_per_s`` (``samples_per_s`` for BPR, ``positives_per_s`` for WRMF): training ratings,
  sampled triples or positives per second;
* ``compile_seconds``: the fit's time spent compiling kernels (0 when Numba's cache had them);
* ``peak_rss_mb``: the subprocess's peak resident memory (data loading included).

The numba/numpy speed ratio is computed between records of the same model and
factors measured in the same run.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from fastmf.common import jsonio
from fastmf.common.errors import FastMFError
from fastmf.common.files import atomic_file
from fastmf.common.threads import max_threads, set_threads
from fastmf.data_prep.dataset import load_dataset
from fastmf.data_prep.synth import GENERATOR_VERSION, SynthConfig, generate, write_synth
from fastmf.models import ALS
from fastmf.registry import build_model, model_class

SERIES = (0.125, 0.25, 0.5, 1.0)


def cache_dir() -> str:
    return os.environ.get("FASTMF_BENCH_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "fastmf", "bench"))


def synthetic_folder(scale: float, seed: int = 42, cache: str | None = None, log=None) -> str:
    """Path of the cached synthetic set at ``scale`` (generated on first use)."""
    folder = os.path.join(cache or cache_dir(), f"synth-v{GENERATOR_VERSION}-ml32m-x{scale:g}-seed{seed}")
    if not os.path.exists(os.path.join(folder, "manifest.json")):
        if log:
            log(f"generating the synthetic ml-32m shape at scale {scale:g} in {folder}")
        cfg = SynthConfig.scaled(scale, seed=seed)
        write_synth(folder, generate(cfg), cfg, force=True)
    return folder


def run_config(config: dict) -> dict:
    """Measure one configuration in this process (called in the worker subprocess)."""
    threads = set_threads(config["threads"])
    data = load_dataset(config["data"])
    params = dict(config.get("params", {}))
    params["backend"] = config["backend"]
    params["epochs"] = config["epochs"]
    model = build_model(config["model"], params)
    t0 = time.perf_counter()
    model.fit(data)
    total = time.perf_counter() - t0
    seconds = [r["seconds"] for r in model.history_]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    samples = getattr(model, "samples_per_epoch_", None)
    record = {
        "model": config["model"],
        "backend": config["backend"],
        "factors": params.get("factors"),
        "threads": threads,
        "ratings": data.n_ratings,
        "epochs": len(seconds),
        "epoch_seconds": steady,
        "compile_seconds": model.compile_seconds_,
        "first_epoch_seconds": seconds[0] + model.history_[0].get("compile_seconds", 0.0),
        "fit_seconds": total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "numba_threading_layer": numba.threading_layer() if config["backend"] == "numba" else None,
        "scale": config.get("scale"),
        "params": {k: v for k, v in params.items() if k not in ("backend", "epochs")},
    }
    cost = model.training_cost(model.data_shape(data))
    record["flops_per_epoch"], record["traffic_per_epoch"] = cost.flops, cost.traffic
    if samples is not None:  # BPR: sampled triples
        record["samples"] = int(samples)
        record["samples_per_s"] = samples / steady
    elif not model.rating_model:  # other rankers: the training positives
        record["positives"] = int(model.positive_indices_.size)
        record["positives_per_s"] = record["positives"] / steady
    else:
        record["ratings_per_s"] = data.n_ratings / steady
    for key in ("series", "params_note"):
        if key in config:
            record[key] = config[key]
    for key, value in model.history_[-1].items():
        if key not in ("epoch", "seconds") and isinstance(value, float) and np.isfinite(value):
            record[f"last_{key}"] = value
    return record


def machine_peak(seconds: float = 2.0) -> dict:
    """This machine's measured limits on all its ``cores``: ``peak_gflops``, the float32 multiply-add rate
    of a 2048 x 2048 matrix product through BLAS (``2 n^3`` flops, best of the runs that fit in
    ``seconds``), and ``bandwidth_gbs``, the rate of copying a 256 MB float32 array (bytes read plus
    bytes written), one slice per core, each copied by a thread of its own (NumPy releases the GIL)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    src = np.ones(64 << 20, dtype=np.float32)
    dst = np.empty_like(src)
    cores = max_threads()
    cuts = np.linspace(0, src.size, cores + 1).astype(np.int64)
    pool = ThreadPoolExecutor(cores)

    def copy():
        list(pool.map(lambda k: np.copyto(dst[cuts[k] : cuts[k + 1]], src[cuts[k] : cuts[k + 1]]), range(cores)))

    def best(fn) -> float:
        fn()  # warm up (thread pools, page faults)
        times, t_end = [], time.perf_counter() + seconds / 2
        while not times or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    try:
        return {
            "cores": cores,
            "peak_gflops": 2 * 2048**3 / best(lambda: a @ b) / 1e9,
            "bandwidth_gbs": 2 * src.nbytes / best(copy) / 1e9,
        }
    finally:
        pool.shutdown()


def add_roofline(records: list[dict], peak: dict) -> None:
    """Each record's achieved arithmetic rate and memory traffic (the model's counted flops and bytes per
    epoch, its ``training_cost``, over its epoch seconds) and each as a fraction of the cores it ran on
    (``peak * threads / cores``): ``peak_fraction`` of the multiply-add peak, ``bandwidth_fraction`` of the
    copy bandwidth. The larger fraction says which limit a kernel is nearer."""
    for r in records:
        share = min(r["threads"], peak["cores"]) / peak["cores"]
        r["gflops"] = r["flops_per_epoch"] / r["epoch_seconds"] / 1e9
        r["peak_fraction"] = r["gflops"] / (peak["peak_gflops"] * share)
        r["traffic_gbs"] = r.get("traffic_per_epoch", 0.0) / r["epoch_seconds"] / 1e9
        r["bandwidth_fraction"] = r["traffic_gbs"] / (peak["bandwidth_gbs"] * share)


def run_subprocess(config: dict) -> dict:
    """Run :func:`run_config` in a fresh interpreter so peak RSS and first-call cost are its own."""
    proc = subprocess.run(
        [sys.executable, "-m", "fastmf.drivers.bench", json.dumps(config)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise FastMFError(f"benchmark worker failed for {config['model']}/{config['backend']}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(
    model: str,
    scale: float,
    factors,
    threads,
    backends,
    epochs: int,
    numpy_epochs: int,
    series: bool,
    data: str,
    series_data=None,
    extra_params=None,
    balance_check: bool = False,
) -> list[dict]:
    """The list of configurations to measure."""
    configs = []
    base = dict(extra_params or {})
    if "factors" not in model_class(model).params:
        factors = [None]  # e.g. the bias-only model
    for d in factors:
        for backend in backends:
            for t in threads if backend == "numba" else threads[:1]:
                configs.append(
                    {
                        "model": model,
                        "backend": backend,
                        "threads": t,
                        "data": data,
                        "scale": scale,
                        "epochs": epochs if backend == "numba" else numpy_epochs,
                        "params": _with_factors(base, d),
                    }
                )
        if balance_check and "numba" in backends:
            configs.append(
                {
                    "model": model,
                    "backend": "numba",
                    "threads": max(threads),
                    "data": data,
                    "scale": scale,
                    "epochs": epochs,
                    "params": {**_with_factors(base, d), "work_split": "naive"},
                }
            )
    if series:
        for s, folder in (series_data or {}).items():
            configs.append(
                {
                    "model": model,
                    "backend": "numba",
                    "threads": max(threads),
                    "data": folder,
                    "scale": s,
                    "epochs": epochs,
                    "params": _with_factors(base, factors[0]),
                    "series": True,
                }
            )
    return configs


def companions(
    kind: str, configs: list[dict], scale, factors, threads, backends, epochs, numpy_epochs, data, extra: dict
) -> list[dict]:
    """Configurations measured beside ``kind``'s own: plain ALS at the same D and threads for the
    models whose target is a ratio to ALS (features, vi), and VI's other covariance option."""
    if kind not in ("features", "vi"):
        return configs
    als_extra = {k: v for k, v in extra.items() if k in ALS.params}
    out = plan("als", scale, factors, threads, backends, epochs, numpy_epochs, False, data, None, als_extra) + configs
    if kind == "vi" and "covariance" not in extra:
        out += plan(
            "vi",
            scale,
            factors,
            threads,
            backends,
            epochs,
            numpy_epochs,
            False,
            data,
            None,
            {**extra, "covariance": "diagonal"},
        )
    return out


def als_ratios(records: list[dict]) -> list[str]:
    """``vs_als`` (epoch time / ALS epoch time, same backend, D, threads and data) on non-ALS records."""
    lines = []
    for r in records:
        if r["model"] == "als" or _side_run(r):
            continue
        same = [
            x
            for x in records
            if x["model"] == "als"
            and not _side_run(x)
            and all(x[key] == r[key] for key in ("backend", "factors", "threads", "ratings"))
        ]
        if same:
            r["vs_als"] = r["epoch_seconds"] / same[0]["epoch_seconds"]
            note = " ".join(f"{k}={v}" for k, v in r.get("params", {}).items() if k != "factors")
            lines.append(
                f"{r['model']} {note} vs als epoch time ({r['backend']}, D={r['factors']}, "
                f"{r['threads']} threads): {r['vs_als']:.2f}x"
            )
    return lines


def _with_factors(params: dict, d) -> dict:
    return dict(params) if d is None else {**params, "factors": d}


def add_ratios(records: list[dict]) -> None:
    """``speedup_vs_numpy`` on numba records: numpy epoch time / numba epoch time, same run and shape."""
    for r in records:
        if r["backend"] != "numba" or _side_run(r):
            continue
        ref = [
            x
            for x in records
            if x["backend"] == "numpy"
            and x["model"] == r["model"]
            and x["factors"] == r["factors"]
            and x["ratings"] == r["ratings"]
        ]
        if ref:
            r["speedup_vs_numpy"] = ref[0]["epoch_seconds"] / r["epoch_seconds"]


def is_records(path: str) -> bool:
    """Whether ``path`` is a file of benchmark records written by :func:`write_records`."""
    try:
        with open(path) as fh:
            records = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(records, list) and all(
        isinstance(r, dict) and {"model", "backend", "epoch_seconds"} <= r.keys() for r in records
    )


def write_records(path: str, records: list[dict]) -> None:
    """Write the records as a JSON list (replacing only a file of records)."""

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(jsonio.dumps(records, indent=2))

    atomic_file(path, write, replaceable=is_records, what="benchmark record file")


def _side_run(record: dict) -> bool:
    """Whether a record is a scaling-series or naive-split run (not compared with the others)."""
    return bool(record.get("series")) or record.get("params", {}).get("work_split") == "naive"


if __name__ == "__main__":  # worker entry point: python -m fastmf.drivers.bench CONFIG_JSON
    print(json.dumps(run_config(json.loads(sys.argv[1]))))
