"""The served model: loaded once per process, shared read-only, replaced atomically.

A :class:`Served` snapshot holds one loaded model with everything derived from it (the map
between the catalogue's films and the model's items, unit item vectors for "closest to"),
and is never changed after it is built. Requests take the current snapshot once
(:meth:`Engine.current`) and use only it, so a request never mixes two models. When a
training job replaces the model file (one ``os.replace``, see :mod:`fastmf.models.io`), every
process notices on its next check of the file (at most once a second), loads the new file in a
background thread while the old snapshot keeps serving, and then swaps one reference: no
request ever sees a half-loaded model, and none waits for the load.

Recommendations fold the user's stored ratings into the served model (``model.fold_in``: one
small linear solve against the fixed item factors, no retraining), so they follow every new
rating on the next page load.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from fastmf.common.errors import FastMFError
from fastmf.common.threads import n_threads, set_threads
from fastmf.data_prep.dataset import embedded_path, load_dataset
from fastmf.models.base import Recommender
from fastmf.models.vi import STRATEGIES, Z90
from fastmf.registry import load_model
from fastmf.web.catalogue import Catalogue
from fastmf.web.env import catalogue_slug

log = logging.getLogger("fastmf.web")

#: the ranking strategies a VI model offers on the recommendations page
VI_STRATEGIES = STRATEGIES
#: catalogue films offered to a user without ratings, and rated films excluded from them at most
POPULAR = 500


class ServeError(FastMFError):
    """The model or catalogue cannot be served (one line saying why)."""


def file_stamp(path: str) -> tuple | None:
    """What identifies one version of the file at ``path`` (an ``os.replace`` changes it), None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def model_key(kind: str, stamp) -> str:
    """A name of one version of a model file (for the figures drawn from it)."""
    return f"{kind}-{stamp[0]:x}-{stamp[2]:x}" if stamp else f"{kind}-unsaved"


def half_stars(lo: float, hi: float) -> list[float]:
    """The ratings a user may give: multiples of 0.5 within the model's training scale."""
    first = np.ceil(lo * 2) / 2
    return [float(x) for x in np.arange(first, hi + 1e-9, 0.5)]


@contextlib.contextmanager
def one_thread():
    """Numba's kernels on one thread while serving a request (the setting is per thread; restored after)."""
    before = n_threads()
    if before != 1:
        set_threads(1)
    try:
        yield
    finally:
        if before != 1:
            set_threads(before)


def limit_blas_threads() -> None:
    """One BLAS thread per request: the server's threads share the cores (a 84k x 20 product takes 0.2 ms
    on one thread and, on a busy machine, several ms when BLAS wakes its own pool for it)."""
    try:
        from threadpoolctl import threadpool_limits  # optional: part of the web extra
    except ImportError:  # pragma: no cover - the web extra installs it
        return
    threadpool_limits(1, user_api="blas")


@dataclass(frozen=True)
class Recommendation:
    index: int  # catalogue index
    score: float  # the ranking score (the predicted rating for the mean strategy)
    mean: float | None = None  # predicted rating
    low: float | None = None  # central 90% predictive interval (VI)
    high: float | None = None
    near: int | None = None  # the closest of the user's rated films (catalogue index)
    near_cosine: float | None = None
    near_rating: float | None = None


@dataclass(frozen=True)
class Recommendations:
    items: list
    kind: str  # "personal" or "popular"
    used: int = 0  # ratings folded in
    unknown: int = 0  # ratings of films the served model does not know
    strategy: str = "mean"
    extra: dict = field(default_factory=dict)


def check_servable(model: Recommender, path: str) -> None:
    """A ServeError unless the site can serve ``model``: a rating model with item factors (a training
    job checks this before it replaces the served file)."""
    factors = getattr(model, "item_factors_", None)
    if not model.rating_model or factors is None or np.ndim(factors) != 2 or factors.shape[1] == 0:
        what = f"'{model.kind}' model" + (" without factors" if model.rating_model and factors is not None else "")
        raise ServeError(
            f"{path}: the web application serves rating models with item factors (als, "
            f"features, vi; factors >= 1); this is a {what}"
        )


class Served:
    """One loaded model with its catalogue and the arrays derived from both (read-only)."""

    def __init__(self, model: Recommender, catalogue: Catalogue, path: str, stamp):
        check_servable(model, path)
        factors = model.item_factors_
        self.model, self.catalogue, self.path, self.stamp = model, catalogue, path, stamp
        self.loaded_at = time.time()
        self.key = model_key(model.kind, stamp)
        self.is_vi = model.kind == "vi"
        self.to_model = model.item_map_.index_of(catalogue.ids).astype(np.int64)
        known = self.to_model >= 0
        if not known.any():
            raise ServeError(
                f"{path}: the model knows none of the {catalogue.n:,} films of the catalogue "
                f"({catalogue.label}): serve it with the data it was trained on (--data)"
            )
        self.to_catalogue = np.full(model.n_items, -1, dtype=np.int64)
        self.to_catalogue[self.to_model[known]] = np.flatnonzero(known)
        v = np.asarray(factors, dtype=np.float32)
        self.norms = np.linalg.norm(v.astype(np.float64), axis=1)
        self.unit = v / np.where(self.norms > 0, self.norms, 1.0)[:, None].astype(np.float32)
        ranked = np.sort(self.norms)
        self.norm_percentile = np.searchsorted(ranked, self.norms, side="left") / max(1, ranked.size)
        scale = getattr(model, "rating_range_", None) or catalogue.rating_range or (0.5, 5.0)
        self.rating_range = (float(scale[0]), float(scale[1]))
        self.steps = half_stars(*self.rating_range)

    # ------------------------------------------------------------------ ratings
    def check_rating(self, value) -> float:
        """``value`` as a rating on the served scale (half stars), or a ServeError saying what is allowed."""
        lo, hi = self.rating_range
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ServeError(f"a rating must be a number of stars from {lo:g} to {hi:g}, got {value!r}") from None
        if not (np.isfinite(x) and lo <= x <= hi and x * 2 == int(x * 2)):
            raise ServeError(f"a rating must be from {lo:g} to {hi:g} stars in half stars, got {value!r}")
        return x

    def model_id(self, i: int):
        """The model's id of catalogue film ``i`` (None when the model does not know it)."""
        return None if self.to_model[i] < 0 else self.model.item_map_.ids[self.to_model[i]].item()

    def _fold(self, ratings: dict) -> tuple[dict, list, int]:
        """``({model item id: rating}, [catalogue indices], unknown count)`` of ratings keyed by catalogue id."""
        fold, rated, unknown = {}, [], 0
        for key, value in ratings.items():
            i = self.catalogue.find(key)
            mid = None if i is None else self.model_id(i)
            if mid is None:
                unknown += 1
                continue
            fold[mid] = float(value)
            rated.append(i)
        return fold, rated, unknown

    # ------------------------------------------------------------------ recommendations
    def recommend(
        self, ratings: dict, k: int = 20, strategy: str = "mean", min_ratings: int = 0, seed: int | None = None
    ) -> Recommendations:
        """The ``k`` best films for a user who gave ``ratings`` ({catalogue id: stars}), folded into the
        served model; the most rated films when none of the ratings is of a film the model knows."""
        if strategy not in VI_STRATEGIES:
            raise ServeError(f"unknown strategy '{strategy}' (choose from {', '.join(VI_STRATEGIES)})")
        if strategy != "mean" and not self.is_vi:
            raise ServeError(
                f"the strategy '{strategy}' needs a VI model; the served model is '{self.model.kind}' (strategy: mean)"
            )
        fold, rated, unknown = self._fold(ratings)
        if not fold:
            return self.popular(k, exclude=ratings, unknown=unknown)
        options = {"k": k, "min_item_ratings": min_ratings}
        if self.is_vi:
            options.update(strategy=strategy, seed=seed)
        with one_thread():
            ids, scores = self.model.fold_in(fold, **options)
            if self.is_vi:
                mean, sd = self.model.fold_in_predict(fold, ids, return_std=True)
                low, high = (np.clip(x, *self.rating_range) for x in (mean - Z90 * sd, mean + Z90 * sd))
            else:
                mean, low, high = scores, None, None
            mean = np.clip(mean, *self.rating_range)
        idx = self.model.item_map_.index_of(ids)
        given = self.model.item_map_.index_of(np.asarray(list(fold)))
        cosines = self.unit[idx] @ self.unit[given].T
        near = cosines.argmax(axis=1)
        values = list(fold.values())
        items = []
        for r, j in enumerate(idx):
            items.append(
                Recommendation(
                    index=int(self.to_catalogue[j]),
                    score=float(scores[r]),
                    mean=float(mean[r]),
                    low=None if low is None else float(low[r]),
                    high=None if high is None else float(high[r]),
                    near=rated[near[r]],
                    near_cosine=float(cosines[r, near[r]]),
                    near_rating=values[near[r]],
                )
            )
        items = [x for x in items if x.index >= 0]
        return Recommendations(items, "personal", used=len(fold), unknown=unknown, strategy=strategy)

    def popular(self, k: int, exclude=(), unknown: int = 0) -> Recommendations:
        """The ``k`` most rated catalogue films, without those in ``exclude`` (catalogue ids)."""
        skip = {self.catalogue.find(key) for key in exclude}
        items = [
            Recommendation(index=int(i), score=float(self.catalogue.counts[i]))
            for i in self.catalogue.popular
            if int(i) not in skip
        ][:k]
        return Recommendations(items, "popular", unknown=unknown)

    def similar(self, i: int, k: int = 10, min_ratings: int = 0) -> list[tuple[int, float]]:
        """``(catalogue index, cosine)`` of the ``k`` films closest to film ``i`` in the model's item space."""
        mid = self.model_id(i)
        if mid is None or self.norms[self.to_model[i]] == 0:
            return []
        with one_thread():
            ids, sims = self.model.similar_items(mid, k=k, min_item_ratings=min_ratings)
        idx = self.to_catalogue[self.model.item_map_.index_of(ids)]
        return [(int(j), float(s)) for j, s in zip(idx, sims) if j >= 0]

    def factor_norm(self, i: int) -> tuple[float, float] | None:
        """``(|V_i|, share of the model's films with a shorter vector)`` of film ``i``, None if unknown."""
        j = self.to_model[i]
        return None if j < 0 else (float(self.norms[j]), float(self.norm_percentile[j]))

    def describe(self) -> dict:
        """The served model's kind, settings and training summary (for the training page and the API)."""
        m = self.model
        history = getattr(m, "history_", []) or []
        return {
            "kind": m.kind,
            "params": m.get_params(),
            "path": self.path,
            "items": m.n_items,
            "users": m.n_users,
            "factors": int(m.item_factors_.shape[1]),
            "epochs_run": len(history),
            "last_epoch": history[-1] if history else None,
            "rating_range": list(self.rating_range),
            "fit_seconds": getattr(m, "fit_seconds_", None),
            "loaded_at": self.loaded_at,
        }


class Engine:
    """The catalogue (loaded once) and the current :class:`Served` model of this process."""

    def __init__(
        self,
        model_path: str,
        data_path: str | None,
        check_seconds: float = 1.0,
        catalogue: Catalogue | None = None,
        limit_blas: bool = True,
    ):
        self.model_path = str(model_path)
        self.data_path = data_path
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._catalogue_lock = threading.Lock()
        self._served: Served | None = None
        self._catalogue = catalogue
        self._checked = 0.0
        self._reloading = False
        self._failed_stamp = None
        if limit_blas:
            limit_blas_threads()

    @property
    def label(self) -> str:
        return catalogue_slug(self.data_path)

    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            with self._catalogue_lock:
                if self._catalogue is None:
                    self._catalogue = load_catalogue(self.data_path)
        return self._catalogue

    def current(self) -> Served:
        """The served snapshot (loaded on first use; a replaced model file is picked up in the background)."""
        served = self._served
        if served is None:
            with self._lock:
                if self._served is None:
                    self._served = self._load()
                served = self._served
            self._checked = time.monotonic()
        elif time.monotonic() - self._checked >= self.check_seconds:
            self._checked = time.monotonic()
            stamp = file_stamp(self.model_path)
            if stamp is not None and stamp != served.stamp and stamp != self._failed_stamp and not self._reloading:
                self._reloading = True
                threading.Thread(target=self._reload_in_background, name="fastmf-model-reload", daemon=True).start()
        return served

    def reload(self) -> Served:
        """Load the model file now and serve it (a training job of this process calls this when it is done)."""
        served = self._load()
        self._served = served  # one reference assignment: requests see the old or the new snapshot
        return served

    def _reload_in_background(self) -> None:
        try:
            served = self.reload()
            log.info("serving the replaced model %s (%s)", self.model_path, served.key)
        except FastMFError as exc:  # keep serving the previous model; say why once per file version
            self._failed_stamp = file_stamp(self.model_path)
            log.error("the replaced model file cannot be served, keeping the previous one: %s", exc)
        finally:
            self._reloading = False

    def _load(self) -> Served:
        stamp = file_stamp(self.model_path)
        if stamp is None:
            raise ServeError(f"{self.model_path}: no such model file")
        model = load_model(self.model_path)
        return Served(model, self.catalogue(), self.model_path, stamp)


def load_catalogue(data_path: str | None) -> Catalogue:
    """The catalogue of ``data_path`` (None: the bundled ml-latest-small)."""
    data = load_dataset(data_path)
    if data.implicit:
        raise ServeError(f"{data_path}: an implicit (user, item) table has no ratings to show or fold in")
    return Catalogue(data, catalogue_slug(data_path))


def catalogue_source(data_path: str | None) -> str:
    """The folder or file the catalogue is read from."""
    return str(Path(data_path).resolve()) if data_path else embedded_path()


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """This process's engine, made from the settings on first use."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = Engine(settings.FASTMF_MODEL, settings.FASTMF_DATA, settings.FASTMF_MODEL_CHECK_SECONDS)
    return _ENGINE


def set_engine(engine: Engine | None) -> None:
    """Serve ``engine`` from now on (None: make one from the settings on next use)."""
    global _ENGINE
    _ENGINE = engine
