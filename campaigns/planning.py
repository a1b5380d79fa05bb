"""Planning a run: its deliveries (each with a msgKey fixed forever) and batches of ≤ 10.

Planning walks the target list (or, for a retry, the source run's failed deliveries) by
primary key in chunks, creating deliveries and batches in one transaction per chunk
together with the run's cursor and counters: a crash re-plans nothing twice. Sending
starts after the first chunk. `first_call` shows what the first call of a launch will
carry, from the same code.
"""

from __future__ import annotations

import dataclasses
import time

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from campaigns import queueing, scheduling, sweeper
from campaigns.bulkrows import insert_rows
from campaigns.conf import push_limits
from campaigns.models import Batch, Campaign, Delivery, Run, Target
from campaigns.mpaas import wire
from campaigns.mpaas.strategy import PushSpec
from campaigns.mpaas.vocabulary import StrategyType


def msg_key(campaign_id: int, run_number: int, ref: int) -> str:
    """Deterministic and unique per (campaign, run, target): `ref` is the target's row
    id (or, in a retry run, the failed delivery's row id)."""
    return f"pc{campaign_id}r{run_number}n{ref}"


def spec_for(campaign: Campaign, *, where: str | None = None) -> PushSpec:
    """What a run sends: a schedule kept in this console is sent as immediate pushes at
    each occurrence; one kept on mPaaS carries its StrategyContent. `where` is where the
    schedule is kept (default: where launch put it, `schedule_resolved`)."""
    spec = campaign.push_spec()
    if (campaign.schedule_resolved if where is None else where) == scheduling.CONSOLE:
        spec = dataclasses.replace(spec, strategy_type=StrategyType.IMMEDIATE)
    return spec


def first_call(campaign: Campaign) -> dict[str, str] | None:
    """The exact business parameters of run 1's first call (secret-free), or None when
    the list is empty: the first batch as planning will make it, sent as `spec_for`
    says. Before launch the schedule's place is the one launch will choose."""
    limits = push_limits()
    refs = list(
        Target.objects.filter(target_list=campaign.target_list)
        .order_by("pk")
        .values_list("pk", "target_id")[: limits.max_targets]
    )
    if not refs:
        return None
    targets = {target: msg_key(campaign.pk, 1, ref) for ref, target in refs}
    where = campaign.schedule_resolved
    if not where and campaign.strategy_type != StrategyType.IMMEDIATE:
        where = scheduling.choose(campaign).where
    return wire.template_params(spec_for(campaign, where=where), targets, limits=limits)


def plan(run_id: int) -> str:
    """Job body: create the run's deliveries and batches, chunk by chunk, within a time
    budget; continues itself (or the sweeper does) until the list is exhausted."""
    with queueing.hold_slot(run_id, queueing.PLAN) as lease:
        if lease is None:
            return "duplicate"
        deadline = time.monotonic() + settings.PUSH_JOB_SECONDS
        while not plan_chunk(run_id):
            lease.refresh()
            if time.monotonic() > deadline:
                queueing.enqueue(run_id, queueing.PLAN, force=True)
                return "continued"
    sweeper.close_run_if_done(run_id)
    return "planned"


def plan_chunk(run_id: int) -> bool:
    """Plan one chunk in one transaction. Returns True when planning is complete."""
    batch_size = min(settings.PUSH_BATCH_SIZE, 10)
    chunk_size = max(batch_size, settings.PUSH_PLAN_CHUNK // batch_size * batch_size)
    now = timezone.now()
    with transaction.atomic():
        # lock order: campaign, then run (this chunk may move the campaign to sending)
        campaign_id = Run.objects.values_list("campaign_id", flat=True).get(pk=run_id)
        list(Campaign.objects.select_for_update().filter(pk=campaign_id).values_list("pk"))
        run = Run.objects.select_for_update(of=("self",)).select_related("campaign").get(pk=run_id)
        if run.planning_done:
            return True
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
            transaction.on_commit(lambda: queueing.kick(run_id, send=True))
        return not refs


def batches_of(items: list, size: int) -> list[list]:
    """Split `items` in order into groups of at most `size` (never more than 10)."""
    size = max(1, min(size, 10))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _next_refs(run: Run, limit: int) -> list[tuple[int, str]]:
    if run.kind == Run.Kind.RETRY:
        rows = Delivery.objects.filter(
            run_id=run.source_run_id, status=Delivery.Status.FAILED, pk__gt=run.planned_through
        )
    else:
        rows = Target.objects.filter(
            target_list_id=run.campaign.target_list_id, pk__gt=run.planned_through
        )
    return list(rows.order_by("pk").values_list("pk", "target_id")[:limit])


def _create_chunk(run: Run, refs: list[tuple[int, str]], batch_size: int, now) -> None:
    cancelled = run.status == Run.Status.CANCELLED
    batch_status = Batch.Status.CANCELLED if cancelled else Batch.Status.PENDING
    delivery_status = Delivery.Status.CANCELLED if cancelled else Delivery.Status.PENDING
    groups = batches_of(refs, batch_size)
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
    insert_rows(
        Delivery,
        ["run_id", "batch_id", "target_id", "msg_key", "status", "result_code", "finished_at"],
        (
            (
                run.pk,
                batch_id,
                target_id,
                msg_key(run.campaign_id, run.number, ref),
                delivery_status,
                "",
                finished,
            )
            for batch_id, group in zip(batches, groups, strict=True)
            for ref, target_id in group
        ),
    )
    count = len(refs)
    Run.objects.filter(pk=run.pk).update(
        planned_through=refs[-1][0],
        batch_count=F("batch_count") + len(batches),
        total=F("total") + count,
        **({"cancelled": F("cancelled") + count} if cancelled else {}),
    )
