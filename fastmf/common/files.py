"""Writing files and folders so that readers never see partial output.

A folder or file is written under a temporary name beside its target and
renamed into place only when complete; an interrupted or failed write
removes its temporary and leaves the target as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from fastmf.common.errors import FastMFError


def atomic_dir(out_dir: str, write, force: bool = False) -> None:
    """Call ``write(tmp_dir)`` then move ``tmp_dir`` to ``out_dir`` (replacing it only with ``force``)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FastMFError(f"{out_dir}: output path exists and is not a folder")
    if os.path.exists(out_dir) and os.listdir(out_dir) and not force:
        raise FastMFError(f"{out_dir}: output folder exists and is not empty (use --force to replace it)")
    parent = os.path.dirname(out_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700); give the usual permissions
    except OSError as exc:
        raise FastMFError(f"{out_dir}: cannot create the output folder: {exc.strerror or exc}") from None
    try:
        write(tmp)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "x"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except OSError as exc:  # disk full, permissions...: a one-line error, and no partial output
        shutil.rmtree(tmp, ignore_errors=True)
        raise FastMFError(f"{out_dir}: cannot write the output folder: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_file(path: str, write) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=os.path.dirname(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
