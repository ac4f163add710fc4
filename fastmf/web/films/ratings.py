"""Reading and writing one user's ratings: every value checked against the catalogue and the served
model's scale before anything is written, several ratings written in one transaction (all or none).

Every function takes the user whose ratings it reads or changes; no function takes a rating's
database id, so no request can name another user's rating.
"""

from __future__ import annotations

from django.db import transaction

from fastmf.web.engine import Served, ServeError
from fastmf.web.films.models import Rating


class UnknownFilm(ServeError):
    """The id names no film of the catalogue."""


def ratings_of(user) -> dict[str, float]:
    """``{catalogue id: stars}`` of ``user`` (empty for an anonymous visitor)."""
    if not user.is_authenticated:
        return {}
    return dict(Rating.objects.filter(user=user).values_list("item", "stars"))


def ratings_for(user, keys) -> dict[str, float]:
    """``user``'s ratings of the films ``keys`` only."""
    if not user.is_authenticated or not keys:
        return {}
    return dict(Rating.objects.filter(user=user, item__in=list(keys)).values_list("item", "stars"))


def checked(served: Served, key, stars) -> tuple[str, float]:
    """``(catalogue id, stars)`` after checking both; UnknownFilm or ServeError with a clear message."""
    i = served.catalogue.find(key)
    if i is None:
        raise UnknownFilm(f"there is no film with id {str(key)[:64]!r} in the catalogue")
    return served.catalogue.keys[i], served.check_rating(stars)


def save_ratings(user, served: Served, ratings: dict) -> dict[str, float]:
    """Set ``user``'s ratings ``{film id: stars}``: all checked first, then written in one transaction."""
    clean = dict(checked(served, key, stars) for key, stars in ratings.items())
    with transaction.atomic():
        for key, stars in clean.items():
            Rating.objects.update_or_create(user=user, item=key, defaults={"stars": stars})
    return clean


def remove_rating(user, served: Served, key) -> bool:
    """Remove ``user``'s rating of film ``key``; whether there was one. A rating of a film that has
    left the catalogue (a new --data) can still be removed; any other unknown id is UnknownFilm."""
    i = served.catalogue.find(key)
    item = served.catalogue.keys[i] if i is not None else str(key).strip()
    deleted, _ = Rating.objects.filter(user=user, item=item).delete()
    if not deleted and i is None:
        raise UnknownFilm(f"there is no film with id {str(key)[:64]!r} in the catalogue")
    return deleted > 0
