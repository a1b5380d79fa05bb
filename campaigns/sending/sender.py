"""The send loop of one job: this thread talks to the ledger, a thread pool calls mPaaS.

The Sender knows nothing of the database or of mPaaS: it is given a `Ledger` (claim
and record in rounds) and a `call` function (one claim → one Outcome), so its threading
can be tested with plain fakes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from django.db import DatabaseError

from .claims import Claim, Outcome

log = logging.getLogger(__name__)


class Ledger(Protocol):
    """The database side a Sender needs (`recorder.RunLedger` in production)."""

    def round(self, outcomes: list[Outcome], limit: int) -> list[Claim] | None: ...

    def release(self, claims: list[Claim]) -> None: ...

    def seconds_until_next_due(self) -> float | None: ...


class Sender:
    """Hand claims to `threads` callers and record what comes back, until the deadline.

    As many claims again as there are callers are kept ready (submitted to the pool but
    not started), so a caller whose call ends takes the next one at once instead of
    waiting for this thread's next round. When the run stops sending (pause, cancel) or
    this thread fails, claims not yet called are released uncalled. After a permanent
    failure no caller starts a call until it is recorded, so a streak that pauses the
    campaign sends nothing beyond the calls already under way."""

    def __init__(
        self,
        ledger: Ledger,
        call: Callable[[Claim], Outcome],
        *,
        threads: int,
        deadline: float,
        grace: float,
        refresh: Callable[[], None] = lambda: None,
        name: str = "sender",
    ) -> None:
        self.ledger, self.call, self.threads = ledger, call, threads
        self.deadline, self.grace, self.refresh = deadline, grace, refresh
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.handed: dict[int, tuple[Future, Claim]] = {}  # by attempt id, outcome not back
        self.capacity = 2 * threads  # calls in flight + claims ready
        self.go = threading.Event()  # clear while a permanent failure is unrecorded
        self.go.set()
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
        return f"{self.rounds} round(s); {spent}"

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
            self.pool.shutdown(wait=True)
            outcomes = self._drain(block=False)  # calls that finished meanwhile
            if outcomes:
                self.ledger.round(outcomes, 0)

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
                claims = self.ledger.round(outcomes, want)
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
                    wait = self.ledger.seconds_until_next_due()
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

    def _hand_out(self, claim: Claim) -> None:
        future = self.pool.submit(self._call_one, claim)
        self.handed[claim.attempt_id] = (future, claim)
        future.add_done_callback(self._collect)

    def _collect(self, future: Future) -> None:
        if not future.cancelled():  # a cancelled (never started) claim is released instead
            self.done.put(future.result())

    def _call_one(self, claim: Claim) -> Outcome:
        self.go.wait()
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
