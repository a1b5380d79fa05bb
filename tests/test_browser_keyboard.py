"""The console with the keyboard alone, in a real Chromium: a marketer signs in, skips
the menu, builds a campaign, launches it, hears it finish in place, and switches the
language; the account menu answers arrows and Escape; a failed submit puts focus on an
error summary whose links lead to the fields. No click, no fill: keys only."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.models import UserPreference
from campaigns.models import Campaign
from tests.a11y_helpers import focused, tab_to
from tests.processes import workers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in_by_keyboard(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    assert focused(page)["id"] == "id_username"  # the form's autofocus
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    page.keyboard.type(f"pw-{user.username}-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")


def choose_first_option(page, select_id: str):
    """ArrowDown on a closed select moves to the next option (here: past the blank)."""
    tab_to(page, id=select_id)
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"#{select_id}")).not_to_have_value("")


def test_keyboard_alone_builds_launches_hears_completion_and_switches_language(
    page, live_server, marketer, credential, template, target_list, sandbox, redis_url, redis_conn
):
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in_by_keyboard(page, live_server, marketer)

    # The first Tab stop is the skip link; from <main> the next stop is the page's own.
    tab_to(page, name="Campaigns", limit=5)
    page.keyboard.press("Enter")
    page.wait_for_url("**/campaigns/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "main"
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "New campaign"
    page.keyboard.press("Enter")
    page.wait_for_url("**/campaigns/new/")

    tab_to(page, id="id_task_name")
    page.keyboard.type("Keyboard sale")
    choose_first_option(page, "id_credential")
    live = page.get_by_test_id("live-status")
    expect(live).to_have_text(
        "Sandbox: times in Asia/Shanghai, 0 of 100 mPaaS scheduled tasks in use"
    )
    choose_first_option(page, "id_template")
    expect(page.locator("#id_value__name")).to_be_visible()  # fields for its placeholders
    choose_first_option(page, "id_target_list")
    tab_to(page, id="id_value__name")
    page.keyboard.type("Ann")
    tab_to(page, id="id_value__coupon")
    page.keyboard.type("C-9")
    # the preview is announced as one short sentence through the stable status element
    expect(live).to_have_text("Preview: Hi Ann. Coupon C-9 for you", timeout=10_000)
    tab_to(page, name="Save draft and review")
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/")

    tab_to(page, id="confirm-launch")
    page.keyboard.press("Space")
    expect(page.locator("#confirm-launch")).to_be_checked()
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "Launch"
    page.keyboard.press("Enter")
    expect(page.locator("[data-status='queued']").first).to_be_visible()

    # No worker yet: the campaign waits, polling. Put focus on a button the finished
    # page replaces, then let a worker send it.
    campaign = Campaign.objects.get(task_name="Keyboard sale")
    page.evaluate("window.stillTheSamePage = true")
    tab_to(page, name="Duplicate as new draft")
    with workers(redis_url, count=1, PUSH_JOB_SECONDS="5"):
        expect(live).to_have_text(
            "Keyboard sale: Completed, 25 of 25 sent, 0 failed", timeout=30_000
        )
        expect(page.get_by_test_id("request-id")).to_have_count(3, timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place, no reload
    expect(page.locator("h1")).to_be_focused()  # not <body>: the heading took it
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED and campaign.launched_by == marketer

    # Language: back up to the select, ArrowDown picks 简体中文, Tab, Enter.
    for _ in range(10):
        page.keyboard.press("Shift+Tab")
        if focused(page)["id"] == "language-select":
            break
    assert focused(page)["id"] == "language-select"
    page.keyboard.press("ArrowDown")
    expect(page.locator("#language-select")).to_have_value("zh-hans")
    assert focused(page)["id"] == "language-select"  # the arrow stayed in the select
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "Switch"
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("#user-menu")).to_have_text("mark")  # still signed in
    expect(page.get_by_role("link", name="跳到主要内容")).to_have_count(1)
    expect(page.get_by_role("link", name="推送活动")).to_be_visible()
    assert UserPreference.objects.get(user=marketer).language == "zh-hans"


def test_account_menu_answers_arrows_and_escape(page, live_server, marketer):
    sign_in_by_keyboard(page, live_server, marketer)
    tab_to(page, id="user-menu")
    page.keyboard.press("Enter")
    menu = page.locator(".dropdown-menu")
    expect(menu).to_be_visible()
    page.keyboard.press("ArrowDown")
    assert focused(page)["name"] == "Change your password"
    page.keyboard.press("ArrowDown")
    assert focused(page)["name"] == "Two-factor sign-in"
    page.keyboard.press("ArrowDown")
    assert focused(page)["name"] == "Log out"
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    assert focused(page)["id"] == "user-menu"
    expect(page).to_have_url(f"{live_server.url}/")  # nothing was submitted


def test_failed_submit_focuses_an_error_summary_that_links_to_each_field(
    page, live_server, marketer, credential, template, target_list
):
    sign_in_by_keyboard(page, live_server, marketer)
    page.goto(f"{live_server.url}/campaigns/new/")
    tab_to(page, name="Save draft and review")
    page.keyboard.press("Enter")
    page.wait_for_load_state()

    summary = page.get_by_test_id("error-summary")
    expect(summary).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Error: New campaign"))
    expect(summary.get_by_role("heading")).to_have_text("4 problems to fix")
    links = summary.get_by_role("link")
    expect(links).to_have_text(
        [
            "Task name: This field is required.",
            "Credential: This field is required.",
            "Template: This field is required.",
            "Target list: This field is required.",
        ]
    )
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "Credential: This field is required."
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "id_credential"
    field = page.locator("#id_credential")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_in_viewport()
