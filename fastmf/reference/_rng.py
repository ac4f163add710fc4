"""SplitMix64 in vectorised NumPy: the same streams as the kernels' generator, bit for bit.

SplitMix64 is counter-based: a stream whose state starts at ``s0`` returns, at
its ``k``-th call (``k = 1, 2, ...``), ``mix64(s0 + k * GOLDEN)`` (64-bit
wrap-around arithmetic). So any set of draws of a stream can be computed at
once from their call numbers, which is what lets the NumPy reference backend
draw exactly the numbers the Numba kernels draw, without a Python loop per call.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
TWO_TO_MINUS_53 = 1.0 / 9007199254740992.0


def _u64(x) -> np.ndarray:
    """``x`` as a uint64 array (negative Python ints wrap around, as a C cast does)."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, np.unsignedinteger):
        return np.array([int(x) % (1 << 64)], dtype=np.uint64)[0]
    return np.asarray(x, dtype=np.uint64)


def mix64(z):
    """The SplitMix64 output function (a bijection on 64-bit integers), elementwise."""
    z = _u64(z)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


def stream_seed(seed, stream):
    """Initial state of stream ``stream`` of generator ``seed`` (elementwise in ``stream``)."""
    with np.errstate(over="ignore"):
        return mix64(mix64(_u64(seed) + GOLDEN) ^ (_u64(stream) * M2 + GOLDEN))


def draws(state, calls):
    """The outputs of the calls numbered ``calls`` (1-based) of streams starting at ``state``."""
    with np.errstate(over="ignore"):
        return mix64(_u64(state) + _u64(calls) * GOLDEN)


def uniform(x):
    """Uniform float64 in [0, 1) from raw 64-bit outputs ``x`` (the top 53 bits)."""
    return (_u64(x) >> np.uint64(11)).astype(np.float64) * TWO_TO_MINUS_53


def randint(x, n):
    """Uniform integers in [0, n) from raw outputs ``x`` (Lemire's multiply-shift, ``0 < n < 2**32``)."""
    with np.errstate(over="ignore"):
        return ((_u64(x) >> np.uint64(32)) * _u64(n) >> np.uint64(32)).astype(np.int64)


def normal(x1, x2):
    """Standard normal draws (Box-Muller, one of the pair) from two raw outputs each."""
    u1, u2 = uniform(x1), uniform(x2)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
