"""The campaign page as a history: runs, events, confirm steps, true schedule summaries."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns import audit, lifecycle, planning
from campaigns.models import AuditEvent, Campaign, Occurrence, Run
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db


def weekly(credential, template, target_list, **changes):
    start = dt.date.today() + dt.timedelta(days=1)
    return make_campaign(
        credential,
        template,
        target_list,
        strategy_type=2,
        schedule_mode="console",
        loop_circle_type=2,
        loop_circle_values=[1, 4],
        loop_start_date=start,
        loop_end_date=start + dt.timedelta(days=27),
        loop_time=dt.time(9, 30),
        **changes,
    )


def test_cancel_and_retry_ask_first(client, marketer, credential, template, target_list):
    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.PAUSED)
    client.force_login(marketer)
    response = client.post(f"/campaigns/{campaign.pk}/cancel/")
    assert response["Location"] == f"/campaigns/{campaign.pk}/confirm/cancel/"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED  # nothing happened
    page = client.get(response["Location"]).content.decode()
    assert "Yes, cancel the campaign" in page and 'name="confirm" value="yes"' in page
    client.post(f"/campaigns/{campaign.pk}/cancel/", {"confirm": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
    response = client.post(f"/campaigns/{campaign.pk}/retry/")
    assert response["Location"] == f"/campaigns/{campaign.pk}/confirm/retry/"


def test_a_cancelled_schedule_says_no_next_send_and_keeps_cancelled_dates_apart(
    client, marketer, credential, template, target_list, sandbox
):
    campaign = weekly(credential, template, target_list)
    lifecycle.launch(campaign, marketer)
    assert campaign.occurrences.count() == 8
    lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
    client.force_login(marketer)
    response = client.get(f"/campaigns/{campaign.pk}/")
    page = response.content.decode()
    assert "Repeats weekly" in page and "next on" not in page
    assert list(response.context["past_occurrences"]) == []
    assert "8 future send times were cancelled." in page
    assert set(campaign.occurrences.values_list("status", flat=True)) == {"cancelled"}


def test_a_run_sent_in_full_before_a_cancel_is_not_badged_cancelled(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.CANCELLED)
    Run.objects.create(campaign=campaign, number=1, total=25, sent=25, status="cancelled")
    client.force_login(marketer)
    response = client.get(f"/campaigns/{campaign.pk}/")
    [row] = response.context["run_rows"]
    assert row.status_label == "Completed"


def test_auto_pause_and_resume_are_events_with_who_and_why(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.SENDING)
    Run.objects.create(campaign=campaign, number=1, total=25, status="sending")
    lifecycle.pause(campaign, None, reason="5 calls in a row failed (3023)")
    lifecycle.resume(Campaign.objects.get(pk=campaign.pk), marketer)
    audit.record("campaign.pause", actor=marketer, obj=campaign, details={})
    client.force_login(marketer)
    response = client.get(f"/campaigns/{campaign.pk}/")
    events = [(e.who, e.what, e.why) for e in response.context["events"]]
    assert events == [
        ("the console", "Paused automatically", "5 calls in a row failed (3023)"),
        (marketer.username, "Resumed", ""),
        (marketer.username, "Paused", ""),
    ]


def test_progress_keeps_refreshing_while_paused(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list, status=Campaign.Status.PAUSED)
    Run.objects.create(campaign=campaign, number=1, total=25, status="paused")
    client.force_login(marketer)
    page = client.get(f"/campaigns/{campaign.pk}/progress/").content.decode()
    assert 'hx-trigger="every 1s"' in page
    # once the status differs from the one shown, the page re-fetches itself in place
    # (new actions, no reload: focus and the announcement are kept)
    response = client.get(
        f"/campaigns/{campaign.pk}/progress/?shown=sending", HTTP_HX_REQUEST="true"
    )
    assert response["HX-Trigger"] == "campaign-finished"
    same = client.get(f"/campaigns/{campaign.pk}/progress/?shown=paused", HTTP_HX_REQUEST="true")
    assert "HX-Trigger" not in same
    assert Occurrence.objects.count() == 0


def test_campaign_list_shows_sent_failed_and_next_send(
    client, marketer, credential, template, target_list, sandbox
):
    done = make_campaign(credential, template, target_list, task_name="Done")
    Run.objects.create(campaign=done, number=1, total=2500, sent=2400, failed=100)
    Run.objects.create(campaign=done, number=2, kind="retry", total=100, sent=90, failed=10)
    later = weekly(credential, template, target_list, task_name="Later")
    lifecycle.launch(later, marketer)
    client.force_login(marketer)
    response = client.get("/campaigns/")
    rows = {c.task_name: c for c in response.context["campaigns"]}
    assert (rows["Done"].sent_total, rows["Done"].failed_now) == (2490, 10)
    assert rows["Done"].next_send is None
    assert rows["Later"].next_send == later.occurrences.order_by("due_at").first().due_at
    assert "2,490" in response.content.decode()


def test_audit_details_read_as_text(client, admin_user, credential, template, target_list):
    campaign = make_campaign(credential, template, target_list)
    audit.record(
        "campaign.cancel",
        actor=admin_user,
        obj=campaign,
        details={"targets_cancelled": 12, "occurrences_cancelled": 3},
    )
    audit.record("template.edit", actor=admin_user, details={"fields": ["body", "title"]})
    client.force_login(admin_user)
    page = client.get("/audit/").content.decode()
    assert "12 target(s) and 3 send time(s) cancelled" in page
    assert "Fields: body, title" in page


@pytest.mark.parametrize(
    ("mode", "carries_schedule"), [("mpaas", True), ("console", False), ("auto", True)]
)
def test_the_first_call_of_an_unlaunched_schedule_is_sent_where_launch_will_keep_it(
    mode, carries_schedule, credential, template, target_list
):
    campaign = weekly(credential, template, target_list)
    campaign.schedule_mode = mode
    campaign.save()
    params = planning.first_call(campaign)
    assert ("StrategyContent" in params) is carries_schedule
    assert ("StrategyType" in params) is carries_schedule
    assert params["TargetMsgkey"].startswith('{"user-000":"pc')


def test_a_bad_test_target_is_named_and_nothing_is_sent_or_audited(
    client, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list)
    client.force_login(marketer)
    assert 'id="test-send"' in client.get(f"/campaigns/{campaign.pk}/edit/").content.decode()
    response = client.post(f"/campaigns/{campaign.pk}/test-send/", {"test_targets": 'ok-1 a"b'})
    assert response.status_code == 400
    assert "Test target a&quot;b: target ID contains a comma or quote" in response.content.decode()
    assert not AuditEvent.objects.filter(action="campaign.test_send").exists()
