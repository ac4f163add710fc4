"""Binary searches in sorted slices, inlined into the kernels (ranking, BPR sampling, VI scatter)."""

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
