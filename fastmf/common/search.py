"""Search ranges of hyperparameters for ``fastmf tune --budget`` (declared by each model as ``search_space``).

A range says where good values usually lie; :func:`sample` draws settings from a
model's ranges, choices first (so that a regulariser's range can depend on the chosen
scheme). Continuous ranges are log-uniform: a regulariser of 0.1 and one of 0.3 differ as
much as 1 and 3. The draws are a scrambled Halton sequence (one coordinate per range,
mapped through each range's inverse distribution function) rather than independent
uniforms: a budget of a few dozen settings then covers every range and every pair of
ranges evenly, with no clusters and no gaps, which is what a small search needs most.

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
from scipy.stats import qmc


@dataclass(frozen=True)
class Choice:
    """One of ``values``, uniformly."""

    values: tuple

    def value(self, u: float, context: dict):
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]


@dataclass(frozen=True)
class LogUniform:
    """``exp(U(log low, log high))``, rounded to an integer with ``integer``."""

    low: float
    high: float
    integer: bool = False

    def value(self, u: float, context: dict):
        x = _log_uniform(self.low, self.high, u)
        return int(round(x)) if self.integer else float(f"{x:.4g}")


@dataclass(frozen=True)
class Ridge:
    """A prior precision ``lam * x / n`` with ``x`` log-uniform in ``[low, high]`` and ``n`` the
    typical rating count under ``reg_scaling="count"`` (else 1); see the module docstring."""

    low: float
    high: float

    def value(self, u: float, context: dict):
        ratio = _log_uniform(self.low, self.high, u)
        per_entity = context["typical_count"] if context.get("reg_scaling") == "count" else 1.0
        return float(f"{context['lam'] * ratio / per_entity:.4g}")


def typical_count(indptr: np.ndarray, col_indptr: np.ndarray) -> float:
    """The geometric mean of the median user and the median item rating counts (at least 1)."""
    medians = [max(float(np.median(np.diff(p))), 1.0) if p.shape[0] > 1 else 1.0 for p in (indptr, col_indptr)]
    return math.sqrt(medians[0] * medians[1])


def _log_uniform(low: float, high: float, u: float) -> float:
    """The ``u``-quantile of the log-uniform distribution on ``[low, high]``."""
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def sample(space: dict, n: int, rng: np.random.Generator, context: dict) -> list[dict]:
    """``n`` settings drawn from ``space`` (``{name: range}``) by a scrambled Halton sequence seeded from
    ``rng``; ``context`` supplies ``lam`` (the fixed data precision) and ``typical_count`` for
    :class:`Ridge` ranges."""
    if n <= 0 or not space:
        return [{} for _ in range(max(n, 0))]
    order = sorted(space, key=lambda name: not isinstance(space[name], Choice))
    units = qmc.Halton(d=len(order), scramble=True, seed=rng).random(n)
    points = []
    for row in units:
        point = {}
        for name, u in zip(order, row):
            point[name] = space[name].value(float(u), {**context, **point})
        points.append({name: point[name] for name in space})
    return points
