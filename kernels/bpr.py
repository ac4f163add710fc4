"""Bayesian Personalized Ranking (Rendle et al. 2009): SGD steps and the Hogwild epoch.

Score ``x_ui = b_i + U_u . V_i``; for a triple (user ``u``, positive ``i``,
negative ``j``) with ``x = x_ui - x_uj`` and ``z = sigma(-x)``, one SGD step on
``ln sigma(x) - reg/2 |theta|^2`` with learning rate ``lr`` is

    U_u += lr (z (V_i - V_j) - reg U_u)
    V_i += lr (z U_u - reg V_i),     V_j += lr (-z U_u - reg V_j)
    b_i += lr (z - reg b_i),         b_j += lr (-z - reg b_j)     (if item biases are fitted)

using the old ``U_u`` in the item updates; its loss is ``-ln sigma(x)``.

A triple is drawn from four random numbers: a user ``u`` with probability
``|row_u| / nnz`` through an alias table over users (weight 0 for users that
are not sampled; two numbers), a uniform entry ``i`` of ``u``'s sorted positive
row ``indices[indptr[u]:indptr[u + 1]]`` (so ``(u, i)`` is uniform over the
positives), and a negative ``j`` outside the row (:func:`draw_negative`: draws
redrawn while they land in the row). Runs of ``USER_RUN`` consecutive triples
share the user drawn for the first of them (each triple still draws its four
numbers): every triple's distribution is unchanged, and a run reads the user's
factors, alias column and row from cache after its first triple. Whether a
negative's draw is in the row is asked first of a blocked Bloom filter of the
positives (:func:`member_filter`, one cache line), which says "certainly not"
for nearly every draw; only its rare "maybe" searches the row. The user tables
(a few MB at the ml-32m shape) stay in cache, so the random memory traffic is
the filter's line and the factor rows.

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
row's entry the positive will read and the filter's line the negative's first
draw will; pick the positive and the negative and prefetch their factors;
update. A search in a row starts where the catalogue's distribution of
positives predicts the answer (:func:`position_hint`: on the synthetic ml-32m
shape within a cache line of it for nine draws in ten). The updates happen
strictly in triple order and the triples depend only on the stream (not on the
filter, nor on the searches' guesses), so with one chunk the epoch is the
sequential application of its stream's triples (drawn one by one with
:func:`pick_user`, :func:`pick_positive` and :func:`draw_negative`), bit for bit;
with several, the triples of each chunk are fixed but the interleaving of their
updates is not. :mod:`fastmf.reference.bpr` is the NumPy
twin (same signature, same triples, its chunks applied one after the other).
"""

import math

import numpy as np
from numba import njit, prange

from fastmf.common.layout import CACHE_LINE_FLOATS as LINE
from fastmf.kernels._linalg import FAST, prefetch, prefetch_span
from fastmf.kernels._rng import alias_draw, next_u64, randint, stream_seed, uniform
from fastmf.kernels._search import first_key_above

#: alias draws of a popularity negative before falling back to the k-th missing item
MAX_POPULAR_TRIES = 64
#: uniform draws of a uniform negative before falling back to the k-th missing item
MAX_UNIFORM_TRIES = 32
#: consecutive triples that share their user (the user drawn for the first of them)
USER_RUN = 8
#: filter bits per positive of :func:`member_filter` (about 2% false positives), and bits set per positive
FILTER_BITS, FILTER_PROBES = 10, 4
#: triples between pipeline stages, and the ring buffer holding the triples in flight (a power of 2)
LAG = 4
STAGES = 4
RING = 1 << (STAGES * LAG).bit_length()
TINY_LIKELIHOOD = 1e-300
#: the running product is renormalised below this; RENORMALISE * TINY_LIKELIHOOD must stay a normal
#: double (> 2.2e-308), or one very unlikely triple underflows the product to 0 and the loss to inf
RENORMALISE = 1e-4
LN2 = math.log(2.0)

__all__ = ["hogwild_epoch", "member_filter"]


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
def pair_hash(u, c, n_items):
    """A 64-bit hash of the (row, column) pair ``(u, c)``: the MurmurHash3 finaliser of ``u n_items + c``."""
    z = np.uint64(u) * np.uint64(n_items) + np.uint64(c)
    z = (z ^ (z >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    z = (z ^ (z >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    return z ^ (z >> np.uint64(33))


@njit(cache=True, inline="always")
def filter_block(member_filter, h):
    """The first word of the 512-bit block of ``member_filter`` (8 uint64 words a block) that hash ``h`` picks:
    its top 32 bits scaled to the number of blocks (Lemire's multiply-shift)."""
    blocks = np.uint64(member_filter.shape[0] >> 3)
    return np.int64(((h >> np.uint64(32)) * blocks) >> np.uint64(32)) * 8


@njit(cache=True, inline="always")
def may_hold(member_filter, u, c, n_items):
    """False when ``(u, c)`` is certainly not a positive; True when :func:`member_filter` holds its bits (it is
    a positive, or a false positive of the filter)."""
    h = pair_hash(u, c, n_items)
    block = filter_block(member_filter, h)
    hit = True
    for t in range(FILTER_PROBES):
        b = (h >> np.uint64(9 * t)) & np.uint64(511)
        word = member_filter[block + np.int64(b >> np.uint64(6))]
        hit = hit and ((word >> (b & np.uint64(63))) & np.uint64(1)) == np.uint64(1)
    return hit


@njit(cache=True)
def member_filter(indptr, indices, n_items):
    """A blocked Bloom filter of the positives ``(u, indices[q])`` of a CSR matrix: blocks of 512 bits (one
    cache line), ``FILTER_BITS`` bits per positive (one block at least); each positive sets ``FILTER_PROBES``
    bits, chosen by its hash's low 36 bits, of the block its hash picks (:func:`filter_block`,
    :func:`may_hold`). An accelerator: it tells a draw certainly outside the row in one cache line, where a
    search of the row reads several; 17 MB for the 13.8 M positives of the ml-32m shape."""
    blocks = max(1, indices.shape[0] * FILTER_BITS // 512)
    out = np.zeros(blocks * 8, dtype=np.uint64)
    for u in range(indptr.shape[0] - 1):
        for q in range(indptr[u], indptr[u + 1]):
            h = pair_hash(u, indices[q], n_items)
            block = filter_block(out, h)
            for t in range(FILTER_PROBES):
                b = (h >> np.uint64(9 * t)) & np.uint64(511)
                out[block + np.int64(b >> np.uint64(6))] |= np.uint64(1) << (b & np.uint64(63))
    return out


@njit(cache=True, inline="always")
def outside_row(member_filter, u, c, indices, start, end, n_items, share_below):
    """Whether item ``c`` is absent from row ``u`` (``indices[start:end]``): the filter first, then the row's
    search from its guess (:func:`position_hint`) when the filter cannot tell."""
    if not may_hold(member_filter, u, c, n_items):
        return True
    pos = first_key_above(indices, start, end, c - 1, 0, position_hint(share_below, start, end - start, c))
    return pos == end or indices[pos] != c


@njit(cache=True, inline="always")
def draw_negative(
    key, scratch, indices, start, end, n_items, neg_prob, neg_alias, popularity, share_below, u, member_filter
):
    """An item outside the positive row ``u``, ``indices[start:end]``, determined by ``key``.

    Uniform: uniform items, redrawn while they land in the row, so the one kept is uniform over the
    non-positives; popularity: alias-table draws, likewise. After ``MAX_UNIFORM_TRIES`` (uniform) or
    ``MAX_POPULAR_TRIES`` (popularity) rejections, the ``k``-th absent item for ``k`` uniform in
    ``[0, n_items - len)`` instead (only for users holding much of the catalogue or of its popularity
    mass). ``scratch`` is a one-element ``uint64`` generator state. Whether a draw is in the row is
    asked of ``member_filter`` first (:func:`outside_row`); the item drawn does not depend on it, nor on
    the searches' guesses from ``share_below``.
    """
    scratch[0] = key
    length = end - start
    if popularity:
        for _ in range(MAX_POPULAR_TRIES):
            j = alias_draw(scratch, neg_prob, neg_alias)
            if outside_row(member_filter, u, j, indices, start, end, n_items, share_below):
                return j
    else:
        for _ in range(MAX_UNIFORM_TRIES):
            j = randint(scratch, n_items)
            if outside_row(member_filter, u, j, indices, start, end, n_items, share_below):
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
    member_filter,
    out_loss,
):
    """Draw and apply ``n_samples`` triples in ``n_chunks`` lock-free parallel chunks (module docstring).

    ``item_rows[c]`` is ``[V_c, b_c]`` (at least ``D + 1`` columns, ``D`` the width of ``user_factors``).
    ``share_below[c]`` is the share of the positives on catalogue items below ``c`` (``n_items + 1``
    float32 entries): the searches in a user's row start where it predicts (:func:`position_hint`).
    ``member_filter`` is :func:`member_filter` of the rows. ``out_loss[t]`` receives chunk ``t``'s sum of
    ``-ln sigma(x_uij)``.
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
        run_k, run_x = 0, 0.0
        for s in range(n + STAGES * LAG):
            if s < n:  # draw the triple's randomness, fetch the user's alias column
                slot = s & (RING - 1)
                k = randint(state, n_users)
                x = uniform(state)
                if s % USER_RUN == 0:  # a run's first triple draws the run's user
                    run_k, run_x = k, x
                ring_user[slot] = run_k
                ring_x[slot] = run_x
                ring_pos_key[slot] = next_u64(state)
                ring_neg_key[slot] = next_u64(state)
                prefetch(user_prob, run_k)
                prefetch(user_alias, run_k)
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
                else:  # the positive's entry
                    scratch[0] = ring_pos_key[slot]
                    prefetch(indices, start + randint(scratch, length))
                if not popularity:  # the filter block of the negative's first draw
                    scratch[0] = ring_neg_key[slot]
                    j = randint(scratch, n_items)
                    prefetch(member_filter, filter_block(member_filter, pair_hash(u, j, n_items)))
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
                    u,
                    member_filter,
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
