"""Bayesian Personalized Ranking (Rendle et al. 2009): SGD steps and the Hogwild epoch.

Score ``x_ui = b_i + U_u . V_i``; for a triple (user ``u``, positive ``i``,
negative ``j``) with ``x = x_ui - x_uj`` and ``z = sigma(-x)``, one SGD step on
``ln sigma(x) - reg/2 |theta|^2`` with learning rate ``lr`` is

    U_u += lr (z (V_i - V_j) - reg U_u)
    V_i += lr (z U_u - reg V_i),     V_j += lr (-z U_u - reg V_j)
    b_i += lr (z - reg b_i),         b_j += lr (-z - reg b_j)     (if item biases are fitted)

using the old ``U_u`` in the item updates; its loss is ``-ln sigma(x)``.

Sampling works on ``quads``: one row ``(u, i, start, end)`` per sampled
positive, where ``indices[start:end]`` is ``u``'s sorted positive row. A
triple takes ``r`` uniform over the quads and one 64-bit ``key``; the negative
is a function of ``key`` and the row (:func:`draw_negative`), so the triples
do not depend on the order in which the work is done.

:func:`hogwild_epoch` runs an epoch in parallel without locks (Hogwild, Niu
et al. 2011): chunk ``t`` draws its share of the triples from its own
SplitMix64 stream seeded by (seed, epoch, t) and updates the shared factors in
place. Random memory accesses dominate its cost, so each chunk works as a
software pipeline: the quad of triple ``s`` is prefetched ``3 LAG`` triples
before its update, its user's row and factors ``2 LAG`` before, and the
negative is drawn (and its factors prefetched) ``LAG`` before; the updates
themselves happen strictly in triple order. With one chunk the epoch is
therefore the sequential application of :func:`draw_triples`' triples, bit for
bit; with several, the triples of each chunk are fixed but the interleaving of
their updates is not.
"""

import math

import numpy as np
from numba import njit, prange, uint64

from fastmf.kernels.als import FAST
from fastmf.kernels.linalg import prefetch
from fastmf.kernels.ranking import row_contains
from fastmf.kernels.rng import alias_draw, next_u64, randint, stream_seed

#: alias draws of a popularity negative before falling back to a uniform one
MAX_POPULAR_TRIES = 64
#: triples between pipeline stages, and the ring buffer holding triples in flight (> 3 LAG, a power of 2)
LAG = 8
RING = 32
#: a cache line holds 16 float32 or int32 values
LINE = 16


@njit(cache=True, inline="always")
def sgd_step(u, i, j, user_factors, item_factors, item_bias, lr, reg, fit_bias):
    """One SGD step on the triple ``(u, i, j)`` (module docstring); returns ``-ln sigma(x_uij)``."""
    d = user_factors.shape[1]
    x = item_bias[i] - item_bias[j]
    for k in range(d):
        x += user_factors[u, k] * (item_factors[i, k] - item_factors[j, k])
    # z = sigma(-x) and -ln sigma(x) = ln(1 + e^-x), without overflow
    if x >= 0:
        e = math.exp(-x)
        z = e / (1.0 + e)
        loss = math.log1p(e)
    else:
        e = math.exp(x)
        z = 1.0 / (1.0 + e)
        loss = math.log1p(e) - x
    # factor-precision constants keep the loops in one type (SIMD-friendly)
    g = user_factors.dtype.type(lr * z)
    shrink = user_factors.dtype.type(1.0 - lr * reg)
    for k in range(d):
        uk = user_factors[u, k]
        vi = item_factors[i, k]
        vj = item_factors[j, k]
        user_factors[u, k] = shrink * uk + g * (vi - vj)
        item_factors[i, k] = shrink * vi + g * uk
        item_factors[j, k] = shrink * vj - g * uk
    if fit_bias:
        item_bias[i] = shrink * item_bias[i] + g
        item_bias[j] = shrink * item_bias[j] - g
    return loss


@njit(cache=True, inline="always")
def kth_missing(indices, start, end, k):
    """The ``k``-th (0-based) non-negative integer absent from the sorted slice ``indices[start:end]``.

    ``indices[q] - (q - start)`` counts the absent integers below ``indices[q]``
    and never decreases, so one binary search finds how many entries precede
    the answer: a uniform ``k`` gives a uniform item outside the row.
    """
    lo = start
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] - (mid - start) <= k:
            lo = mid + 1
        else:
            hi = mid
    return k + (lo - start)


@njit(cache=True, inline="always")
def draw_negative(key, scratch, indices, start, end, n_items, neg_prob, neg_alias, popularity):
    """An item outside the positive row ``indices[start:end]``, determined by ``key``.

    Uniform: the ``k``-th absent item for ``k`` uniform in ``[0, n_items - len)``
    (exactly uniform over the non-positives, no rejection loop). Popularity: an
    alias-table draw, rejected and redrawn while it lands in the row (binary
    search); after ``MAX_POPULAR_TRIES`` rejections the draw is uniform instead
    (only for users holding nearly all the popularity mass). ``scratch`` is a
    one-element ``uint64`` generator state.
    """
    scratch[0] = key
    if popularity:
        for _ in range(MAX_POPULAR_TRIES):
            j = alias_draw(scratch, neg_prob, neg_alias)
            if not row_contains(indices, start, end, j):
                return j
    return kth_missing(indices, start, end, randint(scratch, n_items - (end - start)))


@njit(cache=True, inline="always")
def _prefetch_span(flat, start, length):
    for off in range(0, length, LINE):
        prefetch(flat, start + off)


@njit(cache=True, parallel=True, fastmath=FAST)
def hogwild_epoch(quads, indices, user_factors, item_factors, item_bias, lr, reg, fit_bias,
                  n_samples, seed, epoch, n_chunks, neg_prob, neg_alias, popularity, out_loss):
    """Draw and apply ``n_samples`` triples in ``n_chunks`` lock-free parallel chunks (module docstring).

    ``out_loss[t]`` receives chunk ``t``'s sum of ``-ln sigma(x_uij)``.
    """
    n_quads = quads.shape[0]
    n_items = item_factors.shape[0]
    d = user_factors.shape[1]
    flat_quads = quads.reshape(-1)
    flat_u = user_factors.reshape(-1)
    flat_v = item_factors.reshape(-1)
    epoch_seed = stream_seed(seed, epoch)
    # one cache line of generator state per chunk (no false sharing between threads)
    states = np.empty((n_chunks, 2 * LINE), dtype=np.uint64)
    for t in prange(n_chunks):
        state = states[t, 0:1]
        scratch = states[t, LINE:LINE + 1]
        state[0] = stream_seed(epoch_seed, t)
        ring_r = np.empty(RING, dtype=np.int64)
        ring_key = np.empty(RING, dtype=np.uint64)
        ring_j = np.empty(RING, dtype=np.int64)
        n = n_samples * (t + 1) // n_chunks - n_samples * t // n_chunks
        loss = 0.0
        for s in range(n + 3 * LAG):
            if s < n:  # draw the triple's randomness and fetch its quad
                r = randint(state, n_quads)
                ring_r[s & (RING - 1)] = r
                ring_key[s & (RING - 1)] = next_u64(state)
                prefetch(flat_quads, 4 * r)
            a = s - LAG
            if 0 <= a < n:  # fetch the user's positive row, the user's and the positive's factors
                r = ring_r[a & (RING - 1)]
                _prefetch_span(indices, quads[r, 2], min(quads[r, 3] - quads[r, 2], 4 * LINE))
                _prefetch_span(flat_u, quads[r, 0] * d, d)
                _prefetch_span(flat_v, quads[r, 1] * d, d)
            b = s - 2 * LAG
            if 0 <= b < n:  # draw the negative and fetch its factors
                slot = b & (RING - 1)
                r = ring_r[slot]
                j = draw_negative(ring_key[slot], scratch, indices, quads[r, 2], quads[r, 3], n_items,
                                  neg_prob, neg_alias, popularity)
                ring_j[slot] = j
                _prefetch_span(flat_v, j * d, d)
            c = s - 3 * LAG
            if 0 <= c < n:  # the update, in triple order
                slot = c & (RING - 1)
                r = ring_r[slot]
                loss += sgd_step(quads[r, 0], quads[r, 1], ring_j[slot], user_factors, item_factors, item_bias,
                                 lr, reg, fit_bias)
        out_loss[t] = loss


@njit(cache=True)
def draw_triples(quads, indices, n_items, n_samples, seed, epoch, neg_prob, neg_alias, popularity):
    """The triples :func:`hogwild_epoch` draws with one chunk, as arrays ``(users, positives, negatives)``."""
    state = np.empty(1, dtype=np.uint64)
    state[0] = stream_seed(stream_seed(seed, epoch), 0)
    scratch = np.empty(1, dtype=np.uint64)
    users = np.empty(n_samples, dtype=np.int64)
    pos = np.empty(n_samples, dtype=np.int64)
    neg = np.empty(n_samples, dtype=np.int64)
    for s in range(n_samples):
        r = randint(state, quads.shape[0])
        key = next_u64(state)
        users[s] = quads[r, 0]
        pos[s] = quads[r, 1]
        neg[s] = draw_negative(key, scratch, indices, quads[r, 2], quads[r, 3], n_items, neg_prob, neg_alias,
                               popularity)
    return users, pos, neg


@njit(cache=True, fastmath=FAST)
def apply_triples(users, pos, neg, user_factors, item_factors, item_bias, lr, reg, fit_bias):
    """Apply the given triples in order with :func:`sgd_step`; returns the sum of their losses."""
    loss = 0.0
    for s in range(users.shape[0]):
        loss += sgd_step(users[s], pos[s], neg[s], user_factors, item_factors, item_bias, lr, reg, fit_bias)
    return loss


@njit(cache=True, parallel=True)
def build_quads(indptr, indices, eligible):
    """``(u, i, start, end)`` (int32) for every positive of the users where ``eligible`` is true, CSR order."""
    n_users = indptr.shape[0] - 1
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    for u in range(n_users):
        offsets[u + 1] = offsets[u] + (indptr[u + 1] - indptr[u] if eligible[u] else 0)
    quads = np.empty((offsets[n_users], 4), dtype=np.int32)
    for u in prange(n_users):
        if not eligible[u]:
            continue
        for q in range(indptr[u + 1] - indptr[u]):
            row = offsets[u] + q
            quads[row, 0] = u
            quads[row, 1] = indices[indptr[u] + q]
            quads[row, 2] = indptr[u]
            quads[row, 3] = indptr[u + 1]
    return quads
