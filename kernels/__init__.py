"""Numba kernels of fastmf, installed as ``fastmf.kernels``: the ``numba`` backend.

One public module per job: ``als``, ``bpr``, ``vi`` and ``features`` (the models' sweeps),
``metrics`` (errors, predictions, sums of squares), ``topk`` (parallel top-K selection),
``ranking`` (per-user ranking metrics), ``sampling`` (alias tables), ``sparse`` (CSR/CSC
construction) and ``synth`` (synthetic data). :mod:`fastmf.reference` mirrors each of them
function for function with the same signatures (each module's ``__all__``); the private
modules (``_linalg``, ``_rng``, ``_search``) hold helpers inlined into the kernels. State is float32 (``FLOAT``). Every
kernel is compiled with ``cache=True``; the thread count follows ``numba.set_num_threads``
(see :func:`fastmf.set_threads`).
"""

import numpy as np

from fastmf.kernels import (  # noqa: F401
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

#: precision of the parameters the kernels update
FLOAT = np.float32
