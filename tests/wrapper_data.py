"""Small data shared by the model-wrapper tests (fold-in, early stopping, persistence, closed forms).

``planted`` is a session fixture: a 300 x 200 rating set drawn from a planted
low-rank model plus noise (about 7,300 ratings), with one or two of five
"genres" per item as item features. It is small enough that every model fits
in a few milliseconds per epoch, and noisy enough that the factor models
overfit after some epochs (which the early-stopping tests need).
Import it into a test module as ``from wrapper_data import planted``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmf

USER_OFFSET = 1000  # planted user ids are 1000.. and item ids 5000.., so no id is also an index
ITEM_OFFSET = 5000


def planted_ratings(
    seed: int = 0, n_users: int = 300, n_items: int = 200, rank: int = 3, density: float = 0.12, noise: float = 0.8
):
    """``(user ids, item ids, ratings)`` of ``3.5 + b_u + b_i + U_u.V_i / sqrt(rank) + N(0, noise^2)``, clipped."""
    rng = np.random.default_rng(seed)
    u_f, i_f = rng.normal(0, 1, (n_users, rank)), rng.normal(0, 1, (n_items, rank))
    b_u, b_i = rng.normal(0, 0.4, n_users), rng.normal(0, 0.6, n_items)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    r = (
        3.5
        + b_u[users]
        + b_i[items]
        + np.einsum("nd,nd->n", u_f[users], i_f[items]) / np.sqrt(rank)
        + rng.normal(0, noise, users.size)
    )
    return users + USER_OFFSET, items + ITEM_OFFSET, np.clip(r, 0.5, 5.0)


def with_genres(data, seed: int = 1):
    """``data`` with one or two of the features g0..g4 per item."""
    rng = np.random.default_rng(seed)
    item_ids, names = [], []
    for j, iid in enumerate(data.item_map.ids):
        for g in rng.choice(5, size=1 + j % 2, replace=False):
            item_ids.append(iid)
            names.append(f"g{g}")
    return data.with_features(np.asarray(item_ids), names)


@pytest.fixture(scope="session")
def planted():
    return with_genres(fastmf.Dataset.from_arrays(*planted_ratings()))


def learned_attributes(model) -> list:
    """Names of the learned attributes (``name_``, not ``_private``) of a fitted model."""
    return sorted(k for k in vars(model) if k.endswith("_") and not k.startswith("_"))
