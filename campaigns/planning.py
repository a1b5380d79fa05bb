"""Planning a run: its deliveries (each with a msgKey fixed forever) and batches of ≤ 10.

Planning walks the target list (or, for a retry, the source run's failed deliveries) by
primary key in chunks, creating deliveries and batches in one transaction per chunk
together with the run's cursor and counters: a crash re-plans nothing twice. Sending
starts after the first chunk, and the rest of a long list is planned beside the calls:
the plan job hands it to the first send job, which plans it in a thread of its own
(`Planner`), so a worker that runs one job at a time does not hold the calls back until
the whole list is planned. `first_call` shows what the first call of a launch will
carry, from the same code.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns import idbounds, queueing, scheduling, sweeper
from campaigns.bulkrows import insert_rows
from campaigns.conf import multiple_batch_size, push_limits
from campaigns.models import Batch, Campaign, Delivery, Run, Target
from campaigns.mpaas import wire
from campaigns.mpaas.strategy import PushSpec
from campaigns.mpaas.vocabulary import StrategyType
from campaigns.sending import calls, settling

log = logging.getLogger(__name__)


def msg_key(campaign_id: int, run_number: int, ref: int) -> str:
    """Deterministic and unique per (campaign, run, target): `ref` is the target's row
    id (or, in a retry run, the failed delivery's row id)."""
    return f"pc{campaign_id}r{run_number}n{ref}"


def spec_for(campaign: Campaign, *, where: str | None = None) -> PushSpec:
    """What a run sends: a schedule kept in this console is sent as immediate pushes at
    each occurrence; one kept on mPaaS carries its StrategyContent. `where` is where the
    schedule is kept (default: where launch put it, `schedule_resolved`). A campaign
    launched under a two-person approval sends the approved snapshot's spec, whatever is
    edited later."""
    from campaigns import approvals  # approvals reads planning.first_call

    spec = approvals.launched_spec(campaign) or campaign.push_spec()
    if (campaign.schedule_resolved if where is None else where) == scheduling.CONSOLE:
        spec = dataclasses.replace(spec, strategy_type=StrategyType.IMMEDIATE)
    return spec


def first_call(campaign: Campaign) -> dict[str, str] | None:
    """The exact business parameters of run 1's first call (secret-free), or None when
    the list is empty: the first batch as planning will make it, sent as `spec_for`
    says. Before launch the schedule's place is the one launch will choose."""
    limits = push_limits()
    per_person = campaign.per_person()
    size = multiple_batch_size() if per_person else limits.max_targets
    refs = list(
        Target.objects.filter(target_list=campaign.target_list)
        .order_by("pk")
        .values_list("pk", "target_id", "values")[:size]
    )
    if not refs:
        return None
    where = campaign.schedule_resolved
    if not where and campaign.strategy_type != StrategyType.IMMEDIATE:
        where = scheduling.choose(campaign).where
    spec = spec_for(campaign, where=where)
    if per_person:
        columns = campaign.value_columns
        group = [
            (target, msg_key(campaign.pk, 1, ref), own_values(columns, values))
            for ref, target, values in refs
        ]
        return wire.multiple_params(spec, group, max_targets=size)
    targets = {target: msg_key(campaign.pk, 1, ref) for ref, target, _values in refs}
    return wire.template_params(spec, targets, limits=limits)


def own_values(columns: dict[str, str], row: dict | None) -> dict[str, str]:
    """A target's per-person values: placeholder -> the text of its mapped column
    (placeholders whose column is empty for it are left out; wire refuses to send them)."""
    row = row or {}
    return {
        placeholder: str(row[column])
        for placeholder, column in columns.items()
        if str(row.get(column) or "").strip()
    }


def plan(run_id: int, *, hand_over: bool = False) -> str:
    """Job body: create the run's deliveries and batches, chunk by chunk, within a time
    budget; continues itself (or the sweeper does) until the list is exhausted.

    With `hand_over` (the queued plan job), once a chunk leaves the run sending with a
    send job running or queued, and the list goes on, the job queues itself again and
    ends: the send jobs come first, and the first of them plans the rest beside its
    calls (`Planner`). The plan job queued again finishes what they leave, if anything."""
    deadline = time.monotonic() + settings.PUSH_JOB_SECONDS

    def stop(step: _Step) -> str | None:
        if hand_over and step.sending and step.full and queueing.send_job_busy(run_id):
            return "sending; the send jobs plan the rest"
        return "continued" if time.monotonic() > deadline else None

    outcome = _plan_holding_slot(run_id, stop)
    if outcome == "planned":
        sweeper.close_run_if_done(run_id)
    return outcome


class Planner(threading.Thread):
    """The rest of a run's planning, in a thread of a send job (see `plan`).

    It holds the run's plan slot, so it never plans beside a plan job or another send
    job's planner; without the slot it does nothing. It stops after the chunk in hand
    when told to (the send job is ending) or at `deadline`, and then queues the plan job
    for what is left. Chunks are the plan job's own transactions, so what it planned
    stays planned whenever it stops, and a crash re-plans nothing twice."""

    def __init__(self, run_id: int, deadline: float) -> None:
        super().__init__(name=f"run{run_id}-planner", daemon=True)
        self.run_id, self.deadline = run_id, deadline
        self.stopping = threading.Event()
        self.result = "not started"

    def run(self) -> None:
        try:
            self.result = _plan_holding_slot(
                self.run_id, self._stop_reason, held="planned elsewhere"
            )
        except Exception:  # noqa: BLE001 - the sweeper queues the plan job for the rest
            log.exception("run %s: planning beside the send job failed", self.run_id)
            self.result = "failed"
        finally:
            connections.close_all()  # this thread's own connection

    def _stop_reason(self, step: _Step) -> str | None:
        if self.stopping.is_set() or time.monotonic() > self.deadline:
            return "left to the plan job"
        return None

    def stop(self, refresh: Callable[[], None] = lambda: None) -> str:
        """Stop after the chunk in hand; returns what became of the planning. `refresh`
        is called every second meanwhile (the send job's own slot)."""
        self.stopping.set()
        while self.is_alive():
            self.join(timeout=1.0)
            refresh()
        return self.result


def _plan_holding_slot(
    run_id: int, stop: Callable[[_Step], str | None], *, held: str = "duplicate"
) -> str:
    """Plan chunk by chunk under the run's plan slot until the list is done ("planned")
    or `stop`, asked after each chunk, names a reason to stop: then the plan job is
    queued for the rest, once the slot is let go (so that it does not find the slot
    held). Returns `held` at once when another holds the slot."""
    with queueing.hold_slot(run_id, queueing.PLAN) as lease:
        if lease is None:
            return held
        while not (step := _plan_chunk(run_id)).done:
            lease.refresh()
            if reason := stop(step):
                break
        else:
            return "planned"
    queueing.enqueue(run_id, queueing.PLAN, force=True)
    return reason


@dataclasses.dataclass(frozen=True)
class _Step:
    done: bool  # planning is complete
    sending: bool = False  # the run is sending after this chunk
    full: bool = False  # the chunk was a whole one: the list may go on


def plan_chunk(run_id: int) -> bool:
    """Plan one chunk in one transaction. Returns True when planning is complete."""
    return _plan_chunk(run_id).done


def _plan_chunk(run_id: int) -> _Step:
    batch_size = calls.batch_size(_mode(run_id))
    chunk_size = max(batch_size, settings.PUSH_PLAN_CHUNK // batch_size * batch_size)
    now = timezone.now()
    with transaction.atomic():
        # lock order: campaign, then run (this chunk may move the campaign to sending)
        campaign_id = Run.objects.values_list("campaign_id", flat=True).get(pk=run_id)
        list(Campaign.objects.select_for_update().filter(pk=campaign_id).values_list("pk"))
        run = Run.objects.plan(run_id)  # send rounds go on meanwhile
        if run.planning_done:
            return _Step(done=True)
        refs = _next_refs(run, chunk_size)
        send_now = False
        if not refs:
            run.planning_done = True
            if run.status == Run.Status.PLANNING:
                run.status = Run.Status.SENDING
                send_now = True
            run.save(update_fields=["planning_done", "status"])
        else:
            _create_chunk(run, refs, batch_size, now)
            if run.status == Run.Status.PLANNING:
                # Send while the rest is planned: the first batches go out at once.
                Run.objects.filter(pk=run.pk).update(status=Run.Status.SENDING)
                send_now = True
        if send_now:
            Campaign.objects.filter(pk=run.campaign_id, status=Campaign.Status.QUEUED).update(
                status=Campaign.Status.SENDING
            )
        sending = send_now or run.status == Run.Status.SENDING
        if sending and (send_now or refs):
            # batches to send: a send job for each free slot (a busy slot is left alone),
            # so a send job that ended before this chunk does not leave it to the sweeper
            transaction.on_commit(lambda: queueing.kick(run_id, send=True))
        return _Step(done=not refs, sending=sending, full=len(refs) >= chunk_size)


def batches_of(items: list, size: int, cap: int = 10) -> list[list]:
    """Split `items` in order into groups of at most `size` (never more than `cap`: 10
    for PushTemplate, 100 for PushMultiple)."""
    size = max(1, min(size, cap))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _mode(run_id: int) -> str:
    run = Run.objects.select_related("campaign").get(pk=run_id)
    return calls.mode_of(run, run.campaign)


def recallable(campaign: Campaign):
    """Deliveries of the campaign's sending runs that went out and are not recalled yet
    (a recall run's own deliveries are not among them)."""
    # asked of the batches: a delivery's outcome is its batch's, settled or not; `sent_at`
    # is its own time finished once settled, its batch's before
    return (
        Delivery.objects.filter(run__campaign=campaign, batch__status=Batch.Status.SENT)
        .exclude(run__kind=Run.Kind.RECALL)
        .exclude(recalls__batch__status=Batch.Status.SENT)
        .alias(sent_at=Coalesce("finished_at", "batch__finished_at"))
    )


def recall_cutoff(moment):
    """Deliveries finished before this cannot be recalled any more (RECALL_DAYS)."""
    return moment - timedelta(days=settings.RECALL_DAYS)


# A ref: (row id, target id, per-person values or None, recalled delivery id or None).
Ref = tuple[int, str, dict | None, int | None]


def _next_refs(run: Run, limit: int) -> list[Ref]:
    campaign = run.campaign
    if run.kind == Run.Kind.RECALL:
        rows = recallable(campaign).filter(
            sent_at__gte=recall_cutoff(run.created_at), pk__gt=run.planned_through
        )
        if run.recall_only_id:
            rows = rows.filter(pk=run.recall_only_id)
        found = rows.order_by("pk").values_list("pk", "target_id")[:limit]
        return [(pk, target, None, pk) for pk, target in found]
    if run.kind == Run.Kind.RETRY:
        if run.source_run.settled_at is None:
            settling.settle_run(run.source_run_id)  # read its failures from its own rows
        rows = Delivery.objects.filter(
            run_id=run.source_run_id, status=Delivery.Status.FAILED, pk__gt=run.planned_through
        )
        found = rows.order_by("pk").values_list("pk", "target_id", "values")[:limit]
        return [(pk, target, values, None) for pk, target, values in found]
    rows = Target.objects.filter(target_list_id=campaign.target_list_id, pk__gt=run.planned_through)
    if not campaign.per_person():
        found = rows.order_by("pk").values_list("pk", "target_id")[:limit]
        return [(pk, target, None, None) for pk, target in found]
    columns = campaign.value_columns
    found = rows.order_by("pk").values_list("pk", "target_id", "values")[:limit]
    return [(pk, target, own_values(columns, values), None) for pk, target, values in found]


def _create_chunk(run: Run, refs: list[tuple[int, str]], batch_size: int, now) -> None:
    cancelled = run.status == Run.Status.CANCELLED
    batch_status = Batch.Status.CANCELLED if cancelled else Batch.Status.PENDING
    delivery_status = Delivery.Status.CANCELLED if cancelled else Delivery.Status.PENDING
    groups = batches_of(refs, batch_size, cap=batch_size)
    first_seq = run.batch_count

    # A batch takes the model's default for every column set neither here nor per row;
    # the new batch ids are read back by (run, seq), which is unique.
    given = {
        "run_id": run.pk,
        "campaign_id": run.campaign_id,
        "status": batch_status,
        "created_at": now,
        "finished_at": now if cancelled else None,
    }
    fields = [
        f
        for f in Batch._meta.concrete_fields
        if not f.primary_key and f.attname not in ("seq", "target_count")
    ]
    constants = tuple(
        f.get_db_prep_save(given.get(f.attname, f.get_default()), connection) for f in fields
    )
    insert_rows(
        Batch,
        [f.column for f in fields] + ["seq", "target_count"],
        [(*constants, first_seq + n, len(group)) for n, group in enumerate(groups)],
    )
    batches = list(
        Batch.objects.filter(run_id=run.pk, seq__gte=first_seq)
        .order_by("seq")
        .values_list("pk", flat=True)
    )
    finished = connection.ops.adapt_datetimefield_value(now) if cancelled else None
    as_json = Delivery._meta.get_field("values")
    insert_rows(
        Delivery,
        [
            "run_id",
            "batch_id",
            "target_id",
            "msg_key",
            "status",
            "result_code",
            "finished_at",
            "values",
            "recall_of_id",
        ],
        (
            (
                run.pk,
                batch_id,
                target_id,
                msg_key(run.campaign_id, run.number, ref),
                delivery_status,
                "",
                finished,
                None if values is None else as_json.get_db_prep_save(values, connection),
                recall_of,
            )
            for batch_id, group in zip(batches, groups, strict=True)
            for ref, target_id, values, recall_of in group
        ),
    )
    # the history's date bounds (`idbounds`): one INSERT numbers the chunk's deliveries
    # in order, so its first batch holds the lowest id and its last the highest
    ids = Delivery.objects.values_list("id", flat=True)
    low = ids.filter(batch_id=batches[0]).order_by("id").first()
    high = ids.filter(batch_id=batches[-1]).order_by("-id").first()
    idbounds.record(idbounds.PLANNED, now, now, low, high)
    if cancelled:
        idbounds.record(idbounds.FINISHED, now, now, low, high)
    count = len(refs)
    Run.objects.filter(pk=run.pk).update(
        planned_through=refs[-1][0],
        batch_count=F("batch_count") + len(batches),
        total=F("total") + count,
        **({"cancelled": F("cancelled") + count} if cancelled else {}),
    )
