"""The wire format of a PushTemplate call: business parameters and StrategyContent.

Pure functions over a :class:`~campaigns.mpaas.strategy.PushSpec` (no database, no
network, no settings read); the rules the spec must pass first are ``strategy.validate``.
The contract is ``mpaas/PUSH_API.md`` §2 and §3.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .strategy import Limits, PushSpec, StrategyError, is_aware, zone_or_none
from .vocabulary import V2019_PUSH_TEMPLATE_PARAMS, CircleType, NotifyType, StrategyType

_DEFAULT_LIMITS = Limits()


def _ms(moment: datetime) -> int:
    return int(moment.replace(microsecond=0).timestamp()) * 1000


def strategy_content(spec: PushSpec) -> dict[str, Any] | None:
    """StrategyContent (camelCase, epoch milliseconds), or None for an immediate push.

    Fixed: ``fixedTime`` truncated to the second. Loop: ``startTime``/``endTime``
    are 00:00 of the start/end day in ``spec.timezone``; ``circleValue`` sorted,
    omitted for daily; ``time`` is ``HH:mm:ss``. Raises StrategyError when a
    needed field is missing; the time rules ("in the future") are ``validate``'s.
    """
    if spec.strategy_type == StrategyType.IMMEDIATE:
        return None
    if spec.strategy_type == StrategyType.FIXED:
        if spec.fixed_time is None or not is_aware(spec.fixed_time):
            raise StrategyError({"fixed_time": [_("Send time with a time zone is required.")]})
        return {"fixedTime": _ms(spec.fixed_time)}
    if spec.strategy_type != StrategyType.LOOP:
        raise StrategyError({"strategy_type": [_("Unknown strategy type.")]})
    zone = zone_or_none(spec.timezone)
    circle_type = spec.loop_circle_type if spec.loop_circle_type in CircleType.values else None
    needed = {
        "timezone": zone,
        "loop_start_date": spec.loop_start_date,
        "loop_end_date": spec.loop_end_date,
        "loop_circle_type": circle_type,
        "loop_time": spec.loop_time,
    }
    missing = [key for key, value in needed.items() if value is None]
    if missing:
        message = _("This field is missing or invalid for a loop push.")
        raise StrategyError({key: [message] for key in missing})
    content: dict[str, Any] = {
        "startTime": _ms(datetime.combine(spec.loop_start_date, time(0), tzinfo=zone)),
        "endTime": _ms(datetime.combine(spec.loop_end_date, time(0), tzinfo=zone)),
        "circleType": spec.loop_circle_type,
    }
    if spec.loop_circle_type != CircleType.DAILY:
        content["circleValue"] = sorted(spec.loop_circle_values)
    content["time"] = spec.loop_time.strftime("%H:%M:%S")
    return content


def strategy_content_json(spec: PushSpec) -> str | None:
    """StrategyContent as compact JSON text, or None for an immediate push."""
    content = strategy_content(spec)
    return None if content is None else json.dumps(content, separators=(",", ":"))


def _json(value: Mapping[str, Any]) -> str:
    # The SDK would send a dict as its Python repr; the wire wants JSON text.
    return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"))


def _json_or_none(value: Mapping[str, Any] | None) -> str | None:
    return _json(value) if value else None


def _int_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


def _target_problems(targets: Mapping[str, str], limits: Limits) -> list[str]:
    """1..max_targets targets, no empty ID or msgKey, no msgKey twice."""
    problems = []
    if not targets:
        problems.append(_("At least one target is required."))
    elif len(targets) > limits.max_targets:
        problems.append(
            ngettext(
                "At most %(max)d target may go in one call (there are %(n)d).",
                "At most %(max)d targets may go in one call (there are %(n)d).",
                limits.max_targets,
            )
            % {"max": limits.max_targets, "n": len(targets)}
        )
    if any(not str(t).strip() for t in targets):
        problems.append(_("Target IDs may not be empty."))
    if any(not str(k).strip() for k in targets.values()):
        problems.append(_("Message keys may not be empty."))
    repeated = [k for k, n in Counter(targets.values()).items() if n > 1]
    if repeated:
        keys = ", ".join(str(k) for k in repeated)
        problems.append(_("Message keys must be unique: %(keys)s repeat.") % {"keys": keys})
    return problems


def template_params(
    spec: PushSpec, targets: Mapping[str, str], *, limits: Limits = _DEFAULT_LIMITS
) -> dict[str, str]:
    """The PushTemplate business parameters (PascalCase) for one call.

    ``targets`` maps target id -> msgKey: 1..max_targets pairs, ids and msgKeys
    non-empty, msgKeys unique. Maps are compact JSON text with Chinese kept as
    is, integers are decimal text, empty optionals are left out. The spec is
    not re-validated here: ``check()`` it first.
    """
    if problems := _target_problems(targets, limits):
        raise StrategyError({"": problems})

    params = {
        "AppId": spec.app_id,
        "WorkspaceId": spec.workspace_id,
        "TaskName": spec.task_name,
        "TemplateName": spec.template_name,
        "TemplateKeyValue": _json(spec.template_values),
        "DeliveryType": str(spec.delivery_type),
        "TargetMsgkey": _json(targets),
        "ExpiredSeconds": str(spec.expired_seconds),
    }
    optional = _optional(spec)
    if spec.sms_strategy:  # the SMS fields mean nothing, and are not validated, while off
        optional |= {
            "SmsStrategy": str(spec.sms_strategy),
            "SmsSignName": spec.sms_sign_name,
            "SmsTemplateCode": spec.sms_template_code,
            "SmsTemplateParam": _json_or_none(spec.sms_template_param),
        }
    params.update({key: value for key, value in optional.items() if value})
    return params


def _optional(spec: PushSpec) -> dict[str, str | None]:
    """The optional fields PushTemplate and PushMultiple share (SMS is PushTemplate's)."""
    dismissal = spec.dismissal_date
    optional: dict[str, str | None] = {
        "ExtendedParams": _json_or_none(spec.extended_params),
        "NotifyType": spec.notify_type,
        "Classification": spec.classification,
        "StrategyType": str(spec.strategy_type) if spec.strategy_type else None,
        "StrategyContent": strategy_content_json(spec),
        "ThirdChannelCategory": _json_or_none(spec.third_channel_category),
        "NotifyLevel": _json_or_none(spec.notify_level),
        "MiChannelId": spec.mi_channel_id,
        "ActivityEvent": spec.activity_event,
        "ActivityContentState": _json_or_none(spec.activity_content_state),
        "DismissalDate": str(int(dismissal.timestamp())) if dismissal else None,
        "PushAction": _int_or_none(spec.push_action),
        "Silent": _int_or_none(spec.silent),
        "ChannelId": spec.channel_id,
        "VendorTemplate": _json_or_none(spec.vendor_template),
    }
    if spec.notify_type == NotifyType.TRANSPARENT:  # meaningless (and refused) otherwise
        optional |= {
            "TransparentMessagePayload": _json_or_none(spec.transparent_payload),
            "TransparentMessageUrgency": spec.transparent_urgency,
        }
    return optional


def beyond_api_version(api_version: str, params: Mapping[str, str]) -> list[str]:
    """Wire names in ``params`` that the only SDK of ``api_version`` lacks, sorted: for
    2019-08-21 (``aliyun-python-sdk-mpaas`` 1.0.0, 12 PushTemplate fields) everything
    else; none for 2020-10-28, whose SDKs have them all. Whether the live service honours
    them under 2019-08-21 is unconfirmed: a warning, not a refusal."""
    if api_version != "2019-08-21":
        return []
    return sorted(set(params) - V2019_PUSH_TEMPLATE_PARAMS)


def multiple_params(
    spec: PushSpec, targets: list[tuple[str, str, Mapping[str, str]]], *, max_targets: int = 100
) -> dict[str, str]:
    """The PushMultiple business parameters for one call, flattened as the official
    ``PushMultipleRequest`` is: ``TargetMsg.N.Target``, ``TargetMsg.N.MsgKey`` and
    ``TargetMsg.N.TemplateKeyValue`` (N from 1), no top-level TargetMsgkey,
    TemplateKeyValue or SMS fields.

    ``targets`` are (target id, msgKey, own values) in order; each target's
    TemplateKeyValue is the spec's fixed values (of placeholders not per person)
    overlaid with its own. A placeholder
    left without a non-empty value raises StrategyError: nothing is ever sent empty."""
    problems = _target_problems({t: k for t, k, _v in targets}, Limits(max_targets=max_targets))
    if len({t for t, _k, _v in targets}) != len(targets):
        problems.append(_("A target may appear only once in a call."))
    if problems:
        raise StrategyError({"": problems})
    params = {
        "AppId": spec.app_id,
        "WorkspaceId": spec.workspace_id,
        "TaskName": spec.task_name,
        "TemplateName": spec.template_name,
        "DeliveryType": str(spec.delivery_type),
        "ExpiredSeconds": str(spec.expired_seconds),
    }
    params.update({key: value for key, value in _optional(spec).items() if value})
    for n, (target, key, own) in enumerate(targets, start=1):
        fixed = {k: v for k, v in spec.template_values.items() if k not in spec.per_person}
        values = {**fixed, **dict(own or {})}
        # a per-person placeholder never falls back to the fixed value
        missing = [p for p in spec.template_placeholders if not str(values.get(p) or "").strip()]
        if missing:
            raise StrategyError(
                {
                    "": [
                        _("Target %(target)s has no value for %(names)s.")
                        % {"target": target, "names": ", ".join(missing)}
                    ]
                }
            )
        params[f"TargetMsg.{n}.Target"] = target
        params[f"TargetMsg.{n}.MsgKey"] = key
        params[f"TargetMsg.{n}.TemplateKeyValue"] = _json(values)
    return params


def revoke_params(spec: PushSpec, message_id: str, target_id: str) -> dict[str, str]:
    """The RevokePushMessage business parameters: MessageId is the msgKey it was sent with."""
    if not message_id or not target_id:
        raise StrategyError({"": [_("A recall needs the message's msgKey and its target.")]})
    return {
        "AppId": spec.app_id,
        "WorkspaceId": spec.workspace_id,
        "MessageId": message_id,
        "TargetId": target_id,
    }
