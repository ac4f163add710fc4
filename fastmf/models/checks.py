"""Consistency checks of a loaded model's state: shapes that agree, indices in range, numbers finite.

A model file may come from anywhere, and the kernels index arrays without bounds checks, so
nothing read from a file reaches a kernel before these pass. Each failure is one line naming
the file and what is wrong.
"""

from __future__ import annotations

import numpy as np

from fastmf.common.errors import ModelFileError


def require(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise ModelFileError(f"{path}: {message}")


def check_shape(a: np.ndarray, shape: tuple, name: str, path: str, kinds: str = "f") -> None:
    """``a`` has ``shape`` and a dtype of one of ``kinds`` (numpy kind letters)."""
    require(
        a.dtype.kind in kinds and (a.dtype.kind != "f" or a.dtype.itemsize in (4, 8)),
        path,
        f"{name} has dtype {a.dtype}",
    )
    require(a.shape == tuple(shape), path, f"{name} has shape {list(a.shape)}, expected {list(shape)}")


def check_finite(path: str, **arrays) -> None:
    """Every value of the given float arrays is finite."""
    for name, a in arrays.items():
        require(bool(np.isfinite(a).all()), path, f"{name} holds non-finite values")


def check_positive(path: str, **arrays) -> None:
    """Every value of the given float arrays is finite and positive."""
    for name, a in arrays.items():
        require(bool(np.isfinite(a).all() and (a > 0).all()), path, f"{name} must be finite and positive")


def check_ids(ids: np.ndarray, name: str, path: str) -> None:
    """Original ids: a 1-D array of integers or text, without duplicates."""
    require(ids.ndim == 1 and ids.dtype.kind in "iuU", path, f"{name} must be a list of integer or text ids")
    require(np.unique(ids).size == ids.size, path, f"{name} holds duplicate ids")


def check_csr(indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int, name: str, path: str) -> None:
    """A CSR pattern the kernels can walk: ``indptr`` from 0, non-decreasing, ending at ``len(indices)``;
    column indices in ``[0, n_cols)`` and strictly increasing within each row."""
    check_shape(indptr, (n_rows + 1,), f"{name} indptr", path, "iu")
    require(indices.ndim == 1 and indices.dtype.kind in "iu", path, f"{name} indices must be integers")
    require(
        int(indptr[0]) == 0 and int(indptr[-1]) == indices.shape[0] and bool((np.diff(indptr) >= 0).all()),
        path,
        f"{name} indptr is not a valid row pointer",
    )
    if indices.size:
        require(int(indices.min()) >= 0 and int(indices.max()) < n_cols, path, f"{name} indices out of range")
        starts = np.zeros(indices.size, dtype=bool)
        starts[indptr[:-1][np.diff(indptr) > 0]] = True
        require(
            bool((np.diff(indices.astype(np.int64))[~starts[1:]] > 0).all()),
            path,
            f"{name} rows are not sorted without repeats",
        )
