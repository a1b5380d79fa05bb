"""The send calendar: a weekly console-side campaign on the right days across a month
boundary, at the same wall time in a DST-free zone (Asia/Shanghai) and in one that changes
its clocks (America/New_York, 2026-03-08); mPaaS-side sends with the quota in use; past
sends with their outcome; a bad month named."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse

from campaigns import scheduling, sendcalendar
from campaigns.models import Batch, Campaign, Credential, Occurrence, Run, ScheduledTask
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BEFORE = dt.datetime(2026, 2, 1, tzinfo=SHANGHAI)


def weekly(credential, template, target_list, name, start, end, at):
    campaign = make_campaign(
        credential,
        template,
        target_list,
        task_name=name,
        strategy_type=2,
        schedule_mode="console",
        schedule_resolved="console",
        status=Campaign.Status.SCHEDULED,
        loop_circle_type=2,
        loop_circle_values=[1, 4],  # Monday, Thursday
        loop_start_date=start,
        loop_end_date=end,
        loop_time=at,
        expired_seconds=600,
    )
    scheduling.create_occurrences(campaign, now=BEFORE)
    return campaign


@pytest.fixture
def new_york(credential):
    other = Credential(
        name="US app",
        app_id="USAPP0001",
        workspace_id="default",
        access_key_id="LTAIother0001",
        endpoint=credential.endpoint,
        timezone="America/New_York",
    )
    other.set_secret("x")
    other.save()
    return other


def days_of(month, campaign):
    return [
        (entry.when.strftime("%m-%d"), entry.time_text)
        for week in month.weeks
        for day in week
        if day.in_month
        for entry in day.entries
        if entry.campaign == campaign
    ]


def test_weekly_campaign_on_its_days_across_a_month_boundary(credential, template, target_list):
    campaign = weekly(
        credential,
        template,
        target_list,
        "Shanghai weekly",
        dt.date(2026, 2, 23),
        dt.date(2026, 3, 12),
        dt.time(11, 0),
    )

    february = sendcalendar.month_view(dt.date(2026, 2, 1), now=BEFORE)
    march = sendcalendar.month_view(dt.date(2026, 3, 1), now=BEFORE)

    assert days_of(february, campaign) == [("02-23", "11:00 CST"), ("02-26", "11:00 CST")]
    assert days_of(march, campaign) == [
        ("03-02", "11:00 CST"),
        ("03-05", "11:00 CST"),
        ("03-09", "11:00 CST"),  # New York changed its clocks on 03-08; Shanghai did not
        ("03-12", "11:00 CST"),
    ]
    # February's grid shows 2 March in its last week, but only March's page lists it
    assert [d.day for d in february.days_with_entries] == [
        dt.date(2026, 2, 23),
        dt.date(2026, 2, 26),
    ]


def test_weekly_campaign_keeps_its_wall_time_across_a_dst_switch(
    credential, new_york, template, target_list
):
    shanghai = weekly(
        credential,
        template,
        target_list,
        "Shanghai",
        dt.date(2026, 3, 2),
        dt.date(2026, 3, 12),
        dt.time(21, 30),
    )
    us = weekly(
        new_york,
        template,
        target_list,
        "New York",
        dt.date(2026, 3, 2),
        dt.date(2026, 3, 12),
        dt.time(9, 0),
    )

    march = sendcalendar.month_view(dt.date(2026, 3, 1), now=BEFORE)

    assert days_of(march, us) == [
        ("03-02", "09:00 EST"),
        ("03-05", "09:00 EST"),
        ("03-09", "09:00 EDT"),
        ("03-12", "09:00 EDT"),
    ]
    assert [t for _d, t in days_of(march, shanghai)] == ["21:30 CST"] * 4
    # 21:30 in Shanghai is 08:30 (EST) then 09:30 (EDT) in New York: its own day, its own zone
    times = [
        e.when for d in march.weeks for day in d for e in day.entries if e.campaign == shanghai
    ]
    assert {t.astimezone(zoneinfo.ZoneInfo("America/New_York")).hour for t in times} == {8, 9}


def test_page_links_each_campaign_and_marks_past_sends_with_their_outcome(
    client, credential, template, target_list, marketer
):
    campaign = weekly(
        credential,
        template,
        target_list,
        "Weekly news",
        dt.date(2026, 3, 2),
        dt.date(2026, 3, 12),
        dt.time(11, 0),
    )
    first = Occurrence.objects.filter(campaign=campaign).order_by("due_at").first()
    run = Run.objects.create(campaign=campaign, number=1, kind="occurrence", status="completed")
    Occurrence.objects.filter(pk=first.pk).update(status="dispatched", run=run)
    Occurrence.objects.filter(campaign=campaign, due_at__gt=first.due_at).filter(
        due_at__day=12
    ).update(status="missed")
    client.force_login(marketer)

    html = client.get(reverse("calendar"), {"month": "2026-03"}).content.decode()

    assert 'data-testid="calendar-month">2026-03<' in html
    assert html.count(f'href="/campaigns/{campaign.pk}/"') == 8  # 4 sends, grid + list
    assert "Completed" in html and "Missed" in html and "Upcoming" in html
    assert 'href="?month=2026-02"' in html and 'href="?month=2026-04"' in html


def test_mpaas_side_sends_show_the_quota_in_use_per_app(
    client, credential, template, target_list, marketer
):
    send_at = dt.datetime(2026, 3, 20, 10, 0, tzinfo=SHANGHAI)
    campaign = make_campaign(
        credential,
        template,
        target_list,
        task_name="Spring fixed",
        strategy_type=1,
        fixed_time=send_at,
        schedule_resolved="mpaas",
        status=Campaign.Status.SCHEDULED,
    )
    run = Run.objects.create(campaign=campaign, number=1)
    for seq in (1, 2, 3):
        batch = Batch.objects.create(run=run, campaign=campaign, seq=seq)
        ScheduledTask.objects.create(
            credential=credential,
            app_id=credential.app_id,
            task_id=f"T{seq}",
            campaign=campaign,
            batch=batch,
        )

    march = sendcalendar.month_view(
        dt.date(2026, 3, 1), now=dt.datetime(2026, 3, 18, tzinfo=SHANGHAI)
    )

    day = {d.day: d for w in march.weeks for d in w}
    assert [(e.source, e.tasks, e.outcome) for e in day[dt.date(2026, 3, 20)].entries] == [
        ("mpaas", 3, "Waiting on mPaaS")
    ]
    assert day[dt.date(2026, 3, 18)].quota == [(credential.app_id, 3, 100)]
    assert day[dt.date(2026, 3, 20)].quota == [(credential.app_id, 3, 100)]
    assert day[dt.date(2026, 3, 21)].quota == []  # executed by then
    assert day[dt.date(2026, 3, 17)].quota == []  # the past is not forecast


def test_a_bad_month_is_named(client, marketer):
    client.force_login(marketer)

    answer = client.get(reverse("calendar"), {"month": "2026-13"})

    assert answer.status_code == 400
    assert "month must be a year and month such as 2026-12" in answer.content.decode()
