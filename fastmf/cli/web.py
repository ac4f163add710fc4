"""The web command: ``fastmf web`` serves the web application (Django, the ``web`` extra)."""

from __future__ import annotations

import click

from fastmf.cli import main
from fastmf.common.errors import FastMFError

INSTALL_HINT = "the web application needs Django: pip install 'fastmf[web]'"


def _web_module():
    """:mod:`fastmf.web.serve`, imported only here: Django is an optional dependency."""
    try:
        from fastmf.web import serve
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("django", "threadpoolctl"):
            raise FastMFError(INSTALL_HINT) from None
        raise
    return serve


@main.group(invoke_without_command=True)
@click.option(
    "--model",
    type=click.Path(),
    default=None,
    help="A saved model (fastmf train --out) to serve; default: one trained on first start and kept in "
    "the home folder.",
)
@click.option(
    "--data",
    type=click.Path(),
    default=None,
    help="The catalogue: the data the model was trained on (default: the bundled ml-latest-small).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; other than this machine needs FASTMF_WEB_SECRET_KEY and FASTMF_WEB_ALLOWED_HOSTS.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (0: any free port; the address is printed).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of the database, models, figures and job logs (default $XDG_DATA_HOME/fastmf/web "
    "or ~/.local/share/fastmf/web).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes, each serving one request at a time from one listening socket (1: one "
    "process, a thread per request). Use the number of cores to serve many users at once.",
)
@click.option("--debug", is_flag=True, help="Django's debug mode (never on a public address).")
@click.option("--quiet", "-q", is_flag=True, help="No line per request.")
@click.pass_context
def web(ctx, model, data, host, port, home, workers, debug, quiet):
    """Serve the web application: accounts, title search, ratings, recommendations, data figures and
    staff-only retraining, on http://127.0.0.1:8000/ by default.

    With no option it works on a fresh machine: a SQLite database in the per-user home folder
    (created and migrated on first start), the bundled ml-latest-small as the catalogue, and an ALS
    model trained on first start (seconds). `fastmf web manage createsuperuser` makes a staff
    account (any Django management command runs with the same settings).
    """
    serve = _web_module()
    serve.configure(model, data, host, home, debug, access_log=not quiet)
    if ctx.invoked_subcommand is not None:
        return
    serve.setup()

    def announce(text):
        click.echo(f"fastmf web: {text}", err=True)

    served = serve.prepare(announce)
    c = served.catalogue
    announce(f"{c.label}: {c.n:,} films, {c.n_ratings:,} ratings; {served.model.kind} model {served.path}")
    del served, c  # with several workers each loads its own; this process keeps none
    try:
        serve.serve(host, port, announce, workers)
    except KeyboardInterrupt:
        announce("stopped")


@web.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def manage(args):
    """Run a Django management command (createsuperuser, changepassword, migrate, ...) on the site's database."""
    serve = _web_module()
    serve.setup()
    serve.manage(list(args))
