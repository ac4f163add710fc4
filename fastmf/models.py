"""Registry of model kinds (the ``--model`` names and the ``kind`` in saved headers)."""

from fastmf.als import ALS, BiasOnly

MODELS = {cls.kind: cls for cls in (BiasOnly, ALS)}
