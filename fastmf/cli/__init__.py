"""The ``fastmf`` command line.

Every command that reads data takes either a folder written by ``fastmf
prepare`` or a raw source (a MovieLens zip or folder, a CSV or Parquet file);
with no DATA it uses the ml-latest-small copy shipped inside the package.
User mistakes print one line on stderr and exit with status 1; results go to
stdout (``--json`` for machine-readable output) and progress to stderr.
"""

from __future__ import annotations

import warnings

import click

from fastmf.common.errors import FastMFError


class _Group(click.Group):
    """Turns :class:`FastMFError` (a user's mistake) into one line and exit status 1."""

    def invoke(self, ctx):
        previous = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return super().invoke(ctx)
        except FastMFError as exc:
            click.echo(f"fastmf: error: {exc}", err=True)
            ctx.exit(1)
        except MemoryError:
            click.echo("fastmf: error: out of memory (try --scale or a smaller --factors)", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("fastmf: interrupted", err=True)
            ctx.exit(130)
        finally:
            warnings.showwarning = previous


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"fastmf: warning: {message}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fastmf")
def main():
    """fastmf: fast matrix-factorisation recommenders (ALS, BPR, variational Bayes)."""


# the commands register themselves on ``main`` when their modules are imported
from fastmf.cli import analysis, bench, data, models, web  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
