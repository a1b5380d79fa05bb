"""Two-person approval: the credential setting, the frozen snapshot, who may decide,
what voids it, and that launch refuses without one and sends exactly the snapshot."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Group

from accounts.roles import APPROVER
from campaigns import approvals, lifecycle, planning
from campaigns.models import AuditEvent, Campaign, CampaignApproval, Credential, Target
from campaigns.mpaas.vocabulary import StrategyType
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver(django_user_model):
    user = django_user_model.objects.create_user("apu", "apu@example.invalid", "pw-apu-123")
    user.groups.add(Group.objects.get(name=APPROVER))
    return user


@pytest.fixture
def guarded(credential):
    credential.approval = Credential.Approval.ALWAYS
    credential.save()
    return credential


@pytest.fixture
def campaign(guarded, template, target_list):
    return make_campaign(guarded, template, target_list)


def test_the_approver_role_exists_after_migrating():
    assert Group.objects.filter(name=APPROVER).exists()


def test_the_credential_setting_decides_when_approval_is_needed(credential):
    assert not credential.needs_approval(10**6)
    credential.approval = Credential.Approval.ABOVE
    credential.approval_threshold = 25
    assert not credential.needs_approval(25)
    assert credential.needs_approval(26)
    credential.approval = Credential.Approval.ALWAYS
    assert credential.needs_approval(1)


def test_target_checksum_is_sha256_over_sorted_ids(target_list):
    ids = sorted(Target.objects.filter(target_list=target_list).values_list("target_id", flat=True))
    expected = hashlib.sha256("".join(f"{i}\n" for i in ids).encode()).hexdigest()
    assert approvals.target_checksum(target_list) == expected


def test_launch_without_approval_is_refused_and_nothing_is_sent(campaign, marketer):
    with pytest.raises(lifecycle.LaunchError, match="second person"):
        lifecycle.launch(campaign, marketer)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert not campaign.runs.exists()


def test_snapshot_freezes_exactly_what_will_go_out(campaign, marketer):
    approval = approvals.submit(campaign, marketer)
    send = approval.snapshot["send"]
    assert send["rendered"]["title"] == "Hi Ann"
    assert send["values"] == {"name": "Ann", "coupon": "C-42"}
    assert send["targets"]["count"] == 25
    assert send["targets"]["sha256"] == approvals.target_checksum(campaign.target_list)
    assert send["first_call"] == planning.first_call(campaign)
    assert approval.fingerprint == approvals.fingerprint(send)
    event = AuditEvent.objects.get(action="campaign.submit")
    assert event.actor == marketer and event.details["approval"] == approval.pk


def test_loop_snapshot_lists_every_send_time(guarded, template, target_list, marketer):
    import datetime

    start = datetime.date.today() + datetime.timedelta(days=2)
    campaign = make_campaign(
        guarded,
        template,
        target_list,
        strategy_type=StrategyType.LOOP,
        loop_start_date=start,
        loop_end_date=start + datetime.timedelta(days=4),
        loop_circle_type=1,
        loop_time=datetime.time(9, 30),
    )
    send = approvals.submit(campaign, marketer).snapshot["send"]
    assert len(send["send_times"]) == 5
    assert send["send_times"][0].startswith(start.isoformat() + "T09:30")


def test_the_submitter_cannot_approve_their_own_campaign(campaign, django_user_model, approver):
    approver.groups.add(Group.objects.get_or_create(name="Marketing")[0])
    approval = approvals.submit(campaign, approver)
    with pytest.raises(approvals.ApprovalError, match="other than the submitter"):
        approvals.approve(approval, approver)
    approval.refresh_from_db()
    assert approval.status == CampaignApproval.Status.PENDING


def test_a_marketer_cannot_approve(campaign, marketer, django_user_model):
    other = django_user_model.objects.create_user("mo", password="pw-mo-123")
    other.groups.add(Group.objects.get_or_create(name="Marketing")[0])
    approval = approvals.submit(campaign, marketer)
    with pytest.raises(approvals.ApprovalError, match="Approver"):
        approvals.approve(approval, other)


def test_reject_needs_a_comment_and_is_audited(campaign, marketer, approver):
    approval = approvals.submit(campaign, marketer)
    with pytest.raises(approvals.ApprovalError, match="why"):
        approvals.reject(approval, approver, comment="  ")
    approvals.reject(approval, approver, comment="Wrong coupon")
    approval.refresh_from_db()
    assert approval.status == CampaignApproval.Status.REJECTED
    event = AuditEvent.objects.get(action="campaign.reject")
    assert event.actor == approver and event.details["comment"] == "Wrong coupon"
    with pytest.raises(lifecycle.LaunchError):
        lifecycle.launch(campaign, marketer)


def test_approved_campaign_launches_and_marks_the_approval_used(
    campaign, marketer, approver, admin_user
):
    approval = approvals.approve(approvals.submit(campaign, marketer), approver, comment="ok")
    assert AuditEvent.objects.filter(action="campaign.approve", actor=approver).exists()
    run = lifecycle.launch(campaign, marketer)
    assert run is not None
    approval.refresh_from_db()
    assert approval.status == CampaignApproval.Status.LAUNCHED
    launch = AuditEvent.objects.get(action="campaign.launch")
    assert launch.details["approval"] == approval.pk


def test_an_admin_may_approve(campaign, marketer, admin_user):
    approval = approvals.approve(approvals.submit(campaign, marketer), admin_user)
    assert approval.status == CampaignApproval.Status.APPROVED


def test_editing_the_template_after_approval_voids_it_at_launch(
    campaign, marketer, approver, template
):
    approvals.approve(approvals.submit(campaign, marketer), approver)
    template.body = "Coupon #coupon# for you, now 90% off"
    template.save()
    with pytest.raises(lifecycle.LaunchError, match="changed after it was approved"):
        lifecycle.launch(campaign, marketer)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and not campaign.runs.exists()
    approval = campaign.approvals.get()
    assert approval.status == CampaignApproval.Status.VOIDED
    assert AuditEvent.objects.filter(action="campaign.approval_voided").exists()


def test_adding_a_target_after_approval_voids_it(campaign, marketer, approver, target_list):
    approvals.approve(approvals.submit(campaign, marketer), approver)
    # same count, different IDs: only the checksum notices
    Target.objects.filter(target_list=target_list, target_id="user-000").update(
        target_id="attacker-phone"
    )
    with pytest.raises(lifecycle.LaunchError):
        lifecycle.launch(campaign, marketer)
    assert campaign.approvals.get().status == CampaignApproval.Status.VOIDED


def test_editing_the_campaign_after_submission_voids_and_approve_is_refused(
    campaign, marketer, approver
):
    approval = approvals.submit(campaign, marketer)
    Campaign.objects.filter(pk=campaign.pk).update(template_values={"name": "Bob", "coupon": "X"})
    with pytest.raises(approvals.ApprovalError, match="changed"):
        approvals.approve(approval, approver)
    approval.refresh_from_db()
    assert approval.status == CampaignApproval.Status.VOIDED


def test_the_builder_edit_voids_the_submission(client, campaign, marketer, approver):
    from tests.test_campaign_pages import builder_data

    approvals.approve(approvals.submit(campaign, marketer), approver)
    client.force_login(marketer)
    data = builder_data(campaign.credential, campaign.template, campaign.target_list)
    response = client.post(f"/campaigns/{campaign.pk}/edit/", data)
    assert response.status_code in (200, 302)
    assert campaign.approvals.get().status == CampaignApproval.Status.VOIDED
    event = AuditEvent.objects.get(action="campaign.approval_voided")
    assert event.details["reason"] == "campaign_edited"


def test_runs_send_the_snapshot_even_if_the_template_changes_after_launch(
    campaign, marketer, approver, template
):
    approvals.approve(approvals.submit(campaign, marketer), approver)
    lifecycle.launch(campaign, marketer)
    Campaign.objects.filter(pk=campaign.pk).update(template_values={"name": "Eve"})
    campaign.refresh_from_db()
    assert planning.spec_for(campaign).template_values == {"name": "Ann", "coupon": "C-42"}


def test_pages_submit_queue_and_decide(client, campaign, marketer, approver):
    client.force_login(marketer)
    review = client.get(f"/campaigns/{campaign.pk}/review/").content.decode()
    assert "Submit for approval" in review and 'name="confirm"' not in review
    assert client.post(f"/approvals/submit/{campaign.pk}/").status_code == 302
    approval = campaign.approvals.get()
    assert client.get("/approvals/").status_code == 403  # a marketer is no approver
    client.force_login(approver)
    queue = client.get("/approvals/").content.decode()
    assert "Spring sale" in queue
    detail = client.get(f"/approvals/{approval.pk}/").content.decode()
    assert "Exactly what will go out" in detail and "Hi Ann" in detail
    assert approvals.target_checksum(campaign.target_list) in detail
    response = client.post(f"/approvals/{approval.pk}/", {"decision": "reject", "comment": ""})
    assert response.status_code == 400 and "Say why" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == CampaignApproval.Status.PENDING
    response = client.post(f"/approvals/{approval.pk}/", {"decision": "approve", "comment": "ok"})
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == CampaignApproval.Status.APPROVED
    client.force_login(marketer)
    review = client.get(f"/campaigns/{campaign.pk}/review/").content.decode()
    assert 'name="confirm"' in review and "Approved by apu" in review


def test_auditor_sees_the_approval_history_on_the_campaign_page(
    client, campaign, marketer, approver, auditor
):
    approvals.reject(approvals.submit(campaign, marketer), approver, comment="Too broad")
    client.force_login(auditor)
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Too broad" in page and "Rejected" in page and "apu" in page


def test_credential_form_requires_a_threshold_for_above(client, admin_user, credential):
    from tests.test_credential_pages import edit_data

    client.force_login(admin_user)
    data = edit_data(credential, approval="above", approval_threshold="")
    response = client.post(f"/credentials/{credential.pk}/", data)
    assert "Give the number of targets" in response.content.decode()
    credential.refresh_from_db()
    assert credential.approval == Credential.Approval.OFF
    data = edit_data(credential, approval="above", approval_threshold="1000")
    client.post(f"/credentials/{credential.pk}/", data)
    credential.refresh_from_db()
    assert (credential.approval, credential.approval_threshold) == ("above", 1000)


def test_a_credential_post_without_the_approval_fields_keeps_the_setting(
    client, admin_user, guarded
):
    from tests.test_credential_pages import edit_data

    client.force_login(admin_user)
    client.post(f"/credentials/{guarded.pk}/", edit_data(guarded, rate_limit="30"))
    guarded.refresh_from_db()
    assert guarded.rate_limit == 30 and guarded.approval == Credential.Approval.ALWAYS


def test_editing_the_template_page_voids_open_submissions_at_once(
    client, campaign, marketer, template
):
    approvals.submit(campaign, marketer)
    client.force_login(marketer)
    data = {"app_id": template.app_id, "name": template.name, "title": "Hi #name#!!"}
    data.update(body=template.body, uri="", description="")
    client.post(f"/templates/{template.pk}/", data)
    template.refresh_from_db()
    assert template.title == "Hi #name#!!"
    approval = campaign.approvals.get()
    assert (approval.status, approval.void_reason) == ("voided", "template_edited")
