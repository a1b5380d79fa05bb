"""Issue 16 item 5 (part): password spraying from one address across usernames is
locked out, and every page a signed-in user gets is `Cache-Control: no-store`."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(client, username, password, ip="198.51.100.7"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_thirty_usernames_one_wrong_password_each_from_one_address_lock_it_out(
    client, marketer, settings
):
    statuses = [login(client, f"user{n}", "Winter2026!").status_code for n in range(30)]
    limit = settings.LOGIN_IP_FAILURE_LIMIT
    assert limit <= 30 and statuses[:limit] == [200] * limit  # the form again each time
    assert set(statuses[limit:]) == {429}
    # a real user's right password from that address is refused too, while it is locked
    locked = login(Client(), "mark", "pw-mark-123")
    assert locked.status_code == 429
    assert "from your network, for several accounts" in locked.text
    assert AuditEvent.objects.filter(action="login.ip_lockout").exists()
    # another address is not affected
    assert login(Client(), "mark", "pw-mark-123", ip="203.0.113.9").status_code == 302


def test_a_few_typos_from_a_shared_address_lock_nobody_else_out(client, marketer):
    for n in range(3):
        assert login(client, f"typo{n}", "wrong").status_code == 200
    assert login(Client(), "mark", "pw-mark-123").status_code == 302


def test_pages_with_deliveries_targets_or_audit_are_no_store(
    client, admin_user, credential, target_list
):
    client.force_login(admin_user)
    pages = [
        reverse("history-list"),
        reverse("audit-list"),
        reverse("campaign-list"),
        reverse("target-list-detail", args=[target_list.pk]),
        reverse("home"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response.headers["Cache-Control"], url
    export = client.get(reverse("history-export"))
    assert "no-store" in export.headers["Cache-Control"]
