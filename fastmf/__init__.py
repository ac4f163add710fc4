"""fastmf: Numba-accelerated, multicore matrix-factorisation recommenders.

Public API::

    import fastmf
    data = fastmf.load_dataset()              # embedded ml-latest-small
    split = fastmf.random_split(data, 0.1)
    model = fastmf.ALS(factors=20).fit(split.train, eval_set=split.test)
    model.save("model"); fastmf.load_model("model")
"""

from fastmf.common.numba_cache import configure as _configure_numba_cache

_configure_numba_cache()  # before any kernel module is imported

from fastmf._version import __version__  # noqa: E402
from fastmf.common.errors import DivergenceError, FastMFError, InputError, ModelFileError, NotFittedError  # noqa: E402
from fastmf.common.threads import set_threads  # noqa: E402
from fastmf.data_prep.dataset import Dataset, IdMap, load_dataset  # noqa: E402
from fastmf.data_prep.loaders import ColumnSpec  # noqa: E402
from fastmf.data_prep.splits import leave_k_out, random_split, temporal_split  # noqa: E402
from fastmf.models import ALS, BPR, VI, WRMF, BiasOnly, FeatureALS, MostPopular  # noqa: E402
from fastmf.models.als import fit_als  # noqa: E402
from fastmf.registry import load_model  # noqa: E402

__all__ = [
    "__version__",
    "Dataset",
    "IdMap",
    "load_dataset",
    "ColumnSpec",
    "set_threads",
    "load_model",
    "random_split",
    "leave_k_out",
    "temporal_split",
    "ALS",
    "BiasOnly",
    "FeatureALS",
    "VI",
    "BPR",
    "MostPopular",
    "WRMF",
    "fit_als",
    "FastMFError",
    "InputError",
    "ModelFileError",
    "DivergenceError",
    "NotFittedError",
]
