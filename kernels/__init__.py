"""Numba kernels of fastmf, installed as ``fastmf.kernels``.

One module per model family (``als``, ``bpr``, ``vi``, ``features``) plus shared
helpers: ``linalg`` (in-place Cholesky and triangular solves), ``topk`` (parallel
top-K selection), ``sparse`` (CSR/CSC construction) and ``metrics``.
Every kernel is compiled with ``cache=True``; thread count follows
``numba.set_num_threads`` (see :func:`fastmf.set_threads`).
"""
