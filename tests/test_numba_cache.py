"""Numba's cache lives in a per-user folder keyed to the kernels' source, never beside the installed code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numba

import fastmf.kernels
from fastmf.common import numba_cache


def test_the_cache_folder_is_keyed_and_outside_the_package():
    folder = Path(numba.config.CACHE_DIR)
    assert folder.name == numba_cache.cache_key() and folder.parent.name == "numba"
    assert Path(fastmf.kernels.__file__).parent not in folder.parents


def test_a_change_to_any_kernel_source_changes_the_key(tmp_path, monkeypatch):
    sources = []
    for path in numba_cache._kernel_sources():
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        sources.append(copy)
    assert {p.name for p in sources} >= {"_linalg.py", "als.py", "layout.py"}
    monkeypatch.setattr(numba_cache, "_kernel_sources", lambda: sources)
    before = numba_cache.cache_key()
    assert before == numba_cache.cache_key()
    linalg = next(p for p in sources if p.name == "_linalg.py")
    linalg.write_text(linalg.read_text().replace("GRAM_BLOCK = 128", "GRAM_BLOCK = 64"))
    assert numba_cache.cache_key() != before


def test_numba_cache_dir_from_the_environment_wins(tmp_path):
    code = "import fastmf, numba; print(numba.config.CACHE_DIR)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"NUMBA_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == str(tmp_path)
