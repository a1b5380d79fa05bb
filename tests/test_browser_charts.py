"""The dashboard and a campaign page with charts, and the calendar on a phone, in a real
Chromium: screenshots go to SCREENSHOT_DIR (default: the test's tmp dir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from campaigns import lifecycle, statistics
from tests.pipeline_helpers import drain, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_dashboard_and_campaign_page_show_their_charts(
    login,
    page,
    live_server,
    marketer,
    credential,
    template,
    target_list,
    sandbox,
    redis_conn,
    settings,
    shots,
):
    settings.STATS_DAYS = 3
    campaign = make_campaign(credential, template, target_list, task_name="Charted sale")
    lifecycle.launch(campaign, marketer)
    drain()
    statistics.refresh(credential)

    login(marketer)
    charts = page.get_by_test_id("dashboard-charts")
    expect(charts.locator("figure[data-chart='sends-per-day'] svg").first).to_be_visible()
    expect(charts.locator("figure[data-chart='rates-per-day'] svg").first).to_be_visible()
    expect(charts.get_by_text("Source: this console").first).to_be_visible()
    expect(charts.get_by_text("mPaaS statistics, as of").first).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=shots / "dashboard-charts.png", full_page=True)

    page.get_by_role("button", name="Refresh mPaaS statistics").click()
    expect(page.get_by_text("mPaaS statistics of Sandbox refreshed")).to_be_visible()

    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    section = page.get_by_test_id("campaign-charts")
    minute = section.locator("figure[data-chart='sends-per-minute']")
    expect(minute.locator("circle.point").first).to_be_attached()
    outcomes = section.locator("figure[data-chart='outcomes']")
    expect(outcomes.locator("rect.point")).to_have_count(1)
    tasks = section.locator("figure[data-chart='tasks']")
    expect(tasks.locator("rect.point")).to_have_count(9)  # 3 push tasks x 3 figures
    outcomes.get_by_text("Show the numbers").click()
    expect(outcomes.locator("table tbody tr")).to_have_count(1)
    expect(outcomes.locator("tbody")).to_contain_text("25")
    section.scroll_into_view_if_needed()
    page.screenshot(path=shots / "campaign-charts.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/calendar/")
    expect(page.get_by_test_id("calendar-list")).to_be_visible()
    expect(page.get_by_test_id("calendar-grid")).to_be_hidden()
    expect(page.get_by_test_id("calendar-list").get_by_text("Charted sale")).to_be_visible()
    page.screenshot(path=shots / "calendar-phone.png", full_page=True)
    page.goto(f"{live_server.url}/")
    page.screenshot(path=shots / "dashboard-phone.png", full_page=True)
