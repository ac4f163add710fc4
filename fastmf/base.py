"""The base class shared by every fastmf model: inputs, recommend, fold-in, save and load.

Conventions follow scikit-learn and implicit: hyperparameters are constructor
arguments, ``fit`` returns ``self``, learned state lives in attributes ending in
``_``. A fitted model keeps the training id maps (``user_map_``, ``item_map_``),
the training ratings' sparsity pattern (to exclude seen items), per-item
training counts and titles, so it can recommend by original ids after
``fastmf.load_model``.
"""

from __future__ import annotations

import inspect
import json
import os
import time

import numpy as np

from fastmf._version import __version__
from fastmf.data_prep.dataset import Dataset, IdMap, realign
from fastmf.data_prep.prepared import atomic_dir
from fastmf._json import json_default
from fastmf.errors import FastMFError, ModelFileError
from fastmf.kernels.topk import topk_rows

FORMAT = "fastmf-model"
FORMAT_VERSION = 1
BACKENDS = ("numba", "numpy")
SCORE_BATCH = 512


def as_dataset(data) -> Dataset:
    """Accept a Dataset, a scipy.sparse matrix or a pyarrow/pandas table of (user, item, rating)."""
    if isinstance(data, Dataset):
        return data
    if hasattr(data, "tocoo") and hasattr(data, "shape"):
        return Dataset.from_scipy(data)
    if hasattr(data, "column_names") or hasattr(data, "columns"):
        return Dataset.from_table(data)
    raise FastMFError(f"cannot use {type(data).__name__} as ratings: pass a fastmf Dataset, a scipy.sparse "
                      "matrix or a pyarrow/pandas table of (user, item, rating)")


def align_to(train: Dataset, other) -> Dataset | None:
    """``other`` expressed on ``train``'s id maps (ids unseen in training become cold indices)."""
    if other is None:
        return None
    other = as_dataset(other)
    if other.user_map is train.user_map and other.item_map is train.item_map:
        return other
    return train.align(other)


class Recommender:
    """Base of all models; subclasses implement ``_fit`` and ``_score_batch``."""

    kind: str = ""
    #: True for models that predict ratings (ALS, bias-only, VI), False for rankers (BPR).
    rating_model: bool = True
    #: Learned arrays written by ``save`` (besides the shared ones below).
    _saved_arrays: tuple = ()

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "Recommender":
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise FastMFError(f"{type(self).__name__} has no parameter '{key}'")
            setattr(self, key, value)
        return self

    def _check_backend(self) -> None:
        if self.backend not in BACKENDS:
            raise FastMFError(f"unknown backend '{self.backend}' (choose from {', '.join(BACKENDS)})")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(self, train, eval_set=None, callback=None) -> "Recommender":
        """Fit on ``train``; ``eval_set`` is scored after every epoch (never used for fitting).

        ``callback(record)`` is called with each epoch's history record.
        """
        self._check_backend()
        train = as_dataset(train)
        self._check_ratings(train)
        eval_set = align_to(train, eval_set)
        self._remember_training(train)
        self.history_ = []
        start = time.perf_counter()
        self._fit(train, eval_set, callback)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _remember_training(self, train: Dataset) -> None:
        self.user_map_ = train.user_map
        self.item_map_ = train.item_map
        self.seen_indptr_ = train.indptr
        self.seen_indices_ = train.indices
        self.item_counts_ = train.item_counts
        titles = train.titles
        self.item_titles_ = None if titles is None else np.asarray(
            ["" if t is None else str(t) for t in titles])

    def _fit(self, train: Dataset, eval_set: Dataset | None, callback) -> None:
        raise NotImplementedError

    def _validation_split(self, train: Dataset):
        """``(fit data, validation)``: with ``patience`` set, a seeded ``validation_frac`` share of
        ``train`` is held out for early stopping (the test set is never used); else ``(train, None)``."""
        if getattr(self, "patience", None) is None:
            return train, None
        if self.patience < 1:
            raise FastMFError("patience must be at least 1")
        from fastmf.data_prep.splits import random_split

        split = random_split(train, self.validation_frac, self.seed + 1)
        return split.train, split.test

    def _run_epochs(self, state, train: Dataset, eval_set, validation, callback) -> int:
        """Run ``self.epochs`` epochs of ``state`` and return the epoch whose parameters are kept.

        ``state.epoch()`` does one epoch and returns extra history fields;
        ``state.metrics(train, eval_set)`` the per-epoch metrics. With a
        ``validation`` set each record also gets ``val_rmse``
        (``state.rmse(validation)``); after ``patience`` epochs without a better one
        the best epoch's parameters (``state.snapshot()``) are restored.
        """
        best, best_epoch, since, snap = np.inf, int(self.epochs), 0, None
        for epoch in range(1, int(self.epochs) + 1):
            t0 = time.perf_counter()
            extra = state.epoch()
            record = {"epoch": epoch, "seconds": time.perf_counter() - t0, **extra,
                      **state.metrics(train, eval_set)}
            if validation is not None:
                record["val_rmse"] = state.rmse(validation)
            self._log(record, callback)
            if validation is None:
                continue
            if record["val_rmse"] < best - 1e-7:
                best, best_epoch, since, snap = record["val_rmse"], epoch, 0, state.snapshot()
            else:
                since += 1
                if since >= self.patience:
                    state.restore(snap)
                    break
        return best_epoch

    def _log(self, record: dict, callback) -> None:
        self.history_.append(record)
        if callback is not None:
            callback(record)

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_map_"):
            raise FastMFError(f"this {type(self).__name__} is not fitted yet: call fit() or fastmf.load_model()")

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

    def _allowed_items(self, min_item_ratings: int) -> np.ndarray:
        return self.item_counts_ >= min_item_ratings

    def _topk(self, scores, k, rows, exclude_seen, min_item_ratings, extra_exclude=None):
        k = int(k)
        if k < 1:
            raise FastMFError(f"k must be at least 1, got {k}")
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if exclude_seen and extra_exclude is None:
            indptr, indices = self.seen_indptr_, self.seen_indices_
        elif extra_exclude is not None:
            indptr = np.array([0, len(extra_exclude)], dtype=np.int64)
            indices = np.sort(np.asarray(extra_exclude, dtype=np.int32))
            rows = np.zeros(len(rows), dtype=np.int64)
        else:
            indptr, indices = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32)
            rows = np.full(len(rows), -1, dtype=np.int64)
        out_idx = np.empty((scores.shape[0], k), dtype=np.int64)
        out_score = np.empty((scores.shape[0], k), dtype=np.float64)
        topk_rows(scores, k, indptr, indices, np.asarray(rows, dtype=np.int64),
                  self._allowed_items(min_item_ratings), out_idx, out_score)
        return out_idx, out_score

    def user_index(self, user) -> int:
        """Dense index of a user id; an error naming the id if it is unknown."""
        self._check_fitted()
        try:
            return self.user_map_.index(user)
        except KeyError:
            raise FastMFError(f"unknown user id {user!r}") from None

    def recommend(self, user, k: int = 10, exclude_seen: bool = True, min_item_ratings: int = 0):
        """Top-``k`` items for one user id: ``(item_ids, scores)``, best first.

        Rating models score by predicted rating; rankers by their ranking score.
        ``exclude_seen`` drops the user's training items; ``min_item_ratings``
        keeps only items with at least that many training ratings.
        """
        u = self.user_index(user)
        idx, score = self._topk(self._score_batch(np.array([u])), k, np.array([u]), exclude_seen, min_item_ratings)
        keep = idx[0] >= 0
        return self.item_map_.ids[idx[0][keep]], score[0][keep]

    def recommend_all(self, k: int = 10, users=None, exclude_seen: bool = True, min_item_ratings: int = 0):
        """Top-``k`` item *indices* and scores for many user indices (default: all users).

        Returns ``(items, scores)`` of shape ``(n, k)``; convert indices to ids
        with ``model.item_map_.ids[items]`` (slots beyond the eligible items are -1).
        Users are scored in batches and selected by a parallel top-K kernel.
        """
        self._check_fitted()
        users = np.arange(self.n_users) if users is None else np.asarray(users, dtype=np.int64)
        out_idx = np.empty((users.size, int(k)), dtype=np.int64)
        out_score = np.empty((users.size, int(k)), dtype=np.float64)
        for lo in range(0, users.size, SCORE_BATCH):
            batch = users[lo:lo + SCORE_BATCH]
            idx, score = self._topk(self._score_batch(batch), k, batch, exclude_seen, min_item_ratings)
            out_idx[lo:lo + batch.size], out_score[lo:lo + batch.size] = idx, score
        return out_idx, out_score

    def item_indices(self, items, what: str = "item") -> np.ndarray:
        """Dense indices of item ids; an error naming the first unknown id."""
        idx = self.item_map_.index_of(np.asarray(list(items)))
        if (idx < 0).any():
            bad = list(items)[int(np.flatnonzero(idx < 0)[0])]
            raise FastMFError(f"unknown {what} id {bad!r}")
        return idx

    def fold_in(self, ratings: dict, k: int = 10, exclude_seen: bool = True, min_item_ratings: int = 0):
        """Recommendations for a new user described by ``{item_id: rating}`` (or liked items).

        The new user's parameters are solved against the fixed item side (see
        each model's ``_fold_in_state``); returns ``(item_ids, scores)`` and
        excludes the given items when ``exclude_seen``.
        """
        self._check_fitted()
        if not ratings:
            raise FastMFError("fold_in needs at least one item")
        if isinstance(ratings, dict):
            items, values = list(ratings.keys()), np.asarray(list(ratings.values()), dtype=np.float64)
        else:
            items, values = list(ratings), np.ones(len(ratings))
        idx = self.item_indices(items)
        state = self._fold_in_state(idx, values)
        scores = self._score_vector(state)[None, :]
        top, score = self._topk(scores, k, np.array([0]), exclude_seen, min_item_ratings,
                                extra_exclude=idx if exclude_seen else None)
        keep = top[0] >= 0
        return self.item_map_.ids[top[0][keep]], score[0][keep]

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray):
        raise NotImplementedError

    # ------------------------------------------------------------------ evaluation
    def aligned(self, data) -> Dataset:
        """``data`` re-indexed on the model's training id maps (new ids become cold indices)."""
        self._check_fitted()
        return realign(as_dataset(data), self.user_map_, self.item_map_)

    def evaluate(self, test) -> dict:
        """Metrics on held-out ratings (``test`` in any accepted form; ids unseen in training are cold)."""
        test = self.aligned(test)
        self._check_ratings(test)
        return self._evaluate(test)

    def _check_ratings(self, data: Dataset) -> None:
        """Rating models refuse an implicit (user, item[, weight]) table: it has no ratings to fit or score."""
        from fastmf.data_prep.loaders import is_implicit

        if self.rating_model and is_implicit(data):
            raise FastMFError(f"{data.source or 'the data'} is an implicit (user, item[, weight]) table without "
                              f"ratings: the rating model '{self.kind}' needs ratings (use bpr or popular)")

    def _evaluate(self, test: Dataset) -> dict:
        raise NotImplementedError

    def title(self, item_index: int) -> str:
        if self.item_titles_ is not None and self.item_titles_[item_index]:
            return str(self.item_titles_[item_index])
        return str(self.item_map_.ids[item_index])

    # ------------------------------------------------------------------ persistence
    def _extra_header(self) -> dict:
        return {}

    def _load_extra(self, header: dict) -> None:
        """Restore state kept in the header's ``extra`` section."""

    def _check_loaded(self, path: str) -> None:
        """Raise :class:`ModelFileError` if loaded arrays are inconsistent with each other."""

    def save(self, path: str) -> str:
        """Write the model to folder ``path`` (replaced atomically): ``.npy`` arrays and ``header.json``."""
        self._check_fitted()
        arrays = {name: getattr(self, name) for name in self._saved_arrays}
        arrays.update({
            "user_ids_": self.user_map_.ids, "item_ids_": self.item_map_.ids,
            "seen_indptr_": self.seen_indptr_, "seen_indices_": self.seen_indices_,
            "item_counts_": self.item_counts_,
        })
        if self.item_titles_ is not None:
            arrays["item_titles_"] = self.item_titles_
        header = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "fastmf_version": __version__,
            "kind": self.kind, "params": self.get_params(),
            "arrays": {name: {"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype)}
                       for name, a in arrays.items()},
            "history": getattr(self, "history_", []),
            "fit_seconds": getattr(self, "fit_seconds_", None),
            "extra": self._extra_header(),
        }

        def write(tmp):
            for name, a in arrays.items():
                np.save(os.path.join(tmp, name.rstrip("_") + ".npy"), np.asarray(a), allow_pickle=False)
            with open(os.path.join(tmp, "header.json"), "w") as fh:
                json.dump(header, fh, indent=2, default=json_default)

        atomic_dir(path, write, force=True)
        return path

    @classmethod
    def _from_header(cls, header: dict) -> "Recommender":
        model = cls(**header["params"])
        return model


def load_model(path: str) -> Recommender:
    """Load a model folder written by ``save``; a clear error for a missing, truncated or mismatched file."""
    from fastmf.models import MODELS

    header_path = os.path.join(path, "header.json")
    if not os.path.isdir(path):
        raise ModelFileError(f"{path}: no such model folder")
    try:
        with open(header_path) as fh:
            header = json.load(fh)
    except FileNotFoundError:
        raise ModelFileError(f"{header_path}: missing (not a fastmf model folder?)") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{header_path}: unreadable or truncated JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{header_path}: not a fastmf model header")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{header_path}: format version {header.get('format_version')} is not supported "
                             f"(this fastmf reads version {FORMAT_VERSION})")
    kind = header.get("kind")
    if kind not in MODELS:
        raise ModelFileError(f"{header_path}: unknown model kind {kind!r}")
    cls = MODELS[kind]
    try:
        model = cls._from_header(header)
    except (TypeError, FastMFError) as exc:
        raise ModelFileError(f"{header_path}: parameters do not match model '{kind}' ({exc})") from None
    arrays = {}
    for name, meta in header.get("arrays", {}).items():
        file = os.path.join(path, name.rstrip("_") + ".npy")
        try:
            a = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise ModelFileError(f"{file}: missing") from None
        except (OSError, ValueError, EOFError) as exc:
            raise ModelFileError(f"{file}: unreadable or truncated ({exc})") from None
        if list(a.shape) != list(meta["shape"]) or str(a.dtype) != meta["dtype"]:
            raise ModelFileError(f"{file}: shape {list(a.shape)} {a.dtype} does not match the header "
                                 f"({meta['shape']} {meta['dtype']})")
        arrays[name] = a
    for required in ("user_ids_", "item_ids_", "seen_indptr_", "seen_indices_", "item_counts_",
                     *cls._saved_arrays):
        if required not in arrays:
            raise ModelFileError(f"{header_path}: array '{required}' is not listed")
    model.user_map_ = IdMap(arrays.pop("user_ids_"))
    model.item_map_ = IdMap(arrays.pop("item_ids_"))
    model.item_titles_ = arrays.pop("item_titles_", None)
    for name, a in arrays.items():
        setattr(model, name, a)
    n_u, n_i = len(model.user_map_), len(model.item_map_)
    if model.seen_indptr_.shape[0] != n_u + 1 or model.item_counts_.shape[0] != n_i:
        raise ModelFileError(f"{path}: id maps and training arrays disagree in size")
    model.history_ = header.get("history", [])
    model.fit_seconds_ = header.get("fit_seconds")
    model._load_extra(header.get("extra", {}))
    model._check_loaded(path)
    return model

