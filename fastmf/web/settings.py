"""Django settings of the fastmf web application, all from environment variables (:mod:`fastmf.web.env`).

Outside the local default (``fastmf web`` on a loopback address sets ``FASTMF_WEB_LOCAL=1``)
a secret key and the allowed hosts must be given, or the application refuses to start.
Debug mode is off unless ``FASTMF_WEB_DEBUG=1``.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from fastmf.web import env

PACKAGE = Path(__file__).resolve().parent

try:
    HOME = env.home()
    SECRET_KEY = env.secret_key(HOME)
    ALLOWED_HOSTS = env.allowed_hosts()
    DEBUG = env.flag("DEBUG")
    DATABASES = {"default": env.database(HOME)}
    HTTPS = env.flag("HTTPS")
except env.ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None

#: the served model file and the catalogue (None: the bundled ml-latest-small)
FASTMF_MODEL = str(env.model_path(HOME))
FASTMF_DATA = env.catalogue_path()
#: how training jobs and figure drawing run: "subprocess" (a separate process, never blocking a request),
#: "thread" or "inline" (tests)
FASTMF_JOB_RUNNER = env.get("JOB_RUNNER", "subprocess")
#: seconds between checks of the model file for a replacement (by a training job of any process)
FASTMF_MODEL_CHECK_SECONDS = float(env.get("MODEL_CHECK_SECONDS", "1"))
#: recommendations per page, and the fewest catalogue ratings a recommended film has by default
FASTMF_RECOMMENDATIONS = 20
FASTMF_MIN_RATINGS = 10

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "fastmf.web.films",
    "fastmf.web.training",
]

MIDDLEWARE = [
    "fastmf.web.timing.ServerTiming",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "fastmf.web.errors.ServeErrors",
]

ROOT_URLCONF = "fastmf.web.urls"
WSGI_APPLICATION = "fastmf.web.wsgi.application"
CSRF_FAILURE_VIEW = "fastmf.web.errors.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "fastmf.web.films.context.site",
            ]
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "recommendations"
LOGOUT_REDIRECT_URL = "home"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [PACKAGE / "static"]
STATIC_ROOT = env.get("STATIC_ROOT")  # for collectstatic behind a web server; else the app serves them

CSRF_TRUSTED_ORIGINS = env.listed("CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django": {"handlers": ["console"], "level": "WARNING"},
        "django.server": {
            "handlers": ["console"],
            "level": "INFO" if env.get("ACCESS_LOG", "1") != "0" else "WARNING",
            "propagate": False,
        },
        "fastmf.web": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
