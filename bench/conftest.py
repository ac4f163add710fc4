"""Collect ``bench_*.py`` files in this folder.

The default test run never sees bench/ (``testpaths = ["tests"]`` in
pyproject.toml); ``pytest bench --benchmark-only`` collects the files here
without having to override ``python_files`` on the command line. If
``python_files`` is overridden to match them anyway, they are left to pytest's
own collector so that nothing runs twice; the same holds for a file named on the
command line (``pytest bench/bench_als.py``).
"""

from __future__ import annotations

import fnmatch

import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    patterns = parent.config.getini("python_files")
    if parent.session.isinitpath(file_path) or any(fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return None  # pytest's python plugin collects it already (named on the command line or matched)
    return pytest.Module.from_parent(parent, path=file_path)
