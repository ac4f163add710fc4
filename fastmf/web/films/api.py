"""The JSON API: ``/api/search``, ``/api/similar``, ``/api/recommend``, ``/api/ratings``.

Answers are JSON objects; errors too (``{"error": message, "status": code}``) with the proper
status: 400 bad input, 401 not logged in, 403 CSRF, 404 unknown film, 405 wrong method. Writes
(``POST``/``DELETE /api/ratings``) use the session of a logged-in user and Django's CSRF check
(send the ``csrftoken`` cookie's value as ``X-CSRFToken``); ``POST /api/recommend`` computes
recommendations for ratings given in the request and writes nothing, so it needs no session.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from fastmf.web.engine import ServeError, get_engine
from fastmf.web.errors import json_error
from fastmf.web.films import ratings as R

MAX_K = 100
MAX_RATINGS = 10_000


class BadInput(ValueError):
    """A request the API cannot use (400, or ``status``)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _int(request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name} must be a whole number from {lo} to {hi}, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadInput(f"{name} must be a whole number from {lo} to {hi}, got {value}")
    return value


def _body(request) -> dict:
    """The request's JSON object."""
    try:
        data = json.loads(request.body.decode("utf-8") or "null")
    except UnicodeDecodeError:
        raise BadInput("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise BadInput(f"the request body must be a JSON object, got {got}")
    return data


def _ratings_in(data: dict) -> dict:
    """``{film id: stars}`` from ``{"ratings": {...}}`` or ``{"item": ID, "stars": X}``."""
    if "ratings" in data:
        ratings = data["ratings"]
        if not isinstance(ratings, dict) or not ratings:
            raise BadInput('"ratings" must be a non-empty object {"FILM_ID": STARS, ...}')
        if len(ratings) > MAX_RATINGS:
            raise BadInput(f'"ratings" holds {len(ratings):,} films; at most {MAX_RATINGS:,} at once')
        return ratings
    if "item" in data:
        if "stars" not in data:
            raise BadInput('give "stars" with "item"')
        return {data["item"]: data["stars"]}
    raise BadInput('give {"item": FILM_ID, "stars": STARS} or {"ratings": {"FILM_ID": STARS, ...}}')


def api(methods: tuple, login: bool = False):
    """Wrap a view: allowed methods (405 otherwise), login (401), BadInput/ServeError as JSON errors."""

    def wrap(view):
        def inner(request, *args, **kwargs):
            if request.method not in methods:
                response = json_error(405, f"{request.method} is not allowed here (use {' or '.join(methods)})")
                response["Allow"] = ", ".join(methods)
                return response
            if login and not request.user.is_authenticated:
                return json_error(401, "log in first (POST /accounts/login/ with username and password)")
            try:
                return view(request, *args, **kwargs)
            except R.UnknownFilm as exc:
                return json_error(404, str(exc))
            except BadInput as exc:
                return json_error(exc.status, str(exc))
            except ServeError as exc:
                return json_error(400, str(exc))

        inner.__name__ = view.__name__
        inner.__doc__ = view.__doc__
        return inner

    return wrap


def _film(s, i: int, **extra) -> dict:
    return {**s.catalogue.film(i), "url": f"/films/{s.catalogue.keys[i]}/", **extra}


@api(("GET",))
def search(request):
    """``GET /api/search?q=TEXT[&limit=20&offset=0]``: films whose title words start with the query's words."""
    s = get_engine().current()
    query = request.GET.get("q", "").strip()
    if not query:
        raise BadInput("give the title words to search for: /api/search?q=toy+story")
    limit, offset = _int(request, "limit", 20, 1, 100), _int(request, "offset", 0, 0, 10**9)
    result = s.catalogue.search(query[:200], limit=limit, offset=offset)
    return JsonResponse(
        {"query": query, "total": result.total, "offset": offset, "results": [_film(s, i) for i in result.items]}
    )


@api(("GET",))
def similar(request):
    """``GET /api/similar?item=ID[&k=10]``: the films closest to one in the model's item space (cosine)."""
    s = get_engine().current()
    key = request.GET.get("item", "").strip()
    if not key:
        raise BadInput("give the film's id: /api/similar?item=1")
    k = _int(request, "k", 10, 1, MAX_K)
    i = s.catalogue.find(key)
    if i is None:
        raise R.UnknownFilm(f"there is no film with id {key[:64]!r} in the catalogue")
    return JsonResponse(
        {"item": _film(s, i), "similar": [_film(s, j, similarity=round(cos, 4)) for j, cos in s.similar(i, k=k)]}
    )


def _recommendations(request, ratings: dict, options: dict) -> JsonResponse:
    s = get_engine().current()
    k = options.get("k", 20)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise BadInput(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
    strategy = options.get("strategy", "mean")
    min_ratings = options.get("min_ratings", settings.FASTMF_MIN_RATINGS)
    if isinstance(min_ratings, bool) or not isinstance(min_ratings, int) or min_ratings < 0:
        raise BadInput(f"min_ratings must be a whole number >= 0, got {min_ratings!r}")
    if not isinstance(strategy, str):
        raise BadInput(f"strategy must be a string, got {strategy!r}")
    recs = s.recommend(ratings, k=k, strategy=strategy, min_ratings=min_ratings)
    rows = []
    for r in recs.items:
        extra = {"score": round(r.score, 4)}
        if r.mean is not None:
            extra["predicted_rating"] = round(r.mean, 4)
        if r.low is not None:
            extra["interval_90"] = [round(r.low, 4), round(r.high, 4)]
        if r.near is not None:
            extra["closest_rated"] = {
                "id": s.catalogue.ids[r.near].item(),
                "title": s.catalogue.titles[r.near],
                "your_rating": r.near_rating,
                "cosine": round(r.near_cosine, 4),
            }
        rows.append(_film(s, r.index, **extra))
    return JsonResponse(
        {
            "kind": recs.kind,
            "model": s.model.kind,
            "strategy": recs.strategy,
            "ratings_used": recs.used,
            "ratings_unknown_to_model": recs.unknown,
            "recommendations": rows,
        }
    )


@csrf_exempt  # writes nothing and reads no session data when POSTed: the ratings come with the request
@api(("GET", "POST"))
def recommend(request):
    """``GET /api/recommend[?k=20&strategy=mean&min_ratings=10]``: for the logged-in user's stored ratings;
    ``POST {"ratings": {"FILM_ID": STARS, ...}, "k": 20, "strategy": "mean"}``: for the ratings given."""
    if request.method == "POST":
        data = _body(request)
        s = get_engine().current()
        given = _ratings_in(data) if "ratings" in data else {}
        ratings = dict(R.checked(s, key, stars) for key, stars in given.items())
        return _recommendations(request, ratings, {k: data[k] for k in ("k", "strategy", "min_ratings") if k in data})
    if not request.user.is_authenticated:
        return json_error(
            401,
            "log in to get recommendations for your ratings, or POST "
            '{"ratings": {"FILM_ID": STARS, ...}} to /api/recommend',
        )
    options = {
        "k": _int(request, "k", 20, 1, MAX_K),
        "min_ratings": _int(request, "min_ratings", settings.FASTMF_MIN_RATINGS, 0, 10**9),
    }
    if request.GET.get("strategy"):
        options["strategy"] = request.GET["strategy"]
    return _recommendations(request, R.ratings_of(request.user), options)


@ensure_csrf_cookie
@api(("GET", "POST"), login=True)
def ratings(request):
    """``GET /api/ratings``: the logged-in user's ratings (and a ``csrftoken`` cookie for writing);
    ``POST {"item": ID, "stars": X}`` or ``{"ratings": {ID: X, ...}}``: set them (all or none)."""
    s = get_engine().current()
    if request.method == "POST":
        saved = R.save_ratings(request.user, s, _ratings_in(_body(request)))
        return JsonResponse(
            {"saved": [{"item": s.catalogue.ids[s.catalogue.find(k)].item(), "stars": v} for k, v in saved.items()]}
        )
    rows = []
    for key, stars, updated in request.user.film_ratings.values_list("item", "stars", "updated"):
        i = s.catalogue.find(key)
        rows.append(
            {
                "item": s.catalogue.ids[i].item() if i is not None else key,
                "title": s.catalogue.titles[i] if i is not None else None,
                "stars": stars,
                "updated": updated.isoformat(),
            }
        )
    return JsonResponse(
        {
            "user": request.user.username,
            "count": len(rows),
            "ratings": rows,
            "scale": {"min": s.rating_range[0], "max": s.rating_range[1], "step": 0.5},
        }
    )


@api(("DELETE",), login=True)
def rating(request, item):
    """``DELETE /api/ratings/ID``: remove the logged-in user's rating of one film (404 if there is none)."""
    s = get_engine().current()
    if not R.remove_rating(request.user, s, item):
        return json_error(404, f"you have not rated film {item[:64]!r}")
    i = s.catalogue.find(item)
    return JsonResponse({"removed": item if i is None else s.catalogue.ids[i].item()})
