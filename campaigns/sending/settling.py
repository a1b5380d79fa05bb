"""Deliveries take their batch's outcome in bulk: O(1) rows per call while a run sends.

One call's outcome is the outcome of all its targets, so recording a call writes the
batch (and its Attempt) only; the batch's deliveries stay `pending` until they are
*settled*: one set-based UPDATE per chunk of batches copies each final batch's status,
ResultCode and time finished to its pending deliveries, and `Run.settled_at` says it is
done. Closing a run queues its settling (`jobs.settle_run`, after the close commits, so
the close itself stays O(1)); the sweeper settles any closed run still unsettled a minute
later (its job lost with Redis, say).

Until then the batches are the record: a pending delivery of a final batch *is* in that
batch's state. Readers ask the batch (`Delivery.objects.in_state()`, the run's counts
and outcomes, charts, doubts, recall) or, for the history's indexed filters and rows,
read unsettled runs through their batches (`history`, `Delivery.outcome_status`).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from campaigns import idbounds
from campaigns.models import Batch, Delivery, Run

# batches settled per statement: ≤ 10 deliveries each
CHUNK_BATCHES = 2000
# how long the sweeper leaves a closed run to its settle job before settling it itself
GRACE_SECONDS = 60
FINAL = (Batch.Status.SENT.value, Batch.Status.FAILED.value, Batch.Status.CANCELLED.value)


def settle_run(run_id: int) -> int:
    """Give every pending delivery of a final batch of the run its batch's outcome, a
    chunk of batches per transaction, and mark a closed run settled. Idempotent and
    safe beside send jobs: only pending deliveries of batches already final are
    touched, and a final batch never changes again. Returns the deliveries settled."""
    settled = 0
    lo = -1
    top = Batch.objects.filter(run_id=run_id).order_by("-seq").values_list("seq", flat=True).first()
    while top is not None and lo < top:
        hi = min(lo + CHUNK_BATCHES, top)
        settled += _settle_range(run_id, lo, hi)
        lo = hi
    # a closed run's batches are all final, so it is settled now (an open one is not)
    Run.objects.filter(pk=run_id, finished_at__isnull=False, settled_at__isnull=True).update(
        settled_at=timezone.now()
    )
    return settled


def unsettled_runs():
    """Runs whose deliveries may not show their batches' outcomes yet: every open run,
    and closed runs not settled yet."""
    return Run.objects.filter(settled_at__isnull=True)


def settle_closed(limit: int = 20, grace: float = GRACE_SECONDS) -> int:
    """The sweeper's backstop: settle runs closed over `grace` seconds ago and still
    unsettled (their settle job was lost). Returns the runs settled."""
    closed_before = timezone.now() - timedelta(seconds=grace)
    runs = Run.objects.filter(settled_at__isnull=True, finished_at__lt=closed_before)
    run_ids = list(runs.order_by("pk").values_list("pk", flat=True)[:limit])
    for run_id in run_ids:
        settle_run(run_id)
    return len(run_ids)


def _settle_range(run_id: int, lo: int, hi: int) -> int:
    """Settle the deliveries of the run's final batches with lo < seq ≤ hi, and record
    their id bounds (`campaigns.idbounds`: how the history reads a date window)."""
    quote = connection.ops.quote_name
    delivery = quote(Delivery._meta.db_table)
    batch = quote(Batch._meta.db_table)
    marks = ", ".join(["%s"] * len(FINAL))
    update = (
        f"UPDATE {delivery} SET status = b.status, result_code = b.result_code, "
        f"finished_at = b.finished_at FROM {batch} b "
        f"WHERE {delivery}.batch_id = b.id AND b.run_id = %s AND b.seq > %s "
        f"AND b.seq <= %s AND b.status IN ({marks}) AND {delivery}.status = %s "
        f"RETURNING {delivery}.id"
    )
    params = [run_id, lo, hi, *FINAL, Delivery.Status.PENDING.value]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH u AS ({update}) SELECT count(*), min(id), max(id) FROM u", params)
            settled, low, high = cursor.fetchone()
        else:
            cursor.execute(update, params)
            ids = [row[0] for row in cursor.fetchall()]
            settled, low, high = len(ids), min(ids, default=None), max(ids, default=None)
        if settled:
            dates = Batch.objects.filter(
                run_id=run_id, seq__gt=lo, seq__lte=hi, status__in=FINAL
            ).aggregate(first=Min("finished_at"), last=Max("finished_at"))
            idbounds.record(idbounds.FINISHED, dates["first"], dates["last"], low, high)
        return settled
