"""The web application's tests (``tests/web``) need Django, the ``web`` extra. Without it they are not
collected; this test says so as a skip, and fails under CI (``CI`` set by ``.ci/run``), whose test
command installs the extra."""

from __future__ import annotations

import importlib.util
import os

import pytest


def test_the_web_extra_is_installed_for_the_web_tests():
    if importlib.util.find_spec("django") is None:
        message = "Django is not installed (pip install -e '.[web]'): the web application's tests did not run"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
