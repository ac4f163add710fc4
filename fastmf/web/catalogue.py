"""The films the site shows: ids, titles, years, genres, rating statistics and a title index.

Built once per process from the catalogue's :class:`~fastmf.data_prep.dataset.Dataset` and
shared read-only by every request; the ratings themselves are not kept (only per-film counts,
means and variances). Title search uses an inverted index of normalised words (accents
removed, case folded): a sorted vocabulary searched by prefix with ``np.searchsorted`` and the
films of each word as one CSR row, so a query costs a few binary searches and set
intersections whatever the size of the catalogue (87k titles: well under a millisecond).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from fastmf.data_prep.dataset import Dataset

_YEAR = re.compile(r"\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_WORD = re.compile(r"[^\W_]+")
#: a code point above every character of a word: ``word + _TOP`` bounds the words starting with ``word``
_TOP = "\U0010ffff"
#: matches above this many are ranked by popularity only (no title-prefix boost, which costs a Python loop)
_BOOST_LIMIT = 5000


def words(text: str) -> list[str]:
    """The normalised words of ``text``: case folded, accents removed, split on anything not a letter or digit."""
    text = unicodedata.normalize("NFKD", text.casefold())
    return _WORD.findall("".join(c for c in text if not unicodedata.combining(c)))


@dataclass(frozen=True)
class SearchResult:
    items: list[int]  # catalogue indices, best first
    total: int  # how many films match in all


class Catalogue:
    """Per-film metadata and statistics of a dataset, indexed by position (``0..n-1``)."""

    def __init__(self, data: Dataset, label: str):
        self.label = label
        self.ids = data.item_map.ids
        self.n = len(self.ids)
        self.keys = [str(x) for x in self.ids.tolist()]
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.titles = [data.title_of(i) for i in range(self.n)]
        self.names, self.years = [], []
        for title in self.titles:
            m = _YEAR.search(title)
            self.names.append(title[: m.start()] if m else title)
            self.years.append(int(m.group(1)) if m else None)
        fptr, fidx, fnames = data.item_features()
        self.genres = [tuple(fnames[j] for j in fidx[fptr[i] : fptr[i + 1]]) for i in range(self.n)]
        self.rating_range = None if data.rating_range is None else tuple(data.rating_range)
        counts = np.bincount(data.indices, minlength=self.n).astype(np.int64)
        sums = np.bincount(data.indices, weights=data.data.astype(np.float64), minlength=self.n)
        squares = np.bincount(data.indices, weights=np.square(data.data, dtype=np.float64), minlength=self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.means = np.where(counts > 0, sums / counts, np.nan)
            self.variances = np.where(counts > 0, np.maximum(squares / counts - self.means**2, 0.0), np.nan)
        self.counts = counts
        self.n_ratings = int(data.n_ratings)
        self.n_users = int(data.n_users)
        self.popular = np.argsort(-counts, kind="stable")[:500]
        # share of films (with >= 10 ratings) whose rating variance is below each film's
        steady = counts >= 10
        ranked = np.sort(self.variances[steady])
        self.variance_percentile = np.where(
            steady, np.searchsorted(ranked, np.nan_to_num(self.variances), side="left") / max(1, ranked.size), np.nan
        )
        self._build_index()

    # ------------------------------------------------------------------ search
    def _build_index(self) -> None:
        self._norm_titles = [" ".join(words(name)) for name in self.names]
        vocab: dict[str, int] = {}
        word_of, item_of = [], []
        for i, title in enumerate(self.titles):
            for w in set(words(title)):
                word_of.append(vocab.setdefault(w, len(vocab)))
                item_of.append(i)
        names = sorted(vocab)
        rank = np.empty(len(names), dtype=np.int64)
        rank[[vocab[w] for w in names]] = np.arange(len(names))
        word_rank = rank[np.asarray(word_of, dtype=np.int64)] if word_of else np.zeros(0, dtype=np.int64)
        items = np.asarray(item_of, dtype=np.int32)
        order = np.lexsort((items, word_rank))
        self._vocab = np.asarray(names, dtype=str) if names else np.zeros(0, dtype="<U1")
        self._postings = items[order]
        self._indptr = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum(np.bincount(word_rank, minlength=len(names)), out=self._indptr[1:])

    def _matching(self, word: str) -> np.ndarray:
        """Films with a title word starting with ``word`` (sorted, unique)."""
        lo = int(np.searchsorted(self._vocab, word, side="left"))
        hi = int(np.searchsorted(self._vocab, word + _TOP, side="left"))
        hits = self._postings[self._indptr[lo] : self._indptr[hi]]
        return np.unique(hits) if hi - lo > 1 else hits

    def search(self, query: str, limit: int = 20, offset: int = 0) -> SearchResult:
        """Films whose title has, for every word of ``query``, a word starting with it; titles starting
        with the query first, then the most rated."""
        terms = words(query)
        if not terms:
            return SearchResult([], 0)
        hits = None
        for term in sorted(set(terms), key=len, reverse=True):
            found = self._matching(term)
            hits = found if hits is None else np.intersect1d(hits, found, assume_unique=True)
            if hits.size == 0:
                return SearchResult([], 0)
        key = -self.counts[hits].astype(np.float64)
        if hits.size <= _BOOST_LIMIT:
            phrase = " ".join(terms)
            key = (
                key
                - np.fromiter((self._norm_titles[i].startswith(phrase) for i in hits), dtype=bool, count=hits.size)
                * 1e12
            )
        order = np.argsort(key, kind="stable")
        page = hits[order[offset : offset + limit]]
        return SearchResult([int(i) for i in page], int(hits.size))

    # ------------------------------------------------------------------ lookups
    def find(self, key) -> int | None:
        """The catalogue index of item id ``key`` (text or number), or None."""
        return self.index.get(str(key).strip())

    def film(self, i: int) -> dict:
        """The plain facts of film ``i`` (JSON-ready)."""
        return {
            "id": self.ids[i].item(),
            "title": self.titles[i],
            "year": self.years[i],
            "genres": list(self.genres[i]),
            "ratings": int(self.counts[i]),
            "mean_rating": None if not self.counts[i] else round(float(self.means[i]), 3),
        }
