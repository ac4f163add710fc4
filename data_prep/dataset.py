"""The in-memory rating dataset: id maps, CSR by user, CSC by item, item features.

Original user and item ids (integers or strings) map to dense indices ``0..n-1``
in sorted id order; :class:`IdMap` converts both ways with vectorised lookups.
Ratings are held as a CSR matrix by user (``indptr`` int64, ``indices`` int32,
``data`` float32, optional ``timestamps`` int64 aligned with it); the CSC matrix
by item is derived on first use. Building from a table never loops in Python
over ratings.
"""

from __future__ import annotations

import importlib.resources
import os
import warnings
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from fastmf.common.errors import FastMFError
from fastmf.data_prep.loaders import COLUMN_ALIASES, ColumnSpec, RawData, load_raw
from fastmf.data_prep.prepared import release_arrow
from fastmf.data_prep.validate import PYTHON_RANGE_HINT, Where, as_numbers, check_ratings, check_scale
from fastmf.kernels import sparse as sk


class DuplicateRatingsWarning(UserWarning):
    """Some (user, item) pairs were rated more than once; the latest rating was kept."""


class IdMap:
    """Two-way map between original ids (int or str) and dense int32 indices."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids)
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted = self.ids[self._order]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __eq__(self, other) -> bool:
        return isinstance(other, IdMap) and len(self) == len(other) and bool(np.all(self.ids == other.ids))

    __hash__ = None

    @property
    def is_int(self) -> bool:
        return self.ids.dtype.kind in "iu"

    def index_of(self, values, missing: int = -1) -> np.ndarray:
        """Dense indices of ``values``; ids not in the map get ``missing``."""
        values = self._coerce(values)
        impossible = None
        if self.is_int and values.dtype.kind in "iu" and values.dtype != self.ids.dtype:
            # int64 against uint64 ids (or the reverse): compare exactly, never through floats
            if self.ids.dtype.kind == "u" and values.dtype.kind == "i":
                impossible = values < 0
            elif self.ids.dtype.kind == "i" and values.dtype.kind == "u":
                impossible = values > np.iinfo(np.int64).max
            if impossible is not None:
                values = np.where(impossible, 0, values).astype(self.ids.dtype)
        if len(self) == 0:
            return np.full(values.shape, missing, dtype=np.int32)
        pos = np.searchsorted(self._sorted, values)
        pos = np.minimum(pos, len(self) - 1)
        found = self._sorted[pos] == values
        if impossible is not None:
            found &= ~impossible
        return np.where(found, self._order[pos], missing).astype(np.int32)

    def index(self, value) -> int:
        """Dense index of one id; KeyError when it is unknown."""
        idx = int(self.index_of(np.asarray([value]))[0])
        if idx < 0:
            raise KeyError(value)
        return idx

    def extend(self, values) -> IdMap:
        """A map with the ids of ``values`` not yet present appended (existing indices unchanged)."""
        values = self._coerce(values)
        new = np.unique(values[self.index_of(values) < 0])
        if new.size == 0:
            return self
        ids = self.ids
        if ids.size == 0:
            return IdMap(new)
        if ids.dtype.kind in "iu" and new.dtype.kind in "iu" and ids.dtype != new.dtype:
            # int64 and uint64 ids (past 2^63) together: one type that holds both exactly, or an error
            both = (ids, new)
            if all(a.dtype.kind == "i" or a.max() <= np.iinfo(np.int64).max for a in both):
                ids, new = (a.astype(np.int64) for a in both)
            elif all(a.dtype.kind == "u" or a.min() >= 0 for a in both):
                ids, new = (a.astype(np.uint64) for a in both)
            else:
                raise FastMFError(
                    "ids mix negative numbers and numbers past 2^63 - 1, which no integer type "
                    "holds together: use string ids"
                )
        if ids.dtype.kind in "US":  # a string map widens to the longest id (astype would cut longer ones)
            return IdMap(np.concatenate([ids, new.astype(str)]))
        return IdMap(np.concatenate([ids, new.astype(ids.dtype)]))

    def _coerce(self, values) -> np.ndarray:
        """``values`` as integers for an integer map (exactly: int64 or uint64), as strings for a string map."""
        if self.ids.size and self.is_int and not (isinstance(values, np.ndarray) and values.dtype.kind in "iuf"):
            values = _whole_numbers(values)
        values = np.asarray(values)
        if self.ids.size and self.is_int and values.dtype.kind not in "iu":
            try:
                values = values.astype(np.int64)
            except (TypeError, ValueError, OverflowError):
                raise FastMFError(f"ids {values[:3].tolist()} are not integers like this dataset's ids") from None
        if self.ids.size and not self.is_int and values.dtype.kind in "iu":
            values = values.astype(str)
        return values

    @staticmethod
    def factorize(column) -> tuple[IdMap, np.ndarray]:
        """Dense codes (int32, in sorted-id order) for an Arrow or NumPy column of ids."""
        if isinstance(column, (pa.Array, pa.ChunkedArray)):
            if pa.types.is_integer(column.type):
                column = column.to_numpy()
            else:
                column = pc.cast(column, pa.string())
                enc = pc.dictionary_encode(column)
                enc = enc.combine_chunks() if isinstance(enc, pa.ChunkedArray) else enc
                uniques = np.asarray(enc.dictionary.to_pylist(), dtype=str)
                order = np.argsort(uniques, kind="stable")
                rank = np.empty_like(order)
                rank[order] = np.arange(order.size)
                codes = rank[enc.indices.to_numpy()].astype(np.int32)
                return IdMap(uniques[order]), codes
        values = np.asarray(column)
        if values.dtype.kind in "iu" and values.size:
            lo, hi = int(values.min()), int(values.max())
            if lo >= 0 and hi < max(4 * values.size, 1 << 24):
                present = np.zeros(hi + 1, dtype=np.bool_)
                present[values] = True
                lut = np.cumsum(present, dtype=np.int32) - 1
                return IdMap(np.flatnonzero(present).astype(np.int64)), lut[values]
        uniques, codes = np.unique(values, return_inverse=True)
        return IdMap(uniques), codes.astype(np.int32).ravel()


def _whole_numbers(values) -> np.ndarray:
    """Integers (or their text) exactly: int64 when they fit, uint64 for ids past 2^63, else as given."""
    for dtype in (np.int64, np.uint64):
        try:
            return np.asarray(values, dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            continue
    return np.asarray(values)


class Dataset:
    """Ratings as CSR by user and CSC by item, with id maps and item features.

    Attributes: ``user_map``, ``item_map`` (:class:`IdMap`); ``indptr`` (int64),
    ``indices`` (int32 item indices), ``data`` (float32 ratings) and
    ``timestamps`` (int64 or None) of the CSR matrix; ``titles`` (one per item
    or None); ``feature_indptr``/``feature_indices``/``feature_names``: the
    item-feature (genre) matrix as CSR; ``rating_range`` the rating scale (None for an
    implicit table, see :attr:`implicit`); ``in_input_order``: whether the CSR entries are the
    source's rows in the source's order, none dropped (set by the loaders; False when not known).
    """

    def __init__(
        self,
        user_map: IdMap,
        item_map: IdMap,
        indptr,
        indices,
        data,
        timestamps=None,
        titles=None,
        feature_indptr=None,
        feature_indices=None,
        feature_names=None,
        source: str = "",
        rating_range=(0.5, 5.0),
        items_table: pa.Table | None = None,
    ):
        self.user_map = user_map
        self.item_map = item_map
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.timestamps = None if timestamps is None else np.ascontiguousarray(timestamps, dtype=np.int64)
        self.titles = titles
        n_items = len(item_map)
        if feature_indptr is None:
            feature_indptr = np.zeros(n_items + 1, dtype=np.int64)
            feature_indices = np.zeros(0, dtype=np.int32)
            feature_names = []
        self.feature_indptr = np.asarray(feature_indptr, dtype=np.int64)
        self.feature_indices = np.asarray(feature_indices, dtype=np.int32)
        self.feature_names = list(feature_names)
        self.source = source
        self.rating_range = None if rating_range is None else tuple(float(x) for x in rating_range)
        self.items_table = items_table
        self.in_input_order = False

    # ------------------------------------------------------------------ shape
    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @property
    def n_ratings(self) -> int:
        return int(self.indices.shape[0])

    @property
    def implicit(self) -> bool:
        """Whether the ratings are an implicit (user, item[, weight]) table: no rating scale, every row a
        positive (the values are weights)."""
        return self.rating_range is None

    @property
    def density(self) -> float:
        return self.n_ratings / max(1, self.n_users * self.n_items)

    @property
    def global_mean(self) -> float:
        return float(self.data.mean(dtype=np.float64)) if self.n_ratings else 0.0

    @cached_property
    def user_counts(self) -> np.ndarray:
        return np.diff(self.indptr).astype(np.int64)

    @cached_property
    def item_counts(self) -> np.ndarray:
        return np.diff(self.csc[0]).astype(np.int64)

    @property
    def csr(self):
        """``(indptr, indices, data)`` of the user-by-item matrix."""
        return self.indptr, self.indices, self.data

    @cached_property
    def csc(self):
        """``(indptr, indices, data)`` of the item-by-user matrix (rows ascending)."""
        return sk.transpose_csr(self.indptr, self.indices, self.data, self.n_items)

    @cached_property
    def user_of_entry(self) -> np.ndarray:
        """User index of every CSR entry (int32)."""
        return sk.row_ids(self.indptr)

    def to_scipy(self):
        """The ratings as a ``scipy.sparse.csr_matrix`` (users x items)."""
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(self.n_users, self.n_items))

    def __repr__(self) -> str:
        return (
            f"Dataset({self.n_ratings:,} ratings, {self.n_users:,} users, {self.n_items:,} items, "
            f"source={self.source!r})"
        )

    # ------------------------------------------------------------------ items
    def item_features(self):
        """``(indptr, indices, names)`` of the item-feature CSR matrix."""
        return self.feature_indptr, self.feature_indices, self.feature_names

    def title_of(self, item_index: int) -> str:
        if self.titles is None:
            return str(self.item_map.ids[item_index])
        title = self.titles[item_index]
        return str(self.item_map.ids[item_index]) if title is None else str(title)

    def with_features(self, item_ids, feature_names_per_row) -> Dataset:
        """A copy whose item features come from (item id, feature) pairs instead of genres."""
        item_idx = self.item_map.index_of(np.asarray(item_ids))
        keep = item_idx >= 0
        names = np.asarray(feature_names_per_row, dtype=str)[keep]
        fmap, fcodes = IdMap.factorize(names)
        indptr, order = sk.coo_order(item_idx[keep].astype(np.int32), fcodes, self.n_items, len(fmap))
        fidx = fcodes[order]
        # drop repeated (item, feature) pairs
        rows = sk.row_ids(indptr)
        first = np.ones(fidx.size, dtype=bool)
        first[1:] = (fidx[1:] != fidx[:-1]) | (rows[1:] != rows[:-1])
        counts = np.bincount(rows[first], minlength=self.n_items)
        new_indptr = np.concatenate([[0], np.cumsum(counts)])
        out = self._copy()
        out.feature_indptr, out.feature_indices, out.feature_names = new_indptr, fidx[first], list(fmap.ids)
        return out

    # ------------------------------------------------------------------ subsets
    def subset(self, mask: np.ndarray) -> Dataset:
        """The ratings where ``mask`` (over CSR entries) is true, with the same id maps and items."""
        mask = np.asarray(mask, dtype=bool)
        indptr = _indptr_of(self.user_of_entry[mask], self.n_users)
        out = self._copy()
        out.indptr, out.indices, out.data = indptr, self.indices[mask], self.data[mask]
        out.timestamps = None if self.timestamps is None else self.timestamps[mask]
        return out

    def _copy(self) -> Dataset:
        return Dataset(
            self.user_map,
            self.item_map,
            self.indptr,
            self.indices,
            self.data,
            self.timestamps,
            self.titles,
            self.feature_indptr,
            self.feature_indices,
            self.feature_names,
            self.source,
            self.rating_range,
            self.items_table,
        )

    def align(self, other: Dataset) -> Dataset:
        """``other``'s ratings re-indexed on this dataset's id maps (unknown ids appended as cold)."""
        return realign(other, self.user_map, self.item_map, self.items_table)

    # ------------------------------------------------------------------ constructors
    # Every constructor goes through build_dataset, which validates the ratings (validate.check_ratings):
    # no missing ids, no NaN/inf ratings, ratings inside ``rating_range`` (default 0.5..5; None for an
    # implicit table, whose values are positive weights), no empty input. Problems raise one-line
    # InputErrors naming the input ("the arrays", "the matrix", "the table"), the 0-based row and the column.
    @classmethod
    def from_arrays(cls, users, items, ratings, timestamps=None, **kwargs) -> Dataset:
        """Build from parallel arrays of (user id, item id, rating[, timestamp]).

        Keywords: ``rating_range=(lo, hi)`` (default 0.5..5; None: implicit weights), ``source``,
        ``user_map``/``item_map`` (fixed id maps).
        """
        where = Where(
            "the arrays",
            range_hint=PYTHON_RANGE_HINT,
            columns={"user_id": "users", "item_id": "items", "rating": "ratings", "timestamp": "timestamps"},
        )
        arrays = {"user_id": users, "item_id": items, "rating": ratings}
        if timestamps is not None:
            arrays["timestamp"] = timestamps
        cols = {name: as_numbers(_arrow_array(values, name, where), name, where) for name, values in arrays.items()}
        lengths = {where.column(name): len(col) for name, col in cols.items()}
        if len(set(lengths.values())) > 1:
            raise FastMFError(f"the arrays differ in length: {', '.join(f'{k} {v:,}' for k, v in lengths.items())}")
        return build_dataset(pa.table(cols), where=where, **kwargs)

    @classmethod
    def from_scipy(cls, matrix, **kwargs) -> Dataset:
        """Build from a scipy.sparse matrix (rows = users, columns = items, ids = positions).

        Every stored entry is a rating (an explicit zero too); ``rating_range`` as in :meth:`from_arrays`.
        """
        coo = matrix.tocoo()
        n_users, n_items = matrix.shape
        rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        where = Where(
            "the matrix",
            range_hint=PYTHON_RANGE_HINT,
            empty="no ratings (no stored entries)",
            locate=lambda k: f"row {rows[k]}, column {cols[k]}",
        )
        return build_dataset(
            pa.table(
                {
                    "user_id": rows,
                    "item_id": cols,
                    "rating": _arrow_array(
                        coo.data.astype(np.float32) if coo.data.dtype == bool else coo.data, "rating", where
                    ),
                }
            ),
            user_map=IdMap(np.arange(n_users, dtype=np.int64)),
            item_map=IdMap(np.arange(n_items, dtype=np.int64)),
            where=where,
            **kwargs,
        )

    @classmethod
    def from_table(cls, table, **kwargs) -> Dataset:
        """Build from a pyarrow (or pandas) table with user, item and rating columns.

        Columns are found by their common spellings (``userId``, ``movieId``, ``stars``...); ratings
        written as text are read as numbers. ``rating_range`` as in :meth:`from_arrays`.
        """
        if not isinstance(table, pa.Table):
            try:
                table = pa.Table.from_pandas(table, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise FastMFError(f"the table: cannot convert it to Arrow: {str(exc).splitlines()[0]}") from None
        names = {}
        for logical in ("user_id", "item_id", "rating", "timestamp"):
            hit = next((a for a in COLUMN_ALIASES[logical] if a in table.column_names), None)
            if hit is None and logical != "timestamp":
                raise FastMFError(f"table has no {logical} column (columns: {', '.join(table.column_names)})")
            if hit is not None:
                names[logical] = hit
        where = Where("the table", columns=names, range_hint=PYTHON_RANGE_HINT)
        cols = [as_numbers(table[actual], logical, where) for logical, actual in names.items()]
        return build_dataset(pa.table(cols, names=list(names)), where=where, **kwargs)


def to_dataset(data) -> Dataset:
    """Accept a Dataset, a path (anything :func:`load_dataset` reads), a scipy.sparse matrix or a
    pyarrow/pandas table of (user, item, rating)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(os.fspath(data))
    if hasattr(data, "tocoo") and hasattr(data, "shape"):
        return Dataset.from_scipy(data)
    if hasattr(data, "column_names") or hasattr(data, "columns"):
        return Dataset.from_table(data)
    raise FastMFError(
        f"cannot use {type(data).__name__} as ratings: pass a fastmf Dataset, a scipy.sparse "
        "matrix or a pyarrow/pandas table of (user, item, rating)"
    )


def realign(other: Dataset, user_map: IdMap, item_map: IdMap, items_table: pa.Table | None = None) -> Dataset:
    """``other``'s ratings on the given id maps; ids they lack are appended (indices past the
    originals, so a model trained on those maps sees them as cold)."""
    if other.user_map == user_map and other.item_map == item_map:
        return other
    users = other.user_map.ids[other.user_of_entry]
    items = other.item_map.ids[other.indices]
    table = pa.table({"user_id": users, "item_id": items, "rating": other.data})
    if other.timestamps is not None:
        table = table.append_column("timestamp", pa.array(other.timestamps))
    # ``other`` is a Dataset: its ratings were checked when it was built
    return build_dataset(
        table,
        items_table if items_table is not None else other.items_table,
        source=other.source,
        rating_range=other.rating_range,
        user_map=user_map.extend(users),
        item_map=item_map.extend(items),
        checked=True,
    )


def build_dataset(
    ratings: pa.Table,
    items: pa.Table | None = None,
    source: str = "",
    rating_range=(0.5, 5.0),
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
    where: Where | None = None,
    checked: bool = False,
) -> Dataset:
    """Vectorised construction of a :class:`Dataset` from an Arrow ratings table.

    The ratings are validated first (:func:`fastmf.data_prep.validate.check_ratings`, the one
    validation of every entry point; ``where`` says how to name the input in its messages,
    "the table" by default), unless ``checked`` says a loader already did. ``rating_range``
    None makes an implicit table (the ``rating`` column holds positive weights).

    Duplicate (user, item) pairs keep the rating with the latest timestamp (the
    last in file order when timestamps tie or are absent) and raise a
    :class:`DuplicateRatingsWarning` with their count.
    """
    if not checked:
        where = where or Where("the table", range_hint=PYTHON_RANGE_HINT)
        rating_range = check_scale(rating_range, where.range_hint)
        ratings = check_ratings(ratings, rating_range, where)
    return _assemble(dict(zip(ratings.column_names, ratings.columns)), items, source, rating_range, user_map, item_map)


def _assemble(
    columns: dict, items, source: str, rating_range, user_map: IdMap | None = None, item_map: IdMap | None = None
) -> Dataset:
    """The :class:`Dataset` of checked rating columns (name -> Arrow column), taking each out of ``columns``
    as it is used: when the caller holds no other reference (:func:`dataset_from_raw`) a column's memory
    goes as soon as it is converted, so the ids' int64 columns never sit beside the CSR arrays."""
    ids = columns.pop("user_id")
    if user_map is None:
        user_map, users = IdMap.factorize(ids)
    else:
        users = _index_known(user_map, ids)
    ids = columns.pop("item_id")
    if item_map is None:
        item_map, items_idx = IdMap.factorize(ids)
    else:
        items_idx = _index_known(item_map, ids)
    del ids
    release_arrow()
    in_order = sk.lex_sorted(users, items_idx)
    if in_order:  # a prepared folder's ratings (and MovieLens files): already in CSR order, nothing to move
        indptr = _indptr_of(users, len(user_map))
        order = slice(None)
    else:
        indptr, order = sk.coo_order(users, items_idx, len(user_map), len(item_map))
    del users
    indices = items_idx[order]
    del items_idx
    data = _numpy(columns.pop("rating")).astype(np.float32, copy=False)[order]
    has_time = "timestamp" in columns
    timestamps = _numpy(columns.pop("timestamp")).astype(np.int64, copy=False)[order] if has_time else None
    del order
    release_arrow()
    keep, dropped = sk.latest_of_duplicates(
        indptr, indices, timestamps if has_time else np.zeros(0, dtype=np.int64), has_time
    )
    if dropped:
        warnings.warn(
            f"{source or 'ratings'}: {dropped:,} duplicate (user, item) ratings; kept the latest by timestamp",
            DuplicateRatingsWarning,
            stacklevel=3,
        )
        indptr = _indptr_of(sk.row_ids(indptr)[keep], len(user_map))
        indices, data = indices[keep], data[keep]
        timestamps = None if timestamps is None else timestamps[keep]
    titles, fptr, fidx, fnames = _item_metadata(items, item_map)
    dataset = Dataset(
        user_map,
        item_map,
        indptr,
        indices,
        data,
        timestamps,
        titles,
        fptr,
        fidx,
        fnames,
        source=source,
        rating_range=rating_range,
        items_table=items,
    )
    dataset.in_input_order = bool(in_order and not dropped)
    return dataset


def _indptr_of(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """The CSR ``indptr`` (int64) of entries whose row indices ``rows`` are in non-decreasing order:
    ``indptr[r]`` is the first entry of row ``r`` or later, found by binary search (0.03 s for 32 M
    entries against 0.19 s for counting them, which also converts int32 rows to int64 first)."""
    fits = rows.dtype.kind in "iu" and n_rows <= np.iinfo(rows.dtype).max
    needles = np.arange(n_rows + 1, dtype=rows.dtype if fits else np.int64)
    return np.searchsorted(rows, needles, side="left").astype(np.int64, copy=False)


def _arrow_array(values, name: str, where: Where) -> pa.Array:
    """One of the parallel arrays of :meth:`Dataset.from_arrays` as an Arrow array (types checked later)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    given = values
    values = np.asarray(values)
    if name in ("user_id", "item_id") and values.dtype.kind == "f" and not isinstance(given, np.ndarray):
        values = _exact_big_ints(given, values, where.column(name))
    if values.ndim != 1:
        raise FastMFError(f"the arrays: {where.column(name)} must be one-dimensional, got shape {values.shape}")
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise FastMFError(f"the arrays: cannot read {where.column(name)}: {str(exc).splitlines()[0]}") from None


def _exact_big_ints(given, floats: np.ndarray, name: str) -> np.ndarray:
    """Python ints past 2^63 - 1, which NumPy turns into (inexact) floats, as exact uint64."""
    try:
        np.asarray(given, dtype=np.int64)
        return floats  # no overflow: they are floats indeed
    except OverflowError:
        pass
    except (TypeError, ValueError):
        return floats
    try:
        exact = np.asarray(given, dtype=np.uint64)
    except (OverflowError, TypeError, ValueError):
        raise FastMFError(
            f"the arrays: {name} mix negative ids and ids past 2^63 - 1, which no integer type "
            "holds together: pass them as strings"
        ) from None
    return exact if np.array_equal(exact.astype(np.float64), floats) else floats


def _numpy(column) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False)


def _index_known(id_map: IdMap, column) -> np.ndarray:
    values = _numpy(column) if isinstance(column, (pa.Array, pa.ChunkedArray)) else np.asarray(column)
    idx = id_map.index_of(values)
    if (idx < 0).any():
        raise FastMFError(f"id {values[np.flatnonzero(idx < 0)[0]]!r} is not in the id map")
    return idx


def _item_metadata(items: pa.Table | None, item_map: IdMap):
    """Titles per item index and the item-genre CSR from an ``item_id, title, genres`` table."""
    n_items = len(item_map)
    if items is None or items.num_rows == 0:
        return None, None, None, None
    idx = item_map.index_of(_numpy(items["item_id"]))
    known = idx >= 0
    titles = np.full(n_items, None, dtype=object)
    titles[idx[known]] = np.asarray(items["title"].to_pylist(), dtype=object)[known]
    genres = items["genres"].combine_chunks() if isinstance(items["genres"], pa.ChunkedArray) else items["genres"]
    flat = pc.list_flatten(genres)
    parent = pc.list_parent_indices(genres).to_numpy()
    if len(flat) == 0:
        return titles, None, None, None
    fmap, fcodes = IdMap.factorize(flat)
    item_of = idx[parent]
    ok = item_of >= 0
    rows, cols = item_of[ok], fcodes[ok]
    order = np.lexsort((cols, rows))  # a few genres per item: NumPy's stable sort, no kernel to compile
    return titles, _indptr_of(rows[order], n_items), cols[order], [str(x) for x in fmap.ids]


def dataset_from_raw(raw: RawData) -> Dataset:
    """The :class:`Dataset` of a loader's ratings, which it takes out of ``raw`` (``raw.ratings`` is None
    after): each column's memory goes as soon as it is converted."""
    if not raw.checked:
        return build_dataset(raw.ratings, raw.items, source=raw.source, rating_range=raw.rating_range)
    ratings, raw.ratings = raw.ratings, None
    columns = dict(zip(ratings.column_names, ratings.columns))
    del ratings
    release_arrow()  # what checking the table took
    return _assemble(columns, raw.items, raw.source, raw.rating_range)


def load_dataset(path: str | None = None, columns: ColumnSpec | None = None) -> Dataset:
    """Load a prepared folder, a MovieLens release or a ratings file; ``None`` = embedded ml-latest-small."""
    if path is None:
        path = embedded_path()
    return dataset_from_raw(load_raw(path, columns))


def embedded_path() -> str:
    """Folder of the ml-latest-small copy shipped inside the package (in ``fastmf/datasets``)."""
    return str(importlib.resources.files("fastmf.datasets") / "ml-latest-small")
