"""Memory layouts and work splits shared by the backends and the models.

Cache-line aligned arrays; the equal-cost entity blocks that the parallel
half-sweeps hand out to threads; and the packed per-entity rows of the
full-covariance variational sweeps (``m m^T + S``, ``m`` and the bias in one
contiguous float32 row).
"""

from __future__ import annotations

import numpy as np

CACHE_LINE_FLOATS = 16  # 4-byte elements (float32, int32) per 64-byte cache line
#: users scored per batch when ranking many users (bounds the score matrix held at once)
SCORE_BATCH = 512
#: entries per temporary when covariances are packed into rows (:func:`pack_rows`): 32 MB of float64
PACK_CHUNK = 1 << 22


def aligned_zeros(shape, dtype, align: int = 64) -> np.ndarray:
    """A zeroed C-contiguous array whose data starts on an ``align``-byte (cache-line) boundary.

    Large NumPy allocations start 16 bytes past a page boundary, so rows whose
    width is a multiple of a cache line would otherwise all straddle lines.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.zeros(nbytes + align, dtype=np.uint8)
    offset = -buf.ctypes.data % align
    return buf[offset : offset + nbytes].view(dtype).reshape(shape)


def aligned_copy(a: np.ndarray) -> np.ndarray:
    """A cache-line aligned C-contiguous copy of ``a`` (see :func:`aligned_zeros`)."""
    out = aligned_zeros(a.shape, a.dtype)
    out[...] = a
    return out


def padded_width(n: int) -> int:
    """``n`` rounded up to whole cache lines of 4-byte elements."""
    return -(-n // CACHE_LINE_FLOATS) * CACHE_LINE_FLOATS


def bias_rows(factors: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """One aligned row per entity holding its factor vector then its bias, ``[V_c, b_c]``, padded to whole
    cache lines (zeros after column ``D``): no two entities share a line, and an SGD step that writes
    ``V_c`` and ``b_c`` writes only ``c``'s own lines (with ``b`` in an array of its own, the biases of
    sixteen items share a line, which threads updating different items fight over)."""
    n, d = factors.shape
    rows = aligned_zeros((n, padded_width(d + 1)), factors.dtype)
    rows[:, :d] = factors
    rows[:, d] = bias
    return rows


def split_bias_rows(rows: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The factors ``V`` and biases ``b`` of :func:`bias_rows` output with ``d`` factors: views, so writes
    go through to ``rows``."""
    return rows[:, :d], rows[:, d]


#: the cost of one entity's solve, in the flops of the Gram updates of its ratings (``d^2 + 2d + 4``
#: a rating): ``ENTITY_CUBE d^3 + ENTITY_SQUARE d^2 + ENTITY_CONSTANT``, fitted to single-thread ALS
#: half-sweeps over item blocks of very different row lengths (the ml-32m shape's 5,623 most rated
#: items against its other 78,809, at D = 8, 20 and 64: an entity costs as much as 45, 58 and 120
#: ratings). The Cholesky's ``d^3/3`` flops alone undercount it several times over: it runs at a
#: fraction of the Gram accumulation's rate, and each entity also clears and fills its system.
ENTITY_CUBE, ENTITY_SQUARE, ENTITY_CONSTANT = 1.35, 38.0, 700.0


def balanced_blocks(indptr: np.ndarray, d: int, n_blocks: int) -> np.ndarray:
    """Boundaries of ``n_blocks`` contiguous entity ranges with about equal solve cost: ``n_e`` ratings
    cost ``n_e (d^2 + 2d + 4)`` and each entity ``ENTITY_CUBE d^3 + ENTITY_SQUARE d^2 + ENTITY_CONSTANT``
    (see :data:`ENTITY_CUBE`)."""
    n = indptr.shape[0] - 1
    counts = np.diff(indptr).astype(np.float64)
    cost = counts * (d * d + 2 * d + 4) + (ENTITY_CUBE * d**3 + ENTITY_SQUARE * d**2 + ENTITY_CONSTANT)
    cum = np.cumsum(cost)
    total = cum[-1] if n else 0.0
    cuts = np.searchsorted(cum, total * np.arange(1, n_blocks) / n_blocks, side="left") + 1
    bounds = np.concatenate([[0], np.minimum(cuts, n), [n]]).astype(np.int64)
    return np.maximum.accumulate(bounds)


def uniform_blocks(n: int, n_blocks: int) -> np.ndarray:
    """Equal-count entity ranges (the naive split, kept to measure load balancing)."""
    return np.linspace(0, n, n_blocks + 1).round().astype(np.int64)


def pack_rows(mean: np.ndarray, cov: np.ndarray, bias: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Per entity, in ``dtype``: packed lower triangle of ``m m^T + S`` (row-major), then ``m``, then
    the bias, then zeros up to whole cache lines (:func:`row_width`); the table is cache-line aligned."""
    d = mean.shape[1]
    rows, cols = np.tril_indices(d)
    out = aligned_zeros((mean.shape[0], row_width(d)), dtype)
    step = max(1, min(4096, PACK_CHUNK // max(rows.size, 1)))  # temporaries of about PACK_CHUNK floats each
    for lo in range(0, mean.shape[0], step):
        m = mean[lo : lo + step].astype(np.float64)
        out[lo : lo + step, : rows.size] = m[:, rows] * m[:, cols] + cov[lo : lo + step][:, rows, cols]
    out[:, rows.size : rows.size + d] = mean
    out[:, rows.size + d] = bias
    return out


def scale_rows(rows: np.ndarray, scale: np.ndarray) -> None:
    """Rescale packed rows (:func:`pack_rows`) in place for ``m -> C m``, ``S -> C S C`` with
    ``C = diag(scale)``: ``P = m m^T + S`` becomes ``C P C``, entry ``(p, q)`` times ``c_p c_q``."""
    d = scale.shape[0]
    r, c = np.tril_indices(d)
    rows[:, : r.size] *= (scale[r] * scale[c]).astype(rows.dtype)
    rows[:, r.size : r.size + d] *= scale.astype(rows.dtype)


def row_width(d: int) -> int:
    """Floats per packed row: ``D(D+1)/2 + D + 1`` and two spare slots (:func:`_add_moments`),
    rounded up to whole cache lines."""
    return padded_width(d * (d + 1) // 2 + d + 3)


def moments_width(d: int) -> int:
    """Floats per moment accumulator (:func:`_add_moments`), in whole cache lines."""
    return padded_width(row_width(d) + d)
