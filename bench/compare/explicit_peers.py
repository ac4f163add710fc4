"""fastmf's rating models beside LensKit, cornac and Surprise, each tuned its own way, on one split.

One command (fastmf's own environment drives; the peers run in a throwaway one and are never
dependencies of fastmf)::

    python3 -m venv /tmp/venv-peers
    /tmp/venv-peers/bin/pip install scikit-surprise cornac lenskit pandas
    /work/venv/bin/python bench/compare/explicit_peers.py --save /tmp/peers.json       # markdown table
    /work/venv/bin/python bench/compare/explicit_peers.py --json                       # JSON on stdout
    /work/venv/bin/python bench/compare/explicit_peers.py --quick                      # smoke test (~2 min)

``--peers-python`` names the throwaway interpreter (default ``/tmp/venv-peers/bin/python``); fastmf
is run as ``python -m fastmf`` with the interpreter running this script.

Protocol.

* Split: ``fastmf.random_split(load_dataset(DATA), 0.1, seed=42)``, the default split of ``fastmf
  train`` and ``fastmf tune`` (ml-latest-small when ``--data`` is omitted), written as ``train.csv``
  and ``test.csv`` (``user,item,rating``, original ids) to ``--export`` (a temporary folder by default).
  Every peer reads those two files and tunes on ``train.csv`` only; the test rows are used once, to
  score the refitted winner.
* fastmf rows are the commands a user types, run on the same split: ``fastmf tune --budget 40``
  (ALS searching D, tau, gamma and the ridge scaling by itself: successive halving with early
  stopping on a 10% validation split carved from train, the winner refit on all of train), ``fastmf
  train --model vi --learn-hyper`` (VI learning lam, gamma and a per-dimension tau by empirical
  Bayes: no search) and ``fastmf train`` (ALS defaults, for reference). Each also writes its model
  (the tuned one through ``tune --save-params`` and ``train --params``), which predicts the rows of
  ``test.csv``; the RMSE of those predictions must equal the command's own ``test_rmse``, which
  checks that the exported test set is fastmf's.
* Surprise SVD and SVD++: ``GridSearchCV`` with 3-fold CV on train (``KFold(3, shuffle)``) over
  n_factors, n_epochs, lr_all and reg_all (SVD++'s grid small: one fit takes ~50 s here), the best
  by mean CV RMSE refit on all of train (``build_full_trainset``), then ``algo.test``.
* cornac MF (``use_bias=True, early_stop=True``): ``cornac.hyperopt.GridSearch`` as in cornac's
  ``param_search`` example over k, lambda_reg, learning_rate and max_iter, scored by RMSE on a 10%
  validation set carved from train by cornac's own ``RatioSplit``; the best refit on all of train,
  test by ``model.rate``.
* LensKit ``BiasedMFScorer`` (ALS): a grid over embedding_size (features), regularization and bias
  damping, each setting trained epoch by epoch (up to ``--lk-epochs``) on a 10%
  ``lenskit.splitting.sample_records`` holdout of train and scored by RMSE after every epoch, stopped
  by LensKit's relative-plateau rule (3 epochs improving < 0.5%); the best (setting, epoch) refit on
  all of train. Test predictions come from ``predict_pipeline(scorer, fallback=True)``: what the
  ALS scorer cannot score (cold items) LensKit's ``BiasScorer`` fills in.

Every RMSE is computed here by one function over all test rows (the same denominator): ``test
RMSE`` on the predictions as each library serves them (Surprise and cornac clip to the rating scale,
fastmf and LensKit do not), ``clipped`` after clipping every library's to the scale, ``cold`` over
the test rows whose item has no training rating (a cold item gets ``mu + b_u`` from fastmf, Surprise
and LensKit, the global mean from cornac). ``seconds``: wall time of tuning + refit (+ predicting
the test rows); for fastmf, of the whole command (start-up, data loading and any kernel compilation
included). fastmf and LensKit use ``--threads`` threads, Surprise ``--jobs`` processes, cornac all
cores (OpenMP).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

PEERS_PYTHON = "/tmp/venv-peers/bin/python"
# What a user of each library would type, widened once where a first run's winner (chosen on train
# only) sat at an edge of the grid: Surprise SVD's factors, epochs, rate and reg_all, cornac's k and
# learning rate, LensKit's embedding size. SVD++'s grid stays small: one fit takes ~50 s here.
SURPRISE_GRIDS = {
    "SVD": {"n_factors": [50, 100, 200], "n_epochs": [20, 40], "lr_all": [0.01, 0.02], "reg_all": [0.05, 0.1, 0.15]},
    "SVDpp": {"n_factors": [20], "n_epochs": [20], "lr_all": [0.007], "reg_all": [0.05, 0.1]},
}
SURPRISE_QUICK = {
    "SVD": {"n_factors": [20], "n_epochs": [5], "lr_all": [0.005], "reg_all": [0.02, 0.1]},
    "SVDpp": {"n_factors": [5], "n_epochs": [2], "lr_all": [0.007], "reg_all": [0.02]},
}
CORNAC_GRID = {
    "k": [10, 30, 50, 100],
    "lambda_reg": [1e-1, 1e-2, 1e-3, 1e-4],
    "learning_rate": [0.002, 0.005, 0.01],
    "max_iter": [20, 50, 100],
}
CORNAC_QUICK = {"k": [10], "lambda_reg": [0.01, 0.1], "learning_rate": [0.01], "max_iter": [20]}
LENSKIT_GRID = {"embedding_size": [50, 100, 150], "regularization": [0.05, 0.1, 0.2], "damping": [5.0, 25.0]}
LENSKIT_QUICK = {"embedding_size": [10], "regularization": [0.1], "damping": [5.0, 25.0]}
PEERS = ("lenskit", "cornac", "surprise")


def grid_points(grid: dict) -> list[dict]:
    points = [{}]
    for name, values in grid.items():
        points = [{**p, name: v} for p in points for v in values]
    return points


def grid_text(grid: dict) -> str:
    return " ".join(f"{k}={','.join(map(str, v))}" for k, v in grid.items())


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# =========================================================================== peers (throwaway venv)
def peer_surprise(args, train_csv, test_csv, scale) -> list[dict]:
    import surprise
    from surprise import SVD, Dataset, Reader, SVDpp
    from surprise.model_selection import GridSearchCV, KFold

    reader = Reader(line_format="user item rating", sep=",", skip_lines=1, rating_scale=scale)
    data = Dataset.load_from_file(train_csv, reader)
    test_df = pd.read_csv(test_csv, dtype={"user": str, "item": str})
    testset = list(zip(test_df["user"], test_df["item"], test_df["rating"].astype(float)))
    grids = SURPRISE_QUICK if args.quick else SURPRISE_GRIDS
    rows = []
    for name, cls in (("SVD", SVD), ("SVDpp", SVDpp)):
        grid = {**grids[name], "random_state": [args.seed], **({"cache_ratings": [True]} if name == "SVDpp" else {})}
        n_points = math.prod(len(v) for v in grid.values())
        t0 = time.perf_counter()
        gs = GridSearchCV(
            cls, grid, measures=["rmse"], cv=KFold(3, random_state=args.seed, shuffle=True), n_jobs=args.jobs
        )
        gs.fit(data)
        params = gs.best_params["rmse"]
        algo = cls(**params).fit(data.build_full_trainset())
        pred = [p.est for p in algo.test(testset)]
        rows.append(
            {
                "library": f"Surprise {surprise.__version__}",
                "model": name,
                "tuning": f"GridSearchCV, 3-fold CV on train: {grid_text(grids[name])} ({n_points} settings)",
                "fits": 3 * n_points + 1,
                "params": {k: v for k, v in params.items() if k not in ("random_state", "cache_ratings")},
                "val": float(gs.best_score["rmse"]),
                "val_measure": "RMSE, mean of 3 CV folds of train",
                "seconds": time.perf_counter() - t0,
                "pred": pred,
            }
        )
        log(f"  Surprise {name}: {params} ({rows[-1]['seconds']:.0f} s)")
    return rows


def peer_cornac(args, train_csv, test_csv, scale) -> list[dict]:
    import cornac
    from cornac.data import Dataset
    from cornac.eval_methods import RatioSplit
    from cornac.hyperopt import Discrete, GridSearch
    from cornac.metrics import RMSE
    from cornac.models import MF

    train_df = pd.read_csv(train_csv, dtype={"user": str, "item": str})
    test_df = pd.read_csv(test_csv, dtype={"user": str, "item": str})
    triples = list(zip(train_df["user"], train_df["item"], train_df["rating"].astype(float)))
    grid = CORNAC_QUICK if args.quick else CORNAC_GRID
    n_points = math.prod(len(v) for v in grid.values())
    t0 = time.perf_counter()
    # cornac's own splitter carves the validation set out of train (its "test" part is that validation set)
    carve = RatioSplit(triples, test_size=0.1, exclude_unknowns=False, seed=args.seed, verbose=False)
    base = MF(use_bias=True, early_stop=True, seed=args.seed, verbose=False)
    gs = GridSearch(model=base, space=[Discrete(k, v) for k, v in grid.items()], metric=RMSE(), eval_method=carve)
    gs.fit(carve.train_set, carve.test_set)
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in gs.best_params.items()}
    full = Dataset.build(triples, seed=args.seed)
    model = MF(use_bias=True, early_stop=True, seed=args.seed, verbose=False, **params).fit(full)
    uid, iid = full.uid_map, full.iid_map
    pred = [float(model.rate(uid.get(u, -1), iid.get(i, -1))) for u, i in zip(test_df["user"], test_df["item"])]
    seconds = time.perf_counter() - t0
    log(f"  cornac MF: {params} ({seconds:.0f} s)")
    return [
        {
            "library": f"cornac {cornac.__version__}",
            "model": "MF (use_bias, early_stop)",
            "tuning": f"hyperopt.GridSearch, 10% of train (RatioSplit): {grid_text(grid)} ({n_points} settings)",
            "fits": n_points + 1,
            "params": params,
            "val": float(gs.best_score),
            "val_measure": "RMSE, 10% of train",
            "seconds": seconds,
            "pred": pred,
        }
    ]


def _lk_plateaued(history: list[float], min_improvement=0.005, check_iters=3, grace_period=3) -> bool:
    """LensKit's ``RelativePlateauStopper`` as its tuner configures it (RMSE: lower is better)."""
    if len(history) < grace_period:
        return False
    hist = np.asarray(history)
    best = np.minimum.accumulate(hist)
    improvement = -(hist[1:] / best[:-1] - 1.0)
    return bool(np.all(improvement[-check_iters:] < min_improvement))


def _lk_predict_fast(scorer, frame: pd.DataFrame, fallback: np.ndarray) -> np.ndarray:
    """What ``predict_pipeline(scorer)`` returns, vectorised: ``mu + b_u + b_i + p_u.q_i`` where the ALS
    scorer knows both ids, the fallback pipeline's predictions elsewhere (checked against the pipeline
    on the test set)."""
    u = scorer.users.numbers(frame["user_id"].to_numpy(), missing="negative")
    i = scorer.items.numbers(frame["item_id"].to_numpy(), missing="negative")
    known = (u >= 0) & (i >= 0)
    bias = scorer.bias
    out = fallback.astype(np.float64).copy()
    uk, ik = u[known], i[known]
    out[known] = (
        bias.global_bias
        + bias.item_biases[ik]
        + bias.user_biases[uk]
        + np.einsum("ij,ij->i", scorer.user_embeddings[uk], scorer.item_embeddings[ik])
    )
    return out


def peer_lenskit(args, train_csv, test_csv, scale) -> list[dict]:
    import lenskit
    from lenskit.als import BiasedMFScorer
    from lenskit.basic import BiasScorer
    from lenskit.batch import predict
    from lenskit.data import ItemListCollection, from_interactions_df
    from lenskit.parallel import initialize
    from lenskit.pipeline import predict_pipeline
    from lenskit.splitting import sample_records
    from lenskit.training import TrainingOptions

    initialize(threads=args.threads)
    t0 = time.perf_counter()
    train_df = pd.read_csv(train_csv)
    test_df = pd.read_csv(test_csv).rename(columns={"user": "user_id", "item": "item_id"})
    data = from_interactions_df(train_df, user_col="user", item_col="item", rating_col="rating")
    holdout = sample_records(data, round(0.1 * data.interaction_count), rng=args.seed)
    val_df = holdout.test_df[["user_id", "item_id", "rating"]].reset_index(drop=True)
    truth = val_df["rating"].to_numpy(np.float64)

    def fallback_predictions(train, frame):
        pipe = predict_pipeline(BiasScorer(), fallback=False)
        pipe.train(train)
        out = predict(pipe, ItemListCollection.from_df(frame, "user_id"), n_jobs=1).to_df()
        got = frame.merge(out[["user_id", "item_id", "score"]], on=["user_id", "item_id"], how="left")
        return got["score"].to_numpy(np.float64)

    val_fallback = fallback_predictions(holdout.train, val_df)
    grid = LENSKIT_QUICK if args.quick else LENSKIT_GRID
    max_epochs = 3 if args.quick else args.lk_epochs
    best = None
    epochs_run = 0
    points = grid_points(grid)
    for n, point in enumerate(points):
        scorer = BiasedMFScorer(epochs=max_epochs, user_embeddings="prefer", **point)
        trainer = scorer.create_trainer(holdout.train, TrainingOptions(rng=args.seed))
        history = []
        for epoch in range(1, max_epochs + 1):
            trainer.train_epoch()
            epochs_run += 1
            pred = _lk_predict_fast(scorer, val_df, val_fallback)
            history.append(float(np.sqrt(np.mean((pred - truth) ** 2))))
            if best is None or history[-1] < best[0]:
                best = (history[-1], point, epoch)
            if _lk_plateaued(history):
                break
        trainer.finalize()
        log(
            f"    LensKit {n + 1}/{len(points)} {point}: val RMSE {min(history):.4f} "
            f"(epoch {int(np.argmin(history)) + 1} of {len(history)}, {time.perf_counter() - t0:.0f} s)"
        )
    val_score, point, epochs = best
    scorer = BiasedMFScorer(epochs=epochs, user_embeddings="prefer", **point)
    pipe = predict_pipeline(scorer, fallback=True)
    pipe.train(data, TrainingOptions(rng=args.seed))
    out = predict(pipe, ItemListCollection.from_df(test_df, "user_id"), n_jobs=1).to_df()
    got = test_df.merge(out[["user_id", "item_id", "score"]], on=["user_id", "item_id"], how="left")
    pred = got["score"].to_numpy(np.float64)
    seconds = time.perf_counter() - t0
    check = _lk_predict_fast(scorer, test_df, fallback_predictions(data, test_df))
    if not np.allclose(check, pred, atol=1e-4):
        raise RuntimeError(
            f"LensKit: vectorised predictions differ from the pipeline's by {np.max(np.abs(check - pred)):.3g}"
        )
    params = {**point, "epochs": epochs}
    log(f"  LensKit BiasedMF: {params} ({seconds:.0f} s)")
    return [
        {
            "library": f"LensKit {lenskit.__version__}",
            "model": "BiasedMFScorer (ALS)",
            "tuning": (
                f"grid, 10% of train (sample_records), per-epoch RMSE, plateau stop, <= {max_epochs} "
                f"epochs: {grid_text(grid)} ({len(points)} settings)"
            ),
            "fits": len(points) + 1,
            "params": params,
            "val": val_score,
            "val_measure": "RMSE, 10% of train",
            "epochs_trained": epochs_run,
            "seconds": seconds,
            "pred": pred.tolist(),
        }
    ]


PEER_RUNNERS = {"surprise": peer_surprise, "cornac": peer_cornac, "lenskit": peer_lenskit}


def peer_main(args) -> None:
    """Run one peer (inside the throwaway environment; fastmf is not imported) and write its rows."""
    scale = tuple(float(x) for x in args.scale.split(","))
    rows = PEER_RUNNERS[args.peer](args, args.train, args.test, scale)
    with open(args.result, "w") as fh:
        json.dump(rows, fh, default=str)


# =========================================================================== driver (fastmf's venv)
def export(data_path, folder: str):
    """Write fastmf's default split of ``data_path`` as train.csv and test.csv."""
    import fastmf

    data = fastmf.load_dataset(data_path)
    split = fastmf.random_split(data, 0.1, seed=42)
    paths = []
    for name, part in (("train", split.train), ("test", split.test)):
        frame = pd.DataFrame(
            {
                "user": part.user_map.ids[part.user_of_entry],
                "item": part.item_map.ids[part.indices],
                "rating": part.data.astype(np.float64),
            }
        )
        path = os.path.join(folder, f"{name}.csv")
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1], tuple(float(x) for x in data.rating_range), split.cold_counts()


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2))) if len(truth) else float("nan")


def score(row: dict, test: pd.DataFrame, cold: np.ndarray, scale) -> dict:
    """The one place every RMSE is computed (all test rows, the same denominator)."""
    pred = np.asarray(row.pop("pred"), dtype=np.float64)
    if pred.shape != (len(test),) or not np.all(np.isfinite(pred)):
        raise RuntimeError(f"{row['library']} {row['model']}: {np.sum(~np.isfinite(pred))} missing predictions")
    truth = test["rating"].to_numpy(np.float64)
    clipped = np.clip(pred, *scale)
    return {
        **row,
        "test_rmse": rmse(pred, truth),
        "test_rmse_clipped": rmse(clipped, truth),
        "cold_rmse": rmse(clipped[cold], truth[cold]),
    }


def run_command(argv: list[str], cwd: str) -> tuple[dict, float]:
    """Run a fastmf command (from ``cwd``, so ``python -m fastmf`` is the installed fastmf) and parse its JSON."""
    log("  $ " + " ".join(argv))
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True, cwd=cwd)
    return json.loads(done.stdout), time.perf_counter() - t0


def run_fastmf(args, folder: str, test: pd.DataFrame) -> list[dict]:
    import fastmf

    fm = [sys.executable, "-m", "fastmf"]
    common = ["--threads", str(args.threads), "--seed", str(args.seed), "--json", "-q"]
    data = [os.path.abspath(args.data) if os.path.exists(args.data) else args.data] if args.data else []
    users, items = test["user"].to_numpy(), test["item"].to_numpy()
    rows = []

    def predictions(path: str, expected: float, what: str) -> list[float]:
        pred = fastmf.load_model(path).predict(users, items)
        got = rmse(pred, test["rating"].to_numpy(np.float64))
        if not math.isclose(got, expected, rel_tol=1e-5):
            raise RuntimeError(
                f"fastmf {what}: test RMSE {got} on test.csv, {expected} by the command "
                "(the exported split is not fastmf's)"
            )
        return pred.tolist()

    budget = 6 if args.quick else args.budget
    params_file = os.path.join(folder, "als-tuned.json")
    tuned, seconds = run_command(
        [*fm, "tune", *data, "--budget", str(budget), "--save-params", params_file, *common], folder
    )
    best = tuned["best"]
    refit, _ = run_command(
        [*fm, "train", *data, "--params", params_file, "--out", os.path.join(folder, "als-tuned"), *common], folder
    )
    if not math.isclose(refit["test_rmse"], best["test_rmse"], rel_tol=1e-5):
        raise RuntimeError(f"fastmf: train --params gives test RMSE {refit['test_rmse']}, tune {best['test_rmse']}")
    rungs = ", ".join(f"{r['settings']}x{r['epochs']}" for r in tuned["search"]["rungs"])
    keep = ("factors", "tau", "gamma", "reg_scaling", "lam", "epochs")
    rows.append(
        {
            "library": f"fastmf {fastmf.__version__}",
            "model": "ALS",
            "tuning": (
                f"fastmf tune --budget {budget}: searches {', '.join(tuned['search']['searched'])}, "
                f"halving (settings x epochs: {rungs}), 10% of train"
            ),
            "fits": tuned["search"]["fits"] + 1,
            "params": {k: best["params"][k] for k in keep},
            "val": best["val_rmse"],
            "val_measure": "RMSE, 10% of train",
            "seconds": seconds,
            "command": f"fastmf tune --budget {budget}",
            "command_test_rmse": best["test_rmse"],
            "pred": predictions(os.path.join(folder, "als-tuned"), best["test_rmse"], "tune"),
        }
    )

    vi, seconds = run_command(
        [*fm, "train", *data, "--model", "vi", "--learn-hyper", "--out", os.path.join(folder, "vi"), *common], folder
    )
    tau = np.asarray(vi["tau"], dtype=np.float64)
    rows.append(
        {
            "library": f"fastmf {fastmf.__version__}",
            "model": "VI (learn_hyper)",
            "tuning": "none: lam, gamma and a per-dimension tau learned by empirical Bayes",
            "fits": 1,
            "params": {
                "factors": vi["params"]["factors"],
                "epochs": vi["params"]["epochs"],
                "lam": round(vi["lam"], 4),
                "gamma": round(vi["gamma"], 4),
                "tau": f"{tau.min():.3g}..{tau.max():.3g}",
            },
            "tau": tau.tolist(),
            "seconds": seconds,
            "fit_seconds": vi["fit_seconds"],
            "compile_seconds": vi["compile_seconds"],
            "command": "fastmf train --model vi --learn-hyper",
            "command_test_rmse": vi["test_rmse"],
            "pred": predictions(os.path.join(folder, "vi"), vi["test_rmse"], "train --model vi"),
        }
    )

    als, seconds = run_command([*fm, "train", *data, "--out", os.path.join(folder, "als-default"), *common], folder)
    rows.append(
        {
            "library": f"fastmf {fastmf.__version__}",
            "model": "ALS (defaults, reference)",
            "tuning": "none",
            "fits": 1,
            "params": {k: als["params"][k] for k in keep},
            "seconds": seconds,
            "fit_seconds": als["fit_seconds"],
            "compile_seconds": als["compile_seconds"],
            "command": "fastmf train",
            "command_test_rmse": als["test_rmse"],
            "pred": predictions(os.path.join(folder, "als-default"), als["test_rmse"], "train"),
        }
    )
    return rows


def run_peer(args, name: str, train_csv: str, test_csv: str, scale, folder: str) -> list[dict]:
    result = os.path.join(folder, f"{name}.json")
    argv = [
        args.peers_python,
        os.path.abspath(__file__),
        "--peer",
        name,
        "--train",
        train_csv,
        "--test",
        test_csv,
        "--scale",
        f"{scale[0]},{scale[1]}",
        "--result",
        result,
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
        "--jobs",
        str(args.jobs),
        "--lk-epochs",
        str(args.lk_epochs),
    ]
    if args.quick:
        argv.append("--quick")
    log("  $ " + " ".join(argv))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run(argv, check=True, env=env, stdout=sys.stderr)
    with open(result) as fh:
        return json.load(fh)


def settings_text(params: dict) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, dict):
            return "/".join(fmt(x) for x in v.values())
        return str(v)

    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


def markdown(rows: list[dict]) -> str:
    head = [
        "library",
        "model",
        "tuning (on train only)",
        "fits",
        "tuned settings",
        "val RMSE",
        "test RMSE",
        "clipped",
        "cold-item RMSE",
        "seconds",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [
            r["library"],
            r["model"],
            r["tuning"],
            str(r["fits"]),
            settings_text(r["params"]),
            f"{r['val']:.4f}" if r.get("val") is not None else "-",
            f"{r['test_rmse']:.4f}",
            f"{r['test_rmse_clipped']:.4f}",
            f"{r['cold_rmse']:.4f}",
            f"{r['seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def fastmf_source() -> str:
    """The installed fastmf's folder and, if it is a git checkout, its commit (``+`` when modified)."""
    import fastmf

    where = os.path.dirname(os.path.dirname(os.path.abspath(fastmf.__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return where
    return f"{where} @ {commit}{'+' if dirty else ''}"


def driver_main(args) -> None:
    import fastmf  # noqa: F401  (fails early outside fastmf's environment)

    start = time.perf_counter()
    source = fastmf_source()  # before the fastmf commands run (an editable install can change under a long run)
    folder = args.export or tempfile.mkdtemp(prefix="fastmf-peers-")
    os.makedirs(folder, exist_ok=True)
    train_csv, test_csv, scale, cold = export(args.data, folder)
    train, test = pd.read_csv(train_csv), pd.read_csv(test_csv)
    cold_rows = ~test["item"].isin(set(train["item"])).to_numpy() | ~test["user"].isin(set(train["user"])).to_numpy()
    log(
        f"data: {args.data or 'ml-latest-small'}: train {len(train):,} / test {len(test):,} ratings in {folder}; "
        f"scale {scale}; {cold['cold_ratings']} cold test ratings ({cold['cold_item_ratings']} of unseen items, "
        f"{cold['cold_user_ratings']} of unseen users)"
    )
    only = [x.strip() for x in args.only.split(",")]
    rows = []
    for name in ("fastmf", *PEERS):
        if name not in only:
            continue
        log(f"{name}:")
        got = (
            run_fastmf(args, folder, test)
            if name == "fastmf"
            else run_peer(args, name, train_csv, test_csv, scale, folder)
        )
        for r in got:
            r = score(r, test, cold_rows, scale)
            log(
                f"  -> {r['library']} {r['model']}: test RMSE {r['test_rmse']:.4f} ({r['seconds']:.0f} s) "
                f"{settings_text(r['params'])}"
            )
            rows.append(r)
    report = {
        "data": args.data or "ml-latest-small",
        "split": "fastmf.random_split(data, 0.1, seed=42)",
        "train_csv": train_csv,
        "test_csv": test_csv,
        "train_ratings": len(train),
        "test_ratings": len(test),
        "cold": cold,
        "fastmf_source": source,
        "quick": args.quick,
        "threads": args.threads,
        "surprise_jobs": args.jobs,
        "total_seconds": time.perf_counter() - start,
        "rows": rows,
    }
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(markdown(rows))
        print(
            f"\n{report['data']}, fastmf's default split (random 90/10, seed 42): {len(train):,} training / "
            f"{len(test):,} test ratings, {cold['cold_item_ratings']} of them of items unseen in training; "
            f"total {report['total_seconds'] / 60:.1f} min."
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a rating source fastmf reads (default: ml-latest-small)")
    parser.add_argument(
        "--export", default=None, help="folder for train.csv, test.csv and the models (default: a temporary one)"
    )
    parser.add_argument(
        "--only", default=",".join(("fastmf", *PEERS)), help="comma-separated subset of fastmf," + ",".join(PEERS)
    )
    parser.add_argument("--peers-python", default=PEERS_PYTHON, help="the throwaway environment's python")
    parser.add_argument("--budget", type=int, default=40, help="fastmf tune --budget")
    parser.add_argument("--lk-epochs", type=int, default=20, help="LensKit: most epochs per setting")
    parser.add_argument("--threads", type=int, default=2, help="threads of fastmf and LensKit")
    parser.add_argument("--jobs", type=int, default=2, help="Surprise GridSearchCV n_jobs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="tiny grids and budgets (a smoke test)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of the markdown table")
    parser.add_argument("--save", default=None, help="also write the JSON report to this file")
    # one peer, run by the driver inside the throwaway environment
    parser.add_argument("--peer", choices=sorted(PEER_RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--test", help=argparse.SUPPRESS)
    parser.add_argument("--scale", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.peer:
        peer_main(parsed)
    else:
        driver_main(parsed)
