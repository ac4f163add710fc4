"""The pages: home, search, film, rate, my ratings, recommendations, register."""

from __future__ import annotations

import functools
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from fastmf.web.engine import VI_STRATEGIES, ServeError, get_engine
from fastmf.web.errors import problem
from fastmf.web.films import ratings as R

SEARCH_PAGE = 20
RATINGS_PAGE = 50
SIMILAR = 10
STRATEGY_HELP = {
    "mean": "the predicted rating",
    "penalized": "predicted rating / (1 + variance): sure bets first",
    "ucb": "predicted rating + its standard deviation: films the model knows little about get a chance",
    "thompson": "one draw from the model's posterior: a different list on each visit",
}


def served():
    return get_engine().current()


@functools.lru_cache(maxsize=256)
def star_options(steps: tuple, mine: float | None) -> str:
    """The ``<option>`` elements of a rating menu, the user's rating selected (else the third from the top).
    Pages show one menu per film and the menus differ only by the selected value: built once here, not
    by the template engine per row (which took most of a recommendations page's time)."""
    chosen = mine if mine is not None else steps[max(0, len(steps) - 3)]
    return format_html_join(
        "", '<option value="{}"{}>{} ★</option>', ((x, " selected" if x == chosen else "", x) for x in steps)
    )


def film_url(key: str) -> str:
    """The address of a film's page, ``reverse("film", args=[key])`` without the resolver: pages list
    20-40 films with two links each, and reversing took a tenth of their server time."""
    return f"/films/{quote(key, safe='')}/"


def film_row(s, i: int, mine: dict, **extra) -> dict:
    """What a page shows of film ``i``: facts, the user's rating and its menu, and anything ``extra``."""
    c = s.catalogue
    stars = mine.get(c.keys[i])
    return {
        "key": c.keys[i],
        "url": film_url(c.keys[i]),
        "title": c.titles[i],
        "name": c.names[i],
        "year": c.years[i],
        "genres": c.genres[i],
        "count": int(c.counts[i]),
        "mean": None if not c.counts[i] else float(c.means[i]),
        "mine": stars,
        "options": star_options(tuple(s.steps), stars),
        **extra,
    }


def home(request):
    s = served()
    mine = R.ratings_of(request.user)
    popular = [film_row(s, int(i), mine) for i in s.catalogue.popular[:12]]
    return render(
        request,
        "films/home.html",
        {"popular": popular, "catalogue": s.catalogue, "rated": len(mine), "model": s.describe()},
    )


def search(request):
    s = served()
    query = request.GET.get("q", "").strip()[:200]
    try:
        page_number = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return problem(request, 400, "page must be a whole number")
    result = s.catalogue.search(query, limit=SEARCH_PAGE, offset=(page_number - 1) * SEARCH_PAGE) if query else None
    films = []
    if result:
        keys = [s.catalogue.keys[i] for i in result.items]
        mine = R.ratings_for(request.user, keys)
        films = [film_row(s, i, mine) for i in result.items]
    pages = 0 if result is None else (result.total + SEARCH_PAGE - 1) // SEARCH_PAGE
    return render(
        request,
        "films/search.html",
        {
            "query": query,
            "films": films,
            "total": 0 if result is None else result.total,
            "page": page_number,
            "pages": pages,
            "here": request.get_full_path(),
        },
    )


def film(request, item):
    s = served()
    i = s.catalogue.find(item)
    if i is None:
        return problem(request, 404, f"There is no film with id {item!r} in the catalogue.")
    c = s.catalogue
    mine = R.ratings_for(request.user, [c.keys[i]])
    similar_pairs = s.similar(i, k=SIMILAR, min_ratings=min(10, int(c.counts[i])))
    similar_mine = R.ratings_for(request.user, [c.keys[j] for j, _ in similar_pairs])
    similar = [film_row(s, j, similar_mine, cosine=cos) for j, cos in similar_pairs]
    norm = s.factor_norm(i)
    variance = None if not c.counts[i] else float(c.variances[i])
    return render(
        request,
        "films/film.html",
        {
            "film": film_row(s, i, mine),
            "similar": similar,
            "here": request.get_full_path(),
            "variance": variance,
            "sd": None if variance is None else variance**0.5,
            "variance_percentile": None if c.counts[i] < 10 else int(c.variance_percentile[i] * 100),
            "norm": None if norm is None else norm[0],
            "norm_percentile": None if norm is None else int(norm[1] * 100),
            "model_kind": s.model.kind,
        },
    )


def _back(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


@login_required
@require_POST
def rate(request, item):
    """Give, change (``stars``) or remove (``remove``) the user's rating of one film; back to ``next``."""
    s = served()
    back = _back(request, reverse("film", args=[item]))
    try:
        if "remove" in request.POST:
            title = s.catalogue.titles[s.catalogue.find(item)] if s.catalogue.find(item) is not None else item
            if R.remove_rating(request.user, s, item):
                messages.success(request, f"Removed your rating of {title}.")
            else:
                messages.info(request, f"You had not rated {title}.")
        else:
            if "stars" not in request.POST:
                return problem(request, 400, "Choose a number of stars to rate the film.")
            key, stars = R.checked(s, item, request.POST["stars"])
            R.save_ratings(request.user, s, {key: stars})
            messages.success(request, f"You rated {s.catalogue.titles[s.catalogue.find(key)]} {stars:g} stars.")
    except R.UnknownFilm as exc:
        return problem(request, 404, str(exc).capitalize() + ".")
    except ServeError as exc:
        return problem(request, 400, str(exc).capitalize() + ".")
    return redirect(back)


@login_required
def my_ratings(request):
    s = served()
    from_db = list(request.user.film_ratings.values_list("item", "stars", "updated"))
    rows = []
    for key, stars, updated in from_db:
        i = s.catalogue.find(key)
        if i is None:  # a film that left the catalogue: shown, so that it can still be removed
            rows.append(
                {
                    "key": key,
                    "url": film_url(key),
                    "title": f"(film {key}, no longer in the catalogue)",
                    "mine": stars,
                    "options": star_options(tuple(s.steps), stars),
                    "updated": updated,
                    "gone": True,
                }
            )
        else:
            rows.append(film_row(s, i, {key: stars}, updated=updated))
    page = Paginator(rows, RATINGS_PAGE).get_page(request.GET.get("page"))
    return render(request, "films/my_ratings.html", {"page": page, "total": len(rows), "here": request.get_full_path()})


def recommendations(request):
    s = served()
    strategy = request.GET.get("strategy", "mean")
    if strategy not in VI_STRATEGIES or (strategy != "mean" and not s.is_vi):
        return problem(
            request,
            400,
            f"Unknown strategy {strategy[:40]!r}: "
            + (f"choose one of {', '.join(VI_STRATEGIES)}." if s.is_vi else "this model ranks by predicted rating."),
        )
    mine = R.ratings_of(request.user)
    recs = s.recommend(
        mine, k=settings.FASTMF_RECOMMENDATIONS, strategy=strategy, min_ratings=settings.FASTMF_MIN_RATINGS
    )
    c = s.catalogue
    rows = []
    for r in recs.items:
        extra = {"score": r.score, "predicted": r.mean, "low": r.low, "high": r.high}
        if r.near is not None:
            extra.update(
                near=c.titles[r.near],
                near_url=film_url(c.keys[r.near]),
                near_cosine=r.near_cosine,
                near_rating=r.near_rating,
            )
        rows.append(film_row(s, r.index, {}, **extra))
    lo, hi = s.rating_range
    return render(
        request,
        "films/recommendations.html",
        {
            "recs": rows,
            "kind": recs.kind,
            "used": recs.used,
            "unknown": recs.unknown,
            "rated": len(mine),
            "strategy": strategy,
            "strategies": [(k, STRATEGY_HELP[k]) for k in VI_STRATEGIES] if s.is_vi else [],
            "is_vi": s.is_vi,
            "here": request.get_full_path(),
            "lo": lo,
            "hi": hi,
            "model_kind": s.model.kind,
        },
    )


@require_http_methods(["GET", "POST"])
def register(request):
    if request.user.is_authenticated:
        return redirect("recommendations")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            user = form.save()
            login(request, user)
            messages.success(request, f"Welcome, {user.username}! Rate a few films you know to get recommendations.")
            return redirect("recommendations")
        return render(request, "registration/register.html", {"form": form}, status=400)
    return render(request, "registration/register.html", {"form": form})
