"""AccessKey secrets are encrypted at rest, write-only, masked, and rotatable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from campaigns import crypto
from campaigns.models import AuditEvent, Credential
from tests.conftest import SANDBOX_SECRET

pytestmark = pytest.mark.django_db


def raw_ciphertext(credential: Credential) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_ciphertext FROM campaigns_credential WHERE id = %s", [credential.pk]
        )
        return cursor.fetchone()[0]


def test_secret_is_stored_encrypted_and_reads_back(credential):
    stored = raw_ciphertext(credential)
    assert SANDBOX_SECRET not in stored
    assert Credential.objects.get(pk=credential.pk).secret() == SANDBOX_SECRET


def test_secret_not_in_any_database_row(credential):
    """Dump the whole database (SQLite: iterdump; PostgreSQL: every text column of the
    credential table) and look for the plaintext marker."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        dump = "\n".join(connection.connection.iterdump())
        assert "campaigns_credential" in dump  # the dump really holds the table
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT row_to_json(c)::text FROM campaigns_credential c")
            dump = "\n".join(row[0] for row in cursor.fetchall())
        assert credential.access_key_id in dump
    assert SANDBOX_SECRET not in dump


def test_access_key_id_masked_to_last_four(credential):
    assert credential.masked_access_key_id == "••••0001"
    assert credential.access_key_id not in credential.masked_access_key_id


def test_sandbox_detection(credential):
    assert credential.is_sandbox
    credential.endpoint = "mpaas.cn-hangzhou.aliyuncs.com"
    assert not credential.is_sandbox
    credential.endpoint = "http://example.com"
    assert not credential.is_sandbox


def test_rotate_credential_keys_reencrypts_under_new_first_key(credential, settings):
    old_key = settings.CREDENTIAL_KEYS[0]
    new_key = Fernet.generate_key().decode()
    before = raw_ciphertext(credential)
    settings.CREDENTIAL_KEYS = [new_key, old_key]
    call_command("rotate_credential_keys")
    after = raw_ciphertext(credential)
    assert after != before
    settings.CREDENTIAL_KEYS = [new_key]  # the old key is gone: the row must still read
    assert Credential.objects.get(pk=credential.pk).secret() == SANDBOX_SECRET
    assert AuditEvent.objects.filter(action="credential.rotate_keys").count() == 1


def test_secret_unreadable_with_wrong_keys_names_the_problem(credential, settings):
    settings.CREDENTIAL_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretUnreadableError, match="cannot be decrypted"):
        Credential.objects.get(pk=credential.pk).secret()


def test_admin_credential_page_shows_the_key_id_masked_and_never_the_secret(
    client, admin_user, credential
):
    client.force_login(admin_user)
    response = client.get(f"/admin/campaigns/credential/{credential.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert SANDBOX_SECRET not in page
    assert credential.secret_ciphertext not in page
    assert credential.access_key_id not in page
    assert credential.masked_access_key_id in page
    assert 'name="access_key_secret"' not in page  # nothing to type into


@pytest.mark.parametrize(
    "path",
    [
        "/admin/campaigns/credential/{pk}/change/",
        "/admin/campaigns/credential/{pk}/delete/",
        "/admin/campaigns/credential/add/",
        "/admin/campaigns/campaign/add/",
        "/admin/auth/user/add/",
    ],
)
def test_admin_changes_nothing_the_console_would_audit(client, admin_user, credential, path):
    """Changes go through the console's pages, which audit them; the admin refuses."""
    client.force_login(admin_user)
    before = (Credential.objects.get(pk=credential.pk).rate_limit, Credential.objects.count())
    response = client.post(
        path.format(pk=credential.pk), {"name": "Changed", "rate_limit": "99", "post": "yes"}
    )
    assert response.status_code == 403
    assert (Credential.objects.get(pk=credential.pk).rate_limit, Credential.objects.count()) == (
        before
    )
    assert not AuditEvent.objects.exists()


def test_admin_cannot_make_a_user_superuser(client, admin_user, marketer):
    client.force_login(admin_user)
    response = client.post(
        f"/admin/auth/user/{marketer.pk}/change/",
        {"username": marketer.username, "is_superuser": "on", "is_staff": "on"},
    )
    assert response.status_code == 403
    marketer.refresh_from_db()
    assert not marketer.is_superuser
