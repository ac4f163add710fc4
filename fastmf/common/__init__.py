"""Shared helpers at the bottom of fastmf's layers: errors, JSON, safe file writing, hyperparameter
declarations, sorted-key lookups, memory layouts and thread control.

Every other part of fastmf may import from here; nothing here imports any other part of fastmf.
"""
