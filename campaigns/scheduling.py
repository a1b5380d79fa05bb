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

import json
import logging
import math
import zoneinfo
from dataclasses import dataclass, field
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
    in the credential's timezone; a cancelled campaign has no next send."""
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
    if upcoming and campaign.status != Campaign.Status.CANCELLED:
        text += _(", next on %(next)s") % {"next": date_format(upcoming[0], "Y-m-d H:i")}
    return text


# -- quota and the choice of where to schedule -------------------------------------------------


def tasks_in_use(app_id: str) -> int:
    """Unexecuted mPaaS scheduled tasks the console knows of for this app (reconciled);
    a task whose cancel answer could not be read counts until reconcile settles it."""
    return ScheduledTask.objects.filter(
        app_id=app_id, status__in=ScheduledTask.OPEN_STATUSES
    ).count()


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


def _executed(item: dict) -> bool:
    """ExecutedStatus is a string per the official model ("1" = executed); an int reads
    the same."""
    return str(item.get("ExecutedStatus", "")).strip() == "1"


def reconcile(credential: Credential, *, now: datetime | None = None) -> dict[str, object]:
    """Ask mPaaS which scheduled tasks exist; mark known open ones executed, missing or
    (after an unreadable cancel answer) cancelled, and report tasks on mPaaS that the
    console does not know. A loop task's occurrences are listed as sub-tasks whose
    ParentId is the task's ID; a task is executed when all its listed items are."""
    now = now or timezone.now()
    known = ScheduledTask.objects.filter(app_id=credential.app_id)
    oldest = known.order_by("created_at").values_list("created_at", flat=True).first()
    start = (oldest or now) - timedelta(days=1)
    end = now + timedelta(days=Limits().loop_max_days + 2)
    items = PushClient(credential).list_scheduled(start, end)
    remote: dict[str, list[dict]] = {}
    for item in items:
        remote.setdefault(str(item.get("ParentId") or item.get("UniqueId")), []).append(item)
    report = {"executed": 0, "missing": 0, "pending": 0, "cancelled": 0, "unknown_on_mpaas": []}
    Status = ScheduledTask.Status
    for task in known.filter(status__in=ScheduledTask.OPEN_STATUSES):
        found = remote.get(task.task_id) or [
            i for i in items if str(i.get("UniqueId")) == task.task_id
        ]
        asked_to_cancel, detail = task.status == Status.RECONCILE, ""
        if not found:  # gone from the list: cancelled if we asked for it, else it vanished
            status = Status.CANCELLED if asked_to_cancel else Status.MISSING
        elif all(_executed(item) for item in found):
            status = Status.EXECUTED
        else:
            status = Status.PENDING
            if asked_to_cancel:
                detail = _("mPaaS still lists this task as waiting: the cancel did not take.")
        ScheduledTask.objects.filter(pk=task.pk).update(
            status=status, checked_at=now, detail=detail
        )
        report[status.value] += 1
    all_known = set(known.values_list("task_id", flat=True))
    report["unknown_on_mpaas"] = sorted(
        parent
        for parent, group in remote.items()
        if parent not in all_known and not all(_executed(item) for item in group)
    )
    for campaign in Campaign.objects.filter(
        credential__app_id=credential.app_id,
        status=Campaign.Status.SCHEDULED,
        schedule_resolved=MPAAS,
    ):
        if not campaign.tasks.filter(status__in=ScheduledTask.OPEN_STATUSES).exists():
            Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SCHEDULED).update(
                status=Campaign.Status.COMPLETED, finished_at=now
            )
    audit.record(
        "schedule.reconcile",
        obj=credential,
        details={k: (v if not isinstance(v, list) else len(v)) for k, v in report.items()},
    )
    return report


# What a successful CancelPushScheduler's ResultContent may say to mean "done".
_SUCCESS_WORDS = frozenset({"", "true", "ok", "success", "succeeded", "100"})


@dataclass
class CancelOutcome:
    """What a CancelPushScheduler answer says of each task ID the call named."""

    cancelled: list[str] = field(default_factory=list)
    already_executed: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    needs_reconcile: list[str] = field(default_factory=list)


def read_cancel_answer(answer: object, requested: list[str]) -> CancelOutcome:
    """Read a successful (ResultCode OK/100) CancelPushScheduler answer defensively.

    The official model types ResultContent as a string of undocumented content; `answer`
    may be the whole body, its ResultContent, or an older client's ResultContent.Data.
    A success that says nothing more (no content, "true", "success", ...) means every
    requested task was cancelled. A JSON object listing Cancelled / AlreadyExecuted /
    NotFound IDs (text or parsed; the sandbox sends such text) says otherwise for those;
    a JSON list names the cancelled ones. Requested IDs it leaves out, and every ID of an
    answer this cannot read, need reconcile."""
    everything = CancelOutcome(cancelled=list(requested))
    unknown = CancelOutcome(needs_reconcile=list(requested))
    content = answer
    if isinstance(content, dict) and ("ResultContent" in content or "ResultCode" in content):
        content = content.get("ResultContent")
    if isinstance(content, str):
        if content.strip().lower() in _SUCCESS_WORDS:
            return everything
        try:
            content = json.loads(content)
        except ValueError:
            return unknown
    if isinstance(content, dict) and set(content) == {"Data"}:
        content = content["Data"]
    if content is None or content is True or content == {}:
        return everything
    if isinstance(content, list):
        content = {"Cancelled": content}
    if not isinstance(content, dict):
        return unknown
    lists = [content.get(key) for key in ("Cancelled", "AlreadyExecuted", "NotFound")]
    if all(v is None for v in lists) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in lists if v is not None
    ):
        return unknown
    outcome = CancelOutcome()
    buckets = list(
        zip(
            [v or [] for v in lists],
            (outcome.cancelled, outcome.already_executed, outcome.not_found),
            strict=True,
        )
    )
    for task_id in requested:
        bucket = next((out for ids, out in buckets if task_id in ids), outcome.needs_reconcile)
        bucket.append(task_id)
    return outcome


def cancel_tasks(campaign: Campaign, user=None, *, request=None) -> dict[str, list[str]]:
    """Cancel the campaign's unexecuted mPaaS tasks, recording each answer. A failure to
    cancel is recorded on the task and returned, never hidden; an answer that cannot be
    read marks its tasks "needs reconcile" (reconcile then settles them). The
    `campaign.cancel_tasks` audit event is always written."""
    tasks = list(campaign.tasks.filter(status=ScheduledTask.Status.PENDING))
    result: dict[str, list[str]] = {
        "cancelled": [],
        "already_executed": [],
        "not_found": [],
        "needs_reconcile": [],
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
        except (AttributeError, TypeError, ValueError) as exc:
            # The call succeeded but the client could not read its answer (the model's
            # ResultContent is a string of undocumented content): the tasks may well be
            # cancelled, so they wait for reconcile instead of failing the cancel.
            log.warning("could not read the CancelPushScheduler answer: %s", exc)
            answer = exc
        outcome = read_cancel_answer(answer, ids)
        chunk_tasks = ScheduledTask.objects.filter(pk__in=[t.pk for t in chunk])
        for status, task_ids, detail in (
            (ScheduledTask.Status.CANCELLED, outcome.cancelled, ""),
            (ScheduledTask.Status.EXECUTED, outcome.already_executed, ""),
            (ScheduledTask.Status.MISSING, outcome.not_found, ""),
            (
                ScheduledTask.Status.RECONCILE,
                outcome.needs_reconcile,
                _(
                    "mPaaS took the cancel but its answer could not be read; "
                    "reconcile will tell whether the task was cancelled."
                ),
            ),
        ):
            if task_ids:
                chunk_tasks.filter(task_id__in=task_ids).update(
                    status=status, checked_at=now, detail=detail
                )
        result["cancelled"].extend(outcome.cancelled)
        result["already_executed"].extend(outcome.already_executed)
        result["not_found"].extend(outcome.not_found)
        result["needs_reconcile"].extend(outcome.needs_reconcile)
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
