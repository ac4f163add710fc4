"""Every model kind by name: the ``--model`` names, the ``kind`` in saved headers, and loading.

This module sits above the model classes (it imports all of them) and below the drivers
and the command line, which find models here by name.
"""

from __future__ import annotations

from fastmf.common.errors import FastMFError
from fastmf.models import ALS, BPR, VI, WRMF, BiasOnly, FeatureALS, MostPopular
from fastmf.models.base import Recommender
from fastmf.models.io import read_model

MODELS = {cls.kind: cls for cls in (BiasOnly, ALS, FeatureALS, VI, BPR, WRMF, MostPopular)}


def model_class(kind: str) -> type:
    """The class of model ``kind`` (case-insensitive); an error lists the known kinds."""
    cls = MODELS.get(str(kind).strip().lower())
    if cls is None:
        raise FastMFError(f"unknown model '{kind}' (choose from {', '.join(MODELS)})")
    return cls


def build_model(kind: str, params: dict) -> Recommender:
    """A model of ``kind`` with the given hyperparameters (``None`` values are left at their defaults);
    an error names the first given one that the model does not take, as a command-line flag."""
    cls = model_class(kind)
    unknown = sorted(k for k, v in params.items() if v is not None and k not in cls.params)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise FastMFError(f"{flags} does not apply to --model {cls.kind}")
    return cls(**{k: v for k, v in params.items() if v is not None})


def load_model(path: str) -> Recommender:
    """Load a model written by ``save`` (or a model folder of fastmf 0.1); a one-line
    :class:`~fastmf.common.errors.ModelFileError` for anything missing, truncated, corrupt or inconsistent."""
    saved = read_model(path, {kind: cls.saved_arrays() for kind, cls in MODELS.items()})
    return MODELS[saved.kind].from_saved(saved)
