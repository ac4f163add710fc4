"""The web application's configuration, read from environment variables (no Django import here).

``fastmf web`` sets these for the local default; a production deployment sets them itself
(see the README's "Web application" section):

==============================  ==========================================================
``FASTMF_WEB_SECRET_KEY``       Django's secret key; required unless ``FASTMF_WEB_LOCAL=1``
``FASTMF_WEB_ALLOWED_HOSTS``    comma-separated host names; required unless local
``FASTMF_WEB_DATABASE_URL``     ``sqlite:///ABSOLUTE/PATH`` or ``postgres://USER:PASSWORD@HOST:PORT/NAME``
                                (default: ``db.sqlite3`` in the home folder)
``FASTMF_WEB_DEBUG``            ``1`` turns Django's debug mode on (default off)
``FASTMF_WEB_HOME``             the per-user data folder: database, default model, figures, job logs
                                (default ``$XDG_DATA_HOME/fastmf/web``, else ``~/.local/share/fastmf/web``)
``FASTMF_WEB_MODEL``            the served model file (default: ``model-<catalogue>.fastmf`` in the home)
``FASTMF_WEB_DATA``             the catalogue: anything ``fastmf.load_dataset`` reads (default: the
                                bundled ml-latest-small)
``FASTMF_WEB_LOCAL``            ``1``: the local default (``fastmf web`` on a loopback address): a secret
                                key is generated once and kept in the home folder
``FASTMF_WEB_HTTPS``            ``1``: behind an HTTPS proxy (secure cookies, ``X-Forwarded-Proto``)
``FASTMF_WEB_CSRF_TRUSTED_ORIGINS``  comma-separated origins (``https://films.example.org``)
==============================  ==========================================================
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

PREFIX = "FASTMF_WEB_"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class ConfigError(ValueError):
    """A setting that cannot work; the message names the variable and what to do."""


def get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(PREFIX + name)
    return default if value is None or value.strip() == "" else value.strip()


def flag(name: str) -> bool:
    value = (get(name) or "0").lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{PREFIX}{name} must be 1 or 0, got '{value}'")


def listed(name: str) -> list[str]:
    return [x.strip() for x in (get(name) or "").split(",") if x.strip()]


def home() -> Path:
    """The per-user data folder (not created here)."""
    given = get("HOME")
    if given:
        return Path(given).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base).resolve() / "fastmf" / "web"


def ensure_home(folder: Path) -> Path:
    """Create the home folder (owner-only: it holds the database and the secret key)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def is_local() -> bool:
    return flag("LOCAL")


def catalogue_path() -> str | None:
    """The catalogue given (None: the bundled ml-latest-small)."""
    return get("DATA")


def catalogue_slug(data: str | None) -> str:
    """A file-name-safe name of the catalogue: ``ml-latest-small`` or ``<folder name>-<hash>``."""
    if data is None:
        return "ml-latest-small"
    path = os.path.abspath(data)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(path.rstrip("/")))[:40]
    return f"{name or 'data'}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def default_model_path(folder: Path, data: str | None) -> Path:
    """Where the model trained on first start for catalogue ``data`` lives."""
    return folder / f"model-{catalogue_slug(data)}.fastmf"


def model_path(folder: Path) -> Path:
    given = get("MODEL")
    return Path(given).expanduser().resolve() if given else default_model_path(folder, catalogue_path())


def secret_key(folder: Path) -> str:
    """``FASTMF_WEB_SECRET_KEY``; locally, a random key kept in ``HOME/secret_key`` (created once, mode 0600)."""
    key = get("SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ConfigError(
                f"{PREFIX}SECRET_KEY is too short ({len(key)} characters): use at least 32 random "
                "characters, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
        return key
    if not is_local():
        raise ConfigError(
            f"{PREFIX}SECRET_KEY is not set: outside the local default (fastmf web on 127.0.0.1) "
            "the web application needs a secret key, e.g. "
            "export FASTMF_WEB_SECRET_KEY=$(python3 -c "
            "'import secrets; print(secrets.token_urlsafe(50))')"
        )
    path = ensure_home(folder) / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def allowed_hosts() -> list[str]:
    hosts = listed("ALLOWED_HOSTS")
    if hosts:
        return hosts
    if is_local():
        return ["127.0.0.1", "localhost", "[::1]"]
    raise ConfigError(
        f"{PREFIX}ALLOWED_HOSTS is not set: list the host names the site is served under, "
        "e.g. FASTMF_WEB_ALLOWED_HOSTS=films.example.org"
    )


def database(folder: Path) -> dict:
    """Django's ``DATABASES['default']`` from ``FASTMF_WEB_DATABASE_URL`` (default: SQLite in the home)."""
    url = get("DATABASE_URL")
    if url is None:
        return sqlite(ensure_home(folder) / "db.sqlite3")
    return database_from_url(url)


def sqlite(path) -> dict:
    # a busy database waits for the writer (a training job writing its progress) instead of failing
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "OPTIONS": {"timeout": 20}}


ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}


def database_from_url(url: str) -> dict:
    """``sqlite:///ABSOLUTE/PATH``, ``sqlite:///:memory:`` or ``SCHEME://USER:PASSWORD@HOST:PORT/NAME?OPTIONS``
    (schemes: postgres, postgresql, mysql) as Django's database settings."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc or not path.startswith("/") or path == "/":
            raise ConfigError(
                f"{PREFIX}DATABASE_URL: a SQLite URL is sqlite:///ABSOLUTE/PATH (three slashes), got '{url}'"
            )
        return sqlite(":memory:" if path == "/:memory:" else path)
    if scheme not in ENGINES:
        raise ConfigError(f"{PREFIX}DATABASE_URL: unknown scheme '{scheme}' (use sqlite, postgres or mysql)")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError(f"{PREFIX}DATABASE_URL: no database name in '{scheme}://...' (…/NAME at the end)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{PREFIX}DATABASE_URL: the port is not a number") from None
    return {
        "ENGINE": ENGINES[scheme],
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": dict(parse_qsl(parts.query)),
        "CONN_MAX_AGE": 60,
    }
