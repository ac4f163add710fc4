"""fastmf: Numba-accelerated, multicore matrix-factorisation recommenders.

Public API::

    import fastmf
    data = fastmf.load_dataset()              # embedded ml-latest-small
    split = fastmf.random_split(data, 0.1)
"""

from fastmf._version import __version__
from fastmf.data_prep.dataset import Dataset, IdMap, load_dataset
from fastmf.data_prep.loaders import ColumnSpec
from fastmf.threads import set_threads

__all__ = ["__version__", "Dataset", "IdMap", "load_dataset", "ColumnSpec", "set_threads"]
