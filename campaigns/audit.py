"""Append-only audit trail: an HMAC chain keyed outside the database, witnessed outside it.

Every security-relevant action calls `record()`. Each row stores the HMAC (keyed with
AUDIT_KEY, identified per row by `key_id`) of its contents and of the row before it,
so without the key nobody can alter, insert or re-hash a row unnoticed. After commit
each event appends a signed checkpoint of the new head to the witness
(campaigns/witness.py), so removing the newest rows, emptying the table or re-hashing
the whole chain with the key is noticed too. `verify_chain()` names the first bad row.
Writers are serialised (an advisory lock on PostgreSQL; SQLite serialises writers
itself) so the chain never forks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns import witness
from campaigns.models import AuditEvent

GENESIS = "0" * 64
_LOCK_KEY = 0x70757368  # "push"
logger = logging.getLogger(__name__)

# Reasons verify_chain() gives (the audit page translates them).
BAD_LINK = "previous-hash link does not match"
BAD_MAC = "contents do not match the stored hash"
UNKNOWN_KEY = "signed with a key that is not configured"
NOT_WITNESSED = "does not match the witnessed checkpoint"
MISSING = "witnessed but missing from the database"
BAD_WITNESS = "the witness file has a line with a bad signature"


def key_id(key: str) -> str:
    """A short public fingerprint of an audit key (stored per row; reveals nothing)."""
    return hmac.new(key.encode(), b"push-console audit key id", hashlib.sha256).hexdigest()[:12]


def keys() -> dict[str, bytes]:
    """Every configured audit key by id: AUDIT_KEY, then AUDIT_OLD_KEYS."""
    return {key_id(k): k.encode() for k in [settings.AUDIT_KEY, *settings.AUDIT_OLD_KEYS] if k}


def current_key() -> tuple[str, bytes]:
    return key_id(settings.AUDIT_KEY), settings.AUDIT_KEY.encode()


def canonical(event) -> str:
    """The exact text the MAC covers (works on historical models in migrations too)."""
    return json.dumps(
        {
            "created_at": event.created_at.astimezone(UTC).isoformat(),
            "actor": event.actor_username,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "object_repr": event.object_repr,
            "details": event.details,
            "ip": event.ip,
            "prev_hash": event.prev_hash,
            "key_id": event.key_id,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )


def compute_hash(event, key: bytes) -> str:
    return hmac.new(key, canonical(event).encode(), hashlib.sha256).hexdigest()


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _witness(event_id: int, head: str, kid: str, key: bytes) -> None:
    try:
        witness.append(event_id, head, kid, key)
    except OSError:
        # The event is committed; a missing checkpoint only leaves it unwitnessed.
        logger.exception("could not append audit checkpoint for event %s", event_id)


def record(
    action: str,
    *,
    actor=None,
    obj=None,
    details: dict[str, Any] | None = None,
    request=None,
) -> AuditEvent:
    """Append one audit event. `details` must never hold a secret."""
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    # Round-trip details through JSON so the MAC covers exactly what is stored.
    clean_details = json.loads(json.dumps(details or {}, default=str))
    kid, key = current_key()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            created_at=timezone.now(),
            actor=actor if getattr(actor, "pk", None) else None,
            actor_username=getattr(actor, "username", "") or "",
            action=action,
            object_type=obj._meta.model_name if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            object_repr=str(obj)[:200] if obj is not None else "",
            details=clean_details,
            ip=client_ip(request),
            prev_hash=last or GENESIS,
            key_id=kid,
        )
        event.hash = compute_hash(event, key)
        event.save(force_insert=True)
        head = (event.pk, event.hash)
        transaction.on_commit(lambda: _witness(*head, kid, key))
    return event


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


def _events() -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        chunk = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:2000])
        if not chunk:
            return
        yield from chunk
        last_id = chunk[-1].id


def verify_chain() -> tuple[int, ChainBreak | None]:
    """Walk the chain in order against the keys and the witness.

    Returns (rows checked, first break or None). A break names the first bad row: an
    altered or re-hashed row, the row after a removed one, or - for a cut tail or an
    emptied table - the first witnessed event id that is no longer there.
    """
    known = keys()
    seen = witness.read(known)
    if seen.bad_lines:
        return 0, ChainBreak(0, BAD_WITNESS)
    pending = sorted(seen.checkpoints)  # witnessed event ids not yet met, ascending
    position = 0
    expected_prev = GENESIS
    checked = 0
    for event in _events():
        if position < len(pending) and pending[position] < event.id:
            return checked, ChainBreak(pending[position], MISSING)
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.id, BAD_LINK)
        key = known.get(event.key_id)
        if key is None:
            return checked, ChainBreak(event.id, UNKNOWN_KEY)
        if not hmac.compare_digest(compute_hash(event, key), event.hash):
            return checked, ChainBreak(event.id, BAD_MAC)
        if position < len(pending) and pending[position] == event.id:
            if not hmac.compare_digest(seen.checkpoints[event.id].head, event.hash):
                return checked, ChainBreak(event.id, NOT_WITNESSED)
            position += 1
        expected_prev = event.hash
        checked += 1
    if position < len(pending):
        return checked, ChainBreak(pending[position], MISSING)
    return checked, None


def latest_checkpoint() -> int | None:
    """The newest witnessed event id (for the verify page), or None."""
    checkpoints = witness.read(keys()).checkpoints
    return max(checkpoints) if checkpoints else None
