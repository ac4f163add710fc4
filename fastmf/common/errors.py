"""Errors that describe a user's mistake.

The command line prints a :class:`FastMFError` as a single line and exits with a
non-zero status; a Python caller gets an ordinary exception (a ``ValueError``)
whose message names the file and, where it applies, the line and column.
"""

from __future__ import annotations


class FastMFError(ValueError):
    """A mistake in the user's input, data or arguments (shown without a traceback)."""


class InputError(FastMFError):
    """Bad input data: the message names the file, the line and the column when known."""

    def __init__(self, path, message: str, line: int | None = None, column: str | None = None):
        self.path = str(path)
        self.line = line
        self.column = column
        where = [self.path]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}")


class NotFittedError(FastMFError, AttributeError):
    """A model used before ``fit`` (a ``ValueError`` and an ``AttributeError``, like scikit-learn's)."""


class ModelFileError(FastMFError):
    """A saved model folder that is missing, truncated or inconsistent."""


class DivergenceError(FastMFError):
    """Training produced NaN or inf values."""
