"""The model classes: each a thin layer over its kernels, with the shared fitting, recommending,
fold-in and persistence of :class:`~fastmf.models.base.Recommender`."""

from fastmf.models.als import ALS, BiasOnly
from fastmf.models.bpr import BPR
from fastmf.models.features import FeatureALS
from fastmf.models.popular import MostPopular
from fastmf.models.vi import VI
from fastmf.models.wrmf import WRMF

__all__ = ["ALS", "BiasOnly", "FeatureALS", "VI", "BPR", "MostPopular", "WRMF"]
