"""Ratings partitioned by user block and by item block, for training on a cluster (:mod:`fastmf.distributed`).

``fastmf prepare SOURCE OUT --partitions N`` (and ``fastmf synth OUT --partitions N``, which never
holds the whole table) write a prepared folder in the *partitioned* layout::

    manifest.json                  the usual fields, "layout": "partitioned" and "partitions" (below)
    user_ids.parquet               user_id: the id of every user index (ascending ids, as IdMap)
    item_ids.parquet               item_id: the id of every item index
    items.parquet                  item metadata (title, genres), when the source has it
    by_user/part-00000.parquet     user block 0: user, item (int32 indices), rating (float32)
    ...                            [, timestamp (int64)], sorted by (user, item): the CSR order
    by_item/part-00000.parquet     item block 0: item, user, rating, entry (int64: the rating's
    ...                            position in the CSR order), sorted by (item, user)

Users are cut into N contiguous index ranges of about equal solve cost (their ratings and the
per-entity solve, :func:`fastmf.common.layout.balanced_blocks` at D = 20), items likewise. The
manifest's ``partitions`` holds ``count``, ``user_bounds`` and ``item_bounds`` (N + 1 indices
each), ``user_ratings`` and ``item_ratings`` (ratings per block) and ``files`` (bytes and
SHA-256 of every file). A worker reads the blocks it trains on (:func:`read_block`): each
file's size and checksum are checked against the manifest, then its contents (column types,
indices inside the block and the catalogue, strict (row, column) order, the rating scale)
before anything uses them. The whole folder also loads as an ordinary prepared folder
(:func:`whole_table`, used by :func:`fastmf.data_prep.loaders.load_prepared`), so every local
command runs on it and gives what it gives on the unpartitioned data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fastmf._version import __version__
from fastmf.common import jsonio
from fastmf.common.errors import FastMFError, InputError
from fastmf.common.layout import balanced_blocks
from fastmf.data_prep.prepared import (
    CHUNK_RATINGS,
    SCHEMA_VERSION,
    first_line,
    json_kind,
    manifest_scale,
    read_checked,
    read_manifest,
    write_folder,
)
from fastmf.data_prep.validate import Where
from fastmf.kernels import sparse as sk

LAYOUT = "partitioned"
#: the two orientations: folder, row column, other column
SIDES = {"users": ("by_user", "user", "item"), "items": ("by_item", "item", "user")}
#: the latent dimension the block bounds balance the solve cost for
BALANCE_D = 20
#: most blocks per side
MAX_PARTITIONS = 4096
_INDEX = pa.int32()


@dataclass(frozen=True)
class Chunk:
    """Consecutive users' ratings in CSR order (items ascending within a user): users ``first_user ..``,
    ``indptr`` local to the chunk."""

    first_user: int
    indptr: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None = None


@dataclass(frozen=True)
class Partitions:
    """A partitioned folder's manifest, checked (:func:`open_partitions`)."""

    folder: str
    n_users: int
    n_items: int
    n_ratings: int
    rating_range: tuple | None
    has_timestamps: bool
    user_bounds: tuple
    item_bounds: tuple
    user_ratings: tuple
    item_ratings: tuple
    files: tuple  # ((relative path, bytes, sha256), ...)
    source: str

    @property
    def count(self) -> int:
        return len(self.user_bounds) - 1

    def bounds(self, side: str) -> tuple:
        return self.user_bounds if side == "users" else self.item_bounds

    def block_ratings(self, side: str) -> tuple:
        return self.user_ratings if side == "users" else self.item_ratings

    def n_entities(self, side: str) -> int:
        return self.n_users if side == "users" else self.n_items

    def offset(self, b: int) -> int:
        """Position in the CSR order of the first rating of user block ``b``."""
        return int(sum(self.user_ratings[:b]))

    def relpath(self, side: str, b: int) -> str:
        return f"{SIDES[side][0]}/part-{b:05d}.parquet"

    def path(self, rel: str) -> str:
        return os.path.join(self.folder, rel)

    def file_record(self, rel: str) -> tuple:
        return next(f for f in self.files if f[0] == rel)


@dataclass
class BlockRatings:
    """One block's ratings as read: global ``rows`` of its side (ascending), the other side's ``cols``,
    ``ratings``, by item the ``entries`` (positions in the CSR order; by user they are the block's
    offset onwards, :meth:`Partitions.offset`, and None here) and, by user, the ``timestamps``."""

    side: str
    start: int
    stop: int
    rows: np.ndarray
    cols: np.ndarray
    ratings: np.ndarray
    entries: np.ndarray | None
    timestamps: np.ndarray | None = None

    def indptr(self) -> np.ndarray:
        """Row pointers over the block's entities ``start..stop`` (local rows)."""
        counts = np.bincount(self.rows - self.start, minlength=self.stop - self.start)
        out = np.zeros(self.stop - self.start + 1, dtype=np.int64)
        np.cumsum(counts, out=out[1:])
        return out


# --------------------------------------------------------------------------- writing


def block_bounds(counts: np.ndarray, n_blocks: int) -> np.ndarray:
    """``n_blocks + 1`` boundaries of contiguous entity ranges of about equal solve cost, from ratings per entity."""
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return balanced_blocks(indptr, BALANCE_D, n_blocks)


def check_count(n_blocks, n_users: int, n_items: int) -> int:
    """``--partitions``: a whole number from 1 to the smaller of the user and item counts (and 4096)."""
    if (
        isinstance(n_blocks, bool)
        or not isinstance(n_blocks, (int, np.integer))
        or not 1 <= n_blocks <= min(MAX_PARTITIONS, n_users, n_items)
    ):
        raise FastMFError(
            f"--partitions must be a whole number from 1 to {min(MAX_PARTITIONS, n_users, n_items):,} "
            f"(at most one block per user and per item), got {n_blocks!r}"
        )
    return int(n_blocks)


def dataset_chunks(indptr, indices, data, timestamps=None, target: int = CHUNK_RATINGS) -> Iterator[Chunk]:
    """An in-memory CSR matrix as :class:`Chunk` s of about ``target`` ratings."""
    n = indptr.shape[0] - 1
    u = 0
    while u < n:
        v = max(u + 1, int(np.searchsorted(indptr, indptr[u] + target, side="right")) - 1)
        v = min(v, n)
        lo, hi = int(indptr[u]), int(indptr[v])
        yield Chunk(
            u, indptr[u : v + 1] - lo, indices[lo:hi], data[lo:hi], None if timestamps is None else timestamps[lo:hi]
        )
        u = v


def write_partitioned(
    out_dir: str,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    chunks: Iterable[Chunk],
    user_bounds: np.ndarray,
    item_bounds: np.ndarray,
    items: pa.Table | None,
    manifest: dict,
    has_timestamps: bool,
    extra_files: dict | None = None,
    force: bool = False,
    protect=(),
) -> dict:
    """Write a partitioned folder (module docstring) from ``chunks`` covering every user in order.

    Only a chunk and one item block are in memory at a time: each chunk's ratings go to the
    user blocks' files as they come and to per-item-block spill files, which are then sorted
    one at a time into the item blocks. Returns the manifest written.
    """
    n_users, n_items = len(user_ids), len(item_ids)
    count = len(user_bounds) - 1
    manifest = {
        **manifest,
        "schema_version": SCHEMA_VERSION,
        "fastmf_version": __version__,
        "layout": LAYOUT,
        "users": n_users,
        "items": n_items,
        "has_timestamps": bool(has_timestamps),
    }

    def write(tmp):
        for folder in ("by_user", "by_item", "spill"):
            os.mkdir(os.path.join(tmp, folder))
        user_counts, item_counts, total = _write_user_blocks(tmp, chunks, user_bounds, item_bounds, has_timestamps)
        if total != int(np.sum(user_counts)) or len(user_counts) != count:
            raise FastMFError("internal error: the chunks did not cover the users once each")
        for q in range(count):
            _sort_item_block(tmp, q, int(item_bounds[q]), int(item_bounds[q + 1]))
        os.rmdir(os.path.join(tmp, "spill"))
        pq.write_table(pa.table({"user_id": user_ids}), os.path.join(tmp, "user_ids.parquet"), compression="zstd")
        pq.write_table(pa.table({"item_id": item_ids}), os.path.join(tmp, "item_ids.parquet"), compression="zstd")
        if items is not None:
            pq.write_table(items, os.path.join(tmp, "items.parquet"), compression="zstd")
        for name, writer in (extra_files or {}).items():
            writer(os.path.join(tmp, name))
        files = {}
        for side in SIDES:
            for b in range(count):
                rel = f"{SIDES[side][0]}/part-{b:05d}.parquet"
                files[rel] = {
                    "bytes": os.path.getsize(os.path.join(tmp, rel)),
                    "sha256": _sha256_file(os.path.join(tmp, rel)),
                }
        manifest["ratings"] = total
        manifest["partitions"] = {
            "count": count,
            "user_bounds": [int(x) for x in user_bounds],
            "item_bounds": [int(x) for x in item_bounds],
            "user_ratings": [int(x) for x in user_counts],
            "item_ratings": [int(x) for x in item_counts],
            "files": files,
        }
        with open(os.path.join(tmp, "manifest.json"), "w") as fh:
            fh.write(jsonio.dumps(manifest, indent=2))
            fh.write("\n")

    write_folder(out_dir, write, force=force, protect=protect)
    return manifest


def _schema(side: str, timestamps: bool) -> pa.Schema:
    _, row, col = SIDES[side]
    fields = [(row, _INDEX), (col, _INDEX), ("rating", pa.float32())]
    if side == "items":
        fields.append(("entry", pa.int64()))
    elif timestamps:
        fields.append(("timestamp", pa.int64()))
    return pa.schema(fields)


def _write_user_blocks(tmp: str, chunks: Iterable[Chunk], user_bounds, item_bounds, has_timestamps: bool):
    """Stream the chunks into the user blocks' files and the item blocks' spill files; returns the
    ratings per user block and per item block and the total."""
    count = len(user_bounds) - 1
    user_schema, spill_schema = _schema("users", has_timestamps), _schema("items", False)
    user_counts = np.zeros(count, dtype=np.int64)
    item_counts = np.zeros(count, dtype=np.int64)
    spills = [
        pq.ParquetWriter(os.path.join(tmp, "spill", f"{q}.parquet"), spill_schema, compression="lz4")
        for q in range(count)
    ]
    writer, block, entry = None, -1, 0
    try:
        for chunk in chunks:
            n_rows = chunk.indptr.shape[0] - 1
            rows = (sk.row_ids(chunk.indptr) + np.int32(chunk.first_user)).astype(np.int32)
            items = np.asarray(chunk.items, dtype=np.int32)
            ratings = np.asarray(chunk.ratings, dtype=np.float32)
            entries = np.arange(entry, entry + items.shape[0], dtype=np.int64)
            # user side: the chunk's users, cut at the block bounds
            cuts = np.searchsorted(user_bounds, [chunk.first_user, chunk.first_user + n_rows], side="right") - 1
            for b in range(int(cuts[0]), min(int(cuts[1]), count - 1) + 1):
                lo = int(chunk.indptr[max(0, int(user_bounds[b]) - chunk.first_user)])
                hi = int(chunk.indptr[min(n_rows, int(user_bounds[b + 1]) - chunk.first_user)])
                while block < b:
                    if writer is not None:
                        writer.close()
                    block += 1
                    writer = pq.ParquetWriter(
                        os.path.join(tmp, "by_user", f"part-{block:05d}.parquet"), user_schema, compression="zstd"
                    )
                cols = {"user": rows[lo:hi], "item": items[lo:hi], "rating": ratings[lo:hi]}
                if has_timestamps:
                    cols["timestamp"] = np.asarray(chunk.timestamps[lo:hi], dtype=np.int64)
                writer.write_table(pa.table(cols, schema=user_schema))
                user_counts[b] += hi - lo
            # item side: every rating to its item block's spill, in CSR order
            owner = (np.searchsorted(item_bounds, items, side="right") - 1).astype(np.int32)
            ptr, perm = sk.counting_sort(owner, count)
            for q in np.flatnonzero(np.diff(ptr)):
                sel = perm[ptr[q] : ptr[q + 1]]
                spills[q].write_table(
                    pa.table(
                        {"item": items[sel], "user": rows[sel], "rating": ratings[sel], "entry": entries[sel]},
                        schema=spill_schema,
                    )
                )
                item_counts[q] += sel.shape[0]
            entry += items.shape[0]
        while block < count - 1:  # blocks after the last chunk's (no ratings) still get a file
            if writer is not None:
                writer.close()
            block += 1
            writer = pq.ParquetWriter(
                os.path.join(tmp, "by_user", f"part-{block:05d}.parquet"), user_schema, compression="zstd"
            )
    finally:
        if writer is not None:
            writer.close()
        for spill in spills:
            spill.close()
    return user_counts, item_counts, entry


def _sort_item_block(tmp: str, q: int, start: int, stop: int) -> None:
    """Sort item block ``q``'s spill (CSR order) by (item, user) into its part file and remove the spill."""
    spill = os.path.join(tmp, "spill", f"{q}.parquet")
    table = pq.read_table(spill)
    items = _column(table, "item")
    ptr, perm = sk.counting_sort((items - start).astype(np.int32), max(stop - start, 1))
    del ptr
    out = pa.table(
        {name: _column(table, name)[perm] for name in ("item", "user", "rating", "entry")},
        schema=_schema("items", False),
    )
    del table
    pq.write_table(out, os.path.join(tmp, "by_item", f"part-{q:05d}.parquet"), compression="zstd")
    os.remove(spill)


def _column(table: pa.Table, name: str) -> np.ndarray:
    col = table[name]
    return (col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)).to_numpy(zero_copy_only=False)


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(1 << 22), b""):
            digest.update(piece)
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading


def is_partitioned(manifest: dict) -> bool:
    return manifest.get("layout") == LAYOUT


def open_partitions(folder: str) -> Partitions:
    """The checked manifest of a partitioned folder: every field's type, bounds from 0 to the counts,
    ratings per block summing to the total, and every listed file present with its recorded size."""
    manifest_path = os.path.join(folder, "manifest.json")
    if not os.path.isdir(folder):
        raise InputError(folder, "no such folder (a partitioned folder written by fastmf prepare --partitions)")
    manifest = read_manifest(manifest_path)
    if not is_partitioned(manifest):
        raise InputError(folder, "not a partitioned folder: write one with fastmf prepare SOURCE OUT --partitions N")
    scale = manifest_scale(manifest, manifest_path)

    def bad(field, expected, value):
        return InputError(manifest_path, f"field '{field}' must be {expected}, got {json_kind(value)}")

    for name in ("users", "items", "ratings"):
        if not isinstance(manifest.get(name), int):
            raise bad(name, "a whole number >= 0", manifest.get(name))
    parts = manifest.get("partitions")
    if not isinstance(parts, dict):
        raise bad("partitions", "an object", parts)
    count = parts.get("count")
    if not (isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MAX_PARTITIONS):
        raise bad("partitions.count", f"a whole number from 1 to {MAX_PARTITIONS}", count)
    lists = {}
    for name, length, total in (
        ("user_bounds", count + 1, manifest["users"]),
        ("item_bounds", count + 1, manifest["items"]),
        ("user_ratings", count, manifest["ratings"]),
        ("item_ratings", count, manifest["ratings"]),
    ):
        value = parts.get(name)
        ok = (
            isinstance(value, list)
            and len(value) == length
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value)
        )
        if ok and name.endswith("bounds"):
            ok = value[0] == 0 and value[-1] == total and all(a <= b for a, b in zip(value, value[1:]))
        elif ok:
            ok = sum(value) == total
        if not ok:
            what = (
                f"{length} indices rising from 0 to {total:,}"
                if name.endswith("bounds")
                else f"{length} counts summing to {total:,}"
            )
            raise bad(f"partitions.{name}", what, value)
        lists[name] = tuple(value)
    files = parts.get("files")
    if not isinstance(files, dict):
        raise bad("partitions.files", "an object", files)
    records = []
    for side in SIDES:
        for b in range(count):
            rel = f"{SIDES[side][0]}/part-{b:05d}.parquet"
            rec = files.get(rel)
            if not (isinstance(rec, dict) and isinstance(rec.get("bytes"), int) and isinstance(rec.get("sha256"), str)):
                raise bad(f"partitions.files.{rel}", '{"bytes": N, "sha256": HEX}', rec)
            path = os.path.join(folder, rel)
            if not os.path.isfile(path):
                raise InputError(
                    path,
                    "missing partition file (the folder is incomplete; write it again with "
                    "fastmf prepare --partitions)",
                )
            if os.path.getsize(path) != rec["bytes"]:
                raise InputError(
                    path,
                    f"{os.path.getsize(path):,} bytes where the manifest says {rec['bytes']:,} "
                    "(the file changed since fastmf wrote it)",
                )
            records.append((rel, rec["bytes"], rec["sha256"]))
    for rel in ("user_ids.parquet", "item_ids.parquet"):
        if not os.path.isfile(os.path.join(folder, rel)):
            raise InputError(os.path.join(folder, rel), "missing id map (the folder is incomplete)")
    return Partitions(
        os.path.abspath(folder),
        manifest["users"],
        manifest["items"],
        manifest["ratings"],
        scale,
        bool(manifest.get("has_timestamps", False)),
        lists["user_bounds"],
        lists["item_bounds"],
        lists["user_ratings"],
        lists["item_ratings"],
        tuple(records),
        manifest.get("source", os.path.abspath(folder)),
    )


def read_block(parts: Partitions, side: str, b: int, timestamps: bool = False) -> BlockRatings:
    """Block ``b`` of ``side`` ("users" or "items"), checked against the manifest and for consistency.

    The file's size and SHA-256 (hashed as a stream) must be the manifest's; it is then read
    :data:`CHUNK_RATINGS` rows at a time into arrays of its own, so reading holds little beyond
    the block itself. The columns must have their types, the rows lie in the block and be
    ascending, the other side's indices lie in the catalogue and be strictly ascending within a
    row (no pair twice), the count be the manifest's, the ratings be in the scale, and (by item)
    the CSR positions in range. Any failure is an
    :class:`InputError` naming the file.
    """
    rel = parts.relpath(side, b)
    path = parts.path(rel)
    _, size, sha = parts.file_record(rel)
    try:
        found = (os.path.getsize(path), _sha256_file(path))
    except OSError as exc:
        raise InputError(path, f"cannot read the partition file: {exc.strerror or exc}") from None
    if found != (size, sha):
        raise InputError(
            path,
            "the file's size or SHA-256 differs from the manifest (it changed since fastmf wrote "
            "it): write the folder again with fastmf prepare --partitions",
        )
    _, row_name, col_name = SIDES[side]
    schema = _schema(side, parts.has_timestamps and side == "users")
    where = Where(
        path,
        1,
        "row",
        columns={"user_id": row_name, "item_id": col_name},
        range_hint=" (the manifest's scale)",
        empty="empty block",
    )
    names = [f.name for f in schema if f.name != "timestamp" or timestamps]
    try:
        with pq.ParquetFile(path, pre_buffer=False) as pf:
            found_schema = pf.schema_arrow
            for field in schema:
                if field.name not in found_schema.names:
                    raise InputError(path, "missing column in a partition file", column=field.name)
                if found_schema.field(field.name).type != field.type:
                    raise InputError(
                        path,
                        f"column has type {found_schema.field(field.name).type}: expected {field.type}",
                        column=field.name,
                    )
            expected = parts.block_ratings(side)[b]
            if pf.metadata.num_rows != expected:
                raise InputError(path, f"{pf.metadata.num_rows:,} ratings where the manifest says {expected:,}")
            logical = {row_name: "user_id", col_name: "item_id", "rating": "rating"}
            columns = read_checked(pf, names, expected, logical, parts.rating_range, where)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(path, f"not a readable Parquet file: {first_line(exc)}") from None
    rows, cols, ratings = columns[row_name], columns[col_name], columns["rating"]
    start, stop = parts.bounds(side)[b], parts.bounds(side)[b + 1]
    other = parts.n_items if side == "users" else parts.n_users
    if rows.size:
        outside = (rows < start) | (rows >= stop)
        if outside.any():
            k = int(np.argmax(outside))
            raise where.error(k, "user_id", f"index {rows[k]} is outside the block's {start:,}..{stop - 1:,}")
        outside = (cols < 0) | (cols >= other)
        if outside.any():
            k = int(np.argmax(outside))
            raise where.error(k, "item_id", f"index {cols[k]} is outside 0..{other - 1:,}")
        step = np.diff(rows)
        unordered = (step < 0) | ((step == 0) & (np.diff(cols) <= 0))
        if unordered.any():
            k = int(np.argmax(unordered)) + 1
            raise where.error(k, "item_id", f"not sorted by ({row_name}, {col_name}) or a repeated pair")
    if side == "users":
        entries = None  # positions parts.offset(b) onwards, in order: not materialised
    else:
        entries = columns["entry"]
        outside = (entries < 0) | (entries >= parts.n_ratings)
        if outside.any():
            k = int(np.argmax(outside))
            raise InputError(
                path, f"row {k + 1}: position {entries[k]} is outside 0..{parts.n_ratings - 1:,}", column="entry"
            )
    stamps = columns.get("timestamp")
    return BlockRatings(side, start, stop, rows, cols, ratings, entries, stamps)


def read_ids(parts: Partitions, side: str) -> np.ndarray:
    """The ids of every user (or item) index, checked: the manifest's count, no missing value, strictly
    ascending (the order of :class:`fastmf.data_prep.dataset.IdMap`)."""
    name = "user_id" if side == "users" else "item_id"
    path = parts.path(f"{name.split('_')[0]}_ids.parquet")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(path, f"not a readable Parquet file: {first_line(exc)}") from None
    if name not in table.column_names:
        raise InputError(path, "missing column in an id map", column=name)
    col = table[name]
    if not (pa.types.is_integer(col.type) or pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InputError(path, f"column has type {col.type}: expected integers or strings", column=name)
    if col.null_count:
        raise InputError(path, "missing value", column=name)
    ids = col.to_numpy(zero_copy_only=False)
    if ids.dtype == object:
        ids = ids.astype(str)
    if ids.shape[0] != parts.n_entities(side):
        raise InputError(path, f"{ids.shape[0]:,} ids where the manifest says {parts.n_entities(side):,}")
    if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise InputError(path, "ids are not strictly ascending", column=name)
    return ids


def whole_table(parts: Partitions) -> pa.Table:
    """Every rating of the folder as ``user_id, item_id, rating[, timestamp]`` in CSR order, each block checked
    (:func:`read_block`): the table ``fastmf prepare`` would have written unpartitioned."""
    user_ids, item_ids = read_ids(parts, "users"), read_ids(parts, "items")
    pieces = []
    for b in range(parts.count):
        block = read_block(parts, "users", b, timestamps=True)
        cols = {"user_id": user_ids[block.rows], "item_id": item_ids[block.cols], "rating": block.ratings}
        if block.timestamps is not None:
            cols["timestamp"] = block.timestamps
        pieces.append(pa.table(cols))
    if not pieces or sum(p.num_rows for p in pieces) == 0:
        raise InputError(parts.folder, "empty: no ratings")
    return pa.concat_tables(pieces)


__all__ = [
    "LAYOUT",
    "SIDES",
    "Chunk",
    "Partitions",
    "BlockRatings",
    "block_bounds",
    "check_count",
    "dataset_chunks",
    "write_partitioned",
    "is_partitioned",
    "open_partitions",
    "read_block",
    "read_ids",
    "whole_table",
]
