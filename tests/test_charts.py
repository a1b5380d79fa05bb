"""Charts: server-rendered SVG with one point per day of a seeded month, its numbers in a
table behind a toggle, its source written on it, and the same numbers as an audited CSV."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest
from django.urls import reverse

from campaigns import charts
from campaigns.models import AuditEvent, Batch, DailyStatistic, Delivery, Run, TaskStatistic
from tests.pipeline_helpers import make_campaign

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)


def seed_month(credential):
    """30 days of stored mPaaS figures: 100 pushed a day, arrivals 90 falling by one a day."""
    for n in range(30):
        DailyStatistic.objects.create(
            credential=credential,
            day=NOW.date() - dt.timedelta(days=29 - n),
            platform="",
            channel="",
            push_type="TEMPLATE",
            pushed=100,
            arrived=90 - n,
            opened=30,
            fetched_at=NOW,
        )


def figure(html: str, key: str) -> str:
    match = re.search(rf'<figure[^>]*data-chart="{key}".*?</figure>', html, re.S)
    assert match, f"no {key} chart on the page"
    return match.group(0)


def test_rates_chart_has_one_point_per_day_of_a_seeded_month(credential):
    seed_month(credential)

    chart = charts.rates_per_day(credential, NOW)

    assert chart.point_count == 60  # two series, 30 days
    assert [len(s.dots) for s in chart.series] == [30, 30]
    assert chart.series[0].values[0] == 90.0 and chart.series[0].values[-1] == 61.0
    assert chart.series[1].values[-1] == round(100 * 30 / 61, 1)
    assert chart.source.startswith("mPaaS statistics, as of 2026-12-01")


def test_dashboard_renders_the_charts_as_svg_with_their_tables(client, credential, marketer):
    seed_month(credential)
    client.force_login(marketer)

    html = client.get(reverse("home")).content.decode()

    rates = figure(html, "rates-per-day")
    assert rates.count("<svg") == 3  # the chart and two legend swatches
    assert len(re.findall(r'<circle [^>]*class="point"', rates)) >= 2
    assert "<details>" in rates and "Show the numbers" in rates
    assert "Share (%)" in rates and "Day (Asia/Shanghai)" in rates
    assert "mPaaS statistics, as of" in rates
    sends = figure(html, "sends-per-day")
    assert "Source: this console" in sends
    assert len(re.findall(r'<circle [^>]*class="point"', sends)) == 60
    assert "<script>" not in html and "<style" not in html  # the CSP stays as it is


def test_sends_per_day_counts_the_ledger_by_day_and_outcome(credential, template, target_list):
    campaign = make_campaign(credential, template, target_list)
    run = Run.objects.create(campaign=campaign, number=1)
    calls = [(0, "sent", 2), (0, "failed", 1), (3, "sent", 1)]  # (days ago, outcome, targets)
    for seq, (days_ago, status, targets) in enumerate(calls):
        # one call, one outcome for its targets: the chart counts the calls' targets, so
        # it is right before the run's deliveries are settled (these are not)
        batch = Batch.objects.create(
            run=run,
            campaign=campaign,
            seq=seq,
            status=status,
            target_count=targets,
            finished_at=NOW - dt.timedelta(days=days_ago),
        )
        for n in range(targets):
            Delivery.objects.create(
                run=run, batch=batch, target_id=f"t{seq}-{n}", msg_key=f"k{seq}-{n}"
            )

    chart = charts.sends_per_day(credential, NOW)

    sent, failed = chart.series
    assert (sent.values[-1], failed.values[-1], sent.values[-4]) == (2, 1, 1)
    assert sum(sent.values) == 3 and sum(failed.values) == 1
    assert chart.table_rows()[-1] == ["12-01", 2, 1]


def test_export_streams_the_chart_numbers_neutralised_and_audited(client, credential, marketer):
    seed_month(credential)
    client.force_login(marketer)

    answer = client.get(
        reverse("statistics-export", args=["rates-per-day"]), {"credential": credential.pk}
    )
    text = b"".join(answer.streaming_content).decode("utf-8")

    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    assert text.startswith("\ufeffDay (Asia/Shanghai),Arrived of pushed,Opened of arrived,Source")
    assert len(text.strip().splitlines()) == 31
    event = AuditEvent.objects.get(action="statistics.export")
    assert event.details == {"chart": "rates-per-day"}
    assert (
        client.get(reverse("statistics-export", args=["nope"]), {"credential": 1}).status_code
        == 404
    )
    missing = client.get(reverse("statistics-export", args=["rates-per-day"]), {"credential": 999})
    assert missing.status_code == 404


def test_export_neutralises_formula_cells(client, credential, template, target_list, marketer):
    campaign = make_campaign(credential, template, target_list, task_name="Winter")
    TaskStatistic.objects.create(
        credential=credential, task_id="=HYPERLINK(1)", task_name="Winter", pushed=5, fetched_at=NOW
    )
    client.force_login(marketer)

    answer = client.get(reverse("statistics-export", args=["tasks"]), {"campaign": campaign.pk})
    lines = b"".join(answer.streaming_content).decode("utf-8").splitlines()

    assert lines[0] == "\ufeffPush task ID,Pushed,Pushed successfully,Arrived,Source"
    assert lines[1] == '\'=HYPERLINK(1),5,0,0,"mPaaS statistics, as of 2026-12-01 10:00"'


def test_charts_speak_chinese(credential):
    from django.utils import translation

    with translation.override("zh-hans"):
        chart = charts.rates_per_day(credential, NOW)

    assert (chart.title, chart.y_label) == ("每日到达率与打开率", "比例（%）")
    assert chart.source == "mPaaS 统计，尚未获取"
