"""Thin RQ entry points on the queue `push`. They take ids, never model instances or
secrets, and call sending.py."""

from __future__ import annotations

from campaigns import sending


def plan_run(run_id: int) -> str:
    return sending.plan(run_id)


def send_batches(run_id: int, slot: str) -> str:
    return sending.send(run_id, slot)


def sweep() -> str:
    return str(sending.sweep())
