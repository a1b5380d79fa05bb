"""Figures of the QueryPushAnalysis* actions, derived from what the sandbox accepted.

Every message that went out (one target of an accepted push, at each time it went out) is
pushed and pushed successfully; whether it arrived, was opened or ignored, and on which
platform and channel, is drawn from a hash of (stats_seed, msgKey, target, occurrence): the
same seed and the same accepted pushes always give the same figures, whatever the clock or
the call order.
A revoked message may have arrived but is never opened or ignored. The shares below are the
sandbox's own (the real service measures devices).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

from .messages import TYPE_NUMBERS, PushTask
from .queries import CoreIndexQuery

__all__ = ["Outcome", "core_index", "task_detail", "task_list_item", "template_id"]

ARRIVAL_SHARE = 0.9  # of messages pushed
OPEN_SHARE = 0.3  # of messages arrived
IGNORE_SHARE = 0.4  # of messages arrived and not opened
USER_PLATFORMS = (("ANDROID", 0.55), ("IOS", 0.4), ("HARMONYOS", 0.05))  # DeliveryType 3
ANDROID_CHANNELS = (
    ("HMS", 0.3),
    ("MIUI", 0.25),
    ("OPPO", 0.2),
    ("VIVO", 0.15),
    ("FCM", 0.05),
    ("ANDROID", 0.05),
)
DEVICE_PLATFORMS = {1: "ANDROID", 2: "IOS", 5: "IOS", 6: "IOS", 7: "HARMONYOS"}
MS_PER_TARGET = 20  # how long the sandbox pretends a task takes to push, per target


@dataclass(frozen=True)
class Outcome:
    platform: str
    channel: str
    arrived: bool
    opened: bool
    ignored: bool


def _pick(u: float, weighted: tuple[tuple[str, float], ...]) -> str:
    edge = 0.0
    for name, share in weighted:
        edge += share
        if u < edge:
            return name
    return weighted[-1][0]


def outcome(
    seed: int, msg_key: str, target: str, occurrence: int, delivery_type: int, revoked: bool
) -> Outcome:
    digest = hashlib.blake2b(
        f"{seed}|{msg_key}|{target}|{occurrence}".encode(), digest_size=20
    ).digest()
    u = [int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in range(0, 20, 4)]
    platform = DEVICE_PLATFORMS.get(delivery_type) or _pick(u[0], USER_PLATFORMS)
    channel = _pick(u[1], ANDROID_CHANNELS) if platform == "ANDROID" else platform
    arrived = u[2] < ARRIVAL_SHARE
    opened = arrived and not revoked and u[3] < OPEN_SHARE
    ignored = arrived and not revoked and not opened and u[4] < IGNORE_SHARE
    return Outcome(platform, channel, arrived, opened, ignored)


def _outcomes(task: PushTask, seed: int, now_ms: int, start_ms: int, end_ms: int):
    for occurrence, sent_ms in task.sent_times(now_ms):
        if not start_ms <= sent_ms < end_ms:
            continue
        for index, message in enumerate(task.targets):
            yield outcome(
                seed,
                message.msg_key,
                message.target,
                occurrence,
                task.delivery_type,
                index in task.revoked,
            )


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def core_index(
    tasks: list[PushTask], query: CoreIndexQuery, *, seed: int, now_ms: int
) -> dict[str, float]:
    """``ResultContent.Data`` of QueryPushAnalysisCoreIndex (numbers are floats, per the
    model). Rates are shares (0..1): arrival of pushed, open and ignore of arrived."""
    pushed = arrived = opened = ignored = 0
    for task in tasks:
        if query.push_type is not None and task.push_type != query.push_type:
            continue
        if query.task_id is not None and str(task.task_id) != query.task_id:
            continue
        for result in _outcomes(task, seed, now_ms, query.start_ms, query.end_ms):
            if query.platform is not None and result.platform != query.platform:
                continue
            if query.channel is not None and result.channel != query.channel:
                continue
            pushed += 1
            arrived += result.arrived
            opened += result.opened
            ignored += result.ignored
    return {
        "PushTotalNum": float(pushed),
        "PushNum": float(pushed),
        "ArrivalNum": float(arrived),
        "ArrivalRate": _rate(arrived, pushed),
        "OpenNum": float(opened),
        "OpenRate": _rate(opened, arrived),
        "IgnoreNum": float(ignored),
        "IgnoreRate": _rate(ignored, arrived),
    }


def template_id(name: str) -> str:
    """A stable stand-in for the ID mPaaS gives a template (the sandbox knows only names)."""
    return str(zlib.crc32(name.encode("utf-8")))


def task_list_item(task: PushTask) -> dict[str, Any]:
    """One entry of QueryPushAnalysisTaskList's ``ResultContent.Data``."""
    return {
        "TaskId": str(task.task_id),
        "TaskName": task.task_name,
        "TemplateName": task.template_name,
        "TemplateId": template_id(task.template_name),
        "Type": TYPE_NUMBERS[task.push_type],
        "GmtCreate": task.gmt_create_ms,
        "List": [],
    }


def task_detail(task: PushTask, *, seed: int, now_ms: int) -> dict[str, Any]:
    """``ResultContent.Data`` of QueryPushAnalysisTaskDetail: counts over every time the
    task went out; StartTime is its first (or first planned) trigger."""
    results = list(_outcomes(task, seed, now_ms, 0, 2**63))
    start = task.first_time()
    duration = MS_PER_TARGET * len(task.targets) if results else 0
    return {
        "TaskId": task.task_id,
        "StartTime": start,
        "EndTime": start + duration,
        "Duration": str(duration),
        "PushNum": float(len(results)),
        "PushSuccessNum": float(len(results)),
        "PushArrivalNum": float(sum(r.arrived for r in results)),
    }
