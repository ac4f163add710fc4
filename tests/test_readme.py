"""Every command and code block of the README runs as written.

Bash blocks run line by line with the installed ``fastmf`` command, in README order, in one
working folder (later blocks use the models earlier ones saved), with the files the examples
name as the user's own (``clicks.csv``, ``tags.csv``) put there first. ``pip install`` steps are
left to ``.ci/run``, which installs the package, and the test command is this suite itself. A
block after ``<!-- readme-test: not run (reason) -->`` is skipped. Python blocks run as scripts
in the same folder.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
BLOCK = re.compile(r"(?:<!--\s*(?P<mark>[^>]*?)\s*-->\s*\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def readme_blocks() -> list[tuple[int, str, str]]:
    """``(line, language, code)`` of the README's code blocks that are run."""
    text = (ROOT / "README.md").read_text()
    out = []
    for m in BLOCK.finditer(text):
        mark = m.group("mark") or ""
        if mark.startswith(("readme-test: not run", "test-command")):
            continue
        out.append((text[: m.start("body")].count("\n") + 1, m.group("lang"), m.group("body")))
    return out


def commands(code: str) -> list[str]:
    """The shell commands of a bash block, without ``pip install`` steps (``.ci/run`` installs)."""
    out = []
    for line in code.splitlines():
        parts = [p.strip() for p in line.split("&&") if p.strip() and "pip install" not in p]
        if parts and not parts[0].startswith("#"):
            out.append(" && ".join(parts))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A working folder holding the user files the examples name."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copy(FIXTURES / "implicit" / "clicks.csv", folder / "clicks.csv")
    with open(ROOT / "fastmf" / "datasets" / "ml-latest-small" / "movies.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["movieId"], g) for r in csv.DictReader(fh) for g in r["genres"].split("|")[:1]]
    with open(folder / "tags.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("item", "feature"), *rows])
    return folder


def test_the_readme_has_the_blocks_users_follow():
    blocks = readme_blocks()
    assert sum(lang == "python" for _, lang, _ in blocks) >= 1
    assert sum(len(commands(code)) for _, lang, code in blocks if lang == "bash") >= 20
    assert commands("python3 -m pip install . && fastmf train") == ["fastmf train"]


@pytest.mark.slow
def test_every_readme_block_runs_as_written(workdir):
    env = dict(
        os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", MPLBACKEND="Agg"
    )
    for line, lang, code in readme_blocks():
        if lang == "python":
            runs = [[sys.executable, "-c", code]]
        elif lang == "bash":
            runs = [["bash", "-euo", "pipefail", "-c", cmd] for cmd in commands(code)]
        else:
            continue
        for run in runs:
            result = subprocess.run(run, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
            output = result.stdout[-2000:] + result.stderr[-3000:]
            assert result.returncode == 0, f"README line {line}: {run[-1]}\n{output}"
