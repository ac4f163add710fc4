"""Thread control for the parallel kernels."""

from __future__ import annotations

import os

import numba

from fastmf.common.errors import FastMFError


def set_threads(n: int | None) -> int:
    """Use ``n`` threads in the Numba kernels (``None`` or 0: all cores); returns the count in use.

    More threads than the machine's cores are capped at the cores. Also pins BLAS to one
    thread: the kernels never call BLAS inside a parallel region, and the NumPy reference
    backend works on D x D matrices for which BLAS threading only adds overhead.
    """
    if n is not None and (isinstance(n, bool) or int(n) != n or n < 0):
        raise FastMFError(f"threads must be a non-negative integer (0: all cores), got {n!r}")
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    limit = max_threads()
    n = limit if not n else min(int(n), limit)
    numba.set_num_threads(n)
    return n


def max_threads() -> int:
    """The most threads the parallel kernels can use (the machine's cores unless ``NUMBA_NUM_THREADS`` says)."""
    return numba.config.NUMBA_NUM_THREADS


def n_threads() -> int:
    """The number of threads the parallel kernels use now."""
    return numba.get_num_threads()


#: below this many ratings a sweep or an error sum runs on the calling thread (:func:`runs_serially`):
#: ml-latest-small and ml-100k do, ml-1m does not
SERIAL_BELOW = 1 << 18


def runs_serially(n_ratings: int) -> bool:
    """Whether work over ``n_ratings`` ratings runs on the calling thread rather than in a parallel kernel.

    Below ``SERIAL_BELOW`` ratings a pass takes a few milliseconds on one thread (at most about 10 ms
    more than on two), while the first call of a parallel kernel compiles its parallel loop (about 2 s
    of a cold first run on ml-latest-small); each kernel's serial and parallel paths run the same
    per-entity function, so their results are identical.
    """
    return n_ratings < SERIAL_BELOW
