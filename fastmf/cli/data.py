"""Data commands: prepare, info, synth."""

from __future__ import annotations

import time

import click

from fastmf.cli import main
from fastmf.cli.format import format_describe
from fastmf.cli.options import (
    check_seed,
    column_spec,
    data_options,
    emit_json,
    load_data,
    output_options,
    threads_option,
)
from fastmf.cli.progress import Progress
from fastmf.common.errors import FastMFError
from fastmf.data_prep.prepare import prepare as run_prepare
from fastmf.data_prep.stats import describe
from fastmf.data_prep.synth import SynthConfig, generate, write_synth, write_synth_partitioned

# --------------------------------------------------------------------------- data commands


@main.command()
@click.argument("source", type=click.Path())
@click.argument("out_dir", type=click.Path())
@data_options
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option(
    "--partitions",
    type=int,
    default=None,
    metavar="N",
    help="Write N user blocks and N item blocks (the partitioned layout that train --cluster reads).",
)
@output_options
def prepare(source, out_dir, force, partitions, as_json, quiet, forced_progress, **kw):
    """Convert SOURCE (MovieLens zip/folder, CSV or Parquet) to a prepared folder OUT_DIR.

    Writes ratings.parquet (user_id, item_id, rating float32[, timestamp]),
    items.parquet (item_id, title, genres) with zstd, and manifest.json. With
    --partitions N the ratings go to by_user/ and by_item/ blocks instead, with
    the id maps (user_ids.parquet, item_ids.parquet), for training on a cluster.
    """
    manifest = run_prepare(source, out_dir, column_spec(kw), force=force, partitions=partitions)
    if as_json:
        emit_json({"out_dir": out_dir, **manifest})
        return
    blocks = f" in {partitions} user and {partitions} item blocks" if partitions else ""
    click.echo(
        f"wrote {out_dir}: {manifest['ratings']:,} ratings, {manifest['users']:,} users, "
        f"{manifest['items']:,} items{blocks}"
    )


@main.command()
@click.argument("data", required=False, type=click.Path())
@data_options
@output_options
def info(data, as_json, quiet, forced_progress, **kw):
    """Counts, density, rating histogram and power-law slopes of DATA (default: ml-latest-small)."""
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
@click.option("--seed", type=int, default=42, show_default=True, callback=check_seed)
@click.option("--csv", is_flag=True, help="Also write MovieLens-format ratings.csv and movies.csv.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option(
    "--partitions",
    type=int,
    default=None,
    metavar="N",
    help="Write N user and N item blocks (train --cluster), generating a chunk of users at a time: the "
    "whole table is never in memory.",
)
@threads_option
@output_options
def synth(out_dir, scale, users, items, ratings, rank, sigma, seed, csv, force, partitions, as_json, quiet, **kw):
    """Write a synthetic MovieLens-shaped data set (default: the ml-32m shape) to OUT_DIR; with --json the
    generation statistics as JSON."""
    if scale <= 0:
        raise FastMFError("--scale must be positive")
    if csv and partitions:
        raise FastMFError("--csv writes the whole table: it does not go with --partitions")
    cfg = SynthConfig.scaled(scale, users=users, items=items, ratings=ratings, rank=rank, sigma=sigma, seed=seed)
    t0 = time.perf_counter()
    with Progress(cfg.ratings, "synth", "rating", quiet, kw.get("forced_progress", False)) as bar:
        if partitions is not None:
            stats = write_synth_partitioned(out_dir, cfg, partitions, force=force, progress=bar.advance)
        else:
            data = generate(cfg)
            bar.advance(cfg.ratings)
            write_synth(out_dir, data, cfg, csv=csv, force=force)
            stats = data.stats
    stats = dict(stats, seconds=time.perf_counter() - t0, out_dir=out_dir)
    if as_json:
        emit_json(stats)
        return
    click.echo(
        f"wrote {out_dir}: {stats['ratings']:,} ratings, {stats['users']:,} users, {stats['items']:,} items "
        f"in {stats['seconds']:.1f} s"
    )
    click.echo(
        f"mean rating {stats['mean_rating']:.3f}; ratings per user {stats['min_user_ratings']}.."
        f"{stats['max_user_ratings']:,}; top item {stats['max_item_ratings']:,} ratings; "
        f"{stats['items_le_3']:,} items with <= 3 ratings"
    )
    click.echo(f"best reachable RMSE (oracle, planted model): {stats['oracle_rmse']:.4f}")
