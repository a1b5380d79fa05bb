"""Wire names and business rules of the push calls (PushTemplate, PushMultiple), and the
helpers every action's rules share (PUSH_API.md §2–§4; the official request models of
``alibabacloud-mpaas20201028`` 3.4.1 give the wire names).

Pure functions: no I/O, the clock comes in as ``now_ms``. A broken rule raises
``BusinessError(code, message)``; the server answers it as HTTP 200 with that ResultCode.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from .params import ACCEPTED_PARAMS, COMMON_PARAMS, TARGET_MSG_NAME

__all__ = [
    "BusinessError",
    "MAX_MULTIPLE_TARGETS",
    "MAX_TARGETS",
    "RESERVED_EXTENDED_PARAMS",
    "TargetMessage",
    "ValidPush",
    "check_app",
    "check_known_params",
    "int_text",
    "is_int",
    "json_object",
    "lenient_target_msgs",
    "lenient_targets",
    "present",
    "required_int",
    "validate_push_multiple",
    "validate_push_template",
]

RESERVED_EXTENDED_PARAMS = frozenset(
    {"notifyType", "action", "silent", "pushType", "templateCode", "channel", "taskId"}
)
DELIVERY_TYPES = frozenset({1, 2, 3, 5, 6, 7})
MULTIPLE_DELIVERY_TYPES = frozenset({1, 2, 3, 7})  # the PushMultiple page lists these
MAX_TARGETS = 10
MAX_MULTIPLE_TARGETS = 100
MAX_EXTENDED_PARAMS = 20
MAX_TARGET_EXTENDED_PARAMS = 9  # 3049: "must be fewer than 10"

_INT_TEXT = re.compile(r"-?\d+")


class BusinessError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TargetMessage:
    """One target of a push: its msgKey and, for PushMultiple, its own values."""

    target: str
    msg_key: str
    values: dict[str, Any] | None = None
    extended: dict[str, Any] | None = None


@dataclass(frozen=True)
class ValidPush:
    """What the server needs from an accepted PushTemplate or PushMultiple call."""

    targets: tuple[TargetMessage, ...]
    strategy_type: int
    occurrences: tuple[int, ...]  # trigger times of a scheduled push (epoch ms), else ()


def present(params: Mapping[str, str], name: str) -> str | None:
    """Optional parameters sent empty count as absent (the service applies its default)."""
    value = params.get(name)
    return value if value not in (None, "") else None


def int_text(value: str | None) -> int | None:
    if value is None or not _INT_TEXT.fullmatch(value):
        return None
    return int(value)


def json_object(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def required_int(params: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = present(params, name)
    if raw is None and default is not None:
        return default
    value = int_text(raw)
    if value is None:
        raise BusinessError("3028", f"{name} must be an integer")
    return value


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


def check_known_params(params: Mapping[str, str], action: str) -> None:
    """Strict on purpose: a misspelt or camelCase name is a client bug the real API may ignore."""
    allowed = ACCEPTED_PARAMS[action]
    flattened = "TargetMsg" in allowed
    for name in sorted(params):
        if name in allowed or name in COMMON_PARAMS:
            continue
        if flattened and TARGET_MSG_NAME.fullmatch(name):
            continue
        raise BusinessError("3028", f"unknown parameter {name}")


def lenient_targets(raw: str | None) -> dict[str, Any] | None:
    """TargetMsgkey as a map for the ledger, whether or not it is valid."""
    return json_object(raw)


def _target_msg_fields(params: Mapping[str, str]) -> dict[int, dict[str, str]]:
    entries: dict[int, dict[str, str]] = {}
    for name, value in params.items():
        match = TARGET_MSG_NAME.fullmatch(name)
        if match:
            entries.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return dict(sorted(entries.items()))


def lenient_target_msgs(params: Mapping[str, str]) -> list[dict[str, Any]] | None:
    """PushMultiple's TargetMsg.N.* as a list for the ledger, whether or not it is valid:
    each target's msgKey and its own values (parsed when they are JSON objects)."""
    entries = _target_msg_fields(params)
    if not entries:
        return None
    out = []
    for index, fields in entries.items():
        values, extended = fields.get("TemplateKeyValue"), fields.get("ExtendedParams")
        parsed_values, parsed_extended = json_object(values), json_object(extended)
        out.append(
            {
                "index": index,
                "target": fields.get("Target"),
                "msg_key": fields.get("MsgKey"),
                "template_key_value": values if parsed_values is None else parsed_values,
                "extended_params": extended if parsed_extended is None else parsed_extended,
            }
        )
    return out


def _targets(raw: str | None) -> tuple[TargetMessage, ...]:
    if raw is None or raw.strip() == "":
        raise BusinessError("3021", "TargetMsgkey is empty")
    targets = json_object(raw)
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
    return tuple(TargetMessage(target, msg_key) for target, msg_key in targets.items())


def _target_msgs(params: Mapping[str, str]) -> list[dict[str, str]]:
    """PushMultiple's targets in index order; indexes must run 1..N (the SDK's flattening)."""
    entries = _target_msg_fields(params)
    if not entries:
        raise BusinessError("3021", "TargetMsg is empty")
    if len(entries) > MAX_MULTIPLE_TARGETS:
        raise BusinessError(
            "3029", f"TargetMsg has {len(entries)} targets, at most {MAX_MULTIPLE_TARGETS}"
        )
    if list(entries) != list(range(1, len(entries) + 1)):
        raise BusinessError("3028", "TargetMsg indexes must run 1, 2, ... without gaps")
    seen_targets: set[str] = set()
    seen_keys: set[str] = set()
    for index, fields in entries.items():
        target, msg_key = fields.get("Target", ""), fields.get("MsgKey", "")
        if not target.strip():
            raise BusinessError("3021", f"TargetMsg.{index}.Target is empty")
        if not msg_key.strip():
            raise BusinessError("3028", f"TargetMsg.{index}.MsgKey is empty")
        if msg_key in seen_keys:
            raise BusinessError(
                "3028", f"TargetMsg.{index}.MsgKey repeats a msgKey: msgKeys must be unique"
            )
        if target in seen_targets:
            raise BusinessError("3028", f"TargetMsg.{index}.Target repeats a target")
        seen_targets.add(target)
        seen_keys.add(msg_key)
    return list(entries.values())


def _expired_seconds(raw: str | None, lo: int, hi: int) -> None:
    seconds = int_text(raw)
    if seconds is None:
        raise BusinessError("3020", "ExpiredSeconds must be an integer number of seconds")
    if seconds < lo:
        raise BusinessError("3020", f"ExpiredSeconds must be at least {lo}")
    if seconds > hi:
        raise BusinessError("3026", f"ExpiredSeconds must be at most {hi}")


def _template_name(params: Mapping[str, str], templates: Mapping[str, tuple[str, ...]]) -> str:
    name = params.get("TemplateName", "")
    if "," in name:
        raise BusinessError("3028", "TemplateName may not contain a comma")
    if not name:
        raise BusinessError("3022", "TemplateName is empty")
    if name not in templates:
        raise BusinessError("3022", f"template {name} does not exist")
    return name


def _values(raw: str | None, placeholders: tuple[str, ...], label: str) -> dict[str, Any]:
    """Template values: a JSON object holding every placeholder (extra keys are fine)."""
    values = json_object(raw) if raw not in (None, "") else {}
    if values is None:
        raise BusinessError("3023", f"{label} must be a JSON object")
    missing = [p for p in placeholders if p not in values]
    if missing:
        raise BusinessError("3023", f"{label} misses placeholder {missing[0]}")
    return values


def _extended(raw: str | None, label: str = "ExtendedParams", limit: int = 20) -> dict | None:
    if raw in (None, ""):
        return None
    extended = json_object(raw)
    if extended is None:
        raise BusinessError("3044", f"{label} must be a JSON object")
    if len(extended) > limit:
        code = "3035" if limit == MAX_EXTENDED_PARAMS else "3049"
        raise BusinessError(code, f"{label} has {len(extended)} keys, at most {limit}")
    reserved = sorted(RESERVED_EXTENDED_PARAMS.intersection(extended))
    if reserved:
        raise BusinessError("3044", f"{label} may not set reserved key {reserved[0]}")
    return extended


def _digit_map(params: Mapping[str, str], name: str) -> None:
    raw = present(params, name)
    if raw is None:
        return
    mapping = json_object(raw)
    if mapping is None:
        raise BusinessError("3028", f"{name} must be a JSON object")
    for vendor, value in mapping.items():
        if not isinstance(value, str) or not value.isdigit():
            raise BusinessError("3028", f"{name}.{vendor} must be a code written as a string")


def _channel_options(params: Mapping[str, str]) -> None:
    notify_type = present(params, "NotifyType")
    if notify_type is not None and notify_type not in ("notify", "transparent"):
        raise BusinessError("3028", "NotifyType must be notify or transparent")
    classification = present(params, "Classification")
    if classification is not None and classification not in ("0", "1"):
        raise BusinessError("3028", "Classification must be 0 or 1")
    _digit_map(params, "ThirdChannelCategory")
    _digit_map(params, "NotifyLevel")


def _sms(params: Mapping[str, str]) -> None:
    raw = present(params, "SmsStrategy")
    if raw is None:
        return
    strategy = int_text(raw)
    if strategy is None:
        raise BusinessError("3028", "SmsStrategy must be an integer")
    if strategy == 0:
        return
    for name in ("SmsSignName", "SmsTemplateCode", "SmsTemplateParam"):
        if present(params, name) is None:
            raise BusinessError("3028", f"{name} is required when SmsStrategy is not 0")
    if json_object(params["SmsTemplateParam"]) is None:
        raise BusinessError("3028", "SmsTemplateParam must be a JSON object")


def _live_activity(params: Mapping[str, str]) -> None:
    event = present(params, "ActivityEvent")
    if event is not None and event not in ("update", "end"):
        raise BusinessError("3028", "ActivityEvent must be update or end")
    state = present(params, "ActivityContentState")
    if state is not None and json_object(state) is None:
        raise BusinessError("3028", "ActivityContentState must be a JSON object")
    dismissal = present(params, "DismissalDate")
    if dismissal is not None and int_text(dismissal) is None:
        raise BusinessError("3028", "DismissalDate must be an integer timestamp in seconds")


def _model_extras(params: Mapping[str, str]) -> None:
    """The request models' extra fields: integers where the model says int, a JSON object
    for TransparentMessagePayload; the others are passed through unchecked."""
    for name in ("PushAction", "Silent"):
        raw = present(params, name)
        if raw is not None and int_text(raw) is None:
            raise BusinessError("3028", f"{name} must be an integer")
    payload = present(params, "TransparentMessagePayload")
    if payload is not None and json_object(payload) is None:
        raise BusinessError("3028", "TransparentMessagePayload must be a JSON object")


def _strategy(params: Mapping[str, str], now_ms: int, tz: tzinfo) -> tuple[int, tuple[int, ...]]:
    from .strategy import validate as validate_strategy  # strategy.py imports this module

    raw = present(params, "StrategyType")
    strategy_type = 0 if raw is None else int_text(raw)
    if strategy_type not in (0, 1, 2):
        raise BusinessError("3028", "StrategyType must be 0, 1 or 2")
    if not strategy_type:
        return 0, ()
    moments = validate_strategy(strategy_type, present(params, "StrategyContent"), now_ms, tz)
    return strategy_type, tuple(moments)


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
    expiry, template, extended params, channel options, model extras, strategy, SMS, live
    activity."""
    check_known_params(params, "PushTemplate")
    check_app(params, apps)
    if not params.get("TaskName", "").strip():
        raise BusinessError("3019", "TaskName is empty")
    if int_text(params.get("DeliveryType")) not in DELIVERY_TYPES:
        raise BusinessError("3009", "DeliveryType must be one of 1, 2, 3, 5, 6, 7")
    targets = _targets(params.get("TargetMsgkey"))
    _expired_seconds(params.get("ExpiredSeconds"), expired_min, expired_max)
    name = _template_name(params, templates)
    _values(present(params, "TemplateKeyValue"), templates[name], "TemplateKeyValue")
    _extended(present(params, "ExtendedParams"))
    _channel_options(params)
    _model_extras(params)
    strategy_type, occurrences = _strategy(params, now_ms, tz)
    _sms(params)
    _live_activity(params)
    return ValidPush(targets, strategy_type, occurrences)


def validate_push_multiple(
    params: Mapping[str, str],
    *,
    apps: Mapping[str, tuple[str, ...]],
    templates: Mapping[str, tuple[str, ...]],
    expired_min: int,
    expired_max: int,
    now_ms: int,
    tz: tzinfo,
) -> ValidPush:
    """Every PushMultiple rule, first broken rule wins, in PushTemplate's order; each target's
    own TemplateKeyValue must fill the template's placeholders (3023) and its own
    ExtendedParams hold fewer than 10 keys (3049)."""
    check_known_params(params, "PushMultiple")
    check_app(params, apps)
    if not params.get("TaskName", "").strip():
        raise BusinessError("3019", "TaskName is empty")
    if int_text(params.get("DeliveryType")) not in MULTIPLE_DELIVERY_TYPES:
        raise BusinessError("3009", "DeliveryType must be one of 1, 2, 3, 7")
    entries = _target_msgs(params)
    _expired_seconds(params.get("ExpiredSeconds"), expired_min, expired_max)
    placeholders = templates[_template_name(params, templates)]
    targets = []
    for index, fields in enumerate(entries, start=1):
        values = _values(
            fields.get("TemplateKeyValue"), placeholders, f"TargetMsg.{index}.TemplateKeyValue"
        )
        extended = _extended(
            fields.get("ExtendedParams"),
            f"TargetMsg.{index}.ExtendedParams",
            MAX_TARGET_EXTENDED_PARAMS,
        )
        targets.append(TargetMessage(fields["Target"], fields["MsgKey"], values, extended))
    _extended(present(params, "ExtendedParams"))
    _channel_options(params)
    _model_extras(params)
    strategy_type, occurrences = _strategy(params, now_ms, tz)
    _live_activity(params)
    return ValidPush(tuple(targets), strategy_type, occurrences)
