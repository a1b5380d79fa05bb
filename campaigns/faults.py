"""A test-only crash point for the fault drills: off unless PUSH_FAULT_POINT names it."""

from __future__ import annotations

import logging
import os

from django.conf import settings

log = logging.getLogger(__name__)


def fault_point(name: str) -> None:
    """Crash here if PUSH_FAULT_POINT is `name:MARKER_FILE`. It fires once (the marker
    file records that it did) by killing the process without any cleanup, the way a
    power cut or the OOM killer would."""
    configured = settings.PUSH_FAULT_POINT
    if not configured:
        return
    point, _sep, marker = configured.partition(":")
    if point != name or not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    log.error("fault point %s: killing process %s", name, os.getpid())
    os._exit(70)
