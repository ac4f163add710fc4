"""The base class of every fastmf model: hyperparameters, fitting, recommending, fold-in and persistence.

Conventions follow scikit-learn and implicit: hyperparameters are keyword arguments of
the constructor, declared once per model in ``params`` (:mod:`fastmf.common.params`),
``fit`` returns ``self`` and learned state lives in attributes ending in ``_``. A fitted
model keeps the training id maps (``user_map_``, ``item_map_``), the training ratings'
sparsity pattern (to exclude seen items), per-item training counts and titles, so it can
recommend by original ids after :func:`fastmf.load_model`.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from fastmf.common.errors import FastMFError, ModelFileError, NotFittedError
from fastmf.common.jit import watch_compiles
from fastmf.common.keys import contains_sorted, positive_keys
from fastmf.common.layout import SCORE_BATCH
from fastmf.common.params import make_init
from fastmf.data_prep.dataset import Dataset, IdMap, realign, to_dataset
from fastmf.kernels.topk import topk_rows
from fastmf.models import budget, checks, io

#: arrays every saved model holds besides its own ``_saved_arrays``
SHARED_ARRAYS = ("user_ids_", "item_ids_", "seen_indptr_", "seen_indices_", "item_counts_")


#: the rating scale of models saved without ``rating_range_`` (fastmf 0.1: MovieLens stars)
DEFAULT_SCALE = (0.5, 5.0)


def training_scale(train: Dataset) -> list | None:
    """The rating scale a model keeps as ``rating_range_``, ``[lo, hi]`` (a list, as a saved header
    holds it): the data's declared scale, widened to the ratings actually present (a table or scipy
    matrix given in Python carries the default scale whatever its values); None for an implicit table."""
    extremes = (float(train.data.min()), float(train.data.max())) if train.n_ratings else None
    return widened_scale(train.rating_range, extremes)


def widened_scale(rating_range, extremes: tuple | None) -> list | None:
    """``rating_range`` widened to the smallest and largest rating present (``extremes``, None for none)."""
    if rating_range is None:
        return None
    lo, hi = rating_range
    if extremes is not None:
        lo, hi = min(lo, extremes[0]), max(hi, extremes[1])
    return [float(lo), float(hi)]


class Recommender:
    """Base of all models; subclasses declare ``params`` and implement ``_fit`` and ``_score_batch``."""

    kind: str = ""
    #: True for models that predict ratings (ALS, bias-only, VI), False for rankers (BPR).
    rating_model: bool = True
    #: True for models that use the items' features (genres or ``--item-features``)
    uses_item_features: bool = False
    #: the hyperparameter declaration (``fastmf.common.params.declare``); the constructor is made from it
    params: dict = {}
    #: where ``fastmf tune --budget`` searches (``{name: range}`` of :mod:`fastmf.common.search`); empty:
    #: nothing to tune
    search_space: dict = {}
    #: learned arrays written by ``save`` (besides :data:`SHARED_ARRAYS`)
    _saved_arrays: tuple = ()
    #: learned scalars written by ``save`` into the header's ``extra`` section (without the trailing ``_``)
    _saved_scalars: tuple = ("compile_seconds_",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "params" in cls.__dict__:
            cls.__init__ = make_init(cls.params)

    # ------------------------------------------------------------------ hyperparameters
    def get_params(self, deep: bool = True) -> dict:
        """The hyperparameters as ``{name: value}`` (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self.params}

    def set_params(self, **params) -> Recommender:
        """Set hyperparameters by name, each validated; returns ``self``."""
        for key, value in params.items():
            if key not in self.params:
                raise FastMFError(
                    f"{type(self).__name__} has no parameter '{key}' (its parameters: {', '.join(self.params)})"
                )
            self.params[key].check(value, type(self).__name__)
        for key, value in params.items():
            setattr(self, key, value)
        self._check_combination()
        return self

    def _check_params(self) -> None:
        """Validate every hyperparameter again (attributes may have been assigned directly)."""
        for name, p in self.params.items():
            p.check(getattr(self, name), type(self).__name__)
        self._check_combination()

    def _check_combination(self) -> None:
        """Constraints between hyperparameters (one parameter's range is checked by its declaration)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(self, train, eval_set=None, callback=None) -> Recommender:
        """Fit on ``train``; ``eval_set`` is scored after every epoch (never used for fitting).

        ``train``/``eval_set``: a Dataset, a path (CSV/TSV/Parquet file, MovieLens release,
        prepared folder), a pandas or pyarrow table of (user, item, rating), or a scipy.sparse
        matrix. ``callback(record)`` is called with each epoch's history record, and once with
        ``{"event": "compiling"}`` when kernels start compiling (the first run after installing
        or changing fastmf; later runs load them from the cache). ``fit_seconds_`` is the whole
        fit, ``compile_seconds_`` the part of it spent compiling.
        """
        self._check_params()
        train = to_dataset(train)
        self._check_ratings(train)
        eval_set = None if eval_set is None else train.align(to_dataset(eval_set))
        self._check_budget(train)
        self._forget()
        self._remember_training(train)
        self.history_ = []
        start = time.perf_counter()
        announce = None if callback is None else (lambda: callback({"event": "compiling"}))
        try:
            with watch_compiles(announce) as compiling:
                self._fit(train, eval_set, callback)
        except BaseException:  # a diverged or interrupted fit leaves no half-fitted (NaN) model behind
            self._forget()
            raise
        self.fit_seconds_ = time.perf_counter() - start
        self.compile_seconds_ = compiling.seconds
        return self

    def _forget(self) -> None:
        """Drop every learned attribute (those ending in ``_``): the model is unfitted again."""
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
            delattr(self, name)

    # ------------------------------------------------------------------ memory and time budget
    def training_cost(self, shape: budget.Shape, factors: int | None = None) -> budget.Cost:
        """Estimated peak bytes of the training state and floating-point operations per epoch on data of
        this ``shape``, at latent dimension ``factors`` (default: the model's); see :mod:`fastmf.models.budget`.
        This base estimate counts per-entity biases and per-rating temporaries only."""
        return budget.Cost(
            bytes=16.0 * shape.entities + budget.PER_RATING_BYTES * shape.ratings,
            flops=10.0 * shape.ratings,
            traffic=budget.sweep_traffic(shape, 4.0, 4.0),
        )

    def _budget_factors(self) -> int | None:
        """The latent dimension the budget may suggest lowering (None: the model has none)."""
        return int(self.factors) if "factors" in self.params else None

    def _budget_label(self, factors: int | None) -> str:
        """The run in the budget's message: ``ALS with D=64``."""
        return type(self).__name__ + ("" if factors is None else f" with D={factors}")

    def _budget_alternatives(self, shape: budget.Shape) -> tuple:
        """Remedies besides a smaller D, as ``(flag, Cost)`` pairs (:func:`fastmf.models.budget.check`)."""
        return ()

    @staticmethod
    def data_shape(train: Dataset) -> budget.Shape:
        """The counts of ``train`` a cost estimate needs."""
        largest = max(int(np.diff(train.indptr).max(initial=0)), int(train.item_counts.max(initial=0)))
        return budget.Shape(train.n_users, train.n_items, train.n_ratings, largest)

    def _check_budget(self, train: Dataset) -> None:
        """Refuse, before allocating anything, training that would not fit in memory or in the epoch time budget."""
        shape = self.data_shape(train)
        d = self._budget_factors()
        budget.check(
            self._budget_label(d),
            lambda k: self.training_cost(shape, factors=k),
            d,
            train.n_ratings,
            self._budget_alternatives(shape),
        )

    def _remember_training(self, train: Dataset) -> None:
        self._remember(training_scale(train), train.user_map, train.item_map, train.item_counts, train.titles)
        self._remember_seen(train.indptr, train.indices)

    def _remember(self, scale, user_map: IdMap, item_map: IdMap, item_counts: np.ndarray, titles) -> None:
        """What a fitted model keeps of its training data besides the ratings it saw (:meth:`_remember_seen`)."""
        self.rating_range_ = scale
        self.user_map_ = user_map
        self.item_map_ = item_map
        self.item_counts_ = item_counts
        self.item_titles_ = None if titles is None else np.asarray(["" if t is None else str(t) for t in titles])

    def _remember_seen(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        """The (user, item) pairs trained on, excluded from recommendations (CSR pattern)."""
        self.seen_indptr_ = indptr
        self.seen_indices_ = indices

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        raise NotImplementedError

    def _log(self, record: dict, callback) -> None:
        self.history_.append(record)
        if callback is not None:
            callback(record)

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_map_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() or fastmf.load_model()")

    @property
    def n_users(self) -> int:
        return len(self.user_map_)

    @property
    def n_items(self) -> int:
        return len(self.item_map_)

    # ------------------------------------------------------------------ scoring
    def _score_batch(self, users: np.ndarray) -> np.ndarray:
        """Scores ``(len(users), n_items)`` of known user indices (higher = better)."""
        raise NotImplementedError

    def _score_vector(self, state) -> np.ndarray:
        """Scores of all items for a folded-in user state (see ``fold_in``)."""
        raise NotImplementedError

    def _check_k(self, k) -> int:
        """``k`` as an int in ``[1, n_items]`` (a larger ``k`` returns every eligible item)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise FastMFError(f"k must be a positive integer, got {k!r}")
        return int(min(k, max(1, self.n_items)))

    def _eligible(self, allow, deny, min_item_ratings) -> np.ndarray:
        """The items a recommendation may hold: ``allow`` (ids; default every item) minus ``deny`` (ids),
        with at least ``min_item_ratings`` training ratings."""
        ok = self.item_counts_ >= min_item_ratings
        if allow is not None:
            only = np.zeros(self.n_items, dtype=bool)
            only[self.item_indices(np.atleast_1d(allow), "allowed item")] = True
            ok &= only
        if deny is not None:
            ok[self.item_indices(np.atleast_1d(deny), "denied item")] = False
        return ok

    def _exclusions(self, rows, exclude, extra_exclude=None):
        """``(indptr, indices, rows)`` of the items to skip for each query row: the item indices
        ``extra_exclude[q]`` (one array per row, for folded-in users), else the training items of user
        ``rows[q]`` with ``exclude``, else none."""
        if extra_exclude is not None:
            lengths = [len(x) for x in extra_exclude]
            indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            indices = np.concatenate([np.sort(np.asarray(x, dtype=np.int32)) for x in extra_exclude]).astype(np.int32)
            return indptr, indices, np.arange(len(extra_exclude), dtype=np.int64)
        if exclude:
            return self.seen_indptr_, self.seen_indices_, np.asarray(rows, dtype=np.int64)
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.full(len(rows), -1, dtype=np.int64)

    def _topk(self, scores, k, rows, exclude, eligible, extra_exclude=None):
        """Best ``k`` eligible items of each score row, without the :meth:`_exclusions` of its query."""
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        indptr, indices, rows = self._exclusions(rows, exclude, extra_exclude)
        out_idx = np.empty((scores.shape[0], k), dtype=np.int64)
        out_score = np.empty((scores.shape[0], k), dtype=np.float64)
        topk_rows(scores, k, indptr, indices, rows, eligible, out_idx, out_score)
        return out_idx, out_score

    def _select(self, users: np.ndarray, k: int, exclude_seen: bool, eligible: np.ndarray):
        """Best ``k`` eligible items of known user indices: scored in batches of ``SCORE_BATCH`` and
        selected by the parallel top-K kernel (factor models fuse the two, see ``FactorModel``)."""
        out_idx = np.empty((users.size, k), dtype=np.int64)
        out_score = np.empty((users.size, k), dtype=np.float64)
        for lo in range(0, users.size, SCORE_BATCH):
            batch = users[lo : lo + SCORE_BATCH]
            out_idx[lo : lo + batch.size], out_score[lo : lo + batch.size] = self._topk(
                self._score_batch(batch), k, batch, exclude_seen, eligible
            )
        return out_idx, out_score

    def user_index(self, user) -> int:
        """Dense index of a user id; an error naming the id if it is unknown."""
        return int(self.user_indices([user])[0])

    def user_indices(self, users) -> np.ndarray:
        """Dense indices of user ids; an error naming the first unknown id."""
        self._check_fitted()
        users = np.atleast_1d(np.asarray(users))
        idx = self.user_map_.index_of(users)
        if (idx < 0).any():
            raise FastMFError(f"unknown user id {users[int(np.flatnonzero(idx < 0)[0])].item()!r}")
        return idx.astype(np.int64)

    def item_indices(self, items, what: str = "item") -> np.ndarray:
        """Dense indices of item ids; an error naming the first unknown id."""
        self._check_fitted()
        items = np.atleast_1d(np.asarray(list(items) if not isinstance(items, np.ndarray) else items))
        idx = self.item_map_.index_of(items)
        if (idx < 0).any():
            raise FastMFError(f"unknown {what} id {items[int(np.flatnonzero(idx < 0)[0])].item()!r}")
        return idx

    def recommend(
        self,
        users,
        k: int = 10,
        exclude_seen: bool = True,
        allow=None,
        deny=None,
        min_item_ratings: int = 0,
        as_frame: bool = False,
    ):
        """The ``k`` best items of one user id or of many, best first.

        One id gives ``(item_ids, scores)``; a sequence of ids gives two arrays of shape
        ``(len(users), k)`` whose slots beyond a user's eligible items hold the fill id (-1, or
        "" for text ids) and score ``-inf``. ``exclude_seen`` drops each user's training items
        (implicit's ``filter_already_liked_items``), ``allow`` keeps only the given item ids
        (implicit's ``items``), ``deny`` drops them (``filter_items``), ``min_item_ratings``
        keeps items with at least that many training ratings. ``as_frame`` returns a pandas
        DataFrame with one row per recommendation: ``user``, ``rank``, ``item``, ``score``.
        Rating models score by predicted rating, rankers by their ranking score.
        """
        return self._recommend(users, k, exclude_seen, allow, deny, min_item_ratings, as_frame)

    def recommend_all(
        self,
        k: int = 10,
        users=None,
        exclude_seen: bool = True,
        allow=None,
        deny=None,
        min_item_ratings: int = 0,
        as_frame: bool = False,
    ):
        """:meth:`recommend` for many user ids at once (default: every user, in ``user_map_.ids`` order):
        ``(item_ids, scores)`` of shape ``(n, k)``, or a DataFrame with ``as_frame``."""
        self._check_fitted()
        users = self.user_map_.ids if users is None else np.asarray(users)
        return self._recommend(np.atleast_1d(users), k, exclude_seen, allow, deny, min_item_ratings, as_frame)

    def _recommend(self, users, k, exclude_seen, allow, deny, min_item_ratings, as_frame):
        idx = self.user_indices(users)
        top, scores = self.recommend_indices(idx, k, exclude_seen, allow, deny, min_item_ratings)
        return self._results(users, self.user_map_.ids[idx], top, scores, as_frame)

    def recommend_indices(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        allow=None,
        deny=None,
        min_item_ratings: int = 0,
    ):
        """:meth:`recommend` on the model's dense user indices, returning dense item *indices* (-1 past
        the eligible items) and scores, for code that works on indices."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        eligible = self._eligible(allow, deny, min_item_ratings)
        return self._select(users, self._check_k(k), exclude_seen, eligible)

    def _results(self, query, row_ids, top: np.ndarray, scores: np.ndarray, as_frame: bool, ids=None):
        """Item indices and scores as ids: 1-D (trimmed) for a single query, ``(n, k)`` padded with the
        fill id otherwise, or a long DataFrame (``as_frame``) with ``row_ids`` in its first column."""
        ids = self.item_map_.ids if ids is None else ids
        if as_frame:
            import pandas as pd  # optional: only for as_frame

            keep = top >= 0
            rows, ranks = np.nonzero(keep)
            return pd.DataFrame(
                {"user": np.asarray(row_ids)[rows], "rank": ranks + 1, "item": ids[top[keep]], "score": scores[keep]}
            )
        if np.ndim(query) == 0 or isinstance(query, dict):
            keep = top[0] >= 0
            return ids[top[0][keep]], scores[0][keep]
        fill = "" if ids.dtype.kind == "U" else (np.iinfo(ids.dtype).max if ids.dtype.kind == "u" else -1)
        out = np.full(top.shape, fill, dtype=ids.dtype if ids.size else np.int64)
        out[top >= 0] = ids[top[top >= 0]]
        return out, scores

    def fold_in(
        self,
        ratings,
        k: int = 10,
        exclude_seen: bool = True,
        allow=None,
        deny=None,
        min_item_ratings: int = 0,
        as_frame: bool = False,
    ):
        """Recommendations for new users, each described by ``{item_id: rating}`` (or a list of the
        items they interacted with, for rankers), without refitting.

        Each new user's parameters are solved against the fixed items (each model's
        ``_fold_in_state``). One user (a dict or a list) gives ``(item_ids, scores)``; a list of
        dicts gives ``(n, k)`` arrays as :meth:`recommend`, and ``as_frame`` a DataFrame whose
        ``user`` column is the user's position in the list. ``exclude_seen`` excludes each user's
        given items; ``allow``, ``deny`` and ``min_item_ratings`` as in :meth:`recommend`.
        """
        self._check_fitted()
        batch = isinstance(ratings, (list, tuple)) and len(ratings) > 0 and all(isinstance(r, dict) for r in ratings)
        users = list(ratings) if batch else [ratings]
        k = self._check_k(k)
        eligible = self._eligible(allow, deny, min_item_ratings)
        scores, given = [], []
        for one in users:
            idx, values = self._fold_in_input(one)
            scores.append(self._score_vector(self._fold_in_state(idx, values)))
            given.append(idx if exclude_seen else np.zeros(0, dtype=np.int32))
        top, best = self._topk(np.vstack(scores), k, np.arange(len(users)), False, eligible, extra_exclude=given)
        return self._results(users if batch else ratings, np.arange(len(users)), top, best, as_frame)

    def _fold_in_input(self, ratings):
        """``(item indices, values)`` of one new user: ``{item: value}``, or a list of items (values None)."""
        if not ratings:
            raise FastMFError("fold_in needs at least one item")
        if isinstance(ratings, dict):
            self._check_fold_in_ratings(ratings)
            return self.item_indices(list(ratings)), np.asarray(list(ratings.values()), dtype=np.float64)
        return self.item_indices(list(ratings)), None

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        raise NotImplementedError

    def _rating_scale(self):
        """The training rating scale ``(lo, hi)``, None for an implicit table; models saved before
        ``rating_range_`` was kept (fastmf 0.1) were trained on the default MovieLens scale."""
        scale = getattr(self, "rating_range_", DEFAULT_SCALE)
        return None if scale is None else (float(scale[0]), float(scale[1]))

    def _check_fold_in_ratings(self, ratings) -> None:
        """Refuse fold-in ratings off the training scale (``rating_range_``): NaN, infinite or out of range
        values, or for a model trained on an implicit table, weights that are not finite and positive."""
        if not isinstance(ratings, dict):
            return
        scale = self._rating_scale()
        for item, value in ratings.items():
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise FastMFError(f"the rating of item {item!r} must be a number, got {value!r}") from None
            if scale is None:
                if not (math.isfinite(x) and x > 0):
                    raise FastMFError(
                        f"the weight of item {item!r} must be a finite positive number (the model was "
                        f"trained on an implicit table), got {value!r}"
                    )
            elif not scale[0] <= x <= scale[1]:
                raise FastMFError(
                    f"the rating of item {item!r} must be within the training scale "
                    f"{scale[0]:g}..{scale[1]:g}, got {value!r}"
                )

    # ------------------------------------------------------------------ evaluation
    def aligned(self, data) -> Dataset:
        """``data`` re-indexed on the model's training id maps (new ids become cold indices)."""
        self._check_fitted()
        return realign(to_dataset(data), self.user_map_, self.item_map_)

    def evaluate(self, test, include_training: bool = False) -> dict:
        """Metrics on held-out ratings (``test`` in any accepted form; ids unseen in training are cold).

        Ratings of (user, item) pairs the model was trained on are left out, so that a model
        evaluated on the whole data it was split from is scored on its held-out part only;
        ``include_training`` scores them too, with a warning that the metrics are then
        optimistic. The report counts both: ``scored_ratings`` and ``training_ratings``
        (skipped, or scored with ``include_training``).
        """
        test = self.aligned(test)
        self._check_ratings(test)
        trained = self._trained_pairs(test)
        n_trained = int(trained.sum())
        if n_trained and include_training:
            warnings.warn(
                f"{n_trained:,} of the {test.n_ratings:,} ratings scored are ratings the model was trained "
                "on: its metrics are optimistic",
                stacklevel=2,
            )
        elif n_trained:
            test = test.subset(~trained)
        report = self._evaluate(test)
        report.update(
            scored_ratings=test.n_ratings,
            training_ratings=n_trained,
            training_ratings_scored=bool(include_training and n_trained),
        )
        return report

    def _trained_pairs(self, data: Dataset) -> np.ndarray:
        """Whether each rating of ``data`` (aligned to the model) is of a pair in the training data."""
        n_items = max(self.n_items, data.n_items)
        users = data.user_of_entry.astype(np.int64)
        known = users < self.n_users
        mask = np.zeros(data.n_ratings, dtype=bool)
        mask[known] = contains_sorted(
            positive_keys(self.seen_indptr_, self.seen_indices_, n_items), users[known] * n_items + data.indices[known]
        )
        return mask

    def _check_ratings(self, data: Dataset) -> None:
        """Rating models refuse an implicit (user, item[, weight]) table: it has no ratings to fit or score."""
        if self.rating_model and data.implicit:
            raise FastMFError(
                f"{data.source or 'the data'} is an implicit (user, item[, weight]) table without "
                f"ratings: the rating model '{self.kind}' needs ratings (use bpr or popular)"
            )

    def _evaluate(self, test: Dataset) -> dict:
        raise NotImplementedError

    def title(self, item_index: int) -> str:
        if self.item_titles_ is not None and self.item_titles_[item_index]:
            return str(self.item_titles_[item_index])
        return str(self.item_map_.ids[item_index])

    # ------------------------------------------------------------------ persistence
    def _extra_header(self) -> dict:
        """State kept in the header's ``extra`` section: the ``_saved_scalars`` (and names, not arrays)."""
        return {name.rstrip("_"): getattr(self, name) for name in self._saved_scalars if hasattr(self, name)}

    def _load_extra(self, extra: dict) -> None:
        """Restore the state of :meth:`_extra_header` (each value checked: a finite number, a list of
        them, or None)."""

        def finite(x) -> bool:
            return not isinstance(x, bool) and isinstance(x, (int, float)) and bool(np.isfinite(x))

        for name in self._saved_scalars:
            key = name.rstrip("_")
            if key not in extra:
                continue
            value = extra[key]
            if not (value is None or finite(value) or (isinstance(value, list) and all(map(finite, value)))):
                raise ValueError(f"{key} is {value!r}, not a finite number")
            setattr(self, name, value)

    def _check_loaded(self, path: str) -> None:
        """Raise :class:`ModelFileError` if loaded arrays are inconsistent with each other or non-finite
        (:mod:`fastmf.models.checks`)."""

    def save(self, path: str) -> str:
        """Write the model to the file ``path`` (see :mod:`fastmf.models.io`): an existing fastmf model
        there is replaced atomically, anything else is refused. Returns ``path``."""
        self._check_fitted()
        arrays = {name: getattr(self, name) for name in self._saved_arrays}
        arrays.update(
            {
                "user_ids_": self.user_map_.ids,
                "item_ids_": self.item_map_.ids,
                "seen_indptr_": self.seen_indptr_,
                "seen_indices_": self.seen_indices_,
                "item_counts_": self.item_counts_,
            }
        )
        if self.item_titles_ is not None:
            arrays["item_titles_"] = self.item_titles_
        io.write_model(
            path,
            self.kind,
            self.get_params(),
            arrays,
            getattr(self, "history_", []),
            getattr(self, "fit_seconds_", None),
            self._extra_header(),
        )
        return path

    @classmethod
    def saved_arrays(cls) -> tuple:
        """``(required, optional)`` names of the arrays a saved model of this kind holds."""
        return (*SHARED_ARRAYS, *cls._saved_arrays), ("item_titles_",)

    @classmethod
    def from_saved(cls, saved: io.SavedModel) -> Recommender:
        """The model held by a file read with :func:`fastmf.models.io.read_model` (see
        :func:`fastmf.load_model`); a :class:`ModelFileError` for anything inconsistent."""
        path = saved.path
        params = dict(saved.params)
        if "seed" in params and "seed" not in cls.params:  # fastmf 0.1 named random_state "seed"
            params["random_state"] = params.pop("seed")
        try:
            model = cls(**params)
        except (TypeError, FastMFError) as exc:
            raise ModelFileError(f"{path}: parameters do not match model '{cls.kind}' ({exc})") from None
        arrays = dict(saved.arrays)
        for name in ("user_ids_", "item_ids_"):
            checks.check_ids(arrays[name], name, path)
        model.user_map_ = IdMap(arrays.pop("user_ids_"))
        model.item_map_ = IdMap(arrays.pop("item_ids_"))
        model.item_titles_ = arrays.pop("item_titles_", None)
        for name, a in arrays.items():
            setattr(model, name, a)
        checks.check_csr(model.seen_indptr_, model.seen_indices_, model.n_users, model.n_items, "seen", path)
        checks.check_shape(model.item_counts_, (model.n_items,), "item_counts", path, "iu")
        checks.require(bool((model.item_counts_ >= 0).all()), path, "item_counts holds negative counts")
        if model.item_titles_ is not None:
            checks.check_shape(model.item_titles_, (model.n_items,), "item_titles", path, "U")
        model.history_ = saved.history
        model.fit_seconds_ = saved.fit_seconds
        try:
            model._load_extra(saved.extra)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: the header's extra state is malformed ({exc})") from None
        model._check_loaded(path)
        return model
