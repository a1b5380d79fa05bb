"""Session rules: an absolute lifetime, fresh sign-in before resetting someone else's
password or replacing a credential's secret, and every user's own password change.
Each test plays the attack (an old or stolen session) and checks it does no harm."""

from __future__ import annotations

import time

import pytest

from accounts import sessions
from campaigns.models import AuditEvent, Credential
from tests.conftest import SANDBOX_SECRET
from tests.test_credential_pages import edit_data

pytestmark = pytest.mark.django_db

NEW_SECRET = "replaced-secret-value-1234"


def age_session(client, key: str, seconds: int) -> None:
    session = client.session
    session[key] = int(time.time()) - seconds
    session.save()


def test_a_session_ends_at_its_absolute_lifetime_however_active(client, marketer, settings):
    settings.SESSION_ABSOLUTE_SECONDS = 3600
    client.force_login(marketer)
    assert client.get("/campaigns/").status_code == 200
    age_session(client, sessions.SIGNED_IN_AT, 3601)
    response = client.get("/campaigns/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session
    assert client.get("/campaigns/").status_code == 302  # stays signed out


def test_a_session_within_its_lifetime_lives_on(client, marketer, settings):
    settings.SESSION_ABSOLUTE_SECONDS = 3600
    client.force_login(marketer)
    age_session(client, sessions.SIGNED_IN_AT, 3500)
    assert client.get("/campaigns/").status_code == 200


def test_resetting_another_users_password_needs_a_fresh_sign_in(
    client, admin_user, marketer, settings
):
    settings.FRESH_SIGN_IN_SECONDS = 300
    client.force_login(admin_user)
    age_session(client, sessions.PASSWORD_AT, 301)  # e.g. a session left open
    url = f"/users/{marketer.pk}/password/"
    new = {"password1": "Brand-new-pw-9876", "password2": "Brand-new-pw-9876"}
    response = client.post(url, new)
    assert response.status_code == 302 and response["Location"].startswith("/account/confirm/")
    marketer.refresh_from_db()
    assert marketer.check_password("pw-mark-123")  # unchanged
    # a wrong password does not make the session fresh
    client.post("/account/confirm/", {"password": "wrong", "next": url})
    assert client.post(url, new)["Location"].startswith("/account/confirm/")
    response = client.post("/account/confirm/", {"password": "pw-ada-123", "next": url})
    assert response.status_code == 302 and response["Location"] == url
    client.post(url, new)
    marketer.refresh_from_db()
    assert marketer.check_password("Brand-new-pw-9876")
    assert AuditEvent.objects.filter(action="login.confirm", actor=admin_user).exists()


def test_five_wrong_confirmations_end_the_session(client, admin_user):
    client.force_login(admin_user)
    for _ in range(5):
        client.post("/account/confirm/", {"password": "guess"})
    assert "_auth_user_id" not in client.session


def test_replacing_a_secret_needs_a_fresh_sign_in(client, admin_user, credential, settings):
    settings.FRESH_SIGN_IN_SECONDS = 300
    client.force_login(admin_user)
    age_session(client, sessions.PASSWORD_AT, 301)
    url = f"/credentials/{credential.pk}/"
    response = client.post(url, edit_data(credential, access_key_secret=NEW_SECRET))
    assert response.status_code == 302 and response["Location"].startswith("/account/confirm/")
    credential.refresh_from_db()
    assert credential.secret() == SANDBOX_SECRET
    # other edits need no fresh sign-in
    client.post(url, edit_data(credential, rate_limit="33"))
    credential.refresh_from_db()
    assert credential.rate_limit == 33
    client.post("/account/confirm/", {"password": "pw-ada-123"})
    client.post(url, edit_data(credential, access_key_secret=NEW_SECRET))
    assert Credential.objects.get(pk=credential.pk).secret() == NEW_SECRET


def test_every_user_changes_their_own_password(client, auditor):
    client.force_login(auditor)
    page = client.get("/account/password/")
    assert page.status_code == 200 and "Current password" in page.content.decode()
    response = client.post(
        "/account/password/",
        {"current": "wrong", "password1": "Fresh-pw-12345", "password2": "Fresh-pw-12345"},
    )
    assert "That is not your current password." in response.content.decode()
    auditor.refresh_from_db()
    assert auditor.check_password("pw-audrey-123")
    response = client.post(
        "/account/password/",
        {"current": "pw-audrey-123", "password1": "Fresh-pw-12345", "password2": "Fresh-pw-12345"},
    )
    assert response.status_code == 302
    auditor.refresh_from_db()
    assert auditor.check_password("Fresh-pw-12345")
    assert client.get("/campaigns/").status_code == 200  # this session lives on
    assert AuditEvent.objects.filter(action="user.change_own_password", actor=auditor).exists()
