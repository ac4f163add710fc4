"""Fixtures of the web application's tests (set up in ``web_support``; not collected without Django)."""

from web_support import HAVE_DJANGO

collect_ignore_glob = [] if HAVE_DJANGO else ["test_*.py"]

if HAVE_DJANGO:
    from web_support import catalogue, django_test_database, models  # noqa: F401 (fixtures)
