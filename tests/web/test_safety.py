"""Safety of the pages, with Django's test client: anonymous visitors browse but cannot rate, users without
the permission cannot retrain, nobody reads or changes another user's ratings, and bad input (an unknown
film, a rating outside the scale, a missing CSRF token) gets a 4xx with a clear message, never a 500 and
never a partial write."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.test import Client, TestCase
from django.urls import reverse
from web_support import PASSWORD, serve

from fastmf.web.films.models import Rating
from fastmf.web.films.views import film_url
from fastmf.web.training.models import TrainingJob


class SafetyTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = User.objects.create_user("alice", password=PASSWORD)
        cls.bob = User.objects.create_user("bob", password=PASSWORD)
        Rating.objects.create(user=cls.bob, item="1", stars=2.0)
        Rating.objects.create(user=cls.bob, item="2571", stars=5.0)

    def setUp(self):
        serve("als")

    def ratings(self, user) -> dict:
        return dict(Rating.objects.filter(user=user).values_list("item", "stars"))


class Anonymous(SafetyTest):
    def test_browses_but_cannot_rate(self):
        self.assertEqual(self.client.get("/search/", {"q": "toy"}).status_code, 200)
        self.assertNotContains(self.client.get("/films/1/"), 'class="rate"')
        r = self.client.post("/films/1/rate/", {"stars": "5"})
        self.assertRedirects(r, "/accounts/login/?next=/films/1/rate/", fetch_redirect_response=False)
        r = self.client.post("/films/1/rate/", {"remove": "1"})
        self.assertEqual(r.status_code, 302)
        self.assertRedirects(self.client.get("/ratings/"), "/accounts/login/?next=/ratings/")
        self.assertEqual(Rating.objects.count(), 2)

    def test_cannot_reach_the_training_pages(self):
        for url in ("/training/", "/training/jobs/1/", "/training/jobs/1.json"):
            r = self.client.get(url)
            self.assertEqual(r.status_code, 302, url)
            self.assertTrue(r["Location"].startswith("/accounts/login/"), url)
        self.assertEqual(self.client.post("/training/", {"kind": "als"}).status_code, 302)
        self.assertFalse(TrainingJob.objects.exists())


class OtherUsers(SafetyTest):
    def test_my_ratings_and_the_api_show_only_ones_own(self):
        Rating.objects.create(user=self.alice, item="3114", stars=4.0)
        self.client.force_login(self.alice)
        r = self.client.get("/ratings/")
        self.assertContains(r, 'data-film="3114"')
        self.assertNotContains(r, 'data-film="2571"')
        self.assertEqual([x["item"] for x in self.client.get("/api/ratings").json()["ratings"]], [3114])
        self.assertNotContains(self.client.get("/films/2571/"), "5.0 ★</span>")

    def test_rating_changing_and_removing_touch_only_ones_own(self):
        self.client.force_login(self.alice)
        self.client.post("/films/1/rate/", {"stars": "4.5"})
        self.assertEqual(self.ratings(self.alice), {"1": 4.5})
        self.assertEqual(self.ratings(self.bob), {"1": 2.0, "2571": 5.0})
        self.client.post("/films/2571/rate/", {"remove": "1"})  # alice never rated it: bob's stays
        self.client.post("/films/1/rate/", {"remove": "1"})
        self.assertEqual(self.ratings(self.alice), {})
        self.assertEqual(self.ratings(self.bob), {"1": 2.0, "2571": 5.0})
        self.assertEqual(self.client.delete("/api/ratings/2571").status_code, 404)
        self.assertEqual(self.ratings(self.bob), {"1": 2.0, "2571": 5.0})

    def test_recommendations_use_only_ones_own_ratings(self):
        self.client.force_login(self.alice)
        self.assertContains(self.client.get("/recommendations/"), "Most popular films")
        self.assertEqual(self.client.get("/api/recommend").json()["kind"], "popular")


class BadInput(SafetyTest):
    def test_bad_ratings_are_4xx_with_a_message_and_write_nothing(self):
        self.client.force_login(self.alice)
        cases = [
            ("1", {"stars": "9"}, 400, "from 0.5 to 5 stars"),
            ("1", {"stars": "0"}, 400, "from 0.5 to 5 stars"),
            ("1", {"stars": "4.25"}, 400, "half stars"),
            ("1", {"stars": "abc"}, 400, "must be a number"),
            ("1", {"stars": "nan"}, 400, "half stars"),
            ("1", {}, 400, "Choose a number of stars"),
            ("999999999", {"stars": "4"}, 404, "no film with id"),
            ("999999999", {"remove": "1"}, 404, "no film with id"),
        ]
        for item, form, status, message in cases:
            r = self.client.post(f"/films/{item}/rate/", form)
            self.assertContains(r, message, status_code=status, msg_prefix=f"{item} {form}")
        self.assertEqual(self.client.get("/films/1/rate/").status_code, 405)
        self.assertEqual(self.ratings(self.alice), {})

    def test_bad_query_parameters_are_400(self):
        self.assertContains(
            self.client.get("/recommendations/", {"strategy": "ucb"}), "Unknown strategy", status_code=400
        )  # the served model is ALS
        self.assertContains(self.client.get("/search/", {"q": "toy", "page": "-"}), "whole number", status_code=400)

    def test_a_missing_csrf_token_is_a_403_and_writes_nothing(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.alice)
        r = client.post("/films/1/rate/", {"stars": "4"})
        self.assertContains(r, "CSRF token", status_code=403)
        r = client.post("/accounts/register/", {"username": "mallory", "password1": PASSWORD, "password2": PASSWORD})
        self.assertEqual(r.status_code, 403)
        self.assertEqual(client.post("/accounts/logout/").status_code, 403)
        self.assertEqual(self.ratings(self.alice), {})
        self.assertFalse(User.objects.filter(username="mallory").exists())


class Retraining(SafetyTest):
    def test_only_staff_with_the_permission_may_retrain(self):
        self.client.force_login(self.alice)
        self.assertContains(self.client.get("/training/"), "for staff users", status_code=403)
        self.assertEqual(self.client.post("/training/", {"kind": "als"}).status_code, 403)
        self.alice.is_staff = True
        self.alice.save()
        self.assertEqual(self.client.get("/training/").status_code, 403)  # staff, without the permission
        self.alice.user_permissions.add(Permission.objects.get(codename="retrain_model"))
        self.alice = User.objects.get(pk=self.alice.pk)  # a fresh permission cache
        self.client.force_login(self.alice)
        self.assertContains(self.client.get("/training/"), "Start training")
        self.assertFalse(TrainingJob.objects.exists())

    def test_non_staff_cannot_cancel_or_read_jobs(self):
        job = TrainingJob.objects.create(kind="als", params={}, status=TrainingJob.RUNNING)
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(f"/training/jobs/{job.pk}/cancel/").status_code, 403)
        self.assertEqual(self.client.get(f"/training/jobs/{job.pk}/").status_code, 403)
        self.assertEqual(self.client.get(f"/training/jobs/{job.pk}.json").status_code, 403)
        job.refresh_from_db()
        self.assertFalse(job.cancel_requested)


class GoneFilms(SafetyTest):
    def test_a_rating_of_a_film_that_left_the_catalogue_can_still_be_removed(self):
        Rating.objects.create(user=self.alice, item="gone-42", stars=3.0)
        Rating.objects.create(user=self.alice, item="gone-43", stars=3.0)
        self.client.force_login(self.alice)
        self.assertContains(self.client.get("/ratings/"), "no longer in the catalogue")
        self.assertRedirects(
            self.client.post("/films/gone-42/rate/", {"remove": "1", "next": "/ratings/"}), "/ratings/"
        )
        self.assertEqual(self.client.delete("/api/ratings/gone-43").json(), {"removed": "gone-43"})
        self.assertEqual(self.ratings(self.alice), {})
        self.assertEqual(self.client.delete("/api/ratings/gone-43").status_code, 404)


def test_film_addresses_are_those_of_the_url_configuration():
    for key in ("1", "tt0114709", "a b?c#d%é"):
        assert film_url(key) == reverse("film", args=[key])
        assert film_url(key) + "rate/" == reverse("rate", args=[key])
