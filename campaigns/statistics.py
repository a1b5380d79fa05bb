"""mPaaS delivery statistics into the database: the periodic job and the refresh button
call `refresh()`, which stores each day's QueryPushAnalysisCoreIndex figures per
credential x platform x channel x type and each push task's figures, as upserts (running
it twice stores once). An mPaaS error is recorded on the credential's StatisticsFetch
row ("statistics unavailable since …"), never raised to the page or the job."""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.models import Credential, DailyStatistic, StatisticsFetch, TaskStatistic
from campaigns.mpaas.analysis import ms_time
from campaigns.mpaas.client import PushClient, PushError

log = logging.getLogger(__name__)

TYPES = ("TEMPLATE", "MULTIPLE")
# (platform, channel) filters fetched per day and type; "" is "all". The model keeps a
# channel column, so Android channels can be added here without a migration.
BREAKDOWN = (("", ""), ("IOS", ""), ("ANDROID", ""), ("HARMONYOS", ""))
DAILY_FIELDS = (
    "push_total",
    "pushed",
    "arrived",
    "arrival_rate",
    "opened",
    "open_rate",
    "ignored",
    "ignore_rate",
    "fetched_at",
)
TASK_FIELDS = (
    "task_name",
    "template_name",
    "task_type",
    "created_on_mpaas",
    "start_time",
    "end_time",
    "pushed",
    "push_success",
    "arrived",
    "fetched_at",
)


@dataclass
class RefreshResult:
    credential: str
    days: int = 0
    rows: int = 0
    tasks: int = 0
    error: str = ""
    fetched: list[date] = field(default_factory=list)


def days_to_fetch(credential: Credential, now: datetime) -> list[date]:
    """The last STATS_DAYS days (today included, in the credential's timezone): every
    day never stored yet, and the last STATS_REFETCH_DAYS again (figures still grow)."""
    today = now.astimezone(zoneinfo.ZoneInfo(credential.timezone)).date()
    window = [today - timedelta(days=n) for n in range(settings.STATS_DAYS)]
    stored = set(
        DailyStatistic.objects.filter(credential=credential, day__in=window)
        .values_list("day", flat=True)
        .distinct()
    )
    recent = set(window[: settings.STATS_REFETCH_DAYS])
    return sorted(day for day in window if day in recent or day not in stored)


def refresh(credential: Credential, *, now: datetime | None = None) -> RefreshResult:
    """Fetch and store the credential's statistics; record success or the error."""
    now = now or timezone.now()
    result = RefreshResult(credential.name)
    fetch, _created = StatisticsFetch.objects.get_or_create(credential=credential)
    client = PushClient(credential)
    try:
        rows = []
        for day in days_to_fetch(credential, now):
            for push_type in TYPES:
                for platform, channel in BREAKDOWN:
                    figures = client.analysis_core_index(
                        day, day, platform=platform, channel=channel, type=push_type
                    )
                    rows.append(
                        _daily_row(credential, day, platform, channel, push_type, figures, now)
                    )
            result.fetched.append(day)
        tasks = _task_rows(client, credential, now)
    except PushError as exc:
        result.error = str(exc)
        log.warning("statistics of %s unavailable: %s", credential.name, exc.code)
        StatisticsFetch.objects.filter(pk=fetch.pk).update(
            last_attempt_at=now,
            failing_since=fetch.failing_since or now,
            last_error=f"{exc.code}: {exc.message}"[:1000],
        )
        return result
    with transaction.atomic():
        DailyStatistic.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["credential", "day", "platform", "channel", "push_type"],
            update_fields=list(DAILY_FIELDS),
        )
        TaskStatistic.objects.bulk_create(
            tasks,
            update_conflicts=True,
            unique_fields=["credential", "task_id"],
            update_fields=list(TASK_FIELDS),
        )
        StatisticsFetch.objects.filter(pk=fetch.pk).update(
            last_attempt_at=now, last_success_at=now, failing_since=None, last_error=""
        )
    result.days, result.rows, result.tasks = len(result.fetched), len(rows), len(tasks)
    return result


def refresh_all(*, now: datetime | None = None) -> list[RefreshResult]:
    return [refresh(c, now=now) for c in Credential.objects.filter(is_active=True)]


def _daily_row(credential, day, platform, channel, push_type, figures, now) -> DailyStatistic:
    return DailyStatistic(
        credential=credential,
        day=day,
        platform=platform,
        channel=channel,
        push_type=push_type,
        push_total=max(figures.push_total, 0),
        pushed=max(figures.pushed, 0),
        arrived=max(figures.arrived, 0),
        arrival_rate=figures.arrival_rate,
        opened=max(figures.opened, 0),
        open_rate=figures.open_rate,
        ignored=max(figures.ignored, 0),
        ignore_rate=figures.ignore_rate,
        fetched_at=now,
    )


def _task_rows(client: PushClient, credential: Credential, now: datetime) -> list[TaskStatistic]:
    """Each push task created in the statistics window, with its detail figures."""
    since = now - timedelta(days=settings.STATS_DAYS)
    rows = {}
    for item in client.analysis_task_list(since=since):
        task_id = str(item.get("TaskId") or "").strip()
        if not task_id.isdigit() or task_id in rows:
            continue
        detail = client.analysis_task_detail(task_id)
        rows[task_id] = TaskStatistic(
            credential=credential,
            task_id=task_id,
            task_name=str(item.get("TaskName") or "")[:200],
            template_name=str(item.get("TemplateName") or "")[:200],
            task_type=_small_int(item.get("Type")),
            created_on_mpaas=ms_time(item.get("GmtCreate")),
            start_time=detail.start_time,
            end_time=detail.end_time,
            pushed=max(detail.pushed, 0),
            push_success=max(detail.push_success, 0),
            arrived=max(detail.arrived, 0),
            fetched_at=now,
        )
    return list(rows.values())


def _small_int(value) -> int:
    try:
        return min(max(int(value), 0), 32767)
    except (TypeError, ValueError):
        return 0


def status_of(credential: Credential) -> StatisticsFetch | None:
    return StatisticsFetch.objects.filter(credential=credential).first()
