"""A marketer builds, reviews and launches campaigns in a real Chromium."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign
from tests.processes import workers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill_basics(page, name, credential, template, target_list):
    page.get_by_label("Task name").fill(name)
    page.get_by_label("Credential").select_option(str(credential.pk))
    page.locator("#id_template").select_option(str(template.pk))
    page.get_by_label("Target list").select_option(str(target_list.pk))
    expect(page.get_by_label("#name#")).to_be_visible()
    page.get_by_label("#name#").fill("Ann")
    page.get_by_label("#coupon#").fill("C-9")
    page.get_by_label("Expiry (seconds)").fill("300")
    expect(page.get_by_text("Times are in the credential's timezone")).to_be_visible()


def test_marketer_launches_an_immediate_campaign_and_watches_it_finish(
    login, page, live_server, marketer, credential, template, target_list, sandbox, redis_url
):
    login(marketer)
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    fill_basics(page, "Browser sale", credential, template, target_list)
    expect(page.get_by_test_id("preview-title")).to_have_text("Hi Ann")
    expect(page.get_by_test_id("expiry-reading")).to_have_text("5 minutes")
    page.get_by_role("button", name="Save draft and review").click()
    expect(page.get_by_test_id("review-calls")).to_contain_text("3")
    expect(page.get_by_text("TargetMsgkey")).to_be_visible()
    page.get_by_label(re.compile("Send to 25 targets now")).check()
    with workers(redis_url, count=1, PUSH_JOB_SECONDS="5"):
        page.get_by_role("button", name="Launch").click()
        expect(page.get_by_test_id("progress-bar")).to_have_attribute(
            "data-pct", "100", timeout=30_000
        )
        expect(page.locator("[data-status='completed']").first).to_be_visible(timeout=10_000)
    request_ids = page.get_by_test_id("request-id").all_inner_texts()
    assert len(request_ids) == 3 and all(len(r) > 8 for r in request_ids)
    campaign = Campaign.objects.get(task_name="Browser sale")
    assert campaign.status == Campaign.Status.COMPLETED
    assert campaign.launched_by == marketer


def test_weekly_loop_shows_its_strategy_content(
    login, page, live_server, marketer, credential, template, target_list
):
    login(marketer)
    page.goto(f"{live_server.url}/campaigns/new/")
    fill_basics(page, "Weekly digest", credential, template, target_list)
    page.get_by_label("Loop", exact=True).check()
    page.get_by_label("Repeat").select_option("2")
    page.get_by_label("Monday").check()
    page.get_by_label("Thursday").check()
    page.get_by_label("Loop start date").fill("2026-12-01")
    page.get_by_label("Loop end date").fill("2027-01-31")
    page.get_by_label("Time of day").fill("09:30:00")
    page.get_by_label("Time of day").press("Tab")
    strategy_json = page.get_by_test_id("strategy-json")
    expect(strategy_json).to_contain_text('"circleType":2', timeout=10_000)
    content = json.loads(strategy_json.inner_text())
    assert content["circleValue"] == [1, 4]
    assert content["time"] == "09:30:00"
    # 2026-12-01 00:00 in Asia/Shanghai
    assert content["startTime"] == 1796054400000


def test_sms_on_without_sign_name_is_an_error_next_to_the_field(
    login, page, live_server, marketer, credential, template, target_list
):
    login(marketer)
    page.goto(f"{live_server.url}/campaigns/new/")
    fill_basics(page, "SMS check", credential, template, target_list)
    page.get_by_label("SMS supplement").select_option("2")
    page.get_by_role("button", name="Save draft and review").click()
    sign_name = page.get_by_label("SMS sign name")
    expect(sign_name).to_have_class(re.compile("is-invalid"))
    expect(
        page.locator("#id_sms_sign_name ~ .invalid-feedback, #error_1_id_sms_sign_name").first
    ).to_be_visible()


def test_weekly_console_side_campaign_lists_its_next_occurrences(
    login, page, live_server, marketer, credential, template, target_list, sandbox
):
    import datetime as dt

    start = dt.date.today() + dt.timedelta(days=1)
    login(marketer)
    page.goto(f"{live_server.url}/campaigns/new/")
    fill_basics(page, "Console weekly", credential, template, target_list)
    page.get_by_label("Loop", exact=True).check()
    page.get_by_label("Schedule in this console").check()
    page.get_by_label("Repeat").select_option("2")
    page.get_by_label("Monday").check()
    page.get_by_label("Thursday").check()
    page.get_by_label("Loop start date").fill(start.isoformat())
    page.get_by_label("Loop end date").fill((start + dt.timedelta(days=27)).isoformat())
    page.get_by_label("Time of day").fill("09:30:00")
    page.get_by_label("Time of day").press("Tab")
    expect(page.get_by_test_id("schedule-choice")).to_contain_text("in this console")
    page.get_by_role("button", name="Save draft and review").click()
    page.get_by_label(re.compile("Send to 25 targets at each of 8 send times")).check()
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_test_id("schedule-text")).to_contain_text("Repeats weekly on Mon, Thu")
    items = page.get_by_test_id("upcoming").locator("li")
    expect(items).to_have_count(8)
    assert all(text.startswith(("Mon", "Thu")) for text in items.all_inner_texts())
    campaign = Campaign.objects.get(task_name="Console weekly")
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.occurrences.count() == 8


def test_contract_fields_from_a_bad_payload_to_the_first_call(
    login, page, live_server, marketer, credential, template, target_list
):
    login(marketer)
    page.goto(f"{live_server.url}/campaigns/new/")
    fill_basics(page, "Contract fields", credential, template, target_list)
    payload = page.locator("#id_transparent_payload")
    # the transparent-message fields belong to NotifyType "transparent" only
    expect(payload).to_be_hidden()
    page.locator("#id_notify_type").select_option("transparent")
    expect(payload).to_be_visible()
    payload.fill('{"cmd": "sync"')  # not JSON: the closing brace is missing
    page.locator("#id_transparent_urgency").select_option("HIGH")
    page.locator("#id_push_action").select_option("1")
    page.locator("#id_silent").select_option("1")
    page.locator("#id_channel_id").fill("promo")
    page.locator("#id_vendor_template").fill('{"hms": {"category": "MARKETING"}}')
    page.get_by_role("button", name="Save draft and review").click()
    # a field error beside the payload (still shown after the failed save), nothing saved
    expect(payload).to_be_visible()
    expect(payload).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.locator("#transparent-fields")).to_contain_text("This must be a JSON object")
    expect(page.get_by_test_id("error-summary")).to_contain_text(
        "Transparent-message payload (JSON)"
    )
    assert not Campaign.objects.exists()
    payload.fill('{"cmd": "sync"}')
    page.get_by_role("button", name="Save draft and review").click()
    expect(page).to_have_url(re.compile(r"/campaigns/\d+/review/$"))
    rows = {
        name: value
        for name, value in (
            row.split("\t", 1)
            for row in page.locator("table tr:has(th[scope=row])").all_inner_texts()
            if "\t" in row
        )
    }
    assert json.loads(rows["TransparentMessagePayload"]) == {"cmd": "sync"}
    assert rows["TransparentMessageUrgency"] == "HIGH"
    assert (rows["PushAction"], rows["Silent"], rows["ChannelId"]) == ("1", "1", "promo")
    assert json.loads(rows["VendorTemplate"]) == {"hms": {"category": "MARKETING"}}
    assert rows["NotifyType"] == "transparent"
