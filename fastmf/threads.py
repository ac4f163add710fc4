"""Thread control for the parallel kernels."""

from __future__ import annotations

import os


def set_threads(n: int | None) -> int:
    """Use ``n`` threads in the Numba kernels (``None`` or 0: all cores); returns the count in use.

    Also pins BLAS to one thread: the kernels never call BLAS inside a parallel
    region, and the NumPy reference backend works on D x D matrices for which
    BLAS threading only adds overhead.
    """
    import numba

    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    limit = numba.config.NUMBA_NUM_THREADS
    n = limit if not n else max(1, min(int(n), limit))
    numba.set_num_threads(n)
    return n
