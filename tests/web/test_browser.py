"""End to end in a real browser: headless Chromium (the distribution's package, driven by Playwright)
against a live server of the site. Register, search "Toy Story", rate three films (from the search
results and from a film's page), see the recommendations change, edit and delete a rating on
"My ratings", log out, and find that a logged-out visitor cannot rate.

A screenshot of every step is saved under ``test-artifacts/web-e2e/`` (or ``$FASTMF_TEST_ARTIFACTS``).
Without Chromium or Playwright the test is skipped, except under CI (``CI`` set: ``.ci/run`` installs
Chromium when it is missing), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import LiveServerTestCase
from web_support import PASSWORD, serve

from fastmf.web.films.models import Rating

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("FASTMF_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "web-e2e"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    given = os.environ.get("FASTMF_CHROMIUM")
    return given or next((path for path in map(shutil.which, BROWSERS) if path), None)


def unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser test (.ci/run installs Chromium)")
    pytest.skip(reason)


class Browser(LiveServerTestCase):
    # the site serves its own static files (fastmf.web.assets), as under fastmf web
    static_handler = staticmethod(lambda application: application)

    def setUp(self):
        serve("als")
        self.chromium = find_chromium()
        if self.chromium is None:
            unavailable("no Chromium found (apt-get install chromium, or set FASTMF_CHROMIUM)")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            unavailable("Playwright is not installed (it is part of the test extra)")
        self.sync_playwright = sync_playwright
        shutil.rmtree(SHOTS, ignore_errors=True)
        SHOTS.mkdir(parents=True)
        self.step = 0

    def shot(self, page, name: str) -> None:
        self.step += 1
        page.screenshot(path=str(SHOTS / f"{self.step:02d}-{name}.png"), full_page=True)

    def table(self, page, table_id: str) -> list[str]:
        return page.locator(f"#{table_id} tr[data-film]").evaluate_all("rows => rows.map(r => r.dataset.film)")

    def rate_in_row(self, page, table_id: str, film: str, stars: str) -> None:
        row = page.locator(f"#{table_id} tr[data-film='{film}']")
        row.locator("select[name=stars]").select_option(stars)
        row.locator("button[name=rate]").click()
        page.wait_for_load_state()

    def test_a_visitor_registers_rates_gets_recommendations_edits_and_logs_out(self):
        # the ORM is used only outside the browser session: Playwright's sync API runs an event loop
        # in this thread, in which Django refuses database calls
        with self.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=self.chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            try:
                self.journey(browser.new_page(viewport={"width": 1100, "height": 900}))
            finally:
                browser.close()
        user = User.objects.get(username="erin")
        self.assertEqual(dict(Rating.objects.filter(user=user).values_list("item", "stars")), {"1": 1.0, "2571": 4.0})
        self.assertEqual(Rating.objects.count(), 2)  # the logged-out attempt wrote nothing

    def journey(self, page) -> None:
        url = self.live_server_url
        page.goto(url + "/")
        self.shot(page, "home")

        page.click("text=Register")
        page.fill("#id_username", "erin")
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD)
        page.click("#register-form button[type=submit]")
        page.wait_for_url(url + "/recommendations/")
        self.assertIn("Rate a few films you know", page.inner_text("#prompt"))
        popular = self.table(page, "recommendations")
        self.shot(page, "registered-popular")

        page.fill("header input[name=q]", "Toy Story")
        page.press("header input[name=q]", "Enter")
        page.wait_for_selector("#results")
        self.assertEqual(self.table(page, "results")[:2], ["1", "3114"])
        self.shot(page, "search-toy-story")
        self.rate_in_row(page, "results", "1", "5.0")
        self.assertIn("You rated Toy Story (1995) 5 stars.", page.inner_text(".messages"))
        self.rate_in_row(page, "results", "3114", "4.5")
        self.assertIn("4.5 ★", page.inner_text("#results tr[data-film='3114']"))
        self.shot(page, "rated-from-search")

        page.goto(url + "/films/2571/")  # The Matrix, rated from its own page
        page.locator("dd form.rate select[name=stars]").select_option("4.0")
        page.locator("dd form.rate button[name=rate]").click()
        page.wait_for_load_state()
        self.assertIn("4.0 ★", page.inner_text("dl.facts"))
        self.shot(page, "rated-from-film-page")

        page.click("nav >> text=Recommendations")
        self.assertIn("From your 3 ratings", page.inner_text("main"))
        self.assertEqual(page.locator("#prompt").count(), 0)
        personal = self.table(page, "recommendations")
        self.assertNotEqual(personal, popular)
        self.assertFalse({"1", "3114", "2571"} & set(personal))
        self.assertIn("closest to", page.inner_text("#recommendations"))
        before = page.inner_text("#recommendations")
        self.shot(page, "recommendations")

        page.click("nav >> text=My ratings")
        self.assertEqual(sorted(self.table(page, "my-ratings")), ["1", "2571", "3114"])
        self.rate_in_row(page, "my-ratings", "1", "1.0")  # edit
        self.assertIn("1.0 ★", page.inner_text("#my-ratings tr[data-film='1']"))
        page.locator("#my-ratings tr[data-film='3114'] button[name=remove]").click()  # delete
        page.wait_for_load_state()
        self.assertEqual(sorted(self.table(page, "my-ratings")), ["1", "2571"])
        self.shot(page, "edited-and-deleted")

        page.click("nav >> text=Recommendations")
        self.assertIn("From your 2 ratings", page.inner_text("main"))
        self.assertNotEqual(page.inner_text("#recommendations"), before)
        self.shot(page, "recommendations-after-edit")

        page.click("header button:has-text('Log out')")
        page.wait_for_url(url + "/")
        self.assertIn("Register", page.inner_text("header"))
        page.goto(url + "/films/1/")
        self.assertEqual(page.locator("form.rate").count(), 0)
        self.assertIn("Log in to rate", page.inner_text("dl.facts"))
        refused = page.request.post(url + "/films/1/rate/", form={"stars": "5"}, max_redirects=0)
        self.assertEqual(refused.status, 403)  # no CSRF token, and no session to rate with
        page.goto(url + "/ratings/")
        self.assertTrue(page.url.startswith(url + "/accounts/login/"))
        self.shot(page, "logged-out-cannot-rate")
