from django.apps import AppConfig


class FilmsConfig(AppConfig):
    name = "fastmf.web.films"
    label = "films"
    verbose_name = "Films and ratings"
    default_auto_field = "django.db.models.BigAutoField"
