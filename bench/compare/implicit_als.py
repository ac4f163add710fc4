"""fastmf's WRMF beside implicit's AlternatingLeastSquares, measured in one run on the same positives.

Run in a throwaway environment (implicit is never a dependency of fastmf)::

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install implicit -e .
    OPENBLAS_NUM_THREADS=1 /tmp/peers/bin/python bench/compare/implicit_als.py --quality
    OPENBLAS_NUM_THREADS=1 /tmp/peers/bin/python bench/compare/implicit_als.py --speed --data SYNTH_FOLDER

``--quality``: ml-latest-small's default split (90/10, seed 42), positives = ratings >= 4; both
models are scored by fastmf's ranking evaluation (implicit's factors are put into a fastmf model).
``--speed``: seconds per epoch on the positives of DATA (the synthetic ml-32m shape by default),
for both solvers of each, on ``--threads`` threads. implicit takes the confidence as ``alpha' r``,
fastmf as ``1 + alpha r``: on binary positives implicit gets ``alpha' = 1 + alpha``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares

import fastmf
from fastmf.drivers.bench import synthetic_folder
from fastmf.metrics.ranking import positives


def implicit_model(args, use_cg: bool, iterations: int):
    # implicit 0.7 runs 3 conjugate-gradient steps per block (fastmf's default --cg-steps)
    return AlternatingLeastSquares(
        factors=args.factors,
        regularization=args.lam,
        alpha=1.0 + args.alpha,
        iterations=iterations,
        use_cg=use_cg,
        num_threads=args.threads,
        random_state=args.seed,
        dtype=np.float32,
    )


def user_items(data) -> sp.csr_matrix:
    pos = positives(data, args_threshold)
    return sp.csr_matrix(
        (np.ones(pos.n_ratings, dtype=np.float32), pos.indices, pos.indptr), shape=(pos.n_users, pos.n_items)
    )


def quality(args) -> list[dict]:
    data = fastmf.load_dataset()
    split = fastmf.random_split(data, 0.1, seed=42)
    rows = []
    for solver in ("cg", "cholesky"):
        ours = fastmf.WRMF(
            factors=args.factors,
            lam=args.lam,
            alpha=args.alpha,
            epochs=args.epochs,
            solver=solver,
            cg_steps=args.cg_steps,
            threshold=args.threshold,
            random_state=args.seed,
        ).fit(split.train)
        theirs = implicit_model(args, solver == "cg", args.epochs)
        theirs.fit(user_items(split.train), show_progress=False)
        shell = fastmf.WRMF(factors=args.factors, epochs=0, threshold=args.threshold).fit(split.train)
        shell.user_factors_ = np.ascontiguousarray(theirs.user_factors, dtype=np.float32)
        shell.item_factors_ = np.ascontiguousarray(theirs.item_factors, dtype=np.float32)
        for name, model in (("fastmf", ours), ("implicit", shell)):
            report = model.evaluate(split.test)
            rows.append(
                {
                    "library": name,
                    "solver": solver,
                    "auc": report["auc"],
                    "ndcg@10": report["ndcg@10"],
                    "precision@10": report["precision@10"],
                }
            )
    return rows


def speed(args) -> list[dict]:
    folder = args.data or synthetic_folder(1.0)
    data = fastmf.load_dataset(folder)
    fastmf.set_threads(args.threads)
    matrix = user_items(data)
    rows = []
    for solver in ("cg", "cholesky"):
        model = fastmf.WRMF(
            factors=args.factors,
            lam=args.lam,
            alpha=args.alpha,
            epochs=args.epochs + 1,
            solver=solver,
            cg_steps=args.cg_steps,
            threshold=args.threshold,
        ).fit(data)
        ours = statistics.median(r["seconds"] for r in model.history_[1:])  # the first epoch compiles
        times = []
        for iterations in (1, args.epochs + 1):
            theirs = implicit_model(args, solver == "cg", iterations)
            t0 = time.perf_counter()
            theirs.fit(matrix, show_progress=False)
            times.append(time.perf_counter() - t0)
        per_epoch = (times[1] - times[0]) / args.epochs
        rows.append(
            {
                "solver": solver,
                "positives": int(matrix.nnz),
                "fastmf_s": ours,
                "implicit_s": per_epoch,
                "implicit_over_fastmf": per_epoch / ours,
            }
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--data", default=None)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--cg-steps", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    args_threshold = args.threshold
    out = {}
    if args.quality:
        out["quality"] = quality(args)
    if args.speed:
        out["speed"] = speed(args)
    print(json.dumps(out, indent=1))
