"""Bayesian Personalized Ranking for implicit feedback (Rendle et al. 2009).

Positives are the training ratings ``>= threshold`` (every rating when
``threshold`` is None or 0, and every row of an implicit (user, item[,
weight]) table, see :func:`fastmf.data_prep.loaders.is_implicit`). The model scores
``x_ui = b_i + U_u . V_i`` (a user bias would cancel in the pairwise
difference) and maximises, by SGD over sampled triples,

    sum_(u,i,j) ln sigma(x_ui - x_uj) - reg/2 (|U|^2 + |V|^2 + |b|^2)

where ``i`` is a positive of ``u`` and ``j`` an item that is not. The items
are those of the implicit data set the positives form: the *catalogue* of
items with at least one training positive (as in cornac, whose BPR knows the
items of its training set; an item only rated below the threshold, or only in
the test data, is not in it). Each epoch draws as many triples as there are
sampled positives: ``(u, i)`` uniformly over the positives and ``j``
uniformly over ``u``'s non-positive catalogue items, or in proportion to item
popularity (``negatives="popularity"``, which never draws an item without
positives either); the learning rate of epoch ``e = 0, 1, ...`` is
``lr * decay**e``. Users with no non-positive item have nothing to rank and
are not sampled; rows that training never touches (users without positives,
items outside the catalogue) stay at zero, the cold prior of
:class:`fastmf.factor.FactorModel`, and the ranking evaluation
(:mod:`fastmf.ranking`) does not rank items outside the catalogue.

Backends: ``numba`` runs each epoch as a lock-free Hogwild kernel
(:mod:`fastmf.kernels.bpr`) on float32 factors, every thread drawing from its
own SplitMix64 stream seeded by (seed, epoch, thread). With one thread
(``fastmf.set_threads(1)`` or ``--threads 1``) a seeded run is reproducible
bit for bit. With more threads the triples each thread draws are still fixed
by the seed, but the order in which threads read and write shared rows is not,
so the factors (and the metrics, in their last digits) differ slightly from run
to run. ``numpy`` is the float64 reference: triples drawn with NumPy, then a
Python loop of per-triple NumPy updates. Given the same state and the same
triples both backends produce the same factors.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from fastmf.data_prep.dataset import Dataset
from fastmf.errors import DivergenceError, FastMFError
from fastmf.kernels import bpr as kbpr
from fastmf.kernels import metrics as km
from fastmf.kernels.linalg import aligned_copy
from fastmf.kernels.rng import build_alias
from fastmf.ranking import Ranker, positive_keys, ranking_report
from fastmf.reference import bpr as ref

NEGATIVES = ("uniform", "popularity")


class BPRState:
    """Factors being fitted and the sampler's arrays, for one backend.

    ``positives`` is the positive CSR by user (sorted rows). Items are indexed
    in the catalogue (module docstring): ``items[c]`` is the model's index of
    catalogue item ``c``, ``indices`` the positives' catalogue indices (still
    sorted per row), ``item_factors``/``item_bias`` one row per catalogue item;
    :meth:`export` copies them into the model's item arrays. Factors start from
    N(0, init_std^2) in float32 (both backends from the same values) except the
    users training never touches, which start and stay at zero. The numba
    backend keeps its factor matrices 64-byte aligned, so a row of D = 64
    float32 spans 4 cache lines rather than 5.
    """

    def __init__(self, positives: Dataset, factors: int, negatives: str = "uniform", backend: str = "numba",
                 seed: int = 42, init_std: float = 0.1, fit_bias: bool = True):
        self.backend = backend
        self.seed = int(seed)
        self.fit_bias = bool(fit_bias)
        self.popularity = negatives == "popularity"
        n_users = positives.n_users
        weights = np.bincount(positives.indices, minlength=positives.n_items)
        self.items = np.flatnonzero(weights)
        n_items = self.items.size
        self.indptr = positives.indptr
        self.indices = (np.cumsum(weights > 0) - 1)[positives.indices].astype(np.int32)
        counts = np.diff(self.indptr)
        sampled_users = (counts > 0) & (counts < n_items)
        self.n_samples = int(counts[sampled_users].sum())
        if self.n_samples == 0:
            raise FastMFError("no user has both positive and non-positive items: nothing to rank")
        self.item_weights = weights[self.items].astype(np.float64)
        self.n_items = n_items
        rng = np.random.default_rng(seed)
        u = rng.normal(0.0, init_std, (n_users, factors)).astype(np.float32)
        v = rng.normal(0.0, init_std, (n_items, factors)).astype(np.float32)
        u[~sampled_users] = 0.0
        if backend == "numba":
            self.user_factors, self.item_factors = aligned_copy(u), aligned_copy(v)
            self.item_bias = np.zeros(n_items, dtype=np.float32)
            self.user_prob, self.user_alias = build_alias(np.where(sampled_users, counts, 0).astype(np.float64))
            self.neg_prob, self.neg_alias = build_alias(self.item_weights) if self.popularity else \
                (np.ones(1), np.zeros(1, dtype=np.int32))
        else:
            self.user_factors, self.item_factors = u.astype(np.float64), v.astype(np.float64)
            self.item_bias = np.zeros(n_items)
            entries = np.repeat(sampled_users, counts)
            self.entry_users = positives.user_of_entry[entries]
            self.entry_items = self.indices[entries]
            self.keys = positive_keys(self.indptr, self.indices, n_items)

    def epoch(self, epoch: int, lr: float, reg: float) -> float:
        """Run epoch ``epoch`` (0-based) with learning rate ``lr``; returns the mean ``-ln sigma(x_uij)``."""
        if self.backend == "numba":
            chunks = numba.get_num_threads()
            loss = np.zeros(chunks)
            kbpr.hogwild_epoch(self.indptr, self.indices, self.user_prob, self.user_alias, self.user_factors,
                               self.item_factors, self.item_bias, float(lr), float(reg), self.fit_bias,
                               self.n_samples, self.seed, epoch, chunks, self.neg_prob, self.neg_alias,
                               self.popularity, loss)
            total = loss.sum()
        else:
            rng = np.random.default_rng((self.seed, epoch))
            triples = ref.draw_triples(rng, self.entry_users, self.entry_items, self.keys, self.n_items,
                                       self.n_samples, self.item_weights if self.popularity else None)
            total = ref.sgd_epoch(*triples, self.user_factors, self.item_factors, self.item_bias, lr, reg,
                                  self.fit_bias)
        return float(total / self.n_samples)

    def export(self, item_factors: np.ndarray, item_bias: np.ndarray) -> None:
        """Copy the catalogue's item rows into the model's arrays (one row per model item)."""
        item_factors[self.items] = self.item_factors
        item_bias[self.items] = self.item_bias

    def finite(self) -> bool:
        return bool(np.isfinite(km.sum_squares(self.user_factors) + km.sum_squares(self.item_factors)
                                + km.sum_squares(self.item_bias)))


class BPR(Ranker):
    """Bayesian Personalized Ranking matrix factorisation, trained by (Hogwild) SGD.

    Defaults are the ML-32M report's settings: ``factors`` D = 64, ``lr`` 0.05
    decayed by ``decay`` 0.98 per epoch, ``reg`` 0.001 (on factors and item
    biases), 50 ``epochs``, factors from N(0, ``init_std`` = 0.1), positives =
    ratings >= ``threshold`` 4.0, ``negatives`` "uniform" or "popularity";
    ``item_bias=False`` drops ``b_i``. Evaluation (``evaluate``, the
    per-epoch ``auc`` with an ``eval_set``) uses the ranking metrics of
    :mod:`fastmf.ranking`; the per-epoch figures use at most
    ``epoch_eval_users`` test users (a fixed random subset).

    On ml-latest-small the report's settings under-regularise (the training
    loss falls to ~0.03 while held-out NDCG stalls); a validation split carved
    from the training data picks ``reg=0.01, lr=0.1, epochs=200``. Their AUC
    there (about 0.922) is held down by the N(0, 0.1) initialisation, whose
    noise the rarely sampled items keep: from cornac's initialisation (sd
    ``1 / (D sqrt 12)``) the same training reaches 0.931, cornac's own 0.933.
    """

    kind = "bpr"
    epoch_eval_users = 2000
    fold_in_passes = 30
    fold_in_samples = 200

    def __init__(self, factors: int = 64, lr: float = 0.05, decay: float = 0.98, reg: float = 0.001,
                 epochs: int = 50, threshold: float | None = 4.0, negatives: str = "uniform",
                 item_bias: bool = True, init_std: float = 0.1, seed: int = 42, backend: str = "numba"):
        self.factors = factors
        self.lr = lr
        self.decay = decay
        self.reg = reg
        self.epochs = epochs
        self.threshold = threshold
        self.negatives = negatives
        self.item_bias = item_bias
        self.init_std = init_std
        self.seed = seed
        self.backend = backend

    def _check_params(self) -> None:
        if int(self.factors) < 0 or int(self.epochs) < 0:
            raise FastMFError("factors and epochs must be non-negative")
        if not self.lr > 0 or not 0 < self.decay <= 1:
            raise FastMFError("lr must be positive and decay in (0, 1]")
        if self.reg < 0 or self.init_std < 0:
            raise FastMFError("reg and init_std must be non-negative")
        if self.negatives not in NEGATIVES:
            raise FastMFError(f"unknown negatives '{self.negatives}' (choose from {', '.join(NEGATIVES)})")

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        self._check_params()
        pos = self._fit_positives(train)
        state = BPRState(pos, int(self.factors), self.negatives, self.backend, self.seed, self.init_std,
                         self.item_bias)
        self.samples_per_epoch_ = state.n_samples
        dtype = state.item_bias.dtype
        self.user_factors_ = state.user_factors
        self.item_factors_ = np.zeros((train.n_items, state.item_factors.shape[1]), dtype=dtype)
        self.item_bias_ = np.zeros(train.n_items, dtype=dtype)
        self.user_bias_ = np.zeros(train.n_users, dtype=dtype)
        state.export(self.item_factors_, self.item_bias_)
        task = None
        if eval_set is not None:
            task = self.ranking_task(eval_set).sample_users(self.epoch_eval_users, self.seed)
        for epoch in range(int(self.epochs)):
            lr = self.lr * self.decay ** epoch
            t0 = time.perf_counter()
            loss = state.epoch(epoch, lr, self.reg)
            seconds = time.perf_counter() - t0
            if not np.isfinite(loss) or not state.finite():
                raise DivergenceError(f"BPR diverged in epoch {epoch + 1} (loss {loss:g} at learning rate {lr:g}): "
                                      "try a smaller --lr")
            state.export(self.item_factors_, self.item_bias_)
            record = {"epoch": epoch + 1, "seconds": seconds, "loss": loss, "lr": lr}
            if task is not None:
                report = ranking_report(self, task, seed=self.seed)
                record.update(auc=report["auc"], sampled_auc=report["sampled_auc"])
            self._log(record, callback)

    def fold_in(self, ratings, k: int = 10, exclude_seen: bool = True, min_item_ratings: int = 0):
        """Recommendations for a new user from liked items (a list) or ratings (``{item: rating}``).

        With ratings, the items rated ``>= threshold`` are the liked ones; all
        given items are excluded when ``exclude_seen``. The user's vector is
        fitted by SGD on ``ln sigma(x_ui - x_uj)`` (liked ``i``, uniform
        non-liked ``j`` of the training catalogue) with the items fixed, ``fold_in_passes`` passes of
        ``fold_in_samples`` triples.
        """
        if isinstance(ratings, dict):
            liked = {item: float(not self.threshold or value >= self.threshold) for item, value in ratings.items()}
        else:
            liked = {item: 1.0 for item in ratings}
        return super().fold_in(liked, k, exclude_seen, min_item_ratings)

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        liked = np.unique(item_idx[values > 0])
        if liked.size == 0:
            raise FastMFError(f"fold_in needs at least one liked item (rating >= {self.threshold})")
        others = np.setdiff1d(self.positive_indices_, liked)  # the catalogue's other items
        if others.size == 0:
            return 0.0, np.zeros(self.item_factors_.shape[1])
        rng = np.random.default_rng(self.seed)
        v = self.item_factors_.astype(np.float64)
        b = self.item_bias_.astype(np.float64)
        vec = np.zeros(v.shape[1])
        for p in range(self.fold_in_passes):
            lr = self.lr * self.decay ** p
            for i, j in zip(rng.choice(liked, self.fold_in_samples).tolist(),
                            rng.choice(others, self.fold_in_samples).tolist()):
                diff = v[i] - v[j]
                z = 1.0 / (1.0 + np.exp(np.clip(b[i] - b[j] + vec @ diff, -50.0, 50.0)))
                vec += lr * (z * diff - self.reg * vec)
        return 0.0, vec
