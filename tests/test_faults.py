"""Fault drills with real processes (DESIGN §4, §8): `manage.py rqworker push`
subprocesses on the test database and a real Redis, the sandbox over loopback HTTP, and
the test process as the sweeper. Each drill breaks something mid-run, waits for the
pipeline to heal, and ends with the shared invariant check plus its own assertions."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import redis
from django.db import transaction

from campaigns import lifecycle, sweeper
from campaigns.models import Attempt, AuditEvent, Batch, Campaign, Delivery, Run
from pushconsole import embedded_redis
from tests.fault_helpers import (
    CONCURRENCY,
    FAST_ENV,
    HELD_PER_JOB,
    LEASE_SECONDS,
    SWEEP_INTERVAL,
    Fleet,
    batch_of_call,
    claimed_by,
    failed_jobs,
    kill_tree,
    push_calls,
    run_finished,
    sent_count,
    settle,
)
from tests.pipeline_helpers import check_invariants, make_campaign, make_list

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_timings(settings):
    """The test process (launcher and sweeper) uses the workers' short timings too."""
    for name, value in FAST_ENV.items():
        setattr(settings, name, float(value) if "BACKOFF" in name else int(value))


@pytest.fixture
def fleet(transactional_db, redis_conn, redis_url, tmp_path):
    # Depends on transactional_db so that every subprocess is dead before the database
    # is flushed; redis_conn empties Redis before and after.
    fleet = Fleet(redis_url, tmp_path)
    yield fleet
    fleet.stop_all()


def finish(fleet: Fleet, run: Run, timeout: float = 60, **kw) -> Run:
    fleet.wait_until(run_finished(run), timeout, f"run {run.pk} to finish", **kw)
    run.refresh_from_db()
    return run


def same_keys_resent(records: list[dict], original: dict) -> list[dict]:
    """Later accepted calls that carried exactly the targets and msgKeys of `original`."""
    return [
        r
        for r in push_calls(records)
        if r["accepted"] and r["ts"] > original["ts"] and r["targets"] == original["targets"]
    ]


# -- killed processes -------------------------------------------------------------------


def test_killed_work_horse_batch_is_reclaimed_and_resent_with_the_same_msgkeys(
    credential, template, sandbox, marketer, fleet
):
    sandbox.configure(hold_rate=1.0, hold_seconds=8)
    campaign = make_campaign(credential, template, make_list(100))
    worker = fleet.worker()
    run = lifecycle.launch(campaign, marketer)
    fleet.wait_until(lambda: push_calls(sandbox.records()), 30, "a held call", sweep=None)
    sandbox.configure(hold_rate=0.0)  # calls from now on are answered at once
    time.sleep(0.5)  # calls that raced the change have arrived, held or not
    held = [r for r in push_calls(sandbox.records()) if r["fault"] == "hold"]
    held_batches = {batch_of_call(r).pk for r in held}
    horses = fleet.horses(worker)
    assert len(horses) == 1

    def only_held_calls_open() -> bool:
        # Once the unheld calls are answered and recorded, the horse's claims are the
        # held calls plus claims kept ready for its callers, which were never called.
        claimed = set(claimed_by(run, horses))
        called = {batch_of_call(r).pk for r in push_calls(sandbox.records())}
        return held_batches <= claimed and not (claimed - held_batches) & called

    fleet.wait_until(only_held_calls_open, 5, "only the held calls to stay open", sweep=None)
    ready = set(claimed_by(run, horses)) - held_batches

    killed_at = time.monotonic()
    assert kill_tree(horses[0]) == horses
    run = finish(fleet, run)
    recovered_in = time.monotonic() - killed_at

    assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 100, 0)
    assert worker.poll() is None  # the worker itself survived and did the rest
    for record in held:
        batch = batch_of_call(record)
        assert (batch.status, batch.ambiguous, batch.attempts) == (Batch.Status.SENT, True, 2)
        first, second = Attempt.objects.filter(batch=batch).order_by("number")
        assert first.outcome == Attempt.Outcome.UNKNOWN  # the horse died before the answer
        assert second.outcome == Attempt.Outcome.SUCCESS
        resent = same_keys_resent(sandbox.records(), record)
        assert [r["request_id"] for r in resent] == [batch.request_id]
        assert batch.request_id != record["request_id"]
    calls_by_batch = [batch_of_call(r).pk for r in push_calls(sandbox.records())]
    for batch_id in ready:  # reclaimed as ambiguous (the horse died holding them); sent once
        batch = Batch.objects.get(pk=batch_id)
        assert (batch.status, batch.ambiguous) == (Batch.Status.SENT, True)
        assert calls_by_batch.count(batch_id) == 1
    summary = sandbox.summary()
    assert summary["msgkeys_accepted_more_than_once"] == 10 * len(held)
    assert summary["targets_with_multiple_msgkeys"] == 0
    assert recovered_in < LEASE_SECONDS + SWEEP_INTERVAL + 10
    check_invariants(campaign, sandbox.records())


def test_killed_worker_loses_nothing_and_recovers_within_a_lease(
    credential, template, sandbox, marketer, fleet, record_property
):
    sandbox.configure(latency_ms="100-200")
    campaign = make_campaign(credential, template, make_list(2000))
    workers = fleet.workers(2)
    run = lifecycle.launch(campaign, marketer)

    def victim_found() -> bool:
        if sent_count(run) < 600:  # ~30 %
            return False
        return any(claimed_by(run, fleet.horses(w)) for w in workers)

    fleet.wait_until(victim_found, 60, "30 % sent with a worker holding claims")
    victim = next(w for w in workers if claimed_by(run, fleet.horses(w)))
    survivor = next(w for w in workers if w is not victim)
    killed_at = time.monotonic()
    killed = fleet.kill(victim)
    orphaned = claimed_by(run, killed)
    assert orphaned, "the killed worker held no claim"

    def orphans_sent() -> bool:
        return not Batch.objects.filter(pk__in=orphaned).exclude(status=Batch.Status.SENT).exists()

    fleet.wait_until(orphans_sent, 30, "the killed worker's batches to be sent")
    recovery = time.monotonic() - killed_at
    record_property("recovery_seconds", round(recovery, 2))
    print(f"recovery of {len(orphaned)} orphaned batch(es) took {recovery:.2f}s")
    # The lease must run out, then the next sweep returns the batch; slack covers the
    # surviving worker's next free thread, one call and the database.
    assert recovery <= LEASE_SECONDS + SWEEP_INTERVAL + 3

    run = finish(fleet, run)
    assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 2000, 0)
    assert survivor.poll() is None
    assert set(
        Batch.objects.filter(pk__in=orphaned, ambiguous=True).values_list("pk", flat=True)
    ) == set(orphaned)
    summary = sandbox.summary()
    assert summary["targets_with_multiple_msgkeys"] == 0
    assert summary["distinct_msgkeys"] == 2000
    check_invariants(campaign, sandbox.records())


def test_crash_between_call_and_record_resends_the_batch_with_the_same_msgkeys(
    credential, template, sandbox, marketer, fleet, tmp_path
):
    sandbox.configure(latency_ms="10-30")
    marker = tmp_path / "after_call.fired"
    campaign = make_campaign(credential, template, make_list(200))
    crasher = fleet.worker(PUSH_FAULT_POINT=f"after_call:{marker}")
    run = lifecycle.launch(campaign, marketer)
    fleet.wait_until(marker.exists, 30, "the fault point to fire", sweep=None)
    fleet.worker()  # a second, normal worker
    run = finish(fleet, run)

    assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 200, 0)
    # The horse died (os._exit) leaving attempts without an answer; each such batch was
    # returned by the sweeper, flagged ambiguous and sent again.
    unknown = Attempt.objects.filter(batch__run=run, outcome=Attempt.Outcome.UNKNOWN)
    assert unknown.exists()
    crashed_pid = {int(a.worker.split(":")[1]) for a in unknown}
    assert len(crashed_pid) == 1
    for attempt in unknown:
        batch = attempt.batch
        assert (batch.status, batch.ambiguous) == (Batch.Status.SENT, True)
        assert batch.attempts > attempt.number
    # The call that fired the fault point had been accepted: it went out again with
    # exactly the same msgKeys, never with new ones.
    records = sandbox.records()
    crashed_keys = {
        key
        for attempt in unknown
        for key in json.loads(attempt.request_params["TargetMsgkey"]).values()
    }
    twice = [
        r
        for r in push_calls(records)
        if r["accepted"]
        and set(r["targets"].values()) <= crashed_keys
        and same_keys_resent(records, r)
    ]
    assert twice, "no crashed batch was accepted, then accepted again"
    summary = sandbox.summary()
    assert summary["msgkeys_accepted_more_than_once"] >= 1
    assert summary["targets_with_multiple_msgkeys"] == 0
    assert crasher.poll() is None  # RQ's parent process outlived its work-horse
    check_invariants(campaign, sandbox.records())


def test_zombie_call_returning_after_its_lease_was_reclaimed_is_fenced_out(
    credential, template, sandbox, marketer, fleet
):
    # Held longer than the lease, shorter than the client's read timeout (10 s): the
    # zombie's call succeeds, but only after another worker has sent the batch.
    sandbox.configure(hold_rate=1.0, hold_seconds=LEASE_SECONDS * 2)
    campaign = make_campaign(credential, template, make_list(100))
    fleet.worker(PUSH_CONCURRENCY="1")
    run = lifecycle.launch(campaign, marketer)
    fleet.wait_until(lambda: push_calls(sandbox.records()), 30, "a held call", sweep=None)
    sandbox.configure(hold_rate=0.0)
    [zombie_call] = push_calls(sandbox.records())
    batch = batch_of_call(zombie_call)
    fleet.worker()  # the winner

    def resent() -> bool:
        return Batch.objects.filter(pk=batch.pk, status=Batch.Status.SENT).exists()

    fleet.wait_until(resent, 30, "another worker to send the reclaimed batch")
    zombie = Attempt.objects.get(batch=batch, number=1)
    assert zombie.outcome == Attempt.Outcome.UNKNOWN, "the zombie answered within its lease"
    fleet.wait_until(
        lambda: Attempt.objects.get(pk=zombie.pk).outcome != Attempt.Outcome.UNKNOWN,
        LEASE_SECONDS * 3,
        "the zombie's call to return",
    )
    run = finish(fleet, run)

    batch.refresh_from_db()
    zombie.refresh_from_db()
    winner = Attempt.objects.get(batch=batch, number=2)
    # The zombie logged its own answer on its own attempt row, and nothing else.
    assert (zombie.outcome, zombie.request_id) == (
        Attempt.Outcome.SUCCESS,
        zombie_call["request_id"],
    )
    assert winner.outcome == Attempt.Outcome.SUCCESS
    assert winner.lease_token == zombie.lease_token + 1
    assert (batch.status, batch.request_id, batch.ambiguous) == (
        Batch.Status.SENT,
        winner.request_id,
        True,
    )
    assert batch.request_id != zombie_call["request_id"]
    assert Delivery.objects.filter(batch=batch).in_state(Delivery.Status.SENT).count() == 10
    assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 100, 0)
    summary = sandbox.summary()
    assert summary["msgkeys_accepted_more_than_once"] == 10
    assert summary["targets_with_multiple_msgkeys"] == 0
    check_invariants(campaign, sandbox.records())


# -- concurrency and control --------------------------------------------------------------


def test_double_launch_from_two_processes_starts_one_run(
    credential, template, sandbox, marketer, fleet
):
    campaign = make_campaign(credential, template, make_list(100))
    launchers = [fleet.spawn(["launch_campaign", str(campaign.pk)], "launch") for _ in range(2)]
    codes = sorted(proc.wait(60) for proc in launchers)
    outputs = [proc.log_path.read_text() for proc in launchers]
    assert codes[0] == 0 and codes[1] != 0, outputs
    assert sum("already launched" in out for out in outputs) == 1, outputs
    assert sum("Launched campaign" in out for out in outputs) == 1, outputs
    assert Run.objects.filter(campaign=campaign).count() == 1
    assert AuditEvent.objects.filter(action="campaign.launch").count() == 1

    fleet.worker()
    run = finish(fleet, Run.objects.get(campaign=campaign))
    assert (run.status, run.sent) == (Run.Status.COMPLETED, 100)
    calls = push_calls(sandbox.records())
    assert len(calls) == 10 and sum(len(r["targets"]) for r in calls) == 100
    assert failed_jobs() == []  # no job crashed (e.g. a database deadlock)
    check_invariants(campaign, sandbox.records())


def test_cancel_mid_run_starts_no_new_call_and_cancels_the_rest(
    credential, template, sandbox, marketer, fleet
):
    # slow enough that the cancel lands mid-run (at 0-10 ms a PostgreSQL run sent the
    # last 70 % before the poll that saw 30 % could cancel)
    sandbox.configure(latency_ms="40-80")
    campaign = make_campaign(credential, template, make_list(2000))
    fleet.workers(2)
    run = lifecycle.launch(campaign, marketer)
    fleet.wait_until(lambda: sent_count(run) >= 600, 60, "30 % sent")
    lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
    cancelled_at = time.time()  # cancel() has committed
    run = finish(fleet, run, timeout=30)

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
    assert run.status == Run.Status.CANCELLED and run.finished_at is not None
    assert run.sent + run.cancelled == 2000 and run.cancelled > 0 and run.failed == 0
    assert not Delivery.objects.filter(run=run).in_state(Delivery.Status.PENDING).exists()
    # A batch was claimed at the cancel if its claiming attempt started before it and the
    # batch was finalised after it; only those may still call. A worker holds at most
    # HELD_PER_JOB claims: calls under way plus claims ready for its callers.
    claimed_at_cancel = 0
    for batch in Batch.objects.filter(run=run, attempts__gt=0):
        last = Attempt.objects.filter(batch=batch).order_by("-number").first()
        if last.started_at.timestamp() < cancelled_at < batch.finished_at.timestamp():
            claimed_at_cancel += 1
    late = [r for r in push_calls(sandbox.records()) if r["ts"] > cancelled_at]
    assert len(late) <= claimed_at_cancel <= 2 * HELD_PER_JOB
    assert len({batch_of_call(r).pk for r in late}) == len(late)  # no retry after cancel
    assert failed_jobs() == []  # no job crashed (e.g. a database deadlock)
    check_invariants(campaign, sandbox.records())


def test_cancel_committing_while_calls_fail_transiently_leaves_no_target_pending(
    credential, template, sandbox, marketer, fleet
):
    sandbox.configure(latency_ms="100-200")
    campaign = make_campaign(credential, template, make_list(3000))
    fleet.workers(2, PUSH_JOB_SECONDS="60")  # no hand-over gap while the cancel commits
    run = lifecycle.launch(campaign, marketer)
    fleet.wait_until(lambda: sent_count(run) >= 300, 60, "10 % sent")
    # From now on every call fails with a 5xx after a full second, so when the cancel
    # commits every sending thread is waiting on a call that will give its batch back.
    sandbox.configure(latency_ms=1000, error_5xx_rate=1.0)
    time.sleep(0.4)
    with transaction.atomic():
        lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
        # Still committing when those failures are recorded (a long list or a busy
        # database keeps a cancel's transaction open this long too).
        time.sleep(1.5)
    finished = settle(run_finished(run), 15)

    stranded = list(
        Batch.objects.filter(run=run, status__in=Batch.OPEN_STATUSES).values_list(
            "status", "result_code"
        )
    )
    # A batch given back after a 5xx just as the cancel committed stays pending in the
    # cancelled run: nothing claims it, nothing cancels it, the run never closes.
    assert not stranded, f"batches of the cancelled run left open (status, last code): {stranded}"
    assert finished
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.sent + run.cancelled == 3000 and run.failed == 0
    check_invariants(campaign, sandbox.records())


# -- faults at mPaaS ----------------------------------------------------------------------


def test_burst_of_5xx_is_retried_with_the_same_msgkeys(
    credential, template, sandbox, marketer, fleet
):
    sandbox.configure(latency_ms="5-15", error_5xx_rate=0.3, seed=11)
    campaign = make_campaign(credential, template, make_list(1000))
    fleet.workers(2)
    run = lifecycle.launch(campaign, marketer)
    fleet.wait_until(lambda: sent_count(run) >= 300, 60, "30 % sent through the 5xx burst")
    sandbox.configure(error_5xx_rate=0.0)
    run = finish(fleet, run)

    assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 1000, 0)
    records = sandbox.records()
    failed = [r for r in push_calls(records) if r["fault"] == "error_5xx"]
    assert len(failed) >= 10
    assert {r["http_status"] for r in failed} <= {500, 503}
    for record in failed:  # each retried batch went out again under the same msgKeys
        assert same_keys_resent(records, record)
    assert Batch.objects.filter(run=run, attempts__gt=1).exists()
    assert Attempt.objects.filter(batch__run=run, outcome=Attempt.Outcome.TRANSIENT).count() == (
        len(failed)
    )
    summary = sandbox.summary()
    assert summary["distinct_msgkeys"] == 1000
    assert summary["msgkeys_accepted_more_than_once"] == 0  # a 5xx accepted nothing
    assert failed_jobs() == []  # no job crashed (e.g. a database deadlock)
    check_invariants(campaign, records)


def test_qps_cap_throttling_8011_is_retried_until_accepted(
    credential, template, sandbox, marketer, fleet
):
    sandbox.configure(qps_cap=10)  # 8 sending threads ask for far more
    campaign = make_campaign(credential, template, make_list(300))
    fleet.workers(2)
    run = lifecycle.launch(campaign, marketer)
    run = finish(fleet, run)

    assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 300, 0)
    records = sandbox.records()
    throttled = [r for r in push_calls(records) if r["fault"] == "qps_cap"]
    assert len(throttled) >= 5
    assert {r["result_code"] for r in throttled} == {"8011"}
    for record in throttled:
        assert same_keys_resent(records, record)
    assert len([r for r in push_calls(records) if r["accepted"]]) == 30
    assert Batch.objects.filter(run=run, attempts__gt=1).exists()
    assert sandbox.summary()["targets_with_multiple_msgkeys"] == 0
    assert failed_jobs() == []  # no job crashed (e.g. a database deadlock)
    check_invariants(campaign, records)


def test_ambiguous_failures_are_resent_with_the_same_msgkeys(
    credential, template, sandbox, marketer, fleet
):
    sandbox.configure(latency_ms="5-15", ambiguous_rate=0.05, seed=7)
    campaign = make_campaign(credential, template, make_list(1000))
    fleet.workers(2)
    run = lifecycle.launch(campaign, marketer)
    run = finish(fleet, run)

    assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 1000, 0)
    records = sandbox.records()
    dropped = [r for r in push_calls(records) if r["fault"] == "ambiguous"]
    assert dropped
    for record in dropped:  # accepted, the answer lost, sent again under the same keys
        assert record["accepted"]
        assert same_keys_resent(records, record)
        assert batch_of_call(record).ambiguous
    assert Attempt.objects.filter(batch__run=run, outcome=Attempt.Outcome.AMBIGUOUS).count() == (
        len(dropped)
    )
    summary = sandbox.summary()
    # a batch may be dropped twice before it gets an answer
    assert summary["msgkeys_accepted_more_than_once"] == 10 * len(
        {batch_of_call(r).pk for r in dropped}
    )
    assert summary["targets_with_multiple_msgkeys"] == 0
    assert failed_jobs() == []  # no job crashed (e.g. a database deadlock)
    check_invariants(campaign, records)


def test_permanent_3022_pauses_the_campaign_with_no_calls_beyond_those_in_flight(
    credential, template, sandbox, marketer, fleet
):
    sandbox.configure(latency_ms="20-50", fail_code="3022")
    campaign = make_campaign(credential, template, make_list(1000))
    fleet.workers(2, PUSH_MAX_CONSECUTIVE_FAILURES="5")
    run = lifecycle.launch(campaign, marketer)

    def paused() -> bool:
        return Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.PAUSED).exists()

    fleet.wait_until(paused, 60, "the campaign to pause itself")
    paused_at = AuditEvent.objects.get(action="campaign.pause").created_at.timestamp()
    fleet.wait_until(
        lambda: not Batch.objects.filter(run=run, status=Batch.Status.CLAIMED).exists(),
        30,
        "the calls in flight to finish",
    )
    calls_then = len(push_calls(sandbox.records()))
    quiet = time.monotonic() + LEASE_SECONDS + 2 * SWEEP_INTERVAL  # sweeping, nothing sent
    fleet.wait_until(lambda: time.monotonic() > quiet, 30, "a quiet spell")

    campaign.refresh_from_db()
    run.refresh_from_db()
    assert "3022" in campaign.status_reason
    assert run.status == Run.Status.PAUSED
    calls = push_calls(sandbox.records())
    assert len(calls) == calls_then
    assert {r["result_code"] for r in calls} == {"3022"}
    late = [r for r in calls if r["ts"] > paused_at]
    assert len(late) <= 2 * CONCURRENCY  # only calls whose batch was already claimed
    assert len(calls) < 5 + 2 * 2 * CONCURRENCY
    counts = run.counts()
    assert counts.failed == 10 * len(calls) and counts.sent == 0
    assert counts.pending == 1000 - counts.failed
    assert failed_jobs() == []  # no job crashed (e.g. a database deadlock)
    check_invariants(campaign, sandbox.records())


def test_rate_limit_holds_across_two_workers(credential, template, sandbox, marketer, fleet):
    credential.rate_limit = 20
    credential.save()
    campaign = make_campaign(credential, template, make_list(1000))
    fleet.workers(2)
    run = lifecycle.launch(campaign, marketer)
    run = finish(fleet, run)

    assert (run.status, run.sent) == (Run.Status.COMPLETED, 1000)
    calls = push_calls(sandbox.records())
    assert len(calls) == 100
    span = calls[-1]["ts"] - calls[0]["ts"]
    assert span >= 4.0  # 100 calls at 20/s cannot take less than ~4 s
    assert failed_jobs() == []  # no job crashed (e.g. a database deadlock)
    check_invariants(campaign, sandbox.records(), rate_limit=20)


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any 1-second sliding window (half-open, [t, t + 1))."""
    times = sorted(times)
    peak, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def test_the_receiver_never_sees_more_than_the_limit_in_any_second(
    credential, template, sandbox, marketer, fleet
):
    """600 calls at 40/s from two worker processes, with the sandbox's latency spread so
    calls admitted together arrive apart: the sandbox's ledger (arrival times) never holds
    more than 40 calls in any sliding second."""
    credential.rate_limit = 40
    credential.save()
    sandbox.configure(latency_ms=(5, 60), seed=3)
    campaign = make_campaign(credential, template, make_list(6000))
    fleet.workers(2, PUSH_CONCURRENCY="16", PUSH_JOB_SECONDS="10")
    run = lifecycle.launch(campaign, marketer)
    run = finish(fleet, run, timeout=120)

    assert (run.status, run.sent) == (Run.Status.COMPLETED, 6000)
    calls = push_calls(sandbox.records())
    assert len(calls) >= 600
    peak = busiest_second([r["ts"] for r in calls])
    span = calls[-1]["ts"] - calls[0]["ts"]
    print(f"rate limit 40/s: {len(calls)} calls in {span:.1f} s, busiest second {peak}")
    assert peak <= 40
    assert failed_jobs() == []
    check_invariants(campaign, sandbox.records(), rate_limit=40)


# -- Redis lost ---------------------------------------------------------------------------


def test_redis_killed_and_restarted_empty_loses_nothing(
    credential, template, sandbox, marketer, fleet, settings
):
    workdir = Path(tempfile.mkdtemp(prefix="pc-faults-"))  # short: unix socket paths
    socket_path = workdir / "redis.sock"
    url = f"unix://{socket_path}?db=0"
    server = embedded_redis.start(socket_path)
    settings.REDIS_URL = url
    settings.RQ_QUEUES = {"push": {"URL": url, "DEFAULT_TIMEOUT": 3600}}
    fleet.redis_url = url
    outage_errors: list[Exception] = []

    def sweep_through_outage() -> None:
        try:
            sweeper.sweep()
        except redis.ConnectionError as exc:
            # sweep() asks Redis which jobs vanished; while Redis is down the next sweep
            # simply tries again (as a supervised `sweep --loop` would after a restart).
            outage_errors.append(exc)

    try:
        sandbox.configure(latency_ms="50-100")
        campaign = make_campaign(credential, template, make_list(2000))
        fleet.workers(2)
        run = lifecycle.launch(campaign, marketer)
        fleet.wait_until(lambda: sent_count(run) >= 600, 60, "30 % sent")

        server.kill()  # no shutdown save: everything in Redis is gone
        server.wait()
        (workdir / "redis.rdb").unlink(missing_ok=True)
        outage_ends = time.monotonic() + 2
        fleet.wait_until(
            lambda: time.monotonic() > outage_ends, 10, "the outage", sweep=sweep_through_outage
        )
        sent_during_outage = sent_count(run)
        server = embedded_redis.start(socket_path)
        assert server is not None  # a new, empty server
        # Workers exit when Redis vanishes (rqworker's ConnectionError): restart them,
        # which is what the process supervisor does in production.
        restarted: list[int] = []
        run = finish(
            fleet,
            run,
            sweep=sweep_through_outage,
            tick=lambda: restarted.append(fleet.replace_dead_workers()),
        )
        print(
            f"sent before restart {sent_during_outage}, workers restarted {sum(restarted)}, "
            f"sweeps failed during the outage {len(outage_errors)}"
        )
        assert (run.status, run.sent, run.failed) == (Run.Status.COMPLETED, 2000, 0)
        assert sent_during_outage < 2000
        summary = sandbox.summary()
        assert summary["distinct_msgkeys"] == 2000
        assert summary["targets_with_multiple_msgkeys"] == 0
        check_invariants(campaign, sandbox.records())
    finally:
        fleet.stop_all()
        embedded_redis.stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
