"""Drivers: the work behind each command (train, tune, compare, bench, A/B tests, analyses, figures),
written over the model registry and returning plain data; the command line formats it."""
