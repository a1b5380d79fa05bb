"""The statistics job: mPaaS's QueryPushAnalysis* figures from the sandbox into the
database, idempotent, with mPaaS errors recorded (never raised) and the 90-day rule."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import lifecycle, statistics
from campaigns.models import AuditEvent, DailyStatistic, StatisticsFetch, TaskStatistic
from campaigns.mpaas.analysis import AnalysisRangeError, check_analysis_range
from campaigns.mpaas.client import PushClient
from tests.pipeline_helpers import drain, make_campaign

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast(settings, redis_conn):
    settings.PUSH_BACKOFF_BASE = 0.01
    settings.PUSH_CONCURRENCY = 4
    settings.STATS_DAYS = 3
    settings.STATS_REFETCH_DAYS = 1


@pytest.fixture
def sent(credential, template, target_list, sandbox, marketer):
    """A campaign of 25 targets sent through the real pipeline to the sandbox."""
    campaign = make_campaign(credential, template, target_list, task_name="Stats sale")
    lifecycle.launch(campaign, marketer)
    drain()
    return campaign


def test_job_stores_the_sandbox_figures_once_per_day_platform_and_type(credential, sent):
    result = statistics.refresh(credential)

    today = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    direct = PushClient(credential).analysis_core_index(today, today, type="TEMPLATE")
    row = DailyStatistic.objects.get(
        credential=credential, day=today, platform="", channel="", push_type="TEMPLATE"
    )
    assert result.error == "" and result.days == 3
    assert DailyStatistic.objects.count() == 3 * len(statistics.TYPES) * len(statistics.BREAKDOWN)
    assert (row.pushed, row.arrived, row.opened, row.ignored) == (
        25,
        direct.arrived,
        direct.opened,
        direct.ignored,
    )
    assert 0 < row.arrived <= row.pushed and row.opened + row.ignored <= row.arrived
    platforms = DailyStatistic.objects.filter(day=today, push_type="TEMPLATE").exclude(platform="")
    assert sum(p.pushed for p in platforms) == 25
    tasks = TaskStatistic.objects.filter(credential=credential)
    assert tasks.count() == 3  # 25 targets, 10 a call
    assert {t.task_name for t in tasks} == {"Stats sale"}
    assert sum(t.pushed for t in tasks) == 25
    fetch = StatisticsFetch.objects.get(credential=credential)
    assert fetch.last_success_at and fetch.failing_since is None


def test_running_the_job_twice_stores_the_figures_once(credential, sent):
    statistics.refresh(credential)
    first = sorted(DailyStatistic.objects.values_list("day", "platform", "push_type", "pushed"))
    second = statistics.refresh(credential)

    assert second.days == 1  # only the recent day is fetched again
    assert sorted(DailyStatistic.objects.values_list("day", "platform", "push_type", "pushed")) == (
        first
    )
    assert TaskStatistic.objects.count() == 3


def test_mpaas_errors_are_recorded_and_shown_never_raised(
    client, credential, sent, sandbox, marketer
):
    statistics.refresh(credential)
    stored = DailyStatistic.objects.count()
    sandbox.configure(error_5xx_rate=1, fault_actions=["QueryPushAnalysisCoreIndex"])

    result = statistics.refresh(credential)
    first_failure = StatisticsFetch.objects.get(credential=credential).failing_since
    again = statistics.refresh(credential)

    fetch = StatisticsFetch.objects.get(credential=credential)
    assert result.error and again.error
    assert fetch.failing_since == first_failure  # since the first failure, not the last
    assert fetch.last_success_at < fetch.failing_since
    assert fetch.last_error.startswith("Service") or fetch.last_error
    assert DailyStatistic.objects.count() == stored  # what was stored stays
    client.force_login(marketer)
    page = client.get(reverse("home")).content.decode()
    assert "Statistics unavailable since" in page
    assert fetch.last_error.split(":")[0] in page


def test_the_90_day_rule_is_checked_before_any_call(credential, sandbox):
    start = dt.date(2026, 1, 1)
    check_analysis_range(start, start + dt.timedelta(days=90))
    with pytest.raises(AnalysisRangeError, match="at most 90 days"):
        PushClient(credential).analysis_core_index(start, start + dt.timedelta(days=91))
    assert sandbox.records() == []


def test_refresh_button_is_audited_and_refuses_an_unknown_credential(
    client, credential, sent, marketer
):
    client.force_login(marketer)
    url = reverse("statistics-refresh")

    unknown = client.post(url, {"credential": "99999"}, follow=True)
    assert "No such credential" in unknown.content.decode()
    assert not DailyStatistic.objects.exists()
    assert client.get(url).status_code == 405

    answer = client.post(url, {"credential": str(credential.pk)}, follow=True)
    assert answer.status_code == 200
    assert DailyStatistic.objects.filter(credential=credential).exists()
    event = AuditEvent.objects.filter(action="statistics.refresh").get()
    assert event.details["credential"] == credential.name
