"""Credential pages (admins only): list, create, edit with a write-only secret and a
masked AccessKey ID, field validation, test connection against the sandbox,
deactivate/reactivate, delete only while unused; never cached; audited by field name."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.models import AuditEvent, Credential
from tests.conftest import APP_ID, SANDBOX_KEY_ID, SANDBOX_SECRET, WORKSPACE
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db

NEW_SECRET = "new-secret-MARKER-77aa01"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def form_data(sandbox_url: str, **changes) -> dict:
    data = {
        "name": "Second",
        "app_id": APP_ID,
        "workspace_id": WORKSPACE,
        "access_key_id": SANDBOX_KEY_ID,
        "access_key_secret": SANDBOX_SECRET,
        "api_version": "2020-10-28",
        "endpoint": sandbox_url,
        "region": "cn-hangzhou",
        "timezone": "Asia/Shanghai",
        "rate_limit": "20",
        "scheduled_task_quota": "100",
    }
    data.update(changes)
    return data


def edit_data(credential: Credential, **changes) -> dict:
    """The edit form as the page posts it back unchanged (key ID and secret blank)."""
    data = form_data(
        credential.endpoint,
        name=credential.name,
        access_key_id="",
        access_key_secret="",
        rate_limit=str(credential.rate_limit),
        scheduled_task_quota=str(credential.scheduled_task_quota),
    )
    data.update(changes)
    return data


def assert_no_store(response) -> None:
    assert "no-store" in response.headers.get("Cache-Control", ""), response.headers


def assert_nothing_secret(response, credential: Credential | None = None) -> None:
    page = response.content.decode()
    assert SANDBOX_SECRET not in page
    assert NEW_SECRET not in page
    assert SANDBOX_KEY_ID not in page  # the full AccessKey ID is never shown
    if credential is not None:
        assert credential.secret_ciphertext not in page


def test_list_shows_masked_key_sandbox_badge_and_is_not_cached(admin_client, credential):
    response = admin_client.get(reverse("credential-list"))
    assert response.status_code == 200
    assert_no_store(response)
    assert_nothing_secret(response, credential)
    page = response.text
    assert "Sandbox" in page and APP_ID in page and WORKSPACE in page
    assert "••••0001" in page
    assert credential.endpoint in page


def test_other_roles_are_refused_every_credential_page(client, marketer, auditor, credential):
    pk = credential.pk
    names = ["credential-list", "credential-create"]
    with_pk = ["credential-edit", "credential-test", "credential-deactivate",
               "credential-activate", "credential-delete"]  # fmt: skip
    urls = [reverse(n) for n in names] + [reverse(n, args=[pk]) for n in with_pk]
    for user in (marketer, auditor):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code == 403, (user.username, url)
            assert client.post(url, form_data("https://x.example")).status_code == 403, url
    credential.refresh_from_db()
    assert credential.is_active and Credential.objects.count() == 1
    assert not AuditEvent.objects.exists()


def test_create_stores_encrypted_secret_and_audits_field_names(admin_client, sandbox):
    response = admin_client.post(reverse("credential-create"), form_data(sandbox.url))
    assert response.status_code == 302
    assert response.url == reverse("credential-list")
    assert_no_store(response)
    created = Credential.objects.get(name="Second")
    assert created.secret() == SANDBOX_SECRET
    assert SANDBOX_SECRET not in created.secret_ciphertext
    assert created.is_active and created.access_key_id == SANDBOX_KEY_ID
    event = AuditEvent.objects.get(action="credential.create")
    assert event.object_id == str(created.pk)
    assert "access_key_secret" in event.details["fields"]
    assert SANDBOX_SECRET not in str(event.details) and SANDBOX_KEY_ID not in str(event.details)
    # the secret is hidden from error reports
    assert tuple(response.wsgi_request.sensitive_post_parameters) == ("access_key_secret",)


def test_create_requires_secret_and_key_id_next_to_the_fields(admin_client, sandbox):
    data = form_data(sandbox.url, access_key_secret="", access_key_id="")
    response = admin_client.post(reverse("credential-create"), data)
    assert response.status_code == 200
    assert_no_store(response)
    errors = response.context["form"].errors
    assert "access_key_secret" in errors and "access_key_id" in errors
    assert not Credential.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "IANA name"),
        ("endpoint", "http://example.com", "only for a sandbox on this machine"),
        ("endpoint", "ftp://mpaas.example.com", "Only https://"),
        ("endpoint", "mpaas.cn-hangzhou.aliyuncs.com/path?x=1", "host only"),
        ("endpoint", "not a host", "Enter a host name"),
        ("region", "Hangzhou", "cn-hangzhou"),
        ("rate_limit", "0", "at least 0.1 calls per second"),
        ("rate_limit", "fast", "as a number"),
        ("scheduled_task_quota", "0", "at least 1 scheduled task"),
        ("api_version", "2001-01-01", "listed API versions"),
    ],
)
def test_bad_values_get_a_clear_message_next_to_the_field(
    admin_client, sandbox, field, value, message
):
    response = admin_client.post(
        reverse("credential-create"), form_data(sandbox.url, **{field: value})
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field])
    assert message in response.text.replace("&#x27;", "'")
    assert_nothing_secret(response)
    assert not Credential.objects.exists()


def test_duplicate_name_is_refused(admin_client, credential):
    response = admin_client.post(
        reverse("credential-create"), form_data(credential.endpoint, name="Sandbox")
    )
    assert "Another credential already has this name." in response.context["form"].errors["name"]


def test_edit_form_never_renders_secret_or_full_key_id(admin_client, credential):
    response = admin_client.get(reverse("credential-edit", args=[credential.pk]))
    assert response.status_code == 200
    assert_no_store(response)
    assert_nothing_secret(response, credential)
    page = response.text
    assert 'name="access_key_secret"' in page and 'type="password"' in page
    assert "••••0001" in page  # the masked key, as placeholder and help text
    assert 'name="access_key_id" value=' not in page


def test_edit_with_blank_secret_and_key_id_keeps_both(admin_client, credential):
    url = reverse("credential-edit", args=[credential.pk])
    response = admin_client.post(url, edit_data(credential, rate_limit="15", region="cn-shanghai"))
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.rate_limit == 15 and credential.region == "cn-shanghai"
    assert credential.secret() == SANDBOX_SECRET
    assert credential.access_key_id == SANDBOX_KEY_ID
    event = AuditEvent.objects.get(action="credential.update")
    assert event.details == {"fields": ["rate_limit", "region"]}


def test_edit_with_new_secret_records_only_the_field_name(admin_client, credential):
    url = reverse("credential-edit", args=[credential.pk])
    response = admin_client.post(url, edit_data(credential, access_key_secret=NEW_SECRET))
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.secret() == NEW_SECRET
    event = AuditEvent.objects.get(action="credential.update")
    assert event.details == {"fields": ["access_key_secret"]}
    assert NEW_SECRET not in str(list(AuditEvent.objects.values_list("details", flat=True)))


def test_edit_with_a_new_key_id_records_it_changed(admin_client, credential):
    url = reverse("credential-edit", args=[credential.pk])
    admin_client.post(url, edit_data(credential, access_key_id="LTAIother9999"))
    credential.refresh_from_db()
    assert credential.access_key_id == "LTAIother9999"
    assert AuditEvent.objects.get(action="credential.update").details == {
        "fields": ["access_key_id"]
    }


def test_unchanged_edit_writes_no_audit_event(admin_client, credential):
    admin_client.post(reverse("credential-edit", args=[credential.pk]), edit_data(credential))
    assert not AuditEvent.objects.filter(action="credential.update").exists()


def test_test_connection_against_sandbox_shows_success(admin_client, credential, sandbox):
    response = admin_client.post(reverse("credential-test", args=[credential.pk]))
    assert response.status_code == 200
    assert_no_store(response)
    assert_nothing_secret(response, credential)
    assert "Connection works." in response.text
    assert "0 scheduled tasks" in response.text
    assert [r["action"] for r in sandbox.records()] == ["QueryPushSchedulerList"]
    event = AuditEvent.objects.get(action="credential.test")
    assert event.details == {"ok": True, "tasks": 0}


def test_test_connection_shows_the_error_code_message_and_request_id(admin_client, credential):
    credential.set_secret("a-wrong-secret")
    credential.save()
    response = admin_client.post(reverse("credential-test", args=[credential.pk]))
    assert response.status_code == 200
    page = response.text
    assert "The call failed." in page
    assert "SignatureDoesNotMatch" in page
    assert "The AccessKey secret does not match this AccessKey ID." in page
    result = response.context["result"]
    assert result.kind == "permanent" and result.request_id
    assert result.request_id in page
    assert "a-wrong-secret" not in page
    event = AuditEvent.objects.get(action="credential.test")
    assert event.details["ok"] is False and event.details["code"] == "SignatureDoesNotMatch"


def test_test_connection_to_a_dead_endpoint_says_so(admin_client, credential):
    credential.endpoint = "http://127.0.0.1:9"  # discard port: connection refused
    credential.save()
    response = admin_client.post(reverse("credential-test", args=[credential.pk]))
    assert response.status_code == 200
    assert "The call failed." in response.text
    assert response.context["result"].kind == "transient"


def test_test_connection_is_post_only(admin_client, credential):
    assert admin_client.get(reverse("credential-test", args=[credential.pk])).status_code == 405


def test_deactivate_and_reactivate_are_posts_and_audited(admin_client, credential):
    deactivate = reverse("credential-deactivate", args=[credential.pk])
    activate = reverse("credential-activate", args=[credential.pk])
    assert admin_client.get(deactivate).status_code == 405
    response = admin_client.post(deactivate)
    assert response.status_code == 302
    assert_no_store(response)
    credential.refresh_from_db()
    assert not credential.is_active
    admin_client.post(deactivate)  # twice: nothing more happens
    assert admin_client.get(reverse("credential-list")).text.count("Deactivated") == 1
    admin_client.post(activate)
    credential.refresh_from_db()
    assert credential.is_active
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["credential.deactivate", "credential.activate"]


def test_delete_refused_while_a_campaign_uses_it(admin_client, credential, template, target_list):
    make_campaign(credential, template, target_list)
    url = reverse("credential-delete", args=[credential.pk])
    page = admin_client.get(url)
    assert "cannot be deleted while 1 campaign uses it" in page.text
    assert reverse("credential-deactivate", args=[credential.pk]) in page.text
    response = admin_client.post(url)
    assert response.status_code == 302
    assert Credential.objects.filter(pk=credential.pk).exists()
    assert not AuditEvent.objects.filter(action="credential.delete").exists()


def test_delete_unused_credential(admin_client, credential):
    url = reverse("credential-delete", args=[credential.pk])
    assert "Delete credential" in admin_client.get(url).text
    response = admin_client.post(url)
    assert response.status_code == 302
    assert not Credential.objects.exists()
    event = AuditEvent.objects.get(action="credential.delete")
    assert event.object_id == str(credential.pk) and event.object_repr == "Sandbox"


def test_unknown_credential_is_404(admin_client):
    assert admin_client.get(reverse("credential-edit", args=[999])).status_code == 404
    assert admin_client.post(reverse("credential-test", args=[999])).status_code == 404


def test_edit_page_offers_delete_only_while_unused(admin_client, credential, template, target_list):
    url = reverse("credential-edit", args=[credential.pk])
    delete_url = reverse("credential-delete", args=[credential.pk])
    assert delete_url in admin_client.get(url).text
    make_campaign(credential, template, target_list)
    page = admin_client.get(url).text
    assert delete_url not in page
    assert "deactivate it instead" in page
    assert reverse("credential-deactivate", args=[credential.pk]) in page


def test_refused_edit_keeps_showing_the_stored_name(admin_client, credential):
    url = reverse("credential-edit", args=[credential.pk])
    response = admin_client.post(url, edit_data(credential, name="Renamed", region="BAD"))
    assert response.status_code == 200
    assert "Edit credential “Sandbox”" in response.text
    credential.refresh_from_db()
    assert credential.name == "Sandbox"
