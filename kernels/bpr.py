"""Bayesian Personalized Ranking (Rendle et al. 2009): SGD steps and the Hogwild epoch.

Score ``x_ui = b_i + U_u . V_i``; for a triple (user ``u``, positive ``i``,
negative ``j``) with ``x = x_ui - x_uj`` and ``z = sigma(-x)``, one SGD step on
``ln sigma(x) - reg/2 |theta|^2`` with learning rate ``lr`` is

    U_u += lr (z (V_i - V_j) - reg U_u)
    V_i += lr (z U_u - reg V_i),     V_j += lr (-z U_u - reg V_j)
    b_i += lr (z - reg b_i),         b_j += lr (-z - reg b_j)     (if item biases are fitted)

using the old ``U_u`` in the item updates; its loss is ``-ln sigma(x)``.

A triple is drawn from five random numbers: a user ``u`` with probability
``|row_u| / nnz`` through an alias table over users (weight 0 for users that
are not sampled), a uniform entry ``i`` of ``u``'s sorted positive row
``indices[indptr[u]:indptr[u + 1]]`` (so ``(u, i)`` is uniform over the
positives), and a negative ``j`` outside the row (:func:`draw_negative`). The
user tables (a few MB at the ml-32m shape) stay in cache, so the random
memory traffic is the user's row and the three factor rows.

:func:`hogwild_epoch` runs an epoch in parallel without locks (Hogwild, Niu et
al. 2011): chunk ``t`` draws its share of the triples from its own SplitMix64
stream seeded by (seed, epoch, t) and updates the shared factors in place. An
item's bias sits in its factor row (``item_rows``, padded to whole cache lines):
with the biases in an array of their own, sixteen items' biases shared a line
that both threads kept writing (a popular positive is updated every few
triples), and two threads drew 1.6x one thread's triples instead of 2x. Random
memory accesses dominate its cost, so each chunk works as a software pipeline of
``STAGES`` steps ``LAG`` triples apart: draw the numbers and prefetch the alias
column; pick the user and prefetch its row bounds and factors; prefetch the
row's entries the draws will read; pick the positive and the negative and
prefetch their factors; update. The negative's search in the row starts where
the catalogue's distribution of positives predicts the answer
(:func:`position_hint`: on the synthetic ml-32m shape within a cache line of it
for nine draws in ten), so its probes hit the one line prefetched, where a
bisection of a long row waits on memory at every level. The updates happen
strictly in triple order and the triples depend only on the stream, so with one
chunk the epoch is the sequential application of its stream's triples (drawn one
by one with :func:`pick_user`, :func:`pick_positive` and :func:`draw_negative`),
bit for bit; with several, the triples of each chunk are fixed but the
interleaving of their updates is not. :mod:`fastmf.reference.bpr` is the NumPy
twin (same signature, same triples, its chunks applied one after the other).
"""

import math

import numpy as np
from numba import njit, prange

from fastmf.common.layout import CACHE_LINE_FLOATS as LINE
from fastmf.kernels._linalg import FAST, prefetch, prefetch_span
from fastmf.kernels._rng import alias_draw, next_u64, randint, stream_seed, uniform
from fastmf.kernels._search import first_key_above

#: alias draws of a popularity negative before falling back to a uniform one
MAX_POPULAR_TRIES = 64
#: triples between pipeline stages, and the ring buffer holding the triples in flight (a power of 2)
LAG = 4
STAGES = 4
RING = 1 << (STAGES * LAG).bit_length()
TINY_LIKELIHOOD = 1e-300
#: the running product is renormalised below this; RENORMALISE * TINY_LIKELIHOOD must stay a normal
#: double (> 2.2e-308), or one very unlikely triple underflows the product to 0 and the loss to inf
RENORMALISE = 1e-4
LN2 = math.log(2.0)

__all__ = ["hogwild_epoch"]


@njit(cache=True, inline="always")
def sgd_step(u, i, j, user_factors, item_rows, lr, reg, fit_bias):
    """One SGD step on the triple ``(u, i, j)`` (module docstring); returns its likelihood ``sigma(x_uij)``.

    ``item_rows[c, :D]`` is ``V_c`` and ``item_rows[c, D]`` is ``b_c`` (:func:`fastmf.common.layout.bias_rows`)."""
    d = user_factors.shape[1]
    x = item_rows[i, d] - item_rows[j, d]
    for k in range(d):
        x += user_factors[u, k] * (item_rows[i, k] - item_rows[j, k])
    # p = sigma(x) and z = sigma(-x) = 1 - p from one exponential, without overflow
    if x >= 0:
        e = math.exp(-x)
        p = 1.0 / (1.0 + e)
        z = e * p
    else:
        e = math.exp(x)
        z = 1.0 / (1.0 + e)
        p = e * z
    # factor-precision constants keep the loops in one type (SIMD-friendly)
    g = user_factors.dtype.type(lr * z)
    shrink = user_factors.dtype.type(1.0 - lr * reg)
    for k in range(d):
        uk = user_factors[u, k]
        vi = item_rows[i, k]
        vj = item_rows[j, k]
        user_factors[u, k] = shrink * uk + g * (vi - vj)
        item_rows[i, k] = shrink * vi + g * uk
        item_rows[j, k] = shrink * vj - g * uk
    if fit_bias:
        item_rows[i, d] = shrink * item_rows[i, d] + g
        item_rows[j, d] = shrink * item_rows[j, d] - g
    return p


@njit(cache=True, inline="always")
def multiply_likelihood(mantissa, exponent, p):
    """Multiply ``p`` into the product ``mantissa * 2**exponent`` of the triples' likelihoods.

    Summing ``-ln sigma(x)`` needs a logarithm per triple; the product needs
    one per chunk (:func:`product_loss`), renormalised before it can underflow.
    ``p`` is floored at ``TINY_LIKELIHOOD`` (a loss of ~690 for one triple);
    NaN propagates.
    """
    if p < TINY_LIKELIHOOD:
        p = TINY_LIKELIHOOD
    mantissa *= p
    if mantissa < RENORMALISE:
        m, e = math.frexp(mantissa)
        mantissa = m
        exponent += e
    return mantissa, exponent


@njit(cache=True, inline="always")
def product_loss(mantissa, exponent):
    """``-ln(mantissa * 2**exponent)``: the summed loss of the multiplied likelihoods."""
    return -(math.log(mantissa) + exponent * LN2)


@njit(cache=True, inline="always")
def position_hint(share_below, start, length, item):
    """Where ``item`` should sit in a positive row of ``length`` entries starting at ``start`` if the row's
    items were spread over the catalogue like all the positives: ``start + length F(item)``, with
    ``F(c) = share_below[c]`` the share of all positives on items below ``c``. It also guesses where the
    ``k``-th absent item's search ends (``item = k``: the answer ``k + q`` is near ``k`` for a row much
    shorter than the catalogue). A guess to start a search from: a wrong one costs probes, never the answer.
    """
    return start + np.int64(length * share_below[item])


@njit(cache=True, inline="always")
def kth_missing(indices, start, end, k, hint):
    """The ``k``-th (0-based) non-negative integer absent from the sorted slice ``indices[start:end]``.

    ``indices[q] - (q - start)`` counts the absent integers below ``indices[q]``
    and never decreases, so one search (from the position guess ``hint``,
    :func:`fastmf.kernels._search.first_key_above`) finds how many entries precede
    the answer: a uniform ``k`` gives a uniform item outside the row.
    """
    return k + (first_key_above(indices, start, end, k, 1, hint) - start)


@njit(cache=True, inline="always")
def draw_negative(key, scratch, indices, start, end, n_items, neg_prob, neg_alias, popularity, share_below):
    """An item outside the positive row ``indices[start:end]``, determined by ``key``.

    Uniform: the ``k``-th absent item for ``k`` uniform in ``[0, n_items - len)``
    (exactly uniform over the non-positives, no rejection loop). Popularity: an
    alias-table draw, rejected and redrawn while it lands in the row; after
    ``MAX_POPULAR_TRIES`` rejections the draw is uniform instead (only for users
    holding nearly all the popularity mass). ``scratch`` is a one-element
    ``uint64`` generator state. Every search starts at its guess from
    ``share_below`` (:func:`position_hint`); the item drawn does not depend on it.
    """
    scratch[0] = key
    length = end - start
    if popularity:
        for _ in range(MAX_POPULAR_TRIES):
            j = alias_draw(scratch, neg_prob, neg_alias)
            pos = first_key_above(indices, start, end, j - 1, 0, position_hint(share_below, start, length, j))
            if pos == end or indices[pos] != j:
                return j
    k = randint(scratch, n_items - length)
    return kth_missing(indices, start, end, k, position_hint(share_below, start, length, k))


@njit(cache=True, inline="always")
def pick_user(k, x, user_prob, user_alias):
    """The user of an alias-table draw from a uniform column ``k`` and a uniform ``x`` in [0, 1)."""
    return k if x < user_prob[k] else np.int64(user_alias[k])


@njit(cache=True, inline="always")
def pick_positive(key, scratch, indices, start, end):
    """A uniform entry of the row ``indices[start:end]``, determined by ``key``."""
    scratch[0] = key
    return np.int64(indices[start + randint(scratch, end - start)])


@njit(cache=True, parallel=True, fastmath=FAST)
def hogwild_epoch(
    indptr,
    indices,
    user_prob,
    user_alias,
    user_factors,
    item_rows,
    lr,
    reg,
    fit_bias,
    n_samples,
    seed,
    epoch,
    n_chunks,
    neg_prob,
    neg_alias,
    popularity,
    share_below,
    out_loss,
):
    """Draw and apply ``n_samples`` triples in ``n_chunks`` lock-free parallel chunks (module docstring).

    ``item_rows[c]`` is ``[V_c, b_c]`` (at least ``D + 1`` columns, ``D`` the width of ``user_factors``).
    ``share_below[c]`` is the share of the positives on catalogue items below ``c`` (``n_items + 1``
    float32 entries): the searches in a user's row start where it predicts (:func:`position_hint`).
    ``out_loss[t]`` receives chunk ``t``'s sum of ``-ln sigma(x_uij)``.
    """
    n_users = user_prob.shape[0]
    n_items = item_rows.shape[0]
    d = user_factors.shape[1]
    width = item_rows.shape[1]
    flat_u = user_factors.reshape(-1)
    flat_v = item_rows.reshape(-1)
    epoch_seed = stream_seed(seed, epoch)
    # one cache line of generator state per chunk (no false sharing between threads)
    states = np.empty((n_chunks, 2 * LINE), dtype=np.uint64)
    for t in prange(n_chunks):
        state = states[t, 0:1]
        scratch = states[t, LINE : LINE + 1]
        state[0] = stream_seed(epoch_seed, t)
        ring_user = np.empty(RING, dtype=np.int64)
        ring_x = np.empty(RING, dtype=np.float64)
        ring_pos_key = np.empty(RING, dtype=np.uint64)
        ring_neg_key = np.empty(RING, dtype=np.uint64)
        ring_i = np.empty(RING, dtype=np.int64)
        ring_j = np.empty(RING, dtype=np.int64)
        n = n_samples * (t + 1) // n_chunks - n_samples * t // n_chunks
        mantissa = 1.0
        exponent = 0
        for s in range(n + STAGES * LAG):
            if s < n:  # draw the triple's randomness, fetch the user's alias column
                slot = s & (RING - 1)
                k = randint(state, n_users)
                ring_user[slot] = k
                ring_x[slot] = uniform(state)
                ring_pos_key[slot] = next_u64(state)
                ring_neg_key[slot] = next_u64(state)
                prefetch(user_prob, k)
                prefetch(user_alias, k)
            a = s - LAG
            if 0 <= a < n:  # the user; fetch its row bounds and factors
                slot = a & (RING - 1)
                u = pick_user(ring_user[slot], ring_x[slot], user_prob, user_alias)
                ring_user[slot] = u
                prefetch(indptr, u)
                prefetch_span(flat_u, u * d, d)
            b = s - 2 * LAG
            if 0 <= b < n:  # fetch the parts of the user's row the positive and the negative will read
                slot = b & (RING - 1)
                u = ring_user[slot]
                start = indptr[u]
                length = indptr[u + 1] - start
                if length <= 2 * LINE:
                    prefetch_span(indices, start, length)
                else:  # the positive's entry and where the negative's search starts (its guess)
                    scratch[0] = ring_pos_key[slot]
                    prefetch(indices, start + randint(scratch, length))
                    if not popularity:
                        scratch[0] = ring_neg_key[slot]
                        k = randint(scratch, n_items - length)
                        prefetch(indices, position_hint(share_below, start, length, k))
            c = s - 3 * LAG
            if 0 <= c < n:  # the positive and the negative; fetch their factors
                slot = c & (RING - 1)
                u = ring_user[slot]
                start = indptr[u]
                end = indptr[u + 1]
                i = pick_positive(ring_pos_key[slot], scratch, indices, start, end)
                j = draw_negative(
                    ring_neg_key[slot],
                    scratch,
                    indices,
                    start,
                    end,
                    n_items,
                    neg_prob,
                    neg_alias,
                    popularity,
                    share_below,
                )
                ring_i[slot] = i
                ring_j[slot] = j
                prefetch_span(flat_v, i * width, d + 1)
                prefetch_span(flat_v, j * width, d + 1)
            e = s - STAGES * LAG
            if 0 <= e < n:  # the update, in triple order
                slot = e & (RING - 1)
                p = sgd_step(
                    ring_user[slot],
                    ring_i[slot],
                    ring_j[slot],
                    user_factors,
                    item_rows,
                    lr,
                    reg,
                    fit_bias,
                )
                mantissa, exponent = multiply_likelihood(mantissa, exponent, p)
        out_loss[t] = product_loss(mantissa, exponent)
