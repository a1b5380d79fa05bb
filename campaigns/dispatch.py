"""Putting pipeline work on the RQ queue `push`, at most once per slot.

The database is the outbox: a job only ever says "look at run N". Each run has a few
named slots ("plan", "send0", "send1", ...). A running job holds its slot as a Redis
key with a TTL that it refreshes; a second job for the same slot exits at once, so
duplicates (from the sweeper, a retry, or a restarted Redis) are harmless. The sweeper
re-enqueues a slot whose key is gone and that is not already waiting in the queue, which
is how work survives a killed worker or a Redis that restarted empty.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import django_rq
import redis
from django.conf import settings

log = logging.getLogger(__name__)

QUEUE = "push"
_PREFIX = "pushconsole:slot"
_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_REFRESH = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
)

JOB_FUNCS = {
    "plan": "campaigns.jobs.plan_run",
    "send": "campaigns.jobs.send_batches",
}


def connection() -> redis.Redis:
    return django_rq.get_connection(QUEUE)


def _running_key(run_id: int, slot: str) -> str:
    return f"{_PREFIX}:{run_id}:{slot}:running"


def _queued_key(run_id: int, slot: str) -> str:
    return f"{_PREFIX}:{run_id}:{slot}:queued"


def send_slots() -> list[str]:
    return [f"send{n}" for n in range(max(1, settings.PUSH_JOBS_PER_RUN))]


def slot_busy(conn: redis.Redis, run_id: int, slot: str) -> bool:
    return bool(conn.exists(_running_key(run_id, slot), _queued_key(run_id, slot)))


def enqueue(run_id: int, slot: str, *, force: bool = False) -> bool:
    """Queue the job for `slot` of run `run_id` unless one is running or waiting.

    Returns False (and logs) when Redis is unreachable: the sweeper will retry, and
    nothing is lost because the database still holds the work."""
    try:
        conn = connection()
        if not force and slot_busy(conn, run_id, slot):
            return False
        conn.set(_queued_key(run_id, slot), "1", ex=settings.PUSH_QUEUED_MARKER_SECONDS)
        kind = "plan" if slot == "plan" else "send"
        args = (run_id,) if kind == "plan" else (run_id, slot)
        django_rq.get_queue(QUEUE).enqueue(
            JOB_FUNCS[kind],
            *args,
            job_timeout=settings.PUSH_JOB_SECONDS * 10 + 300,
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
            description=f"{kind} run {run_id} ({slot})",
        )
        return True
    except redis.RedisError as exc:
        log.warning("could not enqueue %s for run %s: %s", slot, run_id, exc)
        return False


def kick(run_id: int, *, plan: bool = False, send: bool = False) -> None:
    if plan:
        enqueue(run_id, "plan")
    if send:
        for slot in send_slots():
            enqueue(run_id, slot)


class SlotLease:
    def __init__(self, conn: redis.Redis, key: str, token: str) -> None:
        self.conn = conn
        self.key = key
        self.token = token

    def refresh(self) -> None:
        try:
            self.conn.eval(_REFRESH, 1, self.key, self.token, settings.PUSH_LEASE_SECONDS)
        except redis.RedisError as exc:
            # Losing Redis must not stop a send in progress: the batch lease in the
            # database is what fences the work.
            log.warning("could not refresh %s: %s", self.key, exc)


@contextmanager
def hold_slot(run_id: int, slot: str) -> Iterator[SlotLease | None]:
    """Hold `slot` for the duration of a job; yields None when another job holds it."""
    conn = connection()
    conn.delete(_queued_key(run_id, slot))
    key = _running_key(run_id, slot)
    token = uuid.uuid4().hex
    if not conn.set(key, token, nx=True, ex=settings.PUSH_LEASE_SECONDS):
        yield None
        return
    try:
        yield SlotLease(conn, key, token)
    finally:
        try:
            conn.eval(_RELEASE, 1, key, token)
        except redis.RedisError as exc:
            log.warning("could not release %s (it expires by itself): %s", key, exc)
