"""Metrics of fitted models on held-out data: rating errors (:mod:`.rating`) and ranking quality (:mod:`.ranking`)."""
