"""``python -m django fastmf_train JOB_ID``: run one queued training job (started by the training page)."""

from django.core.management.base import BaseCommand

from fastmf.web.training.jobs import run


class Command(BaseCommand):
    help = "Run one queued training job of the fastmf web application."

    def add_arguments(self, parser):
        parser.add_argument("job_id", type=int)

    def handle(self, *args, job_id, **options):
        run(job_id)
