"""The Django project package: settings, URLs, WSGI, the make-run launcher."""
