"""``python -m django fastmf_first_model``: train the first served model on the catalogue (``fastmf web``'s
first start), recorded as a training job like any other."""

from django.core.management.base import BaseCommand, CommandError

from fastmf.registry import model_class
from fastmf.web.training import jobs
from fastmf.web.training.models import TrainingJob


class Command(BaseCommand):
    help = "Train the first model of the fastmf web application (ALS with its defaults) on the catalogue."

    def handle(self, *args, **options):
        params = model_class("als")().get_params()
        job = TrainingJob.objects.create(kind="als", params=params, holdout=0.1, epochs=int(params["epochs"]))
        jobs.run(job.pk)
        job.refresh_from_db()
        if job.status != TrainingJob.DONE:
            raise CommandError(f"training the first model failed: {job.message}")
        self.stdout.write(job.message)
