"""A per-credential send rate limit shared by every worker on every host, through Redis.

A sliding-window log (one sorted set per credential, timed by the Redis server's own
clock so hosts with skewed clocks agree) admits a call only while fewer than `limit`
calls count: every call still in flight, and every call that *finished* within the last
`window`. A call reaches mPaaS somewhere between its admission and its end, so counting
it from admission until `window` after its end bounds what mPaaS sees in any window of
that length, however late a call leaves after it was admitted (admissions alone do not:
stragglers of one burst used to land in the next second at the receiver). Use `slot()`,
which marks the call finished when it returns; an entry whose holder died stops counting
`hold` seconds after its admission (longer than any call may take).

Marking a call finished costs no round trip of its own: the end is noted in-process and
written (ZADD XX, timed by Redis) with this limiter's next admission, whichever thread
makes it, or by `flush()`, which the send job calls every second and when it stops. A
late write only makes a call count a little longer, never shorter, so the bound holds;
it halves the Redis calls per push (a send job's largest cost after the SDK). Callers
asking at the same moment share one script call (`try_acquire`), so a busy send job
makes fewer round trips than calls.

Rates below 1 call/s admit one call per 1/rate seconds. Fractional rates above 1 are
rounded down (2.5/s admits 2 per second): a limit is never exceeded.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis, RedisError

from pushconsole import metrics

log = logging.getLogger(__name__)

RATE_MARGIN = 0.01  # seconds added to every window, for clock granularity

# An entry's score is when it stops being "recent": its end time, or, while in flight,
# admission + hold. Entries whose score is more than `window` ago no longer count.
_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])
local asks = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 5 + asks, #ARGV do
  redis.call('ZADD', key, 'XX', now, ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local out = {}
local wait = nil
for i = 1, asks do
  if count < limit then
    redis.call('ZADD', key, now + hold, ARGV[4 + i])
    count = count + 1
    out[i] = 0
  else
    if wait == nil then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      wait = tonumber(oldest[2]) + window - now
      if wait < 1 then wait = 1 end
    end
    out[i] = wait
  end
end
redis.call('PEXPIRE', key, math.ceil((window + hold) / 1000) + 1000)
return out
"""
_FINISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = 0
for i = 1, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', now, ARGV[i])
end
return n
"""


def window_for(rate: float) -> tuple[int, float]:
    """(calls admitted per window, window seconds) for `rate` calls/s."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    if rate < 1:
        return 1, 1.0 / rate + RATE_MARGIN
    return math.floor(rate), 1.0 + RATE_MARGIN


class _Ask:
    """One thread's admission request, answered by the leader's script call."""

    __slots__ = ("member", "ready", "wait", "error")

    def __init__(self, member: str) -> None:
        self.member = member
        self.ready = threading.Event()
        self.wait: float | None = None
        self.error: BaseException | None = None


class RateLimiter:
    def __init__(self, connection: Redis, key: str, rate: float, *, hold: float = 0.0) -> None:
        """`hold`: how long an admitted call counts as in flight at most (0: a call counts
        from its admission only, for callers that cannot say when it ended)."""
        self.key = key
        self.limit, window_seconds = window_for(rate)
        self.window_us = int(window_seconds * 1_000_000)
        self.hold_us = int(hold * 1_000_000)
        self._script = connection.register_script(_SCRIPT)
        self._finish = connection.register_script(_FINISH)
        self._ended: list[str] = []  # calls ended, not yet written to Redis
        self._ended_lock = threading.Lock()
        self._asks: list[_Ask] = []  # admissions waiting for the leader's next call
        self._asks_lock = threading.Lock()
        self._leading = False

    def _take_ended(self) -> list[str]:
        with self._ended_lock:
            ended, self._ended = self._ended, []
        return ended

    def try_acquire(self, member: str | None = None) -> float:
        """Take a slot if one is free (writing the ends noted since the last write
        first). Returns 0 on success, else seconds to wait.

        Threads asking at once share one round trip: the first becomes the leader and
        asks Redis for every ask queued meanwhile in one script call (admitted in
        arrival order while slots are free), then hands the lead to the next ask
        queued, if any, so no thread serves others for long."""
        ask = _Ask(member or uuid.uuid4().hex)
        with self._asks_lock:
            self._asks.append(ask)
            lead = not self._leading
            self._leading = True
        if not lead:
            ask.ready.wait()
            lead = ask.wait is None and ask.error is None  # handed the lead
        if lead:
            self._serve()
        if ask.error is not None:
            raise ask.error
        assert ask.wait is not None
        return ask.wait

    def _serve(self) -> None:
        """As the leader: one script call for every ask queued now, then the lead to the
        next ask queued, or no leader."""
        with self._asks_lock:
            asks, self._asks = self._asks, []
        ended = self._take_ended()
        try:
            waits = self._script(
                keys=[self.key],
                args=[
                    self.limit,
                    self.window_us,
                    self.hold_us,
                    len(asks),
                    *(ask.member for ask in asks),
                    *ended,
                ],
            )
        except Exception as exc:  # noqa: BLE001 - every ask in the call gets the error
            self._note_ended(ended)  # written by the next try or flush
            for ask in asks:
                ask.error = exc
        else:
            for ask, wait_us in zip(asks, waits, strict=True):
                ask.wait = int(wait_us) / 1_000_000
        for ask in asks:
            ask.ready.set()
        with self._asks_lock:
            if self._asks:
                self._asks[0].ready.set()  # its thread leads the next call
            else:
                self._leading = False

    def _note_ended(self, members: list[str]) -> None:
        if members:
            with self._ended_lock:
                self._ended.extend(members)

    def acquire(
        self, *, timeout: float = 60.0, should_stop=None, member: str | None = None
    ) -> bool:
        """Block until a slot is taken (True) or `timeout` passes / `should_stop()` (False)."""
        started = time.monotonic()
        deadline = started + timeout
        waited = False
        try:
            while True:
                wait = self.try_acquire(member)
                if wait == 0:
                    return True
                if not waited:
                    waited = True
                    metrics.RATE_LIMIT_WAITS.inc()
                if time.monotonic() + wait > deadline or (should_stop and should_stop()):
                    return False
                time.sleep(min(wait, 0.5))
        finally:
            if waited:
                metrics.RATE_LIMIT_WAIT_SECONDS.inc(time.monotonic() - started)

    def finish(self, member: str) -> None:
        """The call admitted as `member` has ended: it counts for one more window."""
        self._finish(keys=[self.key], args=[member])

    def flush(self) -> None:
        """Write the ends noted since the last admission (their calls count from now)."""
        ended = self._take_ended()
        if not ended:
            return
        try:
            self._finish(keys=[self.key], args=ended)
        except RedisError as exc:  # kept for the next try; else they stop counting at `hold`
            self._note_ended(ended)
            log.warning("could not mark %d rate-limited call(s) finished: %s", len(ended), exc)

    @contextmanager
    def slot(self, *, timeout: float) -> Iterator[bool]:
        """Admit one call (yields False if no slot came in `timeout`) and note it ended
        when the block exits, however it exits (written with the next admission or
        `flush()`)."""
        member = uuid.uuid4().hex
        if not self.acquire(timeout=timeout, member=member):
            yield False
            return
        try:
            yield True
        finally:
            self._note_ended([member])


def for_credential(
    connection: Redis, credential_id: int, rate: float, *, hold: float = 0.0
) -> RateLimiter:
    return RateLimiter(connection, f"pushconsole:rate:credential:{credential_id}", rate, hold=hold)
