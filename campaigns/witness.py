"""The audit chain's witness outside the database: signed checkpoints of its head.

After each audit event commits, `append()` writes one line - the event id, its HMAC
(the chain head at that point), the key id and a signature over those - to
AUDIT_WITNESS_PATH, a file opened O_APPEND by every web and worker process, and logs
the same line on the "audit.witness" logger. Someone who can rewrite the database but
not this file (or the shipped log) cannot cut, empty or re-hash the chain unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger("audit.witness")


@dataclass(frozen=True)
class Checkpoint:
    event_id: int
    head: str
    key_id: str


@dataclass(frozen=True)
class WitnessRead:
    checkpoints: dict[int, Checkpoint]
    bad_lines: list[int]  # 1-based line numbers whose signature does not verify


def _signature(key: bytes, event_id: int, head: str, key_id: str) -> str:
    message = f"checkpoint|{event_id}|{head}|{key_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def path() -> Path:
    return Path(settings.AUDIT_WITNESS_PATH)


def append(event_id: int, head: str, key_id: str, key: bytes) -> None:
    """Append one signed checkpoint to the witness file and the log stream."""
    line = json.dumps(
        {
            "event": event_id,
            "head": head,
            "key": key_id,
            "sig": _signature(key, event_id, head, key_id),
        },
        separators=(",", ":"),
    )
    logger.info("%s", line)
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())  # one write(2): whole lines under O_APPEND
    finally:
        os.close(fd)


def read(keys: dict[str, bytes]) -> WitnessRead:
    """Every checkpoint whose signature verifies under a known key (by event id)."""
    checkpoints: dict[int, Checkpoint] = {}
    bad: list[int] = []
    target = path()
    if not target.exists():
        return WitnessRead(checkpoints, bad)
    with target.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                event_id, head, key_id = int(item["event"]), str(item["head"]), str(item["key"])
                key = keys[key_id]
                good = hmac.compare_digest(
                    _signature(key, event_id, head, key_id), str(item["sig"])
                )
            except (ValueError, KeyError, TypeError):
                good = False
            if not good:
                bad.append(number)
                continue
            # the first checkpoint of an event stands; a later line cannot overwrite it
            checkpoints.setdefault(event_id, Checkpoint(event_id, head, key_id))
    return WitnessRead(checkpoints, bad)
