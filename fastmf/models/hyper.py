"""Hyperparameters that several models share, each declared once (see :mod:`fastmf.common.params`).

A model takes them into its own declaration, with :meth:`~fastmf.common.params.Param.but`
where its default differs (BPR's ``factors`` is 64, the feature model trains 50 ``epochs``).
"""

from __future__ import annotations

from fastmf.common.params import Param
from fastmf.models.backend import BACKENDS

FACTORS = Param(20, "Latent dimension D.", low=0)
LAM = Param(0.1, "Data (noise) precision lambda of the squared-error term.", low=0.0, low_open=True)
GAMMA = Param(2.5, "Bias regulariser gamma (the precision of the biases' zero-mean prior).", low=0.0)
TAU = Param(1.0, "Factor regulariser tau (the precision of the factors' prior).", low=0.0, low_open=True)
EPOCHS = Param(20, "Training epochs.", low=0)
RANDOM_STATE = Param(42, "Seed of the initial factors and of any sampling (scikit-learn's random_state).", low=0,
                     high=2 ** 63 - 1)
BACKEND = Param("numba", "numba kernels (default) or the NumPy reference backend.", choices=tuple(BACKENDS))
PATIENCE = Param(None, "Early stopping: epochs without a better validation RMSE before stopping "
                 "(validation carved from the training data; none: no early stopping).",
                 type=int, low=1, optional=True)
VALIDATION_FRAC = Param(0.05, "Share of the training ratings held out for early stopping (with patience).",
                        low=0.0, high=1.0, low_open=True)
THRESHOLD = Param(4.0, "Ratings >= this are positives (0 or none: every rating).", low=0.0, optional=True)
WORK_SPLIT = Param("balanced", "How entities are split among threads: balanced (blocks of equal cost, "
                   "handed out dynamically) or naive (one equal-count block per thread; to measure balancing).",
                   choices=("balanced", "naive"))
