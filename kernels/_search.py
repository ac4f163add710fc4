"""Searches in sorted slices, inlined into the kernels (ranking, BPR sampling, VI scatter)."""

from numba import njit


@njit(cache=True, inline="always")
def bisect(values, start, end, value, right):
    """The position in the sorted slice ``values[start:end]`` before which ``value`` would be inserted:
    before its equals (``right`` False) or after them (``right`` True)."""
    lo = start
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < value or (right and values[mid] == value):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def count_below(indices, start, end, value):
    """Number of entries of the sorted slice ``indices[start:end]`` smaller than ``value``."""
    return bisect(indices, start, end, value, False) - start


@njit(cache=True, inline="always")
def first_above(values, start, end, value):
    """Position of the first entry ``> value`` in the sorted slice ``values[start:end]`` (``end`` if none)."""
    return bisect(values, start, end, value, True)


@njit(cache=True, inline="always")
def row_contains(indices, start, end, value):
    """Whether the sorted slice ``indices[start:end]`` holds ``value`` (binary search)."""
    pos = start + count_below(indices, start, end, value)
    return pos < end and indices[pos] == value


@njit(cache=True, inline="always")
def first_key_above(indices, start, end, limit, shift, hint):
    """The first position ``q`` in ``[start, end)`` whose key ``indices[q] - shift (q - start)`` exceeds
    ``limit`` (``end`` if none), for keys that never decrease along the slice.

    The search starts at the guess ``hint`` (any integer: it is clamped into the slice) and gallops
    away from it in steps 1, 2, 4, ... until the answer is bracketed, then bisects the bracket: about
    ``2 log2 |answer - hint|`` probes, all near the guess, so a good guess whose cache line was
    prefetched costs no wait on memory, where a bisection of the whole slice probes lines far apart.
    The answer does not depend on ``hint``.
    """
    if start >= end:
        return start
    g = min(max(hint, start), end - 1)
    lo = start
    hi = end
    step = 1
    if indices[g] - shift * (g - start) <= limit:
        lo = g + 1
        while g + step < end:
            p = g + step
            if indices[p] - shift * (p - start) > limit:
                hi = p
                break
            lo = p + 1
            step *= 2
    else:
        hi = g
        while g - step >= start:
            p = g - step
            if indices[p] - shift * (p - start) <= limit:
                lo = p + 1
                break
            hi = p
            step *= 2
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] - shift * (mid - start) <= limit:
            lo = mid + 1
        else:
            hi = mid
    return lo
