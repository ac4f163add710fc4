"""The WSGI application object, for gunicorn or any WSGI server: ``gunicorn fastmf.web.wsgi:application``.

Settings come from environment variables (:mod:`fastmf.web.env`); without ``FASTMF_WEB_SECRET_KEY``
and ``FASTMF_WEB_ALLOWED_HOSTS`` (outside the local default) loading this module fails with a
message naming the missing variable.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fastmf.web.settings")

application = get_wsgi_application()
