"""``fastmf web``: the local default, ready on a fresh machine.

Sets the environment the settings read (:mod:`fastmf.web.env`), creates and migrates the SQLite
database in the per-user home folder, trains a model on the catalogue on first start when none is
given (a recorded training job, so the training page shows it), loads the model and the catalogue
once, and serves the WSGI application on the given address: with Django's threaded WSGI server
in this process, or with ``workers`` processes (:mod:`fastmf.web.worker`) that each serve one
request at a time from one shared listening socket, so requests in flight never contend for one
interpreter. For production, run :mod:`fastmf.web.wsgi` under gunicorn or any WSGI server instead.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from fastmf.common.errors import FastMFError
from fastmf.web import env
from fastmf.web.engine import get_engine, set_engine


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


#: a worker that exits sooner than this after its start failed to start (it is not restarted)
WORKER_START_SECONDS = 5.0


def serve(host: str, port: int, announce, workers: int = 1) -> None:
    """Serve until interrupted: Django's threaded WSGI server (one thread per request) with one
    worker, else ``workers`` worker processes on one listening socket (:func:`serve_workers`)."""
    from django.core.servers.basehttp import WSGIServer, run
    from django.core.wsgi import get_wsgi_application

    try:
        if workers > 1:
            set_engine(None)
            listening = socket.create_server(
                (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET, backlog=128
            )
            with listening:
                announce_address(announce, host, listening.getsockname()[1], workers)
                serve_workers(listening, workers, announce)
            return
        run(
            host,
            port,
            get_wsgi_application(),
            ipv6=":" in host,
            threading=True,
            server_cls=WSGIServer,
            on_bind=lambda bound: announce_address(announce, host, bound, 1),
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise FastMFError(f"{host}:{port} is already in use: choose another --port") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise FastMFError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        raise


def announce_address(announce, host: str, port: int, workers: int) -> None:
    shown = host if ":" not in host else f"[{host}]"
    processes = f", {workers} worker processes" if workers > 1 else ""
    announce(f"serving at http://{shown}:{port}/ (Ctrl-C to stop{processes})")


def serve_workers(listening: socket.socket, workers: int, announce) -> None:
    """Run ``workers`` :mod:`fastmf.web.worker` processes on ``listening`` until interrupted, restarting
    one that dies while serving (killed by a signal, or exiting later than
    :data:`WORKER_START_SECONDS` after its start); one that exits by itself sooner failed to start,
    and stops the command with its exit code. The workers stop with the command."""
    fd = listening.fileno()
    command = [sys.executable, "-m", "fastmf.web.worker", str(fd)]

    def start() -> tuple[subprocess.Popen, float]:
        return subprocess.Popen(command, pass_fds=[fd]), time.monotonic()

    def stop(signum, frame):
        raise KeyboardInterrupt  # the finally below stops the workers

    previous = signal.signal(signal.SIGTERM, stop)
    running = [start() for _ in range(workers)]
    try:
        while True:
            time.sleep(0.2)
            for j, (proc, started) in enumerate(running):
                code = proc.poll()
                if code is None:
                    continue
                if code >= 0 and time.monotonic() - started < WORKER_START_SECONDS:
                    raise FastMFError(f"a web worker failed to start (exit code {code}); see the lines above")
                announce(f"worker {proc.pid} stopped (exit code {code}): starting another")
                running[j] = start()
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc, _ in running:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def manage(args: list[str]) -> None:
    """Run a Django management command with the web application's settings (``fastmf web manage ...``)."""
    from django.core.management import execute_from_command_line

    execute_from_command_line(["fastmf web manage", *args])
