"""Test-only Numba kernels for BPR: the triples a one-thread Hogwild epoch draws, and their sequential application.

Built from the inline helpers of :mod:`fastmf.kernels.bpr` exactly as
:func:`fastmf.kernels.bpr.hogwild_epoch` calls them, so the tests can check
the epoch, the NumPy reference (:mod:`fastmf.reference.bpr`) and the samplers'
distributions against them.
"""

import numpy as np
from numba import njit

from fastmf.kernels._linalg import FAST
from fastmf.kernels._rng import next_u64, randint, stream_seed, uniform
from fastmf.kernels.bpr import (
    USER_RUN,
    draw_negative,
    multiply_likelihood,
    pick_positive,
    pick_user,
    product_loss,
    sgd_step,
)


@njit(cache=True)
def draw_triples(
    indptr,
    indices,
    user_prob,
    user_alias,
    n_items,
    n_samples,
    seed,
    epoch,
    neg_prob,
    neg_alias,
    popularity,
    share_below,
    member_filter,
    chunk=0,
):
    """The first ``n_samples`` triples chunk ``chunk`` of :func:`hogwild_epoch` draws, as ``(users, positives,
    negatives)`` (with one chunk: the triples the epoch applies, in order)."""
    state = np.empty(1, dtype=np.uint64)
    state[0] = stream_seed(stream_seed(seed, epoch), chunk)
    scratch = np.empty(1, dtype=np.uint64)
    u = 0
    users = np.empty(n_samples, dtype=np.int64)
    pos = np.empty(n_samples, dtype=np.int64)
    neg = np.empty(n_samples, dtype=np.int64)
    for s in range(n_samples):
        k = randint(state, user_prob.shape[0])
        x = uniform(state)
        pos_key = next_u64(state)
        neg_key = next_u64(state)
        if s % USER_RUN == 0:  # a run of triples shares the user drawn for its first
            u = pick_user(k, x, user_prob, user_alias)
        users[s] = u
        pos[s] = pick_positive(pos_key, scratch, indices, indptr[u], indptr[u + 1])
        neg[s] = draw_negative(
            neg_key,
            scratch,
            indices,
            indptr[u],
            indptr[u + 1],
            n_items,
            neg_prob,
            neg_alias,
            popularity,
            share_below,
            u,
            member_filter,
        )
    return users, pos, neg


@njit(cache=True, fastmath=FAST)
def apply_triples(users, pos, neg, user_factors, item_rows, lr, reg, fit_bias):
    """Apply the given triples in order with :func:`sgd_step` (``item_rows``: ``[V_c, b_c]`` per item);
    returns the sum of their losses."""
    mantissa = 1.0
    exponent = 0
    for s in range(users.shape[0]):
        p = sgd_step(users[s], pos[s], neg[s], user_factors, item_rows, lr, reg, fit_bias)
        mantissa, exponent = multiply_likelihood(mantissa, exponent, p)
    return product_loss(mantissa, exponent)
