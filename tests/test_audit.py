"""The audit trail is hash-chained; verify_audit_chain names the first bad row."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from campaigns import audit
from campaigns.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_events_chain_to_each_other(admin_user):
    first = audit.record("login.success", actor=admin_user)
    second = audit.record("campaign.launch", actor=admin_user, details={"run": 1})
    assert first.prev_hash == audit.GENESIS
    assert second.prev_hash == first.hash
    assert second.actor_username == "ada"
    assert audit.verify_chain() == (2, None)


def test_verify_audit_chain_passes_on_intact_trail(admin_user, capsys):
    for n in range(3):
        audit.record("template.create", actor=admin_user, details={"n": n})
    call_command("verify_audit_chain")
    assert "3 event(s) verified" in capsys.readouterr().out


def test_verify_audit_chain_names_first_tampered_row(admin_user):
    events = [audit.record("template.create", actor=admin_user, details={"n": n}) for n in range(4)]
    tampered = events[2]
    try:
        AuditEvent.objects.filter(pk=tampered.pk).update(details={"n": 99})
    except Exception:  # noqa: BLE001 - the append-only trigger refused: that is a pass too
        pytest.skip("the database refuses UPDATE on audit events")
    with pytest.raises(CommandError, match=f"broken at event {tampered.pk}: contents"):
        call_command("verify_audit_chain")
