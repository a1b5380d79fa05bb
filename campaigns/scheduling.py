"""Fixed-time and loop campaigns (DESIGN §5).

Two places can keep a schedule:

- **mPaaS-side**: each call carries StrategyType 1/2 and StrategyContent, and mPaaS
  creates one scheduled task per call (its ID comes back in PushResult.Data). An app may
  have at most `scheduled_task_quota` unexecuted tasks, so a launch that would exceed it
  is refused before any call (the quota guard).
- **Console-side**: the console keeps the schedule as Occurrence rows and sends an
  immediate push at each one, each occurrence a new run with its own msgKeys. RQ's
  scheduler wakes a worker at the due time; the periodic due-check (`dispatch_due`)
  catches anything a dead scheduler missed: late but within the message expiry it is
  sent, later than that it is recorded as missed. Never twice: an occurrence leaves
  `pending` with one conditional UPDATE.
- **Auto** picks mPaaS-side when the calls fit the remaining quota, else console-side.
"""

from __future__ import annotations

import logging
import math
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from campaigns import audit, queueing
from campaigns.conf import push_limits
from campaigns.models import Campaign, Credential, Occurrence, Run, ScheduledTask
from campaigns.models.campaign import ScheduleMode
from campaigns.mpaas.client import PushClient, PushError
from campaigns.mpaas.strategy import Limits, PushSpec
from campaigns.mpaas.vocabulary import CircleType, StrategyType, Weekday

log = logging.getLogger(__name__)

MPAAS, CONSOLE = ScheduleMode.MPAAS.value, ScheduleMode.CONSOLE.value


# -- occurrences (pure) -------------------------------------------------------------------


def occurrence_times(spec: PushSpec, *, after: datetime | None = None) -> list[datetime]:
    """Every send time of a fixed-time or loop spec, as aware datetimes in the spec's zone,
    in order, optionally only those at or after `after`.

    Loop days run from the start date to the end date inclusive; weekly values are ISO
    weekdays (1 = Monday); monthly values are days of the month, and a month without
    that day skips it. Local times that do not exist (a DST gap) fall forward by the gap;
    repeated ones (DST end) take the first."""
    zone = zoneinfo.ZoneInfo(spec.timezone)
    if spec.strategy_type == StrategyType.FIXED:
        times = [spec.fixed_time.astimezone(zone)] if spec.fixed_time else []
    elif spec.strategy_type == StrategyType.LOOP:
        times = []
        day = spec.loop_start_date
        values = set(spec.loop_circle_values)
        while day and spec.loop_end_date and day <= spec.loop_end_date:
            if (
                spec.loop_circle_type == CircleType.DAILY
                or (spec.loop_circle_type == CircleType.WEEKLY and day.isoweekday() in values)
                or (spec.loop_circle_type == CircleType.MONTHLY and day.day in values)
            ):
                local = datetime.combine(day, spec.loop_time, tzinfo=zone)
                # normalise through UTC: a wall time in a DST gap moves forward
                times.append(local.astimezone(zoneinfo.ZoneInfo("UTC")).astimezone(zone))
            day += timedelta(days=1)
    else:
        times = []
    if after is not None:
        times = [t for t in times if t >= after]
    return times


def describe(campaign: Campaign, *, now: datetime | None = None) -> str:
    """'Scheduled for …' or 'Repeats weekly on Mon, Thu at 09:30 from … to …, next …',
    in the credential's timezone."""
    spec = campaign.push_spec()
    zone = zoneinfo.ZoneInfo(spec.timezone)
    if spec.strategy_type == StrategyType.FIXED and spec.fixed_time:
        when = spec.fixed_time.astimezone(zone)
        return _("Scheduled for %(when)s (%(zone)s)") % {
            "when": date_format(when, "Y-m-d H:i"),
            "zone": spec.timezone,
        }
    if spec.strategy_type != StrategyType.LOOP or not spec.loop_time:
        return ""
    at = spec.loop_time.strftime("%H:%M")
    if spec.loop_circle_type == CircleType.WEEKLY:
        days = ", ".join(str(Weekday(d).label)[:3] for d in sorted(spec.loop_circle_values))
        rule = _("weekly on %(days)s") % {"days": days}
    elif spec.loop_circle_type == CircleType.MONTHLY:
        rule = _("monthly on day %(days)s") % {
            "days": ", ".join(str(d) for d in sorted(spec.loop_circle_values))
        }
    else:
        rule = _("daily")
    text = _("Repeats %(rule)s at %(at)s from %(start)s to %(end)s (%(zone)s)") % {
        "rule": rule,
        "at": at,
        "start": spec.loop_start_date,
        "end": spec.loop_end_date,
        "zone": spec.timezone,
    }
    upcoming = occurrence_times(spec, after=now or timezone.now())
    if upcoming:
        text += _(", next on %(next)s") % {"next": date_format(upcoming[0], "Y-m-d H:i")}
    return text


# -- quota and the choice of where to schedule -------------------------------------------------


def tasks_in_use(app_id: str) -> int:
    """Unexecuted mPaaS scheduled tasks the console knows of for this app (reconciled)."""
    return ScheduledTask.objects.filter(app_id=app_id, status=ScheduledTask.Status.PENDING).count()


def calls_needed(campaign: Campaign) -> int:
    return math.ceil(campaign.target_list.target_count / push_limits().max_targets)


@dataclass
class Choice:
    where: str  # MPAAS or CONSOLE
    reason: str
    in_use: int
    quota: int
    needed: int


def choose(campaign: Campaign) -> Choice:
    """Where this campaign's schedule will be kept, and why (shown in the builder)."""
    credential = campaign.credential
    in_use = tasks_in_use(credential.app_id)
    quota = credential.scheduled_task_quota
    needed = calls_needed(campaign)
    args = {"in_use": in_use, "quota": quota, "needed": needed}
    fits = in_use + needed <= quota
    if campaign.schedule_mode == ScheduleMode.CONSOLE:
        return Choice(CONSOLE, _("You chose to keep the schedule in this console."), **args)
    if campaign.schedule_mode == ScheduleMode.MPAAS:
        return Choice(MPAAS, _("You chose to schedule on mPaaS."), **args)
    if fits:
        return Choice(
            MPAAS,
            _(
                "Auto: the %(needed)d call(s) fit the remaining mPaaS quota "
                "(%(in_use)d of %(quota)d scheduled tasks in use)."
            )
            % args,
            **args,
        )
    return Choice(
        CONSOLE,
        _(
            "Auto: %(needed)d call(s) would exceed the mPaaS quota "
            "(%(in_use)d of %(quota)d in use), so this console keeps the "
            "schedule."
        )
        % args,
        **args,
    )


def quota_error(choice: Choice) -> str | None:
    """The quota guard: a refusal message, or None when the campaign fits."""
    if choice.where != MPAAS or choice.in_use + choice.needed <= choice.quota:
        return None
    return _(
        "%(in_use)d of %(quota)d mPaaS scheduled tasks are in use and this campaign needs "
        '%(needed)d more. Choose "Schedule in this console", or wait until scheduled '
        "tasks have run (then reconcile)."
    ) % {"in_use": choice.in_use, "quota": choice.quota, "needed": choice.needed}


def lock_quota(credential: Credential) -> None:
    """Inside a transaction: serialise launches that count one app's quota."""
    list(Credential.objects.select_for_update().filter(app_id=credential.app_id).values_list("pk"))


# -- console-side occurrences ---------------------------------------------------------------


def create_occurrences(campaign: Campaign, *, now: datetime) -> list[Occurrence]:
    """Inside the launch transaction: one row per future send time; RQ's scheduler is
    asked to wake a worker at each (after commit)."""
    times = occurrence_times(campaign.push_spec(), after=now)
    rows = Occurrence.objects.bulk_create(
        Occurrence(campaign=campaign, due_at=moment) for moment in times
    )
    transaction.on_commit(lambda: _wake_at([row.due_at for row in rows]))
    return rows


def _wake_at(moments: list[datetime]) -> None:
    from campaigns import jobs  # jobs call this module

    queueing.wake_at(moments, jobs.dispatch_due)


def dispatch_due(*, now: datetime | None = None) -> dict[str, int]:
    """Dispatch every due occurrence once: a new run of immediate pushes when it is still
    within the message expiry, else record it as missed. Safe to run concurrently."""
    now = now or timezone.now()
    counts = {"dispatched": 0, "missed": 0}
    due = (
        Occurrence.objects.filter(
            status=Occurrence.Status.PENDING,
            due_at__lte=now,
            # an earlier occurrence may still be sending; paused or cancelled ones wait
            campaign__status__in=[Campaign.Status.SCHEDULED, Campaign.Status.SENDING],
        )
        .select_related("campaign")
        .order_by("due_at")[:500]
    )
    for occurrence in due:
        campaign = occurrence.campaign
        late = (now - occurrence.due_at).total_seconds()
        with transaction.atomic():
            # lock order: campaign first, as cancel and pause do
            list(Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk"))
            if late > campaign.expired_seconds:
                claimed = Occurrence.objects.filter(
                    pk=occurrence.pk, status=Occurrence.Status.PENDING
                ).update(
                    status=Occurrence.Status.MISSED,
                    dispatched_at=now,
                    detail=_(
                        "Due %(due)s; the scheduler was %(late)d s late, past the "
                        "%(expiry)d s expiry."
                    )
                    % {
                        "due": occurrence.due_at.isoformat(),
                        "late": late,
                        "expiry": campaign.expired_seconds,
                    },
                )
                if claimed:
                    audit.record(
                        "campaign.occurrence_missed",
                        obj=campaign,
                        details={"due_at": occurrence.due_at.isoformat()},
                    )
                    counts["missed"] += 1
                continue
            claimed = Occurrence.objects.filter(
                pk=occurrence.pk, status=Occurrence.Status.PENDING
            ).update(status=Occurrence.Status.DISPATCHED, dispatched_at=now)
            if not claimed:
                continue  # another scheduler got there first
            number = (
                campaign.runs.order_by("-number").values_list("number", flat=True).first() or 0
            ) + 1
            run = Run.objects.create(
                campaign=campaign,
                number=number,
                kind=Run.Kind.OCCURRENCE,
                launched_by=campaign.launched_by,
            )
            Occurrence.objects.filter(pk=occurrence.pk).update(run=run)
            Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SCHEDULED).update(
                status=Campaign.Status.SENDING
            )
            audit.record(
                "campaign.occurrence_dispatched",
                obj=campaign,
                details={"due_at": occurrence.due_at.isoformat(), "run": number},
            )
            transaction.on_commit(lambda run_id=run.pk: queueing.kick(run_id, plan=True))
            counts["dispatched"] += 1
    return counts


def has_future(campaign: Campaign) -> bool:
    return campaign.occurrences.filter(status=Occurrence.Status.PENDING).exists()


# -- mPaaS-side tasks: reconcile and cancel ------------------------------------------------------


def reconcile(credential: Credential, *, now: datetime | None = None) -> dict[str, object]:
    """Ask mPaaS which scheduled tasks exist; mark known pending ones executed or missing,
    and report tasks on mPaaS that the console does not know."""
    now = now or timezone.now()
    known = ScheduledTask.objects.filter(app_id=credential.app_id)
    oldest = known.order_by("created_at").values_list("created_at", flat=True).first()
    start = (oldest or now) - timedelta(days=1)
    end = now + timedelta(days=Limits().loop_max_days + 2)
    remote = {str(t.get("UniqueId")): t for t in PushClient(credential).list_scheduled(start, end)}
    report = {"executed": 0, "missing": 0, "pending": 0, "unknown_on_mpaas": []}
    local_ids = set()
    for task in known.filter(status=ScheduledTask.Status.PENDING):
        local_ids.add(task.task_id)
        found = remote.get(task.task_id)
        if found is None:
            status, key = ScheduledTask.Status.MISSING, "missing"
        elif int(found.get("ExecutedStatus") or 0) == 1:
            status, key = ScheduledTask.Status.EXECUTED, "executed"
        else:
            status, key = ScheduledTask.Status.PENDING, "pending"
        ScheduledTask.objects.filter(pk=task.pk).update(status=status, checked_at=now)
        report[key] += 1
    all_known = set(known.values_list("task_id", flat=True)) | local_ids
    report["unknown_on_mpaas"] = sorted(
        task_id
        for task_id, task in remote.items()
        if task_id not in all_known and int(task.get("ExecutedStatus") or 0) == 0
    )
    for campaign in Campaign.objects.filter(
        credential__app_id=credential.app_id,
        status=Campaign.Status.SCHEDULED,
        schedule_resolved=MPAAS,
    ):
        if not campaign.tasks.filter(status=ScheduledTask.Status.PENDING).exists():
            Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SCHEDULED).update(
                status=Campaign.Status.COMPLETED, finished_at=now
            )
    audit.record(
        "schedule.reconcile",
        obj=credential,
        details={k: (v if not isinstance(v, list) else len(v)) for k, v in report.items()},
    )
    return report


def cancel_tasks(campaign: Campaign, user=None, *, request=None) -> dict[str, list[str]]:
    """Cancel the campaign's unexecuted mPaaS tasks, recording each answer. A failure to
    cancel is recorded on the task and raised, never hidden."""
    tasks = list(campaign.tasks.filter(status=ScheduledTask.Status.PENDING))
    result: dict[str, list[str]] = {
        "cancelled": [],
        "already_executed": [],
        "not_found": [],
        "failed": [],
    }
    client = PushClient(campaign.credential)
    now = timezone.now()
    for start in range(0, len(tasks), 50):
        chunk = tasks[start : start + 50]
        ids = [t.task_id for t in chunk]
        try:
            answer = client.cancel_scheduled(ids)
        except PushError as exc:
            ScheduledTask.objects.filter(pk__in=[t.pk for t in chunk]).update(
                detail=_("Cancel failed: %(code)s %(message)s")
                % {"code": exc.code, "message": exc.message},
                checked_at=now,
            )
            result["failed"].extend(ids)
            continue
        outcome = {
            ScheduledTask.Status.CANCELLED: answer.get("Cancelled") or [],
            ScheduledTask.Status.EXECUTED: answer.get("AlreadyExecuted") or [],
            ScheduledTask.Status.MISSING: answer.get("NotFound") or [],
        }
        for status, task_ids in outcome.items():
            ScheduledTask.objects.filter(
                app_id=campaign.credential.app_id, task_id__in=task_ids
            ).update(status=status, checked_at=now, detail="")
        result["cancelled"].extend(outcome[ScheduledTask.Status.CANCELLED])
        result["already_executed"].extend(outcome[ScheduledTask.Status.EXECUTED])
        result["not_found"].extend(outcome[ScheduledTask.Status.MISSING])
    audit.record(
        "campaign.cancel_tasks",
        actor=user,
        obj=campaign,
        request=request,
        details={k: len(v) for k, v in result.items()},
    )
    return result


def upcoming(campaign: Campaign, limit: int = 10) -> list[Occurrence]:
    return list(campaign.occurrences.filter(status=Occurrence.Status.PENDING)[:limit])
