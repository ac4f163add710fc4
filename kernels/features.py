"""Feature (genre) step of the hierarchical feature model: kernels for ``fastmf.features``.

Item ``i`` with feature set ``F_i`` has the prior mean ``c_i = w_i sum_{f in F_i} F_f``
with ``w_i = 1/sqrt(|F_i|)``. Given the item vectors ``V``, the part of the
objective that involves the feature vectors is

    tau/2 sum_i |V_i - c_i|^2 + beta/2 sum_f |F_f|^2,

a ridge regression of ``V`` on the item-feature matrix ``W`` (``W_if = w_i``),
separable over the D columns. :func:`feature_cycle` minimises it exactly in
``F_k`` for one feature at a time (Gauss-Seidel, features in index order):

    F_k = tau sum_{i ∋ k} w_i (V_i - c_i + w_i F_k) / (beta + tau sum_{i ∋ k} w_i^2)

where ``V_i - c_i + w_i F_k = V_i - w_i sum_{l != k} F_l`` is the residual
without feature ``k``; ``c_i`` is kept current by adding ``w_i (F_k_new - F_k_old)``
to the items of ``k``. Each update is an exact block minimisation, so the
objective never increases. Cost per cycle: two passes over the non-zeros of
``W`` times D. The same kernels serve the item biases (one column, with
``gamma`` for ``tau``).

With weighted-lambda regularisation item ``i``'s prior precision is ``tau s_i``
(``item_scale``, its rating count): every ``tau`` inside the sums above becomes
``tau s_i``; an empty ``item_scale`` means ``s_i = 1``.

Both kernels run serially: the cycle because features depend on each other
through ``c`` (which also keeps results independent of the thread count), and
:func:`prior_means`, which recomputes ``c = W F`` exactly after the cycle,
because its O(nnz(W) D) work is too small to pay for waking a thread pool.
"""

import numpy as np
from numba import njit

__all__ = ["feature_cycle", "prior_means"]


@njit(cache=True)
def feature_cycle(feat_indptr, feat_items, item_weight, values, prior, features, precision, beta, item_scale):
    """One Gauss-Seidel cycle over the rows of ``features`` (in place; ``prior`` kept current).

    ``feat_indptr``/``feat_items``: the items of every feature (feature-major
    CSR); ``item_weight``: ``w_i``; ``values`` (items x D): the item vectors
    ``V``; ``prior`` (items x D): ``c = W F`` on entry, updated in place;
    ``item_scale``: ``s_i`` (empty: 1).
    """
    scaled = item_scale.shape[0] > 0
    n_features, d = features.shape
    num = np.empty(d, dtype=np.float64)
    delta = np.empty(d, dtype=np.float64)
    for k in range(n_features):
        start = feat_indptr[k]
        end = feat_indptr[k + 1]
        if start == end:
            continue
        num[:] = 0.0
        den = beta
        for j in range(start, end):
            i = feat_items[j]
            w = item_weight[i]
            ws = w * item_scale[i] if scaled else w
            den += precision * ws * w
            for p in range(d):
                num[p] += ws * (np.float64(values[i, p]) - np.float64(prior[i, p]) + w * np.float64(features[k, p]))
        for p in range(d):
            old = np.float64(features[k, p])
            features[k, p] = precision * num[p] / den
            delta[p] = np.float64(features[k, p]) - old
        for j in range(start, end):
            i = feat_items[j]
            w = item_weight[i]
            for p in range(d):
                prior[i, p] += w * delta[p]


@njit(cache=True)
def prior_means(item_indptr, item_features, item_weight, features, out):
    """``out[i] = w_i sum_{f in F_i} features[f]`` for every item (zero for items without features)."""
    d = features.shape[1]
    for i in range(item_indptr.shape[0] - 1):
        for p in range(d):
            s = 0.0
            for j in range(item_indptr[i], item_indptr[i + 1]):
                s += features[item_features[j], p]
            out[i, p] = item_weight[i] * s
