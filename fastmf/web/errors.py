"""Errors as pages or, under ``/api/``, as JSON ``{"error": message, "status": code}``: never a bare 500.

Every refusal of the application goes through :func:`problem`; Django's own handlers (400, 403,
404, 500 and the CSRF failure view) are pointed here by the settings and the URL configuration.
"""

from __future__ import annotations

import logging

from django.http import JsonResponse
from django.shortcuts import render

from fastmf.web.engine import ServeError

log = logging.getLogger("fastmf.web")

TITLES = {
    400: "Bad request",
    401: "Log in first",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Busy",
    500: "Server error",
    503: "Not available",
}


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, "status": status, **extra}, status=status)


def problem(request, status: int, message: str, title: str | None = None):
    """The error ``message`` with HTTP ``status``: JSON for the API, else the error page."""
    if is_api(request):
        return json_error(status, message)
    return render(
        request,
        "error.html",
        {"status": status, "title": title or TITLES.get(status, "Error"), "message": message},
        status=status,
    )


def csrf_failure(request, reason: str = ""):
    return problem(
        request,
        403,
        "The request was refused because its CSRF token is missing or wrong "
        f"({reason or 'no reason given'}). Reload the form and submit it again "
        "(cookies must be enabled); programs send the csrftoken cookie's value "
        "in an X-CSRFToken header.",
        "Form check failed",
    )


def bad_request(request, exception=None):
    return problem(request, 400, "The request could not be understood.")


def permission_denied(request, exception=None):
    return problem(
        request, 403, str(exception) if exception and str(exception) else "You do not have permission to do this."
    )


def page_not_found(request, exception=None):
    return problem(request, 404, f"Nothing lives at {request.path}.")


def server_error(request):
    return problem(request, 500, "Something went wrong on our side; it has been logged.")


class ServeErrors:
    """A model or catalogue that cannot be served answers 503 with the reason (a one-line ServeError)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, ServeError):
            log.error("%s", exception)
            return problem(request, 503, f"The recommender is not available: {exception}")
        return None
