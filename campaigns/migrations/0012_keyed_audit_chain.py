# The audit chain becomes an HMAC chain keyed with AUDIT_KEY (campaigns/audit.py).
#
# Existing events are re-keyed here rather than left as an unkeyed prefix: an unkeyed
# prefix would be a region anyone with database access could rewrite, and accepting a
# "legacy" key id would let a forger downgrade any row. Before re-keying, the old
# SHA-256 chain is checked; the result (rows re-keyed, whether the old chain was intact
# and where it first broke, and its old head) goes into an `audit.chain_keyed` event
# appended at the end, so the re-keying itself is on the record. The append-only
# triggers are dropped for the UPDATEs and re-created (on SQLite, AddField rebuilds
# the table, which drops them anyway).
import hashlib
import importlib
import json
from datetime import UTC

from django.db import migrations, models
from django.utils import timezone

security = importlib.import_module("campaigns.migrations.0005_security")


def legacy_hash(event) -> str:
    text = json.dumps(
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
    return hashlib.sha256(text.encode()).hexdigest()


def rekey(apps, schema_editor):
    from campaigns import audit

    AuditEvent = apps.get_model("campaigns", "AuditEvent")
    kid, key = audit.current_key()
    legacy_prev, legacy_broken_at, legacy_head = audit.GENESIS, None, audit.GENESIS
    prev, count = audit.GENESIS, 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if legacy_broken_at is None and (
            event.prev_hash != legacy_prev or legacy_hash(event) != event.hash
        ):
            legacy_broken_at = event.id
        legacy_prev = legacy_head = event.hash
        event.prev_hash, event.key_id = prev, kid
        event.hash = audit.compute_hash(event, key)
        event.save(update_fields=["prev_hash", "key_id", "hash"])
        prev, count = event.hash, count + 1
    if count == 0:
        return  # a fresh database: nothing to re-key, nothing to note
    note = AuditEvent(
        created_at=timezone.now(),
        actor_username="",
        action="audit.chain_keyed",
        details={
            "rekeyed": count,
            "legacy_chain_intact": legacy_broken_at is None,
            "legacy_broken_at": legacy_broken_at,
            "legacy_head": legacy_head,
        },
        prev_hash=prev,
        key_id=kid,
    )
    note.hash = audit.compute_hash(note, key)
    note.save(force_insert=True)


def drop_triggers(apps, schema_editor):
    security.drop_triggers(apps, schema_editor)


def add_triggers(apps, schema_editor):
    security.drop_triggers(apps, schema_editor)
    security.add_triggers(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0011_userpreference_to_accounts")]

    operations = [
        migrations.RunPython(drop_triggers, add_triggers),
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.RunPython(rekey, migrations.RunPython.noop),
        migrations.RunPython(add_triggers, drop_triggers),
    ]
