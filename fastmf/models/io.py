"""The saved-model format: one file, replaced atomically, every array checksummed.

A model is one file (format version 2)::

    magic    8 bytes   b"FASTMF\\x00\\x02"
    length   8 bytes   little-endian size of the header
    header   JSON      format, version, kind, hyperparameters, history, extra state and, per array,
                       its dtype, shape, byte offset, byte size and SHA-256
    arrays             raw C-order bytes, each starting on a 64-byte boundary

Saving writes a new file beside the target and renames it over the target in one
``os.replace``: at every instant the path holds the complete old model or the complete new
one, and a reader, which opens the file once and reads everything through that handle, can
never mix two models. Loading trusts nothing: the header's structure and types, the array
names (only those the model kind defines), dtypes (numbers and text only, never objects or
pickles), sizes, offsets and checksums are all checked, each failure a one-line
:class:`~fastmf.common.errors.ModelFileError`. Turning the arrays into a model, with the
consistency checks of each model kind, is :meth:`fastmf.models.base.Recommender.from_saved`
(through :func:`fastmf.load_model`, which knows every kind).

Folders written by fastmf 0.1 (``header.json`` beside one ``.npy`` per array, format version
1) still load, with the same checks except the checksums they do not have; saving over one
replaces it with a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from fastmf._version import __version__
from fastmf.common.errors import ModelFileError
from fastmf.common.files import atomic_file
from fastmf.common.jsonio import json_default

FORMAT = "fastmf-model"
FORMAT_VERSION = 2
LEGACY_VERSION = 1
MAGIC = b"FASTMF\x00\x02"
ALIGN = 64
#: largest header read (a header is JSON of parameters, history and array metadata)
MAX_HEADER = 64 << 20
#: dtype kinds a model array may have: signed and unsigned integers, floats, booleans, text
ARRAY_KINDS = "iufbU"


@dataclass
class SavedModel:
    """A model file (or 0.1 folder) as read from disk: its header's parts and its arrays."""

    path: str
    kind: str
    params: dict
    arrays: dict
    history: list
    fit_seconds: float | None
    extra: dict


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, default=json_default, allow_nan=False).encode()


def write_model(path: str, kind: str, params: dict, arrays: dict, history: list, fit_seconds, extra: dict) -> bool:
    """Write a model file at ``path``, replacing an existing fastmf model there (atomically) but nothing
    else; returns whether one was replaced."""
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    meta, offset, end = {}, 0, 0
    for name, a in arrays.items():
        if a.dtype.kind not in ARRAY_KINDS:
            raise ModelFileError(f"array {name} has dtype {a.dtype}, which the model format does not store")
        meta[name] = {
            "dtype": a.dtype.str,
            "shape": list(a.shape),
            "offset": offset,
            "nbytes": a.nbytes,
            "sha256": hashlib.sha256(_bytes(a)).hexdigest(),
        }
        end = offset + a.nbytes
        offset += -(-a.nbytes // ALIGN) * ALIGN
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastmf_version": __version__,
        "kind": kind,
        "params": params,
        "arrays": meta,
        "history": _finite(history),
        "fit_seconds": fit_seconds,
        "extra": extra,
    }
    blob = _json_bytes(header)
    start = -(-(len(MAGIC) + 8 + len(blob)) // ALIGN) * ALIGN
    blob += b" " * (start - len(MAGIC) - 8 - len(blob))

    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(MAGIC + struct.pack("<Q", len(blob)) + blob)
            for name, a in arrays.items():
                fh.seek(start + meta[name]["offset"])
                fh.write(_bytes(a))
            fh.truncate(start + end)

    return atomic_file(path, write, replaceable=is_model, what="model")


def _bytes(a: np.ndarray) -> np.ndarray:
    """The raw bytes of a C-contiguous array (any dtype), as a flat uint8 view."""
    return a.reshape(-1).view(np.uint8)


def _finite(history: list) -> list:
    """History records with non-finite numbers as None (strict JSON)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in history]


def is_model(path: str) -> bool:
    """Whether ``path`` holds a fastmf model (a model file, or a model folder of fastmf 0.1)."""
    if os.path.isdir(path):
        header = os.path.join(path, "header.json")
        try:
            with open(header, "rb") as fh:
                return b'"format": "fastmf-model"' in fh.read(4096)
        except OSError:
            return False
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_model(path: str, expected: dict | None = None) -> SavedModel:
    """Read a model file (or a 0.1 model folder) with every check of the module docstring.

    ``expected`` maps each model kind to ``(required array names, optional array names)``; an array
    of another name is refused. Without it only the format is checked.
    """
    if os.path.isdir(path):
        return _read_legacy(path, expected)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(len(MAGIC) + 8)
        if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
            raise ModelFileError(f"{path}: not a fastmf model file")
        (length,) = struct.unpack("<Q", head[len(MAGIC) :])
        if length > min(MAX_HEADER, size - len(head)):
            raise ModelFileError(f"{path}: truncated or corrupt header (length {length} in a {size}-byte file)")
        header = _parse_header(fh.read(length), path)
        kind, names = _check_header(header, path, expected)
        start = -(-(len(MAGIC) + 8 + length) // ALIGN) * ALIGN
        arrays, end = {}, start
        for name in names:
            meta = header["arrays"][name]
            dtype, shape = _array_type(meta, name, path)
            offset, nbytes = meta.get("offset"), meta.get("nbytes")
            if not (
                _is_int(offset)
                and _is_int(nbytes)
                and offset >= 0
                and offset % ALIGN == 0
                and nbytes == dtype.itemsize * math.prod(shape)
                and start + offset + nbytes <= size
            ):
                raise ModelFileError(f"{path}: array {name}: offset or size does not fit the file (truncated?)")
            buf = bytearray(nbytes)
            fh.seek(start + offset)
            if fh.readinto(buf) != nbytes:
                raise ModelFileError(f"{path}: array {name}: truncated")
            if hashlib.sha256(buf).hexdigest() != meta.get("sha256"):
                raise ModelFileError(f"{path}: array {name}: checksum mismatch (the file is corrupt)")
            arrays[name] = np.frombuffer(buf, dtype=dtype).reshape(shape)
            end = max(end, start + offset + nbytes)
        if size != end:
            raise ModelFileError(f"{path}: {size - end} bytes past the last array (a damaged file?)")
    return _saved(path, header, kind, arrays)


def _parse_header(raw: bytes, where: str) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{where}: unreadable header ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a fastmf model header")
    return header


def _refuse_constant(name: str):
    raise ValueError(f"{name} in the header")


def _check_header(header: dict, where: str, expected: dict | None):
    """``(kind, array names to read)`` after checking the header's structure and types."""
    version = header.get("format_version")
    if version not in (FORMAT_VERSION, LEGACY_VERSION):
        raise ModelFileError(
            f"{where}: format version {version!r} is not supported "
            f"(this fastmf reads versions {LEGACY_VERSION} and {FORMAT_VERSION})"
        )
    kind = header.get("kind")
    if not isinstance(kind, str):
        raise ModelFileError(f"{where}: the model kind is missing or not a name")
    for key, kinds in (("params", dict), ("arrays", dict), ("history", list), ("extra", dict)):
        if not isinstance(header.get(key), kinds):
            raise ModelFileError(f"{where}: '{key}' is missing or not a{'n object' if kinds is dict else ' list'}")
    if not all(isinstance(r, dict) for r in header["history"]):
        raise ModelFileError(f"{where}: 'history' must be a list of objects")
    fit_seconds = header.get("fit_seconds")
    if fit_seconds is not None and not _is_number(fit_seconds):
        raise ModelFileError(f"{where}: 'fit_seconds' is not a number")
    names = list(header["arrays"])
    if expected is not None:
        if kind not in expected:
            raise ModelFileError(f"{where}: unknown model kind {kind!r}")
        required, optional = expected[kind]
        for name in names:
            if name not in required and name not in optional:
                raise ModelFileError(f"{where}: array {name!r} is not one a '{kind}' model has")
        for name in required:
            if name not in header["arrays"]:
                raise ModelFileError(f"{where}: array '{name}' is not listed")
    for name in names:
        if not isinstance(header["arrays"][name], dict):
            raise ModelFileError(f"{where}: array {name}: its description is not an object")
    return kind, names


def _array_type(meta: dict, name: str, where: str):
    """The dtype and shape an array's description declares, checked."""
    try:
        dtype = np.dtype(meta.get("dtype"))
    except (TypeError, ValueError):
        raise ModelFileError(f"{where}: array {name}: unknown dtype {meta.get('dtype')!r}") from None
    shape = meta.get("shape")
    if dtype.kind not in ARRAY_KINDS or dtype.hasobject:
        raise ModelFileError(f"{where}: array {name}: dtype {dtype} is not allowed (numbers and text only)")
    if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
        raise ModelFileError(f"{where}: array {name}: the shape is not a list of sizes")
    return dtype, tuple(shape)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _saved(path: str, header: dict, kind: str, arrays: dict) -> SavedModel:
    return SavedModel(
        path, kind, header["params"], arrays, header["history"], header.get("fit_seconds"), header["extra"]
    )


def array_file(folder: str, name: str) -> str:
    """The file of array ``name`` in a 0.1 model folder (``user_factors_`` is ``user_factors.npy``)."""
    return os.path.join(folder, name.rstrip("_") + ".npy")


def _read_legacy(path: str, expected: dict | None) -> SavedModel:
    """A model folder of fastmf 0.1: ``header.json`` and one ``.npy`` per array, read with the same checks
    (no checksums: that format has none). Array files are opened only by the names the model kind
    defines, inside the folder, never through a link."""
    header_path = os.path.join(path, "header.json")
    try:
        with open(header_path, "rb") as fh:
            raw = fh.read(MAX_HEADER + 1)
    except FileNotFoundError:
        raise ModelFileError(f"{header_path}: missing (not a fastmf model folder?)") from None
    except OSError as exc:
        raise ModelFileError(f"{header_path}: unreadable ({exc.strerror or exc})") from None
    if len(raw) > MAX_HEADER:
        raise ModelFileError(f"{header_path}: too large for a model header")
    header = _parse_header(raw, header_path)
    if header.get("format_version") != LEGACY_VERSION:
        raise ModelFileError(
            f"{header_path}: format version {header.get('format_version')!r} is not supported "
            f"in a folder (this fastmf reads version {LEGACY_VERSION} folders)"
        )
    kind, names = _check_header(header, header_path, expected)
    if expected is None:
        raise ModelFileError(f"{header_path}: cannot check the arrays of a model folder without the model kinds")
    real = os.path.realpath(path)
    arrays = {}
    for name in names:
        dtype, shape = _array_type(header["arrays"][name], name, header_path)
        file = array_file(path, name)
        if os.path.islink(file) or os.path.dirname(os.path.realpath(file)) != real:
            raise ModelFileError(f"{file}: not a file inside the model folder")
        try:
            a = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise ModelFileError(f"{file}: missing") from None
        except (OSError, ValueError, EOFError) as exc:
            raise ModelFileError(f"{file}: unreadable or truncated ({str(exc).splitlines()[0][:120]})") from None
        if a.shape != shape or a.dtype != dtype:
            raise ModelFileError(
                f"{file}: shape {list(a.shape)} {a.dtype} does not match the header ({list(shape)} {dtype})"
            )
        arrays[name] = a
    return _saved(path, header, kind, arrays)
