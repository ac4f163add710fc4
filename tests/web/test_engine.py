"""The engine under the pages: title search, the rating scale, fold-in recommendations with their
"closest to", the models it refuses, and the atomic swap of a replaced model file under load."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from web_support import MODELS

import fastmf
from fastmf.web.catalogue import Catalogue, words
from fastmf.web.engine import Engine, Served, ServeError, file_stamp, half_stars


def test_words_fold_case_and_accents():
    assert words("Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)") == [
        "amelie",
        "fabuleux",
        "destin",
        "d",
        "amelie",
        "poulain",
        "le",
        "2001",
    ]
    assert words("  WALL·E ") == ["wall", "e"]
    assert words("!!!") == []


def test_search_matches_every_word_by_prefix_best_known_first(catalogue):
    c = catalogue
    result = c.search("toy story")
    assert [c.titles[i] for i in result.items] == ["Toy Story (1995)", "Toy Story 2 (1999)", "Toy Story 3 (2010)"]
    assert result.total == 3
    assert c.search("TOY sto").items == result.items
    assert c.search("sto toy").items == result.items  # word order does not matter
    amelie = ["Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)"]
    assert [c.titles[i] for i in c.search("amélie poulain").items] == amelie
    assert [c.titles[i] for i in c.search("AMELIE POUL").items] == amelie
    assert c.search("zzzzqqq").total == 0 and c.search("").total == 0 and c.search("  ,; ").total == 0
    # a broad query: ranked by number of ratings, paged
    the = c.search("the", limit=5)
    counts = [c.counts[i] for i in the.items]
    assert the.total > 1000 and counts == sorted(counts, reverse=True)
    assert c.search("the", limit=5, offset=5).items[0] not in the.items


def test_search_ranks_titles_starting_with_the_query_first(catalogue):
    c = catalogue
    items = c.search("star wars").items
    assert all(c.titles[i].startswith("Star Wars") for i in items[:5])


def test_catalogue_statistics_match_the_ratings(catalogue):
    data = fastmf.load_dataset()
    c = catalogue
    i = c.find(1)
    stars = data.data[data.indices == data.item_map.index(1)].astype(np.float64)
    assert c.counts[i] == stars.size == 215
    assert c.means[i] == pytest.approx(stars.mean())
    assert c.variances[i] == pytest.approx(stars.var())
    assert c.years[i] == 1995 and c.names[i] == "Toy Story" and "Animation" in c.genres[i]
    assert c.find("1") == i and c.find(" 1 ") == i and c.find("nope") is None


def test_half_stars_and_the_rating_check(models, catalogue):
    assert half_stars(0.5, 5.0) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert half_stars(1, 5)[0] == 1.0 and half_stars(0.7, 2) == [1.0, 1.5, 2.0]
    s = Served(fastmf.load_model(models["als"]), catalogue, models["als"], file_stamp(models["als"]))
    assert s.check_rating("4.5") == 4.5 and s.check_rating(0.5) == 0.5
    for bad in (0, 5.5, 4.3, -1, "abc", "nan", "inf", None, [4]):
        with pytest.raises(ServeError, match="0.5 to 5"):
            s.check_rating(bad)


def test_a_ranker_or_an_unrelated_model_is_refused(models, catalogue):
    with pytest.raises(ServeError, match="rating models with item factors.*'bpr'"):
        Served(fastmf.load_model(models["bpr"]), catalogue, models["bpr"], None)
    data = fastmf.Dataset.from_arrays([1, 1, 2], [10**9, 10**9 + 1, 10**9], [4.0, 3.0, 5.0])
    other = fastmf.ALS(factors=2, epochs=1).fit(data)
    with pytest.raises(ServeError, match="knows none of the 9,724 films"):
        Served(other, catalogue, "other", None)
    with pytest.raises(ServeError, match="no such model file"):
        Engine(str(MODELS / "missing.fastmf"), None, catalogue=catalogue, limit_blas=False).current()


def test_recommendations_are_the_fold_in_of_the_ratings(models, catalogue):
    model = fastmf.load_model(models["als"])
    s = Served(model, catalogue, models["als"], file_stamp(models["als"]))
    ratings = {"1": 5.0, "3114": 4.5, "2571": 2.0, "999999999": 4.0}  # the last one is no film
    recs = s.recommend(ratings, k=10)
    assert recs.kind == "personal" and recs.used == 3 and recs.unknown == 1
    ids, scores = model.fold_in({1: 5.0, 3114: 4.5, 2571: 2.0}, k=10)
    assert [catalogue.ids[r.index] for r in recs.items] == list(ids)
    np.testing.assert_allclose([r.mean for r in recs.items], scores, rtol=1e-6)
    v = model.item_factors_.astype(np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rated = model.item_map_.index_of(np.array([1, 3114, 2571]))
    for r in recs.items:
        cos = v[rated] @ v[model.item_map_.index(catalogue.ids[r.index])]
        assert catalogue.ids[r.near] == [1, 3114, 2571][int(cos.argmax())]
        assert r.near_cosine == pytest.approx(cos.max(), abs=1e-5)
        assert r.near_rating == [5.0, 4.5, 2.0][int(cos.argmax())]
    # nothing the model knows: the most rated films, without the rated ones
    popular = s.recommend({"999999999": 3.0}, k=5)
    assert popular.kind == "popular" and popular.unknown == 1
    assert [catalogue.titles[r.index] for r in popular.items][:2] == [
        "Forrest Gump (1994)",
        "Shawshank Redemption, The (1994)",
    ]
    assert catalogue.find(356) not in [r.index for r in s.popular(5, exclude=["356"]).items]


def test_vi_recommendations_carry_intervals_and_strategies(models, catalogue):
    model = fastmf.load_model(models["vi"])
    s = Served(model, catalogue, models["vi"], file_stamp(models["vi"]))
    ratings = {"1": 5.0, "260": 4.5, "2571": 4.0}
    recs = s.recommend(ratings, k=8)
    mean, sd = model.fold_in_predict(
        {1: 5.0, 260: 4.5, 2571: 4.0}, [catalogue.ids[r.index] for r in recs.items], return_std=True
    )
    # the predictive mean and its 90% interval, shown within the rating scale
    np.testing.assert_allclose([r.mean for r in recs.items], np.clip(mean, 0.5, 5.0))
    np.testing.assert_allclose([r.low for r in recs.items], np.clip(mean - 1.6448536 * sd, 0.5, 5.0), rtol=1e-5)
    np.testing.assert_allclose([r.high for r in recs.items], np.clip(mean + 1.6448536 * sd, 0.5, 5.0), rtol=1e-5)
    assert max(r.high for r in recs.items) == 5.0  # the top films' intervals reach past 5 stars
    for strategy in ("penalized", "ucb", "thompson"):
        assert len(s.recommend(ratings, k=8, strategy=strategy, seed=3).items) == 8
    with pytest.raises(ServeError, match="unknown strategy"):
        s.recommend(ratings, strategy="greedy")
    als = Served(fastmf.load_model(models["als"]), catalogue, models["als"], None)
    with pytest.raises(ServeError, match="needs a VI model"):
        als.recommend(ratings, strategy="ucb")


def test_vi_strategies_of_concurrent_requests_stay_apart(models):
    """One VI model serves many threads: each call's strategy is its own (not an attribute of the model)."""
    model = fastmf.load_model(models["vi"])
    ratings = {1: 5.0, 260: 4.5, 2571: 4.0}
    expected = {
        s: tuple(model.fold_in(ratings, k=10, strategy=s, seed=5)[0]) for s in ("mean", "penalized", "ucb", "thompson")
    }
    assert len(set(expected.values())) > 1
    seen, errors = {s: set() for s in expected}, []

    def work(strategy):
        try:
            for _ in range(30):
                seen[strategy].add(tuple(model.fold_in(ratings, k=10, strategy=strategy, seed=5)[0]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in expected for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen == {s: {ids} for s, ids in expected.items()}


def test_a_replaced_model_file_is_swapped_in_whole_under_load(models, catalogue, tmp_path):
    """Readers keep serving while the file is replaced (os.replace by save) again and again; every
    request sees one complete model, and the engine ends up serving the last one written."""
    path = str(tmp_path / "served.fastmf")
    a, b = fastmf.load_model(models["als"]), fastmf.ALS(factors=3, epochs=2).fit(fastmf.load_dataset())
    a.save(path)
    engine = Engine(path, None, check_seconds=0, catalogue=catalogue, limit_blas=False)
    first = engine.current()
    assert first.model.item_factors_.shape[1] == 8
    stop, errors, dims = threading.Event(), [], set()

    def reader():
        while not stop.is_set():
            try:
                s = engine.current()
                recs = s.recommend({"1": 5.0, "2571": 4.0}, k=5)
                assert len(recs.items) == 5 and s.unit.shape[1] == s.model.item_factors_.shape[1]
                dims.add(s.model.item_factors_.shape[1])
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for k in range(6):
        (b if k % 2 == 0 else a).save(path)
        for _ in range(200):  # the swap happens in the background
            if engine.current().stamp == file_stamp(path):
                break
            threading.Event().wait(0.02)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert dims == {3, 8}
    assert engine.current().stamp == file_stamp(path) and engine.current().model.item_factors_.shape[1] == 8


def test_a_corrupt_replacement_keeps_the_served_model(models, catalogue, tmp_path):
    path = tmp_path / "served.fastmf"
    fastmf.load_model(models["als"]).save(str(path))
    engine = Engine(str(path), None, check_seconds=0, catalogue=catalogue, limit_blas=False)
    before = engine.current()
    broken = tmp_path / "broken"
    broken.write_bytes(path.read_bytes()[:1000])
    broken.replace(path)
    for _ in range(100):
        engine.current()
        if engine._failed_stamp is not None:
            break
        threading.Event().wait(0.02)
    assert engine.current() is before  # still serving the complete old model


def test_the_catalogue_is_built_from_any_dataset():
    data = fastmf.Dataset.from_arrays(["u1", "u1", "u2"], ["a", "b", "a"], [4.0, 2.0, 5.0])
    c = Catalogue(data, "tiny")
    assert c.keys == ["a", "b"] and list(c.counts) == [2, 1] and c.means[0] == 4.5
    assert c.search("a").items == [0] and c.film(0)["title"] == "a"
