"""Putting pipeline work on the RQ queue `push`, at most once per slot.

The database is the outbox: a job only ever says "look at run N". Each run has a few
named slots (`Slot.PLAN`, and `send0`, `send1`, ...). A running job holds its slot as a
Redis key with a TTL (`PUSH_SLOT_SECONDS`) that it refreshes; a second job for the same
slot exits at once, so duplicates (from the sweeper, a retry, or a restarted Redis) are
harmless. The sweeper re-enqueues a slot whose key is gone and that is not already
waiting in the queue, which is how work survives a killed worker or a Redis that
restarted empty. Jobs are referenced as callables of `campaigns.jobs` and carry ids only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True)
class Slot:
    """One named place for a job of a run: planning, or send job number `index`. The
    name travels in job arguments and Redis keys; the index is the send job's RunTally
    shard."""

    kind: str  # "plan" or "send"
    index: int = 0

    @property
    def name(self) -> str:
        return "plan" if self.kind == "plan" else f"send{self.index}"

    @classmethod
    def parse(cls, name: str) -> Slot:
        if name == "plan":
            return PLAN
        if name.startswith("send") and name[4:].isdigit():
            return cls("send", int(name[4:]))
        raise ValueError(f"not a slot name: {name!r}")

    def __str__(self) -> str:
        return self.name


PLAN = Slot("plan")


def connection() -> redis.Redis:
    return django_rq.get_connection(QUEUE)


def queue() -> Any:
    return django_rq.get_queue(QUEUE)


def _running_key(run_id: int, slot: Slot) -> str:
    return f"{_PREFIX}:{run_id}:{slot.name}:running"


def _queued_key(run_id: int, slot: Slot) -> str:
    return f"{_PREFIX}:{run_id}:{slot.name}:queued"


def send_slots() -> list[Slot]:
    return [Slot("send", n) for n in range(max(1, settings.PUSH_JOBS_PER_RUN))]


def slot_busy(conn: redis.Redis, run_id: int, slot: Slot) -> bool:
    return bool(conn.exists(_running_key(run_id, slot), _queued_key(run_id, slot)))


def send_job_busy(run_id: int) -> bool:
    """Whether a send job of the run is running or queued (False when Redis is away)."""
    try:
        conn = connection()
        return any(slot_busy(conn, run_id, slot) for slot in send_slots())
    except redis.RedisError:
        return False


def planning_now(run_id: int) -> bool:
    """Whether a job (or a send job's planner) holds the run's plan slot right now
    (False when Redis is away)."""
    try:
        return bool(connection().exists(_running_key(run_id, PLAN)))
    except redis.RedisError:
        return False


def enqueue(run_id: int, slot: Slot, *, force: bool = False) -> bool:
    """Queue the job for `slot` of run `run_id` unless one is running or waiting.

    Returns False (and logs) when Redis is unreachable: the sweeper will retry, and
    nothing is lost because the database still holds the work."""
    from campaigns import jobs  # jobs call the domain modules, which call this one

    try:
        conn = connection()
        if not force and slot_busy(conn, run_id, slot):
            return False
        conn.set(_queued_key(run_id, slot), "1", ex=settings.PUSH_QUEUED_MARKER_SECONDS)
        if slot.kind == "plan":
            func, args = jobs.plan_run, (run_id,)
        else:
            func, args = jobs.send_batches, (run_id, slot.name)
        queue().enqueue(
            func,
            *args,
            job_timeout=settings.PUSH_JOB_SECONDS * 10 + 300,
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
            description=f"{slot.kind} run {run_id} ({slot.name})",
        )
        return True
    except redis.RedisError as exc:
        log.warning("could not enqueue %s for run %s: %s", slot, run_id, exc)
        return False


def kick(run_id: int, *, plan: bool = False, send: bool = False) -> None:
    if plan:
        enqueue(run_id, PLAN)
    if send:
        for slot in send_slots():
            enqueue(run_id, slot)


def settle_later(run_id: int) -> None:
    """Queue the settling of a closed run's deliveries (`sending.settling`); when Redis
    is away the sweeper settles it instead, so failing here is only logged."""
    from campaigns import jobs

    try:
        enqueue_job(
            jobs.settle_run,
            run_id,
            job_timeout=3600,
            result_ttl=600,
            description=f"settle run {run_id}",
        )
    except redis.RedisError as exc:
        log.warning("could not queue the settling of run %s: %s", run_id, exc)


def enqueue_job(func: Callable[..., Any], *args: Any, **options: Any) -> None:
    """Queue any other job of `campaigns.jobs` now (ids only in `args`). Raises
    redis.RedisError when Redis is unreachable: the caller says so to the user."""
    queue().enqueue(func, *args, **options)


def wake_at(moments: list[datetime], func: Callable[..., Any]) -> None:
    """Ask RQ's scheduler to run `func` at each moment; a periodic check covers any
    wake-up lost with Redis, so failing here is only logged."""
    try:
        q = queue()
        for moment in moments:
            q.enqueue_at(moment, func, result_ttl=600)
    except redis.RedisError as exc:
        log.warning("could not schedule wake-ups: %s", exc)


class SlotLease:
    """A held slot: refresh it while working; it expires by itself if the holder dies."""

    def __init__(self, conn: redis.Redis, key: str, token: str) -> None:
        self.conn = conn
        self.key = key
        self.token = token

    def refresh(self) -> None:
        try:
            self.conn.eval(_REFRESH, 1, self.key, self.token, settings.PUSH_SLOT_SECONDS)
        except redis.RedisError as exc:
            # Losing Redis must not stop a send in progress: the batch lease in the
            # database is what fences the work.
            log.warning("could not refresh %s: %s", self.key, exc)


@contextmanager
def hold_slot(run_id: int, slot: Slot) -> Iterator[SlotLease | None]:
    """Hold `slot` for the duration of a job; yields None when another job holds it."""
    conn = connection()
    conn.delete(_queued_key(run_id, slot))
    key = _running_key(run_id, slot)
    token = uuid.uuid4().hex
    if not conn.set(key, token, nx=True, ex=settings.PUSH_SLOT_SECONDS):
        yield None
        return
    try:
        yield SlotLease(conn, key, token)
    finally:
        try:
            conn.eval(_RELEASE, 1, key, token)
        except redis.RedisError as exc:
            log.warning("could not release %s (it expires by itself): %s", key, exc)
