"""The architecture holds: layers point one way, no import cycle, no hidden imports, lint clean.

The layer and cycle contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are checked
with import-linter. ``kernels/`` and ``data_prep/`` are installed inside the ``fastmf`` namespace by
setuptools' ``package-dir``, which import-linter cannot follow in an editable install, so the
check runs on a copy of the sources laid out as installed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: packages whose modules may import fastmf modules inside functions (deferred loading for ``--help``)
DEFERRED_IMPORTS_ALLOWED = ("fastmf/cli/",)


def tool(name: str) -> str:
    """The console script ``name`` of the running interpreter's environment."""
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed (it is part of the test extra)")
    return path


@pytest.fixture()
def installed_layout(tmp_path) -> Path:
    """``fastmf/`` with ``kernels/`` and ``data_prep/`` inside it, beside a copy of ``pyproject.toml``."""
    shutil.copytree(ROOT / "fastmf", tmp_path / "fastmf", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("kernels", "data_prep"):
        shutil.copytree(ROOT / name, tmp_path / "fastmf" / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("lint-imports"), "--no-cache", "--config", "pyproject.toml"],
        cwd=folder,
        env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_are_kept(installed_layout):
    result = lint_imports(installed_layout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, upward",
    [
        ("fastmf/kernels/metrics.py", "from fastmf.models.base import Recommender"),
        ("fastmf/data_prep/splits.py", "from fastmf.models import ALS"),
        ("fastmf/models/base.py", "from fastmf.registry import load_model"),
        ("fastmf/common/files.py", "from fastmf.data_prep import dataset"),
    ],
)
def test_an_upward_import_breaks_the_layers(installed_layout, module, upward):
    path = installed_layout / module
    path.write_text(path.read_text() + f"\n{upward}  # deliberately wrong\n")
    result = lint_imports(installed_layout)
    assert result.returncode != 0
    assert "Layers point one way" in result.stdout and "BROKEN" in result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout


def test_an_import_cycle_between_siblings_is_caught(installed_layout):
    # metrics.rating -> metrics.ranking -> metrics.rating, both inside one layer
    path = installed_layout / "fastmf/metrics/ranking.py"
    path.write_text(path.read_text() + "\nfrom fastmf.metrics import rating  # deliberately cyclic\n")
    path = installed_layout / "fastmf/metrics/rating.py"
    path.write_text(path.read_text() + "\nfrom fastmf.metrics import ranking  # deliberately cyclic\n")
    result = lint_imports(installed_layout)
    assert result.returncode != 0 and "No import cycle" in result.stdout


def function_level_imports(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a fastmf module inside a function or method."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("fastmf"):
                found.append((inner.lineno, inner.module))
            elif isinstance(inner, ast.Import):
                found += [(inner.lineno, a.name) for a in inner.names if a.name.startswith("fastmf")]
    return found


def test_no_fastmf_import_inside_a_function_outside_the_cli():
    sources = [p for d in ("fastmf", "kernels", "data_prep") for p in (ROOT / d).rglob("*.py")]
    assert len(sources) > 40
    offenders = []
    for path in sources:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(DEFERRED_IMPORTS_ALLOWED):
            continue
        offenders += [f"{rel}:{line} imports {module}" for line, module in function_level_imports(path.read_text())]
    assert not offenders, "\n".join(offenders)


def test_the_import_check_finds_a_hidden_import():
    source = "def load(path):\n    from fastmf.registry import MODELS\n    return MODELS\n"
    assert function_level_imports(source) == [(2, "fastmf.registry")]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    """The linter passes and every file is as the formatter writes it (both configured in pyproject.toml)."""
    result = subprocess.run(
        [tool("ruff"), *command, "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dask_import_outside_the_cluster_driver_is_caught(installed_layout):
    path = installed_layout / "fastmf/models/als.py"
    path.write_text(path.read_text() + "\nimport distributed  # deliberately outside the cluster driver\n")
    result = lint_imports(installed_layout)
    assert result.returncode != 0 and "imported by the cluster driver only" in result.stdout
