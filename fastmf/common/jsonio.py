"""JSON encoding of NumPy scalars and arrays (shared by manifests, model headers and CLI output)."""

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
