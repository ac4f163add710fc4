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


if __name__ == "__main__":  # pragma: no cover
    main()
