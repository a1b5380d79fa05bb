"""WSGI entry point (gunicorn pushconsole.wsgi).

Importing it readies a web worker: Django set up, the URLconf (and with it every view
module) loaded, then every object alive at that point moved out of the garbage
collector's sight with `gc.freeze()`. Without the freeze, each full collection walked
the ~130,000 objects of the loaded app, a pause of ~80 ms that landed on whichever
request was running (the history page's p95 at 5 M rows went over 150 ms on single
requests, `docs/BENCHMARKS.md`); after it, a full collection walks only what requests
left behind (6-10 ms).
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushconsole.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 (imports every view now, not in a request)
gc.freeze()
