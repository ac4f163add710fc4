"""The saved-model format: a folder of ``.npy`` arrays and a ``header.json`` describing them.

``header.json`` holds the format name and version, the fastmf version, the model
``kind`` and its hyperparameters, the name, shape and dtype of every array, the
training history, the fit time and a model-specific ``extra`` section. Arrays are
written and read with ``allow_pickle=False``. This module only reads and writes the
folder; turning it into a model is :meth:`fastmf.models.base.Recommender.from_saved`
(through :func:`fastmf.load_model`, which knows every model kind).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from fastmf._version import __version__
from fastmf.common.errors import ModelFileError
from fastmf.common.files import atomic_dir
from fastmf.common.jsonio import json_default

FORMAT = "fastmf-model"
FORMAT_VERSION = 1


@dataclass
class SavedModel:
    """A model folder as read from disk: its header's parts and its arrays."""

    path: str
    header_path: str
    kind: str
    params: dict
    arrays: dict
    history: list
    fit_seconds: float | None
    extra: dict


def array_file(folder: str, name: str) -> str:
    """The file of array ``name`` (``user_factors_`` is stored as ``user_factors.npy``)."""
    return os.path.join(folder, name.rstrip("_") + ".npy")


def write_model(path: str, kind: str, params: dict, arrays: dict, history: list, fit_seconds, extra: dict) -> None:
    """Write a model folder at ``path`` (atomically replacing what is there)."""
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fastmf_version": __version__,
        "kind": kind, "params": params,
        "arrays": {name: {"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype)} for name, a in arrays.items()},
        "history": history, "fit_seconds": fit_seconds, "extra": extra,
    }

    def write(tmp):
        for name, a in arrays.items():
            np.save(array_file(tmp, name), np.asarray(a), allow_pickle=False)
        with open(os.path.join(tmp, "header.json"), "w") as fh:
            json.dump(header, fh, indent=2, default=json_default)

    atomic_dir(path, write, force=True)


def read_model(path: str) -> SavedModel:
    """Read a model folder; a :class:`ModelFileError` for a missing, truncated or mismatched file."""
    header_path = os.path.join(path, "header.json")
    if not os.path.isdir(path):
        raise ModelFileError(f"{path}: no such model folder")
    try:
        with open(header_path) as fh:
            header = json.load(fh)
    except FileNotFoundError:
        raise ModelFileError(f"{header_path}: missing (not a fastmf model folder?)") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{header_path}: unreadable or truncated JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{header_path}: not a fastmf model header")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{header_path}: format version {header.get('format_version')} is not supported "
                             f"(this fastmf reads version {FORMAT_VERSION})")
    arrays = {}
    for name, meta in header.get("arrays", {}).items():
        file = array_file(path, name)
        try:
            a = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise ModelFileError(f"{file}: missing") from None
        except (OSError, ValueError, EOFError) as exc:
            raise ModelFileError(f"{file}: unreadable or truncated ({exc})") from None
        if list(a.shape) != list(meta["shape"]) or str(a.dtype) != meta["dtype"]:
            raise ModelFileError(f"{file}: shape {list(a.shape)} {a.dtype} does not match the header "
                                 f"({meta['shape']} {meta['dtype']})")
        arrays[name] = a
    return SavedModel(path, header_path, header.get("kind"), header.get("params", {}), arrays,
                      header.get("history", []), header.get("fit_seconds"), header.get("extra", {}))
