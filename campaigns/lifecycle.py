"""What people do to a campaign: launch, pause, resume, cancel, retry failed targets.

Each action moves the campaign with one conditional UPDATE from the statuses the model
allows (`Campaign.LAUNCHABLE`, `pausable_from()`, ...), audits, and queues its work
after commit, so a double click or two processes act once.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import approvals, audit, perperson, queueing, scheduling
from campaigns.conf import push_limits
from campaigns.models import Campaign, Occurrence, Run, ScheduledTask
from campaigns.mpaas import strategy
from campaigns.mpaas.vocabulary import StrategyType
from campaigns.sending.recorder import cancel_pending
from campaigns.sweeper import close_run_if_done


class LaunchError(Exception):
    """The campaign cannot be launched; `errors` is keyed by field ("" = whole)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(" ".join(str(m) for messages in errors.values() for m in messages))


class StateError(Exception):
    """The action does not apply to the campaign in its current state."""


def launch_errors(campaign: Campaign) -> dict[str, list[str]]:
    """Every reason `campaign` cannot be launched now, keyed by field."""
    errors = strategy.validate(campaign.push_spec(), now=timezone.now(), limits=push_limits())
    if not campaign.credential.is_active:
        errors.setdefault("credential", []).append(_("This credential is deactivated."))
    if campaign.target_list.target_count == 0:
        errors.setdefault("target_list", []).append(_("The target list is empty."))
    if mismatch := campaign.template.app_error(campaign.credential):
        errors.setdefault("template", []).append(mismatch)
    for key, messages in perperson.launch_errors(campaign).items():
        errors.setdefault(key, []).extend(messages)
    return errors


def launch(campaign: Campaign, user, *, request=None) -> Run | None:
    """Validate and launch a draft: draft → queued, run 1, planning queued after commit.
    A fixed-time or loop campaign kept in this console gets its occurrences instead (no
    run until the first is due); one kept on mPaaS is sent now with its StrategyContent,
    after the quota guard.

    Launching twice (double click, two processes) starts one run: the second call
    raises StateError."""
    errors = launch_errors(campaign)
    if errors:
        raise LaunchError(errors)
    try:
        return _launch(campaign, user, request=request)
    except approvals.ApprovalError as exc:
        raise LaunchError({"": [str(exc)]}) from None
    except approvals.Stale:
        # rolled back: now void the approval for good (audited) and refuse
        approvals.void(campaign, reason="changed", request=request)
        raise LaunchError(
            {"": [_("The campaign changed after it was approved; submit it again.")]}
        ) from None


def _launch(campaign: Campaign, user, *, request=None) -> Run | None:
    now = timezone.now()
    with transaction.atomic():
        # Two-person approval: the approved snapshot must still match exactly.
        list(Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk"))
        approval = approvals.claim_for_launch(campaign)
        where = ""
        if campaign.strategy_type != StrategyType.IMMEDIATE:
            scheduling.lock_quota(campaign.credential)
            choice = scheduling.choose(campaign)
            refusal = scheduling.quota_error(choice)
            if refusal:
                raise LaunchError({"schedule_mode": [refusal]})
            where = choice.where
        console = where == scheduling.CONSOLE
        moved = campaign.move(
            Campaign.LAUNCHABLE,
            status=Campaign.Status.SCHEDULED if console else Campaign.Status.QUEUED,
            launched_by=user,
            launched_at=now,
            status_reason="",
            schedule_resolved=where,
        )
        if not moved:
            raise StateError(_("This campaign was already launched."))
        if console:
            occurrences = scheduling.create_occurrences(campaign, now=now)
            if not occurrences:
                raise LaunchError({"": [_("No send time of this schedule is in the future.")]})
            audit.record(
                "campaign.launch",
                actor=user,
                obj=campaign,
                request=request,
                details={
                    "schedule": where,
                    "occurrences": len(occurrences),
                    **({"approval": approval.pk} if approval else {}),
                },
            )
            campaign.refresh_from_db()
            return None
        run = Run.objects.create(campaign=campaign, number=1, launched_by=user)
        audit.record(
            "campaign.launch",
            actor=user,
            obj=campaign,
            request=request,
            details={
                "run": run.number,
                "targets": campaign.target_list.target_count,
                **({"approval": approval.pk} if approval else {}),
            },
        )
        transaction.on_commit(lambda: queueing.kick(run.pk, plan=True))
    campaign.refresh_from_db()
    return run


def pause(campaign: Campaign, user, *, reason: str = "", request=None) -> None:
    """No new claims once this commits; calls already in flight finish. A schedule kept
    in this console also stops dispatching occurrences until resumed."""
    with transaction.atomic():
        moved = campaign.move(
            campaign.pausable_from(), status=Campaign.Status.PAUSED, status_reason=reason[:500]
        )
        if not moved:
            if campaign.status == Campaign.Status.SCHEDULED:
                raise StateError(_("mPaaS holds this schedule: cancel it instead."))
            raise StateError(_("Only a queued or sending campaign can be paused."))
        # locked first: waits for send rounds in progress (no claim after this commits)
        working = Run.objects.lock_all(campaign=campaign, status__in=Run.WORKING)
        Run.objects.filter(pk__in=working).update(status=Run.Status.PAUSED)
        audit.record(
            "campaign.pause",
            actor=user,
            obj=campaign,
            request=request,
            details={"reason": reason} if reason else {},
        )
    campaign.refresh_from_db()


def resume(campaign: Campaign, user, *, request=None) -> None:
    """Continue a paused campaign. Sent targets are never sent again: only batches
    still pending are claimed."""
    with transaction.atomic():
        runs = list(Run.objects.filter(campaign=campaign, status=Run.Status.PAUSED))
        waiting = not runs and scheduling.has_future(campaign)
        moved = campaign.move(
            Campaign.RESUMABLE,
            status=Campaign.Status.SCHEDULED if waiting else Campaign.Status.SENDING,
            status_reason="",
        )
        if not moved:
            raise StateError(_("Only a paused campaign can be resumed."))
        Run.objects.filter(pk__in=[r.pk for r in runs]).update(
            status=Run.Status.SENDING, consecutive_failures=0
        )
        audit.record("campaign.resume", actor=user, obj=campaign, request=request)
        for run in runs:
            transaction.on_commit(
                lambda run=run: queueing.kick(run.pk, plan=not run.planning_done, send=True)
            )
    campaign.refresh_from_db()


def cancel(campaign: Campaign, user, *, request=None) -> dict[str, list[str]] | None:
    """Stop the campaign: pending targets end as cancelled; calls in flight finish; future
    occurrences are cancelled; mPaaS-side scheduled tasks are cancelled on mPaaS (the
    answer for each is recorded and returned)."""
    with transaction.atomic():
        moved = campaign.move(
            Campaign.CANCELLABLE, status=Campaign.Status.CANCELLED, cancelled_by=user
        )
        if not moved:
            raise StateError(
                _("Only a queued, sending, scheduled or paused campaign can be cancelled.")
            )
        # locked first: waits for send rounds in progress (no claim after this commits)
        runs = Run.objects.lock_all(campaign=campaign, status__in=Run.OPEN)
        Run.objects.filter(pk__in=runs).update(status=Run.Status.CANCELLED)
        cancelled = sum(cancel_pending(run_id) for run_id in runs)
        occurrences = Occurrence.objects.filter(
            campaign=campaign, status=Occurrence.Status.PENDING
        ).update(status=Occurrence.Status.CANCELLED)
        audit.record(
            "campaign.cancel",
            actor=user,
            obj=campaign,
            request=request,
            details={"targets_cancelled": cancelled, "occurrences_cancelled": occurrences},
        )
        for run_id in runs:
            # planning of a cancelled run records the remaining targets as cancelled
            transaction.on_commit(lambda run_id=run_id: queueing.kick(run_id, plan=True))
            transaction.on_commit(lambda run_id=run_id: close_run_if_done(run_id))
    campaign.refresh_from_db()
    if campaign.tasks.filter(status=ScheduledTask.Status.PENDING).exists():
        return scheduling.cancel_tasks(campaign, user, request=request)
    return None


def retry_failed(campaign: Campaign, user, *, request=None) -> Run:
    """Start a new run holding only the targets whose final outcome was a failure, with
    new msgKeys."""
    source = campaign.latest_run()
    if source is None or source.finished_at is None or source.failed == 0:
        raise StateError(_("Only a finished run with failed targets can be retried."))
    with transaction.atomic():
        moved = campaign.move(
            Campaign.RETRYABLE, status=Campaign.Status.QUEUED, status_reason="", finished_at=None
        )
        if not moved:
            raise StateError(_("Only a finished campaign with failed targets can be retried."))
        run = Run.objects.create(
            campaign=campaign,
            number=campaign.runs.order_by("-number").values_list("number", flat=True)[0] + 1,
            kind=Run.Kind.RETRY,
            source_run=source,
            launched_by=user,
        )
        audit.record(
            "campaign.retry_failed",
            actor=user,
            obj=campaign,
            request=request,
            details={"run": run.number, "source_run": source.number, "targets": source.failed},
        )
        transaction.on_commit(lambda: queueing.kick(run.pk, plan=True))
    campaign.refresh_from_db()
    return run
