"""Read MovieLens releases and generic rating files into Arrow tables (no pandas).

Every loader returns a :class:`RawData`: a ratings table with the columns
``user_id``, ``item_id``, ``rating`` (float32) and, when the source has it,
``timestamp`` (int64), plus an optional items table ``item_id, title, genres``
(genres as a list of strings; ``(no genres listed)`` becomes an empty list).

Supported sources (the original zip or the unpacked folder):

* ml-100k: ``u.data`` (tab separated, no header) and ``u.item`` (``|``, latin-1,
  19 genre flags named by ``u.genre``);
* ml-1m, ml-10m: ``ratings.dat`` / ``movies.dat`` (``::`` separated, no header);
* ml-20m, ml-25m, ml-32m, ml-latest(-small): ``ratings.csv`` / ``movies.csv``;
* any CSV/TSV or Parquet file of (user, item, rating[, timestamp]); the column
  names are guessed from common spellings or given explicitly;
* an *implicit* CSV/TSV or Parquet table of (user, item[, weight][, timestamp])
  with no rating column: each row is an interaction, its value the weight
  (positive and finite) or 1. Such a table is recognised when it has no rating
  column and no column besides user, item, timestamp and weight, or declared by
  ``ColumnSpec(implicit=True)`` / ``weight=...``. It has no rating scale
  (``rating_range`` None) and is marked ``implicit`` (so the rankers take every
  row as a positive and the rating models refuse it); the mark survives subsets,
  alignment and ``fastmf prepare``. Duplicate pairs are resolved as in rating files.

Malformed input raises :class:`fastmf.common.errors.InputError` naming the file, the
line and the column. Every loader ends in :func:`fastmf.data_prep.validate.check_ratings`,
the validation the in-memory constructors of :class:`~fastmf.data_prep.dataset.Dataset`
share. Text metadata (movies, u.item, item features) is read as UTF-8, else latin-1 (the
real encoding of ml-100k and ml-1m); a UTF-8 byte order mark is skipped; id columns keep
integers past 2^63 exact (uint64).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from fastmf.common.errors import InputError
from fastmf.data_prep.partitions import is_partitioned, open_partitions, whole_table
from fastmf.data_prep.prepared import MOVIELENS_RANGE, read_ratings
from fastmf.data_prep.prepared import check_items as _check_items
from fastmf.data_prep.prepared import first_line as _first_line
from fastmf.data_prep.prepared import manifest_scale as _manifest_scale
from fastmf.data_prep.prepared import read_manifest as _read_manifest
from fastmf.data_prep.prepared import read_parquet as _read_parquet
from fastmf.data_prep.validate import Where, as_numbers, check_ratings, first_failure

INTEGER_STAR_RANGE = (1.0, 5.0)
NO_GENRES = "(no genres listed)"
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

# Spellings recognised for each logical column when no name is given.
COLUMN_ALIASES = {
    "user_id": ("user_id", "userId", "userid", "user", "UserID", "uid"),
    "item_id": ("item_id", "movieId", "itemId", "itemid", "item", "movie_id", "MovieID", "movie", "iid"),
    "rating": ("rating", "Rating", "score", "stars", "value"),
    "timestamp": ("timestamp", "Timestamp", "time", "ts", "date"),
    "weight": ("weight", "count", "plays", "clicks"),
}

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_INTEGER = r"^\s*[-+]?\d+\s*$"


@dataclass
class RawData:
    """Ratings (and optionally item metadata) read from one source."""

    ratings: pa.Table
    items: pa.Table | None
    source: str
    format: str
    #: the rating scale ``(lo, hi)``, or None for an implicit (user, item[, weight]) table
    rating_range: tuple[float, float] | None
    extra: dict = field(default_factory=dict)
    #: the ratings passed :func:`fastmf.data_prep.validate.check_ratings` (every loader here checks them)
    checked: bool = False

    @property
    def implicit(self) -> bool:
        """Whether this is an implicit (user, item[, weight]) table: no ratings, every row a positive."""
        return self.rating_range is None


@dataclass
class ColumnSpec:
    """Explicit column names for generic files (``None`` means guess)."""

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None
    sep: str | None = None
    rating_range: tuple[float, float] | None = None
    weight: str | None = None
    implicit: bool = False


# --------------------------------------------------------------------------- sources

#: ``open_bar(display, total_bytes)`` -> an object with ``update(n)`` and ``close()``, called for each
#: file on disk parsed as delimited text while :func:`reading_progress` is active (the command line's
#: progress bars; the loaders themselves print nothing)
_READ_PROGRESS: ContextVar = ContextVar("fastmf_read_progress", default=None)


@contextlib.contextmanager
def reading_progress(open_bar):
    """Report the bytes read of every delimited file parsed inside the block to ``open_bar``'s bars."""
    token = _READ_PROGRESS.set(open_bar)
    try:
        yield
    finally:
        _READ_PROGRESS.reset(token)


class _CountedFile(io.FileIO):
    """A file whose reads advance a progress bar, closed once: when the last byte has been read (or a
    read hits the end of the file) or when the file is closed, whichever comes first."""

    def __init__(self, path: str, open_bar):
        super().__init__(path, "rb")
        self._left = os.fstat(self.fileno()).st_size
        self._bar = open_bar(self._left)

    def _advance(self, n: int) -> None:
        if self._bar is None:
            return
        if n:
            self._bar.update(n)
            self._left -= n
        if not n or self._left <= 0:  # the end of the file
            self._finish()

    def _finish(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer)
        self._advance(n or 0)
        return n

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self._advance(len(data))
        return data

    def close(self) -> None:
        self._finish()
        super().close()


class _Source:
    """A file on disk or a member of a zip archive, read as bytes or a path."""

    def __init__(self, display: str, path: str | None = None, data: bytes | None = None):
        self.display = display
        self.path = path
        self.data = data

    def arrow_input(self):
        """What Arrow parses: the bytes, or the path (a counted file while :func:`reading_progress` is on)."""
        if self.data is not None:
            return pa.py_buffer(self.data)
        open_bar = _READ_PROGRESS.get()
        if open_bar is None:
            return self.path
        return _CountedFile(self.path, lambda size: open_bar(self.display, size))

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as fh:
            return fh.read()

    def head(self, n: int = 65536) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as fh:
            return fh.read(n)


class _Release:
    """Lookup of named files inside an unpacked folder or a zip archive."""

    def __init__(self, path: str):
        self.path = path
        self.zip = None
        if os.path.isfile(path):
            try:
                self.zip = zipfile.ZipFile(path)
                self.names = [n for n in self.zip.namelist() if not n.endswith("/")]
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InputError(path, f"not a readable zip archive (truncated or corrupt?): {exc}") from None
        else:
            self.names = []
            for root, _dirs, files in os.walk(path):
                depth = os.path.relpath(root, path).count(os.sep)
                if depth > 1:
                    continue
                for name in files:
                    self.names.append(os.path.relpath(os.path.join(root, name), path))

    def find(self, basename: str) -> str | None:
        hits = sorted((n for n in self.names if os.path.basename(n) == basename), key=len)
        return hits[0] if hits else None

    def open(self, name: str) -> _Source:
        if self.zip is None:
            return _Source(os.path.join(self.path, name), path=os.path.join(self.path, name))
        display = f"{self.path}:{name}"
        try:
            return _Source(display, data=self.zip.read(name))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise InputError(display, f"cannot read from the zip archive (truncated or corrupt?): {exc}") from None
        except Exception as exc:  # zlib.error and friends
            raise InputError(display, f"cannot read from the zip archive (truncated or corrupt?): {exc}") from None


# --------------------------------------------------------------------------- entry point


def detect_format(path: str) -> str:
    """Name the format of ``path``: a MovieLens layout, ``prepared``, ``csv`` or ``parquet``."""
    if not os.path.exists(path):
        raise InputError(path, "no such file or directory")
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "manifest.json")):
        return "prepared"
    if os.path.isdir(path) or zipfile.is_zipfile(path) or path.lower().endswith(".zip"):
        release = _Release(path)
        for fmt, name in (("ml-100k", "u.data"), ("ml-dat", "ratings.dat"), ("ml-csv", "ratings.csv")):
            if release.find(name):
                return fmt
        kind = "zip archive" if release.zip is not None else "folder"
        raise InputError(
            path, f"unknown format: this {kind} holds no u.data, ratings.dat, ratings.csv or manifest.json"
        )
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".tsv", ".txt", ".dat", ".data")):
        return "csv"
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        return "parquet"
    raise InputError(path, "unknown format: expected a MovieLens folder or zip, a .csv/.tsv or a .parquet file")


def load_raw(path: str, columns: ColumnSpec | None = None) -> RawData:
    """Read ratings (and item metadata when the source has it) from ``path``."""
    columns = columns or ColumnSpec()
    fmt = detect_format(path)
    if fmt == "prepared":
        return load_prepared(path)
    if fmt in ("ml-100k", "ml-dat", "ml-csv"):
        release = _Release(path)
        reader = {"ml-100k": _load_ml100k, "ml-dat": _load_ml_dat, "ml-csv": _load_ml_csv}[fmt]
        raw = reader(release)
        raw.source = os.path.abspath(path)
        if columns.rating_range is not None:
            raw.rating_range = columns.rating_range
        where = Where(
            raw.extra.pop("display"),
            raw.extra.pop("first_line"),
            "line",
            raw.extra.pop("columns", None),
            empty="empty file: no ratings",
        )
        raw.ratings = check_ratings(raw.ratings, raw.rating_range, where)
        raw.checked = True
        return raw
    if fmt == "parquet":
        return _load_generic_parquet(path, columns)
    return _load_generic_csv(path, columns)


def load_prepared(path: str) -> RawData:
    """Read a folder written by ``fastmf prepare`` (ratings.parquet, items.parquet, manifest.json), or one in
    the partitioned layout of ``--partitions`` (:mod:`fastmf.data_prep.partitions`)."""
    manifest_path = os.path.join(path, "manifest.json")
    manifest = _read_manifest(manifest_path)
    scale = _manifest_scale(manifest, manifest_path)
    if is_partitioned(manifest):  # blocks by user and by item: read the user blocks in order, each checked
        ratings = whole_table(open_partitions(path))
    else:
        ratings_path = os.path.join(path, "ratings.parquet")
        hint = f" (the scale of {manifest_path})"
        where = Where(ratings_path, 1, "row", range_hint=hint, empty="empty: no ratings")
        ratings = read_ratings(ratings_path, scale, where)
    items_path = os.path.join(path, "items.parquet")
    items = _check_items(_read_parquet(items_path), items_path) if os.path.exists(items_path) else None
    return RawData(
        ratings,
        items,
        manifest.get("source", os.path.abspath(path)),
        "prepared",
        scale,
        {"manifest": manifest},
        checked=True,
    )


# --------------------------------------------------------------------------- MovieLens readers


def _load_ml_csv(release: _Release) -> RawData:
    name = release.find("ratings.csv")
    src = release.open(name)
    ratings = _read_delimited(
        src,
        ",",
        header=True,
        wanted={"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"},
        optional=("timestamp",),
        int_ids=True,
    )
    items = None
    movies = release.find("movies.csv")
    if movies:
        msrc = _text_source(release.open(movies))
        table = _read_csv_strings(msrc, ",", header=True, names=None)
        _require_columns(table, msrc.display, ("movieId", "title", "genres"))
        items = _items_table(table["movieId"], table["title"], table["genres"], msrc.display, first_line=2)
    return RawData(
        ratings,
        items,
        release.path,
        "movielens-csv",
        MOVIELENS_RANGE,
        {"display": src.display, "first_line": 2, "columns": {"user_id": "userId", "item_id": "movieId"}},
    )


def _load_ml_dat(release: _Release) -> RawData:
    name = release.find("ratings.dat")
    src = release.open(name)
    data = _double_colon_to_unit_sep(src.read_bytes())
    ratings = _read_delimited(
        _Source(src.display, data=data),
        "\x1f",
        header=False,
        names=["user_id", "item_id", "rating", "timestamp"],
        wanted={"user_id": "user_id", "item_id": "item_id", "rating": "rating", "timestamp": "timestamp"},
        optional=(),
        int_ids=True,
    )
    items = None
    movies = release.find("movies.dat")
    if movies:
        msrc = _text_source(release.open(movies))
        table = _read_csv_strings(
            _Source(msrc.display, data=_double_colon_to_unit_sep(msrc.data)),
            "\x1f",
            header=False,
            names=["movieId", "title", "genres"],
        )
        items = _items_table(table["movieId"], table["title"], table["genres"], msrc.display, first_line=1)
    return RawData(
        ratings, items, release.path, "movielens-dat", MOVIELENS_RANGE, {"display": src.display, "first_line": 1}
    )


def _load_ml100k(release: _Release) -> RawData:
    src = release.open(release.find("u.data"))
    ratings = _read_delimited(
        src,
        "\t",
        header=False,
        names=["user_id", "item_id", "rating", "timestamp"],
        wanted={"user_id": "user_id", "item_id": "item_id", "rating": "rating", "timestamp": "timestamp"},
        optional=(),
        int_ids=True,
    )
    items = None
    item_name = release.find("u.item")
    if item_name:
        genre_names = list(ML100K_GENRES)
        genre_file = release.find("u.genre")
        if genre_file:
            lines = [ln for ln in _text_source(release.open(genre_file)).data.decode().splitlines() if ln.strip()]
            genre_names = [ln.rsplit("|", 1)[0] for ln in lines]
        isrc = _text_source(release.open(item_name))
        names = ["movieId", "title", "release", "video_release", "url"] + [f"g{k}" for k in range(len(genre_names))]
        table = _read_csv_strings(isrc, "|", header=False, names=names)
        flags = np.stack(
            [pc.equal(table[f"g{k}"], "1").to_numpy(zero_copy_only=False) for k in range(len(genre_names))], 1
        )
        genre_strings = pa.array(
            [
                "|".join(genre_names[k] for k in np.flatnonzero(row) if genre_names[k] != "unknown") or NO_GENRES
                for row in flags
            ]
        )
        items = _items_table(table["movieId"], table["title"], genre_strings, isrc.display, first_line=1)
    return RawData(
        ratings, items, release.path, "movielens-100k", INTEGER_STAR_RANGE, {"display": src.display, "first_line": 1}
    )


# --------------------------------------------------------------------------- generic readers


def _load_generic_csv(path: str, spec: ColumnSpec) -> RawData:
    sep = spec.sep or ("\t" if path.lower().endswith(".tsv") else ",")
    src = _Source(path, path=path)
    header = _header(src, sep)
    wanted = _resolve_columns(header, spec, path)
    ratings = _read_delimited(src, sep, header=True, wanted=wanted, optional=("timestamp",))
    rng = _value_range(wanted, spec, path)
    ratings = check_ratings(ratings, rng, Where(path, 2, "line", wanted, empty="empty file: no ratings"))
    return RawData(_with_values(ratings), None, os.path.abspath(path), "csv", rng, checked=True)


def _load_generic_parquet(path: str, spec: ColumnSpec) -> RawData:
    table = _read_parquet(path)
    wanted = _resolve_columns(table.column_names, spec, path)
    where = Where(path, 1, "row", wanted, empty="empty file: no ratings")
    # text columns of numbers are read as numbers (a value that is not one is named)
    ratings = pa.table(
        [as_numbers(table[actual], logical, where) for logical, actual in wanted.items()], names=list(wanted)
    )
    rng = _value_range(wanted, spec, path)
    ratings = check_ratings(ratings, rng, where)
    return RawData(_with_values(ratings), None, os.path.abspath(path), "parquet", rng, checked=True)


_BOM = b"\xef\xbb\xbf"


def _header(src: _Source, sep: str) -> list[str]:
    head = src.head().removeprefix(_BOM)  # Arrow skips a UTF-8 byte order mark too
    if not head.strip():
        raise InputError(src.display, "empty file: no header and no ratings")
    first = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    return [c.strip().strip('"') for c in first.split(sep)]


def _resolve_columns(available, spec: ColumnSpec, path: str) -> dict:
    """Map the logical columns to names present in the file.

    ``user_id`` and ``item_id`` are required, ``timestamp`` optional; then a
    ``rating`` column, or for an implicit table (module docstring) an optional
    ``weight`` column instead.
    """
    if spec.rating is not None and (spec.weight is not None or spec.implicit):
        raise InputError(
            path, "--rating-col names a rating column: it cannot be combined with --weight-col or --implicit"
        )
    out = {}
    for logical in ("user_id", "item_id", "timestamp"):
        hit = _find_column(available, logical, getattr(spec, logical.replace("_id", "")), path)
        if hit is not None:
            out[logical] = hit
    if spec.weight is None and not spec.implicit:
        rating = _find_column(available, "rating", spec.rating, path, required=False)
        if rating is not None:
            return {**out, "rating": rating}
        weight = _find_column(available, "weight", None, path)
        if any(a not in out.values() and a != weight for a in available):
            raise InputError(
                path,
                f"missing rating column (looked for {', '.join(COLUMN_ALIASES['rating'][:4])}; "
                f"columns: {', '.join(available)}); name it with --rating-col, or pass --implicit "
                "for a (user, item[, weight]) table",
            )
    weight = _find_column(available, "weight", spec.weight, path)
    return out if weight is None else {**out, "weight": weight}


_COLUMN_FLAGS = {
    "user_id": "--user-col",
    "item_id": "--item-col",
    "rating": "--rating-col",
    "timestamp": "--time-col",
    "weight": "--weight-col",
}


def _find_column(available, logical: str, name: str | None, path: str, required: bool | None = None) -> str | None:
    """The column ``name`` (an error if absent) or the first common spelling of ``logical`` present.

    Without a match, ``None`` for optional columns (``timestamp``, ``weight``,
    or ``required=False``) and an error naming the flag for the others.
    """
    if name is not None:
        if name not in available:
            raise InputError(path, f"no column named '{name}' (columns: {', '.join(available)})", column=name)
        return name
    hit = next((a for a in COLUMN_ALIASES[logical] if a in available), None)
    if hit is None:
        lowered = {a.lower(): a for a in available}
        hit = next((lowered[a.lower()] for a in COLUMN_ALIASES[logical] if a.lower() in lowered), None)
    if required is None:
        required = logical in ("user_id", "item_id")
    if hit is None and required:
        raise InputError(
            path,
            f"missing {logical.replace('_id', '')} column (looked for {', '.join(COLUMN_ALIASES[logical][:4])}; "
            f"columns: {', '.join(available)}); name it with {_COLUMN_FLAGS[logical]}",
        )
    return hit


def _value_range(wanted: dict, spec: ColumnSpec, path: str) -> tuple[float, float]:
    """The rating scale of a rating file, or None for an implicit table."""
    if "rating" in wanted:
        return spec.rating_range or MOVIELENS_RANGE
    if spec.rating_range is not None:
        raise InputError(path, "--rating-range does not apply to an implicit (user, item[, weight]) table")
    return None


def _with_values(table: pa.Table) -> pa.Table:
    """A checked table with its value column named ``rating``: an implicit table's weights, or 1 per row."""
    if "rating" in table.column_names:
        return table
    names = table.column_names
    if "weight" in names:
        return table.rename_columns(["rating" if n == "weight" else n for n in names])
    return table.add_column(2, "rating", pa.array(np.ones(table.num_rows, dtype=np.float32)))


def _read_delimited(
    src: _Source, sep: str, header: bool, wanted: dict, optional=(), names=None, int_ids: bool = False
) -> pa.Table:
    """Read the ``wanted`` columns (logical name -> column name) of a delimited file with typed conversion.

    ``int_ids`` (MovieLens files) declares the id columns int64: left to type
    inference, Arrow keeps every parsed block of those columns until the end of
    the file in case a later block needs a wider type (about 1.5 GB on ml-32m).
    """
    if not src.head(4096).removeprefix(_BOM).strip():
        raise InputError(src.display, "empty file: no ratings")
    if header:
        present = _header(src, sep)
        for logical, actual in wanted.items():
            if actual not in present and logical not in optional:
                raise InputError(src.display, f"missing column (header has: {', '.join(present)})", column=actual)
        wanted = {k: v for k, v in wanted.items() if v in present}
    typed = dict(_ARROW_TYPES, **(_INT_IDS if int_ids else {}))
    types = {actual: typed[logical] for logical, actual in wanted.items() if logical in typed}
    read = pacsv.ReadOptions(column_names=names, autogenerate_column_names=False, block_size=1 << 24)
    if header:
        read = pacsv.ReadOptions(block_size=1 << 24)
    parse = pacsv.ParseOptions(delimiter=sep, quote_char='"' if sep == "," else False)
    convert = pacsv.ConvertOptions(
        column_types=types,
        include_columns=list(wanted.values()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(src.arrow_input(), read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise _locate_csv_error(src, sep, header, wanted, names, exc, int_ids) from None
    table = _exact_ids(src, table, read, parse, [wanted[k] for k in ("user_id", "item_id") if k in wanted])
    return pa.table([table[actual] for actual in wanted.values()], names=list(wanted.keys()))


def _exact_ids(src: _Source, table: pa.Table, read, parse, id_columns) -> pa.Table:
    """Id columns that Arrow read as floats, read again as text and kept exact.

    Integers past the int64 range (unsigned 64-bit ids) are inferred as doubles, which
    would merge distinct ids: whole numbers become uint64 when they fit, strings
    otherwise. Ids that are not whole numbers (``1.5``) stay floats.
    """
    floats = [c for c in id_columns if pa.types.is_floating(table[c].type)]
    if not floats:
        return table
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in floats},
        include_columns=floats,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    text = pacsv.read_csv(src.arrow_input(), read_options=read, parse_options=parse, convert_options=convert)
    for name in floats:
        col = pc.utf8_trim_whitespace(text[name])
        if not pc.all(pc.match_substring_regex(col, _INTEGER)).as_py():
            continue
        exact = col
        for kind in (pa.int64(), pa.uint64()):
            try:
                exact = pc.cast(pc.replace_substring_regex(col, r"^\+", ""), kind)
                break
            except pa.ArrowInvalid:
                continue
        table = table.set_column(table.column_names.index(name), name, exact)
    return table


# ids keep the type Arrow infers (integers or strings); ratings and timestamps are converted.
_ARROW_TYPES = {"rating": pa.float32(), "weight": pa.float32(), "timestamp": pa.int64()}
_INT_IDS = {"user_id": pa.int64(), "item_id": pa.int64()}


def _read_csv_strings(src: _Source, sep: str, header: bool, names) -> pa.Table:
    parse = pacsv.ParseOptions(delimiter=sep, quote_char='"' if sep == "," else False, newlines_in_values=False)
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in (names or [])})
    for use_threads in (True, False):  # on an error, again single-threaded: Arrow then tells the row ("Row #n")
        read = (
            pacsv.ReadOptions(column_names=names, use_threads=use_threads)
            if not header
            else pacsv.ReadOptions(use_threads=use_threads)
        )
        try:
            return pacsv.read_csv(src.arrow_input(), read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            error = exc
    m = re.search(r"Row #(\d+)", str(error))
    message = re.sub(r"^CSV parse error: (Row #\d+: )?", "", _first_line(error))
    raise InputError(src.display, f"cannot parse: {message}", line=int(m.group(1)) if m else None) from None


def _locate_csv_error(
    src: _Source, sep: str, header: bool, wanted: dict, names, exc, int_ids: bool = False
) -> InputError:
    """Re-read as strings to find the first row and column that failed to convert."""
    msg = _first_line(exc)
    # single-threaded, so that Arrow's parse errors carry the row number ("Row #n")
    read = (
        pacsv.ReadOptions(column_names=names, use_threads=False) if not header else pacsv.ReadOptions(use_threads=False)
    )
    parse = pacsv.ParseOptions(delimiter=sep, quote_char='"' if sep == "," else False)
    try:
        table = pacsv.read_csv(
            src.arrow_input(),
            read_options=read,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                column_types={a: pa.string() for a in wanted.values()}, include_columns=list(wanted.values())
            ),
        )
    except pa.ArrowInvalid as exc2:
        m = re.search(r"Row #(\d+)", str(exc2))
        line = int(m.group(1)) if m else None
        return InputError(src.display, f"malformed row: {_first_line(exc2)}", line=line)
    first_line = 2 if header else 1
    first_bad = None  # (row, logical, actual) of the earliest bad value
    for logical, actual in wanted.items():
        col = table[actual]
        integer = logical == "timestamp" or (int_ids and logical in _INT_IDS)
        pattern = _NUMBER if logical in ("rating", "weight") else _INTEGER if integer else None
        if pattern is None:
            continue
        bad = pc.invert(pc.match_substring_regex(col, pattern))
        idx = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
        if idx.size and (first_bad is None or idx[0] < first_bad[0]):
            first_bad = (int(idx[0]), logical, actual)
    if first_bad is not None:
        row, logical, actual = first_bad
        value = table[actual][row].as_py()
        what = logical.replace("_id", " id")
        return InputError(src.display, f"{what} '{value}' is not a number", line=row + first_line, column=actual)
    for logical, actual in wanted.items():  # whole numbers past the 64-bit range
        if logical == "timestamp" or (int_ids and logical in _INT_IDS):
            row = first_failure(table[actual], lambda part: pc.cast(part, pa.int64()))
            if row is not None:
                what = logical.replace("_id", " id")
                return InputError(
                    src.display,
                    f"{what} '{table[actual][row].as_py()}' does not fit a 64-bit integer",
                    line=row + first_line,
                    column=actual,
                )
    return InputError(src.display, f"cannot parse: {msg}")


def _first_bad_row(col, logical) -> int | None:
    try:
        text = pc.cast(col, pa.string())
    except pa.ArrowException:
        return None
    pattern = _INTEGER if logical == "timestamp" else _NUMBER
    idx = np.flatnonzero(pc.invert(pc.match_substring_regex(text, pattern)).to_numpy(zero_copy_only=False))
    return int(idx[0]) if idx.size else None


def _show(col, idx):
    return "?" if idx is None else repr(col[idx].as_py())


def _require_columns(table: pa.Table, display: str, names) -> None:
    for name in names:
        if name not in table.column_names:
            raise InputError(display, f"missing column (header has: {', '.join(table.column_names)})", column=name)


# --------------------------------------------------------------------------- items and genres


def _items_table(ids, titles, genre_strings, display: str, first_line: int) -> pa.Table:
    """Build ``item_id, title, genres`` with genres split on ``|`` and the placeholder removed."""
    try:
        item_id = pc.cast(ids, pa.int64())
    except pa.ArrowInvalid:
        idx = _first_bad_row(ids, "timestamp")
        raise InputError(
            display,
            f"movie id {_show(ids, idx)} is not an integer",
            line=None if idx is None else idx + first_line,
            column="movieId",
        ) from None
    genres = genre_lists(genre_strings)
    return pa.table({"item_id": item_id, "title": pc.cast(titles, pa.string()), "genres": genres})


def genre_lists(genre_strings) -> pa.Array:
    """Split ``A|B|C`` strings into lists, dropping empty names and ``(no genres listed)``."""
    strings = pa.chunked_array([genre_strings]) if isinstance(genre_strings, pa.Array) else genre_strings
    strings = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    strings = pc.fill_null(pc.cast(strings, pa.string()), "")
    lists = pc.split_pattern(strings, "|")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    parent = pc.list_parent_indices(lists).to_numpy()
    keep = pc.and_(pc.not_equal(flat, ""), pc.not_equal(flat, NO_GENRES)).to_numpy(zero_copy_only=False)
    counts = np.bincount(parent[keep], minlength=len(lists))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pc.filter(flat, pa.array(keep)))


def _double_colon_to_unit_sep(data: bytes) -> bytes:
    """``::``-separated MovieLens files: swap the two-character separator for one byte."""
    return data.replace(b"::", b"\x1f")


def _to_utf8(data: bytes, display: str | None = None) -> bytes:
    """UTF-8 text as it is, else latin-1 (ml-100k's u.item, ml-1m's and ml-10m's movies.dat) re-encoded.

    With ``display`` (a file name), text that is not text (a NUL byte: UTF-16 or binary)
    or that is UTF-8 up to a line that is not (mixed encodings, which latin-1 would
    garble) raises one line naming the file and that line.
    """
    nul = data.find(b"\x00")
    if display is not None and nul >= 0:
        raise InputError(
            display,
            "not a text file: NUL byte (UTF-16 or binary?); save it as UTF-8",
            line=data.count(b"\n", 0, nul) + 1,
        )
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError as exc:
        # UTF-8 up to here (a byte order mark, too, says UTF-8): mixed encodings, which latin-1 would garble
        if display is not None and not data[: exc.start].isascii():
            raise InputError(
                display,
                f"not UTF-8 text although the lines before are (byte {data[exc.start]:#04x}: "
                "mixed encodings?); save it as UTF-8",
                line=data.count(b"\n", 0, exc.start) + 1,
            ) from None
        return data.decode("latin-1").encode("utf-8")


def _text_source(src: _Source) -> _Source:
    """A MovieLens metadata file (titles, genres) as UTF-8 bytes, decoded from its real encoding."""
    return _Source(src.display, data=_to_utf8(src.read_bytes(), src.display))


def read_item_features(path: str) -> tuple[np.ndarray, list]:
    """Read an (item, feature) table from CSV or Parquet; returns (item ids, feature names) as arrays."""
    fmt = detect_format(path)
    if fmt == "parquet":
        table = _read_parquet(path)
    elif fmt == "csv":
        src = _Source(path, path=path)
        sep = "\t" if path.lower().endswith(".tsv") else ","
        _header(src, sep)
        table = _read_csv_strings(_text_source(src), sep, header=True, names=None)  # UTF-8 or latin-1
    else:
        raise InputError(path, "item features must be a CSV or Parquet file of (item, feature)")
    if table.num_columns < 2:
        raise InputError(path, "expected two columns: item and feature")
    item_col = next((c for c in COLUMN_ALIASES["item_id"] if c in table.column_names), table.column_names[0])
    feat_col = next((c for c in table.column_names if c != item_col), None)
    items, feats = table[item_col], pc.utf8_trim_whitespace(pc.cast(table[feat_col], pa.string()))
    for col, values in ((item_col, pc.cast(items, pa.string())), (feat_col, feats)):
        missing = pc.or_kleene(pc.is_null(values), pc.equal(values, "")).to_numpy(zero_copy_only=False)
        if missing.any():
            raise InputError(path, "missing value", line=int(np.flatnonzero(missing)[0]) + 2, column=col)
    return items, feats


__all__ = [
    "RawData",
    "ColumnSpec",
    "load_raw",
    "load_prepared",
    "detect_format",
    "genre_lists",
    "read_item_features",
    "MOVIELENS_RANGE",
    "NO_GENRES",
]
