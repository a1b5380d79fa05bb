"""The send loop's threading, with no database and no network: a fake ledger hands out
claims and records outcomes, a fake call answers. What the real pipeline relies on:
every claim handed out comes back once, nothing is called after the run stops, ready
claims are released uncalled, and a permanent failure holds the callers until recorded."""

from __future__ import annotations

import threading
import time

from campaigns.mpaas.client import PERMANENT, PushError, PushReply
from campaigns.sending.claims import Claim, Outcome
from campaigns.sending.sender import Sender


def reply() -> PushReply:
    return PushReply("rid", "OK", "", True, "", None, 200, 1, "{}")


class FakeLedger:
    """Hands out `batches` claims; `stop_after` recorded outcomes, the run stops."""

    def __init__(self, batches: int, *, stop_after: int | None = None) -> None:
        self.left = list(range(1, batches + 1))
        self.stop_after = stop_after
        self.recorded: list[Outcome] = []
        self.released: list[Claim] = []
        self.lock = threading.Lock()

    def round(self, outcomes: list[Outcome], limit: int) -> list[Claim] | None:
        with self.lock:
            self.recorded.extend(o for o in outcomes if o.called)
            self.released.extend(o.claim for o in outcomes if not o.called)
            if self.stop_after is not None and len(self.recorded) >= self.stop_after:
                return None
            claims = [
                Claim(batch_id=n, token=1, attempt_no=1, target_count=10, params={}, attempt_id=n)
                for n in self.left[:limit]
            ]
            del self.left[:limit]
            return claims

    def release(self, claims: list[Claim]) -> None:
        with self.lock:
            self.released.extend(claims)

    def seconds_until_next_due(self) -> float | None:
        return None


def sender(ledger, call, threads=4) -> Sender:
    return Sender(ledger, call, threads=threads, deadline=time.monotonic() + 10, grace=5)


def test_every_claim_handed_out_comes_back_once():
    ledger = FakeLedger(50)
    calls = []

    def call(claim):
        calls.append(claim.batch_id)
        return Outcome(claim, reply=reply())

    sender(ledger, call).run()
    assert sorted(calls) == list(range(1, 51))
    assert sorted(o.claim.batch_id for o in ledger.recorded) == list(range(1, 51))
    assert ledger.released == []


def test_after_the_run_stops_ready_claims_are_released_uncalled():
    # One caller, two claims: the first fails permanently (callers hold until it is
    # recorded), recording it stops the run, so the claim kept ready is never called.
    ledger = FakeLedger(10, stop_after=1)
    calls = []

    def call(claim):
        calls.append(claim.batch_id)
        return Outcome(claim, error=PushError(PERMANENT, "3022", "template missing"))

    sender(ledger, call, threads=1).run()
    assert calls == [1]
    assert [o.claim.batch_id for o in ledger.recorded] == [1]
    assert [c.batch_id for c in ledger.released] == [2]


def test_a_permanent_failure_holds_every_caller_until_it_is_recorded():
    ledger = FakeLedger(20)
    started_while_unrecorded = []
    failed = threading.Event()

    def call(claim):
        if claim.batch_id == 1:
            failed.set()
            return Outcome(claim, error=PushError(PERMANENT, "3022", "template missing"))
        if failed.is_set() and not any(o.claim.batch_id == 1 for o in ledger.recorded):
            started_while_unrecorded.append(claim.batch_id)
        return Outcome(claim, reply=reply())

    sender(ledger, call, threads=1).run()
    assert started_while_unrecorded == []
    assert len(ledger.recorded) == 20


def test_a_failing_ledger_calls_nothing_more_and_gives_back_what_is_ready():
    class Broken(FakeLedger):
        rounds = 0
        failed_at = None

        def round(self, outcomes, limit):
            self.rounds += 1
            if self.rounds == 2:
                self.failed_at = time.monotonic()
                raise RuntimeError("database went away")
            return super().round(outcomes, limit)

    ledger = Broken(40)
    calls = []

    def call(claim):  # fails for good: callers hold until it is recorded, which fails
        calls.append(claim.batch_id)
        return Outcome(claim, error=PushError(PERMANENT, "3022", "template missing"))

    runner = sender(ledger, call, threads=1)
    try:
        runner.run()
    except RuntimeError as exc:
        assert "database went away" in str(exc)
    else:
        raise AssertionError("the ledger's failure must surface")
    assert calls == [1]  # nothing was called after the round failed
    assert [c.batch_id for c in ledger.released] == [2]  # the ready claim came back


def test_the_first_round_claims_the_callers_and_the_ready_claims():
    class Asked(FakeLedger):
        def __init__(self, batches):
            super().__init__(batches)
            self.limits = []

        def round(self, outcomes, limit):
            self.limits.append(limit)
            return super().round(outcomes, limit)

    for ready, first in ((None, 4), (0, 2), (6, 8)):
        ledger = Asked(30)
        Sender(
            ledger,
            lambda claim: Outcome(claim, reply=reply()),
            threads=2,
            deadline=time.monotonic() + 10,
            grace=5,
            ready=ready,
        ).run()
        assert ledger.limits[0] == first, ready
        assert max(ledger.limits) == first  # never more than callers + ready in hand
        assert sorted(o.claim.batch_id for o in ledger.recorded) == list(range(1, 31))


def test_ready_claims_per_caller_and_under_a_low_rate_limit(settings):
    from campaigns.sending.job import ready_claims

    settings.PUSH_READY_PER_CALLER = 3
    settings.PUSH_LEASE_SECONDS = 40
    assert ready_claims(8, None) == 24
    assert ready_claims(32, 200.0) == 96  # 200/s sends 2,000 in a quarter lease
    assert ready_claims(32, 2.0) == 20  # 2/s sends 20 in 10 s: no more wait for a slot
    assert ready_claims(8, 0.1) == 1  # at least one, so a caller is never left idle
    settings.PUSH_READY_PER_CALLER = 0
    assert ready_claims(8, None) == 0
