"""Static files (the site's stylesheet, the admin's) served by the application itself, in every mode.

They are few and small; behind a web server set ``FASTMF_WEB_STATIC_ROOT``, run ``collectstatic`` and let
it serve ``/static/`` instead.
"""

from __future__ import annotations

import mimetypes
import posixpath

from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse

from fastmf.web.errors import problem


def serve(request, path: str):
    clean = posixpath.normpath(path).lstrip("/")
    try:
        found = None if clean.startswith("..") else finders.find(clean)
    except SuspiciousFileOperation:
        found = None
    if not found:
        return problem(request, 404, f"No static file {path!r}.")
    content_type, encoding = mimetypes.guess_type(found)
    response = FileResponse(open(found, "rb"), content_type=content_type or "application/octet-stream")
    if encoding:
        response["Content-Encoding"] = encoding
    response["Cache-Control"] = "public, max-age=3600"
    return response
