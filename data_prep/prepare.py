"""``fastmf prepare``: any supported source to a prepared Parquet folder."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc

from fastmf.data_prep.dataset import dataset_from_raw
from fastmf.data_prep.loaders import ColumnSpec, load_raw
from fastmf.data_prep.prepared import write_prepared


def prepare(source: str, out_dir: str, columns: ColumnSpec | None = None, force: bool = False) -> dict:
    """Validate ``source``, resolve duplicates and write ``out_dir``; returns the manifest."""
    raw = load_raw(source, columns)
    data = dataset_from_raw(raw)  # validates and resolves duplicates
    users = data.user_map.ids[data.user_of_entry]
    items = data.item_map.ids[data.indices]
    cols = {"user_id": pa.array(users), "item_id": pa.array(items), "rating": pa.array(data.data, pa.float32())}
    if data.timestamps is not None:
        cols["timestamp"] = pa.array(data.timestamps, pa.int64())
    ratings = pa.table(cols)
    items_table = raw.items
    if items_table is not None:
        items_table = items_table.select(["item_id", "title", "genres"])
        items_table = items_table.set_column(0, "item_id", pc.cast(items_table["item_id"], ratings["item_id"].type))
    manifest = {
        "source": os.path.abspath(source),
        "format": raw.format,
        "users": data.n_users,
        "items": data.n_items,
        "listed_items": None if items_table is None else items_table.num_rows,
        "rating_range": None if raw.implicit else list(raw.rating_range),
        "has_timestamps": data.timestamps is not None,
    }
    write_prepared(out_dir, ratings, items_table, manifest, force=force, protect=[source])
    manifest["ratings"] = data.n_ratings
    return manifest
