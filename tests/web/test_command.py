"""``fastmf web`` and the production settings: the command works with no argument on a fresh home (the
database migrated, a model trained on first start, the address printed), user mistakes are one line
without a traceback, and outside the local default the settings refuse to load without a secret key
and allowed hosts; debug is off unless asked for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from fastmf.web import env

KEY = "k" * 40


def run(args: list[str], environ: dict | None = None, code: str | None = None, **kw) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FASTMF_WEB_") and k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "fastmf", *args]
    return subprocess.run(command, env={**clean, **(environ or {})}, capture_output=True, text=True, timeout=120, **kw)


def one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert fragment in result.stderr, result.stderr


def start_web(args: list[str], environ: dict | None = None) -> tuple[subprocess.Popen, str, list[str]]:
    """``fastmf web --port 0 --quiet ARGS`` started in a clean environment: the process, the announced
    address and the lines it printed up to it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FASTMF_WEB_") and k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastmf", "web", "--port", "0", "--quiet", *args],
        env={**clean, **(environ or {})},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        address = re.search(r"serving at (http://127\.0\.0\.1:\d+)/", line)
        if address:
            return proc, address.group(1), lines
    proc.wait(timeout=30)
    raise AssertionError("".join(lines))


@pytest.mark.slow
def test_fastmf_web_with_no_argument_starts_on_a_fresh_home(tmp_path):
    proc, address, lines = start_web([], {"XDG_DATA_HOME": str(tmp_path)})
    try:
        with urllib.request.urlopen(address + "/search/?q=toy+story", timeout=30) as r:
            assert r.status == 200 and b"Toy Story 2" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = "".join(lines)
    assert "first start: training a model on ml-latest-small" in text
    assert "ml-latest-small: 9,724 films" in text
    home = tmp_path / "fastmf" / "web"
    assert {"db.sqlite3", "secret_key", "model-ml-latest-small.fastmf"} <= {p.name for p in home.iterdir()}
    assert (home / "secret_key").stat().st_mode & 0o077 == 0


def _worker_pids(parent: int) -> list[int]:
    """The pids of ``parent``'s ``fastmf.web.worker`` children (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if ppid == parent and b"fastmf.web.worker" in cmdline:
            out.append(int(entry))
    return sorted(out)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.read()


@pytest.mark.slow
def test_workers_serve_from_one_socket_and_a_dead_worker_is_replaced(tmp_path, models):
    """``--workers 2``: two worker processes answer on the announced address (requests in flight at
    once), a worker killed while serving is replaced, and they all stop with the command."""
    proc, address, lines = start_web(["--workers", "2", "--home", str(tmp_path), "--model", models["als"]])
    try:
        assert "(Ctrl-C to stop, 2 worker processes)" in lines[-1]
        url = address + "/search/?q=toy+story"
        with ThreadPoolExecutor(4) as pool:
            assert all(status == 200 and b"Toy Story 2" in body for status, body in pool.map(_get, [url] * 8))
        workers = _worker_pids(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], 9)
        for _ in range(150):  # the parent notices within a fifth of a second; the new worker loads the model
            now = _worker_pids(proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and workers[0] not in now, now
        assert all(_get(url)[0] == 200 for _ in range(4))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for _ in range(50):
        if not any(os.path.exists(f"/proc/{pid}") for pid in now):
            break
        time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in now), "a worker outlived the command"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--host", "0.0.0.0"], "needs FASTMF_WEB_SECRET_KEY and FASTMF_WEB_ALLOWED_HOSTS"),
        (["--model", "no-such-model.fastmf"], "no such model file"),
        (["--data", "no-such-folder"], "no such file or folder"),
        (["--port", "99999"], "99999"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_mistakes_are_one_line(tmp_path, args, fragment):
    one_line_error(run(["web", "--home", str(tmp_path), *args], cwd=tmp_path), fragment)


def test_without_django_the_command_says_what_to_install():
    code = "import sys; sys.modules['django'] = None; from fastmf.cli import main; main(['web'])"
    one_line_error(run([], code=code), "pip install 'fastmf[web]'")


def settings_of(environ: dict) -> subprocess.CompletedProcess:
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.DEBUG, settings.ALLOWED_HOSTS, settings.DATABASES['default']['ENGINE'])"
    )
    return run([], {"DJANGO_SETTINGS_MODULE": "fastmf.web.settings", **environ}, code=code)


def test_production_settings_need_a_secret_key_and_hosts(tmp_path):
    home = {"FASTMF_WEB_HOME": str(tmp_path)}
    result = settings_of(home)
    assert result.returncode != 0 and "FASTMF_WEB_SECRET_KEY is not set" in result.stderr
    result = settings_of({**home, "FASTMF_WEB_SECRET_KEY": KEY})
    assert result.returncode != 0 and "FASTMF_WEB_ALLOWED_HOSTS is not set" in result.stderr
    result = settings_of({**home, "FASTMF_WEB_SECRET_KEY": "short", "FASTMF_WEB_ALLOWED_HOSTS": "films.example.org"})
    assert result.returncode != 0 and "too short" in result.stderr
    result = settings_of(
        {
            **home,
            "FASTMF_WEB_SECRET_KEY": KEY,
            "FASTMF_WEB_ALLOWED_HOSTS": "films.example.org",
            "FASTMF_WEB_DATABASE_URL": f"sqlite:///{tmp_path}/site.db",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "['films.example.org']", "django.db.backends.sqlite3"]
    assert not (tmp_path / "secret_key").exists()  # production never writes a key of its own
    result = settings_of(
        {**home, "FASTMF_WEB_SECRET_KEY": KEY, "FASTMF_WEB_ALLOWED_HOSTS": "x", "FASTMF_WEB_DEBUG": "maybe"}
    )
    assert result.returncode != 0 and "FASTMF_WEB_DEBUG must be 1 or 0" in result.stderr


def test_database_urls():
    assert env.database_from_url("postgres://u:p%40ss@db.example.org:5433/films?sslmode=require") == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "films",
        "USER": "u",
        "PASSWORD": "p@ss",
        "HOST": "db.example.org",
        "PORT": "5433",
        "OPTIONS": {"sslmode": "require"},
        "CONN_MAX_AGE": 60,
    }
    assert env.database_from_url("sqlite:///srv/films/db.sqlite3")["NAME"] == "/srv/films/db.sqlite3"
    for url, fragment in [
        ("sqlite://relative.db", "three slashes"),
        ("oracle://u@h/db", "unknown scheme"),
        ("postgres://u@h:port/db", "port is not a number"),
        ("postgres://u@h/", "no database name"),
    ]:
        with pytest.raises(env.ConfigError, match=fragment):
            env.database_from_url(url)
