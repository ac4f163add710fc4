"""Ingestion, datasets, splits and synthetic data, installed as ``fastmf.data_prep``."""
