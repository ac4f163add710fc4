"""fastmf beside LensKit's BiasedMF and implicit's BPR and ALS on one data folder, timed in one run.

The peers are never dependencies of fastmf: run this in a throwaway environment::

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install lenskit implicit -e .
    OPENBLAS_NUM_THREADS=1 /tmp/peers/bin/python bench/compare/peers.py [--data FOLDER] [--factors 20,64]

DATA is what ``fastmf bench --data`` takes (default: the synthetic ml-32m shape of ``fastmf bench``,
generated once into its cache). Every row runs on ``--threads`` threads in this one process, one
after the other, on the same ratings:

* explicit ALS with biases: fastmf's ``ALS`` (measured by :func:`fastmf.drivers.bench.run_config`,
  the code of ``fastmf bench``) against LensKit's ``BiasedMFScorer``, seconds per epoch (the median
  of the epochs after the first, which compiles);
* BPR on the ratings >= 4: fastmf's ``BPR`` against implicit's ``BayesianPersonalizedRanking``,
  sampled triples per second (implicit samples as many triples per epoch as there are positives);
* implicit-feedback ALS on the same positives: fastmf's ``WRMF`` (conjugate gradient) against
  implicit's ``AlternatingLeastSquares`` (conjugate gradient), seconds per epoch.

Prints a markdown table with the ratio of each pair measured in this run (``--json``: the records).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

import fastmf
from fastmf.drivers.bench import run_config, synthetic_folder
from fastmf.metrics.ranking import positives

THRESHOLD = 4.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ours(args, model: str, d: int, params: dict | None = None) -> dict:
    """One fastmf configuration, measured as ``fastmf bench`` measures it."""
    return run_config(
        {
            "model": model,
            "data": args.data,
            "threads": args.threads,
            "backend": "numba",
            "epochs": args.epochs + 1,
            "params": {"factors": d, **(params or {})},
        }
    )


def lenskit_als(args, data, d: int) -> float:
    """Median seconds per epoch of LensKit's BiasedMFScorer after the first (the first compiles)."""
    from lenskit.als import BiasedMFScorer
    from lenskit.data import from_interactions_df
    from lenskit.parallel import initialize
    from lenskit.training import TrainingOptions

    initialize(threads=args.threads)
    frame = pd.DataFrame({"user": data.user_of_entry, "item": data.indices, "rating": data.data})
    lk_data = from_interactions_df(frame, user_col="user", item_col="item", rating_col="rating")
    del frame
    scorer = BiasedMFScorer(features=d, epochs=args.epochs + 1)
    trainer = scorer.create_trainer(lk_data, TrainingOptions(rng=args.seed))
    seconds = []
    for _ in range(args.epochs + 1):
        t0 = time.perf_counter()
        trainer.train_epoch()
        seconds.append(time.perf_counter() - t0)
    trainer.finalize()
    return statistics.median(seconds[1:])


def implicit_per_epoch(cls, options: dict, matrix, epochs: int) -> float:
    """Seconds per epoch of an implicit model: a fit of ``epochs + 1`` iterations less one of 1 (its setup)."""
    times = []
    for iterations in (1, epochs + 1):
        model = cls(iterations=iterations, **options)
        t0 = time.perf_counter()
        model.fit(matrix, show_progress=False)
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / epochs


def main(args) -> dict:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    args.data = args.data or synthetic_folder(1.0, log=log)
    fastmf.set_threads(args.threads)
    data = fastmf.load_dataset(args.data)
    pos = positives(data, THRESHOLD)
    matrix = sp.csr_matrix(
        (np.ones(pos.n_ratings, dtype=np.float32), pos.indices, pos.indptr), shape=(pos.n_users, pos.n_items)
    )
    rows = []
    for d in args.factors:
        common = {"factors": d, "num_threads": args.threads, "random_state": args.seed}
        log(f"D={d}: fastmf ALS")
        als = ours(args, "als", d)["epoch_seconds"]
        log(f"D={d}: LensKit BiasedMF")
        lk = lenskit_als(args, data, d)
        rows.append(("ALS epoch (s)", d, als, "LensKit BiasedMF", lk, lk / als))
        log(f"D={d}: fastmf BPR")
        bpr = ours(args, "bpr", d, {"threshold": THRESHOLD})["samples_per_s"]
        log(f"D={d}: implicit BPR")
        theirs = matrix.nnz / implicit_per_epoch(BayesianPersonalizedRanking, common, matrix, args.epochs)
        rows.append(("BPR (M samples/s)", d, bpr / 1e6, "implicit BPR", theirs / 1e6, bpr / theirs))
        log(f"D={d}: fastmf WRMF (cg)")
        wrmf = ours(args, "wrmf", d, {"threshold": THRESHOLD, "solver": "cg"})["epoch_seconds"]
        log(f"D={d}: implicit ALS (cg)")
        options = {**common, "use_cg": True, "dtype": np.float32}
        theirs = implicit_per_epoch(AlternatingLeastSquares, options, matrix, args.epochs)
        rows.append(("WRMF epoch (s)", d, wrmf, "implicit ALS", theirs, theirs / wrmf))
    return {
        "data": args.data,
        "ratings": data.n_ratings,
        "positives": int(matrix.nnz),
        "threads": args.threads,
        "epochs": args.epochs,
        "rows": [
            {"work": w, "factors": d, "fastmf": f, "peer": p, "peer_value": v, "fastmf_advantage": r}
            for w, d, f, p, v, r in rows
        ],
    }


def markdown(report: dict) -> str:
    lines = ["| work | D | fastmf | peer | peer's | fastmf's advantage |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(
            f"| {r['work']} | {r['factors']} | {r['fastmf']:.3g} | {r['peer']} | {r['peer_value']:.3g} | "
            f"{r['fastmf_advantage']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a folder or file fastmf reads (default: synthetic ml-32m)")
    parser.add_argument(
        "--factors", type=lambda s: [int(x) for x in s.split(",")], default=[20, 64], help="comma-separated D"
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one untimed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true")
    parsed = parser.parse_args()
    report = main(parsed)
    print(json.dumps(report, indent=1) if parsed.json else markdown(report))
