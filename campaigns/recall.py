"""Recalling a campaign's messages: a recall run revokes every delivery sent in the last
RECALL_DAYS days (RevokePushMessage, MessageId = its msgKey) through the send pipeline.

A recall run is a Run of kind "recall": planning makes one batch per delivery to recall
(each a delivery with `recall_of` set), send jobs claim, call (under the credential's
rate limit), retry and record them like any run, and it can be cancelled. Older
deliveries are only counted (too old). mPaaS-side scheduled tasks not yet executed are
cancelled instead (`scheduling.cancel_tasks`). A delivery recalled once is never called
again.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import audit, planning, queueing, scheduling
from campaigns.models import Batch, Campaign, Delivery, Run, ScheduledTask
from campaigns.sending.recorder import cancel_pending
from campaigns.sweeper import close_run_if_done


class RecallError(Exception):
    """The recall cannot start (or stop); the message says why. Nothing was changed."""


@dataclass(frozen=True)
class RecallPlan:
    """What a recall would do now: deliveries it would revoke, ones too old, ones
    recalled already, and mPaaS tasks that would be cancelled instead."""

    recallable: int
    too_old: int
    already_recalled: int
    pending_tasks: int
    open_run: Run | None


def plan_for(campaign: Campaign, delivery: Delivery | None = None) -> RecallPlan:
    now = timezone.now()
    cutoff = planning.recall_cutoff(now)
    rows = planning.recallable(campaign)
    recalled = Delivery.objects.filter(
        recall_of__run__campaign=campaign, batch__status=Batch.Status.SENT
    )
    if delivery is not None:
        rows = rows.filter(pk=delivery.pk)
        recalled = recalled.filter(recall_of=delivery)
    return RecallPlan(
        recallable=rows.filter(sent_at__gte=cutoff).count(),
        too_old=rows.filter(sent_at__lt=cutoff).count(),
        already_recalled=recalled.count(),
        pending_tasks=0
        if delivery is not None
        else campaign.tasks.filter(status=ScheduledTask.Status.PENDING).count(),
        open_run=open_recall(campaign),
    )


def open_recall(campaign: Campaign) -> Run | None:
    return (
        campaign.runs.filter(kind=Run.Kind.RECALL, status__in=Run.OPEN).order_by("-number").first()
    )


def recall_runs(campaign: Campaign) -> list[Run]:
    return list(campaign.runs.filter(kind=Run.Kind.RECALL).order_by("-number")[:10])


def start(
    campaign: Campaign, user, *, delivery: Delivery | None = None, request=None
) -> tuple[Run | None, dict[str, list[str]] | None]:
    """Start a recall run (of the whole campaign, or of one delivery) and cancel the
    campaign's mPaaS tasks not yet executed. Returns (run or None, cancel result or None).
    Raises RecallError, changing nothing, when there is nothing to do."""
    if campaign.status in Campaign.IN_PROGRESS:
        raise RecallError(
            _("The campaign is still sending: pause or cancel it, or wait until it ends.")
        )
    if delivery is not None and delivery.run.campaign_id != campaign.pk:
        raise RecallError(_("This delivery is not one of the campaign's."))
    cancelled = None
    if delivery is None and campaign.tasks.filter(status=ScheduledTask.Status.PENDING).exists():
        cancelled = scheduling.cancel_tasks(campaign, user, request=request)
    with transaction.atomic():
        list(Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk"))
        if open_recall(campaign) is not None:
            raise RecallError(_("A recall of this campaign is already under way."))
        plan = plan_for(campaign, delivery)
        if not plan.recallable:
            if cancelled is not None:
                return None, cancelled
            raise RecallError(_nothing_message(plan))
        number = (campaign.runs.aggregate(n=Max("number"))["n"] or 0) + 1
        run = Run.objects.create(
            campaign=campaign,
            number=number,
            kind=Run.Kind.RECALL,
            launched_by=user,
            recall_only=delivery,
        )
        audit.record(
            "campaign.recall",
            actor=user,
            obj=campaign,
            request=request,
            details={
                "run": run.number,
                "deliveries": plan.recallable,
                "too_old": plan.too_old,
                "already_recalled": plan.already_recalled,
                **({"delivery": delivery.msg_key} if delivery is not None else {}),
            },
        )
        transaction.on_commit(lambda: queueing.kick(run.pk, plan=True))
    return run, cancelled


def _nothing_message(plan: RecallPlan) -> str:
    if plan.already_recalled and not plan.too_old:
        return _(
            "Nothing to recall: the %(count)d message(s) sent were already recalled; "
            "nothing was called again."
        ) % {"count": plan.already_recalled}
    if plan.too_old:
        return _(
            "Nothing to recall: %(old)d message(s) were sent more than 7 days ago and can no "
            "longer be recalled; %(done)d were already recalled."
        ) % {"old": plan.too_old, "done": plan.already_recalled}
    return _("Nothing to recall: no message of this campaign was sent.")


def cancel(run: Run, user, *, request=None) -> int:
    """Stop a recall run: deliveries not yet recalled end as cancelled; calls in flight
    finish. Returns how many were cancelled."""
    if run.kind != Run.Kind.RECALL:
        raise RecallError(_("This run is not a recall."))
    with transaction.atomic():
        list(Campaign.objects.select_for_update().filter(pk=run.campaign_id).values_list("pk"))
        status = Run.objects.lock(run.pk)
        if status not in Run.OPEN:
            raise RecallError(_("This recall has already ended."))
        Run.objects.filter(pk=run.pk).update(status=Run.Status.CANCELLED)
        count = cancel_pending(run.pk)
        audit.record(
            "campaign.recall_cancel",
            actor=user,
            obj=run.campaign,
            request=request,
            details={"run": run.number, "cancelled": count},
        )
        transaction.on_commit(lambda: queueing.kick(run.pk, plan=True))
        transaction.on_commit(lambda: close_run_if_done(run.pk))
    return count
