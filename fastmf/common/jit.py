"""Time spent compiling kernels, told apart from the work itself.

Numba compiles a kernel the first time it meets new argument types, unless its on-disk cache
already holds it (then the kernel loads in milliseconds). :func:`watch_compiles` listens for
Numba's ``numba:compile`` events, which fire only for real compilations, so a caller can say
"compiling kernels" when it happens and report those seconds apart from the epochs'.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from numba.core import event


class CompileWatch(event.Listener):
    """Seconds spent in (outermost) compilations while installed; ``on_first()`` at the first one."""

    def __init__(self, on_first=None):
        self.seconds = 0.0
        self.count = 0
        self._depth = 0
        self._start = 0.0
        self._on_first = on_first

    def on_start(self, ev) -> None:
        if self._depth == 0:
            if self.count == 0 and self._on_first is not None:
                self._on_first()
            self._start = time.perf_counter()
            self.count += 1
        self._depth += 1

    def on_end(self, ev) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start


@contextmanager
def watch_compiles(on_first=None):
    """A :class:`CompileWatch` listening while the context runs."""
    watch = CompileWatch(on_first)
    with event.install_listener("numba:compile", watch):
        yield watch
