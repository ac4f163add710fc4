"""NumPy reference of the feature step (float64): see ``fastmf.kernels.features`` for the maths."""

from __future__ import annotations

__all__ = ["feature_cycle", "prior_means"]


def feature_cycle(feat_indptr, feat_items, item_weight, values, prior, features, precision, beta, item_scale):
    """One Gauss-Seidel cycle: ``F_k = tau sum s_i w_i (V_i - c_i + w_i F_k) / (beta + tau sum s_i w_i^2)``
    for each feature ``k`` in turn, updating ``c`` (``prior``) in place after each (``s_i``:
    ``item_scale``, empty: 1)."""
    for k in range(features.shape[0]):
        items = feat_items[feat_indptr[k] : feat_indptr[k + 1]]
        if items.size == 0:
            continue
        w = item_weight[items]
        ws = w * item_scale[items] if len(item_scale) else w
        resid = values[items] - prior[items] + w[:, None] * features[k]
        new = precision * (ws @ resid) / (beta + precision * (ws @ w))
        prior[items] += w[:, None] * (new - features[k])
        features[k] = new


def prior_means(item_indptr, item_features, item_weight, features, out):
    """``out[i] = w_i sum_{f in F_i} features[f]``."""
    for i in range(item_indptr.shape[0] - 1):
        out[i] = item_weight[i] * features[item_features[item_indptr[i] : item_indptr[i + 1]]].sum(axis=0)
