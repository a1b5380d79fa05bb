"""The send pipeline in one process: launch, plan, send through the real queue (Redis),
real HTTP to the sandbox, every outcome recorded once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import redis
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from campaigns import lifecycle, planning, queueing, ratelimit, sweeper
from campaigns.models import Attempt, AuditEvent, Batch, Campaign, Delivery, Run
from campaigns.sending import job, recorder
from campaigns.sending.claims import Outcome
from campaigns.sending.recorder import RunLedger
from tests.pipeline_helpers import check_invariants, drain, make_campaign, make_list, quick_pipeline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_pipeline(settings, redis_conn):
    quick_pipeline(settings, PUSH_JOB_SECONDS=5, PUSH_PLAN_CHUNK=50)


def test_launch_sends_every_target_once_in_calls_of_at_most_ten(
    credential, template, target_list, sandbox, marketer
):
    campaign = make_campaign(credential, template, target_list)
    run = lifecycle.launch(campaign, marketer)
    assert campaign.status == Campaign.Status.QUEUED
    drain()
    campaign.refresh_from_db()
    run.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    assert (run.total, run.sent, run.failed) == (25, 25, 0)
    assert not run.tallies.exists()  # folded into the run when it closed
    n = run.counts()
    assert (n.total, n.sent, n.failed, n.pending, n.in_flight) == (25, 25, 0, 0, 0)
    assert sorted(Batch.objects.filter(run=run).values_list("target_count", flat=True)) == [
        5,
        10,
        10,
    ]
    calls = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert len(calls) == 3
    assert all(r["accepted"] for r in calls)
    assert {r["request_id"] for r in calls} == set(
        Batch.objects.filter(run=run).values_list("request_id", flat=True)
    )
    assert Delivery.objects.filter(run=run, status=Delivery.Status.SENT).count() == 25
    assert Attempt.objects.filter(batch__run=run, outcome=Attempt.Outcome.SUCCESS).count() == 3
    assert AuditEvent.objects.filter(action="campaign.launch", actor=marketer).count() == 1
    check_invariants(campaign, sandbox.records())


def test_launch_twice_starts_one_run(credential, template, target_list, sandbox, marketer):
    campaign = make_campaign(credential, template, target_list)
    lifecycle.launch(campaign, marketer)
    with pytest.raises(lifecycle.StateError, match="already launched"):
        lifecycle.launch(Campaign.objects.get(pk=campaign.pk), marketer)
    assert Run.objects.filter(campaign=campaign).count() == 1


def test_launch_refuses_an_invalid_campaign_and_changes_nothing(
    credential, template, target_list, sandbox, marketer
):
    campaign = make_campaign(credential, template, target_list, template_values={"name": "A"})
    with pytest.raises(lifecycle.LaunchError) as caught:
        lifecycle.launch(campaign, marketer)
    assert "#coupon#" in " ".join(caught.value.errors["template_values"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert not Run.objects.exists()


def test_transient_errors_retry_with_the_same_msgkeys(
    credential, template, sandbox, marketer, settings
):
    settings.PUSH_MAX_ATTEMPTS = 30
    sandbox.configure(error_5xx_rate=0.3, throttle_rate=0.1, seed=7)
    campaign = make_campaign(credential, template, make_list(200))
    run = lifecycle.launch(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert (run.sent, run.failed) == (200, 0)
    retried = Batch.objects.filter(run=run, attempts__gt=1)
    assert retried.exists()
    records = sandbox.records()
    failed_calls = [r for r in records if r["action"] == "PushTemplate" and not r["accepted"]]
    assert failed_calls
    # a retried target was offered under exactly one msgKey
    for record in failed_calls:
        for target, key in record["targets"].items():
            assert Delivery.objects.get(run=run, target_id=target).msg_key == key
    check_invariants(campaign, records)


def test_ambiguous_failures_retry_with_the_same_msgkeys_and_stay_flagged(
    credential, template, sandbox, marketer, settings
):
    settings.PUSH_MAX_ATTEMPTS = 30
    sandbox.configure(ambiguous_rate=0.3, seed=3)
    campaign = make_campaign(credential, template, make_list(100))
    run = lifecycle.launch(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert (run.sent, run.failed) == (100, 0)
    flagged = Batch.objects.filter(run=run, ambiguous=True)
    assert flagged.exists()
    assert all(b.status == Batch.Status.SENT for b in flagged)
    assert Attempt.objects.filter(batch__run=run, outcome=Attempt.Outcome.AMBIGUOUS).exists()
    summary = sandbox.summary()
    assert summary["msgkeys_accepted_more_than_once"] > 0  # resent under the same key
    check_invariants(campaign, sandbox.records())


def test_permanent_failures_pause_the_campaign_with_the_reason(
    credential, template, sandbox, marketer, settings
):
    settings.PUSH_MAX_CONSECUTIVE_FAILURES = 3
    settings.PUSH_CONCURRENCY = 1
    sandbox.configure(fail_code="3022")
    campaign = make_campaign(credential, template, make_list(200))
    run = lifecycle.launch(campaign, marketer)
    drain()
    campaign.refresh_from_db()
    run.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "3022" in campaign.status_reason
    assert run.status == Run.Status.PAUSED
    counts = run.counts()
    assert counts.failed == 30  # three calls of ten, then no more claims
    assert counts.pending == 170
    calls = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert len(calls) == 3
    check_invariants(campaign, sandbox.records())


def ledger_for(run):
    """The database side of a send job of `run`, driven by hand (claims one at a time)."""
    return RunLedger(job.context_for(run.pk, queueing.Slot("send", 0)))


def claim_one(ledger):
    claims = ledger.round([], 1)
    return claims[0] if claims else None


def send_one(ledger, claim):
    """Call and record one claim in this thread."""
    ledger.round([job.call(ledger.ctx, claim)], 0)


def test_a_round_claims_with_its_answers_only_while_the_run_is_sending(
    credential, template, sandbox, marketer
):
    """A round records the answers and claims the next batches in one transaction (on
    PostgreSQL in one trip, the claim guarded by the run's status under its key-share lock):
    the claims come with their Attempt rows and targets; after a pause commits, the
    answer is still recorded and nothing more is claimed."""
    campaign = make_campaign(credential, template, make_list(60))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    first = claim_one(ledger)
    claims = ledger.round([job.call(ledger.ctx, first)], 2)
    assert Batch.objects.get(pk=first.batch_id).status == Batch.Status.SENT
    assert len(claims) == 2
    for claim in claims:
        batch = Batch.objects.get(pk=claim.batch_id)
        assert (batch.status, batch.lease_token) == (Batch.Status.CLAIMED, claim.token)
        attempt = Attempt.objects.get(pk=claim.attempt_id)
        assert (attempt.batch_id, attempt.request_params) == (batch.pk, claim.params)
        keys = set(Delivery.objects.filter(batch=batch).values_list("msg_key", flat=True))
        assert len(keys) == 10 and all(key in str(claim.params) for key in keys)
    answered = job.call(ledger.ctx, claims[0])
    lifecycle.pause(Campaign.objects.get(pk=campaign.pk), marketer)
    assert ledger.round([answered], 5) is None
    statuses = list(Batch.objects.filter(run=run).order_by("seq").values_list("status", flat=True))
    assert statuses == [Batch.Status.SENT] * 2 + [Batch.Status.CLAIMED] + [Batch.Status.PENDING] * 3
    assert Attempt.objects.filter(batch__run=run).count() == 3


def test_a_rounds_commit_goes_with_its_attempt_rows_only_when_it_is_the_outermost(
    credential, template, sandbox, marketer, monkeypatch
):
    """On PostgreSQL the round's COMMIT travels with its Attempt rows (one trip less):
    the transaction has ended when the insert returns, and the commit hooks still run
    (the sent metric). Inside another transaction the round does not commit it: rolled
    back, its claims are gone."""
    from django.db import connection, transaction

    from campaigns.sending import recorder, statements

    campaign = make_campaign(credential, template, make_list(60))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    first = claim_one(ledger)
    seen, counted = [], []
    insert = statements.insert_attempts

    def watched(cur, rows, last=False):
        ids = insert(cur, rows, last)
        if connection.vendor == "postgresql":
            seen.append((last, connection.connection.info.transaction_status.name))
        return ids

    monkeypatch.setattr(statements, "insert_attempts", watched)
    monkeypatch.setattr(recorder.metrics, "count_targets", lambda *a: counted.append(a))
    claims = ledger.round([job.call(ledger.ctx, first)], 2)
    assert len(claims) == 2 and counted == [("sent", 10)]
    with pytest.raises(RuntimeError), transaction.atomic():
        assert len(ledger.round([], 3)) == 3
        raise RuntimeError("the outer transaction rolls back")
    statuses = list(Batch.objects.filter(run=run).order_by("seq").values_list("status", flat=True))
    assert statuses == [Batch.Status.SENT] + [Batch.Status.CLAIMED] * 2 + [Batch.Status.PENDING] * 3
    assert Attempt.objects.filter(batch__run=run).count() == 3
    if connection.vendor == "postgresql":
        assert seen == [(True, "IDLE"), (True, "INTRANS")]


def _hold_in_thread(hold, release):
    """Run `hold()` in a transaction on another connection and keep it open until
    `release` is set."""
    from django.db import connection, transaction

    started = threading.Event()

    def work():
        try:
            with transaction.atomic():
                hold()
                started.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(30)
    return thread


def _lock_timeout(ms: int | None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {ms or 0}")


def test_send_rounds_go_on_while_planning_holds_the_run_and_pause_waits_for_them(
    credential, template, sandbox, marketer
):
    """PostgreSQL row locks on the run: a planning chunk (`Run.objects.plan`) does not
    hold up a send round (`share`), but pause and cancel wait for a round in progress
    (they take `lock` first), so no batch is claimed after they commit."""
    from django.db import OperationalError, connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite has one writer at a time")
    campaign = make_campaign(credential, template, make_list(60))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    release = threading.Event()
    planner = _hold_in_thread(lambda: Run.objects.plan(run.pk), release)
    try:
        _lock_timeout(2000)
        claims = ledger.round([], 2)  # would time out if planning excluded rounds
        assert len(claims) == 2
    finally:
        _lock_timeout(None)
        release.set()
        planner.join()
    release = threading.Event()
    round_open = _hold_in_thread(lambda: Run.objects.share(run.pk), release)
    try:
        _lock_timeout(300)
        with pytest.raises(OperationalError, match="lock"):
            lifecycle.pause(Campaign.objects.get(pk=campaign.pk), marketer)
        with pytest.raises(OperationalError, match="lock"):
            lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
        assert Run.objects.get(pk=run.pk).status == Run.Status.SENDING
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENDING
    finally:
        _lock_timeout(None)
        release.set()
        round_open.join()
    lifecycle.pause(Campaign.objects.get(pk=campaign.pk), marketer)
    assert Run.objects.get(pk=run.pk).status == Run.Status.PAUSED
    assert ledger.round([], 2) is None


def test_pause_then_resume_never_resends_a_sent_target(credential, template, sandbox, marketer):
    campaign = make_campaign(credential, template, make_list(60))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    for _ in range(2):  # two calls go out before the pause
        send_one(ledger, claim_one(ledger))
    lifecycle.pause(Campaign.objects.get(pk=campaign.pk), marketer)
    assert claim_one(ledger) is None
    drain()
    run.refresh_from_db()
    assert run.status == Run.Status.PAUSED
    assert (run.counts().sent, run.counts().pending) == (20, 40)
    lifecycle.resume(Campaign.objects.get(pk=campaign.pk), marketer)
    drain()
    run.refresh_from_db()
    assert (run.status, run.sent) == (Run.Status.COMPLETED, 60)
    sweeper.sweep()
    drain()
    calls = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert len(calls) == 6
    assert sum(len(r["targets"]) for r in calls) == 60
    check_invariants(campaign, sandbox.records())


def test_cancel_ends_pending_targets_as_cancelled_with_no_calls(
    credential, template, sandbox, marketer
):
    campaign = make_campaign(credential, template, make_list(120))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
    drain()
    run.refresh_from_db()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
    assert run.status == Run.Status.CANCELLED
    assert run.finished_at is not None
    assert run.cancelled == 120
    assert [r for r in sandbox.records() if r["action"] == "PushTemplate"] == []
    assert AuditEvent.objects.filter(action="campaign.cancel").count() == 1
    check_invariants(campaign, sandbox.records())


def test_retry_failed_targets_starts_a_new_run_with_new_msgkeys(
    credential, template, sandbox, marketer, settings
):
    settings.PUSH_MAX_CONSECUTIVE_FAILURES = 1000
    sandbox.configure(fail_code="3023")
    campaign = make_campaign(credential, template, make_list(30))
    first = lifecycle.launch(campaign, marketer)
    drain()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.FAILED
    sandbox.configure(fail_code=None)
    second = lifecycle.retry_failed(campaign, marketer)
    drain()
    second.refresh_from_db()
    campaign.refresh_from_db()
    assert (second.kind, second.total, second.sent) == (Run.Kind.RETRY, 30, 30)
    assert campaign.status == Campaign.Status.COMPLETED
    old_keys = set(Delivery.objects.filter(run=first).values_list("msg_key", flat=True))
    new_keys = set(Delivery.objects.filter(run=second).values_list("msg_key", flat=True))
    assert len(new_keys) == 30 and not old_keys & new_keys
    assert AuditEvent.objects.filter(action="campaign.retry_failed").count() == 1
    with pytest.raises(lifecycle.StateError):
        lifecycle.retry_failed(campaign, marketer)
    check_invariants(campaign, sandbox.records())


def test_zombie_worker_cannot_overwrite_a_reclaimed_batch(
    credential, template, target_list, sandbox, marketer, settings
):
    campaign = make_campaign(credential, template, target_list)
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    zombie = claim_one(ledger)
    Batch.objects.filter(pk=zombie.batch_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert sweeper.sweep().reclaimed == 1
    fresh = claim_one(ledger)
    assert fresh.batch_id == zombie.batch_id and fresh.token == zombie.token + 1
    send_one(ledger, fresh)
    batch = Batch.objects.get(pk=fresh.batch_id)
    assert batch.status == Batch.Status.SENT and batch.ambiguous
    winner = batch.request_id
    sandbox.configure(fail_code="3022")
    send_one(ledger, zombie)  # the zombie finishes late, with a failure
    batch.refresh_from_db()
    assert (batch.status, batch.request_id) == (Batch.Status.SENT, winner)
    assert Delivery.objects.filter(batch=batch).in_state(Delivery.Status.SENT).count() == 10


def test_sweeper_rebuilds_the_queue_after_redis_loses_everything(
    credential, template, sandbox, marketer, redis_conn
):
    campaign = make_campaign(credential, template, make_list(80))
    run = lifecycle.launch(campaign, marketer)
    redis_conn.flushdb()  # Redis restarted empty: the planning job is gone
    assert drain() == 0
    report = sweeper.sweep()
    assert report.kicked >= 1
    drain()
    run.refresh_from_db()
    assert (run.status, run.sent) == (Run.Status.COMPLETED, 80)
    check_invariants(campaign, sandbox.records())


def test_campaign_status_prints_counters_and_outcomes(
    credential, template, target_list, sandbox, marketer, capsys
):
    campaign = make_campaign(credential, template, target_list)
    lifecycle.launch(campaign, marketer)
    call_command("campaign_status", campaign.pk)
    assert "pending 0, in flight 0, sent 0" in capsys.readouterr().out
    drain()
    call_command("campaign_status", campaign.pk)
    out = capsys.readouterr().out
    assert "Completed" in out
    assert "sent 25, failed 0" in out
    assert "OK (Accepted): 25 target(s) in 3 call(s)" in out


def test_launch_campaign_command_reports_rule_errors(credential, template, target_list, sandbox):
    campaign = make_campaign(credential, template, target_list, expired_seconds=5)
    with pytest.raises(CommandError, match="Expiry must be between"):
        call_command("launch_campaign", campaign.pk)
    with pytest.raises(CommandError, match="no campaign with ID 999999"):
        call_command("launch_campaign", 999999)


def test_a_call_in_flight_keeps_its_slot_until_a_window_after_it_ends(redis_conn):
    """A call reaches mPaaS between admission and its end, so it counts until a window
    after its end: a slow call admitted long ago still holds its slot."""
    limiter = ratelimit.RateLimiter(redis_conn, "test:inflight", 2, hold=30)
    assert limiter.try_acquire("a") == 0 and limiter.try_acquire("b") == 0
    time.sleep(1.2)  # a window later: both still in flight
    assert limiter.try_acquire("c") > 0
    limiter.finish("a")
    assert limiter.try_acquire("c") > 0  # "a" ended just now: it counts one more window
    time.sleep(1.1)
    assert limiter.try_acquire("c") == 0
    assert limiter.try_acquire("d") > 0  # "b" is still in flight


def test_a_slot_is_marked_finished_however_the_call_ends(redis_conn):
    limiter = ratelimit.RateLimiter(redis_conn, "test:slot", 1, hold=30)
    try:
        with limiter.slot(timeout=1) as admitted:
            assert admitted
            raise ValueError("the call failed")
    except ValueError:
        pass
    score = redis_conn.zrange("test:slot", 0, -1, withscores=True)[0][1]
    now_us = redis_conn.time()[0] * 1_000_000
    assert score > now_us + 20_000_000  # noted, not yet written: admission + 30 s
    limiter.flush()
    score = redis_conn.zrange("test:slot", 0, -1, withscores=True)[0][1]
    now_us = redis_conn.time()[0] * 1_000_000
    assert score <= now_us + 1_000_000  # ended now, not admission + 30 s


def test_the_next_admission_writes_the_ends_noted_before_it(redis_conn):
    """Ends cost no round trip of their own: the next try (any thread's) writes them."""
    limiter = ratelimit.RateLimiter(redis_conn, "test:lazy", 5, hold=30)
    for _n in range(3):
        with limiter.slot(timeout=1) as admitted:
            assert admitted
    scores = [s for _m, s in redis_conn.zrange("test:lazy", 0, -1, withscores=True)]
    now_us = redis_conn.time()[0] * 1_000_000
    # the first two ends were written by the second and third admissions; the third waits
    assert sum(1 for s in scores if s <= now_us + 1_000_000) == 2
    assert limiter.try_acquire("next") == 0
    scores = dict(redis_conn.zrange("test:lazy", 0, -1, withscores=True))
    assert sum(1 for s in scores.values() if s <= now_us + 1_000_000) == 3
    assert scores[b"next"] > now_us + 20_000_000  # in flight


def test_admissions_asked_at_once_share_script_calls_and_never_pass_the_limit(redis_conn):
    """Threads asking at the same moment are answered by a leader's shared script call
    (one round trip for several asks), admitted in turn while slots are free."""
    limiter = ratelimit.RateLimiter(redis_conn, "test:together", 5, hold=30)
    calls = []
    script = limiter._script

    def counted(*args, **kwargs):
        calls.append(kwargs["args"][3])  # asks answered by this call
        time.sleep(0.05)  # long enough for the other threads to queue behind it
        return script(*args, **kwargs)

    limiter._script = counted
    start = threading.Barrier(20)
    waits: list[float] = []

    def ask() -> None:
        start.wait()
        waits.append(limiter.try_acquire())

    threads = [threading.Thread(target=ask) for _n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(waits) == 20
    assert sum(1 for wait in waits if wait == 0) == 5
    assert all(wait > 0 for wait in waits if wait != 0)
    assert redis_conn.zcard("test:together") == 5
    assert sum(calls) == 20 and len(calls) < 20  # some calls answered several asks


def test_a_redis_error_reaches_every_ask_of_the_call(redis_conn):
    limiter = ratelimit.RateLimiter(redis_conn, "test:error", 5, hold=30)

    def broken(*args, **kwargs):
        raise redis.ConnectionError("gone")

    limiter._script = broken
    with pytest.raises(redis.ConnectionError):
        limiter.try_acquire("a")
    assert not limiter._leading  # the next ask leads again


def test_rate_limiter_never_admits_more_than_the_limit_in_any_window(redis_conn):
    limiter = ratelimit.RateLimiter(redis_conn, "test:rate", 5)
    admitted = []
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        if limiter.try_acquire() == 0:
            admitted.append(time.monotonic())
        else:
            time.sleep(0.01)
    assert 10 <= len(admitted) <= 15
    for i, moment in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t - moment < 1.0]
        assert len(in_window) <= 5


@given(
    st.lists(st.integers(min_value=0, max_value=10**9), unique=True, max_size=200),
    st.integers(min_value=1, max_value=50),
)
def test_batcher_never_makes_a_call_over_ten_or_repeats_a_target(refs, size):
    groups = planning.batches_of(refs, size)
    assert all(1 <= len(group) <= 10 for group in groups)
    flat = [item for group in groups for item in group]
    assert flat == refs  # every target once, in order


def test_planning_a_run_cancelled_before_planning_records_every_target_cancelled(
    credential, template, sandbox, marketer
):
    campaign = make_campaign(credential, template, make_list(45))
    run = lifecycle.launch(campaign, marketer)
    lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
    drain()  # the planning job still walks the list, recording each target as cancelled
    run.refresh_from_db()
    assert (run.status, run.total, run.cancelled, run.planning_done) == (
        Run.Status.CANCELLED,
        45,
        45,
        True,
    )
    delivery = Delivery.objects.filter(run=run).first()
    assert delivery.status == Delivery.Status.CANCELLED
    assert delivery.finished_at is not None and delivery.finished_at.tzinfo is not None
    assert abs((timezone.now() - delivery.finished_at).total_seconds()) < 120
    assert not [r for r in sandbox.records() if r["action"] == "PushTemplate"]


def test_planning_in_chunks_gives_each_target_one_delivery_in_order(
    credential, template, sandbox, marketer, settings
):
    settings.PUSH_PLAN_CHUNK = 30  # 97 targets: four chunks, the last one short
    target_list = make_list(97)
    campaign = make_campaign(credential, template, target_list)
    run = lifecycle.launch(campaign, marketer)
    while not planning.plan_chunk(run.pk):
        pass
    run.refresh_from_db()
    targets = list(target_list.targets.order_by("pk").values_list("pk", "target_id"))
    rows = list(
        Delivery.objects.filter(run=run)
        .order_by("batch__seq", "pk")
        .values_list("target_id", "msg_key", "batch__seq", "status")
    )
    assert [r[0] for r in rows] == [t for _pk, t in targets]  # every target once, in order
    assert [r[1] for r in rows] == [f"pc{campaign.pk}r1n{pk}" for pk, _t in targets]
    assert {r[3] for r in rows} == {Delivery.Status.PENDING}
    sizes = list(Batch.objects.filter(run=run).order_by("seq").values_list("seq", "target_count"))
    assert [seq for seq, _n in sizes] == list(range(10))  # consecutive across chunks
    assert [n for _seq, n in sizes] == [10, 10, 10, 10, 10, 10, 10, 10, 10, 7]
    assert (run.total, run.batch_count, run.planning_done) == (97, 10, True)
    assert run.counts().pending == 97


def test_the_plan_job_hands_a_long_list_to_the_first_send_job_which_plans_it_while_sending(
    credential, template, sandbox, marketer, settings, monkeypatch
):
    """On a worker that runs one job at a time, the calls start after the first chunk,
    not after the whole list: the plan job ends there and the send job plans the rest
    in a thread (planning.Planner) while its callers send."""
    import django_rq

    from campaigns import jobs

    settings.PUSH_PLAN_CHUNK = 30  # 97 targets: four chunks, the last one short
    settings.PUSH_JOB_SECONDS = 30
    campaign = make_campaign(credential, template, make_list(97))
    run = lifecycle.launch(campaign, marketer)
    queue = django_rq.get_queue("push")
    queue.empty()
    assert jobs.plan_run(run.pk) == "sending; the send jobs plan the rest"
    run.refresh_from_db()
    assert (run.status, run.planning_done, run.total) == (Run.Status.SENDING, False, 30)
    # the send jobs the first chunk queued come first, then the plan job again
    assert [j.description for j in queue.get_jobs()] == [
        f"send run {run.pk} (send0)",
        f"send run {run.pk} (send1)",
        f"plan run {run.pk} (plan)",
    ]
    plan_chunk = planning._plan_chunk

    def slow_chunk(run_id):  # the planner's chunks take a while: the calls go on meanwhile
        time.sleep(0.2)
        return plan_chunk(run_id)

    monkeypatch.setattr(planning, "_plan_chunk", slow_chunk)
    result = job.send(run.pk, "send0")
    assert result.startswith("sent 10, failed 0") and result.endswith("; planning: planned")
    run.refresh_from_db()
    assert (run.planning_done, run.total, run.batch_count) == (True, 97, 10)
    assert run.counts().sent == 97
    first_call = Attempt.objects.filter(batch__run=run).order_by("started_at").first()
    last_chunk = Batch.objects.filter(run=run).order_by("-created_at").first()
    assert first_call.started_at < last_chunk.created_at  # sent while still planning
    assert planning.plan(run.pk) == "planned"  # the plan job queued again: nothing left
    drain()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    assert len([r for r in sandbox.records() if r["action"] == "PushTemplate"]) == 10
    check_invariants(campaign, sandbox.records())


def test_a_planner_stops_when_told_or_late_leaves_the_rest_to_the_plan_job_and_none_plans_twice(
    credential, template, sandbox, marketer, settings, redis_conn, monkeypatch
):
    import django_rq

    settings.PUSH_PLAN_CHUNK = 30
    campaign = make_campaign(credential, template, make_list(97))
    run = lifecycle.launch(campaign, marketer)
    queue = django_rq.get_queue("push")
    queue.empty()
    # the plan slot is held (a plan job is planning): a send job's planner plans nothing
    with queueing.hold_slot(run.pk, queueing.PLAN):
        elsewhere = planning.Planner(run.pk, time.monotonic() + 30)
        elsewhere.start()
        assert elsewhere.stop() == "planned elsewhere"
    assert Batch.objects.filter(run=run).count() == 0
    # past its deadline, a planner plans the chunk in hand and queues the plan job
    late = planning.Planner(run.pk, time.monotonic() - 1)
    late.start()
    late.join(timeout=30)
    assert late.result == "left to the plan job"
    run.refresh_from_db()
    assert (run.total, run.planning_done, run.status) == (30, False, Run.Status.SENDING)
    assert [j.description for j in queue.get_jobs()][-1] == f"plan run {run.pk} (plan)"
    # told to stop, a planner ends after the chunk in hand; that chunk, planned into a
    # sending run with no send job left, queues the send jobs again
    redis_conn.flushdb()
    plan_chunk = planning._plan_chunk
    first_done, proceed = threading.Event(), threading.Event()

    def held_chunk(run_id):
        step = plan_chunk(run_id)
        first_done.set()
        assert proceed.wait(timeout=30)
        return step

    monkeypatch.setattr(planning, "_plan_chunk", held_chunk)
    told = planning.Planner(run.pk, time.monotonic() + 30)
    told.start()
    assert first_done.wait(timeout=30)
    told.stopping.set()
    proceed.set()
    told.join(timeout=30)
    assert told.result == "left to the plan job"
    run.refresh_from_db()
    assert (run.total, run.planning_done) == (60, False)
    assert [j.description for j in queue.get_jobs()] == [
        f"send run {run.pk} (send0)",
        f"send run {run.pk} (send1)",
        f"plan run {run.pk} (plan)",
    ]
    # a planner that fails lets the slot go (the sweeper queues the plan job)
    monkeypatch.setattr(planning, "_plan_chunk", lambda run_id: 1 / 0)
    failing = planning.Planner(run.pk, time.monotonic() + 30)
    failing.start()
    assert failing.stop() == "failed" and not queueing.planning_now(run.pk)
    monkeypatch.setattr(planning, "_plan_chunk", plan_chunk)
    # a send job that has claimed all that is planned waits while a planner is at work
    ledger = RunLedger(job.context_for(run.pk, queueing.Slot("send", 0)))
    Batch.objects.filter(run=run).update(status=Batch.Status.CLAIMED)
    assert ledger.seconds_until_next_due() is None  # nobody planning: the job ends
    with queueing.hold_slot(run.pk, queueing.PLAN):
        assert ledger.seconds_until_next_due() == recorder.PLANNING_WAIT
    Batch.objects.filter(run=run).update(status=Batch.Status.PENDING)
    assert planning.plan(run.pk) == "planned"
    run.refresh_from_db()
    assert (run.total, run.batch_count, run.planning_done) == (97, 10, True)
    assert Delivery.objects.filter(run=run).values("target_id").distinct().count() == 97
    Batch.objects.filter(run=run).update(status=Batch.Status.CLAIMED)
    with queueing.hold_slot(run.pk, queueing.PLAN):
        assert ledger.seconds_until_next_due() is None  # all planned: nothing to wait for


def test_a_zombies_late_success_is_logged_but_counts_once(
    credential, template, target_list, sandbox, marketer
):
    campaign = make_campaign(credential, template, target_list)
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    zombie = claim_one(ledger)
    Batch.objects.filter(pk=zombie.batch_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    sweeper.sweep()
    fresh = claim_one(ledger)
    send_one(ledger, fresh)
    winner = Batch.objects.get(pk=fresh.batch_id).request_id
    send_one(ledger, zombie)
    batch = Batch.objects.get(pk=fresh.batch_id)
    assert (batch.status, batch.request_id) == (Batch.Status.SENT, winner)
    late = Attempt.objects.get(pk=zombie.attempt_id)
    assert late.outcome == Attempt.Outcome.SUCCESS and late.request_id not in ("", winner)
    assert run.counts().sent == 10  # the zombie's tally did not count the batch again


def test_claims_no_caller_took_are_released_when_the_run_stops(
    credential, template, sandbox, marketer
):
    campaign = make_campaign(credential, template, make_list(40))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    ready = [claim_one(ledger) for _ in range(2)]
    lifecycle.pause(Campaign.objects.get(pk=campaign.pk), marketer)
    assert claim_one(ledger) is None
    ledger.release(ready)
    for claim in ready:
        batch = Batch.objects.get(pk=claim.batch_id)
        assert (batch.status, batch.attempts) == (Batch.Status.PENDING, 0)
        assert not Attempt.objects.filter(pk=claim.attempt_id).exists()  # no call was made
    assert run.counts().in_flight == 0
    lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
    assert not Batch.objects.filter(run=run, status=Batch.Status.PENDING).exists()
    assert not [r for r in sandbox.records() if r["action"] == "PushTemplate"]


def test_claims_released_after_a_cancel_end_cancelled(credential, template, sandbox, marketer):
    campaign = make_campaign(credential, template, make_list(30))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    ready = claim_one(ledger)
    lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
    ledger.release([ready])
    assert Batch.objects.get(pk=ready.batch_id).status == Batch.Status.CANCELLED
    assert run.counts().cancelled == 30
    assert sweeper.close_run_if_done(run.pk) == Run.Status.CANCELLED
    run.refresh_from_db()
    assert (run.cancelled, run.sent) == (30, 0) and not run.tallies.exists()


def test_a_claim_a_caller_held_when_the_run_stopped_is_released_not_called(
    credential, template, sandbox, marketer
):
    campaign = make_campaign(credential, template, make_list(20))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = ledger_for(run)
    held = claim_one(ledger)
    lifecycle.pause(Campaign.objects.get(pk=campaign.pk), marketer)
    assert ledger.round([Outcome.not_called(held)], 1) is None
    batch = Batch.objects.get(pk=held.batch_id)
    assert (batch.status, batch.attempts) == (Batch.Status.PENDING, 0)
    assert not Attempt.objects.filter(batch=batch).exists()
    assert not [r for r in sandbox.records() if r["action"] == "PushTemplate"]
