"""The send pipeline: launch, plan a run, claim a batch, call, record; the sweeper.

At-least-once, never a second msgKey (DESIGN §4, §8):

- Launch moves a draft to queued with one conditional UPDATE and creates run 1, so a
  double launch starts one run. It does O(1) work and queues planning after commit.
- Planning walks the target list by primary key in chunks, creating deliveries (each
  with its msgKey, fixed forever) and batches of at most 10 in one transaction per
  chunk together with the run's cursor and counters: a crash re-plans nothing twice.
- Sending: each send job has one database thread and PUSH_CONCURRENCY caller threads.
  In rounds of one transaction, the database thread records the answers that came back
  and claims batches for idle callers, with one conditional UPDATE that bumps each
  batch's lease token (the fence), writing the Attempt rows before any call. Every
  outcome write is conditional on that token, so a worker whose lease was taken over
  can never overwrite the newer claim. Retries happen here only: a transient or
  ambiguous failure releases the batch with a backoff (same msgKeys); a permanent one
  finalises it. Outcome counts go to the job's own RunTally row, so rounds of
  different jobs never wait on one shared row.
- The sweeper returns expired leases to the queue (flagged ambiguous: the call may have
  gone out), re-queues work whose job vanished, and closes finished runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import audit, dispatch, ratelimit, scheduling
from campaigns.conf import push_limits
from campaigns.models import (
    Attempt,
    Batch,
    Campaign,
    Delivery,
    Occurrence,
    Run,
    RunTally,
    ScheduledTask,
    Target,
)
from campaigns.mpaas import strategy, wire
from campaigns.mpaas.client import AMBIGUOUS, PERMANENT, TRANSIENT, PushClient, PushError, PushReply
from campaigns.mpaas.vocabulary import StrategyType

log = logging.getLogger(__name__)

RUN_FINAL_FOR_CAMPAIGN = {
    Run.Status.COMPLETED: Campaign.Status.COMPLETED,
    Run.Status.COMPLETED_WITH_ERRORS: Campaign.Status.COMPLETED_WITH_ERRORS,
    Run.Status.FAILED: Campaign.Status.FAILED,
}


class LaunchError(Exception):
    """The campaign cannot be launched; `errors` is keyed by field ("" = whole)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(" ".join(str(m) for messages in errors.values() for m in messages))


class StateError(Exception):
    """The action does not apply to the campaign in its current state."""


# -- launch and control ---------------------------------------------------------------


def launch_errors(campaign: Campaign) -> dict[str, list[str]]:
    """Every reason `campaign` cannot be launched now, keyed by field."""
    errors = strategy.validate(campaign.push_spec(), now=timezone.now(), limits=push_limits())
    if not campaign.credential.is_active:
        errors.setdefault("credential", []).append(_("This credential is deactivated."))
    if campaign.target_list.target_count == 0:
        errors.setdefault("target_list", []).append(_("The target list is empty."))
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
    now = timezone.now()
    with transaction.atomic():
        where = ""
        if campaign.strategy_type != StrategyType.IMMEDIATE:
            scheduling.lock_quota(campaign.credential)
            choice = scheduling.choose(campaign)
            refusal = scheduling.quota_error(choice)
            if refusal:
                raise LaunchError({"schedule_mode": [refusal]})
            where = choice.where
        console = where == scheduling.CONSOLE
        moved = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DRAFT).update(
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
                details={"schedule": where, "occurrences": len(occurrences)},
            )
            campaign.refresh_from_db()
            return None
        run = Run.objects.create(campaign=campaign, number=1, launched_by=user)
        audit.record(
            "campaign.launch",
            actor=user,
            obj=campaign,
            request=request,
            details={"run": run.number, "targets": campaign.target_list.target_count},
        )
        transaction.on_commit(lambda: dispatch.kick(run.pk, plan=True))
    campaign.refresh_from_db()
    return run


def latest_run(campaign: Campaign) -> Run | None:
    return campaign.runs.order_by("-number").first()


def pause(campaign: Campaign, user, *, reason: str = "", request=None) -> None:
    """No new claims once this commits; calls already in flight finish. A schedule kept
    in this console also stops dispatching occurrences until resumed."""
    pausable = [Campaign.Status.QUEUED, Campaign.Status.SENDING]
    if campaign.schedule_resolved == scheduling.CONSOLE:
        pausable.append(Campaign.Status.SCHEDULED)
    with transaction.atomic():
        moved = Campaign.objects.filter(pk=campaign.pk, status__in=pausable).update(
            status=Campaign.Status.PAUSED, status_reason=reason[:500]
        )
        if not moved:
            if campaign.status == Campaign.Status.SCHEDULED:
                raise StateError(_("mPaaS holds this schedule: cancel it instead."))
            raise StateError(_("Only a queued or sending campaign can be paused."))
        Run.objects.filter(
            campaign=campaign, status__in=[Run.Status.PLANNING, Run.Status.SENDING]
        ).update(status=Run.Status.PAUSED)
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
        moved = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.PAUSED).update(
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
                lambda run=run: dispatch.kick(run.pk, plan=not run.planning_done, send=True)
            )
    campaign.refresh_from_db()


def cancel(campaign: Campaign, user, *, request=None) -> dict[str, list[str]] | None:
    """Stop the campaign: pending targets end as cancelled; calls in flight finish; future
    occurrences are cancelled; mPaaS-side scheduled tasks are cancelled on mPaaS (the
    answer for each is recorded and returned)."""
    with transaction.atomic():
        moved = Campaign.objects.filter(
            pk=campaign.pk,
            status__in=[
                Campaign.Status.QUEUED,
                Campaign.Status.SENDING,
                Campaign.Status.PAUSED,
                Campaign.Status.SCHEDULED,
            ],
        ).update(status=Campaign.Status.CANCELLED, cancelled_by=user)
        if not moved:
            raise StateError(
                _("Only a queued, sending, scheduled or paused campaign can be cancelled.")
            )
        runs = list(
            Run.objects.filter(
                campaign=campaign,
                status__in=[Run.Status.PLANNING, Run.Status.SENDING, Run.Status.PAUSED],
            ).values_list("pk", flat=True)
        )
        Run.objects.filter(pk__in=runs).update(status=Run.Status.CANCELLED)
        cancelled = sum(_cancel_pending(run_id) for run_id in runs)
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
            transaction.on_commit(lambda run_id=run_id: dispatch.kick(run_id, plan=True))
            transaction.on_commit(lambda run_id=run_id: close_run_if_done(run_id))
    campaign.refresh_from_db()
    if campaign.tasks.filter(status=ScheduledTask.Status.PENDING).exists():
        return scheduling.cancel_tasks(campaign, user, request=request)
    return None


def _cancel_pending(run_id: int) -> int:
    """Inside a transaction: pending batches of the run and their targets → cancelled."""
    now = timezone.now()
    batch_ids = list(
        Batch.objects.filter(run_id=run_id, status=Batch.Status.PENDING).values_list(
            "pk", flat=True
        )
    )
    count = 0
    for start in range(0, len(batch_ids), 500):
        chunk = batch_ids[start : start + 500]
        Batch.objects.filter(pk__in=chunk, status=Batch.Status.PENDING).update(
            status=Batch.Status.CANCELLED, finished_at=now, lease_expires_at=None
        )
        count += Delivery.objects.filter(batch_id__in=chunk, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.CANCELLED, finished_at=now
        )
    if count:
        Run.objects.filter(pk=run_id).update(cancelled=F("cancelled") + count)
    return count


def retry_failed(campaign: Campaign, user, *, request=None) -> Run:
    """Start a new run holding only the targets whose final outcome was a failure, with
    new msgKeys."""
    source = latest_run(campaign)
    if source is None or source.finished_at is None or source.failed == 0:
        raise StateError(_("Only a finished run with failed targets can be retried."))
    with transaction.atomic():
        moved = Campaign.objects.filter(
            pk=campaign.pk,
            status__in=[
                Campaign.Status.COMPLETED_WITH_ERRORS,
                Campaign.Status.FAILED,
                Campaign.Status.CANCELLED,
            ],
        ).update(status=Campaign.Status.QUEUED, status_reason="", finished_at=None)
        if not moved:
            raise StateError(_("Only a finished campaign with failed targets can be retried."))
        run = Run.objects.create(
            campaign=campaign,
            number=source.number + 1,
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
        transaction.on_commit(lambda: dispatch.kick(run.pk, plan=True))
    campaign.refresh_from_db()
    return run


# -- planning -------------------------------------------------------------------------


def msg_key(campaign_id: int, run_number: int, ref: int) -> str:
    """Deterministic and unique per (campaign, run, target): `ref` is the target's row
    id (or, in a retry run, the failed delivery's row id)."""
    return f"pc{campaign_id}r{run_number}n{ref}"


def plan(run_id: int) -> str:
    """Job body: create the run's deliveries and batches, chunk by chunk, within a time
    budget; continues itself (or the sweeper does) until the list is exhausted."""
    with dispatch.hold_slot(run_id, "plan") as lease:
        if lease is None:
            return "duplicate"
        deadline = time.monotonic() + settings.PUSH_JOB_SECONDS
        while not _plan_chunk(run_id):
            lease.refresh()
            if time.monotonic() > deadline:
                dispatch.enqueue(run_id, "plan", force=True)
                return "continued"
    close_run_if_done(run_id)
    return "planned"


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


def _plan_chunk(run_id: int) -> bool:
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
            transaction.on_commit(lambda: dispatch.kick(run_id, send=True))
        return not refs


def batches_of(items: list, size: int) -> list[list]:
    """Split `items` in order into groups of at most `size` (never more than 10)."""
    size = max(1, min(size, 10))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _create_chunk(run: Run, refs: list[tuple[int, str]], batch_size: int, now) -> None:
    cancelled = run.status == Run.Status.CANCELLED
    batch_status = Batch.Status.CANCELLED if cancelled else Batch.Status.PENDING
    delivery_status = Delivery.Status.CANCELLED if cancelled else Delivery.Status.PENDING
    groups = batches_of(refs, batch_size)
    first_seq = run.batch_count
    quote = connection.ops.quote_name

    # Batches and deliveries are written as plain rows, with COPY on PostgreSQL and one
    # prepared INSERT (executemany) elsewhere. Measured with bench/bench_launch.py:
    # bulk_create of model instances made planning 1.5-2x slower on SQLite, and
    # executemany instead of COPY made it ~3x slower on PostgreSQL.
    def insert(model, columns: list[str], rows: list[tuple]) -> None:
        table = f"{quote(model._meta.db_table)} ({', '.join(map(quote, columns))})"
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608

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
    insert(
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
    insert(
        Delivery,
        ["run_id", "batch_id", "target_id", "msg_key", "status", "result_code", "finished_at"],
        [
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
        ],
    )
    count = len(refs)
    Run.objects.filter(pk=run.pk).update(
        planned_through=refs[-1][0],
        batch_count=F("batch_count") + len(batches),
        total=F("total") + count,
        **({"cancelled": F("cancelled") + count} if cancelled else {}),
    )


# -- sending --------------------------------------------------------------------------
#
# One send job per slot: its main thread does all the database work (claims and
# outcomes, a few batches per transaction), PUSH_CONCURRENCY caller threads only make
# HTTP calls. A claim is handed to a caller only when one is idle, so nothing waits
# claimed in memory: after a pause or cancel commits, the only calls still made are
# those whose batch a caller already held.


@dataclass
class _Claim:
    batch_id: int
    token: int
    attempt_no: int
    target_count: int
    params: dict[str, str]
    attempt_id: int
    lease_until: float = field(  # time.monotonic() when the lease in the database ends
        default_factory=lambda: time.monotonic() + settings.PUSH_LEASE_SECONDS
    )


@dataclass
class _RunContext:
    run_id: int
    campaign_id: int
    spec: strategy.PushSpec
    credential_id: int
    app_id: str
    client: PushClient
    limiter: ratelimit.RateLimiter
    worker: str
    slot: int = 0  # the send slot's index, which is also the job's RunTally shard
    stats: dict[str, int] = field(default_factory=lambda: {"sent": 0, "failed": 0, "retry": 0})

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] += n


def send(run_id: int, slot: str) -> str:
    """Job body: claim and send batches of the run with PUSH_CONCURRENCY calls in flight
    for up to PUSH_JOB_SECONDS, then hand over to a fresh job (so other runs and the
    sweeper get their turn on the queue)."""
    with dispatch.hold_slot(run_id, slot) as lease:
        if lease is None:
            return "duplicate"
        run = Run.objects.select_related(
            "campaign__credential", "campaign__template", "campaign__target_list"
        ).get(pk=run_id)
        if run.status != Run.Status.SENDING:
            return f"run is {run.status}"
        campaign = run.campaign
        credential = campaign.credential
        slots = dispatch.send_slots()
        ctx = _RunContext(
            run_id=run_id,
            campaign_id=campaign.pk,
            spec=spec_for(campaign),
            credential_id=credential.pk,
            app_id=credential.app_id,
            client=PushClient(credential),
            limiter=ratelimit.for_credential(
                dispatch.connection(), credential.pk, credential.rate_limit
            ),
            worker=f"{socket.gethostname()}:{os.getpid()}:{slot}",
            slot=slots.index(slot) if slot in slots else 0,
        )
        deadline = time.monotonic() + settings.PUSH_JOB_SECONDS
        sender = _Sender(ctx, max(1, settings.PUSH_CONCURRENCY), deadline, lease)
        sender.run()
        more = _has_pending(run_id)
        if more:
            dispatch.enqueue(run_id, slot, force=True)
    if not more:
        close_run_if_done(run_id)
    result = (
        f"sent {ctx.stats['sent']}, failed {ctx.stats['failed']}, retried {ctx.stats['retry']}; "
        + sender.summary()
    )
    log.info("run %s %s: %s", run_id, slot, result)
    return result


def spec_for(campaign: Campaign) -> strategy.PushSpec:
    """What a run sends: a schedule kept in this console is sent as immediate pushes at
    each occurrence; one kept on mPaaS carries its StrategyContent."""
    spec = campaign.push_spec()
    if campaign.schedule_resolved == scheduling.CONSOLE:
        spec = dataclasses.replace(spec, strategy_type=StrategyType.IMMEDIATE)
    return spec


def _has_pending(run_id: int) -> bool:
    return Batch.objects.filter(
        run_id=run_id, status=Batch.Status.PENDING, run__status=Run.Status.SENDING
    ).exists()


class _Sender:
    """The send loop of one job: this thread claims and records, `threads` callers call.

    As many claims again as there are callers are kept ready, so a caller whose call ends
    takes the next one at once instead of waiting for this thread's next round. When the
    run stops sending (pause, cancel), claims not yet called are released. After a
    permanent failure no caller starts a call until it is recorded, so a streak that
    pauses the campaign sends nothing beyond the calls already under way."""

    def __init__(
        self, ctx: _RunContext, threads: int, deadline: float, lease: dispatch.SlotLease
    ) -> None:
        self.ctx, self.threads, self.deadline, self.lease = ctx, threads, deadline, lease
        self.todo: queue.SimpleQueue[_Claim | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[tuple[_Claim, object]] = queue.SimpleQueue()
        self.capacity = 2 * threads  # calls in flight + claims ready
        self.go = threading.Event()  # clear while a permanent failure is unrecorded
        self.go.set()
        self.holds = 0
        self.holds_lock = threading.Lock()
        self.stopped = False  # the run stopped sending: callers call nothing more
        self.busy = 0  # claims handed out whose outcome is not back yet
        self.refreshed = 0.0
        # where this thread's time went, for the job's result line
        self.seconds = {"db": 0.0, "wait": 0.0}
        self.rounds = 0

    def summary(self) -> str:
        spent = ", ".join(f"{name} {secs:.1f} s" for name, secs in self.seconds.items())
        return f"{self.rounds} round(s); {spent}"

    def run(self) -> None:
        callers = [
            threading.Thread(target=self._call_loop, name=f"run{self.ctx.run_id}-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for caller in callers:
            caller.start()
        try:
            self._loop()
        finally:
            self.go.set()
            for _caller in callers:
                self.todo.put(None)
            for caller in callers:
                caller.join()
            self._record(self._drain(block=False))  # outcomes of calls that finished

    def _loop(self) -> None:
        sending, block = True, False
        while True:
            outcomes = self._drain(block=block)
            block = True  # from now on, wait for an answer unless there is work to hand out
            room = self.capacity - self.busy
            want = room if sending and time.monotonic() < self.deadline else 0
            if outcomes or want:
                self.rounds += 1
                started = time.monotonic()
                claims = _round(self.ctx, outcomes, want)
                self.seconds["db"] += time.monotonic() - started
                self._unhold(outcomes)
                if claims is None:
                    sending = False  # paused, cancelled or finished: no new claims
                    self.stopped = True
                    self._release_ready()
                    self.go.set()
                    continue
                for claim in claims:
                    self.todo.put(claim)
                self.busy += len(claims)
                if want and not self.busy:
                    wait = _seconds_until_next_due(self.ctx.run_id)
                    if wait is None or wait > self.deadline - time.monotonic():
                        return
                    time.sleep(min(max(wait, 0.05), 1.0))
            elif not self.busy:
                return
            elif time.monotonic() > self.deadline + settings.PUSH_LEASE_SECONDS:
                # a caller never came back; its claim's lease has expired by now
                raise RuntimeError(f"{self.busy} call(s) did not return in time")
            now = time.monotonic()
            if now - self.refreshed > 1.0:
                self.lease.refresh()
                self.refreshed = now

    def _release_ready(self) -> None:
        ready = []
        while True:
            try:
                claim = self.todo.get_nowait()
            except queue.Empty:
                break
            if claim is not None:
                ready.append(claim)
        if ready:
            self.busy -= len(ready)
            _release_unsent(self.ctx, ready)

    def _drain(self, *, block: bool) -> list[tuple[_Claim, object]]:
        """Outcomes that are back: wait for the first one if `block` and any is due."""
        out = []
        if block and self.busy:
            started = time.monotonic()
            try:
                out.append(self.done.get(timeout=1.0))
            except queue.Empty:
                return out
            finally:
                self.seconds["wait"] += time.monotonic() - started
        while True:
            try:
                out.append(self.done.get_nowait())
            except queue.Empty:
                break
        self.busy -= len(out)
        return out

    def _record(self, outcomes: list[tuple[_Claim, object]]) -> None:
        if outcomes:
            _round(self.ctx, outcomes, 0)

    def _call_loop(self) -> None:
        while (claim := self.todo.get()) is not None:
            self.go.wait()
            if self.stopped:
                self.done.put((claim, NOT_CALLED))
                continue
            outcome = _call(self.ctx, claim)
            if _permanent(outcome):
                with self.holds_lock:  # no caller starts a call until it is recorded
                    self.holds += 1
                    self.go.clear()
            self.done.put((claim, outcome))

    def _unhold(self, recorded: list[tuple[_Claim, object]]) -> None:
        count = sum(1 for _claim, outcome in recorded if _permanent(outcome))
        if count:
            with self.holds_lock:
                self.holds -= count
                if not self.holds:
                    self.go.set()


NOT_CALLED = object()  # a caller's answer for a claim it held when the run stopped


def _permanent(outcome: object) -> bool:
    return isinstance(outcome, PushError) and outcome.kind == PERMANENT


def _call(ctx: _RunContext, claim: _Claim) -> object:
    """Make the claim's call; returns the reply, the PushError, or any other exception
    (never raises, so every claim handed to a caller comes back with an outcome)."""
    try:
        # The send slot is taken right before the request, with no database work in
        # between: the limiter bounds calls as they leave, which is what mPaaS counts.
        if not ctx.limiter.acquire(timeout=settings.PUSH_LEASE_SECONDS / 2):
            return PushError(
                TRANSIENT,
                "Console.RateLimitWait",
                _("No send slot under the credential's rate limit in time; the call was not made."),
            )
        if time.monotonic() > claim.lease_until - settings.PUSH_LEASE_SECONDS / 10:
            # A ready claim waited (for a caller, or a send slot) until its lease all but
            # ran out: the sweeper may already have handed the batch to another worker.
            return PushError(
                TRANSIENT,
                "Console.LeaseShort",
                _("The claim's lease ran short before the call could start; it was not made."),
            )
        reply = ctx.client.push_template(claim.params)
    except PushError as exc:
        return exc
    except Exception as exc:
        # e.g. Redis gone: the job fails, the lease expires, the sweeper re-queues
        log.exception("batch %s: the call path failed", claim.batch_id)
        return exc
    fault_point("after_call")
    return reply


def _seconds_until_next_due(run_id: int) -> float | None:
    """Seconds until the earliest pending batch of a sending run may be claimed; None
    when there is none (done, paused, cancelled, or all in flight elsewhere)."""
    row = (
        Batch.objects.filter(
            run_id=run_id, status=Batch.Status.PENDING, run__status=Run.Status.SENDING
        )
        .order_by(F("not_before").asc(nulls_first=True))
        .values_list("pk", "not_before")
        .first()
    )
    if row is None:
        return None
    not_before = row[1]
    return 0.0 if not_before is None else max(0.0, (not_before - timezone.now()).total_seconds())


def _lock_run(run_id: int) -> str | None:
    """Lock the run's row and return its status. Transactions that change a run's state
    take this lock first (campaign, then run, then batches), so they cannot deadlock, and
    a status read under it cannot go stale before the commit. (Send rounds take a shared
    lock instead: `_share_run`.)"""
    # No ordering (Run's default one joins the campaign, and FOR UPDATE would lock that
    # row too, out of order), and OF self.
    return (
        Run.objects.select_for_update(of=("self",))
        .filter(pk=run_id)
        .order_by()
        .values_list("status", flat=True)
        .first()
    )


def _claim(ctx: _RunContext) -> _Claim | None:
    """Claim the next due batch (tests drive claims by hand with it)."""
    claims = _round(ctx, [], 1)
    return claims[0] if claims else None


def _send_one(ctx: _RunContext, claim: _Claim) -> None:
    """Call and record one claim in this thread (tests drive claims by hand with it)."""
    _round(ctx, [(claim, _call(ctx, claim))], 0)


def _round(
    ctx: _RunContext, outcomes: list[tuple[_Claim, object]], limit: int
) -> list[_Claim] | None:
    """One round of a send job's database work: record the answers that came back and
    claim up to `limit` due batches, in one transaction (each failure first in its own:
    it may release, finalise or pause; claims a caller held uncalled when the run stopped
    are released). Returns the new claims, or None when the run is no longer sending."""
    unsent = [claim for claim, outcome in outcomes if outcome is NOT_CALLED]
    if unsent:
        _release_unsent(ctx, unsent)
    outcomes = [(claim, outcome) for claim, outcome in outcomes if outcome is not NOT_CALLED]
    for claim, outcome in outcomes:
        if isinstance(outcome, PushError):
            _record_failure(ctx, claim, outcome)
    replies = [(claim, reply) for claim, reply in outcomes if isinstance(reply, PushReply)]
    claims: list[_Claim] | None = []
    streak = 0
    if replies or limit:
        with transaction.atomic():
            status, streak = _share_run(ctx.run_id)
            if replies:
                _record_successes(ctx, replies)
            if status != Run.Status.SENDING:
                claims = None
            elif limit:
                claims = _claim_due(ctx, limit)
    if replies and streak:
        # A success ends a streak of permanent failures (not under the shared lock:
        # two holders upgrading it would deadlock).
        Run.objects.filter(pk=ctx.run_id, consecutive_failures__gt=0).update(consecutive_failures=0)
    bugs = [outcome for _c, outcome in outcomes if not isinstance(outcome, PushReply | PushError)]
    if bugs:
        raise bugs[0]  # a bug in the call path, logged by the caller; its lease expires
    return claims


def _release_unsent(ctx: _RunContext, claims: list[_Claim]) -> None:
    """Claims never called (the run stopped sending first) go back to pending as if they
    had never been made: attempts counter restored, the Attempt rows of calls that never
    happened removed. On a cancelled run they end as cancelled."""
    with transaction.atomic():
        status = _lock_run(ctx.run_id)
        for claim in claims:
            released = Batch.objects.filter(
                pk=claim.batch_id, status=Batch.Status.CLAIMED, lease_token=claim.token
            ).update(status=Batch.Status.PENDING, lease_expires_at=None, attempts=F("attempts") - 1)
            if released:
                Attempt.objects.filter(pk=claim.attempt_id).delete()
        if status == Run.Status.CANCELLED:
            _cancel_pending(ctx.run_id)


def _share_run(run_id: int) -> tuple[str, int]:
    """Inside a transaction: the run's status and failure streak under a shared lock on
    its row (PostgreSQL; SQLite has one writer at a time anyway). Send rounds do not
    exclude each other, but pause and cancel, which update the row, wait for rounds in
    progress and rounds wait for them, so no batch is claimed after a pause or cancel
    commits. A holder must never update the run row (two would deadlock upgrading)."""
    table = connection.ops.quote_name(Run._meta.db_table)
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status, consecutive_failures FROM {table} WHERE id = %s{lock}",  # noqa: S608
            [run_id],
        )
        status, streak = cursor.fetchone()
    return status, streak


def _claim_due(ctx: _RunContext, limit: int) -> list[_Claim]:
    """Inside a round's transaction: claim up to `limit` due batches. One conditional
    UPDATE bumps each batch's fence token, and every Attempt row is written before any
    call is made."""
    now = timezone.now()
    candidates = Batch.objects.filter(run_id=ctx.run_id, status=Batch.Status.PENDING).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    if connection.vendor == "postgresql":
        # rows another worker is claiming are skipped, and ours stay ours until commit
        candidates = candidates.select_for_update(skip_locked=True, of=("self",))
    rows = list(
        candidates.order_by("seq").values_list("pk", "lease_token", "attempts", "target_count")[
            :limit
        ]
    )
    if not rows:
        return []
    ids = [row[0] for row in rows]
    claimed = Batch.objects.filter(pk__in=ids, status=Batch.Status.PENDING).update(
        status=Batch.Status.CLAIMED,
        lease_token=F("lease_token") + 1,
        lease_expires_at=now + timedelta(seconds=settings.PUSH_LEASE_SECONDS),
        attempts=F("attempts") + 1,
        not_before=None,
    )
    if claimed != len(ids):  # cannot happen: the rows are locked (or SQLite's one writer)
        raise RuntimeError(f"claimed {claimed} of {len(ids)} locked batches")
    targets: dict[int, dict[str, str]] = {batch_id: {} for batch_id in ids}
    for batch_id, target_id, key in Delivery.objects.filter(batch_id__in=ids).values_list(
        "batch_id", "target_id", "msg_key"
    ):
        targets[batch_id][target_id] = key
    limits = push_limits()
    params = {
        batch_id: wire.template_params(ctx.spec, targets[batch_id], limits=limits)
        for batch_id in ids
    }
    attempts = Attempt.objects.bulk_create(
        Attempt(
            batch_id=batch_id,
            number=attempts + 1,
            lease_token=token + 1,
            worker=ctx.worker,
            started_at=now,
            request_params=params[batch_id],
        )
        for batch_id, token, attempts, _count in rows
    )
    return [
        _Claim(batch_id, token + 1, attempts + 1, count, params[batch_id], attempt.pk)
        for (batch_id, token, attempts, count), attempt in zip(rows, attempts, strict=True)
    ]


def _record_successes(ctx: _RunContext, replies: list[tuple[_Claim, PushReply]]) -> None:
    """Inside a round's transaction, record accepted calls (a fixed number of statements
    however many): each batch still held under its claim's token becomes sent with its
    targets; a batch whose claim was taken over (a zombie's late answer) keeps the newer
    claim's outcome, but the call's Attempt row is completed either way."""
    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        held = Batch.objects.filter(
            pk__in=[claim.batch_id for claim, _reply in replies], status=Batch.Status.CLAIMED
        )
        if connection.vendor == "postgresql":
            held = held.select_for_update(of=("self",))  # SQLite: one writer already
        tokens = dict(held.order_by("pk").values_list("pk", "lease_token"))
        current = [
            (claim, reply) for claim, reply in replies if tokens.get(claim.batch_id) == claim.token
        ]
        cursor.executemany(
            f"UPDATE {quote(Attempt._meta.db_table)} SET outcome = %s, latency_ms = %s, "  # noqa: S608
            "request_id = %s, http_status = %s, result_code = %s, result_message = %s, "
            "response_body = %s WHERE id = %s",
            [
                (
                    Attempt.Outcome.SUCCESS.value,
                    reply.latency_ms,
                    reply.request_id,
                    reply.http_status,
                    reply.result_code,
                    reply.result_message[:1000],
                    reply.body,
                    claim.attempt_id,
                )
                for claim, reply in replies
            ],
        )
        if current:
            cursor.executemany(
                f"UPDATE {quote(Batch._meta.db_table)} SET status = %s, request_id = %s, "  # noqa: S608
                "result_code = %s, result_message = %s, push_success = %s, "
                "push_result_msg = %s, push_result_data = %s, http_status = %s, "
                "latency_ms = %s, finished_at = %s, lease_expires_at = NULL "
                "WHERE id = %s AND status = %s AND lease_token = %s",
                [
                    (
                        Batch.Status.SENT.value,
                        reply.request_id,
                        reply.result_code,
                        reply.result_message[:1000],
                        True,
                        reply.result_msg[:1000],
                        reply.data or "",
                        reply.http_status,
                        reply.latency_ms,
                        stamp,
                        claim.batch_id,
                        Batch.Status.CLAIMED.value,
                        claim.token,
                    )
                    for claim, reply in current
                ],
            )
        by_code: dict[str, list[int]] = {}
        for claim, reply in current:
            by_code.setdefault(reply.result_code, []).append(claim.batch_id)
            if reply.data and ctx.spec.strategy_type != StrategyType.IMMEDIATE:
                ScheduledTask.objects.get_or_create(
                    app_id=ctx.app_id,
                    task_id=reply.data,
                    defaults={
                        "credential_id": ctx.credential_id,
                        "campaign_id": ctx.campaign_id,
                        "batch_id": claim.batch_id,
                    },
                )
        for code, batch_ids in by_code.items():
            Delivery.objects.filter(batch_id__in=batch_ids, status=Delivery.Status.PENDING).update(
                status=Delivery.Status.SENT, result_code=code, finished_at=now
            )
        if current:
            _tally(ctx, "sent", sum(claim.target_count for claim, _r in current))
    ctx.count("sent", len(current))


def backoff_seconds(attempt_no: int) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    ceiling = min(settings.PUSH_BACKOFF_MAX, settings.PUSH_BACKOFF_BASE * 2 ** (attempt_no - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def _tally(ctx: _RunContext, column: str, count: int) -> None:
    """Add `count` to this send job's tally row of the run (one statement, an upsert)."""
    assert column in ("sent", "failed", "cancelled")
    table = connection.ops.quote_name(RunTally._meta.db_table)
    values = {"sent": 0, "failed": 0, "cancelled": 0, column: count}
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (run_id, shard, sent, failed, cancelled) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, shard) "
            f"DO UPDATE SET {column} = {table}.{column} + excluded.{column}",
            [ctx.run_id, ctx.slot, values["sent"], values["failed"], values["cancelled"]],
        )


def _fold_tallies(run_id: int) -> None:
    """Inside a transaction holding the run's lock: move the tallies into the run."""
    totals = RunTally.objects.filter(run_id=run_id).aggregate(
        sent=Sum("sent"), failed=Sum("failed"), cancelled=Sum("cancelled")
    )
    if totals["sent"] is None:
        return
    Run.objects.filter(pk=run_id).update(
        sent=F("sent") + totals["sent"],
        failed=F("failed") + totals["failed"],
        cancelled=F("cancelled") + totals["cancelled"],
    )
    RunTally.objects.filter(run_id=run_id).delete()


def _record_failure(ctx: _RunContext, claim: _Claim, exc: PushError) -> None:
    now = timezone.now()
    final = exc.kind == PERMANENT or claim.attempt_no >= settings.PUSH_MAX_ATTEMPTS
    result = {
        "request_id": exc.request_id,
        "http_status": exc.http_status,
        "result_code": exc.code[:64],
        "result_message": exc.message[:1000],
    }
    pause_reason = ""
    with transaction.atomic():
        run_status = _lock_run(ctx.run_id)
        Attempt.objects.filter(pk=claim.attempt_id).update(
            outcome=exc.kind, latency_ms=exc.latency_ms, response_body=exc.body, **result
        )
        fenced = Batch.objects.filter(
            pk=claim.batch_id, status=Batch.Status.CLAIMED, lease_token=claim.token
        )
        extra = {"ambiguous": True} if exc.kind == AMBIGUOUS else {}
        if final or run_status == Run.Status.CANCELLED:
            status = Batch.Status.FAILED if final else Batch.Status.CANCELLED
            won = fenced.update(
                status=status,
                push_success=False,
                latency_ms=exc.latency_ms,
                finished_at=now,
                lease_expires_at=None,
                **result,
                **extra,
            )
            if not won:
                return
            delivery_status = Delivery.Status.FAILED if final else Delivery.Status.CANCELLED
            Delivery.objects.filter(batch_id=claim.batch_id, status=Delivery.Status.PENDING).update(
                status=delivery_status, result_code=exc.code[:64], finished_at=now
            )
            _tally(ctx, "failed" if final else "cancelled", claim.target_count)
            if exc.kind == PERMANENT:
                Run.objects.filter(pk=ctx.run_id).update(
                    consecutive_failures=F("consecutive_failures") + 1
                )
            ctx.count("failed")
            if exc.kind == PERMANENT:
                streak = (
                    Run.objects.filter(pk=ctx.run_id)
                    .values_list("consecutive_failures", flat=True)
                    .get()
                )
                if streak >= settings.PUSH_MAX_CONSECUTIVE_FAILURES:
                    pause_reason = _(
                        "Paused automatically after %(count)d permanent failures in a row; "
                        "the last was %(code)s: %(message)s"
                    ) % {"count": streak, "code": exc.code, "message": exc.message}
        else:
            won = fenced.update(
                status=Batch.Status.PENDING,
                lease_expires_at=None,
                not_before=now + timedelta(seconds=backoff_seconds(claim.attempt_no)),
                **result,
                **extra,
            )
            if not won:
                return
            ctx.count("retry")
    if pause_reason:
        campaign = Campaign.objects.get(pk=ctx.campaign_id)
        try:
            pause(campaign, None, reason=pause_reason)
        except StateError:
            log.info("campaign %s was already paused or cancelled", ctx.campaign_id)
        else:
            log.warning("campaign %s paused: %s", ctx.campaign_id, pause_reason)


def fault_point(name: str) -> None:
    """Test-only crash point, off unless PUSH_FAULT_POINT names it as `name:MARKER_FILE`.
    It fires once (the marker file records that it did) by killing the process without
    any cleanup, the way a power cut or the OOM killer would."""
    configured = settings.PUSH_FAULT_POINT
    if not configured:
        return
    point, _sep, marker = configured.partition(":")
    if point != name or not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    log.error("fault point %s: killing process %s", name, os.getpid())
    os._exit(70)


# -- closing and sweeping ---------------------------------------------------------------


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
        _lock_run(run_id)
        _fold_tallies(run_id)
        run.refresh_from_db()
        if run.status == Run.Status.CANCELLED:
            final = Run.Status.CANCELLED
            closed = Run.objects.filter(pk=run_id, finished_at__isnull=True).update(finished_at=now)
            campaign_status = Campaign.Status.CANCELLED
        else:
            if run.failed == 0:
                final = Run.Status.COMPLETED
            elif run.sent == 0:
                final = Run.Status.FAILED
            else:
                final = Run.Status.COMPLETED_WITH_ERRORS
            closed = Run.objects.filter(pk=run_id, status=Run.Status.SENDING).update(
                status=final, finished_at=now
            )
            campaign_status = RUN_FINAL_FOR_CAMPAIGN[final]
            campaign = run.campaign
            if campaign.schedule_resolved == scheduling.MPAAS and run.sent:
                campaign_status = Campaign.Status.SCHEDULED  # mPaaS sends at the set times
            elif campaign.schedule_resolved == scheduling.CONSOLE and scheduling.has_future(
                campaign
            ):
                campaign_status = Campaign.Status.SCHEDULED  # more occurrences to come
        if not closed:
            return None
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


@dataclass
class SweepReport:
    reclaimed: int = 0
    kicked: int = 0
    closed: int = 0

    def __str__(self) -> str:
        return (
            f"reclaimed {self.reclaimed} expired lease(s), re-queued {self.kicked} job(s), "
            f"closed {self.closed} run(s)"
        )


def sweep() -> SweepReport:
    """Return expired leases to the queue, re-queue work whose job vanished, close
    finished runs. Safe to run anywhere, any number of times at once."""
    report = SweepReport()
    now = timezone.now()
    expired = Batch.objects.filter(status=Batch.Status.CLAIMED, lease_expires_at__lt=now)
    for batch_id, run_id, token in expired.values_list("pk", "run_id", "lease_token")[:5000]:
        with transaction.atomic():
            _lock_run(run_id)
            # The last attempt's answer was never recorded: the call may have gone out.
            released = Batch.objects.filter(
                pk=batch_id, status=Batch.Status.CLAIMED, lease_token=token
            ).update(status=Batch.Status.PENDING, lease_expires_at=None, ambiguous=True)
            if released:
                if Run.objects.filter(pk=run_id, status=Run.Status.CANCELLED).exists():
                    _cancel_pending(run_id)
                report.reclaimed += 1
    conn = dispatch.connection()
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
                _lock_run(run_id)
                _cancel_pending(run_id)
        try:
            if not planning_done and not dispatch.slot_busy(conn, run_id, "plan"):
                report.kicked += dispatch.enqueue(run_id, "plan")
            if status == Run.Status.SENDING and _has_pending(run_id):
                for slot in dispatch.send_slots():
                    if not dispatch.slot_busy(conn, run_id, slot):
                        report.kicked += dispatch.enqueue(run_id, slot)
                continue
        except redis.RedisError as exc:
            # Redis is down: the database still holds the work; the next sweep re-queues it.
            log.warning("sweep could not reach Redis: %s", exc)
        if close_run_if_done(run_id):
            report.closed += 1
    close_old_connections()
    return report


def sweep_forever(interval: float, stop: threading.Event | None = None) -> None:
    """`manage.py sweep --loop`: sweep every `interval` seconds until stopped."""
    stop = stop or threading.Event()
    while not stop.is_set():
        log.info("sweep: %s", sweep())
        stop.wait(interval)
