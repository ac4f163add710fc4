"""Progress of long work on stderr: tqdm bars with an ETA for epochs, grid points, models, benchmark runs
and the bytes of large input files.

Bars show when stderr is a terminal (or with ``--progress``) and never with ``--quiet``; one-off
notes (``compiling kernels``) show unless ``--quiet``. Results always go to stdout.
"""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

#: the figures shown beside an epoch bar, when the record has them
EPOCH_FIGURES = ("train_rmse", "val_rmse", "test_rmse", "objective", "elbo", "loss", "auc")


class Progress:
    """One tqdm bar (``total`` steps of ``unit``) plus notes, silenced as the flags say."""

    def __init__(self, total: int | None, desc: str, unit: str, quiet: bool = False, forced: bool = False):
        self.quiet = quiet
        shown = not quiet and (forced or sys.stderr.isatty())
        self.bar = tqdm(
            total=total, desc=desc, unit=unit, file=sys.stderr, disable=not shown, dynamic_ncols=True, leave=True
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.bar.clear()
            click.echo(f"fastmf: {text}", err=True)
            self.bar.refresh()

    def advance(self, n: int) -> None:
        """``n`` more units done."""
        self.bar.update(n)

    def step(self, **figures) -> None:
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in figures.items() if isinstance(v, (int, float))}, refresh=False)
        self.bar.update(1)

    def epoch(self, record: dict) -> None:
        """A ``fit`` callback: one step per epoch record, a note when kernels start compiling."""
        if record.get("event") == "compiling":
            self.note("compiling kernels (first run only; later runs load them from the cache)")
            return
        self.step(**{k: record[k] for k in EPOCH_FIGURES if k in record})


#: an input file's bar appears only if reading it takes longer than this (seconds), unless forced
FILE_BAR_DELAY = 1.0


def file_bars(quiet: bool, forced: bool):
    """``open_bar(display, total_bytes)`` for :func:`fastmf.data_prep.loaders.reading_progress`: a bytes bar
    per input file, shown under the same rules as the other bars (and only for files slow to read)."""
    shown = not quiet and (forced or sys.stderr.isatty())

    def open_bar(display: str, total: int):
        return tqdm(
            total=total,
            desc=f"reading {display}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=not shown,
            dynamic_ncols=True,
            leave=False,
            delay=0.0 if forced else FILE_BAR_DELAY,
        )

    return open_bar
