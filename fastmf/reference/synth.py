"""NumPy reference of the synthetic generator's kernels: see :mod:`fastmf.kernels.synth`.

Both functions draw from the kernels' SplitMix64 streams, computed here by call
number with :mod:`fastmf.reference._rng`, so they produce the kernels' output:
the same items in the same order for :func:`sample_items` and bit-identical
float32 ratings for :func:`planted_ratings` (``expected`` agrees to float32
rounding: the kernel's ``erf`` is libm's, this one is SciPy's).

Streams (``u`` counted from ``first_user``): user ``u`` of :func:`sample_items` uses stream ``(seed, u)``: an alias
draw takes two calls (a column by Lemire's multiply-shift, then a uniform), a
Gumbel key one call per item not pre-assigned, in item order. User ``u`` of
:func:`planted_ratings` uses stream ``(seed ^ 0x5DEECE66D, u)``, two calls
(one Box-Muller normal) per rating in CSR order.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from fastmf.reference import _rng

__all__ = ["sample_items", "planted_ratings"]

#: XOR-ed into the seed of :func:`planted_ratings`' streams (as in the kernel)
RATING_STREAMS = 0x5DEECE66D


def _alias_distinct(state, prob, alias, seen, need):
    """The first ``need`` distinct items not in ``seen`` among the alias draws of the stream at ``state``.

    Draws come in vectorised batches; within a batch a draw is accepted when it is
    the first occurrence of its item and the item is not already seen, which is
    the kernel's sequential rejection of repeats.
    """
    n_items = prob.shape[0]
    reachable = prob > 0
    reachable[alias[prob < 1]] = True
    if int((reachable & ~seen).sum()) < need:
        raise ValueError("the alias table cannot reach that many distinct items (the kernel would never return)")
    seen = seen.copy()
    out = []
    done = 0  # draws consumed so far
    while need > 0:
        batch = max(2 * need, 64)
        calls = 2 * (done + np.arange(batch, dtype=np.uint64)) + 1
        col = _rng.randint(_rng.draws(state, calls), n_items)
        x = _rng.uniform(_rng.draws(state, calls + 1))
        cand = np.where(x < prob[col], col, alias[col].astype(np.int64))
        _, first = np.unique(cand, return_index=True)
        first = np.sort(first)
        accepted = cand[first[~seen[cand[first]]]][:need]
        seen[accepted] = True
        out.append(accepted)
        need -= accepted.shape[0]
        done += batch
    return np.concatenate(out)


def sample_items(degrees, pre_indptr, pre_items, prob, alias, log_weights, seed, first_user=0):
    """Distinct items for every user: the pre-assigned ones, then draws by popularity; CSR ``(indptr, items)``.

    User ``u`` gets ``degrees[u]`` items: ``pre_items[pre_indptr[u]:pre_indptr[u+1]]``,
    then alias-table draws ``(prob, alias)`` rejecting repeats or, when
    ``8 degrees[u] > n_items``, the top of Gumbel-perturbed ``log_weights`` in
    descending key order. A Python loop over users (vectorised within each).
    Gumbel ties (only possible with equal keys, e.g. -inf log weights) go to the
    lowest item (stable sort); the kernel's ``np.argsort`` (quicksort) leaves them unspecified.
    """
    degrees = np.asarray(degrees, dtype=np.int64)
    prob = np.asarray(prob, dtype=np.float64)
    alias = np.asarray(alias)
    n_users = degrees.shape[0]
    n_items = prob.shape[0]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(degrees, out=indptr[1:])
    items = np.empty(indptr[-1], dtype=np.int32)
    for u in range(n_users):
        pre = np.asarray(pre_items[pre_indptr[u] : pre_indptr[u + 1]], dtype=np.int64)
        if pre.shape[0] > degrees[u]:
            raise ValueError(f"user {u} has more pre-assigned items than its degree")  # kernel: overflow
        pos = indptr[u] + pre.shape[0]
        items[indptr[u] : pos] = pre
        need = int(degrees[u]) - pre.shape[0]
        if need <= 0:
            continue
        state = _rng.stream_seed(seed, first_user + u)
        seen = np.zeros(n_items, dtype=bool)
        seen[pre] = True
        if 8 * degrees[u] > n_items:
            fresh = np.flatnonzero(~seen)
            y = _rng.uniform(_rng.draws(state, np.arange(1, fresh.shape[0] + 1))) * (1 - 1e-12) + 1e-12
            keys = np.full(n_items, -np.inf)
            with np.errstate(divide="ignore"):
                keys[fresh] = log_weights[fresh] - np.log(-np.log(y))
            chosen = np.argsort(-keys, kind="stable")[:need]
        else:
            chosen = _alias_distinct(state, prob, alias, seen, need)
        items[pos : indptr[u + 1]] = chosen
    return indptr, items


def planted_ratings(indptr, items, mu, user_bias, item_bias, user_factors, item_factors, sigma, seed, first_user=0):
    """Half-star ratings from the planted model and their exact conditional expectations (both float32).

    ``r = clip(round_half(mu + b_u + b_i + U_u.V_i + sigma eps), 0.5, 5)``, ``eps ~ N(0, 1)``,
    and ``E[r | planted]`` from the normal CDF over the ten half-star bins. The mean
    is summed in float64 in the kernel's order, with the factor products in the
    factors' dtype as the kernel multiplies them, so the ratings are bit-identical.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    counts = np.diff(indptr)
    users = np.repeat(np.arange(indptr.shape[0] - 1), counts)
    items = np.asarray(items, dtype=np.int64)
    call = np.arange(items.shape[0]) - np.repeat(indptr[:-1], counts)  # rating number within its user
    state = _rng.stream_seed(seed ^ RATING_STREAMS, users + first_user)
    eps = _rng.normal(_rng.draws(state, 2 * call + 1), _rng.draws(state, 2 * call + 2))
    m = np.float64(mu) + user_bias[users].astype(np.float64) + item_bias[items].astype(np.float64)
    prod = user_factors[users] * item_factors[items]
    for d in range(prod.shape[1]):
        m += prod[:, d].astype(np.float64)
    x = m + sigma * eps
    ratings = np.clip(np.floor(x * 2.0 + 0.5) / 2.0, 0.5, 5.0).astype(np.float32)
    inv = 1.0 / (sigma * math.sqrt(2.0))
    expected = np.zeros(items.shape[0], dtype=np.float64)
    prev = np.zeros(items.shape[0], dtype=np.float64)
    for s in range(1, 11):
        v = 0.5 * s
        upper = np.ones_like(prev) if s == 10 else 0.5 * (1.0 + erf((v + 0.25 - m) * inv))
        expected += v * (upper - prev)
        prev = upper
    return ratings, expected.astype(np.float32)
