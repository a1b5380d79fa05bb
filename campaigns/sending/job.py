"""The send job: hold a send slot of a run, run a Sender over it, hand over in time."""

from __future__ import annotations

import logging
import os
import socket
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils.translation import gettext as _

from campaigns import planning, queueing, ratelimit, sweeper
from campaigns.faults import fault_point
from campaigns.models import Run
from campaigns.mpaas.client import TRANSIENT, PushClient, PushError
from pushconsole import metrics

from . import calls
from .claims import Claim, Outcome
from .recorder import RunContext, RunLedger, has_pending
from .sender import CONNECTION_ERRORS, Sender

log = logging.getLogger(__name__)


def send(run_id: int, slot_name: str) -> str:
    """Job body: claim and send batches of the run with PUSH_CONCURRENCY calls in flight
    for up to PUSH_JOB_SECONDS, then hand over to a fresh job (so other runs and the
    sweeper get their turn on the queue). A database that stays away longer than a lease
    ends the job with a result line, not a failed job: the sweeper re-queues the run once
    the database is back, so an outage does not pile failed jobs up in the registry."""
    try:
        return _send(run_id, slot_name)
    except CONNECTION_ERRORS as exc:
        close_old_connections()
        first = str(exc).strip().splitlines()
        log.warning("run %s %s: database unavailable: %s", run_id, slot_name, first[:1])
        return "database unavailable; the sweeper re-queues the run"


def _send(run_id: int, slot_name: str) -> str:
    slot = queueing.Slot.parse(slot_name)
    threads = max(1, settings.PUSH_CONCURRENCY)
    with queueing.hold_slot(run_id, slot) as lease:
        if lease is None:
            return "duplicate"
        ctx = context_for(run_id, slot)
        if ctx is None:
            return "run is not sending"

        def refresh() -> None:  # every second or so while the sender runs
            lease.refresh()
            ctx.limiter.flush()  # calls ended since the last admission

        deadline = time.monotonic() + settings.PUSH_JOB_SECONDS
        sender = Sender(
            RunLedger(ctx),
            lambda claim: call(ctx, claim),
            threads=threads,
            ready=ready_claims(threads, ctx.rate_limit),
            deadline=deadline,
            grace=settings.PUSH_LEASE_SECONDS,
            refresh=refresh,
            patience=settings.PUSH_LEASE_SECONDS,
            name=f"run{run_id}-{slot.index}",
        )
        # The rest of the list is planned beside the calls (planning.plan, hand_over).
        planner = None
        if not ctx.planned:
            planner = planning.Planner(run_id, deadline)
            planner.start()
        try:
            sender.run()
        finally:
            ctx.limiter.flush()
            planner_result = planner.stop(refresh=lease.refresh) if planner else None
        more = has_pending(run_id)
        if more:
            queueing.enqueue(run_id, slot, force=True)
    if not more:
        sweeper.close_run_if_done(run_id)
    result = (
        f"sent {ctx.stats['sent']}, failed {ctx.stats['failed']}, retried {ctx.stats['retry']}; "
        + sender.summary()
        + (f"; planning: {planner_result}" if planner_result else "")
    )
    log.info("run %s %s: %s", run_id, slot, result)
    return result


def ready_claims(threads: int, rate_limit: float | None) -> int:
    """How many claims a send job keeps ready beyond its calls in flight:
    PUSH_READY_PER_CALLER per caller, so each round claims and records many calls at
    once (the database thread is the job's one serial part). Under a rate limit, no more
    than the limit sends in a quarter of a lease: a ready claim that waits for a send
    slot until its lease runs short is given back uncalled (`Console.LeaseShort`)."""
    ready = max(0, settings.PUSH_READY_PER_CALLER) * threads
    if rate_limit:
        ready = min(ready, max(1, int(rate_limit * settings.PUSH_LEASE_SECONDS / 4)))
    return ready


def context_for(run_id: int, slot: queueing.Slot) -> RunContext | None:
    """What a send job of `slot` needs to know of its run; None unless it is sending."""
    run = Run.objects.select_related(
        "campaign__credential", "campaign__template", "campaign__target_list"
    ).get(pk=run_id)
    if run.status != Run.Status.SENDING:
        return None
    campaign = run.campaign
    credential = campaign.credential
    return RunContext(
        run_id=run_id,
        campaign_id=campaign.pk,
        spec=planning.spec_for(campaign),
        credential_id=credential.pk,
        app_id=credential.app_id,
        client=PushClient(credential),
        rate_limit=credential.rate_limit,
        limiter=ratelimit.for_credential(
            queueing.connection(),
            credential.pk,
            credential.rate_limit,
            hold=settings.PUSH_CONNECT_TIMEOUT + settings.PUSH_READ_TIMEOUT + 5,
        ),
        worker=f"{socket.gethostname()}:{os.getpid()}:{slot.name}",
        shard=slot.index,
        mode=calls.mode_of(run, campaign),
        planned=run.planning_done,
    )


def call(ctx: RunContext, claim: Claim) -> Outcome:
    """Make the claim's call and say what became of it (never raises: every claim handed
    to a caller comes back with an outcome)."""
    try:
        # The send slot is taken right before the request, with no database work in
        # between, and held until the answer is back: the limiter counts the call from
        # admission to a window after its end, which bounds what mPaaS sees.
        with ctx.limiter.slot(timeout=settings.PUSH_LEASE_SECONDS / 2) as admitted:
            if not admitted:
                return Outcome(
                    claim,
                    error=PushError(
                        TRANSIENT,
                        "Console.RateLimitWait",
                        _(
                            "No send slot under the credential's rate limit in time; "
                            "the call was not made."
                        ),
                    ),
                )
            if time.monotonic() > claim.lease_until - settings.PUSH_LEASE_SECONDS / 10:
                # A ready claim waited (for a caller, or a send slot) until its lease all
                # but ran out: the sweeper may already have handed the batch to another
                # worker.
                return Outcome(
                    claim,
                    error=PushError(
                        TRANSIENT,
                        "Console.LeaseShort",
                        _(
                            "The claim's lease ran short before the call could start; "
                            "it was not made."
                        ),
                    ),
                )
            started = time.monotonic()
            try:
                reply = calls.make_call(ctx.mode, ctx.client, claim.params)
            except PushError as exc:
                metrics.count_call(exc.code, exc.kind, time.monotonic() - started)
                raise
            metrics.count_call(reply.result_code, "success", time.monotonic() - started)
    except PushError as exc:
        return Outcome(claim, error=exc)
    except Exception as exc:  # noqa: BLE001 - e.g. Redis gone: the lease expires, the sweeper re-queues
        log.exception("batch %s: the call path failed", claim.batch_id)
        return Outcome(claim, bug=exc)
    fault_point("after_call")
    return Outcome(claim, reply=reply)
