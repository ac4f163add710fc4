"""Search ranges of hyperparameters for ``fastmf tune --budget`` (declared by each model as ``search_space``).

A range says where good values usually lie; :func:`sample` draws a setting from a
model's ranges, choices first (so that a regulariser's range can depend on the chosen
scheme). Continuous ranges are log-uniform: a regulariser of 0.1 and one of 0.3 differ as
much as 1 and 3.

:class:`Ridge` expresses a prior precision relative to the data precision ``lam``, the
ratio that alone decides a MAP fit (dividing the objective by ``lam`` leaves ``tau/lam``
and ``gamma/lam``); with ``reg_scaling="count"`` each entity's ridge is multiplied by its
rating count, so the sampled ratio is divided by the data's typical count (the geometric
mean of the median user and median item counts) and both schemes search the same
effective regularisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Choice:
    """One of ``values``, uniformly."""

    values: tuple

    def draw(self, rng: np.random.Generator, context: dict):
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class LogUniform:
    """``exp(U(log low, log high))``, rounded to an integer with ``integer``."""

    low: float
    high: float
    integer: bool = False

    def draw(self, rng: np.random.Generator, context: dict):
        x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return int(round(x)) if self.integer else float(f"{x:.4g}")


@dataclass(frozen=True)
class Ridge:
    """A prior precision ``lam * x / n`` with ``x`` log-uniform in ``[low, high]`` and ``n`` the
    typical rating count under ``reg_scaling="count"`` (else 1); see the module docstring."""

    low: float
    high: float

    def draw(self, rng: np.random.Generator, context: dict):
        ratio = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        per_entity = context["typical_count"] if context.get("reg_scaling") == "count" else 1.0
        return float(f"{context['lam'] * ratio / per_entity:.4g}")


def typical_count(indptr: np.ndarray, col_indptr: np.ndarray) -> float:
    """The geometric mean of the median user and the median item rating counts (at least 1)."""
    medians = [max(float(np.median(np.diff(p))), 1.0) if p.shape[0] > 1 else 1.0 for p in (indptr, col_indptr)]
    return math.sqrt(medians[0] * medians[1])


def sample(space: dict, rng: np.random.Generator, context: dict) -> dict:
    """One setting drawn from ``space`` (``{name: range}``); ``context`` supplies ``lam`` (the fixed data
    precision) and ``typical_count`` for :class:`Ridge` ranges."""
    point = {}
    for name, spec in sorted(space.items(), key=lambda kv: not isinstance(kv[1], Choice)):
        point[name] = spec.draw(rng, {**context, **point})
    return {name: point[name] for name in space}
