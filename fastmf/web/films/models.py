"""A user's ratings. Films themselves live in the catalogue (:mod:`fastmf.web.catalogue`), not in the
database: a rating names its film by the catalogue's item id."""

from django.conf import settings
from django.db import models


class Rating(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="film_ratings")
    item = models.CharField(max_length=64, help_text="The film's id in the catalogue.")
    stars = models.FloatField(help_text="Half stars within the served model's rating scale.")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "item"], name="one_rating_per_user_and_film")]
        indexes = [models.Index(fields=["user", "-updated"], name="ratings_of_user_by_date")]

    def __str__(self) -> str:
        return f"{self.user} rated {self.item}: {self.stars:g}"
