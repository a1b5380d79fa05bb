"""Append-only audit trail with a hash chain.

Every security-relevant action calls `record()`. Each row stores the hash of the row
before it, so `verify_chain()` finds the first row that was altered, inserted or
removed after the fact. Writers are serialised (an advisory lock on PostgreSQL; SQLite
serialises writers itself) so the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import AuditEvent

GENESIS = "0" * 64
_LOCK_KEY = 0x70757368  # "push"


def _canonical(event: AuditEvent) -> str:
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
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event).encode()).hexdigest()


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


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
    # Round-trip details through JSON so the hash covers exactly what is stored.
    clean_details = json.loads(json.dumps(details or {}, default=str))
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
        )
        event.hash = compute_hash(event)
        event.save(force_insert=True)
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
    """Walk the chain in order. Returns (rows checked, first break or None)."""
    expected_prev = GENESIS
    checked = 0
    for event in _events():
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.id, "previous-hash link does not match")
        if compute_hash(event) != event.hash:
            return checked, ChainBreak(event.id, "contents do not match the stored hash")
        expected_prev = event.hash
        checked += 1
    return checked, None
