"""``fastmf prepare``: any supported source to a prepared Parquet folder."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastmf.data_prep.dataset import dataset_from_raw
from fastmf.data_prep.loaders import ColumnSpec, load_raw
from fastmf.data_prep.partitions import block_bounds, check_count, dataset_chunks, write_partitioned
from fastmf.data_prep.prepared import write_prepared


def prepare(
    source: str, out_dir: str, columns: ColumnSpec | None = None, force: bool = False, partitions: int | None = None
) -> dict:
    """Validate ``source``, resolve duplicates and write ``out_dir``; returns the manifest.

    With ``partitions`` N the folder is written in the partitioned layout (N user blocks and N item
    blocks, :mod:`fastmf.data_prep.partitions`) that :mod:`fastmf.distributed` trains on.
    """
    raw = load_raw(source, columns)
    data = dataset_from_raw(raw)  # validates and resolves duplicates
    if partitions is not None:
        check_count(partitions, data.n_users, data.n_items)
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
    if partitions is not None:
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
    cols = {
        "user_id": pa.array(np.repeat(data.user_map.ids, data.user_counts)),  # CSR order: each user's run
        "item_id": pa.array(data.item_map.ids[data.indices]),
        "rating": pa.array(data.data, pa.float32()),
    }
    if data.timestamps is not None:
        cols["timestamp"] = pa.array(data.timestamps, pa.int64())
    write_prepared(out_dir, pa.table(cols), items_table, manifest, force=force, protect=[source])
    manifest["ratings"] = data.n_ratings
    return manifest
