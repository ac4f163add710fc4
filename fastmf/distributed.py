"""Training on a Dask cluster (needs the ``distributed`` extra: ``pip install 'fastmf[distributed]'``).

``fastmf.distributed.fit(model, dataset_path, client)`` fits ALS, the bias-only or the feature model,
VI or BPR (by DSGD) on a folder written by ``fastmf prepare SOURCE OUT --partitions N`` and returns
the model, fitted as a local fit would be; see :mod:`fastmf.drivers.distributed`.
"""

from fastmf.drivers.distributed import SUPPORTED, fit

__all__ = ["fit", "SUPPORTED"]
