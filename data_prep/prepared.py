"""Write a prepared data folder atomically: ratings.parquet, items.parquet, manifest.json.

The folder is written under a temporary name beside ``out_dir`` and renamed
into place only when every file is complete, so an interrupted run never
leaves a half-written folder behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fastmf._version import __version__
from fastmf._json import json_default
from fastmf.errors import FastMFError

SCHEMA_VERSION = 1


def atomic_dir(out_dir: str, write, force: bool = False) -> None:
    """Call ``write(tmp_dir)`` then move ``tmp_dir`` to ``out_dir`` (replacing it only with ``force``)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FastMFError(f"{out_dir}: output path exists and is not a folder")
    if os.path.exists(out_dir) and os.listdir(out_dir) and not force:
        raise FastMFError(f"{out_dir}: output folder exists and is not empty (use --force to replace it)")
    parent = os.path.dirname(out_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700); give the usual permissions
    except OSError as exc:
        raise FastMFError(f"{out_dir}: cannot create the output folder: {exc.strerror or exc}") from None
    try:
        write(tmp)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "x"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except OSError as exc:  # disk full, permissions...: a one-line error, and no partial output
        shutil.rmtree(tmp, ignore_errors=True)
        raise FastMFError(f"{out_dir}: cannot write the output folder: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_file(path: str, write) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=os.path.dirname(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_prepared(out_dir: str, ratings: pa.Table, items: pa.Table | None, manifest: dict,
                   extra_files: dict | None = None, csv: bool = False, force: bool = False) -> None:
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
            json.dump(manifest, fh, indent=2, default=json_default)
            fh.write("\n")

    atomic_dir(out_dir, write, force=force)


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
        import pyarrow.compute as pc

        genres = pc.binary_join(items["genres"], "|")
        genres = pc.if_else(pc.equal(genres, ""), "(no genres listed)", genres)
        with open(os.path.join(folder, "movies.csv"), "wb") as fh:
            fh.write(b"movieId,title,genres\n")
            pacsv.write_csv(pa.table({"movieId": items["item_id"], "title": items["title"], "genres": genres}),
                            fh, write_options=pacsv.WriteOptions(include_header=False))

