"""Business rules of PushTemplate and the scheduler APIs (PUSH_API.md §2–§4).

Pure functions: no I/O, the clock comes in as ``now_ms``. A broken rule raises
``BusinessError(code, message)``; the server answers it as HTTP 200 with that ResultCode.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "BusinessError",
    "COMMON_PARAMS",
    "PUSH_TEMPLATE_PARAMS",
    "QUERY_SCHEDULER_PARAMS",
    "CANCEL_SCHEDULER_PARAMS",
    "RESERVED_EXTENDED_PARAMS",
    "ValidPush",
    "check_app",
    "check_known_params",
    "lenient_targets",
    "validate_push_template",
    "validate_strategy",
    "validate_query",
    "validate_cancel",
]

# Gateway parameters: signed, but not business parameters.
COMMON_PARAMS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "RegionId",
        "Timestamp",
        "SignatureMethod",
        "SignatureType",
        "SignatureVersion",
        "SignatureNonce",
        "AccessKeyId",
        "Signature",
        "SecurityToken",
    }
)
PUSH_TEMPLATE_PARAMS = frozenset(
    {
        "AppId",
        "WorkspaceId",
        "TaskName",
        "TemplateName",
        "TemplateKeyValue",
        "DeliveryType",
        "TargetMsgkey",
        "ExpiredSeconds",
        "ExtendedParams",
        "NotifyType",
        "Classification",
        "StrategyType",
        "StrategyContent",
        "SmsStrategy",
        "SmsSignName",
        "SmsTemplateCode",
        "SmsTemplateParam",
        "ThirdChannelCategory",
        "NotifyLevel",
        "MiChannelId",
        "ActivityEvent",
        "ActivityContentState",
        "DismissalDate",
    }
)
QUERY_SCHEDULER_PARAMS = frozenset(
    {"AppId", "WorkspaceId", "StartTime", "EndTime", "Type", "UniqueId", "PageNumber", "PageSize"}
)
CANCEL_SCHEDULER_PARAMS = frozenset({"AppId", "WorkspaceId", "UniqueIds", "Type"})
RESERVED_EXTENDED_PARAMS = frozenset(
    {"notifyType", "action", "silent", "pushType", "templateCode", "channel", "taskId"}
)
DELIVERY_TYPES = frozenset({1, 2, 3, 5, 6, 7})
MAX_TARGETS = 10
MAX_EXTENDED_PARAMS = 20
LOOP_MAX_DAYS_AHEAD = 180
DAY_MS = 86_400_000

_INT_TEXT = re.compile(r"-?\d+")
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d)")


class BusinessError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ValidPush:
    """What the server needs from an accepted PushTemplate call."""

    targets: dict[str, str]
    strategy_type: int
    strategy: dict[str, Any] | None
    push_time_ms: int | None  # first trigger of a scheduled push
    window_end_ms: int | None  # when the scheduled task counts as executed


def _present(params: Mapping[str, str], name: str) -> str | None:
    """Optional parameters sent empty count as absent (the service applies its default)."""
    value = params.get(name)
    return value if value not in (None, "") else None


def _int_text(value: str | None) -> int | None:
    if value is None or not _INT_TEXT.fullmatch(value):
        return None
    return int(value)


def _json_object(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_app(params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]) -> None:
    """3003 missing AppId/WorkspaceId; 3007 unknown AppId; 8012 wrong workspace for the app."""
    app_id, workspace = params.get("AppId", ""), params.get("WorkspaceId", "")
    if not app_id or not workspace:
        raise BusinessError("3003", "AppId or WorkspaceId is empty")
    if apps:
        if app_id not in apps:
            raise BusinessError("3007", f"AppId {app_id} is not valid")
        if workspace not in apps[app_id]:
            raise BusinessError("8012", f"WorkspaceId {workspace} is not valid for AppId {app_id}")


def check_known_params(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Strict on purpose: a misspelt or camelCase name is a client bug the real API may ignore."""
    for name in sorted(params):
        if name not in allowed and name not in COMMON_PARAMS:
            raise BusinessError("3028", f"unknown parameter {name}")


def lenient_targets(raw: str | None) -> dict[str, Any] | None:
    """TargetMsgkey as a map for the ledger, whether or not it is valid."""
    return _json_object(raw)


def _targets(raw: str | None) -> dict[str, str]:
    if raw is None or raw.strip() == "":
        raise BusinessError("3021", "TargetMsgkey is empty")
    targets = _json_object(raw)
    if targets is None:
        raise BusinessError("3028", "TargetMsgkey must be a JSON object of target -> msgKey")
    if not targets:
        raise BusinessError("3021", "TargetMsgkey has no targets")
    if len(targets) > MAX_TARGETS:
        raise BusinessError("3029", f"TargetMsgkey has {len(targets)} targets, at most 10")
    for target, msg_key in targets.items():
        if not target.strip() or not isinstance(msg_key, str) or not msg_key.strip():
            raise BusinessError(
                "3028", "TargetMsgkey must map non-empty target ids to non-empty msgKey strings"
            )
    if len(set(targets.values())) != len(targets):
        raise BusinessError("3028", "TargetMsgkey repeats a msgKey: msgKeys must be unique")
    return targets


def _expired_seconds(raw: str | None, lo: int, hi: int) -> None:
    seconds = _int_text(raw)
    if seconds is None:
        raise BusinessError("3020", "ExpiredSeconds must be an integer number of seconds")
    if seconds < lo:
        raise BusinessError("3020", f"ExpiredSeconds must be at least {lo}")
    if seconds > hi:
        raise BusinessError("3026", f"ExpiredSeconds must be at most {hi}")


def _template(params: Mapping[str, str], templates: Mapping[str, tuple[str, ...]]) -> None:
    name = params.get("TemplateName", "")
    if "," in name:
        raise BusinessError("3028", "TemplateName may not contain a comma")
    if not name:
        raise BusinessError("3022", "TemplateName is empty")
    if name not in templates:
        raise BusinessError("3022", f"template {name} does not exist")
    raw = _present(params, "TemplateKeyValue")
    values = _json_object(raw) if raw is not None else {}
    if values is None:
        raise BusinessError("3023", "TemplateKeyValue must be a JSON object")
    missing = [p for p in templates[name] if p not in values]
    if missing:
        raise BusinessError("3023", f"TemplateKeyValue misses placeholder {missing[0]}")


def _extended(raw: str | None) -> None:
    if raw is None:
        return
    extended = _json_object(raw)
    if extended is None:
        raise BusinessError("3044", "ExtendedParams must be a JSON object")
    if len(extended) > MAX_EXTENDED_PARAMS:
        raise BusinessError("3035", f"ExtendedParams has {len(extended)} keys, at most 20")
    reserved = sorted(RESERVED_EXTENDED_PARAMS.intersection(extended))
    if reserved:
        raise BusinessError("3044", f"ExtendedParams may not set reserved key {reserved[0]}")


def _digit_map(params: Mapping[str, str], name: str) -> None:
    raw = _present(params, name)
    if raw is None:
        return
    mapping = _json_object(raw)
    if mapping is None:
        raise BusinessError("3028", f"{name} must be a JSON object")
    for vendor, value in mapping.items():
        if not isinstance(value, str) or not value.isdigit():
            raise BusinessError("3028", f"{name}.{vendor} must be a code written as a string")


def _channel_options(params: Mapping[str, str]) -> None:
    notify_type = _present(params, "NotifyType")
    if notify_type is not None and notify_type not in ("notify", "transparent"):
        raise BusinessError("3028", "NotifyType must be notify or transparent")
    classification = _present(params, "Classification")
    if classification is not None and classification not in ("0", "1"):
        raise BusinessError("3028", "Classification must be 0 or 1")
    _digit_map(params, "ThirdChannelCategory")
    _digit_map(params, "NotifyLevel")


def _sms(params: Mapping[str, str]) -> None:
    raw = _present(params, "SmsStrategy")
    if raw is None:
        return
    strategy = _int_text(raw)
    if strategy is None:
        raise BusinessError("3028", "SmsStrategy must be an integer")
    if strategy == 0:
        return
    for name in ("SmsSignName", "SmsTemplateCode", "SmsTemplateParam"):
        if _present(params, name) is None:
            raise BusinessError("3028", f"{name} is required when SmsStrategy is not 0")
    if _json_object(params["SmsTemplateParam"]) is None:
        raise BusinessError("3028", "SmsTemplateParam must be a JSON object")


def _live_activity(params: Mapping[str, str]) -> None:
    event = _present(params, "ActivityEvent")
    if event is not None and event not in ("update", "end"):
        raise BusinessError("3028", "ActivityEvent must be update or end")
    state = _present(params, "ActivityContentState")
    if state is not None and _json_object(state) is None:
        raise BusinessError("3028", "ActivityContentState must be a JSON object")
    dismissal = _present(params, "DismissalDate")
    if dismissal is not None and _int_text(dismissal) is None:
        raise BusinessError("3028", "DismissalDate must be an integer timestamp in seconds")


def _today_start_ms(now_ms: int, tz: tzinfo) -> int:
    today = datetime.fromtimestamp(now_ms / 1000, tz).date()
    return int(datetime(today.year, today.month, today.day, tzinfo=tz).timestamp() * 1000)


def _first_occurrence(strategy: dict[str, Any], tz: tzinfo) -> int:
    """The first day from startTime matching circleType/circleValue, at ``time`` (ISO weekdays)."""
    start = datetime.fromtimestamp(strategy["startTime"] / 1000, tz).date()
    end = datetime.fromtimestamp(strategy["endTime"] / 1000, tz).date()
    hours, minutes, seconds = (int(p) for p in strategy["time"].split(":"))
    values = set(strategy.get("circleValue") or [])
    day = start
    while day <= end:
        circle = strategy["circleType"]
        if (
            circle == 1
            or (circle == 2 and day.isoweekday() in values)
            or (circle == 3 and day.day in values)
        ):
            break
        day += timedelta(days=1)
    else:
        day = start
    moment = datetime(day.year, day.month, day.day, hours, minutes, seconds, tzinfo=tz)
    return int(moment.timestamp() * 1000)


def validate_strategy(
    strategy_type: int, raw: str | None, now_ms: int, tz: tzinfo
) -> tuple[dict[str, Any], int, int]:
    """StrategyContent for StrategyType 1 (fixed) or 2 (loop), PUSH_API.md §3.

    Returns the parsed content, the first trigger time and the time after which the task
    counts as executed (fixed: fixedTime; loop: 24:00 of the end day), all in epoch ms.
    """
    strategy = _json_object(raw)
    if strategy is None:
        raise BusinessError(
            "3028", "StrategyContent must be a JSON object when StrategyType is 1/2"
        )
    if strategy_type == 1:
        fixed = strategy.get("fixedTime")
        if not _is_int(fixed):
            raise BusinessError("3028", "StrategyContent.fixedTime must be epoch milliseconds")
        if fixed <= now_ms:
            raise BusinessError("3028", "StrategyContent.fixedTime must be in the future")
        return strategy, fixed, fixed
    today_ms = _today_start_ms(now_ms, tz)
    start, end = strategy.get("startTime"), strategy.get("endTime")
    for name, value in (("startTime", start), ("endTime", end)):
        if not _is_int(value):
            raise BusinessError("3028", f"StrategyContent.{name} must be epoch milliseconds")
        if value < today_ms:
            raise BusinessError(
                "3028", f"StrategyContent.{name} must not be before 00:00 today ({tz})"
            )
    if end < start:
        raise BusinessError("3028", "StrategyContent.endTime must not be before startTime")
    if end > today_ms + LOOP_MAX_DAYS_AHEAD * DAY_MS:
        raise BusinessError("3028", "StrategyContent.endTime must be at most 180 days after today")
    circle = strategy.get("circleType")
    if circle not in (1, 2, 3) or not _is_int(circle):
        raise BusinessError("3028", "StrategyContent.circleType must be 1, 2 or 3")
    values = strategy.get("circleValue")
    if circle == 1:
        if values not in (None, "", []):
            raise BusinessError("3028", "StrategyContent.circleValue must be empty for daily loops")
    else:
        top = 7 if circle == 2 else 31
        if (
            not isinstance(values, list)
            or not values
            or not all(_is_int(v) and 1 <= v <= top for v in values)
        ):
            kind = "weekly" if circle == 2 else "monthly"
            raise BusinessError(
                "3028", f"StrategyContent.circleValue must list {kind} days from 1 to {top}"
            )
    time_of_day = strategy.get("time")
    if not isinstance(time_of_day, str) or not _TIME_OF_DAY.fullmatch(time_of_day):
        raise BusinessError("3028", "StrategyContent.time must be HH:mm:ss")
    return strategy, _first_occurrence(strategy, tz), end + DAY_MS


def validate_push_template(
    params: Mapping[str, str],
    *,
    apps: Mapping[str, tuple[str, ...]],
    templates: Mapping[str, tuple[str, ...]],
    expired_min: int,
    expired_max: int,
    now_ms: int,
    tz: tzinfo,
) -> ValidPush:
    """Every PushTemplate rule, first broken rule wins. Order: names, app, task, type, targets,
    expiry, template, extended params, channel options, strategy, SMS, live activity."""
    check_known_params(params, PUSH_TEMPLATE_PARAMS)
    check_app(params, apps)
    if not params.get("TaskName", "").strip():
        raise BusinessError("3019", "TaskName is empty")
    if _int_text(params.get("DeliveryType")) not in DELIVERY_TYPES:
        raise BusinessError("3009", "DeliveryType must be one of 1, 2, 3, 5, 6, 7")
    targets = _targets(params.get("TargetMsgkey"))
    _expired_seconds(params.get("ExpiredSeconds"), expired_min, expired_max)
    _template(params, templates)
    _extended(_present(params, "ExtendedParams"))
    _channel_options(params)
    raw_strategy = _present(params, "StrategyType")
    strategy_type = 0 if raw_strategy is None else _int_text(raw_strategy)
    if strategy_type not in (0, 1, 2):
        raise BusinessError("3028", "StrategyType must be 0, 1 or 2")
    strategy = push_time = window_end = None
    if strategy_type:
        strategy, push_time, window_end = validate_strategy(
            strategy_type, _present(params, "StrategyContent"), now_ms, tz
        )
    _sms(params)
    _live_activity(params)
    return ValidPush(targets, strategy_type, strategy, push_time, window_end)


def _required_int(params: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = _present(params, name)
    if raw is None and default is not None:
        return default
    value = _int_text(raw)
    if value is None:
        raise BusinessError("3028", f"{name} must be an integer")
    return value


def validate_query(params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]) -> dict:
    """QueryPushSchedulerList: StartTime/EndTime (ms) required, paging 1-based, size ≤ 500."""
    check_known_params(params, QUERY_SCHEDULER_PARAMS)
    check_app(params, apps)
    start, end = _required_int(params, "StartTime"), _required_int(params, "EndTime")
    if end < start:
        raise BusinessError("3028", "EndTime must not be before StartTime")
    page, size = _required_int(params, "PageNumber", 1), _required_int(params, "PageSize", 10)
    if page < 1 or not 1 <= size <= 500:
        raise BusinessError("3028", "PageNumber must be >= 1 and PageSize between 1 and 500")
    task_type = _required_int(params, "Type", 1)
    return {
        "start_ms": start,
        "end_ms": end,
        "task_type": task_type,
        "unique_id": _present(params, "UniqueId"),
        "page": page,
        "size": size,
    }


def validate_cancel(params: Mapping[str, str], apps: Mapping[str, tuple[str, ...]]) -> list[str]:
    """CancelPushScheduler: UniqueIds comma-separated, at least one."""
    check_known_params(params, CANCEL_SCHEDULER_PARAMS)
    check_app(params, apps)
    _required_int(params, "Type", 1)
    ids = [part.strip() for part in params.get("UniqueIds", "").split(",") if part.strip()]
    if not ids:
        raise BusinessError("3028", "UniqueIds is empty")
    return list(dict.fromkeys(ids))
