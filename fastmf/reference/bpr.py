"""NumPy reference of :mod:`fastmf.kernels.bpr`: the same epoch, the same triples, sequential float updates.

:func:`hogwild_epoch` has the kernel's signature and state layout (alias
tables over users and, for popularity negatives, over catalogue items; the
positive CSR by user with sorted catalogue indices; factor arrays updated in
place) and draws exactly the kernel's triples. Chunk ``t`` takes its ``n_t =
n_samples (t + 1) // n_chunks - n_samples t // n_chunks`` triples from the
SplitMix64 stream starting at ``stream_seed(stream_seed(seed, epoch), t)``,
four calls per triple: ``randint(n_users)`` (the alias column), ``uniform``
(the alias coin), then two raw outputs, the positive's key and the
negative's key. The positive is ``indices[start + randint(len)]`` of the
stream starting at its key; the negative, from the stream starting at its key,
is the ``randint(n_items - len)``-th item absent from the row (uniform
negatives), or the first of up to ``MAX_POPULAR_TRIES`` popularity alias draws
(``randint``, ``uniform``) outside the row, else that same uniform draw made
after them (the kernel's ``pick_user``, ``pick_positive``, ``draw_negative``,
``kth_missing``, ``alias_draw``).

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

__all__ = ["hogwild_epoch"]

#: alias draws of a popularity negative before falling back to a uniform one (the kernel's constant)
MAX_POPULAR_TRIES = 64
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
    calls = 4 * np.arange(first, first + count, dtype=np.int64)
    column = _rng.randint(_rng.draws(state, calls + 1), user_prob.shape[0])
    coin = _rng.uniform(_rng.draws(state, calls + 2))
    pos_key = _rng.draws(state, calls + 3)
    neg_key = _rng.draws(state, calls + 4)
    users = np.where(coin < user_prob[column], column, user_alias[column].astype(np.int64))
    start = np.asarray(indptr, dtype=np.int64)[users]
    length = np.asarray(indptr, dtype=np.int64)[users + 1] - start
    pos = indices[start + _rng.randint(_rng.draws(pos_key, 1), length)].astype(np.int64)
    neg = np.empty(count, dtype=np.int64)
    todo = np.arange(count)
    call = 1  # the next call of the negatives' streams
    if popularity:
        for _ in range(MAX_POPULAR_TRIES):
            if todo.size == 0:
                break
            key = neg_key[todo]
            k = _rng.randint(_rng.draws(key, call), neg_prob.shape[0])
            x = _rng.uniform(_rng.draws(key, call + 1))
            j = np.where(x < neg_prob[k], k, neg_alias[k].astype(np.int64))
            want = users[todo] * n_items + j
            at = np.minimum(np.searchsorted(members, want), members.size - 1)
            rejected = members[at] == want
            neg[todo[~rejected]] = j[~rejected]
            todo = todo[rejected]
            call += 2
        # every stream still rejected has made all its tries: the uniform fallback is its next call
        call = 2 * MAX_POPULAR_TRIES + 1
    if todo.size:
        u = users[todo]
        k = _rng.randint(_rng.draws(neg_key[todo], call), n_items - length[todo])
        # kth_missing: k plus the number of row entries with fewer than k + 1 absent items below them
        before = np.searchsorted(missing, u * n_items + k, side="right") - start[todo]
        neg[todo] = k + before
    return users, pos, neg


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
    out_loss,
):
    """Draw and apply ``n_samples`` triples in ``n_chunks`` chunks, one after the other (module docstring).

    ``out_loss[t]`` receives chunk ``t``'s sum of ``-ln sigma(x_uij)``. ``share_below`` (the share of the
    positives on the catalogue items below each item) only tells the kernel where to start each search in
    a row; the triples do not depend on it, and this twin searches all rows at once.
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
