"""Hyperparameters that several models share, each declared once (see :mod:`fastmf.common.params`).

A model takes them into its own declaration, with :meth:`~fastmf.common.params.Param.but`
where its default differs (BPR's ``factors`` is 64, the feature model trains 50 ``epochs``).

Ranges are finite on purpose. The precisions (``lam``, ``tau``, ``beta``, a positive ``gamma``)
stay within ``[1e-8, 1e8]``: their ratios enter float32 systems such as ``lam V^T V + tau I``,
whose solves lose every digit beyond a ratio of about 1e16 (and ``1e30`` overflows float32 outright);
real settings lie within ``[1e-4, 1e4]``. ``factors <= 4096`` (one ``D x D`` solve per user and
item per epoch; the time and memory of a given data set are checked in ``fit``, see
:mod:`fastmf.models.budget`) and ``epochs <= 100000``.
"""

from __future__ import annotations

from fastmf.common.params import Param
from fastmf.common.search import Choice, LogUniform, Ridge
from fastmf.models.backend import BACKENDS

#: the range of every precision hyperparameter (module docstring)
PRECISION_MIN, PRECISION_MAX = 1e-8, 1e8
#: the largest latent dimension accepted
MAX_FACTORS = 4096
MAX_EPOCHS = 100_000

FACTORS = Param(
    20,
    f"Latent dimension D (at most {MAX_FACTORS}; whether the data's training fits in memory "
    "and in an hour per epoch is checked before training).",
    low=0,
    high=MAX_FACTORS,
)
LAM = Param(
    0.1,
    "Data (noise) precision lambda of the squared-error term (1e-8 to 1e8: beyond, the float32 "
    "solves lose all precision).",
    low=PRECISION_MIN,
    high=PRECISION_MAX,
)
GAMMA = Param(
    2.5,
    "Bias regulariser gamma (the precision of the biases' zero-mean prior; 0, or up to 1e8).",
    low=0.0,
    high=PRECISION_MAX,
)
TAU = Param(
    1.0,
    "Factor regulariser tau (the precision of the factors' prior; 1e-8 to 1e8: beyond, the float32 "
    "solves lose all precision).",
    low=PRECISION_MIN,
    high=PRECISION_MAX,
)
EPOCHS = Param(20, f"Training epochs (at most {MAX_EPOCHS:,}).", low=0, high=MAX_EPOCHS)
RANDOM_STATE = Param(
    42, "Seed of the initial factors and of any sampling (scikit-learn's random_state).", low=0, high=2**63 - 1
)
BACKEND = Param("numba", "numba kernels (default) or the NumPy reference backend.", choices=tuple(BACKENDS))
PATIENCE = Param(
    None,
    "Early stopping: epochs without a better validation RMSE before stopping "
    "(validation carved from the training data; none: no early stopping).",
    type=int,
    low=1,
    optional=True,
)
VALIDATION_FRAC = Param(
    0.05, "Share of the training ratings held out for early stopping (with patience).", low=0.0, high=1.0, low_open=True
)
THRESHOLD = Param(4.0, "Ratings >= this are positives (0 or none: every rating).", low=0.0, optional=True)
REG_SCALING = Param(
    "none",
    "Ridge scaling: none (the same tau and gamma for every user and item) or count "
    "(entity e's ridges tau n_e and gamma n_e with n_e its number of training ratings: ALS-WR, "
    "Spark MLlib's weighted-lambda).",
    choices=("none", "count"),
)
WORK_SPLIT = Param(
    "balanced",
    "How entities are split among threads: balanced (blocks of equal cost, "
    "handed out dynamically) or naive (one equal-count block per thread; to measure balancing).",
    choices=("balanced", "naive"),
)
SOLVER = Param(
    "cholesky",
    "Per-entity solver: cholesky (exact) or cg (warm-started conjugate gradient, --cg-steps steps).",
    choices=("cholesky", "cg"),
)
CG_STEPS = Param(3, "Conjugate-gradient steps per user and item and half-sweep (--solver cg).", low=1, high=100)


def cg_steps_of(solver: str, cg_steps: int) -> int:
    """The kernels' solver switch: 0 for the exact (Cholesky) solve, else the conjugate-gradient steps."""
    return 0 if solver == "cholesky" else int(cg_steps)


# where ``fastmf tune --budget`` searches (see :mod:`fastmf.common.search`): ranges that hold the good
# settings of MovieLens-like data with room on both sides
SEARCH_FACTORS = LogUniform(8, 128, integer=True)
#: ``tau / lam`` (per typical rating count under ``reg_scaling="count"``); ALS's default is 10
SEARCH_TAU = Ridge(0.1, 300.0)
#: ``gamma / lam``; ALS's default is 25
SEARCH_GAMMA = Ridge(0.03, 300.0)
SEARCH_REG_SCALING = Choice(("none", "count"))
