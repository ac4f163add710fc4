"""The one backend switch: a model names its backend once and calls the same functions on either.

``fastmf.kernels`` (Numba, float32 state) and ``fastmf.reference`` (NumPy, float64 state)
have the same modules, functions, signatures and state layouts, so model code is
written once against ``backend.als.half_sweep``, ``backend.metrics.error_sums``, ...
with ``backend.FLOAT`` as the precision of its parameters.
"""

from __future__ import annotations

from fastmf import kernels, reference

BACKENDS = {"numba": kernels, "numpy": reference}


def backend_of(name: str):
    """The kernel package of backend ``name`` (validated by the ``backend`` hyperparameter)."""
    return BACKENDS[name]
