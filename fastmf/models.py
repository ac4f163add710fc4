"""Registry of model kinds (the ``--model`` names and the ``kind`` in saved headers)."""

from fastmf.als import ALS, BiasOnly
from fastmf.bpr import BPR
from fastmf.features import FeatureALS
from fastmf.popular import MostPopular
from fastmf.vi import VI

MODELS = {cls.kind: cls for cls in (BiasOnly, ALS, FeatureALS, VI, BPR, MostPopular)}
