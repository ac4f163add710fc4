"""The web application's tests (``tests/web``) need Django, the ``web`` extra. Without it they are not
collected; this test says so as a skip, and fails under CI (``CI`` set by ``.ci/run``), whose test
command installs the extra."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest


def test_the_web_extra_is_installed_for_the_web_tests():
    if importlib.util.find_spec("django") is None:
        message = "Django is not installed (pip install -e '.[web]'): the web application's tests did not run"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_the_core_package_and_the_command_line_never_import_django():
    code = (
        "import sys, fastmf, fastmf.cli; from click.testing import CliRunner; "
        "assert CliRunner().invoke(fastmf.cli.main, ['web', '--help']).exit_code == 0; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'django' or m.startswith('fastmf.web')); "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
