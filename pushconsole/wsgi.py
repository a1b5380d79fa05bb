"""WSGI entry point (gunicorn pushconsole.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushconsole.settings")
application = get_wsgi_application()
