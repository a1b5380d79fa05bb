"""An admin, in a real Chromium, adds a credential and tests it against the sandbox; a
marketer is refused the credentials page and is not offered the link."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from campaigns.models import AuditEvent, Credential
from tests.conftest import APP_ID, SANDBOX_KEY_ID, SANDBOX_SECRET, WORKSPACE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 5000  # ms


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_admin_adds_a_credential_and_tests_the_connection(login, live_server, admin_user, sandbox):
    page = login(admin_user)
    page.set_default_timeout(TIMEOUT)
    page.get_by_role("link", name="Credentials").click()
    page.get_by_role("link", name="New credential").click()

    page.get_by_label("Name").fill("Rehearsal")
    page.get_by_label("AppId").fill(APP_ID)
    page.get_by_label("WorkspaceId").fill(WORKSPACE)
    page.get_by_label("AccessKey ID").fill(SANDBOX_KEY_ID)
    page.get_by_label("AccessKey secret").fill(SANDBOX_SECRET)
    page.get_by_label("Endpoint").fill(sandbox.url)
    page.get_by_label("Timezone").fill("Asia/Tokyo")
    page.get_by_role("button", name="Save credential").click()

    expect(page.get_by_role("alert")).to_have_text("Credential “Rehearsal” added.")
    row = page.get_by_role("row", name="Rehearsal")
    expect(row).to_contain_text("••••0001")
    expect(row).to_contain_text("Sandbox")
    assert SANDBOX_KEY_ID not in page.content() and SANDBOX_SECRET not in page.content()
    credential = Credential.objects.get(name="Rehearsal")
    assert credential.secret() == SANDBOX_SECRET and credential.timezone == "Asia/Tokyo"

    # Re-edit: the secret and the key ID inputs are empty, the masked key is shown.
    page.get_by_role("link", name="Rehearsal").click()
    expect(page.get_by_label("AccessKey secret")).to_have_value("")
    expect(page.get_by_label("AccessKey ID")).to_have_value("")
    expect(page.get_by_label("AccessKey ID")).to_have_attribute("placeholder", "••••0001")
    expect(page.get_by_text("Stored: ••••0001. Leave blank to keep it.")).to_be_visible()
    assert SANDBOX_KEY_ID not in page.content() and SANDBOX_SECRET not in page.content()

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result")).to_contain_text("Connection works.")
    expect(page.locator("#test-result")).to_contain_text("0 scheduled tasks")
    assert [r["action"] for r in sandbox.records()] == ["QueryPushSchedulerList"]
    assert AuditEvent.objects.filter(
        action="credential.test", object_id=str(credential.pk)
    ).exists()


def test_marketer_is_refused_the_credentials_page(login, live_server, marketer):
    page = login(marketer)
    page.set_default_timeout(TIMEOUT)
    expect(page.get_by_role("link", name="Campaigns")).to_be_visible()
    expect(page.get_by_role("link", name="Credentials")).to_have_count(0)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    response = page.goto(f"{live_server.url}/credentials/")
    assert response.status == 403
    expect(page.locator("body")).to_contain_text("403")
