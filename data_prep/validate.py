"""One validation of ratings for every way they come in.

Files (CSV/TSV, Parquet, MovieLens releases), prepared folders, pyarrow and pandas
tables, NumPy arrays and scipy matrices all reach :func:`check_ratings` before a
:class:`~fastmf.data_prep.dataset.Dataset` is built from them, so every entry point
refuses the same things with the same one-line :class:`InputError`:

* an empty table;
* a missing value in any column (Arrow null, or NaN in a float id column);
* an id column that is not integers or strings (or strings that are not valid UTF-8);
* a rating that is not a number, NaN or infinite, or outside the rating scale;
* for an implicit table (``rating_range`` None), a weight that is not positive and finite;
* a timestamp that is not a whole number.

Where the problem is, is told by a :class:`Where`: the source's name (a file path,
or "the table"/"the arrays"/"the matrix"), how its rows are numbered and the
source's own column names. Every check is vectorised (NumPy/Arrow); nothing here
loops in Python over ratings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fastmf.common.errors import FastMFError, InputError

ID_COLUMNS = ("user_id", "item_id")
VALUE_COLUMNS = ("rating", "weight")

#: where a Python caller can name another rating scale (appended to out-of-scale messages)
PYTHON_RANGE_HINT = (
    " (pass rating_range=(lo, hi) for another scale, or rating_range=None for an implicit table "
    "whose values are positive weights)"
)


@dataclass(frozen=True)
class Where:
    """How to point at a value of a ratings source in a message.

    ``row_word="line"`` (text files) gives ``file, line N, column 'c': message``;
    ``row_word="row"`` (tables, Parquet files) gives ``file, column 'c': row N: message``.
    Row ``k`` of the table (0-based) is numbered ``k + first_line``. ``columns`` maps the
    logical names (``user_id``, ``item_id``, ``rating``, ``weight``, ``timestamp``) to
    the source's own column names; ``locate`` replaces the row numbering altogether
    (a matrix names its entries by row and column).
    """

    display: str
    first_line: int = 0
    row_word: str = "row"
    columns: dict | None = None
    range_hint: str = ""
    empty: str = "no ratings"
    locate: Callable[[int], str] | None = None

    def column(self, logical: str) -> str:
        return (self.columns or {}).get(logical, logical)

    def error(self, idx, logical: str | None, message: str) -> InputError:
        column = None if logical is None else self.column(logical)
        if idx is None:
            return InputError(self.display, message, column=column)
        if self.locate is not None:
            return InputError(self.display, f"{self.locate(int(idx))}: {message}")
        line = int(idx) + self.first_line
        if self.row_word == "line":
            return InputError(self.display, message, line=line, column=column)
        return InputError(self.display, f"{self.row_word} {line}: {message}", column=column)


def check_scale(rating_range, hint: str = "") -> tuple[float, float] | None:
    """``rating_range`` as ``(lo, hi)`` floats with ``lo < hi`` (or None for an implicit table)."""
    if rating_range is None:
        return None
    try:
        lo, hi = (float(x) for x in rating_range)
    except (TypeError, ValueError):
        raise FastMFError(f"rating_range must be (lo, hi) or None, got {rating_range!r}{hint}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise FastMFError(f"rating_range (lo, hi) needs finite lo < hi, got {rating_range!r}{hint}")
    return lo, hi


def check_ratings(table: pa.Table, rating_range, where: Where) -> pa.Table:
    """Validate a table of logical columns and return it with canonical types.

    ``table`` holds ``user_id``, ``item_id``, optionally ``rating`` or ``weight`` and
    ``timestamp``. ``rating_range`` None marks an implicit table: its values (a
    ``weight`` column, or ``rating`` when the caller keeps weights there) must be
    positive and finite. On return the ids are integers, floats or strings, the
    values float32 and the timestamps int64; the first problem raises :class:`InputError`.
    """
    rating_range = check_scale(rating_range)
    if table.num_rows == 0:
        raise InputError(where.display, where.empty)
    for name in table.column_names:
        col = table[name]
        if col.null_count:
            raise where.error(_first_true(col.is_null()), name, "missing value")
    cols = {name: _canonical(name, table[name], where) for name in table.column_names}
    for name in ID_COLUMNS:
        col = cols.get(name)
        if col is not None and pa.types.is_floating(col.type):
            values = col.to_numpy(zero_copy_only=False)
            bad = ~np.isfinite(values)
            if bad.any():
                raise where.error(_first(bad), name, f"missing value ({_what(name)} {values[_first(bad)]})")
    for name in ID_COLUMNS:
        col = cols.get(name)
        if col is not None and pa.types.is_string(col.type):
            empty = pc.equal(pc.binary_length(col), 0)
            if pc.any(empty).as_py():
                raise where.error(_first_true(empty), name, "missing value (empty id)")
    value_name = next((n for n in VALUE_COLUMNS if n in cols), None)
    if rating_range is None:
        if value_name is not None:
            weight = cols[value_name].to_numpy(zero_copy_only=False)
            bad = ~(np.isfinite(weight) & (weight > 0))
            if bad.any():
                idx = _first(bad)
                raise where.error(idx, value_name, f"weight {weight[idx]:g} is not a positive number")
    else:
        if value_name != "rating":
            raise where.error(None, None, "no rating column")
        rating = cols["rating"].to_numpy(zero_copy_only=False)
        finite = np.isfinite(rating)
        if not finite.all():
            raise where.error(_first(~finite), "rating", "rating is NaN or infinite")
        lo, hi = rating_range
        bad = (rating < lo) | (rating > hi)
        if bad.any():
            idx = _first(bad)
            raise where.error(
                idx, "rating", f"rating {rating[idx]:g} is outside the scale {lo:g}..{hi:g}{where.range_hint}"
            )
    return pa.table(list(cols.values()), names=list(cols))


def as_numbers(col, logical: str, where: Where):
    """A value or timestamp column written as text, read as numbers (float32 values, int64
    timestamps); a value that is not a number raises one line naming it. Columns of other
    types are returned as they are (:func:`check_ratings` checks them)."""
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    if logical in ID_COLUMNS or not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return col
    target = pa.int64() if logical == "timestamp" else pa.float32()
    idx = first_failure(col, lambda part: pc.cast(part, target))
    if idx is None:
        return pc.cast(col, target)
    raise where.error(idx, logical, f"cannot read {_what(logical)} value {col[idx].as_py()!r} as a number")


def first_failure(array, convert) -> int | None:
    """Position of the first element of ``array`` that ``convert`` rejects, or None.

    Bisection over zero-copy slices: about twice the work of one conversion, all of it in Arrow.
    """
    try:
        convert(array)
        return None
    except (pa.ArrowException, ValueError, TypeError):
        pass
    lo, hi = 0, len(array)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(array.slice(lo, mid - lo))
            lo = mid
        except (pa.ArrowException, ValueError, TypeError):
            hi = mid
    return lo


# --------------------------------------------------------------------------- helpers


def _canonical(name: str, col, where: Where):
    """Ids as integers, floats or strings; values float32; timestamps int64 (chunks are kept: no copy)."""
    kind = col.type
    if pa.types.is_dictionary(kind):
        col = pc.cast(col, kind.value_type)
        kind = col.type
    if name in ID_COLUMNS:
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_string(kind):
            return col
        if pa.types.is_large_string(kind):
            return pc.cast(col, pa.string())
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            idx = first_failure(col, lambda part: pc.cast(part, pa.string()))
            if idx is None:
                return pc.cast(col, pa.string())
            raise where.error(
                idx, name, f"{_what(name)} {col[idx].as_py()!r} is not valid UTF-8 text (save the file as UTF-8)"
            )
        raise where.error(None, name, f"{_what(name)} column has type {kind}: ids are integers or strings")
    if name in VALUE_COLUMNS:
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return col if kind == pa.float32() else pc.cast(col, pa.float32())
        raise where.error(None, name, f"{_what(name)} column has type {kind}: {name}s are numbers")
    if name == "timestamp":
        if kind == pa.int64():
            return col
        if pa.types.is_timestamp(kind):
            return pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64())
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            idx = first_failure(col, lambda part: pc.cast(part, pa.int64()))
            if idx is None:
                return pc.cast(col, pa.int64())
            raise where.error(idx, name, f"timestamp {col[idx].as_py()!r} is not a whole number of seconds")
        raise where.error(None, name, f"timestamp column has type {kind}: timestamps are whole seconds")
    return col


def _combined(col) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _first_true(mask) -> int:
    return _first(_combined(mask).to_numpy(zero_copy_only=False))


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _what(logical: str) -> str:
    return logical.replace("_id", " id")


__all__ = ["Where", "check_ratings", "check_scale", "as_numbers", "first_failure", "PYTHON_RANGE_HINT"]
