"""A per-credential send rate limit shared by every worker on every host, through Redis.

A sliding-window log (one sorted set per credential, timed by the Redis server's own
clock so hosts with skewed clocks agree) admits a call only while fewer than `limit`
calls were admitted in the last `window`. That bounds every window of that length, not
just aligned seconds. The window is a little longer than the nominal one (RATE_MARGIN)
so that jitter between admitting a call and its arrival at mPaaS cannot push two
windows' worth into one second there.

Rates below 1 call/s admit one call per 1/rate seconds. Fractional rates above 1 are
rounded down (2.5/s admits 2 per second): a limit is never exceeded.
"""

from __future__ import annotations

import math
import time
import uuid

from redis import Redis

RATE_MARGIN = 0.05  # seconds added to every window

_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local member = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1 then wait = 1 end
return wait
"""


def window_for(rate: float) -> tuple[int, float]:
    """(calls admitted per window, window seconds) for `rate` calls/s."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    if rate < 1:
        return 1, 1.0 / rate + RATE_MARGIN
    return math.floor(rate), 1.0 + RATE_MARGIN


class RateLimiter:
    def __init__(self, connection: Redis, key: str, rate: float) -> None:
        self.key = key
        self.limit, window_seconds = window_for(rate)
        self.window_us = int(window_seconds * 1_000_000)
        self._script = connection.register_script(_SCRIPT)

    def try_acquire(self) -> float:
        """Take a slot if one is free. Returns 0 on success, else seconds to wait."""
        wait_us = self._script(keys=[self.key], args=[self.limit, self.window_us, uuid.uuid4().hex])
        return int(wait_us) / 1_000_000

    def acquire(self, *, timeout: float = 60.0, should_stop=None) -> bool:
        """Block until a slot is taken (True) or `timeout` passes / `should_stop()` (False)."""
        deadline = time.monotonic() + timeout
        while True:
            wait = self.try_acquire()
            if wait == 0:
                return True
            if time.monotonic() + wait > deadline or (should_stop and should_stop()):
                return False
            time.sleep(min(wait, 0.5))


def for_credential(connection: Redis, credential_id: int, rate: float) -> RateLimiter:
    return RateLimiter(connection, f"pushconsole:rate:credential:{credential_id}", rate)
