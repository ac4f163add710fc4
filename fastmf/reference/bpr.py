"""NumPy reference of BPR: vectorised triple sampling, then a sequential per-triple SGD loop in float64.

The updates are those of :mod:`fastmf.kernels.bpr` (the module docstring
there states them); the sampler draws ``(u, i)`` uniformly over the sampled
positives and ``j`` uniformly (or by popularity) over the items that are not
``u``'s positives, redrawing the rejected ones.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from fastmf.ranking import contains_sorted

#: popularity redraw rounds before the remaining rejected negatives are drawn uniformly
MAX_POPULAR_TRIES = 64


def draw_triples(rng: np.random.Generator, entry_users: np.ndarray, entry_items: np.ndarray, keys: np.ndarray,
                 n_items: int, n_samples: int, popularity: np.ndarray | None = None):
    """``(users, positives, negatives)``: ``n_samples`` triples.

    ``(entry_users, entry_items)`` are the sampled positives, ``keys`` all the
    positives (:func:`fastmf.ranking.positive_keys`); ``popularity`` (item weights) switches
    the negatives from uniform to proportional sampling.
    """
    pick = rng.integers(0, entry_users.size, n_samples)
    users = entry_users[pick].astype(np.int64)
    pos = entry_items[pick].astype(np.int64)
    neg = np.empty(n_samples, dtype=np.int64)
    todo = np.arange(n_samples)
    rounds = 0
    while todo.size:
        if popularity is not None and rounds < MAX_POPULAR_TRIES:
            neg[todo] = rng.choice(n_items, todo.size, p=popularity / popularity.sum())
        else:
            neg[todo] = rng.integers(0, n_items, todo.size)
        todo = todo[contains_sorted(keys, users[todo] * n_items + neg[todo])]
        rounds += 1
    return users, pos, neg


def sgd_epoch(users, pos, neg, user_factors, item_factors, item_bias, lr, reg, fit_bias) -> float:
    """Apply the triples in order (in place); returns the sum of ``-ln sigma(x_uij)``."""
    loss = 0.0
    for u, i, j in zip(users.tolist(), pos.tolist(), neg.tolist()):
        wu = user_factors[u].copy()
        diff = item_factors[i] - item_factors[j]
        x = item_bias[i] - item_bias[j] + wu @ diff
        z = expit(-x)
        loss += np.logaddexp(0.0, -x)
        user_factors[u] += lr * (z * diff - reg * wu)
        item_factors[i] += lr * (z * wu - reg * item_factors[i])
        item_factors[j] += lr * (-z * wu - reg * item_factors[j])
        if fit_bias:
            item_bias[i] += lr * (z - reg * item_bias[i])
            item_bias[j] += lr * (-z - reg * item_bias[j])
    return float(loss)

