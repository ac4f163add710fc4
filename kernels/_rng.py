"""A small counter-based random generator inlined into parallel Numba kernels.

SplitMix64 (Steele, Lea & Flood 2014): ``state += 0x9E3779B97F4A7C15`` and the
output is a bijective mix of the state. Each stream keeps its state in a
one-element ``uint64`` array; :func:`stream_seed` derives independent streams
from (seed, stream id) so results do not depend on how work is split across
threads.
"""

import math

import numpy as np
from numba import njit, uint64

_GOLDEN = uint64(0x9E3779B97F4A7C15)
_M1 = uint64(0xBF58476D1CE4E5B9)
_M2 = uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def mix64(z):
    """The SplitMix64 output function (a bijection on 64-bit integers)."""
    z = uint64(z)
    z = (z ^ (z >> uint64(30))) * _M1
    z = (z ^ (z >> uint64(27))) * _M2
    return z ^ (z >> uint64(31))


@njit(cache=True, inline="always")
def stream_seed(seed, stream):
    """Initial state of stream ``stream`` of generator ``seed``."""
    return mix64(mix64(uint64(seed) + _GOLDEN) ^ (uint64(stream) * _M2 + _GOLDEN))


@njit(cache=True, inline="always")
def next_u64(state):
    state[0] += _GOLDEN
    return mix64(state[0])


@njit(cache=True, inline="always")
def uniform(state):
    """Uniform float64 in [0, 1)."""
    return float(next_u64(state) >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def randint(state, n):
    """Uniform integer in [0, n) for 0 < n < 2**32 (Lemire's multiply-shift)."""
    return np.int64(((next_u64(state) >> uint64(32)) * uint64(n)) >> uint64(32))


@njit(cache=True, inline="always")
def normal(state):
    """Standard normal draw (Box-Muller, one of the pair)."""
    u1 = uniform(state)
    u2 = uniform(state)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)
def new_state(seed, stream):
    st = np.empty(1, dtype=np.uint64)
    st[0] = stream_seed(seed, stream)
    return st


@njit(cache=True, inline="always")
def alias_draw(state, prob, alias):
    k = randint(state, prob.shape[0])
    if uniform(state) < prob[k]:
        return k
    return np.int64(alias[k])
