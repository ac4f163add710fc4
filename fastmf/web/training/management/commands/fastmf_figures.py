"""``python -m django fastmf_figures``: draw the data page's missing figures of the served model file."""

from django.core.management.base import BaseCommand

from fastmf.web.training.jobs import draw_figures


class Command(BaseCommand):
    help = "Draw the missing figures of the served model and its catalogue for the data page."

    def handle(self, *args, **options):
        draw_figures()
