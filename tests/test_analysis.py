"""Data and model analyses: expected values from the raw CSV (``csv`` module) and brute-force NumPy."""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter, defaultdict

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import embedded_folder

from fastmf.cli import main
from fastmf.common.errors import FastMFError
from fastmf.data_prep.splits import random_split
from fastmf.drivers import analysis as A
from fastmf.models.als import ALS, BiasOnly


@pytest.fixture(scope="module")
def fitted(embedded):
    split = random_split(embedded, 0.1, 42)
    return ALS(factors=8, epochs=5).fit(split.train), split


@pytest.fixture(scope="module")
def movie_genres():
    """movieId -> listed genres, read from movies.csv."""
    with open(embedded_folder() / "movies.csv", newline="", encoding="utf-8") as fh:
        return {
            int(r["movieId"]): [g for g in r["genres"].split("|") if g != "(no genres listed)"]
            for r in csv.DictReader(fh)
        }


# --------------------------------------------------------------------------- data


def test_degree_fit_is_the_least_squares_line(embedded):
    fit = A.degree_fit(embedded.item_counts)
    by_degree = Counter(embedded.item_counts.tolist())
    x = np.log10(sorted(by_degree))
    y = np.log10([by_degree[k] for k in sorted(by_degree)])
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    assert fit["values"].tolist() == sorted(by_degree)


def test_genre_stats_match_the_csv(embedded, embedded_ref):
    ratings = defaultdict(list)
    for item, r in zip(embedded_ref.items.tolist(), embedded_ref.ratings.tolist()):
        ratings[item].append(r)
    per_genre = defaultdict(list)
    items_per_genre = Counter()
    for item, values in ratings.items():
        for g in embedded_ref.movies[item][1]:
            per_genre[g] += values
            items_per_genre[g] += 1
    got = A.genre_stats(embedded)
    assert sorted(got["names"]) == sorted(per_genre)
    for g, n, count, mean in zip(got["names"], got["n_items"], got["n_ratings"], got["mean_rating"]):
        assert n == items_per_genre[g] and count == len(per_genre[g])
        assert mean == pytest.approx(statistics.fmean(per_genre[g]))


def test_top_items_match_the_csv(embedded, embedded_ref):
    counts = Counter(embedded_ref.items.tolist())
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    got = A.top_items(embedded, 10)
    assert [(r["item_id"], r["ratings"]) for r in got] == expected
    assert got[0]["title"] == embedded_ref.movies[expected[0][0]][0]


def test_primary_genre_is_the_rarest_of_the_items_genres(embedded, movie_genres):
    frequency = Counter(g for genres in movie_genres.values() for g in set(genres))
    ids = embedded.item_map.ids[::7]
    got = A.primary_genres(embedded, ids)

    def rarest(genres):
        ranked = sorted(genres, key=lambda g: (g in A.FORMAT_TAGS, frequency[g], g))
        return ranked[0] if ranked else A.NO_GENRE

    assert got.tolist() == [rarest(movie_genres[i]) for i in ids.tolist()]
    assert A.primary_genres(embedded, np.array([-5]))[0] == A.NO_GENRE
    by_id = dict(zip([1, 260, 2571, 296], A.primary_genres(embedded, [1, 260, 2571, 296])))
    # Toy Story, Star Wars IV, The Matrix, Pulp Fiction: not their alphabetically first genre
    assert by_id == {1: "Animation", 260: "Sci-Fi", 2571: "Sci-Fi", 296: "Crime"}


def test_primary_genre_is_spread_over_genres_not_mostly_action(embedded):
    """On main the map's colour was the alphabetically first genre: half the popular films were Action."""
    popular = embedded.item_map.ids[embedded.item_counts >= 100]
    counts = Counter(A.primary_genres(embedded, popular).tolist())
    assert counts.most_common(1)[0][1] < 0.3 * popular.size
    assert "IMAX" not in counts  # a release format, chosen only for items without another genre


def test_primary_genre_without_an_items_table_uses_the_feature_matrix(embedded):
    from fastmf.data_prep.dataset import Dataset

    bare = Dataset(
        embedded.user_map,
        embedded.item_map,
        embedded.indptr,
        embedded.indices,
        embedded.data,
        feature_indptr=embedded.feature_indptr,
        feature_indices=embedded.feature_indices,
        feature_names=embedded.feature_names,
    )
    fptr, fidx, names = embedded.item_features()
    frequency = np.bincount(fidx, minlength=len(names))
    ids = embedded.item_map.ids[::11]
    want = []
    for i in embedded.item_map.index_of(ids).tolist():
        genres = [names[f] for f in fidx[fptr[i] : fptr[i + 1]]]
        ranked = sorted(genres, key=lambda g: (g in A.FORMAT_TAGS, frequency[names.index(g)], g))
        want.append(ranked[0] if ranked else A.NO_GENRE)
    assert A.primary_genres(bare, ids).tolist() == want


# --------------------------------------------------------------------------- power law


def discrete_power_law(rng, alpha, xmin, n):
    """Integers whose tail P(X >= x) is ((x - 1/2) / (xmin - 1/2))^(1 - alpha) (inverse transform)."""
    u = rng.random(n)
    return np.floor((xmin - 0.5) * (1.0 - u) ** (-1.0 / (alpha - 1.0)) + 0.5).astype(np.int64)


def test_power_law_alpha_is_the_clauset_estimator():
    x = discrete_power_law(np.random.default_rng(3), 2.3, 5, 4000)
    x = np.concatenate([x, [1, 2, 3, 4, 0, 0]])
    fit = A.power_law_fit(x, xmin=5)
    tail = x[x >= 5].astype(float)
    assert fit["alpha"] == pytest.approx(1 + tail.size / np.sum(np.log(tail / 4.5)), rel=1e-12)
    assert fit["n_tail"] == tail.size and fit["n"] == np.sum(x > 0) and fit["xmin"] == 5
    assert fit["sigma"] == pytest.approx((fit["alpha"] - 1) / np.sqrt(tail.size))
    # the KS distance by brute force over every integer of the tail's range
    grid = np.arange(5, tail.max() + 2)
    emp = np.array([np.mean(tail <= k) for k in grid])
    model = 1 - ((grid + 0.5) / 4.5) ** (1 - fit["alpha"])
    assert fit["ks"] == pytest.approx(np.max(np.abs(emp - model)), abs=1e-12)


@pytest.mark.parametrize("alpha, xmin", [(1.8, 10), (2.5, 20), (3.2, 6)])
def test_power_law_fit_recovers_exponent_and_lower_bound(alpha, xmin):
    rng = np.random.default_rng(int(alpha * 10))
    tail = discrete_power_law(rng, alpha, xmin, 6000)
    head = rng.integers(1, xmin, 3000)  # not a power law below xmin
    fit = A.power_law_fit(np.concatenate([head, tail]))
    assert abs(fit["alpha"] - alpha) < 4 * fit["sigma"] + 0.02
    assert 0.6 * xmin <= fit["xmin"] <= 1.6 * xmin
    assert fit["ks"] < 0.03


def test_power_law_line_goes_through_the_user_activity_tail(embedded):
    """The figure's line is the fitted CCDF: it meets the data at xmin and stays near it (on main the
    least-squares line through the histogram missed the points by a factor of 3)."""
    fit = A.degree_fit(embedded.user_counts)
    pl = fit["power_law"]
    assert np.isfinite(pl["alpha"]) and 1.2 < pl["alpha"] < 4 and pl["n_tail"] >= A.MIN_TAIL
    tail = fit["values"] >= pl["xmin"]
    model = A.power_law_ccdf(pl, fit["values"][tail])
    assert model[0] == pytest.approx(fit["ccdf"][tail][0])
    assert np.max(np.abs(model - fit["ccdf"][tail])) <= pl["ks"] * pl["n_tail"] / pl["n"] + 1e-9
    # the empirical CCDF, P(X >= k), from the raw counts
    counts = embedded.user_counts
    assert fit["ccdf"].tolist() == pytest.approx([np.mean(counts >= k) for k in fit["values"]])


def test_power_law_fit_of_degenerate_data():
    assert np.isnan(A.power_law_fit(np.array([5, 5, 5]))["alpha"])
    assert np.isnan(A.power_law_fit(np.array([], dtype=int))["alpha"])
    small = A.power_law_fit(np.array([1, 1, 2, 3, 8]))
    assert small["xmin"] == 1 and small["n_tail"] == 5 and np.isfinite(small["alpha"])


# --------------------------------------------------------------------------- model


def test_pca_matches_the_covariance_eigenvectors():
    x = np.random.default_rng(0).normal(size=(200, 6)) @ np.diag([3, 2, 1, 0.5, 0.2, 0.1])
    coords, explained = A.pca_2d(x)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(centred.T))
    top = vectors[:, ::-1][:, :2]
    for j in range(2):
        ref = centred @ top[:, j]
        assert np.allclose(np.abs(coords[:, j]), np.abs(ref)) and abs(np.corrcoef(coords[:, j], ref)[0, 1]) > 0.999
    assert explained == pytest.approx(values[::-1][:2] / values.sum())


def test_embedding_map_shifts_by_item_bias(fitted, embedded):
    model, _ = fitted
    emb = A.embedding_map(model, embedded, min_ratings=50)
    assert np.array_equal(emb["items"], np.flatnonzero(model.item_counts_ >= 50))
    coords, _ = A.pca_2d(model.item_factors_[emb["items"]])
    assert np.allclose(emb["x"], coords[:, 0] + 0.1 * model.item_bias_[emb["items"]])
    assert np.allclose(emb["y"], coords[:, 1])
    assert (emb["genre"] != A.NO_GENRE).all()
    with pytest.raises(FastMFError, match="lower --min-ratings"):
        A.embedding_map(model, embedded, min_ratings=10**6)


def test_embedding_map_refuses_factors_shrunk_to_zero(fitted, embedded):
    """VI's fixed report setting leaves item factors of about 1e-10: their PCA would be rounding noise."""
    import copy

    model = copy.copy(fitted[0])
    model.item_factors_ = fitted[0].item_factors_ * np.float32(1e-10)
    with pytest.raises(FastMFError, match="all zero"):
        A.embedding_map(model, embedded, min_ratings=50)


def test_polarizing_lists_match_brute_force(fitted, embedded, embedded_ref):
    model, _ = fitted
    result = A.polarizing(model, embedded, min_ratings=100, k=5)
    norms = {
        model.item_map_.ids[i]: float(np.sqrt(np.sum(model.item_factors_[i].astype(float) ** 2)))
        for i in range(model.n_items)
        if model.item_counts_[i] >= 100
    }
    ranked = sorted(norms, key=lambda i: -norms[i])
    assert [r["item_id"] for r in result["largest_norm"]] == ranked[:5]
    assert [r["item_id"] for r in result["smallest_norm"]] == ranked[::-1][:5]
    assert result["largest_norm"][0]["value"] == pytest.approx(norms[ranked[0]], rel=1e-5)
    by_item = defaultdict(list)
    for item, r in zip(embedded_ref.items.tolist(), embedded_ref.ratings.tolist()):
        by_item[item].append(r)
    variances = {i: statistics.pvariance(v) for i, v in by_item.items() if len(v) >= 100}
    top = sorted(variances, key=lambda i: -variances[i])[:5]
    assert [r["item_id"] for r in result["largest_variance"]] == top
    assert [r["value"] for r in result["largest_variance"]] == pytest.approx([variances[i] for i in top])
    assert result["largest_variance"][0]["ratings"] == len(by_item[top[0]])


def test_similar_items_by_cosine(fitted):
    model, _ = fitted
    q = int(np.argmax(model.item_counts_))
    got = A.similar_items(model, q, k=5, min_ratings=20)
    v = model.item_factors_.astype(float)
    cos = {
        j: float(v[j] @ v[q] / np.linalg.norm(v[j]) / np.linalg.norm(v[q]))
        for j in range(model.n_items)
        if j != q and model.item_counts_[j] >= 20
    }
    best = sorted(cos, key=lambda j: -cos[j])[:5]
    assert [r["item_id"] for r in got] == model.item_map_.ids[best].tolist()
    assert [r["similarity"] for r in got] == pytest.approx([cos[j] for j in best], rel=1e-5)


def test_bias_only_model_has_no_factors_to_analyse(fitted):
    _, split = fitted
    bias = BiasOnly(epochs=2).fit(split.train)
    with pytest.raises(FastMFError, match="no item factors"):
        A.polarizing(bias, split.train)


# --------------------------------------------------------------------------- command


@pytest.fixture(scope="module")
def model_dir(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("analysis") / "als"
    fitted[0].save(str(path))
    return str(path)


def test_cli_analyze_polarizing_and_similar(model_dir, fitted):
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "analyze",
            model_dir,
            "--polarizing",
            "-k",
            "4",
            "--similar",
            "Toy Story (1995)",
            "--min-ratings",
            "50",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [len(out["polarizing"][key]) for key in ("largest_norm", "smallest_norm", "largest_variance")] == [4] * 3
    assert out["similar"]["item_id"] == 1 and len(out["similar"]["items"]) == 4
    text = runner.invoke(main, ["analyze", model_dir, "--polarizing", "-k", "3"])
    assert text.exit_code == 0
    assert "largest factor norm" in text.stdout and "largest rating variance" in text.stdout
    assert (
        out["polarizing"]["largest_norm"][0]["title"][:20]
        in runner.invoke(main, ["analyze", model_dir, "--polarizing", "-k", "4", "--min-ratings", "50"]).stdout
    )


def test_data_with_other_items_is_refused(fitted, embedded):
    from fastmf.data_prep.dataset import build_dataset
    from fastmf.data_prep.synth import SynthConfig, generate

    model, _ = fitted
    A.check_same_items(model, embedded)
    synth = generate(SynthConfig(users=60, items=40, ratings=1500, seed=1))
    other = build_dataset(synth.ratings_table(), synth.items, source="synthetic")
    with pytest.raises(FastMFError, match="do not match the model"):
        A.check_same_items(model, other)


def test_cli_analyze_errors(model_dir, tmp_path):
    runner = CliRunner()
    cases = [
        (["analyze", model_dir], "--polarizing"),
        (["analyze", model_dir, "--similar", "no such film at all"], "no item id or title"),
        (["analyze", str(tmp_path / "nope"), "--polarizing"], "no such model file"),
    ]
    for args, message in cases:
        res = runner.invoke(main, args)
        assert res.exit_code == 1 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1
