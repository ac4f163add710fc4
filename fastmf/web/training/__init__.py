"""Retraining the served model in the background (staff only), and the data page's figures."""
