"""The ``fastmf`` command line.

Every command that reads data takes either a folder written by ``fastmf
prepare`` or a raw source (a MovieLens zip or folder, a CSV or Parquet file);
with no DATA it uses the ml-latest-small copy shipped inside the package.
User mistakes print one line on stderr and exit with status 1; results go to
stdout (``--json`` for machine-readable output) and progress to stderr.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings

import click
import numpy as np

from fastmf._json import json_default
from fastmf.errors import FastMFError


class _Group(click.Group):
    """Turns :class:`FastMFError` (a user's mistake) into one line and exit status 1."""

    def invoke(self, ctx):
        previous = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return super().invoke(ctx)
        except FastMFError as exc:
            click.echo(f"fastmf: error: {exc}", err=True)
            ctx.exit(1)
        except MemoryError:
            click.echo("fastmf: error: out of memory (try --scale or a smaller --factors)", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("fastmf: interrupted", err=True)
            ctx.exit(130)
        finally:
            warnings.showwarning = previous


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"fastmf: warning: {message}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fastmf")
def main():
    """fastmf: fast matrix-factorisation recommenders (ALS, BPR, variational Bayes)."""


# --------------------------------------------------------------------------- shared options


def data_options(f):
    """Column names and scale for generic CSV/Parquet rating files."""
    opts = [
        click.option("--user-col", default=None, help="User column of a generic CSV/Parquet file."),
        click.option("--item-col", default=None, help="Item column of a generic CSV/Parquet file."),
        click.option("--rating-col", default=None, help="Rating column of a generic CSV/Parquet file."),
        click.option("--time-col", default=None, help="Timestamp column of a generic file (optional)."),
        click.option("--sep", default=None, help="Field separator of a generic CSV (default ',' or tab for .tsv)."),
        click.option("--rating-range", default=None, metavar="LO,HI",
                     help="Allowed rating scale (default 0.5,5)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def column_spec(kw: dict):
    from fastmf.data_prep.loaders import ColumnSpec

    rng = kw.pop("rating_range", None)
    if rng is not None:
        try:
            lo, hi = (float(x) for x in rng.split(","))
        except ValueError:
            raise FastMFError(f"--rating-range expects LO,HI (for example 1,5), got '{rng}'") from None
        rng = (lo, hi)
    return ColumnSpec(user=kw.pop("user_col", None), item=kw.pop("item_col", None),
                      rating=kw.pop("rating_col", None), timestamp=kw.pop("time_col", None),
                      sep=kw.pop("sep", None), rating_range=rng)


def threads_option(f):
    @click.option("--threads", type=int, default=None, help="Threads for the parallel kernels (default: all cores).")
    @functools.wraps(f)
    def wrapper(*args, threads=None, **kw):
        from fastmf.threads import set_threads

        set_threads(threads)
        return f(*args, **kw)

    return wrapper


def output_options(f):
    f = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(f)
    return f


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=json_default))


def load_data(path, kw):
    from fastmf.data_prep.dataset import load_dataset

    return load_dataset(path, column_spec(kw))


# --------------------------------------------------------------------------- data commands


@main.command()
@click.argument("source", type=click.Path())
@click.argument("out_dir", type=click.Path())
@data_options
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
def prepare(source, out_dir, force, **kw):
    """Convert SOURCE (MovieLens zip/folder, CSV or Parquet) to a prepared folder OUT_DIR.

    Writes ratings.parquet (user_id, item_id, rating float32[, timestamp]),
    items.parquet (item_id, title, genres) with zstd, and manifest.json.
    """
    from fastmf.data_prep.prepare import prepare as run

    manifest = run(source, out_dir, column_spec(kw), force=force)
    click.echo(f"wrote {out_dir}: {manifest['ratings']:,} ratings, {manifest['users']:,} users, "
               f"{manifest['items']:,} items")


@main.command()
@click.argument("data", required=False, type=click.Path())
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def info(data, as_json, **kw):
    """Counts, density, rating histogram and power-law slopes of DATA (default: ml-latest-small)."""
    from fastmf.data_prep.stats import describe, format_describe

    stats = describe(load_data(data, kw))
    if as_json:
        emit_json(stats)
    else:
        click.echo(format_describe(stats))


@main.command()
@click.argument("out_dir", type=click.Path())
@click.option("--scale", type=float, default=1.0, show_default=True, help="Shrink the ml-32m shape by this factor.")
@click.option("--users", type=int, default=None, help="Number of users (overrides --scale).")
@click.option("--items", type=int, default=None, help="Number of items (overrides --scale).")
@click.option("--ratings", type=int, default=None, help="Number of ratings (overrides --scale).")
@click.option("--rank", type=int, default=8, show_default=True, help="Rank of the planted factors.")
@click.option("--sigma", type=float, default=0.8, show_default=True, help="Noise standard deviation.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--csv", is_flag=True, help="Also write MovieLens-format ratings.csv and movies.csv.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print the generation statistics as JSON.")
def synth(out_dir, scale, users, items, ratings, rank, sigma, seed, csv, force, as_json):
    """Write a synthetic MovieLens-shaped data set (default: the ml-32m shape) to OUT_DIR."""
    import time

    from fastmf.data_prep.synth import SynthConfig, generate, write_synth

    if scale <= 0:
        raise FastMFError("--scale must be positive")
    cfg = SynthConfig.scaled(scale, users=users, items=items, ratings=ratings, rank=rank, sigma=sigma, seed=seed)
    t0 = time.perf_counter()
    data = generate(cfg)
    write_synth(out_dir, data, cfg, csv=csv, force=force)
    stats = dict(data.stats, seconds=time.perf_counter() - t0, out_dir=out_dir)
    if as_json:
        emit_json(stats)
        return
    click.echo(f"wrote {out_dir}: {stats['ratings']:,} ratings, {stats['users']:,} users, {stats['items']:,} items "
               f"in {stats['seconds']:.1f} s")
    click.echo(f"mean rating {stats['mean_rating']:.3f}; ratings per user {stats['min_user_ratings']}.."
               f"{stats['max_user_ratings']:,}; top item {stats['max_item_ratings']:,} ratings; "
               f"{stats['items_le_3']:,} items with <= 3 ratings")
    click.echo(f"best reachable RMSE (oracle, planted model): {stats['oracle_rmse']:.4f}")


# --------------------------------------------------------------------------- models

# Hyperparameter flags shared by train, tune and bench; each model takes the ones in its
# constructor and an error names any given flag that does not apply to the chosen model.
MODEL_OPTIONS = [
    click.option("--factors", "-D", type=int, default=None, help="Latent dimension D."),
    click.option("--lam", type=float, default=None, help="Data precision lambda."),
    click.option("--gamma", type=float, default=None, help="Bias regulariser gamma."),
    click.option("--tau", type=float, default=None, help="Factor regulariser tau."),
    click.option("--beta", type=float, default=None, help="Prior precision of feature vectors (--model features)."),
    click.option("--feature-bias", is_flag=True, default=None,
                 help="Centre item biases on genre biases too (--model features)."),
    click.option("--epochs", type=int, default=None, help="Training epochs."),
    click.option("--patience", type=int, default=None,
                 help="Early stopping: epochs without validation improvement (validation carved from train)."),
    click.option("--threshold", type=float, default=None,
                 help="Ratings >= this are positives (--model bpr/popular, default 4; 0: all; also --ranking)."),
    click.option("--lr", type=float, default=None, help="SGD learning rate (--model bpr)."),
    click.option("--decay", type=float, default=None, help="Learning rate factor per epoch (--model bpr)."),
    click.option("--reg", type=float, default=None, help="L2 regularisation (--model bpr)."),
    click.option("--negatives", type=click.Choice(["uniform", "popularity"]), default=None,
                 help="Negative sampling of --model bpr (default uniform)."),
    click.option("--no-item-bias", "item_bias", flag_value=False, default=None,
                 help="Score without item biases (--model bpr)."),
    click.option("--backend", type=click.Choice(["numba", "numpy"]), default=None,
                 help="numba kernels (default) or the NumPy reference."),
    click.option("--covariance", type=click.Choice(["full", "diagonal"]), default=None,
                 help="Posterior covariance per user/item (--model vi; default full)."),
    click.option("--learn-hyper", is_flag=True, default=None,
                 help="Learn lam and a per-dimension tau by empirical Bayes (--model vi)."),
]


def model_options(f):
    for opt in reversed(MODEL_OPTIONS):
        f = opt(f)
    return f


MODEL_PARAMS = ("factors", "lam", "gamma", "tau", "beta", "feature_bias", "epochs", "patience",
                "threshold", "lr", "decay", "reg", "negatives", "item_bias", "backend",
                "covariance", "learn_hyper")


def pop_model_params(kw: dict) -> dict:
    return {name: kw.pop(name) for name in MODEL_PARAMS if name in kw}


def split_options(f):
    opts = [
        click.option("--test-frac", type=float, default=None,
                     help="Share of ratings held out for testing (default 0.1; 0 with --test)."),
        click.option("--split", type=click.Choice(["random", "user", "time"]), default="random", show_default=True,
                     help="random: per rating; user: leave-k-out per user; time: latest ratings."),
        click.option("--leave-k", type=int, default=1, show_default=True, help="k of --split user."),
        click.option("--test", "test_path", type=click.Path(), default=None,
                     help="Evaluate on this data set instead of a split of DATA."),
        click.option("--seed", type=int, default=42, show_default=True, help="Seed of the split and the model."),
        click.option("--item-features", type=click.Path(), default=None,
                     help="CSV/Parquet of (item, feature) pairs replacing the genres as item features."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _model_choice():
    from fastmf.models import MODELS

    return click.Choice(sorted(MODELS))


def prepare_split(data, kw):
    """Load DATA (and --test) and split; returns (train, test, split info)."""
    from fastmf.data_prep.dataset import load_dataset
    from fastmf.train import split_data

    columns = column_spec(kw)
    full = load_dataset(data, columns)
    features_path = kw.pop("item_features", None)
    if features_path:
        from fastmf.data_prep.loaders import read_item_features

        full = full.with_features(*read_item_features(features_path))
    test_path = kw.pop("test_path")
    given = load_dataset(test_path, columns) if test_path else None
    train, test = split_data(full, given, kw.pop("split"), kw.pop("test_frac"), kw["seed"], kw.pop("leave_k"))
    info = {"data": full.source, "test_data": given.source if given is not None else None,
            "ratings": full.n_ratings, "users": full.n_users, "items": full.n_items}
    return train, test, info


@main.command()
@click.argument("data", required=False, type=click.Path())
@click.option("--model", "kind", type=_model_choice(), default="als", show_default=True)
@model_options
@split_options
@data_options
@click.option("--out", "out_dir", type=click.Path(), default=None, help="Save the fitted model to this folder.")
@click.option("--compare-als", is_flag=True,
              help="Also fit plain ALS with the same hyperparameters and split; RMSE per stratum side by side.")
@click.option("--ranking", is_flag=True,
              help="Rating models: also report ranking metrics (positives: ratings >= --threshold, default 4).")
@threads_option
@output_options
def train(data, kind, out_dir, compare_als, ranking, as_json, quiet, **kw):
    """Train a model on DATA (default: the embedded ml-latest-small) and evaluate it.

    With --json one object goes to stdout: parameters, per-epoch history, final
    train/test metrics, fit seconds and counts of cold test ratings. Rankers
    (bpr, popular), and rating models with --ranking, report auc, sampled_auc
    and precision/recall/ndcg/map@K for K = 5, 10, 20.
    """
    import numba

    from fastmf.evaluation import format_strata
    from fastmf.ranking import format_ranking
    from fastmf.train import build_model, epoch_printer, model_class, train_report

    params = pop_model_params(kw)
    params["seed"] = kw["seed"]
    threshold = 4.0 if params.get("threshold") is None else params["threshold"]
    if ranking and model_class(kind).rating_model:
        params.pop("threshold")  # for a rating model it only defines the positives of the ranking metrics
    model = build_model(kind, params)
    train_set, test_set, info = prepare_split(data, kw)
    callback = None if quiet else epoch_printer(model.epochs if hasattr(model, "epochs") else 0)
    model.fit(train_set, eval_set=test_set, callback=callback)
    report = train_report(model, train_set, test_set, {**info, "threads": numba.get_num_threads()},
                          ranking=ranking, threshold=threshold)
    if compare_als:
        from fastmf.evaluation import als_baseline

        if not quiet:
            click.echo("fitting plain ALS for comparison", err=True)
        report["compare_als"] = als_baseline(model, train_set, test_set)
    if out_dir:
        model.save(out_dir)
        report["model_dir"] = out_dir
    if as_json:
        emit_json(report)
        return
    click.echo(f"{kind}: fitted in {report['fit_seconds']:.2f} s on {train_set.n_ratings:,} ratings "
               f"({report['threads']} threads, backend {model.backend})")
    for key in ("train_rmse", "test_rmse", "test_mae", "loss", "coverage_50", "coverage_90"):
        if key in report:
            click.echo(f"{key:<12}{report[key]:.4f}")
    for line in format_ranking(report):
        click.echo(line)
    if "cold" in report:
        c = report["cold"]
        click.echo(f"cold test ratings: {c['cold_ratings']:,} of {c['test_ratings']:,} "
                   f"(user unseen {c['cold_user_ratings']:,}, item unseen {c['cold_item_ratings']:,})")
    if "rmse_by_stratum" in report:
        als = {"plain als": report["compare_als"]["rmse_by_stratum"]} if compare_als else {}
        click.echo(format_strata({kind: report["rmse_by_stratum"], **als}))
    if "uncertainty" in report:
        from fastmf.vi import format_uncertainty

        click.echo(format_uncertainty(report["uncertainty"]))
    if out_dir:
        click.echo(f"saved to {out_dir}")


@main.command()
@click.argument("model_dir", type=click.Path())
@click.argument("data", required=False, type=click.Path())
@data_options
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def evaluate(model_dir, data, as_json, **kw):
    """Evaluate a saved model on DATA (all of it is treated as test ratings)."""
    from fastmf.base import load_model
    from fastmf.evaluation import format_strata

    model = load_model(model_dir)
    report = {"model": model.kind, "model_dir": model_dir, **model.evaluate(load_data(data, kw))}
    if as_json:
        emit_json(report)
        return
    width = max((len(k) for k, v in report.items() if isinstance(v, float)), default=0) + 2
    for key, value in report.items():
        if isinstance(value, float):
            click.echo(f"{key:<{width}}{value:.4f}")
    if "rmse_by_stratum" in report:
        click.echo(format_strata({model.kind: report["rmse_by_stratum"]}))


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


def resolve_item(model, item: str):
    """An item id from an id string or a unique title match."""
    ids = model.item_map_.ids
    if model.item_map_.is_int and item.strip().lstrip("-").isdigit():
        if model.item_map_.index_of(np.asarray([int(item)]))[0] >= 0:
            return int(item)
    elif not model.item_map_.is_int and model.item_map_.index_of(np.asarray([item]))[0] >= 0:
        return item
    if model.item_titles_ is None:
        raise FastMFError(f"unknown item '{item}'")
    titles = np.char.lower(model.item_titles_.astype(str))
    exact = np.flatnonzero(titles == item.lower())
    hits = exact if exact.size else np.flatnonzero(np.char.find(titles, item.lower()) >= 0)
    if hits.size == 0:
        raise FastMFError(f"no item id or title matches '{item}'")
    if hits.size > 1:
        shown = "; ".join(model.item_titles_[h] for h in hits[:5])
        raise FastMFError(f"'{item}' matches {hits.size} titles ({shown}{'; ...' if hits.size > 5 else ''}): "
                          "be more specific or use the id")
    return ids[hits[0]].item()


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option("--user", default=None, help="Recommend for this user id.")
@click.option("--rate", "rates", multiple=True, metavar="ITEM=STARS",
              help="Fold in a new user from ratings (ITEM: id or unique title); repeatable.")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--include-seen", is_flag=True, help="Do not exclude the user's own items.")
@click.option("--min-ratings", type=int, default=0, show_default=True,
              help="Only items with at least this many training ratings.")
@click.option("--strategy", type=click.Choice(["mean", "penalized", "ucb", "thompson"]), default=None,
              help="Ranking with uncertainty (--model vi): predicted mean, penalized mean/(1+var), "
                   "ucb mean+beta*sd, or thompson (one posterior draw).")
@click.option("--beta", type=float, default=1.0, show_default=True, help="Weight of the sd in --strategy ucb.")
@click.option("--seed", type=int, default=None, help="Seed of --strategy thompson (default: a fresh draw).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def recommend(model_dir, user, rates, k, include_seen, min_ratings, strategy, beta, seed, as_json):
    """Top-k items for a known --user, or for a new user described by --rate ITEM=STARS."""
    from fastmf.base import load_model

    model = load_model(model_dir)
    if (user is None) == (not rates):
        raise FastMFError("give either --user ID or one or more --rate ITEM=STARS")
    ranking = {}
    if strategy not in (None, "mean"):
        if strategy not in getattr(model, "strategies", ()):
            raise FastMFError(f"--strategy {strategy} needs posterior uncertainty (--model vi), "
                              f"not a '{model.kind}' model")
        ranking = {"strategy": strategy, "beta": beta, "seed": seed}
    if user is not None:
        uid = _user_id(model, user)
        items, scores = model.recommend(uid, k=k, exclude_seen=not include_seen, min_item_ratings=min_ratings,
                                        **ranking)
    else:
        ratings = dict(_parse_rating(r, model) for r in rates)
        items, scores = model.fold_in(ratings, k=k, exclude_seen=not include_seen, min_item_ratings=min_ratings,
                                      **ranking)
    idx = model.item_map_.index_of(items)
    rows = [{"rank": r + 1, "item_id": items[r].item(), "title": model.title(idx[r]), "score": float(scores[r])}
            for r in range(len(items))]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['rank']:>3}. {row['score']:8.4f}  {row['item_id']!s:>8}  {row['title']}")


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option("--features", required=True, help="Features of the new item, comma-separated (Adventure,Animation).")
@click.option("--user", default=None, help="Also predict this user's rating of the new item and of the listed ones.")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--min-ratings", type=int, default=0, show_default=True,
              help="Only items with at least this many training ratings.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def similar(model_dir, features, user, k, min_ratings, as_json):
    """Existing items most similar (cosine in factor space) to a new item known only by its features.

    MODEL_DIR must hold a model trained with --model features; the new item's
    factors are its prior mean, the scaled sum of its features' vectors.
    """
    from fastmf.base import load_model

    model = load_model(model_dir)
    if not hasattr(model, "similar"):
        raise FastMFError(f"{model_dir} holds a '{model.kind}' model; similar needs one trained with --model features")
    names = [f.strip() for f in features.split(",") if f.strip()]
    items, sims = model.similar(names, k=k, min_item_ratings=min_ratings)
    idx = model.item_map_.index_of(items)
    rows = [{"rank": r + 1, "item_id": items[r].item(), "title": model.title(idx[r]), "similarity": float(sims[r])}
            for r in range(len(items))]
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
@click.option("--model", "kind", type=_model_choice(), default="als", show_default=True)
@click.option("--grid", required=True, help='Space-separated name=v1,v2 lists, e.g. "lam=0.05,0.1 tau=1,2".')
@click.option("--validation-frac", type=float, default=0.1, show_default=True,
              help="Share of the training ratings used to score the grid.")
@model_options
@split_options
@data_options
@threads_option
@output_options
def tune(data, kind, grid, validation_frac, as_json, quiet, **kw):
    """Grid search scored on a validation split carved from the training data (never the test set)."""
    from fastmf.train import parse_grid
    from fastmf.train import tune as run

    base = {k: v for k, v in pop_model_params(kw).items() if v is not None}
    base["seed"] = kw["seed"]
    points = parse_grid(grid)
    train_set, test_set, info = prepare_split(data, kw)

    def show(row):
        if not quiet:
            click.echo("  ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                       err=True)

    result = run(kind, train_set, test_set, points, base, validation_frac, kw["seed"], show)
    result.pop("model")
    result.update(info)
    if as_json:
        emit_json(result)
        return
    names = list(points[0])
    val, test = f"val_{result['metric']}", f"test_{result['metric']}"  # rmse (rating models) or ndcg@10
    click.echo("".join(f"{n:>10}" for n in names) + f"{val:>12}{'seconds':>10}")
    for row in sorted(result["rows"], key=lambda r: r[val], reverse=result["metric"] != "rmse"):
        click.echo("".join(f"{row[n]!s:>10}" for n in names) + f"{row[val]:>12.4f}{row['seconds']:>10.1f}")
    best = result["best"]
    extra = f", {test} {best[test]:.4f}" if test in best else ""
    click.echo(f"best: {' '.join(f'{k}={v}' for k, v in best['params'].items())} "
               f"({val} {best[val]:.4f}{extra})")


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FastMFError(f"{what} expects comma-separated integers, got '{text}'") from None


@main.command()
@click.option("--model", "kind", type=_model_choice(), default="als", show_default=True)
@click.option("--scale", type=float, default=1.0, show_default=True, help="Shrink the synthetic ml-32m shape.")
@click.option("--data", type=click.Path(), default=None, help="Benchmark on this prepared folder instead.")
@click.option("--factors", default="20,64", show_default=True, help="Comma-separated latent dimensions.")
@click.option("--threads", "threads_list", default=None, help="Comma-separated thread counts (default 1,all).")
@click.option("--backends", default="numba,numpy", show_default=True)
@click.option("--epochs", type=int, default=4, show_default=True, help="Epochs per numba run (first = compile).")
@click.option("--numpy-epochs", type=int, default=1, show_default=True, help="Epochs per numpy run.")
@click.option("--series/--no-series", default=True, show_default=True,
              help="Also run numba at 1/8, 1/4, 1/2 and 1 of --scale to show cost linear in ratings.")
@click.option("--balance-check", is_flag=True, help="Also run numba with naive equal-count work splitting.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Extra model hyperparameter.")
@click.option("--cache", type=click.Path(), default=None, help="Folder for generated synthetic sets.")
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write the records (a JSON list) here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def bench(kind, scale, data, factors, threads_list, backends, epochs, numpy_epochs, series, balance_check, params,
          cache, json_out, quiet):
    """Seconds per epoch, throughput, compile time and peak RSS for numba vs numpy in one run."""
    import numba

    from fastmf import bench as B
    from fastmf.data_prep.prepared import atomic_file
    from fastmf.train import parse_grid

    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    all_threads = numba.config.NUMBA_NUM_THREADS
    threads = _int_list(threads_list, "--threads") if threads_list else sorted({1, all_threads})
    dims = _int_list(factors, "--factors")
    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    for b in chosen:
        if b not in ("numba", "numpy"):
            raise FastMFError(f"unknown backend '{b}' in --backends")
    extra = parse_grid(" ".join(params))[0] if params else {}
    folder = data or B.synthetic_folder(scale, cache=cache, log=log)
    series_data = {s * scale: B.synthetic_folder(s * scale, cache=cache, log=log) for s in B.SERIES} if series else None
    configs = B.plan(kind, scale, dims, threads, chosen, epochs, numpy_epochs, series, folder, series_data, extra,
                     balance_check)
    configs = B.companions(kind, configs, scale, dims, threads, chosen, epochs, numpy_epochs, folder, extra)
    records, failures = [], []
    for cfg in configs:
        log(f"running {cfg['model']} {cfg['backend']} D={cfg['params'].get('factors')} threads={cfg['threads']} "
            f"on {cfg['data']}")
        try:
            records.append(B.run_subprocess(cfg))
        except FastMFError as exc:  # keep the other measurements
            failures.append(str(exc))
            log(f"fastmf: warning: {exc}")
    B.add_ratios(records)
    click.echo(B.format_table(records))
    for line in B.als_ratios(records):
        click.echo(line)
    if json_out:
        atomic_file(json_out, lambda tmp: open(tmp, "w").write(json.dumps(records, indent=2, default=json_default)))
        click.echo(f"wrote {json_out}")
    if failures:
        raise FastMFError(f"{len(failures)} of {len(configs)} configurations failed; first: {failures[0]}")


# --------------------------------------------------------------------------- analysis and experiments


@main.group()
def plot():
    """PNG figures of a data set or a saved model (needs matplotlib: pip install 'fastmf[plot]')."""


def _echo_plots(written, skipped, quiet):
    for path in written:
        click.echo(f"wrote {path}")
    for note in skipped if not quiet else ():
        click.echo(f"skipped {note}", err=True)


@plot.command("data")
@click.argument("data", required=False, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for the PNG files.")
@data_options
@click.option("--quiet", "-q", is_flag=True, help="Do not list skipped figures on stderr.")
def plot_data(data, out_dir, quiet, **kw):
    """Degree distributions with power-law fits, rating histogram, genres and top items of DATA."""
    from fastmf import plots

    plots.require_matplotlib()
    _echo_plots(*plots.plot_data(load_data(data, kw), out_dir), quiet)


@plot.command("model")
@click.argument("model_dir", type=click.Path())
@click.argument("data", required=False, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for the PNG files.")
@click.option("--min-ratings", type=int, default=100, show_default=True,
              help="Items in the embedding map need this many training ratings.")
@data_options
@click.option("--quiet", "-q", is_flag=True, help="Do not list skipped figures on stderr.")
def plot_model(model_dir, data, out_dir, min_ratings, quiet, **kw):
    """Training curves, item-factor map coloured by genre (genres from DATA) and genre vectors."""
    from fastmf import plots
    from fastmf.analysis import check_same_items
    from fastmf.base import load_model

    plots.require_matplotlib()
    model, dataset = load_model(model_dir), load_data(data, kw)
    check_same_items(model, dataset)
    _echo_plots(*plots.plot_model(model, out_dir, dataset, min_ratings), quiet)


@main.command()
@click.argument("model_dir", type=click.Path())
@click.argument("data", required=False, type=click.Path())
@click.option("--polarizing", is_flag=True, help="Items with extreme factor norms and rating variances.")
@click.option("--similar", "similar_to", default=None, metavar="ITEM",
              help="Nearest items by cosine of item factors (ITEM: id or unique title).")
@click.option("--min-ratings", type=int, default=100, show_default=True, help="Only items with this many ratings.")
@click.option("-k", "k", type=int, default=10, show_default=True)
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def analyze(model_dir, data, polarizing, similar_to, min_ratings, k, as_json, **kw):
    """Polarizing items (factor norm vs rating variance in DATA) and nearest items of a saved model."""
    from fastmf import analysis as A
    from fastmf.base import load_model

    if not polarizing and similar_to is None:
        raise FastMFError("give --polarizing and/or --similar ITEM")
    model = load_model(model_dir)
    out = {}
    if polarizing:
        dataset = load_data(data, kw)
        A.check_same_items(model, dataset)
        out["polarizing"] = A.polarizing(model, dataset, min_ratings, k)
    if similar_to is not None:
        idx = model.item_map_.index(resolve_item(model, similar_to))
        out["similar"] = {"item_id": model.item_map_.ids[idx].item(), "title": model.title(idx),
                          "items": A.similar_items(model, idx, k, min_ratings)}
    if as_json:
        emit_json(out)
        return
    if polarizing:
        click.echo(A.format_polarizing(out["polarizing"]))
    if similar_to is not None:
        click.echo(A.format_similar(out["similar"]["title"], out["similar"]["items"]))


@main.command()
@click.argument("model_a", required=False, type=click.Path())
@click.argument("model_b", required=False, type=click.Path())
@click.argument("data", required=False, type=click.Path())
@click.option("--users", "n_users", type=int, default=1000, show_default=True, help="Users sampled.")
@click.option("--salt", default="fastmf-abtest", show_default=True, help="Salt of the SHA-256 assignment.")
@click.option("--experiment", default=None, help="Experiment name in the log (default: the salt).")
@click.option("--traffic", default="50,50", show_default=True, metavar="WA,WB", help="Traffic weights of A and B.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Recommendations per user.")
@click.option("--threshold", type=float, default=4.0, show_default=True,
              help="Ratings at or above it are positives / likes.")
@click.option("--min-ratings-a", type=int, default=0, show_default=True, help="Arm A recommends only items "
              "with this many training ratings (compare settings of one model with MODEL_A = MODEL_B).")
@click.option("--min-ratings-b", type=int, default=0, show_default=True, help="The same for arm B.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level.")
@click.option("--power", type=float, default=0.8, show_default=True, help="Power of the sample-size estimate.")
@click.option("--effect", type=float, default=None,
              help="Difference of the primary metric for the sample-size estimate (default: the observed one).")
@click.option("--bootstrap", "n_boot", type=int, default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--log", "log_dir", type=click.Path(), default="abtest-log", show_default=True,
              help="Parquet log folder; every run appends one file.")
@click.option("--report", "report_log", type=click.Path(), default=None,
              help="Re-analyse the runs of this log (folder or file) instead of running an experiment.")
@split_options
@data_options
@threads_option
@output_options
def abtest(model_a, model_b, data, n_users, salt, experiment, traffic, k, threshold, min_ratings_a, min_ratings_b,
           alpha, power, effect, n_boot, log_dir, report_log, as_json, quiet, **kw):
    """A/B test of two saved models on held-out truth (or planted truth for `fastmf synth` data).

    The models must have been trained by `fastmf train` on DATA with the same
    --split/--test-frac/--seed given here; users are assigned by SHA-256 of
    the salt and their id, and each arm is scored on the test ratings it never saw.
    """
    from fastmf import abtest as AB

    if report_log is not None:
        if model_a or model_b:
            raise FastMFError("--report re-analyses a log: give no models with it")
        reports = [AB.analyze(t, m, alpha, power, effect, n_boot) for t, m in AB.read_log(report_log)]
    else:
        if not (model_a and model_b):
            raise FastMFError("give MODEL_A and MODEL_B (or --report LOG)")
        reports = [_run_abtest(AB, model_a, model_b, data, n_users, salt, experiment, traffic, k, threshold,
                               (min_ratings_a, min_ratings_b), alpha, power, effect, n_boot, log_dir, quiet, kw)]
    if as_json:
        emit_json(reports if report_log is not None else reports[0])
        return
    click.echo("\n\n".join(AB.format_report(r) for r in reports))


def _run_abtest(AB, model_a, model_b, data, n_users, salt, experiment, traffic, k, threshold, min_ratings, alpha,
                power, effect, n_boot, log_dir, quiet, kw):
    import os

    from fastmf.base import load_model
    from fastmf.data_prep.synth import load_planted

    try:
        weights = [float(x) for x in traffic.split(",")]
    except ValueError:
        raise FastMFError(f"--traffic expects two comma-separated weights, got '{traffic}'") from None
    models = {path: load_model(path) for path in dict.fromkeys((model_a, model_b))}
    arms = [AB.Arm(models[path], m, path) for path, m in zip((model_a, model_b), min_ratings)]
    split = {"split": kw["split"], "test_frac": kw["test_frac"], "leave_k": kw["leave_k"]}
    train_set, test_set, _ = prepare_split(data, kw)
    planted = load_planted(data) if data and os.path.isdir(data) else None
    table, meta = AB.run_experiment(arms, train_set, test_set, planted, n_users, salt, weights, k, threshold,
                                    kw["seed"], experiment, settings=split)
    path = AB.write_log(log_dir, table, meta)
    if not quiet:
        click.echo(f"logged {table.num_rows:,} rows to {path}", err=True)
    return AB.analyze(table, meta, alpha, power, effect, n_boot)


@main.command()
@click.argument("data", required=False, type=click.Path())
@click.option("--models", default="popular,als,bpr", show_default=True, help="Comma-separated model kinds.")
@click.option("--param", "params", multiple=True, metavar="KIND.NAME=VALUE",
              help="Hyperparameter of one model (repeatable), e.g. bpr.reg=0.01.")
@click.option("--threshold", type=float, default=4.0, show_default=True, help="Ratings >= this are positives.")
@split_options
@data_options
@threads_option
@output_options
def compare(data, models, params, threshold, as_json, quiet, **kw):
    """Ranking metrics of several models on one split, side by side (rating models rank by predicted rating)."""
    from fastmf.ranking import compare as run
    from fastmf.ranking import format_comparison
    from fastmf.train import parse_grid

    per_model = {}
    for spec in params:
        kind, _, setting = spec.partition(".")
        if not setting or "=" not in setting:
            raise FastMFError(f"--param expects KIND.NAME=VALUE, got '{spec}'")
        per_model.setdefault(kind, {}).update(parse_grid(setting)[0])
    kinds = [k.strip() for k in models.split(",") if k.strip()]
    train_set, test_set, info = prepare_split(data, kw)
    if test_set is None:
        raise FastMFError("compare needs test ratings: use a --test-frac above 0 or --test")
    show = None if quiet else (lambda row: click.echo(f"{row['model']}: fitted in {row['fit_seconds']:.2f} s",
                                                       err=True))
    rows = run(kinds, train_set, test_set, per_model, threshold, kw["seed"], show)
    if as_json:
        emit_json({**info, "threshold": threshold, "models": rows})
        return
    click.echo(format_comparison(rows))


if __name__ == "__main__":  # pragma: no cover
    main()
