"""An auditor answers "did this user get that campaign?" in a real Chromium: finds the
delivery by target ID, opens its call, and downloads the CSV export."""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from playwright.sync_api import expect

from campaigns import lifecycle
from campaigns.models import Delivery
from tests.pipeline_helpers import drain, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sent(credential, template, target_list, sandbox, marketer, redis_conn, settings):
    settings.PUSH_JOB_SECONDS = 5
    campaign = make_campaign(credential, template, target_list, task_name="Browser history sale")
    lifecycle.launch(campaign, marketer)
    drain()
    return campaign


def test_auditor_finds_a_delivery_opens_its_call_and_exports_it(
    login, page, live_server, auditor, sent
):
    csp_errors = []
    page.on(
        "console",
        lambda message: (
            csp_errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    delivery = Delivery.objects.select_related("batch").get(target_id="user-011")
    login(auditor)
    page.get_by_role("link", name="Send history").click()
    page.get_by_label("Target ID").fill("user-011")
    page.get_by_role("button", name="Search").click()

    rows = page.get_by_test_id("history-row")
    expect(rows).to_have_count(1)
    expect(rows.get_by_test_id("msg-key")).to_have_text(delivery.msg_key)
    expect(rows).to_contain_text(delivery.batch.request_id)
    expect(rows).to_contain_text("Browser history sale")
    expect(rows).to_contain_text("mark")

    call = f"Details of call {delivery.batch.seq} of run {delivery.run.number}"
    rows.get_by_role("link", name=call).click()
    expect(page.get_by_test_id("batch-request-id")).to_have_text(delivery.batch.request_id)
    expect(page.get_by_test_id("batch-deliveries")).to_contain_text(delivery.msg_key)
    expect(page.get_by_test_id("attempt-params").first).to_contain_text('"TemplateName"')
    expect(page.get_by_test_id("attempt-response").first).to_contain_text(delivery.batch.request_id)

    page.go_back()
    with page.expect_download() as download_info:
        page.get_by_test_id("export-csv").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    data = open(download.path(), "rb").read()
    assert data.startswith(codecs.BOM_UTF8)
    header, *body = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(body) == 1  # the export carries the search's filters
    row = dict(zip(header, body[0], strict=True))
    assert row["Target ID"] == "user-011"
    assert row["msgKey"] == delivery.msg_key
    assert row["RequestId"] == delivery.batch.request_id
    assert row["Launched by"] == "mark"
    assert row["Status"] == "Sent"
    assert csp_errors == []
