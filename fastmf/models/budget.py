"""Memory and time budgets: training that cannot finish is refused before it allocates anything.

Every model estimates, from the shapes of its training data (users, items, ratings) and its
hyperparameters, the peak bytes of its training state and the floating-point operations of
one epoch (its ``training_cost`` method returns a :class:`Cost`; the formulas are in each
model). :func:`check` compares the estimate with the memory available now and with a time
budget of :data:`EPOCH_SECONDS` per epoch at :data:`FLOPS` (about what the numba kernels reach
with a few cores at large D; 2 cores of a Zen 4 VM measured 10 GFLOP/s, the NumPy reference
backend is slower), warns when an epoch will take more than :data:`WARN_SECONDS`, and refuses
with one line that gives the estimate and what would fit, e.g. (the synthetic ml-32m shape at
scale 0.05)::

    VI with D=512 full covariance needs about 29.6 GB for 1.6 M ratings, 9.8 GB are available:
    use --covariance diagonal or --factors <= 291

Python callers who know better may raise the limits: ``fastmf.models.budget.EPOCH_SECONDS``
and ``FLOPS`` are read at every check.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from fastmf.common.errors import FastMFError

#: floating-point operations per second assumed for the time budget (conservative)
FLOPS = 20e9
#: the longest epoch accepted, in seconds
EPOCH_SECONDS = 3600.0
#: epochs estimated to take longer than this are announced with a warning
WARN_SECONDS = 60.0
#: temporaries per training rating outside a model's state: a validation split's copy of the
#: ratings (early stopping) and the per-rating errors of an evaluation
PER_RATING_BYTES = 32.0


@dataclass(frozen=True)
class Shape:
    """What a cost estimate needs of the training data: its counts of users, items and ratings, and
    ``largest``, the most ratings of one user or item (the NumPy reference gathers them at once)."""

    users: int
    items: int
    ratings: int
    largest: int = 0

    @property
    def entities(self) -> int:
        return self.users + self.items


@dataclass(frozen=True)
class Cost:
    """A training run's estimated peak memory (``bytes``), arithmetic per epoch (``flops``) and the bytes an
    epoch reads and writes at least (``traffic``: every rating's index and value, the rows its update
    reads of the other side, each entity's own row written; what a cache may hold counted as moved)."""

    bytes: float
    flops: float
    traffic: float = 0.0


def sweep_traffic(shape: Shape, other_row: float, own_row: float) -> float:
    """The ``traffic`` of an epoch of two half-sweeps: per rating and side its index and value (8 bytes)
    and the ``other_row`` bytes read of the other side's entity, per entity its ``own_row`` bytes written
    and its row pointer (8)."""
    return 2.0 * shape.ratings * (8.0 + other_row) + shape.entities * (own_row + 8.0)


#: where the kernel lists this process's control groups, and where their files are mounted
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"
#: a cgroup v1 memory limit at or above this is "no limit" (the kernel reports about 2^63)
NO_CGROUP_LIMIT = 1 << 60


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now: ``MemAvailable`` of ``/proc/meminfo`` (else the
    free physical pages of ``os.sysconf``), or less when a control group's memory limit (a container's)
    leaves less room (:func:`cgroup_room`); None when neither is known."""
    known = [m for m in (_system_available(), cgroup_room()) if m is not None]
    return min(known) if known else None


def _system_available() -> int | None:
    kib = _file_value("/proc/meminfo", "MemAvailable")
    if kib is not None:
        return kib * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def cgroup_room() -> int | None:
    """The room left under the tightest memory limit of this process's control group and its ancestors:
    ``limit - (usage - inactive file cache)`` (the cache the kernel reclaims before it kills), with
    cgroup v2's ``memory.max``, ``memory.current`` and ``inactive_file``, or v1's
    ``memory.limit_in_bytes``, ``memory.usage_in_bytes`` and ``total_inactive_file``. None when no
    limit is set or the files cannot be read (not Linux, no memory controller)."""
    try:
        with open(PROC_CGROUP) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: one unified hierarchy
            files = (CGROUP_ROOT, "memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            files = (
                os.path.join(CGROUP_ROOT, "memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        else:
            continue
        rooms += _rooms_up(*files, path)
    return min(rooms) if rooms else None


def _rooms_up(mount: str, limit_file: str, usage_file: str, inactive_key: str, path: str) -> list[int]:
    """The room under the limit of every group from ``path`` up to the root of ``mount`` that sets one
    (in a container the process's path may not exist under the mount, which is then its own root)."""
    rooms = []
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        folder = os.path.join(mount, *parts[:depth])
        limit = _read_int(os.path.join(folder, limit_file))
        usage = _read_int(os.path.join(folder, usage_file))
        if limit is None or usage is None or limit >= NO_CGROUP_LIMIT:
            continue
        inactive = _file_value(os.path.join(folder, "memory.stat"), inactive_key) or 0
        rooms.append(max(limit - max(usage - inactive, 0), 0))
    return rooms


def _read_int(path: str) -> int | None:
    """The integer in a cgroup file, None for ``max``, a missing or unreadable file or anything else."""
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _file_value(path: str, key: str) -> int | None:
    """The integer after ``key`` (or ``key:``) at the start of a line of a ``/proc/meminfo`` or
    ``memory.stat`` style file; None when the file or the key is missing or the value is not one."""
    try:
        with open(path) as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 2 and fields[0].rstrip(":") == key:
                    return int(fields[1])
    except (OSError, ValueError):
        pass
    return None


def size_text(n: float) -> str:
    """Bytes in words: ``15.1 GB``, ``840 MB``."""
    if n >= 1e12:
        return f"{n / 1e12:.1f} TB"
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB"


def count_text(n: int) -> str:
    """A count in words: ``1.6 M``, ``100,836``."""
    return f"{n / 1e6:.1f} M" if n >= 1_000_000 else f"{n:,}"


def duration_text(seconds: float) -> str:
    """A duration in words: ``45 minutes``, ``3.3 hours``, ``12 days``."""
    if seconds >= 86400 * 2:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def limit_text() -> str:
    hours = EPOCH_SECONDS / 3600
    return f"{hours:g} hour{'' if hours == 1 else 's'}"


def largest_fitting(cost_of: Callable[[int], Cost], low: int, high: int, fits: Callable[[Cost], bool]) -> int | None:
    """The largest ``d`` in ``[low, high]`` with ``fits(cost_of(d))`` (costs grow with ``d``); None if none."""
    if high < low or not fits(cost_of(low)):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if fits(cost_of(mid)):
            low = mid
        else:
            high = mid - 1
    return low


def check(
    what: str,
    cost_of: Callable[[int | None], Cost],
    factors: int | None,
    n_ratings: int,
    alternatives: tuple = (),
    min_factors: int = 1,
) -> None:
    """Refuse a run whose ``cost_of(factors)`` exceeds the available memory or :data:`EPOCH_SECONDS`.

    ``what`` names the run (``"ALS with D=64"``); ``cost_of`` gives the cost at any latent
    dimension (``factors`` None: a model without one), so the message can name the largest
    ``--factors`` that fits; ``alternatives`` are other remedies as ``(flag, Cost)`` pairs
    (``("--covariance diagonal", cost)``), offered first when their cost fits.
    """
    cost = cost_of(factors)
    available = available_memory()
    on = f"for {count_text(n_ratings)} ratings"
    if available is not None and cost.bytes > available:
        problem = f"{what} needs about {size_text(cost.bytes)} {on}, {size_text(available)} are available"
        remedy = _remedies(cost_of, factors, min_factors, alternatives, lambda c: c.bytes <= available)
        raise FastMFError(f"{problem}: {remedy or 'use less data or a machine with more memory'}")
    seconds = cost.flops / FLOPS
    if seconds > EPOCH_SECONDS:
        problem = (
            f"{what} needs about {cost.flops:.2g} floating-point operations per epoch {on}, about "
            f"{duration_text(seconds)} at {FLOPS / 1e9:g} GFLOP/s (the limit is {limit_text()} "
            "per epoch)"
        )
        remedy = _remedies(cost_of, factors, min_factors, alternatives, lambda c: c.flops / FLOPS <= EPOCH_SECONDS)
        raise FastMFError(f"{problem}: {remedy or 'use less data'}")
    if seconds > WARN_SECONDS:
        warnings.warn(
            f"{what} needs about {cost.flops:.2g} floating-point operations per epoch {on}: an epoch "
            f"may take about {duration_text(seconds)} (at {FLOPS / 1e9:g} GFLOP/s), with no progress "
            "shown until it ends",
            stacklevel=3,
        )


def _remedies(cost_of, factors, min_factors, alternatives, fits) -> str:
    options = [flag for flag, cost in alternatives if fits(cost)]
    if factors is not None:
        best = largest_fitting(cost_of, min_factors, factors - 1, fits)
        if best is not None:
            options.append(f"--factors <= {best}")
    return ("use " + " or ".join(options)) if options else ""
