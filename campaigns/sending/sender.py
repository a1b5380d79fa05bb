"""The send loop of one job: this thread talks to the ledger, a thread pool calls mPaaS.

The Sender knows nothing of the database or of mPaaS: it is given a `Ledger` (claim
and record in rounds) and a `call` function (one claim → one Outcome), so its threading
can be tested with plain fakes. A database fault is ridden out: while the database does
not answer, callers start no new call, and the round is retried (reconnecting, with
backoff, for up to `patience` seconds) with every answer that came back meanwhile, so an
answer received is recorded rather than thrown away.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from django.db import DatabaseError, InterfaceError, OperationalError

from .claims import Claim, Outcome

log = logging.getLogger(__name__)


class Ledger(Protocol):
    """The database side a Sender needs (`recorder.RunLedger` in production)."""

    def round(self, outcomes: list[Outcome], limit: int) -> list[Claim] | None: ...

    def release(self, claims: list[Claim]) -> None: ...

    def seconds_until_next_due(self) -> float | None: ...

    def reconnect(self) -> None: ...


# The errors of a database that went away (restart, terminated backend, network): worth
# a reconnect and a retry. Other database errors are bugs and propagate at once.
CONNECTION_ERRORS = (OperationalError, InterfaceError)


class Sender:
    """Hand claims to `threads` callers and record what comes back, until the deadline.

    Up to `ready` claims beyond the callers' own are kept ready (submitted to the pool
    but not started; by default as many as there are callers), so a caller whose call
    ends takes the next one at once instead of waiting for this thread's next round,
    and each round claims and records more calls at once. When the run stops sending
    (pause, cancel) or this thread fails, claims not yet called are released uncalled.
    After a permanent failure no caller starts a call until it is recorded, so a streak
    that pauses the campaign sends nothing beyond the calls already under way."""

    def __init__(
        self,
        ledger: Ledger,
        call: Callable[[Claim], Outcome],
        *,
        threads: int,
        deadline: float,
        grace: float,
        refresh: Callable[[], None] = lambda: None,
        patience: float = 0.0,
        name: str = "sender",
        ready: int | None = None,
    ) -> None:
        self.ledger, self.call, self.threads = ledger, call, threads
        self.deadline, self.grace, self.refresh = deadline, grace, refresh
        self.name = name
        self.patience = patience  # seconds a round is retried while the database is away
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.handed: dict[int, tuple[Future, Claim]] = {}  # by attempt id, outcome not back
        # calls in flight + claims ready
        self.capacity = threads + (threads if ready is None else max(0, ready))
        self.go = threading.Event()  # clear while a permanent failure is unrecorded
        self.go.set()
        self.db_up = threading.Event()  # clear while a round waits for the database
        self.db_up.set()
        self.db_faults = 0
        self.holds = 0
        self.holds_lock = threading.Lock()
        self.stopped = False  # callers call nothing more
        self.refreshed = 0.0
        # where this thread's time went, for the job's result line
        self.seconds = {"db": 0.0, "wait": 0.0}
        self.rounds = 0

    @property
    def busy(self) -> int:
        return len(self.handed)

    def summary(self) -> str:
        spent = ", ".join(f"{name} {secs:.1f} s" for name, secs in self.seconds.items())
        faults = f"; {self.db_faults} database fault(s) ridden out" if self.db_faults else ""
        return f"{self.rounds} round(s); {spent}{faults}"

    def run(self) -> None:
        failed = True
        try:
            self._loop()
            failed = False
        finally:
            if failed:
                # The database side failed: nothing more is called, and what was never
                # called is given back if the database still answers (else its lease
                # expires and the sweeper returns it).
                self.stopped = True
                self._release_ready(best_effort=True)
            self.go.set()
            self.db_up.set()  # callers still waiting return their claims uncalled
            self.pool.shutdown(wait=True)
            outcomes = self._drain(block=False)  # calls that finished meanwhile
            if outcomes and not failed:
                self._round(outcomes, 0)
            elif outcomes:
                self._last_round(outcomes)

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
                claims, outcomes = self._round(outcomes, want)
                self.seconds["db"] += time.monotonic() - started
                self._unhold(outcomes)
                if claims is None:
                    sending = False  # paused, cancelled or finished: no new claims
                    self.stopped = True
                    self._release_ready()
                    self.go.set()
                    continue
                for claim in claims:
                    self._hand_out(claim)
                if want and not self.busy:
                    wait = self._through_faults(self.ledger.seconds_until_next_due)
                    if wait is None or wait > self.deadline - time.monotonic():
                        return
                    time.sleep(min(max(wait, 0.05), 1.0))
            elif not self.busy:
                return
            elif time.monotonic() > self.deadline + self.grace:
                # a caller never came back; its claim's lease has expired by now
                raise RuntimeError(f"{self.busy} call(s) did not return in time")
            now = time.monotonic()
            if now - self.refreshed > 1.0:
                self.refresh()
                self.refreshed = now

    def _round(
        self, outcomes: list[Outcome], limit: int
    ) -> tuple[list[Claim] | None, list[Outcome]]:
        """One ledger round, retried through a database fault with the answers that came
        back meanwhile added. Returns the claims and every outcome recorded."""
        pending = list(outcomes)

        def attempt() -> list[Claim] | None:
            pending.extend(self._drain(block=False))
            return self.ledger.round(pending, limit)

        claims = self._through_faults(attempt)
        return claims, pending

    def _through_faults(self, work: Callable[[], object]):
        """Run `work` (database side); on a connection error, stop callers starting
        calls, reconnect and retry with backoff for up to `patience` seconds, then
        re-raise. Every retry is safe: each write of a round is fenced (status and lease
        token), so what a failed attempt committed is not written twice."""
        try:
            return work()
        except CONNECTION_ERRORS as exc:
            if self.patience <= 0:
                raise
            first = exc
        self.db_up.clear()
        self.db_faults += 1
        log.warning(
            "%s: the database is unavailable (%s); calling nothing new, retrying for %.0f s",
            self.name,
            str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__,
            self.patience,
        )
        started = time.monotonic()
        delay = 0.1
        while True:
            time.sleep(delay)
            delay = min(delay * 2, 2.0, max(self.patience / 10, 0.1))
            self.refresh()  # the job's Redis slot stays held meanwhile
            try:
                self.ledger.reconnect()
                result = work()
            except CONNECTION_ERRORS:
                if time.monotonic() - started > self.patience:
                    log.error(
                        "the database stayed unavailable for %.0f s; this job stops",
                        time.monotonic() - started,
                    )
                    raise
                continue
            log.warning("the database is back after %.1f s", time.monotonic() - started)
            self.db_up.set()
            return result

    def _last_round(self, outcomes: list[Outcome]) -> None:
        """After a failure: one try at recording the calls that finished meanwhile."""
        try:
            self.ledger.reconnect()
            self.ledger.round(outcomes, 0)
        except DatabaseError as exc:
            called = sum(1 for outcome in outcomes if outcome.called)
            log.warning(
                "could not record %d call(s) that finished after the failure (their "
                "leases expire and the sweeper re-sends them): %s",
                called,
                exc,
            )

    def _hand_out(self, claim: Claim) -> None:
        future = self.pool.submit(self._call_one, claim)
        self.handed[claim.attempt_id] = (future, claim)
        future.add_done_callback(self._collect)

    def _collect(self, future: Future) -> None:
        if not future.cancelled():  # a cancelled (never started) claim is released instead
            self.done.put(future.result())

    def _call_one(self, claim: Claim) -> Outcome:
        self.go.wait()
        self.db_up.wait()  # no call starts while its answer could not be recorded
        if self.stopped:
            return Outcome.not_called(claim)
        try:
            outcome = self.call(claim)
        except Exception as exc:
            log.exception("batch %s: the call path failed", claim.batch_id)
            outcome = Outcome(claim, bug=exc)
        if outcome.permanent:
            with self.holds_lock:  # no caller starts a call until it is recorded
                self.holds += 1
                self.go.clear()
        return outcome

    def _release_ready(self, *, best_effort: bool = False) -> None:
        ready = []
        for attempt_id, (future, claim) in list(self.handed.items()):
            if future.cancel():
                del self.handed[attempt_id]
                ready.append(claim)
        if not ready:
            return
        if not best_effort:
            self.ledger.release(ready)
            return
        try:
            self.ledger.release(ready)
        except DatabaseError as exc:
            log.warning("could not release %d uncalled claim(s): %s", len(ready), exc)

    def _drain(self, *, block: bool) -> list[Outcome]:
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
        for outcome in out:
            self.handed.pop(outcome.claim.attempt_id, None)
        return out

    def _unhold(self, recorded: list[Outcome]) -> None:
        count = sum(1 for outcome in recorded if outcome.permanent)
        if count:
            with self.holds_lock:
                self.holds -= count
                if not self.holds:
                    self.go.set()
