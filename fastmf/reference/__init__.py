"""The NumPy reference backend (``backend="numpy"``).

Written the way a careful NumPy user would: a Python loop over users and items
with vectorised NumPy operations inside each one, in float64. It mirrors
:mod:`fastmf.kernels` module for module and function for function, with the same
signatures and state layouts, and is the baseline the Numba kernels are checked
and benchmarked against.
"""

import numpy as np

from fastmf.reference import (  # noqa: F401
    als,
    bpr,
    features,
    metrics,
    ranking,
    sampling,
    sparse,
    synth,
    topk,
    vi,
    wrmf,
)

#: precision of the parameters the reference updates
FLOAT = np.float64
