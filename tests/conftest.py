"""Shared fixtures of the data-layer tests.

The expected values of every test come from the fixture files themselves, read
here with the standard library only (``csv``, ``str.split``): never from fastmf.

* ``tests/fixtures/<release>/`` hold tiny rating sets written in exactly the
  layout of each MovieLens release (ml-100k, ml-1m, ml-10M100K, ml-20m); zip
  versions are built at test time (:func:`make_zip`), never committed.
* The embedded ml-latest-small copy is loaded once per session (``embedded``)
  and parsed independently with the ``csv`` module (``embedded_ref``).
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
NO_GENRES = "(no genres listed)"

# Published counts of ml-latest-small (shared/docs/datasets.md).
ML_LATEST_SMALL = {"ratings": 100_836, "users": 610, "rated_items": 9_724, "listed_items": 9_742}


# --------------------------------------------------------------------------- reference parsers


@dataclass
class Reference:
    """What a fixture holds, read without fastmf."""

    ratings: list  # (user id, item id, rating, timestamp or None) in file order
    movies: dict = field(default_factory=dict)  # item id -> (title, sorted genre tuple)

    @property
    def users(self) -> set:
        return {r[0] for r in self.ratings}

    @property
    def items(self) -> set:
        return {r[1] for r in self.ratings}

    def triples(self) -> list:
        return sorted(self.ratings)


def _decode(data: bytes) -> str:
    """Text of a MovieLens metadata file: UTF-8 when valid, else latin-1 (ml-100k, ml-1m)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _genres(text: str) -> tuple:
    return tuple(sorted(g for g in text.split("|") if g and g != NO_GENRES))


def parse_ml100k(folder: Path) -> Reference:
    ratings = []
    for line in (folder / "u.data").read_text().splitlines():
        u, i, r, t = line.split("\t")
        ratings.append((int(u), int(i), float(r), int(t)))
    names = [ln.rsplit("|", 1)[0] for ln in (folder / "u.genre").read_text().splitlines() if ln.strip()]
    movies = {}
    for line in (folder / "u.item").read_bytes().decode("latin-1").splitlines():
        f = line.split("|")
        flags = f[5:]
        assert len(flags) == len(names) == 19
        # ml-100k's "unknown" genre is its "(no genres listed)": the movie has no genre
        movies[int(f[0])] = (f[1], tuple(sorted(n for n, x in zip(names, flags) if x == "1" and n != "unknown")))
    return Reference(ratings, movies)


def parse_ml_dat(folder: Path) -> Reference:
    ratings = []
    for line in (folder / "ratings.dat").read_text().splitlines():
        u, i, r, t = line.split("::")
        ratings.append((int(u), int(i), float(r), int(t)))
    movies = {}
    for line in _decode((folder / "movies.dat").read_bytes()).splitlines():
        mid, title, genres = line.split("::")
        movies[int(mid)] = (title, _genres(genres))
    return Reference(ratings, movies)


def parse_ml_csv(folder: Path) -> Reference:
    with open(folder / "ratings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ratings = [(int(r["userId"]), int(r["movieId"]), float(r["rating"]), int(r["timestamp"])) for r in rows]
    movies = {}
    if (folder / "movies.csv").exists():
        with open(folder / "movies.csv", newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                movies[int(r["movieId"])] = (r["title"], _genres(r["genres"]))
    return Reference(ratings, movies)


RELEASES = {
    # fixture folder: (parser, top folder of the real zip, rating scale the loader must report)
    # ml-1m shares ratings.dat with ml-10m and cannot be told apart from it, so its
    # scale is only checked to contain 1..5.
    "ml-100k": (parse_ml100k, "ml-100k", (1.0, 5.0)),
    "ml-1m": (parse_ml_dat, "ml-1m", None),
    "ml-10M100K": (parse_ml_dat, "ml-10M100K", (0.5, 5.0)),
    "ml-20m": (parse_ml_csv, "ml-20m", (0.5, 5.0)),
}


def reference(release: str) -> Reference:
    return RELEASES[release][0](FIXTURES / release)


# --------------------------------------------------------------------------- zips


def make_zip(src: Path, dest: Path, top: str | None = None) -> Path:
    """Zip the files of ``src``; with ``top`` the members sit under ``top/`` as in the real releases."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        if top:
            zf.writestr(top + "/", "")
        for f in sorted(Path(src).iterdir()):
            if f.is_file():
                zf.write(f, f"{top}/{f.name}" if top else f.name)
    return dest


# --------------------------------------------------------------------------- dataset helpers


def dataset_triples(d) -> list:
    """(user id, item id, rating, timestamp) of every rating of a Dataset, sorted."""
    users = d.user_map.ids[d.user_of_entry].tolist()
    items = d.item_map.ids[d.indices].tolist()
    ts = d.timestamps.tolist() if d.timestamps is not None else [None] * d.n_ratings
    return sorted(zip(users, items, d.data.astype(float).tolist(), ts))


def genres_of(d, item_id) -> tuple:
    i = d.item_map.index(item_id)
    lo, hi = d.feature_indptr[i], d.feature_indptr[i + 1]
    return tuple(sorted(d.feature_names[k] for k in d.feature_indices[lo:hi]))


# --------------------------------------------------------------------------- embedded ml-latest-small


@dataclass
class EmbeddedRef:
    users: np.ndarray  # int64 ids per rating, file order
    items: np.ndarray
    ratings: np.ndarray  # float64
    timestamps: np.ndarray
    rating_text: list  # the rating column as written
    movies: dict  # movieId -> (title, genres)


def embedded_folder() -> Path:
    import fastmf.datasets

    return Path(os.path.dirname(fastmf.datasets.__file__)) / "ml-latest-small"


@pytest.fixture(scope="session")
def embedded_ref() -> EmbeddedRef:
    folder = embedded_folder()
    with open(folder / "ratings.csv", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["userId", "movieId", "rating", "timestamp"]
        rows = list(reader)
    users = np.array([int(r[0]) for r in rows], dtype=np.int64)
    items = np.array([int(r[1]) for r in rows], dtype=np.int64)
    text = [r[2] for r in rows]
    ratings = np.array([float(x) for x in text])
    ts = np.array([int(r[3]) for r in rows], dtype=np.int64)
    movies = {}
    with open(folder / "movies.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            movies[int(r["movieId"])] = (r["title"], _genres(r["genres"]))
    return EmbeddedRef(users, items, ratings, ts, text, movies)


@pytest.fixture(scope="session")
def embedded():
    """``fastmf.load_dataset()`` once per session (tests must not modify it)."""
    import fastmf

    return fastmf.load_dataset()


@pytest.fixture(scope="session")
def embedded_scipy(embedded_ref):
    """The embedded ratings as scipy CSR built from the raw CSV (ids mapped in sorted order)."""
    import scipy.sparse as sp

    uids, urow = np.unique(embedded_ref.users, return_inverse=True)
    iids, icol = np.unique(embedded_ref.items, return_inverse=True)
    shape = (uids.size, iids.size)
    ratings = sp.coo_matrix((embedded_ref.ratings, (urow, icol)), shape=shape).tocsr()
    times = sp.coo_matrix((embedded_ref.timestamps, (urow, icol)), shape=shape).tocsr()
    for m in (ratings, times):
        m.sort_indices()
    return {"user_ids": uids, "item_ids": iids, "ratings": ratings, "timestamps": times}
