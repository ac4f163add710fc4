"""JSON encoding of NumPy scalars and arrays (shared by manifests, model headers and CLI output).

:func:`dumps` writes strict JSON: a NaN or infinite number (a metric that is not available, such
as the RMSE of an empty test set) becomes ``null``, since ``NaN`` and ``Infinity`` are not JSON and
strict parsers (JavaScript's ``JSON.parse``, ``jq``) reject them.
"""

import json
import math

import numpy as np


def json_default(x):
    """``json.dump(..., default=json_default)``: NumPy integers, floats and arrays as plain JSON."""
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def finite_or_null(obj):
    """``obj`` with every NaN or infinite float (also inside dicts, lists, tuples and NumPy arrays)
    replaced by None; NumPy scalars and arrays become plain Python values."""
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, dict):
        return {key: finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return finite_or_null(obj.tolist())
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


def dumps(obj, **kwargs) -> str:
    """Strict JSON text of ``obj`` (module docstring): non-finite numbers as null, NumPy values converted."""
    return json.dumps(finite_or_null(obj), allow_nan=False, default=json_default, **kwargs)
