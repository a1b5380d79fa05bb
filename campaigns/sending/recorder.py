"""Every database write of sending: claim due batches, record outcomes, fence by token.

A send job's database work happens in rounds of one transaction (`RunLedger.round`):
record the answers that came back and claim up to N due batches, with one conditional
UPDATE that bumps each batch's lease token (the fence) and the Attempt rows written
before any call. Every outcome write is conditional on that token, so a worker whose
lease was taken over can never overwrite the newer claim. Retries are decided here only:
a transient or ambiguous failure releases the batch with a backoff (same msgKeys); a
permanent one finalises it. Outcome counts go to the job's own RunTally row, so rounds
of different jobs never wait on one shared row.

Lock order, everywhere: campaign, then run, then batches.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import audit, idbounds, queueing, ratelimit
from campaigns.models import Attempt, Batch, Campaign, Delivery, Run, RunTally, ScheduledTask
from campaigns.mpaas.client import (
    AMBIGUOUS,
    PERMANENT,
    UNREADABLE_ANSWER,
    PushClient,
    PushError,
    PushReply,
)
from campaigns.mpaas.strategy import PushSpec
from campaigns.mpaas.vocabulary import StrategyType
from pushconsole import metrics

from . import calls, statements
from .claims import Claim, Outcome

log = logging.getLogger(__name__)


PLANNING_WAIT = 0.1  # seconds a send job waits for the next planned chunk before looking again


@dataclass
class RunContext:
    """What a send job knows of its run: ids, the spec it sends, its client and limiter."""

    run_id: int
    campaign_id: int
    spec: PushSpec
    credential_id: int
    app_id: str
    client: PushClient
    limiter: ratelimit.RateLimiter
    worker: str
    shard: int = 0  # the send slot's index, which is also the job's RunTally shard
    mode: str = calls.TEMPLATE  # which action the run's calls make (calls.mode_of)
    rate_limit: float | None = None  # the credential's calls/s (None: no limit)
    planned: bool = True  # the run was wholly planned when the job began
    stats: dict[str, int] = field(default_factory=lambda: {"sent": 0, "failed": 0, "retry": 0})

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] += n


class RunLedger:
    """The database side of one send job (what `Sender` calls between calls)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def round(self, outcomes: list[Outcome], limit: int) -> list[Claim] | None:
        """Record the outcomes that came back and claim up to `limit` due batches, in
        one transaction (each failure first in its own: it may release, finalise or
        pause; claims a caller held uncalled are released). Returns the new claims, or
        None when the run is no longer sending."""
        ctx = self.ctx
        unsent = [o.claim for o in outcomes if not o.called]
        if unsent:
            self.release(unsent)
        for outcome in outcomes:
            if outcome.error is not None:
                record_failure(ctx, outcome.claim, outcome.error)
        replies = [(o.claim, o.reply) for o in outcomes if o.reply is not None]
        claims: list[Claim] | None = []
        streak = 0
        if replies or limit:
            with transaction.atomic():
                ask = claim_ask(ctx, timezone.now(), limit)
                claimed = None
                if replies:
                    status, streak, written, claimed = statements.share_and_record(
                        ctx.run_id,
                        ctx.shard,
                        *success_rows(replies),
                        {claim.batch_id: claim.target_count for claim, _reply in replies},
                        ask.now,
                        ask if limit else None,
                    )
                    record_successes(ctx, replies, written)
                else:
                    status, streak = Run.objects.share(ctx.run_id)
                if status != Run.Status.SENDING:
                    claims = None  # (a claim made with the answers was guarded: none)
                elif limit:
                    # the round's last statement: on PostgreSQL it carries the COMMIT
                    claims = claim_due(ctx, ask, claimed, last=True)
        if replies and streak:
            # A success ends a streak of permanent failures (after the round: a write
            # to the run row would wait for a planning chunk, which rounds pass).
            Run.objects.filter(pk=ctx.run_id, consecutive_failures__gt=0).update(
                consecutive_failures=0
            )
        bugs = [o.bug for o in outcomes if o.bug is not None]
        if bugs:
            raise bugs[0]  # a bug in the call path, logged by the caller; its lease expires
        return claims

    def release(self, claims: list[Claim]) -> None:
        """Claims never called (the run stopped sending first) go back to pending as if
        they had never been made: attempts counter restored, the Attempt rows of calls
        that never happened removed. On a cancelled run they end as cancelled."""
        with transaction.atomic():
            status = Run.objects.lock(self.ctx.run_id)
            for claim in claims:
                released = Batch.objects.filter(
                    pk=claim.batch_id, status=Batch.Status.CLAIMED, lease_token=claim.token
                ).update(
                    status=Batch.Status.PENDING, lease_expires_at=None, attempts=F("attempts") - 1
                )
                if released:
                    Attempt.objects.filter(pk=claim.attempt_id).delete()
            if status == Run.Status.CANCELLED:
                cancel_pending(self.ctx.run_id)

    def reconnect(self) -> None:
        """After a connection error: drop this thread's connection (the next query opens
        a fresh one)."""
        try:
            connection.close()
        except DatabaseError as exc:  # a dead connection may fail to close; it is gone
            log.debug("closing the broken connection: %s", exc)

    def seconds_until_next_due(self) -> float | None:
        """Seconds until the earliest pending batch of a sending run may be claimed;
        None when there is none (done, paused, cancelled, or all in flight elsewhere)."""
        row = (
            Batch.objects.filter(
                run_id=self.ctx.run_id, status=Batch.Status.PENDING, run__status=Run.Status.SENDING
            )
            .order_by(F("not_before").asc(nulls_first=True))
            .values_list("pk", "not_before")
            .first()
        )
        if row is None:
            # Nothing to claim yet while the rest of the list is being planned right now:
            # wait for the next chunk rather than end the job. With no planner at work
            # the job ends, and the sweeper queues the plan job.
            unplanned = Run.objects.filter(
                pk=self.ctx.run_id, status=Run.Status.SENDING, planning_done=False
            ).exists()
            if unplanned and queueing.planning_now(self.ctx.run_id):
                return PLANNING_WAIT
            return None
        not_before = row[1]
        if not_before is None:
            return 0.0
        return max(0.0, (not_before - timezone.now()).total_seconds())


def has_pending(run_id: int) -> bool:
    """Whether a sending run still has batches to claim."""
    return Batch.objects.filter(
        run_id=run_id, status=Batch.Status.PENDING, run__status=Run.Status.SENDING
    ).exists()


def cancel_pending(run_id: int) -> int:
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
        # the history's date bounds (`idbounds`): within the run's ids
        idbounds.record(idbounds.FINISHED, now, now, *idbounds.run_ids(run_id))
    return count


def claim_ask(ctx: RunContext, now, limit: int) -> statements.ClaimAsk:
    """A claim of up to `limit` due batches, with leases from `now`."""
    return statements.ClaimAsk(
        now,
        now + timedelta(seconds=settings.PUSH_LEASE_SECONDS),
        limit,
        with_targets=ctx.mode == calls.TEMPLATE,
    )


def claim_due(
    ctx: RunContext,
    ask: statements.ClaimAsk,
    claimed: statements.Claimed | None = None,
    last: bool = False,
) -> list[Claim]:
    """Inside a round's transaction: claim up to `ask.limit` due batches (unless the
    round already did, `claimed`: PostgreSQL makes it with the answers). One conditional
    UPDATE bumps each batch's fence token, and every Attempt row is written before any
    call is made. `last`: the transaction ends here (its COMMIT may go with the Attempt
    rows, `statements.insert_attempts`)."""
    now = ask.now
    with statements.cursor() as cursor:
        if claimed is not None:
            rows, targets = claimed
        elif ask.with_targets:
            rows, targets = statements.claim_with_targets(
                cursor, ctx.run_id, now, ask.lease_until, ask.limit
            )
        else:
            rows = statements.claim(cursor, ctx.run_id, now, ask.lease_until, ask.limit)
            targets = None
        if ask.with_targets:
            params = calls.template_params(ctx.spec, targets)
        else:
            params = calls.params_for(ctx.mode, ctx.spec, [row[0] for row in rows])
        if not rows:
            return []
        attempt_ids = statements.insert_attempts(
            cursor,
            [
                (batch_id, number, token, ctx.worker, now, params[batch_id])
                for batch_id, token, number, _count in rows
            ],
            last,
        )
    return [
        Claim(batch_id, token, number, count, params[batch_id], attempt_ids[batch_id])
        for batch_id, token, number, count in rows
    ]


def success_rows(replies: list[tuple[Claim, PushReply]]) -> tuple[list[tuple], list[tuple]]:
    """The accepted calls' Attempt rows and batch rows, as `statements` writes them."""
    attempts = [
        (
            claim.attempt_id,
            reply.latency_ms,
            reply.request_id,
            reply.http_status,
            reply.result_code,
            reply.result_message[:1000],
            reply.body,
        )
        for claim, reply in replies
    ]
    batches = [
        (
            claim.batch_id,
            claim.token,
            reply.request_id,
            reply.result_code,
            reply.result_message[:1000],
            reply.result_msg[:1000],
            reply.data or "",
            reply.http_status,
            reply.latency_ms,
        )
        for claim, reply in replies
    ]
    return attempts, batches


def record_successes(
    ctx: RunContext, replies: list[tuple[Claim, PushReply]], written: set[int]
) -> None:
    """Inside a round's transaction, after `statements.share_and_record` wrote the
    accepted calls (a fixed number of statements however many, and O(1) rows per call:
    the batch and its Attempt; its deliveries take the batch's outcome when settled, see
    `settling`): each batch still held under its claim's token became sent (`written`);
    a batch whose claim was taken over (a zombie's late answer) kept the newer claim's
    outcome, but the call's Attempt row was completed either way, and the targets of
    the batches written were added to the job's tally. Here: the scheduled task IDs."""
    current = [(claim, reply) for claim, reply in replies if claim.batch_id in written]
    for claim, reply in current:
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
    if current:  # already in the job's tally row (share_and_record)
        sent = sum(claim.target_count for claim, _r in current)
        transaction.on_commit(lambda: metrics.count_targets("sent", sent))
    ctx.count("sent", len(current))


def backoff_seconds(attempt_no: int) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    ceiling = min(settings.PUSH_BACKOFF_MAX, settings.PUSH_BACKOFF_BASE * 2 ** (attempt_no - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def tally(ctx: RunContext, column: str, count: int) -> None:
    """Add `count` to this send job's tally row of the run (one statement, an upsert)."""
    with statements.cursor() as cursor:
        statements.add_to_tally(cursor, ctx.run_id, ctx.shard, column, count)


def fold_tallies(run_id: int) -> None:
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


def record_failure(ctx: RunContext, claim: Claim, exc: PushError) -> None:
    """Record a failed call in its own transaction: final (permanent, or out of
    attempts) finalises the batch and its targets; otherwise the batch goes back to
    pending after a backoff, same msgKeys. A streak of permanent failures pauses."""
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
        run_status = Run.objects.lock(ctx.run_id)
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
            # its deliveries take the batch's outcome when settled (`settling`)
            column = "failed" if final else "cancelled"
            tally(ctx, column, claim.target_count)
            count = claim.target_count
            transaction.on_commit(lambda: metrics.count_targets(column, count))
            ctx.count("failed")
            if exc.kind == PERMANENT:
                Run.objects.filter(pk=ctx.run_id).update(
                    consecutive_failures=F("consecutive_failures") + 1
                )
                streak = (
                    Run.objects.filter(pk=ctx.run_id)
                    .values_list("consecutive_failures", flat=True)
                    .get()
                )
                # a recall's failures (too old, not found) never pause the campaign
                if streak >= settings.PUSH_MAX_CONSECUTIVE_FAILURES and ctx.mode != calls.RECALL:
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
    if exc.code == UNREADABLE_ANSWER:
        audit.record(
            "batch.unreadable_answer",
            details={
                "campaign": ctx.campaign_id,
                "run": ctx.run_id,
                "batch": claim.batch_id,
                "attempt": claim.attempt_no,
                "request_id": exc.request_id,
                "final": final,
            },
        )
    if pause_reason:
        _auto_pause(ctx.campaign_id, pause_reason)


def _auto_pause(campaign_id: int, reason: str) -> None:
    from campaigns import lifecycle  # lifecycle cancels through this module

    campaign = Campaign.objects.get(pk=campaign_id)
    try:
        lifecycle.pause(campaign, None, reason=reason)
    except lifecycle.StateError:
        log.info("campaign %s was already paused or cancelled", campaign_id)
    else:
        log.warning("campaign %s paused: %s", campaign_id, reason)
