"""Analysis and experiment commands: plot, analyze, abtest."""

from __future__ import annotations

import os

import click

from fastmf.cli import main
from fastmf.cli.format import format_abtest, format_polarizing, format_similar
from fastmf.cli.options import (
    data_options,
    emit_json,
    load_data,
    output_options,
    prepare_split,
    resolve_item,
    split_options,
    threads_option,
)
from fastmf.common.errors import FastMFError
from fastmf.data_prep.synth import load_planted
from fastmf.drivers import abtest as AB
from fastmf.drivers import analysis as A
from fastmf.drivers import plots
from fastmf.registry import load_model

# --------------------------------------------------------------------------- analysis and experiments


@main.group()
def plot():
    """PNG figures of a data set or a saved model (needs matplotlib: pip install 'fastmf[plot]')."""


def _echo_plots(written, skipped, quiet, as_json):
    if as_json:
        emit_json({"written": written, "skipped": skipped})
        return
    for path in written:
        click.echo(f"wrote {path}")
    for note in skipped if not quiet else ():
        click.echo(f"skipped {note}", err=True)


@plot.command("data")
@click.argument("data", required=False, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for the PNG files.")
@data_options
@click.option("--quiet", "-q", is_flag=True, help="Do not list skipped figures on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the written and skipped figures as JSON.")
def plot_data(data, out_dir, quiet, as_json, **kw):
    """Degree distributions with power-law fits, rating histogram, genres and top items of DATA."""
    plots.require_matplotlib()
    _echo_plots(*plots.plot_data(load_data(data, kw), out_dir), quiet, as_json)


@plot.command("model")
@click.argument("model_dir", type=click.Path())
@click.argument("data", required=False, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for the PNG files.")
@click.option(
    "--min-ratings",
    type=int,
    default=100,
    show_default=True,
    help="Items in the embedding map need this many training ratings.",
)
@data_options
@click.option("--quiet", "-q", is_flag=True, help="Do not list skipped figures on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the written and skipped figures as JSON.")
def plot_model(model_dir, data, out_dir, min_ratings, quiet, as_json, **kw):
    """Training curves, item-factor map coloured by genre (genres from DATA) and genre vectors."""
    plots.require_matplotlib()
    model, dataset = load_model(model_dir), load_data(data, kw)
    A.check_same_items(model, dataset)
    _echo_plots(*plots.plot_model(model, out_dir, dataset, min_ratings), quiet, as_json)


@main.command()
@click.argument("model_dir", type=click.Path())
@click.argument("data", required=False, type=click.Path())
@click.option("--polarizing", is_flag=True, help="Items with extreme factor norms and rating variances.")
@click.option(
    "--similar",
    "similar_to",
    default=None,
    metavar="ITEM",
    help="Nearest items by cosine of item factors (ITEM: id or unique title).",
)
@click.option("--min-ratings", type=int, default=100, show_default=True, help="Only items with this many ratings.")
@click.option("-k", "k", type=int, default=10, show_default=True)
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def analyze(model_dir, data, polarizing, similar_to, min_ratings, k, as_json, **kw):
    """Polarizing items (factor norm vs rating variance in DATA) and nearest items of a saved model."""
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
        out["similar"] = {
            "item_id": model.item_map_.ids[idx].item(),
            "title": model.title(idx),
            "items": A.similar_items(model, idx, k, min_ratings),
        }
    if as_json:
        emit_json(out)
        return
    if polarizing:
        click.echo(format_polarizing(out["polarizing"]))
    if similar_to is not None:
        click.echo(format_similar(out["similar"]["title"], out["similar"]["items"]))


@main.command()
@click.argument("model_a", required=False, type=click.Path())
@click.argument("model_b", required=False, type=click.Path())
@click.argument("data", required=False, type=click.Path())
@click.option("--users", "n_users", type=int, default=1000, show_default=True, help="Users sampled.")
@click.option("--salt", default="fastmf-abtest", show_default=True, help="Salt of the SHA-256 assignment.")
@click.option("--experiment", default=None, help="Experiment name in the log (default: the salt).")
@click.option("--traffic", default="50,50", show_default=True, metavar="WA,WB", help="Traffic weights of A and B.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Recommendations per user.")
@click.option(
    "--threshold", type=float, default=4.0, show_default=True, help="Ratings at or above it are positives / likes."
)
@click.option(
    "--min-ratings-a",
    type=int,
    default=0,
    show_default=True,
    help="Arm A recommends only items "
    "with this many training ratings (compare settings of one model with MODEL_A = MODEL_B).",
)
@click.option("--min-ratings-b", type=int, default=0, show_default=True, help="The same for arm B.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level.")
@click.option("--power", type=float, default=0.8, show_default=True, help="Power of the sample-size estimate.")
@click.option(
    "--effect",
    type=float,
    default=None,
    help="Difference of the primary metric for the sample-size estimate (default: the observed one).",
)
@click.option("--bootstrap", "n_boot", type=int, default=2000, show_default=True, help="Bootstrap resamples.")
@click.option(
    "--log",
    "log_dir",
    type=click.Path(),
    default="abtest-log",
    show_default=True,
    help="Parquet log folder; every run appends one file.",
)
@click.option(
    "--report",
    "report_log",
    type=click.Path(),
    default=None,
    help="Re-analyse the runs of this log (folder or file) instead of running an experiment.",
)
@split_options
@data_options
@threads_option
@output_options
def abtest(
    model_a,
    model_b,
    data,
    n_users,
    salt,
    experiment,
    traffic,
    k,
    threshold,
    min_ratings_a,
    min_ratings_b,
    alpha,
    power,
    effect,
    n_boot,
    log_dir,
    report_log,
    as_json,
    quiet,
    **kw,
):
    """A/B test of two saved models on held-out truth (or planted truth for `fastmf synth` data).

    The models must have been trained by `fastmf train` on DATA with the same
    --split/--test-frac/--seed given here; users are assigned by SHA-256 of
    the salt and their id, and each arm is scored on the test ratings it never saw.
    """
    if report_log is not None:
        if model_a or model_b:
            raise FastMFError("--report re-analyses a log: give no models with it")
        reports = [AB.analyze(t, m, alpha, power, effect, n_boot) for t, m in AB.read_log(report_log)]
    else:
        if not (model_a and model_b):
            raise FastMFError("give MODEL_A and MODEL_B (or --report LOG)")
        reports = [
            _run_abtest(
                model_a,
                model_b,
                data,
                n_users,
                salt,
                experiment,
                traffic,
                k,
                threshold,
                (min_ratings_a, min_ratings_b),
                alpha,
                power,
                effect,
                n_boot,
                log_dir,
                quiet,
                kw,
            )
        ]
    if as_json:
        emit_json({"runs": reports} if report_log is not None else reports[0])
        return
    click.echo("\n\n".join(format_abtest(r) for r in reports))


def _run_abtest(
    model_a,
    model_b,
    data,
    n_users,
    salt,
    experiment,
    traffic,
    k,
    threshold,
    min_ratings,
    alpha,
    power,
    effect,
    n_boot,
    log_dir,
    quiet,
    kw,
):
    try:
        weights = [float(x) for x in traffic.split(",")]
    except ValueError:
        raise FastMFError(f"--traffic expects two comma-separated weights, got '{traffic}'") from None
    AB.experiment_weights(weights, 2, "--traffic")  # before loading anything
    models = {path: load_model(path) for path in dict.fromkeys((model_a, model_b))}
    arms = [AB.Arm(models[path], m, path) for path, m in zip((model_a, model_b), min_ratings)]
    split = {"split": kw["split"], "test_frac": kw["test_frac"], "leave_k": kw["leave_k"]}
    train_set, test_set, _ = prepare_split(data, kw)
    planted = load_planted(data) if data and os.path.isdir(data) else None
    table, meta = AB.run_experiment(
        arms, train_set, test_set, planted, n_users, salt, weights, k, threshold, kw["seed"], experiment, settings=split
    )
    path = AB.write_log(log_dir, table, meta)
    if not quiet:
        click.echo(f"logged {table.num_rows:,} rows to {path}", err=True)
    return AB.analyze(table, meta, alpha, power, effect, n_boot)
