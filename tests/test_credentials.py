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


def test_admin_change_form_never_renders_the_secret(client, admin_user, credential):
    client.force_login(admin_user)
    response = client.get(f"/admin/campaigns/credential/{credential.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert SANDBOX_SECRET not in page
    assert credential.secret_ciphertext not in page
    assert 'name="access_key_secret"' in page


def test_admin_blank_secret_keeps_the_stored_one(client, admin_user, credential):
    client.force_login(admin_user)
    data = {
        "name": credential.name,
        "app_id": credential.app_id,
        "workspace_id": credential.workspace_id,
        "access_key_id": credential.access_key_id,
        "access_key_secret": "",
        "region": credential.region,
        "endpoint": credential.endpoint,
        "api_version": credential.api_version,
        "timezone": "Asia/Shanghai",
        "rate_limit": "15",
        "scheduled_task_quota": "100",
        "is_active": "on",
    }
    response = client.post(f"/admin/campaigns/credential/{credential.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    credential.refresh_from_db()
    assert credential.rate_limit == 15
    assert credential.secret() == SANDBOX_SECRET
    assert AuditEvent.objects.filter(action="credential.update").count() == 1


def test_admin_rejects_bad_timezone_with_a_named_rule(client, admin_user, credential):
    client.force_login(admin_user)
    response = client.post(
        f"/admin/campaigns/credential/{credential.pk}/change/",
        {
            "name": credential.name,
            "app_id": "A",
            "workspace_id": "W",
            "access_key_id": "K",
            "region": "cn-hangzhou",
            "endpoint": credential.endpoint,
            "api_version": "2019-08-21",
            "timezone": "Mars/Olympus",
            "rate_limit": "1",
            "scheduled_task_quota": "100",
        },
    )
    assert response.status_code == 200
    assert "Timezone must be an IANA name" in response.content.decode()
    credential.refresh_from_db()
    assert credential.app_id != "A"


def test_admin_add_without_a_secret_shows_the_error_on_the_secret_field(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/admin/campaigns/credential/add/",
        {
            "name": "New",
            "app_id": "A",
            "workspace_id": "W",
            "access_key_id": "K",
            "access_key_secret": "",
            "region": "cn-hangzhou",
            "endpoint": "mpaas.cn-hangzhou.aliyuncs.com",
            "api_version": "2019-08-21",
            "timezone": "Asia/Shanghai",
            "rate_limit": "10",
            "scheduled_task_quota": "100",
        },
    )
    assert response.status_code == 200
    assert "An AccessKey secret is required." in response.content.decode()
    assert not Credential.objects.filter(name="New").exists()
