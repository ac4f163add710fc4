"""Writing files and folders without ever losing or corrupting what a user owns.

Rules every command that writes follows (``train --out``, ``prepare``, ``synth``, ``plot``,
``abtest`` logs, ``bench --json``):

* **Nothing a user owns is overwritten or deleted.** An existing path is replaced only when it
  holds an output of the same kind that fastmf wrote (a model, a prepared folder, a figure, a
  benchmark record), and the caller says so; anything else is refused with one line. The
  current folder, a folder holding it, and a folder holding the command's input data are
  refused as outputs whatever they contain.
* **Readers never see partial output.** Output is written under a hidden temporary name
  (``.NAME.tmp-PID-RANDOM``) beside its target, flushed to disk and renamed into place in one
  ``os.replace``; a failed write removes its temporary and leaves the target as it was.
* **No debris.** Temporaries left by a process that was killed are removed by the next write to
  the same place (their PID is in their name and no longer runs).
* Files get the usual permissions (``0666`` less the umask, so ``0644`` under ``022``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil

from fastmf.common.errors import FastMFError


def _temp_path(path: str, tag: str = "tmp") -> str:
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(path: str) -> list[str]:
    """Remove the temporaries of writes to ``path`` whose process is gone; returns what was removed."""
    parent, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:tmp|old)-(\d+)-[0-9a-f]+$")
    removed = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry)
        if m is None or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        full = os.path.join(parent, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            try:
                os.remove(full)
            except OSError:
                continue
        removed.append(full)
    return removed


def check_target(path: str, replaceable=None, what: str = "output", protect=()) -> bool:
    """Whether writing ``path`` replaces an existing output; a one-line error when it must not be written.

    ``replaceable(path)`` says whether an existing ``path`` is an output of this kind that fastmf
    wrote (None: nothing existing may be replaced); ``protect`` lists input paths the output may
    neither be nor contain.
    """
    target = os.path.abspath(path)
    here = os.getcwd()
    if target == here or here.startswith(target.rstrip(os.sep) + os.sep):
        raise FastMFError(f"{path}: is the current folder or holds it; write the {what} to a new path")
    for source in protect:
        source = os.path.abspath(source)
        if target == source or source.startswith(target.rstrip(os.sep) + os.sep):
            raise FastMFError(f"{path}: holds the input data {source}; write the {what} somewhere else")
    if not os.path.lexists(target):
        return False
    if replaceable is not None and not os.path.islink(target) and replaceable(target):
        return True
    kind = "folder" if os.path.isdir(target) else "file"
    raise FastMFError(
        f"{path}: a {kind} that is not a fastmf {what} is there; choose another path "
        "(fastmf never overwrites what it did not write)"
    )


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_file(path: str, write, replaceable=None, what: str = "output", protect=()) -> bool:
    """Call ``write(tmp_path)`` on a new temporary file, then rename it to ``path`` in one step.

    The target rules of :func:`check_target` apply first; returns whether an existing output was
    replaced. An existing folder of ours at ``path`` (the model format of fastmf 0.1) is moved
    aside and removed once the new file is in place.
    """
    path = os.path.abspath(path)
    replacing = check_target(path, replaceable, what, protect)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise FastMFError(f"{path}: cannot create its folder: {exc.strerror or exc}") from None
    clean_stale(path)
    tmp = _temp_path(path)
    aside = None
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if os.path.isdir(path):
            aside = _temp_path(path, "old")
            os.rename(path, aside)
        os.replace(tmp, path)
        _fsync_dir(parent)
    except OSError as exc:  # disk full, permissions...: a one-line error, and no partial output
        _remove(tmp)
        raise FastMFError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return replacing


def atomic_dir(out_dir: str, write, replaceable=None, what: str = "output folder", protect=()) -> bool:
    """Call ``write(tmp_dir)`` on a new temporary folder, then move it to ``out_dir``.

    The target rules of :func:`check_target` apply first (an existing ``out_dir`` is replaced only
    when ``replaceable`` says it is ours); returns whether one was replaced.
    """
    out_dir = os.path.abspath(out_dir)
    replacing = check_target(out_dir, replaceable, what, protect)
    parent = os.path.dirname(out_dir)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise FastMFError(f"{out_dir}: cannot create its folder: {exc.strerror or exc}") from None
    clean_stale(out_dir)
    tmp = _temp_path(out_dir)
    aside = None
    try:
        os.mkdir(tmp, 0o777)
        write(tmp)
        if os.path.lexists(out_dir):
            aside = _temp_path(out_dir, "old")
            os.rename(out_dir, aside)
        os.rename(tmp, out_dir)
        _fsync_dir(parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FastMFError(f"{out_dir}: cannot write the folder: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return replacing


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
