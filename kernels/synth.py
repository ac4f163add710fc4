"""Kernels of the synthetic MovieLens-shaped generator (see ``fastmf.data_prep.synth``)."""

import math

import numpy as np
from numba import njit, prange

from fastmf.kernels._rng import alias_draw, new_state, normal, uniform

__all__ = ["sample_items", "planted_ratings"]


@njit(cache=True, parallel=True)
def sample_items(degrees, pre_indptr, pre_items, prob, alias, log_weights, seed, first_user=0):
    """Distinct items for every user: the pre-assigned ones, then draws by popularity.

    User ``u`` gets ``degrees[u]`` distinct items: first ``pre_items[pre_indptr[u]:
    pre_indptr[u+1]]`` (which guarantee every item at least one rating), then
    items drawn from the alias table ``(prob, alias)`` with rejection of repeats.
    Users who want more than an eighth of the catalogue instead take the top of
    Gumbel-perturbed log weights (sampling without replacement in one pass).
    Returns the CSR ``(indptr, items)``; each user's stream is seeded from
    ``(seed, first_user + u)`` so the result does not depend on the thread count, and the
    users ``a..b`` of a larger set come out the same when generated alone (``first_user=a``).
    """
    n_users = degrees.shape[0]
    n_items = prob.shape[0]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    for u in range(n_users):
        indptr[u + 1] = indptr[u] + degrees[u]
    items = np.empty(indptr[-1], dtype=np.int32)
    n_chunks = 64
    for c in prange(n_chunks):
        seen = np.full(n_items, -1, dtype=np.int64)
        keys = np.empty(n_items, dtype=np.float64)
        for u in range(c, n_users, n_chunks):
            st = new_state(seed, first_user + u)
            pos = indptr[u]
            need = degrees[u]
            for j in range(pre_indptr[u], pre_indptr[u + 1]):
                it = pre_items[j]
                seen[it] = u
                items[pos] = it
                pos += 1
                need -= 1
            if need <= 0:
                continue
            if 8 * degrees[u] > n_items:
                for it in range(n_items):
                    if seen[it] == u:
                        keys[it] = -np.inf
                    else:
                        keys[it] = log_weights[it] - math.log(-math.log(uniform(st) * (1 - 1e-12) + 1e-12))
                order = np.argsort(-keys)
                for j in range(need):
                    items[pos] = order[j]
                    pos += 1
            else:
                while need > 0:
                    it = alias_draw(st, prob, alias)
                    if seen[it] != u:
                        seen[it] = u
                        items[pos] = it
                        pos += 1
                        need -= 1
    return indptr, items


@njit(cache=True, parallel=True)
def planted_ratings(indptr, items, mu, user_bias, item_bias, user_factors, item_factors, sigma, seed, first_user=0):
    """Half-star ratings from the planted model and their exact conditional expectations.

    ``r = clip(round_half(mu + b_u + b_i + U_u.V_i + sigma * eps), 0.5, 5)`` with
    ``eps ~ N(0, 1)``. Returns ``(ratings, expected)`` where ``expected`` is
    ``E[r | planted parameters]`` computed from the normal CDF over the half-star
    bins: the best possible prediction of each rating. User ``u`` (its rows of ``user_bias`` and
    ``user_factors``) draws from stream ``first_user + u``, so a range of users can be generated alone.
    """
    n_users = indptr.shape[0] - 1
    nnz = items.shape[0]
    ratings = np.empty(nnz, dtype=np.float32)
    expected = np.empty(nnz, dtype=np.float32)
    k = user_factors.shape[1]
    inv = 1.0 / (sigma * math.sqrt(2.0))
    for u in prange(n_users):
        st = new_state(seed ^ 0x5DEECE66D, first_user + u)
        for j in range(indptr[u], indptr[u + 1]):
            i = items[j]
            m = mu + user_bias[u] + item_bias[i]
            for d in range(k):
                m += user_factors[u, d] * item_factors[i, d]
            x = m + sigma * normal(st)
            r = math.floor(x * 2.0 + 0.5) / 2.0
            ratings[j] = min(5.0, max(0.5, r))
            # E[r]: sum over the ten half-star values of value * P(bin)
            e = 0.0
            prev = 0.0
            for s in range(1, 11):
                v = 0.5 * s
                upper = 1.0 if s == 10 else 0.5 * (1.0 + math.erf((v + 0.25 - m) * inv))
                e += v * (upper - prev)
                prev = upper
            expected[j] = e
    return ratings, expected
