"""``fastmf prepare``: any supported source to a prepared Parquet folder.

A source already in CSR order (rows by user id, items ascending within a user, no duplicate pairs:
every MovieLens release's ``ratings.csv``) is written out as it was read. So while the dataset is
built (ids coded, order and duplicates checked: about a second for the ml-32m shape on one core),
the checked table is written to the ratings file on the other core (:class:`EarlyRatings`, about
1.5 s). If the build finds the rows in their input order with none dropped (and the types are those
a prepared folder stores), that file is the folder's; otherwise the built table is compared with it
and written again if it differs.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastmf.data_prep.dataset import dataset_from_raw
from fastmf.data_prep.loaders import ColumnSpec, load_raw
from fastmf.data_prep.partitions import block_bounds, check_count, dataset_chunks, write_partitioned
from fastmf.data_prep.prepared import RATINGS_FILE, write_contents, write_folder, write_ratings

#: rows between the samples of a table's user ids that :func:`likely_in_order` checks
ORDER_SAMPLE_STRIDE = 1009


def likely_in_order(ratings: pa.Table) -> bool:
    """Whether a checked ratings table looks grouped by user in ascending integer ids (a sample of rows
    says so), so that :class:`EarlyRatings` is worth starting: a guess, never the decision."""
    if ratings.num_rows == 0 or not all(pa.types.is_integer(ratings[c].type) for c in ("user_id", "item_id")):
        return False
    users = ratings["user_id"]
    chunks = users.chunks if isinstance(users, pa.ChunkedArray) else [users]
    # every chunk's first and last id and a strided sample between (zero-copy views of the chunks)
    parts = [np.concatenate([v[::ORDER_SAMPLE_STRIDE], v[-1:]]) for v in (c.to_numpy() for c in chunks if len(c))]
    sample = np.concatenate(parts)
    return bool(np.all(sample[1:] >= sample[:-1]))


class EarlyRatings:
    """Writes ``table`` to the ratings file ``path`` in a thread (Arrow's Parquet writer releases the GIL), in
    case it is what the folder's ratings file will hold. :meth:`same` waits for it and says whether the
    file holds exactly the table the caller computed (schema and every value); if not it is written
    again by the caller. Leaving the ``with`` block always waits for the thread, so it never writes
    into a folder being removed. ``table`` None writes nothing."""

    def __init__(self, table: pa.Table | None, path: str):
        self.table, self.path, self.error = table, path, None
        self.thread = None if table is None else threading.Thread(target=self._write, daemon=True)

    def _write(self):
        try:
            write_ratings(self.table, self.path)
        except BaseException as exc:  # raised in the caller's thread by same()
            self.error = exc

    def __enter__(self):
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.thread is not None:
            self.thread.join()
        self.table = None

    def wrote(self, schema: pa.Schema) -> bool:
        """Whether a table with exactly this schema was written (waits for the thread; its error is raised)."""
        if self.thread is None:
            return False
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.table.schema.equals(schema)

    def same(self, table: pa.Table) -> bool:
        """Whether the file holds exactly ``table`` (schema and values)."""
        return self.wrote(table.schema) and self.table.equals(table)


def prepare(
    source: str, out_dir: str, columns: ColumnSpec | None = None, force: bool = False, partitions: int | None = None
) -> dict:
    """Validate ``source``, resolve duplicates and write ``out_dir``; returns the manifest.

    With ``partitions`` N the folder is written in the partitioned layout (N user blocks and N item
    blocks, :mod:`fastmf.data_prep.partitions`) that :mod:`fastmf.distributed` trains on.
    """
    raw = load_raw(source, columns)
    if partitions is not None:
        data = dataset_from_raw(raw)  # validates and resolves duplicates
        check_count(partitions, data.n_users, data.n_items)
        items_table, manifest = _describe(raw, data, source)
        bounds = [block_bounds(counts, partitions) for counts in (data.user_counts, data.item_counts)]
        chunks = dataset_chunks(data.indptr, data.indices, data.data, data.timestamps)
        return write_partitioned(
            out_dir,
            data.user_map.ids,
            data.item_map.ids,
            chunks,
            *bounds,
            items_table,
            manifest,
            data.timestamps is not None,
            force=force,
            protect=[source],
        )
    early = raw.ratings if raw.checked and likely_in_order(raw.ratings) else None
    result = {}

    def write(tmp):
        path = os.path.join(tmp, RATINGS_FILE)
        with EarlyRatings(early, path) as first:
            data = dataset_from_raw(raw)  # validates and resolves duplicates
            items_table, manifest = _describe(raw, data, source)
            if data.in_input_order and first.wrote(ratings_schema(data)):
                table = early  # the source's rows in its order: what ratings_table would build
            else:
                table = ratings_table(data)
                if not first.same(table):
                    write_ratings(table, path)
        write_contents(tmp, table, items_table, manifest)
        result.update(manifest, ratings=data.n_ratings)

    write_folder(out_dir, write, force=force, protect=[source])
    return result


def _describe(raw, data, source: str) -> tuple[pa.Table | None, dict]:
    """The items table a prepared folder stores (ids in the dataset's id type) and its manifest."""
    items_table = raw.items
    if items_table is not None:
        items_table = items_table.select(["item_id", "title", "genres"])
        id_type = pa.array(data.item_map.ids[:1]).type
        items_table = items_table.set_column(0, "item_id", pc.cast(items_table["item_id"], id_type))
    manifest = {
        "source": os.path.abspath(source),
        "format": raw.format,
        "users": data.n_users,
        "items": data.n_items,
        "listed_items": None if items_table is None else items_table.num_rows,
        "rating_range": None if raw.implicit else list(raw.rating_range),
        "has_timestamps": data.timestamps is not None,
    }
    return items_table, manifest


def ratings_schema(data) -> pa.Schema:
    """The schema of :func:`ratings_table`: the id maps' types, float32 ratings, int64 timestamps."""
    fields = [
        ("user_id", pa.from_numpy_dtype(data.user_map.ids.dtype)),
        ("item_id", pa.from_numpy_dtype(data.item_map.ids.dtype)),
        ("rating", pa.float32()),
    ]
    if data.timestamps is not None:
        fields.append(("timestamp", pa.int64()))
    return pa.schema(fields)


def ratings_table(data) -> pa.Table:
    """The ratings of a dataset as a prepared folder stores them: original ids, CSR order."""
    cols = {
        "user_id": pa.array(np.repeat(data.user_map.ids, data.user_counts)),  # CSR order: each user's run
        "item_id": pa.array(data.item_map.ids[data.indices]),
        "rating": pa.array(data.data, pa.float32()),
    }
    if data.timestamps is not None:
        cols["timestamp"] = pa.array(data.timestamps, pa.int64())
    return pa.table(cols)
