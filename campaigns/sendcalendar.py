"""The send calendar: every send of a month across campaigns and credentials, each on its
day in its credential's timezone (console-side occurrences, mPaaS-side scheduled sends,
immediate runs), past ones with their outcome, and the scheduled-task quota in use per
app per day. Reads the database only."""

from __future__ import annotations

import calendar
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign, Credential, Occurrence, Run, ScheduledTask
from campaigns.mpaas.vocabulary import StrategyType, Weekday
from campaigns.scheduling import occurrence_times

# Outcome tones (Bootstrap colours) of campaign and run statuses, read from the model.
TONES = Campaign.STATUS_TONES


class MonthError(ValueError):
    """A ?month= value that is not YYYY-MM."""


@dataclass
class Entry:
    campaign: Campaign
    when: datetime  # in the credential's timezone
    source: str  # "console" | "mpaas" | "run"
    outcome: str  # a label
    tone: str
    past: bool
    tasks: int = 0

    @property
    def time_text(self) -> str:
        return f"{self.when:%H:%M} {self.when.tzname()}"

    @property
    def source_label(self) -> str:
        return {
            "console": _("kept in this console"),
            "mpaas": _("kept on mPaaS"),
            "run": _("sent at once"),
        }[self.source]


@dataclass
class Day:
    day: date
    in_month: bool
    is_today: bool
    entries: list[Entry] = field(default_factory=list)
    quota: list[tuple[str, int, int]] = field(default_factory=list)  # app, in use, quota


@dataclass
class Month:
    first: date
    weeks: list[list[Day]]

    @property
    def previous(self) -> str:
        return f"{(self.first - timedelta(days=1)):%Y-%m}"

    @property
    def next(self) -> str:
        return f"{(self.first + timedelta(days=32)):%Y-%m}"

    @property
    def days_with_entries(self) -> list[Day]:
        return [d for w in self.weeks for d in w if d.in_month and (d.entries or d.quota)]

    def entries_on(self, day: date) -> list[Entry]:
        return [e for w in self.weeks for d in w if d.day == day for e in d.entries]


def parse_month(value: str | None, today: date) -> date:
    """The first day of ?month=YYYY-MM (this month when empty)."""
    if not value:
        return today.replace(day=1)
    try:
        parsed = datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise MonthError(
            _("month must be a year and month such as 2026-12; %(value)s is not one.")
            % {"value": value[:20]}
        ) from None
    if not 2000 <= parsed.year <= 2100:
        raise MonthError(_("month must be between 2000-01 and 2100-12."))
    return parsed


def month_view(first: date, *, now: datetime | None = None) -> Month:
    now = now or timezone.now()
    grid = calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)
    days = {
        d: Day(d, d.month == first.month, d == timezone.localdate(now)) for w in grid for d in w
    }
    start = datetime.combine(
        grid[0][0] - timedelta(days=1), datetime.min.time(), tzinfo=zoneinfo.ZoneInfo("UTC")
    )
    end = datetime.combine(
        grid[-1][-1] + timedelta(days=2), datetime.min.time(), tzinfo=zoneinfo.ZoneInfo("UTC")
    )
    entries = [*_console(start, end, now), *_mpaas(start, end, now), *_runs(start, end, now)]
    for entry in sorted(entries, key=lambda e: e.when):
        day = days.get(entry.when.date())
        if day is not None:
            day.entries.append(entry)
    for (app_id, day_date), (in_use, quota) in _quota(list(days), now).items():
        days[day_date].quota.append((app_id, in_use, quota))
    return Month(first, [[days[d] for d in week] for week in grid])


def _zone(campaign: Campaign) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(campaign.credential.timezone)


def _console(start: datetime, end: datetime, now: datetime) -> list[Entry]:
    rows = Occurrence.objects.filter(due_at__gte=start, due_at__lt=end).select_related(
        "campaign__credential", "run"
    )
    entries = []
    for occ in rows:
        if occ.status == Occurrence.Status.DISPATCHED and occ.run:
            outcome, tone = occ.run.get_status_display(), TONES.get(occ.run.status, "primary")
        elif occ.status == Occurrence.Status.PENDING:
            outcome, tone = _("Upcoming"), "primary"
        else:
            outcome = occ.get_status_display()
            tone = "danger" if occ.status == Occurrence.Status.MISSED else "secondary"
        entries.append(
            Entry(
                occ.campaign,
                occ.due_at.astimezone(_zone(occ.campaign)),
                "console",
                outcome,
                tone,
                occ.due_at < now,
            )
        )
    return entries


def _mpaas_campaigns():
    return (
        Campaign.objects.filter(schedule_resolved="mpaas")
        .exclude(strategy_type=StrategyType.IMMEDIATE)
        .exclude(status=Campaign.Status.DRAFT)
        .select_related("credential")
    )


def _mpaas(start: datetime, end: datetime, now: datetime) -> list[Entry]:
    entries = []
    for campaign in _mpaas_campaigns():
        statuses = list(campaign.tasks.values_list("status", flat=True))
        for moment in occurrence_times(campaign.push_spec()):
            if not start <= moment < end:
                continue
            past = moment < now
            if campaign.status == Campaign.Status.CANCELLED and not past:
                outcome, tone = _("Cancelled"), "secondary"
            elif past:
                executed = statuses.count(ScheduledTask.Status.EXECUTED)
                outcome = _("%(done)d of %(all)d tasks executed") % {
                    "done": executed,
                    "all": len(statuses),
                }
                tone = "success" if statuses and executed == len(statuses) else "warning"
            else:
                outcome, tone = _("Waiting on mPaaS"), "primary"
            entries.append(
                Entry(
                    campaign,
                    moment.astimezone(_zone(campaign)),
                    "mpaas",
                    outcome,
                    tone,
                    past,
                    len(statuses),
                )
            )
    return entries


def _runs(start: datetime, end: datetime, now: datetime) -> list[Entry]:
    rows = Run.objects.filter(
        created_at__gte=start, created_at__lt=end, campaign__strategy_type=StrategyType.IMMEDIATE
    ).select_related("campaign__credential")
    return [
        Entry(
            run.campaign,
            run.created_at.astimezone(_zone(run.campaign)),
            "run",
            run.get_status_display(),
            TONES.get(run.status, "primary"),
            True,
        )
        for run in rows
    ]


def _quota(days: list[date], now: datetime) -> dict[tuple[str, date], tuple[int, int]]:
    """Per app and day from today on: mPaaS scheduled tasks still waiting that day (their
    campaign has a send time on or after it), against the app's quota."""
    today = timezone.localdate(now)
    last_send: dict[int, datetime | None] = {}
    quotas = defaultdict(int)
    for credential in Credential.objects.filter(is_active=True):
        quotas[credential.app_id] = max(quotas[credential.app_id], credential.scheduled_task_quota)
    counts: dict[tuple[str, date], int] = defaultdict(int)
    tasks = ScheduledTask.objects.filter(status__in=ScheduledTask.OPEN_STATUSES).select_related(
        "campaign__credential"
    )
    for task in tasks:
        if task.campaign_id not in last_send:
            times = occurrence_times(task.campaign.push_spec())
            last_send[task.campaign_id] = times[-1] if times else None
        last = last_send[task.campaign_id]
        for day in days:
            if day >= today and (last is None or timezone.localdate(last) >= day):
                counts[(task.app_id, day)] += 1
    return {key: (n, quotas.get(key[0], 100)) for key, n in counts.items()}


def weekday_names() -> list[str]:
    """Monday first, translated (the grid's column heads)."""
    return [str(Weekday(n).label) for n in range(1, 8)]
