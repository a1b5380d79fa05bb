"""The audit trail is hash-chained; verify_audit_chain names the first bad row."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from campaigns import audit

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


# Tampering despite the database triggers is covered in test_audit_trail.py.
