"""Bayesian Personalized Ranking for implicit feedback (Rendle et al. 2009).

Positives are the training ratings ``>= threshold`` (every rating when
``threshold`` is None or 0, and every row of an implicit (user, item[,
weight]) table, ``Dataset.implicit``). The model scores
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
:class:`fastmf.models.factor.FactorModel`, and the ranking evaluation
(:mod:`fastmf.metrics.ranking`) does not rank items outside the catalogue.

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

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.common.layout import aligned_copy, bias_rows, split_bias_rows
from fastmf.common.params import Param, declare
from fastmf.common.search import Choice, LogUniform
from fastmf.common.threads import n_threads
from fastmf.data_prep.dataset import Dataset
from fastmf.kernels.bpr import USER_RUN
from fastmf.metrics.ranking import ranking_report
from fastmf.models import budget, hyper
from fastmf.models.backend import backend_of
from fastmf.models.budget import Cost, Shape
from fastmf.models.ranker import Ranker
from fastmf.models.training import run_epochs


def share_below(weights: np.ndarray) -> np.ndarray:
    """``[0, w_0, w_0 + w_1, ...] / sum(w)``: the share of the positives on the catalogue items below each
    item (float32, one entry more than ``weights``, the positives per catalogue item), from which the
    sampler guesses where to start its searches (:func:`fastmf.kernels.bpr.position_hint`)."""
    below = np.zeros(weights.shape[0] + 1, dtype=np.float64)
    np.cumsum(weights, out=below[1:])
    return (below / max(below[-1], 1.0)).astype(np.float32)


class BPRState:
    """Factors being fitted and the sampler's arrays (the same on both backends).

    ``positives`` is the positive CSR by user (sorted rows). Items are indexed in the catalogue
    (module docstring): ``items[c]`` is the model's index of catalogue item ``c``, ``indices`` the
    positives' catalogue indices (still sorted per row), ``item_rows`` one row ``[V_c, b_c]`` per
    catalogue item (views ``item_factors`` and ``item_bias``;
    :func:`fastmf.common.layout.bias_rows`); :meth:`export` copies them into the model's item
    arrays. Users are drawn through an alias table over their positive counts (``user_prob``,
    ``user_alias``), popularity negatives through one over the items' (``neg_prob``, ``neg_alias``);
    ``share_below`` is the share of the positives below each item (:func:`share_below`), ``member_filter``
    the positives' membership filter (:func:`fastmf.kernels.bpr.member_filter`). Factors
    start from N(0, init_std^2) rounded to float32 (the same values on both backends) except the
    users training never touches, which start and stay at zero; they are kept 64-byte aligned, so a
    user's row of D = 64 float32 spans 4 cache lines rather than 5, and no two items share a line.
    Each epoch runs ``n_threads()`` chunks of draws (module docstring), the same on both backends,
    so with one thread they apply the same triples.
    """

    divergence_hint = "try a smaller --lr"

    def __init__(
        self,
        positives: Dataset,
        factors: int,
        negatives: str,
        backend,
        seed: int = 42,
        init_std: float = 0.1,
        fit_bias: bool = True,
        lr: float = 0.05,
        decay: float = 0.98,
        reg: float = 0.001,
    ):
        weights = np.bincount(positives.indices, minlength=positives.n_items)
        counts = np.diff(positives.indptr)
        self._start(counts, weights, factors, backend, seed, init_std, fit_bias, lr, decay, reg)
        self.popularity = negatives == "popularity"
        self.indptr = positives.indptr
        self.indices = (np.cumsum(weights > 0) - 1)[positives.indices].astype(np.int32)
        self.share_below = share_below(weights[self.items])
        build_alias = backend.sampling.build_alias
        self.user_prob, self.user_alias = build_alias(np.where(self.sampled_users, counts, 0).astype(np.float64))
        self.neg_prob, self.neg_alias = (
            build_alias(weights[self.items].astype(np.float64))
            if self.popularity
            else (np.ones(1), np.zeros(1, dtype=np.int32))
        )
        self.member_filter = backend.bpr.member_filter(self.indptr, self.indices, self.items.shape[0])

    def _start(
        self,
        counts: np.ndarray,
        weights: np.ndarray,
        factors: int,
        backend,
        seed: int,
        init_std: float,
        fit_bias: bool,
        lr: float,
        decay: float,
        reg: float,
    ) -> None:
        """The catalogue, the users sampled and the starting factors, from the positives per user (``counts``)
        and per item (``weights``): all a state needs that trains elsewhere (:mod:`fastmf.distributed`)."""
        self.backend = backend
        self.seed = int(seed)
        self.fit_bias = bool(fit_bias)
        self.lr, self.decay, self.reg = float(lr), float(decay), float(reg)
        self.epochs_run = 0
        self.items = np.flatnonzero(weights)
        n_items = self.items.size
        self.sampled_users = (counts > 0) & (counts < n_items)
        self.n_samples = int(counts[self.sampled_users].sum())
        if self.n_samples == 0:
            raise FastMFError("no user has both positive and non-positive items: nothing to rank")
        self.n_items = n_items
        rng = np.random.default_rng(seed)
        u = rng.normal(0.0, init_std, (counts.shape[0], factors)).astype(np.float32)
        v = rng.normal(0.0, init_std, (n_items, factors)).astype(np.float32)
        u[~self.sampled_users] = 0.0
        self.user_factors = aligned_copy(u.astype(backend.FLOAT))
        self.item_rows = bias_rows(v.astype(backend.FLOAT), np.zeros(n_items, dtype=backend.FLOAT))

    @property
    def item_factors(self) -> np.ndarray:
        """The items' factors ``V_c``: a view of :attr:`item_rows`."""
        return split_bias_rows(self.item_rows, self.user_factors.shape[1])[0]

    @property
    def item_bias(self) -> np.ndarray:
        """The items' biases ``b_c``: a view of :attr:`item_rows`."""
        return split_bias_rows(self.item_rows, self.user_factors.shape[1])[1]

    def learning_rate(self) -> float:
        """The learning rate of the next epoch, ``lr decay^e``."""
        return self.lr * self.decay**self.epochs_run

    def epoch(self) -> dict:
        """One epoch (the ``e``-th, from 0) at learning rate ``lr decay^e``: its mean ``-ln sigma(x_uij)``."""
        lr = self.learning_rate()
        loss = np.zeros(n_threads())
        self.backend.bpr.hogwild_epoch(
            self.indptr,
            self.indices,
            self.user_prob,
            self.user_alias,
            self.user_factors,
            self.item_rows,
            lr,
            self.reg,
            self.fit_bias,
            self.n_samples,
            self.seed,
            self.epochs_run,
            loss.size,
            self.neg_prob,
            self.neg_alias,
            self.popularity,
            self.share_below,
            self.member_filter,
            loss,
        )
        self.epochs_run += 1
        return {"loss": float(loss.sum() / self.n_samples), "lr": lr}

    def export(self, item_factors: np.ndarray, item_bias: np.ndarray) -> None:
        """Copy the catalogue's item rows into the model's arrays (one row per model item)."""
        item_factors[self.items] = self.item_factors
        item_bias[self.items] = self.item_bias

    def finite(self, record: dict) -> bool:
        sq = self.backend.metrics.sum_squares
        return bool(np.isfinite(record["loss"]) and np.isfinite(sq(self.user_factors) + sq(self.item_rows)))

    def snapshot(self):
        return self.user_factors.copy(), self.item_rows.copy(), self.epochs_run

    def restore(self, snap) -> None:
        for target, src in zip((self.user_factors, self.item_rows), snap):
            target[...] = src
        self.epochs_run = int(snap[2])


class BPR(Ranker):
    """Bayesian Personalized Ranking matrix factorisation, trained by (Hogwild) SGD.

    Defaults are the ML-32M report's settings: ``factors`` D = 64, ``lr`` 0.05
    decayed by ``decay`` 0.98 per epoch, ``reg`` 0.001 (on factors and item
    biases), 50 ``epochs``, factors from N(0, ``init_std`` = 0.1), positives =
    ratings >= ``threshold`` 4.0, ``negatives`` "uniform" or "popularity";
    ``item_bias=False`` drops ``b_i``. Evaluation (``evaluate``, the
    per-epoch ``auc`` with an ``eval_set``) uses the ranking metrics of
    :mod:`fastmf.metrics.ranking`; the per-epoch figures use at most
    ``epoch_eval_users`` test users (a fixed random subset).

    On ml-latest-small the report's settings under-regularise (the training
    loss falls to ~0.03 while held-out NDCG stalls); a validation split carved
    from the training data picks ``reg=0.01, lr=0.1, epochs=200``. Their AUC
    there (about 0.922) is held down by the N(0, 0.1) initialisation, whose
    noise the rarely sampled items keep: from cornac's initialisation (sd
    ``1 / (D sqrt 12)``) the same training reaches 0.931, cornac's own 0.933.
    """

    kind = "bpr"
    _saved_scalars = Ranker._saved_scalars + ("samples_per_epoch_",)
    epoch_eval_users = 2000
    params = declare(
        factors=hyper.FACTORS.but(default=64),
        lr=Param(
            0.05,
            "SGD learning rate of the first epoch (at most 10; useful rates lie below 1, larger "
            "ones usually stop with a divergence error).",
            low=0.0,
            high=10.0,
            low_open=True,
        ),
        decay=Param(0.98, "Learning rate factor per epoch.", low=0.0, high=1.0, low_open=True),
        reg=Param(
            0.001,
            "L2 regularisation of factors and item biases (at most 100; with lr * reg > 2 the "
            "shrinkage overshoots and training diverges).",
            low=0.0,
            high=100.0,
        ),
        epochs=hyper.EPOCHS.but(default=50),
        threshold=hyper.THRESHOLD,
        negatives=Param(
            "uniform",
            "Negative sampling: uniform over the catalogue or by popularity.",
            choices=("uniform", "popularity"),
        ),
        item_bias=Param(True, "Score with item biases b_i (false: U_u . V_i only)."),
        init_std=Param(
            0.1,
            "Standard deviation of the initial factors N(0, s^2) (at most 10; scores of D such "
            "terms already saturate the sigmoid).",
            low=0.0,
            high=10.0,
        ),
        fold_in_passes=Param(30, "SGD passes that fold in a new user's liked items (at most 1000).", low=1, high=1000),
        fold_in_samples=Param(200, "Triples per fold-in pass (at most 100000).", low=1, high=100_000),
        random_state=hyper.RANDOM_STATE,
        backend=hyper.BACKEND,
    )
    search_space = {
        "factors": LogUniform(16, 256, integer=True),
        "lr": LogUniform(0.005, 0.3),
        "reg": LogUniform(1e-5, 0.1),
        "negatives": Choice(("uniform", "popularity")),
    }

    def training_cost(self, shape: Shape, factors: int | None = None) -> Cost:
        """BPR's estimate (see :mod:`fastmf.models.budget`), with ``s`` bytes per float of the backend
        (4 numba, 8 numpy), ``E`` users + items and ``R`` ratings (an upper bound of the positives):

        * memory: the factors ``E D s``, drawn in float64 and rounded to float32 (12 bytes per value),
          then converted and copied into aligned arrays (``4 + 2s``), one side after the other, and the
          model's item arrays ``I (D + 1) s``;
        * arithmetic per epoch: about ``12 D`` per sampled triple (two dot products and three
          ``D``-vector updates), one triple per positive: ``12 R D``;
        * traffic per epoch: per triple its two items' rows read and written, and its user's once a run of
          ``USER_RUN`` triples (:mod:`fastmf.kernels.bpr`), a row entry and a line of the membership filter:
          ``R (2 s (D / USER_RUN + 2 (D + 1)) + 72)``.
        """
        d = int(self.factors) if factors is None else int(factors)
        s = np.dtype(backend_of(self.backend).FLOAT).itemsize
        start = (max(12.0, 4.0 + 2 * s) - s) * max(shape.users, shape.items) * d
        memory = shape.entities * d * s + start + shape.items * (d + 1) * s
        # a triple reads and writes its two items' rows (factors and bias) and, once a run, its user's row,
        # and reads a row entry and a line of the membership filter
        traffic = shape.ratings * (2.0 * s * (d / USER_RUN + 2 * (d + 1)) + 8.0 + 64.0)
        return Cost(
            bytes=memory + budget.PER_RATING_BYTES * shape.ratings,
            flops=12.0 * shape.ratings * max(d, 1),
            traffic=traffic,
        )

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        pos = self._fit_positives(train)
        state = BPRState(
            pos,
            int(self.factors),
            self.negatives,
            backend_of(self.backend),
            self.random_state,
            self.init_std,
            self.item_bias,
            self.lr,
            self.decay,
            self.reg,
        )
        self._adopt(state, train.n_users, train.n_items)
        self._epoch_task = None
        if eval_set is not None:
            self._epoch_task = self.ranking_task(eval_set).sample_users(self.epoch_eval_users, self.random_state)
        run_epochs(self, state, train, eval_set, None, callback)
        del self._epoch_task

    def _adopt(self, state: BPRState, n_users: int, n_items: int) -> None:
        """Take the state's factors as the learned arrays (the users' in place; the catalogue's items exported
        into arrays over every item after each epoch)."""
        self.samples_per_epoch_ = state.n_samples
        dtype = state.item_bias.dtype
        self.user_factors_ = state.user_factors
        self.item_factors_ = np.zeros((n_items, state.item_factors.shape[1]), dtype=dtype)
        self.item_bias_ = np.zeros(n_items, dtype=dtype)
        self.user_bias_ = np.zeros(n_users, dtype=dtype)
        state.export(self.item_factors_, self.item_bias_)

    def _epoch_metrics(self, state: BPRState, train, eval_set) -> dict:
        """Export the epoch's factors; with an ``eval_set``, the ranking AUCs on a fixed sample of its users."""
        state.export(self.item_factors_, self.item_bias_)
        if self._epoch_task is None:
            return {}
        report = ranking_report(self, self._epoch_task, seed=self.random_state)
        return {"auc": report["auc"], "sampled_auc": report["sampled_auc"]}

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray | None):
        """A new user's vector fitted by SGD on ``ln sigma(x_ui - x_uj)`` (liked ``i``: the given items,
        or with ratings those ``>= threshold``; uniform non-liked ``j`` of the training catalogue) with
        the items fixed: ``fold_in_passes`` passes of ``fold_in_samples`` triples."""
        if values is not None and self.threshold and self._rating_scale() is not None:
            item_idx = item_idx[values >= self.threshold]  # (every row of an implicit table is a positive)
        liked = np.unique(item_idx)
        if liked.size == 0:
            raise FastMFError(f"fold_in needs at least one liked item (rating >= {self.threshold})")
        others = np.setdiff1d(self.positive_indices_, liked)  # the catalogue's other items
        if others.size == 0:
            return 0.0, np.zeros(self.item_factors_.shape[1])
        rng = np.random.default_rng(self.random_state)
        v = self.item_factors_.astype(np.float64)
        b = self.item_bias_.astype(np.float64)
        vec = np.zeros(v.shape[1])
        for p in range(self.fold_in_passes):
            lr = self.lr * self.decay**p
            for i, j in zip(
                rng.choice(liked, self.fold_in_samples).tolist(), rng.choice(others, self.fold_in_samples).tolist()
            ):
                diff = v[i] - v[j]
                z = 1.0 / (1.0 + np.exp(np.clip(b[i] - b[j] + vec @ diff, -50.0, 50.0)))
                vec += lr * (z * diff - self.reg * vec)
        return 0.0, vec
