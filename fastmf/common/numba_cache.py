"""Where Numba caches the compiled kernels: a per-user folder keyed to the kernels' source.

Numba's default writes its cache beside the source, inside ``site-packages`` for an installed
fastmf (where it outlives the package and confuses a later editable install), and it keeps
inlined helpers compiled from an older version of the source (a stale kernel that still passes
its checks). Unless ``NUMBA_CACHE_DIR`` is set, fastmf caches under
``$XDG_CACHE_HOME/fastmf/numba/<key>`` (``~/.cache`` by default), where ``key`` hashes the
source of every kernel module and of the layout constants they inline, with the Numba and
Python versions: any change of them starts a fresh cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import numba


def _kernel_sources() -> list[Path]:
    """The kernel modules and the shared layout module they inline constants from."""
    kernels = Path(importlib.util.find_spec("fastmf.kernels").submodule_search_locations[0])
    return sorted(kernels.glob("*.py")) + [Path(__file__).with_name("layout.py")]


def cache_key() -> str:
    """A short hash of the kernels' source and the Numba and Python versions."""
    digest = hashlib.sha256(f"{numba.__version__} {sys.version}".encode())
    for path in _kernel_sources():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def configure() -> str:
    """Point Numba's cache at the keyed per-user folder (unless ``NUMBA_CACHE_DIR`` is set); returns it.

    Must run before the kernel modules are imported: Numba fixes a function's cache folder when
    the function is decorated.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return numba.config.CACHE_DIR
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "fastmf", "numba", cache_key())
    numba.config.CACHE_DIR = folder
    return folder
