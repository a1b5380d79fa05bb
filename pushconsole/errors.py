"""Server error pages: a database that went away answers a short 503, logged once a while.

Django calls `server_error` (the project's handler500) for any uncaught exception, in a
view or in a middleware (sessions and sign-in read the database before any view runs).
When the exception says the database connection failed, the page is a styled 503 with
Retry-After, and the log gets one line per DB_ERROR_LOG_INTERVAL seconds (with a count
of the requests refused meanwhile) instead of a traceback per request.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

log = logging.getLogger(__name__)

DB_ERROR_LOG_INTERVAL = 30.0  # seconds between two log lines of one outage
RETRY_AFTER_SECONDS = 5


class Throttle:
    """Say it once per interval; count what was not said."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.lock = threading.Lock()
        self.last = float("-inf")
        self.quiet = 0

    def should_log(self) -> tuple[bool, int]:
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.interval:
                self.quiet += 1
                return False, 0
            self.last, quiet, self.quiet = now, self.quiet, 0
            return True, quiet


throttle = Throttle(DB_ERROR_LOG_INTERVAL)


def database_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError))


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the 503 page for a database outage, Django's 500 page otherwise."""
    exc = sys.exc_info()[1]
    if not database_unavailable(exc):
        return defaults.server_error(request)
    say, quiet = throttle.should_log()
    if say:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.error(
            "the database is unavailable (%s): pages answer 503%s",
            first_line,
            f"; {quiet} request(s) refused since the last report" if quiet else "",
        )
    # No request context: the context processors would ask the database again.
    body = render_to_string("503_database.html")
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response._has_been_logged = True  # Django would log a traceback per request
    return response
