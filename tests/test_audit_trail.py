"""The audit trail is append-only in the database (triggers from migration 0005), the
chain check still names the first altered row when someone gets past the triggers, and
the audit page filters, pages by id and verifies the chain for auditors and admins."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns import audit
from campaigns.models import AuditEvent

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TIME_ZONE = "Asia/Shanghai"


@pytest.fixture
def events(admin_user):
    return [audit.record("template.create", actor=admin_user, details={"n": n}) for n in range(4)]


def refused(statement: str, params=()) -> bool:
    """Run raw SQL in a savepoint; True when the database refused it."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, params)
    except DatabaseError as error:
        assert "append-only" in str(error)
        return True
    return False


def disable_triggers() -> None:
    """Get past the append-only triggers the way someone with DDL rights could, inside
    this test's transaction (rolled back with it)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER campaigns_auditevent_no_update")
            cursor.execute("DROP TRIGGER campaigns_auditevent_no_delete")
        else:
            # Run the deferred foreign-key checks of this transaction first: PostgreSQL
            # will not ALTER a table with pending trigger events.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                "ALTER TABLE campaigns_auditevent DISABLE TRIGGER campaigns_auditevent_append_only"
            )


# -- append-only in the database ------------------------------------------------------


def test_append_only_triggers_are_installed():
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'campaigns_auditevent' ORDER BY name"
            )
            expected = ["campaigns_auditevent_no_delete", "campaigns_auditevent_no_update"]
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger "
                "WHERE tgrelid = 'campaigns_auditevent'::regclass AND NOT tgisinternal"
            )
            expected = ["campaigns_auditevent_append_only"]
        assert [row[0] for row in cursor.fetchall()] == expected


def test_update_is_refused_by_the_database(events):
    target = events[2]
    assert refused("UPDATE campaigns_auditevent SET action = 'x' WHERE id = %s", [target.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=target.pk).update(details={"n": 99})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        target.action = "template.delete"
        target.save()
    assert AuditEvent.objects.get(pk=target.pk).details == {"n": 2}
    assert audit.verify_chain() == (4, None)


def test_delete_of_any_but_the_oldest_row_is_refused(events):
    """Both databases refuse deleting a row in the middle or the newest rows (the
    truncation a hash chain alone cannot notice)."""
    middle, newest = events[2], events[3]
    assert refused("DELETE FROM campaigns_auditevent WHERE id = %s", [middle.pk])
    assert refused("DELETE FROM campaigns_auditevent WHERE id >= %s", [middle.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=newest.pk).delete()
    assert AuditEvent.objects.count() == 4
    assert audit.verify_chain() == (4, None)


def test_deleting_the_oldest_row(events):
    """PostgreSQL refuses it. SQLite lets it through (so that the test suite's flush,
    `DELETE FROM` in id order, works) and the chain check then names the new first row."""
    oldest = events[0]
    if connection.vendor == "postgresql":
        assert refused("DELETE FROM campaigns_auditevent WHERE id = %s", [oldest.pk])
        assert audit.verify_chain() == (4, None)
    else:
        assert not refused("DELETE FROM campaigns_auditevent WHERE id = %s", [oldest.pk])
        with pytest.raises(CommandError, match=f"broken at event {events[1].pk}: previous"):
            call_command("verify_audit_chain")


def test_tampering_past_the_triggers_is_named_by_verify_audit_chain(events):
    disable_triggers()
    tampered = events[2]
    AuditEvent.objects.filter(pk=tampered.pk).update(details={"n": 99})
    with pytest.raises(CommandError, match=f"broken at event {tampered.pk}: contents"):
        call_command("verify_audit_chain")


def test_removing_a_row_past_the_triggers_is_named_by_verify_audit_chain(events):
    disable_triggers()
    AuditEvent.objects.filter(pk=events[1].pk).delete()
    with pytest.raises(CommandError, match=f"broken at event {events[2].pk}: previous"):
        call_command("verify_audit_chain")


# -- the audit page -------------------------------------------------------------------


def test_auditor_and_admin_may_read_marketer_may_not(client, admin_user, auditor, marketer, events):
    for user in (auditor, admin_user):
        client.force_login(user)
        response = client.get(reverse("audit-list"))
        assert response.status_code == 200
        assert [row["event"].pk for row in response.context["rows"]] == [
            e.pk for e in reversed(events)
        ]
    client.force_login(marketer)
    assert client.get(reverse("audit-list")).status_code == 403
    assert client.post(reverse("audit-verify")).status_code == 403


def shown(client, **params) -> list[int]:
    response = client.get(reverse("audit-list"), params)
    assert response.status_code == 200
    return [row["event"].pk for row in response.context["rows"]]


def test_filters(client, auditor, admin_user, marketer, credential):
    a = audit.record("credential.update", actor=admin_user, obj=credential)
    b = audit.record("campaign.launch", actor=marketer, details={"run": 1})
    c = audit.record("credential.test", actor=admin_user, obj=credential)
    other = audit.record("credential.test", actor=admin_user, details={"x": 1})
    client.force_login(auditor)
    assert shown(client, actor="mark") == [b.pk]
    assert shown(client, actor="ada") == [other.pk, c.pk, a.pk]
    assert shown(client, action="credential.test") == [other.pk, c.pk]
    assert shown(client, object_type="credential") == [c.pk, a.pk]
    assert shown(client, object_id=str(credential.pk)) == [c.pk, a.pk]
    assert shown(client, object_id=f"{credential.pk}0") == []  # exact match only
    assert shown(client, actor="ada", action="credential.update") == [a.pk]
    choices = dict(client.get(reverse("audit-list")).context["form"].fields["action"].choices)
    assert {"credential.update", "campaign.launch", "credential.test"} <= set(choices)


def test_date_filter_uses_the_console_time_zone(client, auditor, admin_user):
    # 23:30 and 00:30 in Shanghai on either side of midnight (15:30 / 16:30 UTC, same UTC day)
    with time_machine.travel(dt.datetime(2026, 3, 1, 23, 30, tzinfo=SHANGHAI), tick=False):
        late = audit.record("template.create", actor=admin_user)
    with time_machine.travel(dt.datetime(2026, 3, 2, 0, 30, tzinfo=SHANGHAI), tick=False):
        early = audit.record("template.create", actor=admin_user)
    client.force_login(auditor)
    assert shown(client, date_from="2026-03-01", date_to="2026-03-01") == [late.pk]
    assert shown(client, date_from="2026-03-02") == [early.pk]
    assert shown(client, date_to="2026-02-28") == []
    response = client.get(reverse("audit-list"), {"date_from": "2026-03-02"})
    assert "2026-03-02 00:30:00" in response.text  # shown in local time
    bad = client.get(reverse("audit-list"), {"date_from": "2026-03-02", "date_to": "2026-03-01"})
    assert "before the start date" in bad.text
    assert bad.context["rows"] == []


def test_keyset_pages_newest_first_without_counting(client, auditor, admin_user):
    made = [audit.record("template.create", actor=admin_user, details={"n": n}) for n in range(120)]
    ids = [e.pk for e in reversed(made)]
    client.force_login(auditor)
    with CaptureQueriesContext(connection) as queries:
        first = client.get(reverse("audit-list"))
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert [r["event"].pk for r in first.context["rows"]] == ids[:50]
    assert first.context["next_before"] == ids[49]
    second = client.get(reverse("audit-list"), {"before": ids[49]})
    assert [r["event"].pk for r in second.context["rows"]] == ids[50:100]
    third = client.get(reverse("audit-list"), {"before": ids[99]})
    assert [r["event"].pk for r in third.context["rows"]] == ids[100:]
    assert third.context["next_before"] is None
    filtered = client.get(reverse("audit-list"), {"action": "template.create", "before": ids[49]})
    assert "action=template.create&amp;before=" in filtered.text


def test_rows_show_ip_and_escaped_details(client, auditor, admin_user):
    request = RequestFactory().post("/templates/new/", REMOTE_ADDR="198.51.100.4")
    request.user = admin_user
    audit.record("template.create", request=request, details={"name": "<script>x()</script>"})
    client.force_login(auditor)
    response = client.get(reverse("audit-list"))
    assert "<script>x()</script>" not in response.text
    assert "&quot;&lt;script&gt;x()&lt;/script&gt;&quot;" in response.text
    assert "198.51.100.4" in response.text
    assert "template.create" in response.text and ">ada<" in response.text


def test_verify_button_shows_intact_chain(client, auditor, events):
    client.force_login(auditor)
    assert client.get(reverse("audit-verify")).status_code == 405
    response = client.post(reverse("audit-verify"))
    assert response.status_code == 200
    assert "The chain is intact: 4 events verified." in response.text
    event = AuditEvent.objects.get(action="audit.verify")
    assert event.actor == auditor and event.details == {"checked": 4, "broken_at": None}


def test_verify_button_names_the_first_bad_row(client, admin_user, events):
    disable_triggers()
    AuditEvent.objects.filter(pk=events[1].pk).update(action="template.delete")
    client.force_login(admin_user)
    response = client.post(reverse("audit-verify"))
    assert f"The chain is broken at event {events[1].pk}" in response.text
    assert response.context["checked"] == 1


def test_admin_site_keeps_audit_events_read_only(client, admin_user, events):
    from django.contrib import admin as django_admin

    model_admin = django_admin.site._registry[AuditEvent]
    request = type("R", (), {"user": admin_user})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, events[0])
    assert not model_admin.has_delete_permission(request, events[0])
    client.force_login(admin_user)
    url = reverse("admin:campaigns_auditevent_delete", args=[events[0].pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.count() == 4


def test_nav_links_follow_roles(client, admin_user, auditor, marketer):
    links = {
        "audit": f'href="{reverse("audit-list")}"',
        "credentials": f'href="{reverse("credential-list")}"',
        "users": f'href="{reverse("user-list")}"',
    }
    seen = {}
    for user in (admin_user, auditor, marketer):
        client.force_login(user)
        page = client.get(reverse("home")).text
        seen[user.username] = {name for name, link in links.items() if link in page}
    assert seen == {
        "ada": {"audit", "credentials", "users"},
        "audrey": {"audit"},
        "mark": set(),
    }
