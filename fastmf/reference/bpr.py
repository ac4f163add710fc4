"""NumPy reference of :mod:`fastmf.kernels.bpr`: the same epoch, the same triples, sequential float updates.

:func:`hogwild_epoch` has the kernel's signature and state layout (alias
tables over users and, for popularity negatives, over catalogue items; the
positive CSR by user with sorted catalogue indices; factor arrays updated in
place) and draws exactly the kernel's triples. Chunk ``t`` takes its ``n_t =
n_samples (t + 1) // n_chunks - n_samples t // n_chunks`` triples from the
SplitMix64 stream starting at ``stream_seed(stream_seed(seed, epoch), t)``,
four calls per triple: ``randint(n_users)`` (the alias column), ``uniform``
(the alias coin), then two raw outputs, the positive's key and the
negative's key. Runs of ``USER_RUN`` triples (from the chunk's first) share the
user that the first triple's column and coin pick. The positive is
``indices[start + randint(len)]`` of the stream starting at its key; the
negative, from the stream starting at its key, is the first of up to
``MAX_UNIFORM_TRIES`` draws ``randint(n_items)`` outside the row (uniform
negatives), or of up to ``MAX_POPULAR_TRIES`` popularity alias draws
(``randint``, ``uniform``), else the ``randint(n_items - len)``-th item absent
from the row, drawn next (the kernel's ``pick_user``, ``pick_positive``,
``draw_negative``, ``kth_missing``, ``alias_draw``). The kernel asks its
membership filter (:func:`member_filter`, built here bit for bit) before it
searches a row; the answer, and so the triples, do not depend on it.

SplitMix64 is counter-based (:mod:`fastmf.reference._rng`), so :func:`_draw_chunk`
draws a block of triples at once: the four numbers of every triple, the users
through the alias table, the positives, and the negatives as one
``np.searchsorted`` over the row keys ``u * n_items + indices[q] - (q - indptr[u])``
(non-decreasing: rows are sorted and hold distinct items) for the uniform
ones, or rejection rounds vectorised over the still-rejected triples for the
popularity ones. The updates are then applied one triple at a time in triple
order (a Python loop of small NumPy operations), chunk after chunk: the
kernel's ``sgd_step`` (``x`` in the arrays' dtype, ``sigma`` in float64, the
step as ``shrink * w + g * ...`` with ``g = lr z`` and ``shrink = 1 - lr reg``
cast to the arrays' dtype). The kernel runs its chunks in parallel and
interleaves their updates; with one chunk the order is exactly the same, so
the two differ only by rounding (float32 there, float64 here as the model uses
it, and the kernel's fastmath reassociation).

``out_loss[t]`` is chunk ``t``'s sum of ``-ln sigma(x_uij)``, here
``sum(np.logaddexp(0, -x))``; the kernel computes it as ``-ln`` of the
product of the likelihoods, each floored at 1e-300. They agree to rounding
unless a triple's loss exceeds ~690.8 (``x < -690.8``), which the kernel caps
there and this sum does not.
"""

from __future__ import annotations

import math

import numpy as np

from fastmf.reference import _rng

__all__ = ["hogwild_epoch", "member_filter"]

#: draws of a popularity / uniform negative before the k-th missing item, triples sharing a user, and the
#: membership filter's bits per positive and bits set per positive (the kernel's constants)
MAX_POPULAR_TRIES, MAX_UNIFORM_TRIES, USER_RUN = 64, 32, 8
FILTER_BITS, FILTER_PROBES = 10, 4
#: triples drawn at once (bounds the sampler's temporaries on large data sets)
BLOCK = 1 << 16


def _row_keys(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted int64 keys of the positives: ``u * n_items + indices[q]`` (membership) and
    ``u * n_items + indices[q] - (q - indptr[u])`` (the count of absent items below ``indices[q]``)."""
    counts = np.diff(indptr)
    base = np.repeat(np.arange(counts.size, dtype=np.int64) * n_items, counts)
    rank = np.arange(indices.size, dtype=np.int64) - np.repeat(np.asarray(indptr[:-1], dtype=np.int64), counts)
    members = base + indices
    return members, members - rank


def _draw_chunk(
    state, first, count, indptr, indices, user_prob, user_alias, n_items, neg_prob, neg_alias, popularity, keys=None
):
    """Triples ``first, ..., first + count - 1`` (0-based) of the stream starting at ``state``.

    Returns int64 arrays ``(users, positives, negatives)``. ``keys`` is
    :func:`_row_keys` (computed when None). A chunk ``t`` of epoch ``epoch``
    has ``state = _rng.stream_seed(_rng.stream_seed(seed, epoch), t)``.
    """
    if keys is None:
        keys = _row_keys(indptr, indices, n_items)
    members, missing = keys
    triple = np.arange(first, first + count, dtype=np.int64)
    calls = 4 * triple
    run = 4 * (triple - triple % USER_RUN)  # the calls of the first triple of each one's run
    column = _rng.randint(_rng.draws(state, run + 1), user_prob.shape[0])
    coin = _rng.uniform(_rng.draws(state, run + 2))
    pos_key = _rng.draws(state, calls + 3)
    neg_key = _rng.draws(state, calls + 4)
    users = np.where(coin < user_prob[column], column, user_alias[column].astype(np.int64))
    start = np.asarray(indptr, dtype=np.int64)[users]
    length = np.asarray(indptr, dtype=np.int64)[users + 1] - start
    pos = indices[start + _rng.randint(_rng.draws(pos_key, 1), length)].astype(np.int64)
    neg = np.empty(count, dtype=np.int64)
    todo = np.arange(count)

    def rejection(todo, tries, calls_per_try, draw):
        """Rounds of ``draw(keys, call)`` for the triples ``todo`` still without a negative, each round keeping
        the draws outside the row; returns the triples whose every try landed in it."""
        call = 1
        for _ in range(tries):
            if todo.size == 0:
                break
            j = draw(neg_key[todo], call)
            want = users[todo] * n_items + j
            at = np.minimum(np.searchsorted(members, want), members.size - 1)
            rejected = members[at] == want
            neg[todo[~rejected]] = j[~rejected]
            todo = todo[rejected]
            call += calls_per_try
        return todo

    if popularity:

        def popular(key, call):
            k = _rng.randint(_rng.draws(key, call), neg_prob.shape[0])
            x = _rng.uniform(_rng.draws(key, call + 1))
            return np.where(x < neg_prob[k], k, neg_alias[k].astype(np.int64))

        todo = rejection(todo, MAX_POPULAR_TRIES, 2, popular)
        call = 2 * MAX_POPULAR_TRIES + 1  # the k-th missing item: the call after every try
    else:
        todo = rejection(todo, MAX_UNIFORM_TRIES, 1, lambda key, call: _rng.randint(_rng.draws(key, call), n_items))
        call = MAX_UNIFORM_TRIES + 1
    if todo.size:
        u = users[todo]
        k = _rng.randint(_rng.draws(neg_key[todo], call), n_items - length[todo])
        # kth_missing: k plus the number of row entries with fewer than k + 1 absent items below them
        before = np.searchsorted(missing, u * n_items + k, side="right") - start[todo]
        neg[todo] = k + before
    return users, pos, neg


def _pair_hash(u: np.ndarray, c: np.ndarray, n_items: int) -> np.ndarray:
    """The kernel's hash of (row, column) pairs (uint64, wrapping arithmetic)."""
    z = u.astype(np.uint64) * np.uint64(n_items) + c.astype(np.uint64)
    z = (z ^ (z >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    z = (z ^ (z >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    return z ^ (z >> np.uint64(33))


def member_filter(indptr, indices, n_items):
    """The kernel's blocked Bloom filter of the positives (uint64 words, 8 a 512-bit block; ``FILTER_BITS``
    bits per positive, one block at least): each positive sets ``FILTER_PROBES`` bits, 9 bits of its hash
    each, of the block the hash's top 32 bits pick. This twin's epochs never read it."""
    blocks = max(1, int(indices.shape[0]) * FILTER_BITS // 512)
    out = np.zeros(blocks * 8, dtype=np.uint64)
    rows = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
    h = _pair_hash(rows, np.asarray(indices)[indptr[0] : indptr[-1]], n_items)
    block = (((h >> np.uint64(32)) * np.uint64(blocks)) >> np.uint64(32)).astype(np.int64) * 8
    with np.errstate(over="ignore"):
        for t in range(FILTER_PROBES):
            b = (h >> np.uint64(9 * t)) & np.uint64(511)
            np.bitwise_or.at(out, block + (b >> np.uint64(6)).astype(np.int64), np.uint64(1) << (b & np.uint64(63)))
    return out


def _apply(users, pos, neg, user_factors, item_rows, lr, reg, fit_bias) -> float:
    """The kernel's ``sgd_step`` on each triple in order (in place); returns the sum of ``-ln sigma(x)``.
    ``item_rows`` holds ``[V_c, b_c]`` per item (:func:`fastmf.common.layout.bias_rows`)."""
    d = user_factors.shape[1]
    item_factors, item_bias = item_rows[:, :d], item_rows[:, d]  # views: the steps write through them
    cast = user_factors.dtype.type
    shrink = cast(1.0 - lr * reg)
    xs = np.empty(users.size)
    for s, (u, i, j) in enumerate(zip(users.tolist(), pos.tolist(), neg.tolist())):
        wu, vi, vj = user_factors[u], item_factors[i], item_factors[j]  # views (i != j: j is not a positive)
        diff = vi - vj
        x = float(item_bias[i] - item_bias[j] + wu @ diff)
        # z = sigma(-x) without overflow (the kernel's formulas)
        if x >= 0:
            e = math.exp(-x)
            z = e * (1.0 / (1.0 + e))
        else:
            z = 1.0 / (1.0 + math.exp(x))
        g = cast(lr * z)
        # the items first: their steps use the old U_u
        item_factors[i] = shrink * vi + g * wu
        item_factors[j] = shrink * vj - g * wu
        user_factors[u] = shrink * wu + g * diff
        if fit_bias:
            item_bias[i] = shrink * item_bias[i] + g
            item_bias[j] = shrink * item_bias[j] - g
        xs[s] = x
    return float(np.logaddexp(0.0, -xs).sum())


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
    """Draw and apply ``n_samples`` triples in ``n_chunks`` chunks, one after the other (module docstring).

    ``out_loss[t]`` receives chunk ``t``'s sum of ``-ln sigma(x_uij)``. ``share_below`` (the share of the
    positives on the catalogue items below each item) only tells the kernel where to start each search in
    a row, and ``member_filter`` which draws need no search; the triples depend on neither, and this twin
    searches all rows at once.
    """
    n_items = item_rows.shape[0]
    keys = _row_keys(indptr, indices, n_items)
    epoch_seed = _rng.stream_seed(seed, epoch)
    for t in range(n_chunks):
        state = _rng.stream_seed(epoch_seed, t)
        n = n_samples * (t + 1) // n_chunks - n_samples * t // n_chunks
        loss = 0.0
        for first in range(0, n, BLOCK):
            triples = _draw_chunk(
                state,
                first,
                min(BLOCK, n - first),
                indptr,
                indices,
                user_prob,
                user_alias,
                n_items,
                neg_prob,
                neg_alias,
                popularity,
                keys,
            )
            loss += _apply(*triples, user_factors, item_rows, lr, reg, fit_bias)
        out_loss[t] = loss
