"""Issue 16: someone who can write the database (past the append-only triggers) edits,
removes, cuts, empties or re-hashes the audit chain; the keyed chain and the witness
file outside the database make verify_audit_chain name the first bad row every time.
Runs on SQLite and, with DATABASE_URL, on PostgreSQL (TRUNCATE, DISABLE TRIGGER)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from campaigns import audit
from campaigns.models import AuditEvent
from tests.test_audit_trail import disable_triggers

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(admin_user, django_capture_on_commit_callbacks):
    made = []
    for n in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            made.append(audit.record("template.create", actor=admin_user, details={"n": n}))
    return made


def broken_at(event_id: int, reason: str) -> None:
    checked, broken = audit.verify_chain()
    assert broken == audit.ChainBreak(event_id, reason), (checked, broken)
    with pytest.raises(CommandError, match=f"broken at event {event_id}: "):
        call_command("verify_audit_chain")


def rehash_from(first: AuditEvent, key: bytes, key_id: str | None = None) -> None:
    """Re-compute every link and MAC from `first` on, as a forger would."""
    prev = AuditEvent.objects.filter(id__lt=first.id).order_by("-id").first()
    prev_hash = prev.hash if prev else audit.GENESIS
    for event in AuditEvent.objects.filter(id__gte=first.id).order_by("id"):
        event.prev_hash = prev_hash
        if key_id is not None:
            event.key_id = key_id
        event.hash = audit.compute_hash(event, key)
        AuditEvent.objects.filter(pk=event.pk).update(
            prev_hash=event.prev_hash, hash=event.hash, key_id=event.key_id
        )
        prev_hash = event.hash


def test_every_committed_event_is_witnessed_in_the_file_and_the_log(
    admin_user, settings, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO, logger="audit.witness")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = audit.record("template.create", actor=admin_user)
    assert not settings.AUDIT_WITNESS_PATH.exists()  # nothing witnessed before commit
    for callback in callbacks:
        callback()
    line = json.loads(settings.AUDIT_WITNESS_PATH.read_text().splitlines()[-1])
    assert line["event"] == event.pk and line["head"] == event.hash
    assert line["key"] == event.key_id == audit.key_id(settings.AUDIT_KEY)
    assert settings.AUDIT_KEY not in settings.AUDIT_WITNESS_PATH.read_text()
    assert any(f'"event":{event.pk}' in r.getMessage() for r in caplog.records)
    assert audit.latest_checkpoint() == event.pk


def test_intact_chain_verifies_against_key_and_witness(events):
    assert audit.verify_chain() == (5, None)
    assert audit.latest_checkpoint() == events[-1].pk


def test_an_edited_row_is_named(events):
    disable_triggers()
    AuditEvent.objects.filter(pk=events[2].pk).update(details={"n": 99})
    broken_at(events[2].pk, audit.BAD_MAC)


def test_insert_or_replace_with_a_recomputed_sha256_is_named(events):
    """The review's attack on SQLite, triggers in place: REPLACE deletes without firing
    the delete trigger; a plain SHA-256 of the new contents no longer passes."""
    if connection.vendor != "sqlite":
        pytest.skip("INSERT OR REPLACE is SQLite syntax")
    target = AuditEvent.objects.get(pk=events[2].pk)
    target.details = {"n": 99}
    forged = hashlib.sha256(audit.canonical(target).encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT OR REPLACE INTO campaigns_auditevent (id, created_at, actor_username, "
            "action, object_type, object_id, object_repr, details, ip, prev_hash, hash, "
            "key_id, actor_id) SELECT id, created_at, actor_username, action, object_type, "
            "object_id, object_repr, %s, ip, prev_hash, %s, key_id, actor_id "
            "FROM campaigns_auditevent WHERE id = %s",
            [json.dumps({"n": 99}), forged, target.pk],
        )
    assert AuditEvent.objects.get(pk=target.pk).details == {"n": 99}
    broken_at(target.pk, audit.BAD_MAC)


def test_a_deleted_middle_row_is_named(events):
    disable_triggers()
    AuditEvent.objects.filter(pk=events[2].pk).delete()
    # the witness names the removed event itself (unwitnessed, the next row's link breaks:
    # test_audit_trail.py)
    broken_at(events[2].pk, audit.MISSING)


def test_a_deleted_middle_row_relinked_with_the_key_is_still_named(events, settings):
    """An insider holding AUDIT_KEY removes a row and re-links the rest: the witness
    still remembers the removed event."""
    disable_triggers()
    AuditEvent.objects.filter(pk=events[2].pk).delete()
    rehash_from(AuditEvent.objects.get(pk=events[3].pk), settings.AUDIT_KEY.encode())
    broken_at(events[2].pk, audit.MISSING)


def test_a_cut_tail_is_named(events):
    disable_triggers()
    AuditEvent.objects.filter(pk__gte=events[3].pk).delete()
    # the chain that is left links up perfectly; only the witness knows it was longer
    broken_at(events[3].pk, audit.MISSING)


def test_an_emptied_table_is_named(events):
    if connection.vendor == "sqlite":
        # the triggers let `DELETE FROM` through (it deletes oldest first)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM campaigns_auditevent")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("TRUNCATE campaigns_auditevent")
    assert AuditEvent.objects.count() == 0
    broken_at(events[0].pk, audit.MISSING)


def test_an_emptied_table_past_disabled_triggers_is_named(events):
    disable_triggers()
    AuditEvent.objects.all().delete()
    broken_at(events[0].pk, audit.MISSING)


def test_a_chain_rewritten_and_rehashed_without_the_key_is_named(events):
    """Re-hashing with any key but AUDIT_KEY (here: a guess, and plain SHA-256 links)
    fails at the first rewritten row."""
    disable_triggers()
    AuditEvent.objects.filter(pk=events[1].pk).update(details={"n": 42})
    rehash_from(AuditEvent.objects.get(pk=events[1].pk), b"a guessed key")
    broken_at(events[1].pk, audit.BAD_MAC)


def test_a_chain_rehashed_under_a_made_up_key_id_is_named(events):
    disable_triggers()
    AuditEvent.objects.filter(pk=events[1].pk).update(details={"n": 42})
    rehash_from(AuditEvent.objects.get(pk=events[1].pk), b"forger", key_id="forger")
    broken_at(events[1].pk, audit.UNKNOWN_KEY)


def test_a_chain_rewritten_and_rehashed_with_the_key_is_named_by_the_witness(events, settings):
    disable_triggers()
    AuditEvent.objects.filter(pk=events[1].pk).update(details={"n": 42})
    rehash_from(AuditEvent.objects.get(pk=events[1].pk), settings.AUDIT_KEY.encode())
    broken_at(events[1].pk, audit.NOT_WITNESSED)


def test_an_edited_witness_line_is_reported(events, settings):
    path = settings.AUDIT_WITNESS_PATH
    lines = path.read_text().splitlines()
    forged = json.loads(lines[-1])
    forged["head"] = "0" * 64
    path.write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    assert audit.verify_chain()[1] == audit.ChainBreak(0, audit.BAD_WITNESS)


def test_key_rotation_keeps_old_events_verifiable(admin_user, settings):
    old = settings.AUDIT_KEY
    first = audit.record("template.create", actor=admin_user)
    settings.AUDIT_KEY, settings.AUDIT_OLD_KEYS = "a-new-audit-key-for-the-rotation", [old]
    second = audit.record("template.create", actor=admin_user)
    assert first.key_id != second.key_id == audit.key_id("a-new-audit-key-for-the-rotation")
    assert audit.verify_chain() == (2, None)
    settings.AUDIT_OLD_KEYS = []  # dropping the old key too early
    assert audit.verify_chain()[1] == audit.ChainBreak(first.pk, audit.UNKNOWN_KEY)


def test_the_verify_page_names_a_cut_tail(client, auditor, events):
    disable_triggers()
    AuditEvent.objects.filter(pk__gte=events[4].pk).delete()
    client.force_login(auditor)
    response = client.post("/audit/verify/")
    assert f"The chain is broken at event {events[4].pk}" in response.text
    assert "no longer in the database" in response.text
    assert f"the newest witnessed event is {events[4].pk}" in response.text


# -- the migration that keyed the chain --------------------------------------------------


def legacy_sha(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_the_migration_rekeys_the_existing_sha256_chain():
    executor = MigrationExecutor(connection)
    before = [("campaigns", "0011_userpreference_to_accounts")]
    try:
        executor.migrate(before)
        apps = MigrationExecutor(connection).loader.project_state(before).apps
        model = apps.get_model("campaigns", "AuditEvent")
        prev = audit.GENESIS
        for n in range(3):
            at = timezone.now()
            fields = {
                "created_at": at.astimezone(UTC).isoformat(),
                "actor": "ada",
                "action": "template.create",
                "object_type": "",
                "object_id": "",
                "object_repr": "",
                "details": {"n": n},
                "ip": None,
                "prev_hash": prev,
            }
            row = model.objects.create(
                created_at=at,
                actor_username="ada",
                action="template.create",
                details={"n": n},
                prev_hash=prev,
                hash=legacy_sha(fields),
            )
            prev = row.hash
        legacy_head = prev
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
    rows = list(AuditEvent.objects.order_by("id"))
    assert [r.action for r in rows] == ["template.create"] * 3 + ["audit.chain_keyed"]
    assert rows[-1].details == {
        "rekeyed": 3,
        "legacy_chain_intact": True,
        "legacy_broken_at": None,
        "legacy_head": legacy_head,
    }
    assert {r.key_id for r in rows} == {audit.current_key()[0]}
    assert audit.verify_chain() == (4, None)
