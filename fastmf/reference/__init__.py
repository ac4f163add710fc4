"""The NumPy reference backend (``backend="numpy"``).

Written the way a careful NumPy user would: a Python loop over users and items
with vectorised NumPy operations inside each one, in float64. It is the
baseline the Numba kernels are checked against and benchmarked against.
"""
