"""Hierarchical item features (genres, tags, ...) for cold start: ALS with feature-centred item priors.

Model (the ML-32M report's hierarchical prior). Item ``i`` has the feature set
``F_i`` and the weight ``w_i = 1/sqrt(|F_i|)``:

    r_ui ~ N(mu + b_u + b_i + U_u . V_i, lam^-1)
    U_u ~ N(0, tau^-1 I),   b_u ~ N(0, gamma^-1)
    V_i ~ N(c_i, tau^-1 I), c_i = w_i sum_{f in F_i} F_f   (c_i = 0 for an item without features)
    F_f ~ N(0, beta^-1 I)

and with ``feature_bias`` also ``b_i ~ N(m_i, gamma^-1)``, ``m_i = w_i sum_{f in F_i} g_f``,
``g_f ~ N(0, beta^-1)`` (otherwise ``m_i = 0`` and ``g = 0``). Objective
(minimised: the negative log posterior up to a constant):

    J = lam/2 sum_(u,i) (r_ui - mu - b_u - b_i - U_u.V_i)^2
        + gamma/2 (sum_u b_u^2 + sum_i (b_i - m_i)^2) + tau/2 (sum_u |U_u|^2 + sum_i |V_i - c_i|^2)
        + beta/2 (sum_f |F_f|^2 + sum_f g_f^2)

With ``reg_scaling="count"`` every user's and item's ``gamma`` and ``tau`` terms are
scaled by its rating count ``n_e`` (at least 1), in the objective and in the updates
below (the feature step then weights item ``i`` by ``n_i``).

Each epoch makes three exact block minimisations of ``J``, so it never increases:

1. users: ``b_u`` then ``U_u``, as in ALS;
2. items: ``b_i = (lam sum_u (r_ui - mu - b_u - U_u.V_i) + gamma m_i) / (lam n_i + gamma)``, then
   ``V_i = (lam sum_u U_u U_u^T + tau I)^-1 (tau c_i + lam sum_u U_u (r_ui - mu - b_u - b_i))``
   (the ALS half-sweep with a prior mean); an item without training ratings gets ``V_i = c_i``, ``b_i = m_i``;
3. features: one Gauss-Seidel cycle of the closed forms
   ``F_k = tau sum_{i∋k} w_i (V_i - w_i sum_{l≠k} F_l) / (beta + tau sum_{i∋k} w_i^2)``
   and, with ``feature_bias``, ``g_k = gamma sum_{i∋k} w_i (b_i - w_i sum_{l≠k} g_l) / (beta + gamma sum w_i^2)``
   (``fastmf.kernels.features``); then ``c``, ``m`` are recomputed and items without
   training ratings are moved to their new prior means (again an exact minimisation).

A new item known only by its features (:meth:`FeatureALS.add_items`) gets
``V = c``, ``b = m``; :meth:`FeatureALS.similar` finds the existing items whose
factors are closest in cosine to ``c``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.common.params import Param, declare
from fastmf.common.search import LogUniform
from fastmf.data_prep.dataset import Dataset
from fastmf.kernels import sparse as ksparse
from fastmf.models import checks, hyper
from fastmf.models.als import ALSFamily, ALSState
from fastmf.models.backend import backend_of


def unique_item_features(indptr, indices, n_features: int):
    """The item-feature CSR with repeated (item, feature) pairs dropped and features sorted per item."""
    n_items = indptr.shape[0] - 1
    key = np.unique(ksparse.row_ids(indptr).astype(np.int64) * max(n_features, 1) + indices)
    rows = key // max(n_features, 1)
    out_ptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_items), out=out_ptr[1:])
    return out_ptr, (key % max(n_features, 1)).astype(np.int32)


def item_weights(indptr) -> np.ndarray:
    """``w_i = 1/sqrt(|F_i|)`` (0 for items without features)."""
    counts = np.diff(indptr).astype(np.float64)
    return np.divide(1.0, np.sqrt(counts), out=np.zeros_like(counts), where=counts > 0)


class FeatureState(ALSState):
    """:class:`ALSState` plus the feature vectors ``F`` (and genre biases ``g``) and the item prior means."""

    def __init__(
        self,
        csr,
        csc,
        n_users,
        n_items,
        factors,
        mu,
        item_feature_indptr,
        item_feature_indices,
        n_features,
        backend,
        seed=42,
        lam=0.1,
        gamma=2.5,
        tau=1.0,
        beta=1.0,
        feature_bias=False,
        work_split="balanced",
        reg_scaling="none",
    ):
        super().__init__(
            csr,
            csc,
            n_users,
            n_items,
            factors,
            mu,
            backend,
            seed,
            lam,
            gamma,
            tau,
            work_split=work_split,
            reg_scaling=reg_scaling,
        )
        self.beta, self.feature_bias = float(beta), bool(feature_bias)
        dtype = self.item_factors.dtype
        self.item_feature_indptr, self.item_feature_indices = item_feature_indptr, item_feature_indices
        self.item_weight = item_weights(item_feature_indptr)
        feat_ptr, perm = ksparse.counting_sort(item_feature_indices, n_features)
        self.feature_indptr, self.feature_items = feat_ptr, ksparse.row_ids(item_feature_indptr)[perm]
        self.cold_items = np.flatnonzero(np.diff(csc[0]) == 0)
        # F = 0 at the start, so the first item step is that of ALS
        self.feature_factors = np.zeros((n_features, factors), dtype=dtype)
        self.feature_biases = np.zeros(n_features, dtype=dtype)
        self.item_prior_mean = np.zeros((n_items, factors), dtype=dtype)
        if self.feature_bias:
            self.item_prior_bias = np.zeros(n_items, dtype=dtype)

    def epoch(self) -> dict:
        super().epoch()
        t0 = time.perf_counter()
        self.feature_step()
        return {"feature_seconds": time.perf_counter() - t0}

    def feature_step(self) -> None:
        """Step 3: a Gauss-Seidel cycle over the features, new prior means, cold items onto them."""
        k = self.backend.features
        cycles = [(self.item_factors, self.item_prior_mean, self.feature_factors, self.tau)]
        if self.feature_bias:
            cycles.append(
                (self.item_bias[:, None], self.item_prior_bias[:, None], self.feature_biases[:, None], self.gamma)
            )
        scale = np.zeros(0) if self.item_scale is None else self.item_scale
        for values, prior, feats, precision in cycles:
            k.feature_cycle(
                self.feature_indptr,
                self.feature_items,
                self.item_weight,
                values,
                prior,
                feats,
                precision,
                self.beta,
                scale,
            )
            k.prior_means(self.item_feature_indptr, self.item_feature_indices, self.item_weight, feats, prior)
        self.item_factors[self.cold_items] = self.item_prior_mean[self.cold_items]
        if self.feature_bias:
            self.item_bias[self.cold_items] = self.item_prior_bias[self.cold_items]

    def objective(self, sse: float | None = None) -> float:
        """``J`` of the module docstring on the training ratings (``sse``: their squared error, if known)."""
        if sse is None:
            sse, _ = self.error_sums(self.csr)
        sq = self._sq
        bias_dev = self.item_bias - self.item_prior_bias if self.feature_bias else self.item_bias
        return (
            0.5 * self.lam * sse
            + self._penalty(self.gamma, self.user_bias, bias_dev)
            + self._penalty(self.tau, self.user_factors, self.item_factors - self.item_prior_mean)
            + 0.5 * self.beta * (sq(self.feature_factors) + sq(self.feature_biases))
        )

    def _fitted(self):
        return (
            self.user_factors,
            self.item_factors,
            self.user_bias,
            self.item_bias,
            self.feature_factors,
            self.feature_biases,
            self.item_prior_mean,
            self.item_prior_bias,
        )

    def snapshot(self):
        return tuple(a.copy() for a in self._fitted())

    def restore(self, snap) -> None:
        for target, src in zip(self._fitted(), snap):
            target[...] = src


class FeatureALS(ALSFamily):
    """ALS whose item factors (and optionally biases) have priors centred on their features.

    Hyperparameters as :class:`fastmf.models.als.ALS` (the ML-32M report's D = 20, ``lam`` =
    0.1, ``tau`` = 1, ``gamma`` = 2.5, 50 ``epochs``) plus ``beta`` = 1, the
    prior precision of the feature vectors (and of the genre biases), and
    ``feature_bias``: centre the item biases on genre biases too. Features are
    the training set's item features (``Dataset.feature_indptr`` etc.: the
    genres, or any table given with ``Dataset.with_features``).

    Learned, besides ALS's: ``feature_factors_`` (n_features x D),
    ``feature_bias_`` (n_features; zeros without ``feature_bias``),
    ``feature_names_`` and the item-feature CSR ``item_feature_indptr_``,
    ``item_feature_indices_``. Each history record has ``feature_seconds``, the
    time of step 3 (included in ``seconds``).
    """

    kind = "features"
    uses_item_features = True
    _saved_arrays = ALSFamily._saved_arrays + (
        "feature_factors_",
        "feature_bias_",
        "item_feature_indptr_",
        "item_feature_indices_",
    )
    params = declare(
        factors=hyper.FACTORS,
        lam=hyper.LAM,
        gamma=hyper.GAMMA,
        tau=hyper.TAU,
        beta=Param(
            1.0,
            "Prior precision beta of the feature vectors (and genre biases; 1e-8 to 1e8, as the other precisions).",
            low=hyper.PRECISION_MIN,
            high=hyper.PRECISION_MAX,
        ),
        feature_bias=Param(False, "Centre the item biases on genre biases too."),
        epochs=hyper.EPOCHS.but(default=50),
        random_state=hyper.RANDOM_STATE,
        backend=hyper.BACKEND,
        patience=hyper.PATIENCE,
        validation_frac=hyper.VALIDATION_FRAC,
        reg_scaling=hyper.REG_SCALING,
        work_split=hyper.WORK_SPLIT,
    )
    search_space = {
        "factors": hyper.SEARCH_FACTORS,
        "tau": hyper.SEARCH_TAU,
        "gamma": hyper.SEARCH_GAMMA,
        "beta": LogUniform(0.01, 100.0),
        "reg_scaling": hyper.SEARCH_REG_SCALING,
    }

    def _extra_floats(self, shape, d: int) -> float:
        """The items' prior means and the feature vectors (counted as at most one per item), ``2 I D``."""
        return 2.0 * shape.items * (d + 1)

    def _extra_flops(self, shape, d: int) -> float:
        """The feature cycle and the new prior means: a few passes over the item-feature pairs, ``~ 8 I D``."""
        return 8.0 * shape.items * d

    def _new_state(self, train: Dataset, state_class: type = FeatureState) -> FeatureState:
        indptr, indices, names = train.item_features()
        if not len(names):
            warnings.warn(
                "the training data has no item features: the feature model reduces to plain ALS", stacklevel=3
            )
        self.feature_names_ = [str(n) for n in names]
        self.item_feature_indptr_, self.item_feature_indices_ = unique_item_features(indptr, indices, len(names))
        return state_class(
            train.csr,
            train.csc,
            train.n_users,
            train.n_items,
            int(self.factors),
            self.global_mean_,
            self.item_feature_indptr_,
            self.item_feature_indices_,
            len(names),
            backend_of(self.backend),
            self.random_state,
            self.lam,
            self.gamma,
            self.tau,
            self.beta,
            self.feature_bias,
            work_split=self.work_split,
            reg_scaling=self.reg_scaling,
        )

    def _keep(self, state: FeatureState) -> None:
        super()._keep(state)
        self.feature_factors_ = state.feature_factors
        self.feature_bias_ = state.feature_biases

    # ------------------------------------------------------------------ persistence
    def _extra_header(self) -> dict:
        return {**super()._extra_header(), "feature_names": self.feature_names_}

    def _load_extra(self, extra: dict) -> None:
        super()._load_extra(extra)
        names = extra.get("feature_names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("feature_names must be a list of names")
        self.feature_names_ = names

    def _check_loaded(self, path: str) -> None:
        super()._check_loaded(path)
        n_f = len(self.feature_names_)
        checks.check_shape(self.feature_factors_, (n_f, self.item_factors_.shape[1]), "feature_factors", path)
        checks.check_shape(self.feature_bias_, (n_f,), "feature_bias", path)
        checks.check_finite(path, feature_factors=self.feature_factors_, feature_bias=self.feature_bias_)
        checks.check_csr(
            self.item_feature_indptr_, self.item_feature_indices_, self.n_items, n_f, "item features", path
        )

    # ------------------------------------------------------------------ cold start
    def feature_indices(self, names) -> np.ndarray:
        """Indices of feature names (case-insensitive); an error names an unknown one."""
        self._check_fitted()
        lookup = {n.lower(): k for k, n in enumerate(self.feature_names_)}
        out = []
        for name in names:
            k = lookup.get(str(name).strip().lower())
            if k is None:
                shown = ", ".join(self.feature_names_[:30])
                raise FastMFError(f"unknown feature {name!r} (known: {shown}{', ...' if len(lookup) > 30 else ''})")
            out.append(k)
        return np.unique(np.asarray(out, dtype=np.int32))

    def prior_of(self, names):
        """``(c, m)``: the prior mean factor vector and bias of an item with these features."""
        idx = self.feature_indices(names)
        w = 1.0 / np.sqrt(idx.size) if idx.size else 0.0
        c = w * self.feature_factors_[idx].astype(np.float64).sum(axis=0)
        return c, float(w * self.feature_bias_[idx].astype(np.float64).sum())

    def add_items(self, items: dict) -> FeatureALS:
        """Append new items known only by features, ``{item_id: [feature names]}``: ``V = c``, ``b = m``.

        They join the id maps (with no training ratings), so ``predict``,
        ``recommend`` and ``recommend_all`` include them.
        """
        self._check_fitted()
        if not items:
            raise FastMFError("add_items needs at least one {item_id: [features]} entry")
        ids = list(items)
        if (self.item_map_.index_of(np.asarray(ids)) >= 0).any():
            known = [i for i in ids if self.item_map_.index_of(np.asarray([i]))[0] >= 0]
            raise FastMFError(f"item id {known[0]!r} is already in the model")
        feats = [self.feature_indices(items[i]) for i in ids]
        new_map = self.item_map_.extend(ids)
        order = np.argsort(new_map.index_of(np.asarray(ids)))  # new items in their map order
        feats = [feats[j] for j in order]
        priors = [self.prior_of([self.feature_names_[f] for f in fs]) for fs in feats]
        n_new = len(ids)
        self.item_map_ = new_map
        self.item_factors_ = np.vstack(
            [self.item_factors_, np.array([c for c, _ in priors]).reshape(n_new, -1).astype(self.item_factors_.dtype)]
        )
        self.item_bias_ = np.concatenate([self.item_bias_, np.array([m for _, m in priors], self.item_bias_.dtype)])
        self.item_counts_ = np.concatenate([self.item_counts_, np.zeros(n_new, self.item_counts_.dtype)])
        if self.item_titles_ is not None:
            self.item_titles_ = np.concatenate([self.item_titles_, np.full(n_new, "", self.item_titles_.dtype)])
        lengths = np.array([f.size for f in feats], dtype=np.int64)
        self.item_feature_indptr_ = np.concatenate(
            [self.item_feature_indptr_, self.item_feature_indptr_[-1] + np.cumsum(lengths)]
        )
        self.item_feature_indices_ = np.concatenate([self.item_feature_indices_, *feats]).astype(np.int32)
        return self

    def similar(self, names, k: int = 10, min_item_ratings: int = 0):
        """Existing items most similar to a new item with features ``names``: ``(item_ids, cosines)``.

        Similarity is the cosine between each item's factors ``V_i`` and the
        new item's prior mean ``c``; ``min_item_ratings`` keeps only items with
        at least that many training ratings.
        """
        if not len(names):
            raise FastMFError("give at least one feature of the new item")
        c, _ = self.prior_of(names)
        norm_c = np.linalg.norm(c)
        if norm_c == 0:
            raise FastMFError("these features have a zero factor vector: nothing to compare with")
        v = self.item_factors_.astype(np.float64)
        norms = np.linalg.norm(v, axis=1)
        cos = np.divide(v @ c, norms * norm_c, out=np.zeros(v.shape[0]), where=norms > 0)
        idx, score = self._topk(
            cos[None, :], self._check_k(k), np.array([0]), False, self._eligible(None, None, min_item_ratings)
        )
        keep = idx[0] >= 0
        return self.item_map_.ids[idx[0][keep]], score[0][keep]

    def predict_new(self, user, names) -> float:
        """A known user's predicted rating for a new item with features ``names``: ``mu + b_u + m + U_u.c``."""
        u = self.user_index(user)
        c, m = self.prior_of(names)
        return float(self.global_mean_ + self.user_bias_[u] + m + self.user_factors_[u].astype(np.float64) @ c)
