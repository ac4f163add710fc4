"""One shared test mixin for every model (as implicit tests all its models through one mixin).

A test class mixes in :class:`ModelTestMixin` and defines ``make_model(**params)``
(small, fast hyperparameters) and optionally ``backend_rtol``; the data is a
fixed random subset of the embedded ml-latest-small. The mixin checks the
estimator conventions, recommend / recommend_all / fold_in, save / load round
trips and corrupt-folder errors, seeding, and numba-vs-numpy agreement.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastmf
from fastmf import load_model
from fastmf.common.errors import FastMFError, ModelFileError
from fastmf.data_prep.splits import random_split


@pytest.fixture(scope="session")
def small_split():
    """ml-latest-small restricted to its 300 most active users, split 90/10 with a fixed seed."""
    data = fastmf.load_dataset()
    keep_users = np.argsort(-data.user_counts)[:300]
    mask = np.isin(data.user_of_entry, keep_users)
    return random_split(data.subset(mask), 0.1, seed=7)


@pytest.fixture
def parallel_kernels(monkeypatch):
    """The parallel path of the kernels that run few ratings on the calling thread
    (:func:`fastmf.common.threads.runs_serially`): the test data is that small."""
    monkeypatch.setattr("fastmf.common.threads.SERIAL_BELOW", 0)


class ModelTestMixin:
    #: relative tolerance of numba-vs-numpy agreement on predictions
    backend_rtol = 1e-4

    def make_model(self, **params):  # pragma: no cover - each test class overrides
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, small_split):
        return cls().make_model().fit(small_split.train, eval_set=small_split.test)

    # ------------------------------------------------------------------ conventions
    def test_fit_returns_self_and_learned_attributes(self, small_split):
        model = self.make_model()
        assert not any(k.endswith("_") and not k.startswith("_") for k in vars(model))
        assert model.fit(small_split.train) is model
        learned = [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]
        assert "history_" in learned and "item_map_" in learned

    def test_params_round_trip(self):
        model = self.make_model()
        params = model.get_params()
        clone = type(model)(**params)
        assert clone.get_params() == params
        with pytest.raises(FastMFError):
            model.set_params(no_such_parameter=1)

    def test_history_has_one_record_per_epoch(self, fitted):
        assert len(fitted.history_) >= 1
        assert [r["epoch"] for r in fitted.history_] == list(range(1, len(fitted.history_) + 1))
        assert all(r["seconds"] >= 0 for r in fitted.history_)

    def test_unfitted_model_refuses_to_recommend(self):
        with pytest.raises(FastMFError):
            self.make_model().recommend(1)

    # ------------------------------------------------------------------ recommend
    def test_recommend_excludes_seen_and_sorts(self, fitted, small_split):
        train = small_split.train
        u = int(np.argmax(train.user_counts))
        uid = train.user_map.ids[u]
        items, scores = fitted.recommend(uid, k=15)
        assert len(items) == 15 and np.all(np.diff(scores) <= 1e-6)
        seen = set(train.item_map.ids[train.indices[train.indptr[u] : train.indptr[u + 1]]].tolist())
        assert not seen & set(items.tolist())
        all_items, _ = fitted.recommend(uid, k=15, exclude_seen=False)
        # without exclusion the best item overall must score at least the best unseen one
        assert fitted.recommend(uid, k=1, exclude_seen=False)[1][0] >= scores[0] - 1e-6
        assert len(all_items) == 15

    def test_recommend_min_item_ratings(self, fitted, small_split):
        uid = small_split.train.user_map.ids[0]
        items, _ = fitted.recommend(uid, k=10, min_item_ratings=30)
        idx = small_split.train.item_map.index_of(items)
        assert np.all(small_split.train.item_counts[idx] >= 30)

    def test_batch_calls_match_single_calls(self, fitted, small_split):
        uids = small_split.train.user_map.ids[[0, 5, 17]]
        batch_ids, batch_scores = fitted.recommend(uids, k=7)
        all_ids, all_scores = fitted.recommend_all(k=7)
        assert batch_ids.shape == (3, 7) and all_ids.shape == (fitted.n_users, 7)
        for row, uid in enumerate(uids):
            ids, sc = fitted.recommend(uid, k=7)
            assert np.array_equal(batch_ids[row], ids) and np.array_equal(all_ids[fitted.user_index(uid)], ids)
            np.testing.assert_allclose(batch_scores[row], sc, rtol=1e-6)
        # allow and deny lists, and k past the catalogue
        top = fitted.recommend(uids[0], k=7)[0]
        ids, _ = fitted.recommend(uids[0], k=5, deny=top[:2])
        assert not set(ids.tolist()) & set(top[:2].tolist()) and ids[0] == top[2]
        allowed = small_split.train.item_map.ids[:40]
        ids, _ = fitted.recommend(uids[0], k=10**9, allow=allowed, exclude_seen=False)
        assert set(ids.tolist()) == set(allowed.tolist())

    def test_recommendations_are_the_best_of_the_formed_scores(self, fitted, small_split):
        """Whatever path selects them (factor models fuse scoring and selection), the lists are the top
        of ``_score_batch``'s full score rows with each user's training items excluded."""
        users = np.arange(0, fitted.n_users, 7)
        top, best = fitted.recommend_indices(users, k=10)
        scores = fitted._score_batch(users).astype(np.float64)
        for row, u in enumerate(users):
            row_scores = scores[row].copy()
            row_scores[fitted.seen_indices_[fitted.seen_indptr_[u] : fitted.seen_indptr_[u + 1]]] = -np.inf
            want = np.sort(row_scores)[::-1][:10]
            np.testing.assert_allclose(best[row], want, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(row_scores[top[row]], best[row], rtol=1e-5, atol=1e-5)

    def test_dataframes_on_request(self, fitted, small_split):
        pd = pytest.importorskip("pandas")
        uids = small_split.train.user_map.ids[[0, 5]]
        frame = fitted.recommend(uids, k=3, as_frame=True)
        assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["user", "rank", "item", "score"]
        assert frame["user"].tolist() == [uids[0]] * 3 + [uids[1]] * 3 and frame["rank"].tolist() == [1, 2, 3] * 2
        np.testing.assert_array_equal(frame["item"].to_numpy()[:3], fitted.recommend(uids[0], k=3)[0])

    def test_recommend_unknown_user_is_an_error(self, fitted):
        with pytest.raises(FastMFError, match="unknown user"):
            fitted.recommend(-123456)

    def test_fold_in_a_batch_of_new_users(self, fitted, small_split):
        train = small_split.train
        popular = train.item_map.ids[np.argsort(-train.item_counts)[:6]]
        users = [{int(i): 5.0 for i in popular[:3]}, {int(i): 4.5 for i in popular[3:]}]
        ids, scores = fitted.fold_in(users, k=5)
        assert ids.shape == (2, 5)
        for row, user in enumerate(users):
            one, sc = fitted.fold_in(user, k=5)
            assert np.array_equal(ids[row], one) and not set(user) & set(one.tolist())
            np.testing.assert_allclose(scores[row], sc, rtol=1e-6)

    def test_fold_in_excludes_given_items(self, fitted, small_split):
        train = small_split.train
        popular = train.item_map.ids[np.argsort(-train.item_counts)[:3]]
        liked = {int(i): 5.0 for i in popular}
        items, scores = fitted.fold_in(liked, k=10)
        assert len(items) == 10 and not set(liked) & set(items.tolist())
        assert np.all(np.diff(scores) <= 1e-6)

    # ------------------------------------------------------------------ persistence
    def test_save_load_round_trip(self, fitted, small_split, tmp_path):
        path = fitted.save(str(tmp_path / "m"))
        loaded = load_model(path)
        assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
        uid = small_split.train.user_map.ids[3]
        a_items, a_scores = fitted.recommend(uid, k=10)
        b_items, b_scores = loaded.recommend(uid, k=10)
        assert np.array_equal(a_items, b_items)
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)
        assert loaded.history_ == json.loads(json.dumps(fitted.history_))

    def test_corrupt_model_file_errors(self, fitted, tmp_path):
        path = fitted.save(str(tmp_path / "m"))
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) - 1])
        with pytest.raises(ModelFileError, match="truncated|does not fit"):
            load_model(path)
        open(path, "wb").write(data[:-1] + bytes([data[-1] ^ 0xFF]))  # the last array's last byte
        with pytest.raises(ModelFileError, match="checksum"):
            load_model(path)
        open(path, "wb").write(b"{not a model")
        with pytest.raises(ModelFileError, match="not a fastmf model"):
            load_model(path)
        with pytest.raises(ModelFileError, match="no such model"):
            load_model(str(tmp_path / "nowhere"))

    # ------------------------------------------------------------------ determinism and backends
    def test_same_seed_same_model(self, small_split):
        a = self.make_model(random_state=3).fit(small_split.train)
        b = self.make_model(random_state=3).fit(small_split.train)
        uid = small_split.train.user_map.ids[0]
        assert np.array_equal(a.recommend(uid, k=10)[0], b.recommend(uid, k=10)[0])

    def test_numba_and_numpy_backends_agree(self, small_split):
        a = self.make_model(backend="numba").fit(small_split.train, eval_set=small_split.test)
        b = self.make_model(backend="numpy").fit(small_split.train, eval_set=small_split.test)
        idx_u = small_split.test.user_of_entry[:500]
        idx_i = small_split.test.indices[:500]
        users = small_split.test.user_map.ids[idx_u]
        items = small_split.test.item_map.ids[idx_i]
        np.testing.assert_allclose(
            a.predict(users, items), b.predict(users, items), rtol=self.backend_rtol, atol=self.backend_rtol
        )
