"""Write a prepared data folder atomically: ratings.parquet, items.parquet, manifest.json.

The folder is written under a temporary name beside ``out_dir`` and renamed
into place only when every file is complete, so an interrupted run never
leaves a half-written folder behind.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fastmf._version import __version__
from fastmf.common import jsonio
from fastmf.common.errors import FastMFError
from fastmf.common.files import atomic_dir

SCHEMA_VERSION = 1


def is_prepared(path: str) -> bool:
    """Whether ``path`` is a folder written by ``fastmf prepare`` or ``fastmf synth`` (or an empty folder,
    whose replacement loses nothing)."""
    if not os.path.isdir(path):
        return False
    entries = os.listdir(path)
    if not entries:
        return True
    try:
        with open(os.path.join(path, "manifest.json"), "rb") as fh:
            return b'"schema_version"' in fh.read(1 << 16) and "ratings.parquet" in entries
    except OSError:
        return False


def write_prepared(out_dir: str, ratings: pa.Table, items: pa.Table | None, manifest: dict,
                   extra_files: dict | None = None, csv: bool = False, force: bool = False, protect=()) -> None:
    """Write a prepared folder; ``extra_files`` maps file names to ``write(path)`` callables.

    With ``csv=True`` the folder also gets MovieLens-format ``ratings.csv`` and
    ``movies.csv`` (the layout of ml-20m and later), for ingestion benchmarks.
    """
    manifest = dict(manifest)
    manifest.setdefault("schema_version", SCHEMA_VERSION)
    manifest.setdefault("fastmf_version", __version__)
    manifest["ratings"] = int(ratings.num_rows)

    def write(tmp):
        pq.write_table(ratings, os.path.join(tmp, "ratings.parquet"), compression="zstd")
        if items is not None:
            pq.write_table(items, os.path.join(tmp, "items.parquet"), compression="zstd")
        for name, writer in (extra_files or {}).items():
            writer(os.path.join(tmp, name))
        if csv:
            write_movielens_csv(tmp, ratings, items)
        with open(os.path.join(tmp, "manifest.json"), "w") as fh:
            fh.write(jsonio.dumps(manifest, indent=2))
            fh.write("\n")

    if not force and os.path.isdir(out_dir) and os.listdir(out_dir) and is_prepared(out_dir):
        raise FastMFError(f"{out_dir}: a prepared data folder is already there (use --force to replace it)")
    atomic_dir(out_dir, write, replaceable=is_prepared, what="prepared data folder", protect=protect)


def write_movielens_csv(folder: str, ratings: pa.Table, items: pa.Table | None) -> None:
    """``ratings.csv`` (userId,movieId,rating,timestamp) and ``movies.csv`` as in ml-20m..ml-32m."""
    cols = {"userId": ratings["user_id"], "movieId": ratings["item_id"], "rating": ratings["rating"]}
    if "timestamp" in ratings.column_names:
        cols["timestamp"] = ratings["timestamp"]
    with open(os.path.join(folder, "ratings.csv"), "wb") as fh:
        fh.write((",".join(cols) + "\n").encode())
        pacsv.write_csv(pa.table(cols), fh, write_options=pacsv.WriteOptions(include_header=False,
                                                                             quoting_style="none"))
    if items is not None:
        genres = pc.binary_join(items["genres"], "|")
        genres = pc.if_else(pc.equal(genres, ""), "(no genres listed)", genres)
        with open(os.path.join(folder, "movies.csv"), "wb") as fh:
            fh.write(b"movieId,title,genres\n")
            pacsv.write_csv(pa.table({"movieId": items["item_id"], "title": items["title"], "genres": genres}),
                            fh, write_options=pacsv.WriteOptions(include_header=False))

