"""The JSON API: /api/search, /api/similar, /api/recommend, /api/ratings; answers and errors are JSON
with proper status codes."""

from __future__ import annotations

import json

from django.contrib.auth.models import User
from django.test import Client, TestCase
from web_support import PASSWORD, serve

from fastmf.web.films.models import Rating


class ApiTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = User.objects.create_user("alice", password=PASSWORD)
        cls.bob = User.objects.create_user("bob", password=PASSWORD)

    def setUp(self):
        serve("als")

    def error(self, response, status, fragment):
        self.assertEqual(response.status_code, status, response.content)
        self.assertEqual(response["Content-Type"], "application/json")
        body = response.json()
        self.assertEqual(body["status"], status)
        self.assertIn(fragment, body["error"])
        return body

    def post(self, url, data, client=None, **extra):
        body = data if isinstance(data, (str, bytes)) else json.dumps(data)
        return (client or self.client).post(url, body, content_type="application/json", **extra)


class Search(ApiTest):
    def test_search(self):
        body = self.client.get("/api/search", {"q": "toy story"}).json()
        self.assertEqual(body["total"], 3)
        self.assertEqual([f["id"] for f in body["results"]], [1, 3114, 78499])
        first = body["results"][0]
        self.assertEqual(
            first,
            {
                "id": 1,
                "title": "Toy Story (1995)",
                "year": 1995,
                "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
                "ratings": 215,
                "mean_rating": 3.921,
                "url": "/films/1/",
            },
        )
        page = self.client.get("/api/search", {"q": "the", "limit": 3, "offset": 3}).json()
        self.assertEqual(len(page["results"]), 3)

    def test_search_errors(self):
        self.error(self.client.get("/api/search"), 400, "give the title words")
        self.error(self.client.get("/api/search", {"q": "toy", "limit": "x"}), 400, "limit must be a whole number")
        self.error(self.client.get("/api/search", {"q": "toy", "limit": 0}), 400, "from 1 to 100")
        self.error(self.client.post("/api/search", {"q": "toy"}), 405, "POST is not allowed")


class Similar(ApiTest):
    def test_similar(self):
        body = self.client.get("/api/similar", {"item": 1, "k": 5}).json()
        self.assertEqual(body["item"]["title"], "Toy Story (1995)")
        self.assertEqual(len(body["similar"]), 5)
        sims = [f["similarity"] for f in body["similar"]]
        self.assertEqual(sims, sorted(sims, reverse=True))
        self.assertNotIn(1, [f["id"] for f in body["similar"]])

    def test_similar_errors(self):
        self.error(self.client.get("/api/similar"), 400, "give the film's id")
        self.error(self.client.get("/api/similar", {"item": "nope"}), 404, "no film with id 'nope'")
        self.error(self.client.get("/api/similar", {"item": 1, "k": 1000}), 400, "k must be")


class Recommend(ApiTest):
    def test_a_logged_in_user_gets_recommendations_for_the_stored_ratings(self):
        Rating.objects.create(user=self.alice, item="1", stars=5)
        Rating.objects.create(user=self.alice, item="2571", stars=4)
        self.client.force_login(self.alice)
        body = self.client.get("/api/recommend", {"k": 5}).json()
        self.assertEqual(body["kind"], "personal")
        self.assertEqual(body["ratings_used"], 2)
        self.assertEqual(len(body["recommendations"]), 5)
        first = body["recommendations"][0]
        self.assertIn(first["closest_rated"]["id"], (1, 2571))
        self.assertEqual(first["score"], first["predicted_rating"])
        self.assertNotIn(1, [f["id"] for f in body["recommendations"]])

    def test_a_user_without_ratings_gets_the_most_popular(self):
        self.client.force_login(self.bob)
        body = self.client.get("/api/recommend", {"k": 3}).json()
        self.assertEqual(body["kind"], "popular")
        self.assertEqual([f["id"] for f in body["recommendations"]], [356, 318, 296])

    def test_ratings_given_in_the_request(self):
        body = self.post("/api/recommend", {"ratings": {"1": 5, "3114": "4.5"}, "k": 4}).json()
        self.assertEqual(body["kind"], "personal")
        self.assertEqual(body["ratings_used"], 2)
        self.assertEqual(len(body["recommendations"]), 4)
        self.assertEqual(self.post("/api/recommend", {}).json()["kind"], "popular")
        self.assertFalse(Rating.objects.exists())  # nothing written

    def test_vi_answers_carry_the_interval(self):
        serve("vi")
        body = self.post("/api/recommend", {"ratings": {"1": 5, "260": 4.5}, "strategy": "ucb", "k": 3}).json()
        self.assertEqual(body["strategy"], "ucb")
        low, high = body["recommendations"][0]["interval_90"]
        self.assertLess(low, body["recommendations"][0]["predicted_rating"])
        self.assertLess(body["recommendations"][0]["predicted_rating"], high)

    def test_recommend_errors(self):
        self.error(self.client.get("/api/recommend"), 401, "log in")
        self.error(self.post("/api/recommend", "{not json"), 400, "malformed JSON")
        self.error(self.post("/api/recommend", "[1, 2]"), 400, "must be a JSON object, got list")
        self.error(self.post("/api/recommend", b"\xff\xfe"), 400, "not UTF-8")
        self.error(self.post("/api/recommend", {"ratings": {"1": 7}}), 400, "from 0.5 to 5 stars")
        self.error(self.post("/api/recommend", {"ratings": {"1": 4.25}}), 400, "in half stars")
        self.error(self.post("/api/recommend", {"ratings": {"nope": 4}}), 404, "no film with id 'nope'")
        self.error(self.post("/api/recommend", {"ratings": []}), 400, "non-empty object")
        self.error(self.post("/api/recommend", {"ratings": {"1": 4}, "k": 0}), 400, "k must be")
        self.error(self.post("/api/recommend", {"ratings": {"1": 4}, "k": "5"}), 400, "k must be")
        self.error(self.post("/api/recommend", {"ratings": {"1": 4}, "strategy": "ucb"}), 400, "needs a VI model")
        self.error(self.post("/api/recommend", {"ratings": {"1": 4}, "strategy": 3}), 400, "strategy must be")
        self.error(self.post("/api/recommend", {"ratings": {"1": 4}, "min_ratings": -1}), 400, "min_ratings")
        self.client.force_login(self.alice)
        self.error(self.client.get("/api/recommend", {"k": "many"}), 400, "k must be a whole number")
        self.error(self.client.delete("/api/recommend"), 405, "DELETE is not allowed")


class Ratings(ApiTest):
    def test_read_write_and_delete_ones_own_ratings(self):
        self.client.force_login(self.alice)
        body = self.client.get("/api/ratings").json()
        self.assertEqual((body["count"], body["scale"]), (0, {"min": 0.5, "max": 5.0, "step": 0.5}))
        saved = self.post("/api/ratings", {"item": 1, "stars": 4.5}).json()
        self.assertEqual(saved, {"saved": [{"item": 1, "stars": 4.5}]})
        self.post("/api/ratings", {"ratings": {"3114": 3, "2571": "5"}})
        self.post("/api/ratings", {"item": "1", "stars": 2})  # changes the rating
        body = self.client.get("/api/ratings").json()
        self.assertEqual({r["item"]: r["stars"] for r in body["ratings"]}, {1: 2.0, 3114: 3.0, 2571: 5.0})
        self.assertEqual(self.client.delete("/api/ratings/3114").json(), {"removed": 3114})
        self.assertEqual(Rating.objects.filter(user=self.alice).count(), 2)
        self.error(self.client.delete("/api/ratings/3114"), 404, "you have not rated film '3114'")
        self.error(self.client.delete("/api/ratings/nope"), 404, "no film with id 'nope'")

    def test_a_bad_rating_in_a_batch_writes_nothing(self):
        self.client.force_login(self.alice)
        self.error(self.post("/api/ratings", {"ratings": {"1": 4, "3114": 4.5, "2571": 9}}), 400, "got 9")
        self.error(self.post("/api/ratings", {"ratings": {"1": 4, "nope": 4}}), 404, "no film")
        self.assertFalse(Rating.objects.exists())

    def test_ratings_errors(self):
        self.error(self.client.get("/api/ratings"), 401, "log in first")
        self.error(self.post("/api/ratings", {"item": 1, "stars": 4}), 401, "log in first")
        self.assertFalse(Rating.objects.exists())
        self.client.force_login(self.alice)
        self.error(self.post("/api/ratings", "{"), 400, "malformed JSON")
        self.error(self.post("/api/ratings", {"item": 1}), 400, 'give "stars"')
        self.error(self.post("/api/ratings", {"stars": 4}), 400, 'give {"item"')
        self.error(self.post("/api/ratings", {"item": 1, "stars": None}), 400, "must be a number")
        self.error(self.post("/api/ratings", {"item": 1, "stars": "NaN"}), 400, "half stars")
        self.error(self.client.put("/api/ratings", "{}"), 405, "PUT is not allowed")
        self.assertFalse(Rating.objects.exists())

    def test_writes_need_the_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.alice)
        self.error(self.post("/api/ratings", {"item": 1, "stars": 4}, client=client), 403, "CSRF token")
        self.error(client.delete("/api/ratings/1"), 403, "CSRF")
        self.assertFalse(Rating.objects.exists())
        client.get("/api/ratings")  # sets the csrftoken cookie
        token = client.cookies["csrftoken"].value
        r = self.post("/api/ratings", {"item": 1, "stars": 4}, client=client, HTTP_X_CSRFTOKEN=token)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(Rating.objects.get().stars, 4.0)

    def test_unknown_api_addresses_are_json_404s(self):
        self.error(self.client.get("/api/nothing"), 404, "Nothing lives at /api/nothing")
