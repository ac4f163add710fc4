"""Django set up for the web application's tests, without a plugin (the helpers tests import: ``web_support``).

The settings come from the environment (as in production), pointed at a temporary home folder;
jobs and figure drawing run inline so that a test sees their outcome. Small models are trained
once per session on the bundled ml-latest-small (ALS, VI, and a BPR ranker that the site must
refuse to serve) and the catalogue is loaded once; :func:`serve` points the site at one of them.
Tests use Django's ``TestCase`` and test client; an in-memory SQLite test database is created
once per session.

Without Django (the ``web`` extra) these tests are not collected; ``tests/test_web_extra.py``
reports that as a skip, and fails under CI, which installs the extra.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

HAVE_DJANGO = importlib.util.find_spec("django") is not None

HOME = Path(tempfile.mkdtemp(prefix="fastmf-web-tests-")) if HAVE_DJANGO else Path()
MODELS = HOME / "models"
PASSWORD = "correct-Horse-battery-9"

if HAVE_DJANGO:
    for name in [n for n in os.environ if n.startswith("FASTMF_WEB_")]:
        del os.environ[name]
    os.environ.update(
        FASTMF_WEB_HOME=str(HOME),
        FASTMF_WEB_LOCAL="1",
        FASTMF_WEB_JOB_RUNNER="inline",
        FASTMF_WEB_MODEL=str(HOME / "served.fastmf"),
        FASTMF_WEB_ACCESS_LOG="0",
        FASTMF_WEB_MODEL_CHECK_SECONDS="0",
        DJANGO_SETTINGS_MODULE="fastmf.web.settings",
    )
    import django

    django.setup()

    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    import fastmf
    from fastmf.web import engine as engine_module
    from fastmf.web.engine import Engine, load_catalogue


def train_models() -> dict:
    MODELS.mkdir(parents=True, exist_ok=True)
    data = fastmf.load_dataset()
    paths = {}
    for name, model in (
        ("als", fastmf.ALS(factors=8, epochs=6)),
        ("vi", fastmf.VI(factors=6, epochs=4, learn_hyper=True)),
        ("bpr", fastmf.BPR(factors=4, epochs=1)),
    ):
        paths[name] = str(model.fit(data).save(str(MODELS / f"{name}.fastmf")))
    return paths


@pytest.fixture(scope="session")
def models():
    """Paths of the session's saved models by kind (``als``, ``vi``, ``bpr``)."""
    return _state["models"]


@pytest.fixture(scope="session")
def catalogue():
    return _state["catalogue"]


_state: dict = {}


@pytest.fixture(scope="session", autouse=True)
def django_test_database():
    """Trained models, the catalogue, and the test database, once per session."""
    _state["models"] = train_models()
    shutil.copy(_state["models"]["als"], HOME / "served.fastmf")
    _state["catalogue"] = load_catalogue(None)
    serve("als")
    setup_test_environment()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for tests only
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    yield
    connection.creation.destroy_test_db(old_name, verbosity=0)
    teardown_test_environment()
    engine_module.set_engine(None)
    shutil.rmtree(HOME, ignore_errors=True)


def serve(kind: str, path: str | None = None) -> Engine:
    """Serve the session's ``kind`` model (or the model file ``path``) from now on."""
    engine = Engine(
        path or _state["models"][kind], None, check_seconds=0, catalogue=_state["catalogue"], limit_blas=False
    )
    engine.current()
    engine_module.set_engine(engine)
    return engine
