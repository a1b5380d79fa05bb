"""The sweeper: expired leases back to the queue, vanished jobs re-queued, runs closed.

Safe to run anywhere, any number of times at once (every step is a conditional UPDATE
under the run's lock). It is what makes Redis only a carrier: a worker killed mid-call or
a Redis that restarted empty loses nothing, because the next sweep rebuilds the queue
from the database.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.db import close_old_connections, transaction
from django.utils import timezone

from campaigns import audit, queueing, scheduling
from campaigns.models import Batch, Campaign, Run
from campaigns.sending import settling
from campaigns.sending.recorder import cancel_pending, fold_tallies, has_pending
from pushconsole import metrics

log = logging.getLogger(__name__)

LAST_SWEEP_KEY = "pushconsole:sweep:last"  # read by /readyz

RUN_FINAL_FOR_CAMPAIGN = {
    Run.Status.COMPLETED: Campaign.Status.COMPLETED,
    Run.Status.COMPLETED_WITH_ERRORS: Campaign.Status.COMPLETED_WITH_ERRORS,
    Run.Status.FAILED: Campaign.Status.FAILED,
}


def close_run_if_done(run_id: int) -> str | None:
    """Close a run whose planning is done and that has no open batch. Returns the final
    status when this call closed it."""
    run = Run.objects.get(pk=run_id)
    if run.finished_at is not None or not run.planning_done:
        return None
    if run.status not in (Run.Status.SENDING, Run.Status.CANCELLED):
        return None
    if Batch.objects.filter(run_id=run_id, status__in=Batch.OPEN_STATUSES).exists():
        return None
    now = timezone.now()
    with transaction.atomic():
        # lock order: campaign, then run (as cancel and pause do)
        list(Campaign.objects.select_for_update().filter(pk=run.campaign_id).values_list("pk"))
        Run.objects.lock(run_id)
        fold_tallies(run_id)
        run.refresh_from_db()
        if run.status == Run.Status.CANCELLED:
            final = Run.Status.CANCELLED
            closed = Run.objects.filter(pk=run_id, finished_at__isnull=True).update(finished_at=now)
            campaign_status = Campaign.Status.CANCELLED
        else:
            final = _final_status(run)
            closed = Run.objects.filter(pk=run_id, status=Run.Status.SENDING).update(
                status=final, finished_at=now
            )
            campaign_status = _campaign_status_after(run, final)
        if not closed:
            return None
        # every batch is final: the deliveries take their batches' outcomes in bulk, in
        # a job of its own (the sweeper settles it if that job is lost)
        transaction.on_commit(lambda: queueing.settle_later(run_id))
        if run.kind == Run.Kind.RECALL:  # a recall leaves the campaign's status alone
            audit.record(
                "campaign.recall_finished",
                obj=run.campaign,
                details={
                    "run": run.number,
                    "status": final,
                    "recalled": run.sent,
                    "failed": run.failed,
                    "cancelled": run.cancelled,
                },
            )
            return final
        Campaign.objects.filter(
            pk=run.campaign_id,
            status__in=[Campaign.Status.SENDING, Campaign.Status.CANCELLED],
        ).update(status=campaign_status, finished_at=now)
        audit.record(
            "campaign.run_finished",
            obj=run.campaign,
            details={
                "run": run.number,
                "status": final,
                "sent": run.sent,
                "failed": run.failed,
                "cancelled": run.cancelled,
            },
        )
    return final


def _final_status(run: Run) -> str:
    if run.failed == 0:
        return Run.Status.COMPLETED
    if run.sent == 0:
        return Run.Status.FAILED
    return Run.Status.COMPLETED_WITH_ERRORS


def _campaign_status_after(run: Run, final: str) -> str:
    campaign = run.campaign
    if campaign.schedule_resolved == scheduling.MPAAS and run.sent:
        return Campaign.Status.SCHEDULED  # mPaaS sends at the set times
    if campaign.schedule_resolved == scheduling.CONSOLE and scheduling.has_future(campaign):
        return Campaign.Status.SCHEDULED  # more occurrences to come
    return RUN_FINAL_FOR_CAMPAIGN[final]


@dataclass
class SweepReport:
    reclaimed: int = 0
    kicked: int = 0
    closed: int = 0
    settled: int = 0

    def __str__(self) -> str:
        return (
            f"reclaimed {self.reclaimed} expired lease(s), re-queued {self.kicked} job(s), "
            f"closed {self.closed} run(s), settled {self.settled} run(s)"
        )


def sweep() -> SweepReport:
    """Return expired leases to the queue, re-queue work whose job vanished, close
    finished runs."""
    report = SweepReport()
    report.reclaimed = _reclaim_expired()
    conn = queueing.connection()
    active = Run.objects.filter(
        status__in=[Run.Status.PLANNING, Run.Status.SENDING, Run.Status.CANCELLED],
        finished_at__isnull=True,
    ).values_list("pk", "status", "planning_done")
    for run_id, status, planning_done in active:
        if (
            status == Run.Status.CANCELLED
            and Batch.objects.filter(run_id=run_id, status=Batch.Status.PENDING).exists()
        ):
            with transaction.atomic():  # a batch released while the cancel committed
                Run.objects.lock(run_id)
                cancel_pending(run_id)
        try:
            if not planning_done and not queueing.slot_busy(conn, run_id, queueing.PLAN):
                report.kicked += queueing.enqueue(run_id, queueing.PLAN)
            if status == Run.Status.SENDING and has_pending(run_id):
                for slot in queueing.send_slots():
                    if not queueing.slot_busy(conn, run_id, slot):
                        report.kicked += queueing.enqueue(run_id, slot)
                continue
        except redis.RedisError as exc:
            # Redis is down: the database still holds the work; the next sweep re-queues it.
            log.warning("sweep could not reach Redis: %s", exc)
        if close_run_if_done(run_id):
            report.closed += 1
    report.settled = settling.settle_closed()
    close_old_connections()
    metrics.SWEEPS.inc()
    try:
        conn.set(LAST_SWEEP_KEY, f"{time.time():.3f}")
    except redis.RedisError as exc:
        log.warning("could not note the sweep in Redis: %s", exc)
    return report


def last_sweep() -> float | None:
    """When a sweep last finished (unix time), as noted in Redis; None if never."""
    value = queueing.connection().get(LAST_SWEEP_KEY)
    return float(value) if value else None


def _reclaim_expired() -> int:
    """Batches whose lease expired go back to pending, flagged ambiguous: the last
    attempt's answer was never recorded, so the call may have gone out."""
    reclaimed = 0
    expired = Batch.objects.filter(status=Batch.Status.CLAIMED, lease_expires_at__lt=timezone.now())
    for batch_id, run_id, token in expired.values_list("pk", "run_id", "lease_token")[:5000]:
        with transaction.atomic():
            Run.objects.lock(run_id)
            released = Batch.objects.filter(
                pk=batch_id, status=Batch.Status.CLAIMED, lease_token=token
            ).update(status=Batch.Status.PENDING, lease_expires_at=None, ambiguous=True)
            if released:
                if Run.objects.filter(pk=run_id, status=Run.Status.CANCELLED).exists():
                    cancel_pending(run_id)
                transaction.on_commit(metrics.LEASE_EXPIRIES.inc)
                reclaimed += 1
    return reclaimed


def sweep_forever(interval: float, stop: threading.Event | None = None) -> None:
    """`manage.py sweep --loop`: sweep every `interval` seconds until stopped."""
    stop = stop or threading.Event()
    while not stop.is_set():
        log.info("sweep: %s", sweep())
        stop.wait(interval)
