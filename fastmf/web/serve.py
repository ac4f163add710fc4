"""``fastmf web``: the local default, ready on a fresh machine.

Sets the environment the settings read (:mod:`fastmf.web.env`), creates and migrates the SQLite
database in the per-user home folder, trains a model on the catalogue on first start when none is
given (a recorded training job, so the training page shows it), loads the model and the catalogue
once, and serves the WSGI application with Django's threaded WSGI server on the given address.
For production, run :mod:`fastmf.web.wsgi` under gunicorn or any WSGI server instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from fastmf.common.errors import FastMFError
from fastmf.web import env
from fastmf.web.engine import get_engine


def configure(
    model: str | None, data: str | None, host: str, home: str | None, debug: bool, access_log: bool = True
) -> None:
    """Put the command's options into the environment the settings read (and the job processes inherit)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "fastmf.web.settings"
    if home:
        os.environ["FASTMF_WEB_HOME"] = str(Path(home).expanduser().resolve())
    if model:
        path = Path(model).expanduser().resolve()
        if not path.exists():
            raise FastMFError(
                f"{model}: no such model file (train one with fastmf train DATA --out {model}, or "
                "leave --model out to train one on first start)"
            )
        os.environ["FASTMF_WEB_MODEL"] = str(path)
    if data:
        if not os.path.exists(data):
            raise FastMFError(f"{data}: no such file or folder")
        os.environ["FASTMF_WEB_DATA"] = str(Path(data).resolve())
    local = host in env.LOOPBACK
    os.environ["FASTMF_WEB_LOCAL"] = "1" if local else "0"
    if debug:
        os.environ["FASTMF_WEB_DEBUG"] = "1"
    if not access_log:
        os.environ["FASTMF_WEB_ACCESS_LOG"] = "0"
    if not local and not env.get("SECRET_KEY"):
        raise FastMFError(
            f"serving on {host} (not this machine only) needs FASTMF_WEB_SECRET_KEY and "
            "FASTMF_WEB_ALLOWED_HOSTS in the environment (see the README's Web application section)"
        )


def setup() -> None:
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        raise FastMFError(str(exc)) from None


def prepare(announce) -> object:
    """Migrate the database, train the first model if there is none, load it; returns the served snapshot."""
    call_command("migrate", interactive=False, verbosity=0)
    if not os.path.exists(settings.FASTMF_MODEL):
        if env.get("MODEL"):
            raise FastMFError(f"{settings.FASTMF_MODEL}: no such model file")
        announce(
            f"first start: training a model on {env.catalogue_slug(settings.FASTMF_DATA)} "
            f"into {settings.FASTMF_MODEL} ..."
        )
        try:
            call_command("fastmf_first_model")
        except CommandError as exc:
            raise FastMFError(str(exc)) from None
    return get_engine().current()


def serve(host: str, port: int, announce) -> None:
    """Serve until interrupted (Django's threaded WSGI server: one thread per request)."""
    from django.core.servers.basehttp import WSGIServer, run
    from django.core.wsgi import get_wsgi_application

    shown = host if ":" not in host else f"[{host}]"
    try:
        run(
            host,
            port,
            get_wsgi_application(),
            ipv6=":" in host,
            threading=True,
            server_cls=WSGIServer,
            on_bind=lambda bound: announce(f"serving at http://{shown}:{bound}/ (Ctrl-C to stop)"),
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise FastMFError(f"{host}:{port} is already in use: choose another --port") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise FastMFError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        raise


def manage(args: list[str]) -> None:
    """Run a Django management command with the web application's settings (``fastmf web manage ...``)."""
    from django.core.management import execute_from_command_line

    execute_from_command_line(["fastmf web manage", *args])
