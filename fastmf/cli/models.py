"""Model commands: train, evaluate, recommend, similar, tune, compare."""

from __future__ import annotations

import click
import numpy as np

from fastmf.cli import main
from fastmf.cli.format import format_comparison, format_ranking, format_strata, format_uncertainty
from fastmf.cli.options import (
    check_seed,
    data_options,
    emit_json,
    input_paths,
    load_data,
    model_choice,
    model_options,
    output_options,
    pop_model_params,
    prepare_split,
    resolve_item,
    split_options,
    threads_option,
)
from fastmf.cli.progress import Progress
from fastmf.common.errors import FastMFError
from fastmf.common.files import check_target
from fastmf.common.threads import n_threads
from fastmf.drivers.compare import als_baseline
from fastmf.drivers.compare import compare as run_compare
from fastmf.drivers.train import train_report
from fastmf.drivers.tune import DEFAULT_BUDGET, is_params_file, parse_grid, parse_setting, read_params, write_params
from fastmf.drivers.tune import search as run_search
from fastmf.drivers.tune import tune as run_tune
from fastmf.models.io import is_model
from fastmf.models.vi import STRATEGIES
from fastmf.registry import build_model, load_model, model_class


@main.command()
@click.argument("data", required=False, type=click.Path())
@click.option(
    "--model", "kind", type=model_choice(), default=None, help="The model (default: that of --params, else als)."
)
@click.option(
    "--params",
    "params_file",
    type=click.Path(),
    default=None,
    help="Hyperparameters from a file written by tune --save-params (flags given here override them).",
)
@model_options
@split_options
@data_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),
    default=None,
    help="Save the fitted model to this file (replacing only a fastmf model there).",
)
@click.option(
    "--compare-als",
    is_flag=True,
    help="Also fit plain ALS with the same hyperparameters and split; RMSE per stratum side by side.",
)
@click.option(
    "--ranking",
    is_flag=True,
    help="Rating models: also report ranking metrics (positives: ratings >= --threshold, default 4).",
)
@click.option(
    "--cluster",
    default=None,
    metavar="local:N|tcp://HOST:PORT",
    help="Train on a Dask cluster (als, bias, features, vi, bpr by DSGD; needs the distributed extra): "
    "local:N starts N local workers, tcp://HOST:PORT uses a running scheduler. DATA: a folder "
    "written by prepare --partitions.",
)
@click.option(
    "--checkpoint",
    "checkpoint_dir",
    type=click.Path(),
    default=None,
    help="With --cluster: write the training state to this folder every --checkpoint-every epochs.",
)
@click.option(
    "--checkpoint-every", type=click.IntRange(1), default=1, show_default=True, help="Epochs between checkpoints."
)
@click.option("--resume", is_flag=True, help="With --cluster: continue from the state in --checkpoint.")
@threads_option
@output_options
def train(
    data,
    kind,
    params_file,
    out_dir,
    compare_als,
    ranking,
    as_json,
    quiet,
    forced_progress,
    cluster,
    checkpoint_dir,
    checkpoint_every,
    resume,
    **kw,
):
    """Train a model on DATA (default: the embedded ml-latest-small) and evaluate it.

    With --json one object goes to stdout: parameters, per-epoch history, final
    train/test metrics, fit seconds and counts of cold test ratings. Rankers
    (bpr, popular), and rating models with --ranking, report auc, sampled_auc
    and precision/recall/ndcg/map@K for K = 5, 10, 20.
    """
    saved_kind, saved = read_params(params_file) if params_file else (None, {})
    kind = model_class(kind or saved_kind or "als").kind
    if saved_kind is not None and saved_kind != kind:
        raise FastMFError(f"{params_file}: holds hyperparameters of --model {saved_kind}, not {kind}")
    params = {**saved, **{k: v for k, v in pop_model_params(kw, kind).items() if v is not None}}
    params["random_state"] = kw["seed"]
    threshold = 4.0 if params.get("threshold") is None else params["threshold"]
    if ranking and model_class(kind).rating_model:
        params.pop("threshold", None)  # for a rating model it only defines the positives of the ranking metrics
    model = build_model(kind, params)
    replacing = out_dir and check_target(out_dir, is_model, "model", protect=input_paths(data, kw))
    if cluster is not None or checkpoint_dir is not None or resume:
        from fastmf.cli.cluster import train_on_cluster

        train_on_cluster(
            model,
            data,
            cluster,
            checkpoint_dir,
            checkpoint_every,
            resume,
            out_dir,
            replacing,
            as_json,
            quiet,
            {"compare_als": compare_als, "ranking": ranking, **kw},
        )
        return
    train_set, test_set, info = prepare_split(data, kw, [kind])
    epochs = model.epochs if "epochs" in model.params else None
    with Progress(epochs, kind, "epoch", quiet, forced_progress) as progress:
        model.fit(train_set, eval_set=test_set, callback=progress.epoch)
    report = train_report(
        model, train_set, test_set, {**info, "threads": n_threads()}, ranking=ranking, threshold=threshold
    )
    if compare_als:
        with Progress(None, "plain als", "epoch", quiet, forced_progress) as progress:
            report["compare_als"] = als_baseline(model, train_set, test_set, progress.epoch)
    if out_dir:
        model.save(out_dir)
        report["model_dir"] = out_dir
    if as_json:
        emit_json(report)
        return
    backend = f", backend {model.backend}" if "backend" in model.params else ""
    compiled = (
        f", of which {report['compile_seconds']:.1f} s compiling kernels (first run only)"
        if report["compile_seconds"] >= 0.05
        else ""
    )
    click.echo(
        f"{kind}: fitted in {report['fit_seconds']:.2f} s{compiled} on {train_set.n_ratings:,} ratings "
        f"({report['threads']} threads{backend})"
    )
    if "best_epoch" in report:
        click.echo(
            f"early stopping: kept epoch {report['best_epoch']} (best validation RMSE) of {report['epochs_run']} run"
        )
    for key in ("train_rmse", "test_rmse", "test_mae", "loss", "coverage_50", "coverage_90"):
        if key in report:
            click.echo(f"{key:<12}{_metric(report[key])}")
    for line in format_ranking(report):
        click.echo(line)
    if "cold" in report:
        c = report["cold"]
        click.echo(
            f"cold test ratings: {c['cold_ratings']:,} of {c['test_ratings']:,} "
            f"(user unseen {c['cold_user_ratings']:,}, item unseen {c['cold_item_ratings']:,})"
        )
    if "rmse_by_stratum" in report:
        als = {"plain als": report["compare_als"]["rmse_by_stratum"]} if compare_als else {}
        click.echo(format_strata({kind: report["rmse_by_stratum"], **als}))
    if "uncertainty" in report:
        click.echo(format_uncertainty(report["uncertainty"]))
    if out_dir:
        click.echo(f"saved to {out_dir}" + (" (replacing the model that was there)" if replacing else ""))


@main.command()
@click.argument("model_dir", type=click.Path())
@click.argument("data", required=False, type=click.Path())
@data_options
@threads_option
@click.option(
    "--include-training",
    is_flag=True,
    help="Also score the ratings the model was trained on (optimistic; a warning says so).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def evaluate(model_dir, data, include_training, as_json, **kw):
    """Evaluate a saved model on DATA (default: the bundled ml-latest-small).

    Only ratings the model was not trained on are scored: on the data the model was split
    from, that is its held-out part. The output says how many ratings were scored and how
    many were training ratings.
    """
    model = load_model(model_dir)
    report = {
        "model": model.kind,
        "model_dir": model_dir,
        **model.evaluate(load_data(data, kw), include_training=include_training),
    }
    if as_json:
        emit_json(report)
        return
    trained = report["training_ratings"]
    what = ("including" if report["training_ratings_scored"] else "leaving out") + f" {trained:,} it was trained on"
    click.echo(f"scored {report['scored_ratings']:,} ratings of {data or 'the bundled data'} ({what})")
    width = max((len(k) for k, v in report.items() if isinstance(v, float)), default=0) + 2
    for key, value in report.items():
        if isinstance(value, float):
            click.echo(f"{key:<{width}}{_metric(value)}")
    if "rmse_by_stratum" in report:
        click.echo(format_strata({model.kind: report["rmse_by_stratum"]}))


def _metric(value: float) -> str:
    """A metric in text output: 4 decimals, or ``n/a`` when it is not available (an empty test set)."""
    return f"{value:.4f}" if np.isfinite(value) else "n/a"


def _parse_rating(spec: str, model):
    """``ITEM=STARS`` where ITEM is an id or a unique (case-insensitive) title substring."""
    if "=" not in spec:
        raise FastMFError(f"--rate expects ITEM=STARS, got '{spec}'")
    item, stars = spec.rsplit("=", 1)
    try:
        value = float(stars)
    except ValueError:
        raise FastMFError(f"--rate {spec}: '{stars}' is not a number") from None
    return resolve_item(model, item), value


def _user_id(model, user: str):
    """A user id from its command-line string (an integer if the model's ids are integers)."""
    return int(user) if model.user_map_.is_int and user.lstrip("-").isdigit() else user


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option("--user", default=None, help="Recommend for this user id.")
@click.option(
    "--rate",
    "rates",
    multiple=True,
    metavar="ITEM=STARS",
    help="Fold in a new user from ratings (ITEM: id or unique title); repeatable.",
)
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--include-seen", is_flag=True, help="Do not exclude the user's own items.")
@click.option(
    "--min-ratings", type=int, default=0, show_default=True, help="Only items with at least this many training ratings."
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES, case_sensitive=False),
    default=None,
    help="Ranking with uncertainty (--model vi): predicted mean, penalized mean/(1+var), "
    "ucb mean+beta*sd, or thompson (one posterior draw).",
)
@click.option("--beta", type=float, default=1.0, show_default=True, help="Weight of the sd in --strategy ucb.")
@click.option(
    "--seed", type=int, default=None, callback=check_seed, help="Seed of --strategy thompson (default: a fresh draw)."
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def recommend(model_dir, user, rates, k, include_seen, min_ratings, strategy, beta, seed, as_json):
    """Top-k items for a known --user, or for a new user described by --rate ITEM=STARS."""
    model = load_model(model_dir)
    if (user is None) == (not rates):
        raise FastMFError("give either --user ID or one or more --rate ITEM=STARS")
    ranking = {}
    if strategy not in (None, "mean"):
        if strategy not in getattr(model, "strategies", ()):
            raise FastMFError(
                f"--strategy {strategy} needs posterior uncertainty (--model vi), not a '{model.kind}' model"
            )
        ranking = {"strategy": strategy, "beta": beta, "seed": seed}
    if user is not None:
        uid = _user_id(model, user)
        items, scores = model.recommend(
            uid, k=k, exclude_seen=not include_seen, min_item_ratings=min_ratings, **ranking
        )
    else:
        ratings = dict(_parse_rating(r, model) for r in rates)
        items, scores = model.fold_in(
            ratings, k=k, exclude_seen=not include_seen, min_item_ratings=min_ratings, **ranking
        )
    idx = model.item_map_.index_of(items)
    rows = [
        {"rank": r + 1, "item_id": items[r].item(), "title": model.title(idx[r]), "score": float(scores[r])}
        for r in range(len(items))
    ]
    rated = (
        []
        if user is not None
        else [
            {"item_id": item, "title": model.title(model.item_map_.index_of(np.asarray([item]))[0]), "rating": value}
            for item, value in ratings.items()
        ]
    )
    if as_json:
        emit_json(
            {
                "model": model.kind,
                "user": None if user is None else _user_id(model, user),
                "rated": rated,
                "recommendations": rows,
            }
        )
        return
    for row in rated:
        click.echo(f"rated {row['rating']:g}: {row['title']} (id {row['item_id']})")
    for row in rows:
        click.echo(f"{row['rank']:>3}. {row['score']:8.4f}  {row['item_id']!s:>8}  {row['title']}")


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option("--features", required=True, help="Features of the new item, comma-separated (Adventure,Animation).")
@click.option("--user", default=None, help="Also predict this user's rating of the new item and of the listed ones.")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option(
    "--min-ratings", type=int, default=0, show_default=True, help="Only items with at least this many training ratings."
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def similar(model_dir, features, user, k, min_ratings, as_json):
    """Existing items most similar (cosine in factor space) to a new item known only by its features.

    MODEL_DIR must hold a model trained with --model features; the new item's
    factors are its prior mean, the scaled sum of its features' vectors.
    """
    model = load_model(model_dir)
    if not hasattr(model, "similar"):
        raise FastMFError(f"{model_dir} holds a '{model.kind}' model; similar needs one trained with --model features")
    names = [f.strip() for f in features.split(",") if f.strip()]
    items, sims = model.similar(names, k=k, min_item_ratings=min_ratings)
    idx = model.item_map_.index_of(items)
    rows = [
        {"rank": r + 1, "item_id": items[r].item(), "title": model.title(idx[r]), "similarity": float(sims[r])}
        for r in range(len(items))
    ]
    out = {"features": names, "items": rows}
    if user is not None:
        uid = _user_id(model, user)
        out["user"], out["new_item_rating"] = uid, model.predict_new(uid, names)
        for row, rating in zip(rows, model.predict(np.full(len(items), uid), items)):
            row["predicted_rating"] = float(rating)
    if as_json:
        emit_json(out)
        return
    if user is not None:
        click.echo(f"user {out['user']}: predicted rating of the new item {out['new_item_rating']:.3f}")
    pred = "  rating" if user is not None else ""
    click.echo(f"{'':>4} {'cosine':>8}{pred}  {'item':>8}  title   (new item: {', '.join(names)})")
    for row in rows:
        extra = f"{row['predicted_rating']:8.3f}" if user is not None else ""
        click.echo(f"{row['rank']:>3}. {row['similarity']:8.4f}{extra}  {row['item_id']!s:>8}  {row['title']}")


@main.command()
@click.argument("data", required=False, type=click.Path())
@click.option("--model", "kind", type=model_choice(), default="als", show_default=True)
@click.option(
    "--grid",
    default=None,
    help="Search this grid: space-separated name=v1,v2 lists, e.g. "
    '"lam=0.05,0.1 tau=1,2" (without it, tune searches by itself within --budget fits).',
)
@click.option(
    "--budget",
    type=click.IntRange(1, 10_000),
    default=None,
    help=f"Fits of the search by itself (default {DEFAULT_BUDGET}): settings drawn log-uniformly from the "
    "model's search ranges, trained by successive halving with early stopping on the validation split.",
)
@click.option(
    "--score-frac",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the training ratings held out to score the settings.",
)
@click.option(
    "--save-params",
    "params_out",
    type=click.Path(),
    default=None,
    help="Write the best settings to this JSON file, for train --params.",
)
@model_options
@split_options
@data_options
@threads_option
@output_options
def tune(data, kind, grid, budget, score_frac, params_out, as_json, quiet, forced_progress, **kw):
    """Find good hyperparameters, scored on a validation split carved from the training data (never the
    test set); the best setting is then refit on all the training data and evaluated on the test set.

    Without --grid, searches the model's ranges (D, tau, gamma and the ridge scaling for ALS) within
    --budget fits; hyperparameters given as flags stay fixed. Rating models are scored by RMSE, rankers
    by NDCG@10.
    """
    kind = model_class(kind).kind
    base = pop_model_params(kw, kind)
    base["random_state"] = kw["seed"]
    if grid is not None and budget is not None:
        raise FastMFError("give --grid (search that grid) or --budget (search by itself), not both")
    points = parse_grid(kind, grid) if grid is not None else None
    build_model(kind, base)  # refuse flags that do not apply before any work
    budget = DEFAULT_BUDGET if points is None and budget is None else budget
    if params_out:
        check_target(params_out, is_params_file, "parameters file", protect=input_paths(data, kw))
    train_set, test_set, info = prepare_split(data, kw, [kind])
    with Progress(
        len(points) if points is not None else budget, f"tune {kind}", "fit", quiet, forced_progress
    ) as progress:

        def report(row):
            progress.step(**{k: v for k, v in row.items() if k.startswith("val_")})

        if points is not None:
            result = run_tune(kind, train_set, test_set, points, base, score_frac, kw["seed"], report)
        else:
            result = run_search(kind, train_set, test_set, budget, base, score_frac, kw["seed"], report)
    result.pop("model")
    result.update(info)
    if params_out:
        scores = {k: v for k, v in result["best"].items() if k != "params"}
        write_params(params_out, kind, result["best"]["params"], scores)
        result["params_file"] = params_out
    if as_json:
        emit_json(result)
        return
    _print_tune(result, list(points[0]) if points is not None else result["search"]["searched"])
    if params_out:
        click.echo(f"best settings written to {params_out} (use: fastmf train --params {params_out})")


def _print_tune(result: dict, names: list) -> None:
    """The table of scored settings (best first; per rung for a search) and the best one."""
    val, test = f"val_{result['metric']}", f"test_{result['metric']}"  # rmse (rating models) or ndcg@10
    searched = "rung" in (result["rows"][0] if result["rows"] else {})
    cols = (["rung", "epochs"] if searched else []) + names
    click.echo("".join(f"{n:>12}" for n in cols) + f"{val:>12}{'seconds':>10}")
    order = sorted(
        result["rows"],
        key=lambda r: (-r.get("rung", 0), np.isnan(r[val]), r[val] if result["metric"] == "rmse" else -r[val]),
    )
    for row in order:
        cells = "".join(f"{_cell(row.get(n)):>12}" for n in cols)
        score = f"{row[val]:>12.4f}" if not np.isnan(row[val]) else f"{'failed':>12}"
        click.echo(cells + score + f"{row['seconds']:>10.1f}")
    best = result["best"]
    extra = f", {test} {best[test]:.4f}" if test in best else ""
    shown = {k: v for k, v in best["params"].items() if k in names or k == "epochs"}
    click.echo(f"best: {' '.join(f'{k}={v}' for k, v in shown.items())} ({val} {best[val]:.4f}{extra})")


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@main.command()
@click.argument("data", required=False, type=click.Path())
@click.option("--models", default="popular,als,bpr", show_default=True, help="Comma-separated model kinds.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KIND.NAME=VALUE",
    help="Hyperparameter of one model (repeatable), e.g. bpr.reg=0.01.",
)
@click.option("--threshold", type=float, default=4.0, show_default=True, help="Ratings >= this are positives.")
@split_options
@data_options
@threads_option
@output_options
def compare(data, models, params, threshold, as_json, quiet, forced_progress, **kw):
    """Ranking metrics of several models on one split, side by side (rating models rank by predicted rating)."""
    kinds = [model_class(k).kind for k in models.split(",") if k.strip()]
    per_model = {}
    for spec in params:
        kind, _, setting = spec.partition(".")
        name, eq, value = setting.partition("=")
        if not name or not eq:
            raise FastMFError(f"--param expects KIND.NAME=VALUE, got '{spec}'")
        kind = model_class(kind).kind
        if kind not in kinds:
            raise FastMFError(f"--param {spec}: '{kind}' is not one of --models {models}")
        key, parsed = parse_setting(kind, name, value, where="--param")
        per_model.setdefault(kind, {})[key] = parsed
    train_set, test_set, info = prepare_split(data, kw, kinds)
    if test_set is None:
        raise FastMFError("compare needs test ratings: use a --test-frac above 0 or --test")
    with Progress(len(kinds), "compare", "model", quiet, forced_progress) as progress:
        rows = run_compare(
            kinds,
            train_set,
            test_set,
            per_model,
            threshold,
            kw["seed"],
            lambda row: progress.step(**{"ndcg@10": row["ndcg@10"]}),
        )
    if as_json:
        emit_json({**info, "threshold": threshold, "models": rows})
        return
    click.echo(format_comparison(rows))
