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

:func:`sample_near` draws settings around a given one instead: each range's value is
moved within a box of ``width`` times the range's log-width (kept inside the range),
choices stay as they are; a search uses it to refine its winner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Choice:
    """One of ``values``, uniformly."""

    values: tuple

    def value(self, u: float, context: dict):
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def near(self, x, u: float, width: float, context: dict):
        return x


@dataclass(frozen=True)
class LogUniform:
    """``exp(U(log low, log high))``, rounded to an integer with ``integer``."""

    low: float
    high: float
    integer: bool = False

    def value(self, u: float, context: dict):
        return self._round(_log_uniform(self.low, self.high, u))

    def near(self, x, u: float, width: float, context: dict):
        return self._round(_moved(x, u, width, self.low, self.high, 1.0))

    def _round(self, x: float):
        return int(round(x)) if self.integer else float(f"{x:.4g}")


@dataclass(frozen=True)
class Ridge:
    """A prior precision ``lam * x / n`` with ``x`` log-uniform in ``[low, high]`` and ``n`` the
    typical rating count under ``reg_scaling="count"`` (else 1); see the module docstring."""

    low: float
    high: float

    def value(self, u: float, context: dict):
        return float(f"{self._unit(context) * _log_uniform(self.low, self.high, u):.4g}")

    def near(self, x, u: float, width: float, context: dict):
        return float(f"{_moved(x, u, width, self.low, self.high, self._unit(context)):.4g}")

    @staticmethod
    def _unit(context: dict) -> float:
        """The precision of a ratio of 1: ``lam``, divided by the typical count under ``"count"``."""
        per_entity = context["typical_count"] if context.get("reg_scaling") == "count" else 1.0
        return context["lam"] / per_entity


def typical_count(indptr: np.ndarray, col_indptr: np.ndarray) -> float:
    """The geometric mean of the median user and the median item rating counts (at least 1)."""
    medians = [max(float(np.median(np.diff(p))), 1.0) if p.shape[0] > 1 else 1.0 for p in (indptr, col_indptr)]
    return math.sqrt(medians[0] * medians[1])


def _log_uniform(low: float, high: float, u: float) -> float:
    """The ``u``-quantile of the log-uniform distribution on ``[low, high]``."""
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def _moved(x: float, u: float, width: float, low: float, high: float, unit: float) -> float:
    """``x * (high/low)^((2u - 1) width)``, kept inside ``[unit low, unit high]``."""
    step = (2.0 * u - 1.0) * width * (math.log(high) - math.log(low))
    return min(max(math.exp(math.log(x) + step), unit * low), unit * high)


def sample(space: dict, n: int, rng: np.random.Generator, context: dict) -> list[dict]:
    """``n`` settings drawn from ``space`` (``{name: range}``) by a scrambled Halton sequence seeded from
    ``rng``; ``context`` supplies ``lam`` (the fixed data precision) and ``typical_count`` for
    :class:`Ridge` ranges."""
    return _draw(space, n, rng, lambda name, u, point: space[name].value(u, {**context, **point}))


def sample_near(space: dict, center: dict, n: int, rng: np.random.Generator, context: dict, width: float) -> list[dict]:
    """``n`` settings around ``center`` (a setting of ``space``): each range's value moved by a scrambled
    Halton draw within ``width`` of the range's log-width (:meth:`near`), choices kept."""
    return _draw(space, n, rng, lambda name, u, point: space[name].near(center[name], u, width, {**context, **center}))


def _draw(space: dict, n: int, rng: np.random.Generator, value) -> list[dict]:
    """``n`` settings whose coordinates are ``value(name, u, point so far)`` of scrambled Halton
    draws ``u``, choices first."""
    if n <= 0 or not space:
        return [{} for _ in range(max(n, 0))]
    from scipy.stats import qmc  # here, not at the top: importing scipy.stats costs every command 0.4 s

    order = sorted(space, key=lambda name: not isinstance(space[name], Choice))
    units = qmc.Halton(d=len(order), scramble=True, seed=rng).random(n)
    points = []
    for row in units:
        point = {}
        for name, u in zip(order, row):
            point[name] = value(name, float(u), point)
        points.append({name: point[name] for name in space})
    return points
