"""Two-person approval in a real Chromium: submit, approve as another user, launch; an
edit after approval voids it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.roles import APPROVER
from campaigns.models import Campaign, CampaignApproval, Credential
from tests.pipeline_helpers import make_campaign
from tests.processes import workers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def approver(django_user_model):
    user = django_user_model.objects.create_user("apu", "apu@example.invalid", "pw-apu-123")
    user.groups.add(Group.objects.get_or_create(name=APPROVER)[0])
    return user


@pytest.fixture
def guarded(credential):
    credential.approval = Credential.Approval.ABOVE
    credential.approval_threshold = 10
    credential.save()
    return credential


def switch_user(page, login, user):
    page.context.clear_cookies()
    login(user)


def submit(page, live_server, campaign):
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/review/")
    expect(page.get_by_test_id("approval-state")).to_contain_text("second person")
    expect(page.get_by_role("button", name="Launch")).to_have_count(0)
    page.get_by_role("button", name="Submit for approval").click()
    expect(page.get_by_test_id("approval-state")).to_contain_text("Awaiting approval")


def approve(page, live_server, name):
    page.get_by_role("link", name="Approvals").click()
    page.get_by_test_id("approval-queue").get_by_role("link", name=name).click()
    expect(page.get_by_test_id("snapshot-title")).to_have_text("Hi Ann")
    expect(page.get_by_test_id("snapshot-targets")).to_contain_text("25")
    page.get_by_label("Decision").select_option("approve")
    page.get_by_label("Comment").fill("Checked the coupon")
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_text("Decision recorded.")).to_be_visible()


def test_submit_approve_as_another_user_and_launch(
    login, page, live_server, marketer, approver, guarded, template, target_list, redis_url
):
    campaign = make_campaign(guarded, template, target_list, task_name="Guarded sale")
    login(marketer)
    submit(page, live_server, campaign)
    # the submitter is no approver: the queue is closed to them
    response = page.goto(f"{live_server.url}/approvals/")
    assert response.status == 403

    switch_user(page, login, approver)
    approve(page, live_server, "Guarded sale")

    switch_user(page, login, marketer)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/review/")
    expect(page.get_by_test_id("approval-state")).to_contain_text("Approved by apu")
    page.get_by_label(re.compile("Send to 25 targets now")).check()
    with workers(redis_url, count=1, PUSH_JOB_SECONDS="5"):
        page.get_by_role("button", name="Launch").click()
        expect(page.locator("[data-status='completed']").first).to_be_visible(timeout=30_000)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    assert campaign.approvals.get().status == CampaignApproval.Status.LAUNCHED
    expect(page.get_by_test_id("approval-history")).to_contain_text("Checked the coupon")


def test_an_edit_after_approval_voids_it(
    login, page, live_server, marketer, approver, guarded, template, target_list
):
    campaign = make_campaign(guarded, template, target_list, task_name="Edited sale")
    login(marketer)
    submit(page, live_server, campaign)
    switch_user(page, login, approver)
    approve(page, live_server, "Edited sale")

    switch_user(page, login, marketer)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/edit/")
    page.get_by_label("#coupon#").fill("C-999")
    page.get_by_role("button", name="Save draft and review").click()
    expect(page.get_by_test_id("approval-state")).to_contain_text("second person")
    expect(page.get_by_role("button", name="Launch")).to_have_count(0)
    expect(page.get_by_test_id("approval-history")).to_contain_text("the campaign was edited")
    assert campaign.approvals.get().status == CampaignApproval.Status.VOIDED
