"""Parameter rules of the calls that are not pushes: scheduled tasks, revoke, statistics.

Pure functions like rules.py: a broken rule raises ``BusinessError``. Codes no public page
names are the sandbox's own and spelt as words (``SANDBOX_CODES``), so nobody mistakes them
for confirmed mPaaS codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from .rules import BusinessError, check_app, check_known_params, present, required_int

__all__ = [
    "CHANNELS",
    "MAX_ANALYSIS_DAYS",
    "PLATFORMS",
    "PUSH_TYPES",
    "REVOKE_WINDOW_MS",
    "SANDBOX_CODES",
    "CoreIndexQuery",
    "TaskListQuery",
    "validate_cancel",
    "validate_core_index",
    "validate_query",
    "validate_revoke",
    "validate_task_detail",
    "validate_task_list",
]

# QueryPushAnalysisCoreIndex's documented filter values.
PLATFORMS = ("IOS", "ANDROID", "HARMONYOS")
CHANNELS = ("IOS", "FCM", "HMS", "MIUI", "OPPO", "VIVO", "ANDROID", "HARMONYOS")
PUSH_TYPES = ("SIMPLE", "TEMPLATE", "MULTIPLE", "BROADCAST")
MAX_ANALYSIS_DAYS = 90
REVOKE_WINDOW_MS = 7 * 86_400_000  # only messages of the last 7 days can be revoked
MAX_PAGE_SIZE = 500

# Business failures no public page gives a code for: the sandbox's own names.
MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND"
MESSAGE_TOO_OLD = "MESSAGE_TOO_OLD"
MESSAGE_ALREADY_REVOKED = "MESSAGE_ALREADY_REVOKED"
TASK_NOT_FOUND = "TASK_NOT_FOUND"
SANDBOX_CODES = {
    MESSAGE_NOT_FOUND: "RevokePushMessage: no message with this msgKey went to this target",
    MESSAGE_TOO_OLD: "RevokePushMessage: the message went out more than 7 days ago",
    MESSAGE_ALREADY_REVOKED: "RevokePushMessage: the message was revoked already",
    TASK_NOT_FOUND: "QueryPushAnalysisTaskDetail: no push task with this TaskId",
}


def _paging(params: Mapping[str, str], default_size: int) -> tuple[int, int]:
    page = required_int(params, "PageNumber", 1)
    size = required_int(params, "PageSize", default_size)
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        raise BusinessError(
            "3028", f"PageNumber must be >= 1 and PageSize between 1 and {MAX_PAGE_SIZE}"
        )
    return page, size


def validate_query(params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]) -> dict:
    """QueryPushSchedulerList: StartTime/EndTime (ms) required, paging 1-based, PageSize
    default 500 (the docs' default), at most 500."""
    check_known_params(params, "QueryPushSchedulerList")
    check_app(params, apps)
    start, end = required_int(params, "StartTime"), required_int(params, "EndTime")
    if end < start:
        raise BusinessError("3028", "EndTime must not be before StartTime")
    page, size = _paging(params, MAX_PAGE_SIZE)
    task_type = required_int(params, "Type", 1)
    return {
        "start_ms": start,
        "end_ms": end,
        "task_type": task_type,
        "unique_id": present(params, "UniqueId"),
        "page": page,
        "size": size,
    }


def validate_cancel(params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]) -> list[str]:
    """CancelPushScheduler: UniqueIds comma-separated, at least one."""
    check_known_params(params, "CancelPushScheduler")
    check_app(params, apps)
    required_int(params, "Type", 1)
    ids = [part.strip() for part in params.get("UniqueIds", "").split(",") if part.strip()]
    if not ids:
        raise BusinessError("3028", "UniqueIds is empty")
    return list(dict.fromkeys(ids))


def validate_revoke(
    params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]
) -> tuple[str, str]:
    """RevokePushMessage: MessageId (the msgKey) and TargetId are both required."""
    check_known_params(params, "RevokePushMessage")
    check_app(params, apps)
    message_id, target_id = present(params, "MessageId"), present(params, "TargetId")
    if message_id is None:
        raise BusinessError("3028", "MessageId is empty")
    if target_id is None:
        raise BusinessError("3021", "TargetId is empty")
    return message_id, target_id


@dataclass(frozen=True)
class CoreIndexQuery:
    start_ms: int  # 00:00 of the start day
    end_ms: int  # 24:00 of the end day (exclusive)
    platform: str | None
    channel: str | None
    push_type: str | None
    task_id: str | None


def _day_start(ms: int, tz: tzinfo) -> datetime:
    day = datetime.fromtimestamp(ms / 1000, tz).date()
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = present(params, name)
    if value is not None and value not in allowed:
        raise BusinessError("3028", f"{name} must be one of {', '.join(allowed)}")
    return value


def validate_core_index(
    params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]], tz: tzinfo
) -> CoreIndexQuery:
    """QueryPushAnalysisCoreIndex: StartTime/EndTime in ms, accurate to the day (days in the
    sandbox's time zone), at most 90 days apart; optional Platform, Channel, Type, TaskId."""
    check_known_params(params, "QueryPushAnalysisCoreIndex")
    check_app(params, apps)
    start, end = required_int(params, "StartTime"), required_int(params, "EndTime")
    if end < start:
        raise BusinessError("3028", "EndTime must not be before StartTime")
    first, last = _day_start(start, tz), _day_start(end, tz)
    if (last.date() - first.date()).days > MAX_ANALYSIS_DAYS:
        raise BusinessError(
            "3028", f"StartTime and EndTime must be at most {MAX_ANALYSIS_DAYS} days apart"
        )
    after_last = _day_start(int((last + timedelta(hours=36)).timestamp() * 1000), tz)
    return CoreIndexQuery(
        start_ms=int(first.timestamp() * 1000),
        end_ms=int(after_last.timestamp() * 1000),
        platform=_choice(params, "Platform", PLATFORMS),
        channel=_choice(params, "Channel", CHANNELS),
        push_type=_choice(params, "Type", PUSH_TYPES),
        task_id=present(params, "TaskId"),
    )


@dataclass(frozen=True)
class TaskListQuery:
    page: int
    size: int
    start_ms: int | None  # tasks created at or after
    task_id: str | None
    task_name: str | None


def validate_task_list(
    params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]
) -> TaskListQuery:
    """QueryPushAnalysisTaskList: optional StartTime (ms, tasks created since), TaskId,
    TaskName (exact); paging 1-based, PageSize default 10, at most 500."""
    check_known_params(params, "QueryPushAnalysisTaskList")
    check_app(params, apps)
    page, size = _paging(params, 10)
    start = present(params, "StartTime")
    return TaskListQuery(
        page=page,
        size=size,
        start_ms=None if start is None else required_int(params, "StartTime"),
        task_id=present(params, "TaskId"),
        task_name=present(params, "TaskName"),
    )


def validate_task_detail(params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]) -> int:
    """QueryPushAnalysisTaskDetail: TaskId required, a task ID (digits)."""
    check_known_params(params, "QueryPushAnalysisTaskDetail")
    check_app(params, apps)
    task_id = present(params, "TaskId")
    if task_id is None:
        raise BusinessError("3028", "TaskId is empty")
    if not task_id.isdigit():
        raise BusinessError("3028", "TaskId must be a push task ID (digits)")
    return int(task_id)
