"""fastmf: Numba-accelerated, multicore matrix-factorisation recommenders.

Public API::

    import fastmf
    data = fastmf.load_dataset()              # embedded ml-latest-small
    split = fastmf.random_split(data, 0.1)
    model = fastmf.ALS(factors=20).fit(split.train, eval_set=split.test)
    model.save("model"); fastmf.load_model("model")
"""

from fastmf._version import __version__
from fastmf.als import ALS, BiasOnly, fit_als
from fastmf.base import load_model
from fastmf.bpr import BPR
from fastmf.features import FeatureALS
from fastmf.popular import MostPopular
from fastmf.vi import VI
from fastmf.data_prep.dataset import Dataset, IdMap, load_dataset
from fastmf.data_prep.loaders import ColumnSpec
from fastmf.data_prep.splits import leave_k_out, random_split, temporal_split
from fastmf.threads import set_threads

__all__ = ["__version__", "Dataset", "IdMap", "load_dataset", "ColumnSpec", "set_threads", "load_model",
           "random_split", "leave_k_out", "temporal_split", "ALS", "BiasOnly", "FeatureALS", "VI", "BPR", "MostPopular", "fit_als"]
