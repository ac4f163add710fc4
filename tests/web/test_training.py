"""The staff training page and the data page: a job trains on the catalogue plus the site's ratings, records
its progress per epoch, and replaces the served model whole when it finishes; hyperparameters are checked
by the model's own declaration; one job at a time; the figures are drawn once per model and then served
from the cache. Jobs run inline here (``FASTMF_WEB_JOB_RUNNER=inline``) so that a test sees their end."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.test import TestCase
from web_support import PASSWORD, serve

from fastmf.web.engine import get_engine
from fastmf.web.films.models import Rating
from fastmf.web.training import jobs
from fastmf.web.training.forms import JobForm
from fastmf.web.training.models import TrainingJob


def job_form(kind: str = "als", **values) -> dict:
    """The training form's POST data: the model's defaults, with ``values`` instead."""
    form = JobForm(kind)
    data = {name: field.initial for name, field in form.fields.items() if field.initial not in (None, False)}
    return {**data, "kind": kind, **values}


class TrainingTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.staff = User.objects.create_superuser("root", password=PASSWORD)
        cls.alice = User.objects.create_user("alice", password=PASSWORD)
        Rating.objects.create(user=cls.alice, item="1", stars=5.0)
        Rating.objects.create(user=cls.alice, item="3114", stars=4.5)

    def setUp(self):
        serve("als", path=settings.FASTMF_MODEL)
        self.client.force_login(self.staff)

    def test_the_page_shows_the_served_model_read_only_and_a_form_from_its_declaration(self):
        r = self.client.get("/training/")
        self.assertContains(r, 'id="settings"')
        self.assertContains(r, "r̂_ui = μ + b_u + b_i + U_u · V_i")
        self.assertContains(r, 'name="factors"')
        self.assertNotContains(r, 'name="backend"')
        self.assertContains(self.client.get("/training/", {"kind": "vi"}), 'name="learn_hyper"')
        self.assertContains(self.client.get("/training/", {"kind": "bpr"}), "Unknown model kind", status_code=400)

    def test_a_job_trains_on_the_site_ratings_and_swaps_the_served_model(self):
        before = get_engine().current()
        r = self.client.post("/training/", job_form(factors=4, epochs=3, holdout=0.1))
        job = TrainingJob.objects.get()
        self.assertRedirects(r, f"/training/jobs/{job.pk}/")
        self.assertEqual(job.status, TrainingJob.DONE, job.message)
        self.assertEqual(job.created_by, self.staff)
        self.assertEqual((job.site_ratings, job.site_users), (2, 1))
        self.assertEqual([h["epoch"] for h in job.history], [1, 2, 3])
        self.assertTrue(all(h["test_rmse"] > 0 for h in job.history))
        after = get_engine().current()
        self.assertIsNot(after, before)
        self.assertEqual(after.model.item_factors_.shape[1], 4)
        self.assertEqual(after.model.n_users, before.catalogue.n_users + 1)  # alice is trained on
        page = self.client.get(f"/training/jobs/{job.pk}/")
        self.assertContains(page, "<polyline")
        self.assertContains(page, "validation RMSE")
        progress = self.client.get(f"/training/jobs/{job.pk}.json").json()
        self.assertEqual((progress["status"], progress["epochs_done"]), ("done", 3))

    def test_bad_hyperparameters_are_refused_with_the_models_message(self):
        r = self.client.post("/training/", job_form(factors=0))
        self.assertContains(r, "factors", status_code=400)
        r = self.client.post("/training/", job_form(lam="lots"))
        self.assertContains(r, "Enter a number", status_code=400)
        r = self.client.post("/training/", job_form(holdout=0.9))
        self.assertEqual(r.status_code, 400)
        self.assertFalse(TrainingJob.objects.exists())

    def test_one_job_at_a_time_and_cancelling(self):
        running = TrainingJob.objects.create(kind="als", params={}, status=TrainingJob.RUNNING)
        r = self.client.post("/training/", job_form(epochs=1))
        self.assertContains(r, f"Training job {running.pk} is still running", status_code=409)
        self.assertEqual(TrainingJob.objects.count(), 1)
        self.client.post(f"/training/jobs/{running.pk}/cancel/")
        running.refresh_from_db()
        self.assertTrue(running.cancel_requested)

    def test_a_job_whose_process_died_is_marked_failed(self):
        dead = TrainingJob.objects.create(kind="als", params={}, status=TrainingJob.RUNNING, pid=2**22 + 12345)
        self.assertContains(self.client.get(f"/training/jobs/{dead.pk}/"), "ended without finishing")
        dead.refresh_from_db()
        self.assertEqual(dead.status, TrainingJob.FAILED)

    def test_unknown_jobs_are_404(self):
        self.assertEqual(self.client.get("/training/jobs/999/").status_code, 404)
        self.assertEqual(self.client.get("/training/jobs/999.json").status_code, 404)


class DataPage(TestCase):
    def setUp(self):
        serve("als", path=settings.FASTMF_MODEL)

    def test_figures_are_drawn_once_per_model_and_served_from_the_cache(self):
        r = self.client.get("/data/")
        self.assertEqual(r.status_code, 200)
        urls = [f["url"] for part in r.context["figures"].values() for f in part]
        self.assertTrue(any("/data-ml-latest-small/" in u for u in urls) and any("/model-" in u for u in urls))
        image = self.client.get(urls[0])
        self.assertEqual((image.status_code, image["Content-Type"]), (200, "image/png"))
        served = get_engine().current()
        marker = jobs.figure_folders(served.catalogue.label, served.key)[1] / jobs.MARKER
        drawn = marker.stat().st_mtime_ns
        self.client.get("/data/")
        self.assertEqual(marker.stat().st_mtime_ns, drawn)  # not drawn again
        self.assertEqual(self.client.get(urls[0].rsplit("/", 1)[0] + "/settings.py").status_code, 404)
        self.assertEqual(self.client.get("/data/figures/../x.png").status_code, 404)
