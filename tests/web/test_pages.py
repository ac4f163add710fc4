"""Every page and form with Django's test client: home, search, film, register, log in and out, rate
(from the search results and the film page), change and remove, my ratings, recommendations (ALS
and VI with intervals and strategies)."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.test import TestCase
from web_support import PASSWORD, serve

from fastmf.web.films.models import Rating


def films_in(html: bytes, table: str) -> list[str]:
    """The film ids of the rows of the table with id ``table``, in order."""
    text = html.decode()
    start = text.index(f'id="{table}"')
    body = text[start : text.index("</table>", start)]
    return re.findall(r'<tr data-film="([^"]+)"', body)


class PageTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = User.objects.create_user("alice", password=PASSWORD)
        cls.bob = User.objects.create_user("bob", password=PASSWORD)

    def setUp(self):
        serve("als")

    def login(self, user=None):
        self.client.force_login(user or self.alice)

    def rate(self, item, stars, follow=False, **extra):
        return self.client.post(f"/films/{item}/rate/", {"stars": stars, **extra}, follow=follow)


class Browsing(PageTest):
    def test_home_lists_the_most_rated_films_and_invites_visitors(self):
        r = self.client.get("/")
        self.assertContains(r, "Forrest Gump")
        self.assertContains(r, "Register")
        self.assertContains(r, "Log in to rate")
        self.assertTrue(r["Server-Timing"].startswith("app;dur="))

    def test_search_lists_matching_titles_best_known_first(self):
        r = self.client.get("/search/", {"q": "toy story"})
        self.assertEqual(films_in(r.content, "results"), ["1", "3114", "78499"])
        self.assertContains(r, "3 films match")
        self.assertContains(r, "Toy Story 2")
        r = self.client.get("/search/", {"q": "ToY  sTo"})
        self.assertEqual(films_in(r.content, "results"), ["1", "3114", "78499"])

    def test_search_pages_through_many_results(self):
        first = self.client.get("/search/", {"q": "the"})
        second = self.client.get("/search/", {"q": "the", "page": 2})
        self.assertContains(first, "page 1 of")
        self.assertEqual(len(films_in(first.content, "results")), 20)
        self.assertFalse(set(films_in(first.content, "results")) & set(films_in(second.content, "results")))

    def test_search_without_a_query_or_a_match(self):
        self.assertNotContains(self.client.get("/search/"), 'id="results"')
        r = self.client.get("/search/", {"q": "qqqzzzxxx"})
        self.assertContains(r, "0 films match")

    def test_a_bad_page_number_is_a_400(self):
        r = self.client.get("/search/", {"q": "toy", "page": "x"})
        self.assertContains(r, "page must be a whole number", status_code=400)

    def test_film_page_shows_year_genres_counts_polarization_and_similar_films(self):
        r = self.client.get("/films/1/")
        self.assertContains(r, "Toy Story")
        self.assertContains(r, "1995")
        self.assertContains(r, "Adventure, Animation, Children, Comedy, Fantasy")
        self.assertContains(r, "215, mean 3.92 stars")
        self.assertContains(r, "rating variance 0.69")
        self.assertContains(r, "factor norm")
        similar = films_in(r.content, "similar")
        self.assertEqual(len(similar), 10)
        self.assertNotIn("1", similar)

    def test_an_unknown_film_is_a_404_page(self):
        r = self.client.get("/films/999999999/")
        self.assertContains(r, "no film with id", status_code=404)

    def test_an_unknown_address_is_a_404_page(self):
        self.assertContains(self.client.get("/nothing/here/"), "Nothing lives at", status_code=404)

    def test_the_stylesheet_is_served(self):
        r = self.client.get("/static/fastmf/site.css")
        self.assertEqual(r.status_code, 200)
        self.assertIn(b"font-family", b"".join(r.streaming_content))
        self.assertEqual(self.client.get("/static/../settings.py").status_code, 404)


class Accounts(PageTest):
    def test_register_logs_in_and_prompts_to_rate(self):
        r = self.client.post(
            "/accounts/register/", {"username": "carol", "password1": PASSWORD, "password2": PASSWORD}, follow=True
        )
        self.assertEqual(r.redirect_chain[-1][0], "/recommendations/")
        self.assertContains(r, "Rate a few films you know")
        self.assertContains(r, "Most popular films")
        self.assertTrue(User.objects.filter(username="carol").exists())
        self.assertEqual(r.context["user"].username, "carol")

    def test_register_refuses_mismatched_passwords_and_taken_names(self):
        r = self.client.post(
            "/accounts/register/", {"username": "dave", "password1": PASSWORD, "password2": PASSWORD + "x"}
        )
        self.assertContains(r, "didn", status_code=400)
        r = self.client.post("/accounts/register/", {"username": "alice", "password1": PASSWORD, "password2": PASSWORD})
        self.assertContains(r, "already exists", status_code=400)
        self.assertEqual(User.objects.count(), 2)

    def test_log_in_and_out(self):
        self.assertContains(self.client.get("/accounts/login/"), "Log in")
        r = self.client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
        self.assertRedirects(r, "/recommendations/")
        self.assertContains(self.client.get("/"), "alice")
        bad = self.client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        self.assertContains(bad, "Please enter a correct username and password")
        r = self.client.post("/accounts/logout/")
        self.assertRedirects(r, "/")
        self.assertContains(self.client.get("/"), "Register")
        self.assertEqual(self.client.get("/accounts/logout/").status_code, 405)  # log out needs a POST

    def test_logged_in_visitors_of_the_register_page_go_to_their_recommendations(self):
        self.login()
        self.assertRedirects(self.client.get("/accounts/register/"), "/recommendations/")


class Rating_(PageTest):
    def test_rate_from_the_search_results_and_come_back_to_them(self):
        self.login()
        page = self.rate(1, "4.5", next="/search/?q=toy+story", follow=True)
        self.assertEqual(page.redirect_chain, [("/search/?q=toy+story", 302)])
        self.assertEqual(Rating.objects.get(user=self.alice, item="1").stars, 4.5)
        self.assertContains(page, "You rated Toy Story (1995) 4.5 stars.")
        self.assertContains(page, '<span class="mine">4.5 ★</span>', html=True)
        self.assertContains(page, "Change")

    def test_rate_from_the_film_page_change_and_remove(self):
        self.login()
        self.assertRedirects(self.rate(2571, "3"), "/films/2571/")
        self.assertRedirects(self.rate(2571, "0.5"), "/films/2571/")
        self.assertEqual(Rating.objects.get(user=self.alice, item="2571").stars, 0.5)
        self.assertContains(self.client.get("/films/2571/"), '<span class="mine">0.5 ★</span>', html=True)
        r = self.client.post("/films/2571/rate/", {"remove": "1"}, follow=True)
        self.assertContains(r, "Removed your rating of Matrix, The (1999).")
        self.assertFalse(Rating.objects.filter(user=self.alice).exists())
        r = self.client.post("/films/2571/rate/", {"remove": "1"}, follow=True)
        self.assertContains(r, "You had not rated")

    def test_next_never_leaves_the_site(self):
        self.login()
        r = self.rate(1, "4", next="https://evil.example.org/")
        self.assertRedirects(r, "/films/1/", fetch_redirect_response=False)

    def test_my_ratings_lists_newest_first_with_edit_and_delete(self):
        self.login()
        for item, stars in ((1, "4"), (3114, "3.5"), (2571, "5")):
            self.rate(item, stars)
        r = self.client.get("/ratings/")
        self.assertEqual(films_in(r.content, "my-ratings"), ["2571", "3114", "1"])
        self.assertContains(r, "3 ratings")
        self.rate(3114, "2", next="/ratings/")
        self.assertEqual(Rating.objects.get(user=self.alice, item="3114").stars, 2.0)
        self.client.post("/films/1/rate/", {"remove": "1", "next": "/ratings/"})
        self.assertEqual(films_in(self.client.get("/ratings/").content, "my-ratings"), ["3114", "2571"])

    def test_my_ratings_prompts_a_user_without_ratings(self):
        self.login(self.bob)
        self.assertContains(self.client.get("/ratings/"), "You have not rated anything yet")


class Recommending(PageTest):
    def test_a_new_user_sees_the_most_popular_films_and_a_prompt(self):
        self.login()
        r = self.client.get("/recommendations/")
        self.assertContains(r, "Rate a few films you know")
        self.assertEqual(films_in(r.content, "recommendations")[:3], ["356", "318", "296"])

    def test_a_visitor_is_invited_to_register(self):
        r = self.client.get("/recommendations/")
        self.assertContains(r, "Register")
        self.assertContains(r, "Most popular films")

    def test_recommendations_follow_each_new_rating(self):
        self.login()
        lists = []
        for item, stars in ((1, "5"), (3114, "5"), (2571, "1")):
            self.rate(item, stars)
            r = self.client.get("/recommendations/")
            self.assertContains(r, "folded into the ALS model")
            lists.append(films_in(r.content, "recommendations"))
            self.assertEqual(len(lists[-1]), 20)
        self.assertNotEqual(lists[0], lists[1])
        self.assertNotEqual(lists[1], lists[2])
        for rated in ("1", "3114", "2571"):
            self.assertNotIn(rated, lists[-1])
        self.assertContains(r, "closest to")
        self.assertContains(r, "you gave 5.0 ★")


class VIRecommending(PageTest):
    def setUp(self):
        serve("vi")

    def tearDown(self):
        serve("als")

    def test_intervals_and_a_strategy_choice(self):
        self.login()
        for item in (1, 260, 2571):
            self.rate(item, "5")
        r = self.client.get("/recommendations/")
        self.assertContains(r, "90%:")
        self.assertContains(r, 'id="strategy-form"')
        lists = {}
        for strategy in ("mean", "penalized", "ucb", "thompson"):
            r = self.client.get("/recommendations/", {"strategy": strategy})
            self.assertContains(r, f'<option value="{strategy}" selected>')
            lists[strategy] = films_in(r.content, "recommendations")
            self.assertEqual(len(lists[strategy]), 20)
        self.assertGreater(len({tuple(x) for x in lists.values()}), 1)
        self.assertContains(
            self.client.get("/recommendations/", {"strategy": "greedy"}), "Unknown strategy", status_code=400
        )

    def test_an_als_model_offers_no_strategy(self):
        serve("als")
        self.login()
        self.rate(1, "5")
        r = self.client.get("/recommendations/")
        self.assertNotContains(r, 'id="strategy-form"')
        self.assertNotContains(r, "90%:")
        self.assertContains(
            self.client.get("/recommendations/", {"strategy": "ucb"}), "Unknown strategy", status_code=400
        )
