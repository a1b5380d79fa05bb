"""Turn a campaign into PushTemplate business parameters and StrategyContent.

Pure functions: no database, no network, no file I/O, no settings read. The
Campaign model maps itself to a :class:`PushSpec`; everything here works on
that plain value. The contract is ``mpaas/PUSH_API.md`` §2 and §3.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

IMMEDIATE, FIXED, LOOP = 0, 1, 2
DAILY, WEEKLY, MONTHLY = 1, 2, 3
MAX_NAME_LENGTH = 128
MAX_MI_CHANNEL_ID_LENGTH = 64

STRATEGY_TYPES: dict[int, Promise] = {
    IMMEDIATE: gettext_lazy("Immediate"),
    FIXED: gettext_lazy("Fixed time"),
    LOOP: gettext_lazy("Loop"),
}
CIRCLE_TYPES: dict[int, Promise] = {
    DAILY: gettext_lazy("Daily"),
    WEEKLY: gettext_lazy("Weekly"),
    MONTHLY: gettext_lazy("Monthly"),
}
# StrategyContent numbers weekdays 1 = Monday ... 7 = Sunday (date.isoweekday()).
WEEKDAYS: dict[int, Promise] = {
    1: gettext_lazy("Monday"),
    2: gettext_lazy("Tuesday"),
    3: gettext_lazy("Wednesday"),
    4: gettext_lazy("Thursday"),
    5: gettext_lazy("Friday"),
    6: gettext_lazy("Saturday"),
    7: gettext_lazy("Sunday"),
}
DELIVERY_TYPES: dict[int, Promise] = {
    1: gettext_lazy("Android device"),
    2: gettext_lazy("iOS device"),
    3: gettext_lazy("User ID"),
    5: gettext_lazy("iOS live-activity push token"),
    6: gettext_lazy("Live-activity ID"),
    7: gettext_lazy("HarmonyOS device"),
}
CLASSIFICATIONS: dict[str, Promise] = {
    "0": gettext_lazy("Operational message (vivo)"),
    "1": gettext_lazy("System message (vivo)"),
}
NOTIFY_TYPES: dict[str, Promise] = {
    "notify": gettext_lazy("Vendor or default channel"),
    "transparent": gettext_lazy("mPaaS self-built channel"),
}
ACTIVITY_EVENTS: dict[str, Promise] = {
    "update": gettext_lazy("Update the live activity"),
    "end": gettext_lazy("End the live activity"),
}
# ExtendedParams keys mPaaS sets itself; a caller must never send them.
RESERVED_EXTENDED_KEYS = frozenset(
    {"notifyType", "action", "silent", "pushType", "templateCode", "channel", "taskId"}
)
MEANINGFUL_EXTENDED_KEYS = (
    "sound",
    "badge",
    "mutable-content",
    "badge_add_num",
    "badge_class",
    "big_text",
)

VENDORS: dict[str, Promise] = {
    "hms": gettext_lazy("Huawei (HMS)"),
    "harmonyos": gettext_lazy("HarmonyOS"),
    "honor": gettext_lazy("Honor"),
    "vivo": gettext_lazy("vivo"),
    "oppo": gettext_lazy("OPPO"),
    "xiaomi": gettext_lazy("Xiaomi"),
}
_CATEGORY_LABELS: dict[str, Promise] = {
    "IM": gettext_lazy("IM: instant messaging"),
    "VOIP": gettext_lazy("VoIP: voice and video calls"),
    "SUBSCRIPTION": gettext_lazy("SUBSCRIPTION: subscriptions"),
    "TRAVEL": gettext_lazy("TRAVEL: travel"),
    "HEALTH": gettext_lazy("HEALTH: health"),
    "WORK": gettext_lazy("WORK: work reminders"),
    "ACCOUNT": gettext_lazy("ACCOUNT: account updates"),
    "EXPRESS": gettext_lazy("EXPRESS: orders and logistics"),
    "FINANCE": gettext_lazy("FINANCE: finance"),
    "DEVICE_REMINDER": gettext_lazy("DEVICE_REMINDER: device reminders"),
    "SYSTEM_REMINDER": gettext_lazy("SYSTEM_REMINDER: system reminders"),
    "MAIL": gettext_lazy("MAIL: mail"),
    "PLAY_VOICE": gettext_lazy("PLAY_VOICE: voice broadcast (transparent messages only)"),
    "CUSTOMER_SERVICE": gettext_lazy("CUSTOMER_SERVICE: customer service"),
    "MARKETING": gettext_lazy("MARKETING: news, recommendations, promotions"),
}
_COMMON = "IM VOIP SUBSCRIPTION TRAVEL HEALTH WORK ACCOUNT EXPRESS FINANCE DEVICE_REMINDER"
# Code -> label; the codes are positions in mPaaS's published lists (1-based).
HMS_CATEGORIES: dict[str, Promise] = {
    str(code): _CATEGORY_LABELS[name]
    for code, name in enumerate(
        f"{_COMMON} SYSTEM_REMINDER MAIL PLAY_VOICE MARKETING".split(), start=1
    )
}
HARMONYOS_CATEGORIES: dict[str, Promise] = {
    str(code): _CATEGORY_LABELS[name]
    for code, name in enumerate(f"{_COMMON} MAIL CUSTOMER_SERVICE MARKETING".split(), start=1)
}
# Vendor -> code table; None means the codes are unconfirmed: free text, digits only.
THIRD_CHANNEL_CATEGORIES: dict[str, Mapping[str, Promise] | None] = {
    "hms": HMS_CATEGORIES,
    "harmonyos": HARMONYOS_CATEGORIES,
    "honor": None,
    "vivo": None,
    "oppo": None,
    "xiaomi": None,
}
NOTIFY_LEVELS: dict[str, dict[str, Promise]] = {
    "hms": {
        "1": gettext_lazy("Low: silent, no sound or vibration"),
        "2": gettext_lazy("Normal: sound and vibration"),
    },
    "oppo": {
        "1": gettext_lazy("Notification bar"),
        "2": gettext_lazy("Notification bar and lock screen"),
        "16": gettext_lazy("Notification bar, lock screen, banner, sound and vibration"),
    },
}


class ResultCode(NamedTuple):
    meaning: Promise
    retryable: bool


# PushResult codes (PUSH_API §4); keys are text because ResultCode arrives as text.
RESULT_CODES: dict[str, ResultCode] = {
    code: ResultCode(meaning, retryable)
    for codes, meaning, retryable in (
        ("3003 3007 8012", gettext_lazy("App ID or workspace missing or wrong"), False),
        ("3009", gettext_lazy("Delivery type not supported"), False),
        ("3019", gettext_lazy("Task name empty"), False),
        ("3020", gettext_lazy("Expiry wrong"), False),
        ("3026", gettext_lazy("Expiry too long"), False),
        ("3021", gettext_lazy("Target empty"), False),
        ("3022", gettext_lazy("Template does not exist"), False),
        ("3023", gettext_lazy("Template values do not match the template"), False),
        ("3028", gettext_lazy("Invalid parameter"), False),
        ("3029", gettext_lazy("Too many targets in one call"), False),
        ("3032", gettext_lazy("Push API switched off for the app"), False),
        ("3035", gettext_lazy("Too many extended parameters"), False),
        ("3044", gettext_lazy("Invalid extended parameters"), False),
        ("3043", gettext_lazy("Content too long"), False),
        ("3050", gettext_lazy("Payload too long"), False),
        ("8011", gettext_lazy("Flow control: throttled; back off and retry"), True),
        ("8013", gettext_lazy("Tenant invalid"), False),
        ("8014", gettext_lazy("No permission"), False),
    )
    for code in codes.split()
}

SUCCESS_CODES = frozenset({"OK", "100"})


def result_meaning(code: str) -> str:
    """What a ResultCode means, in words ("" when the table does not know it)."""
    if code in SUCCESS_CODES:
        return str(gettext_lazy("Accepted"))
    known = RESULT_CODES.get(code)
    return str(known.meaning) if known else ""


PLACEHOLDER_RE = re.compile(r"#(\w+)#", re.UNICODE)
SMS_TEMPLATE_CODE_RE = re.compile(r"SMS_[0-9]+")


@dataclass(frozen=True)
class Limits:
    """Configurable bounds; the lead builds one from settings when called."""

    expired_min: int = 180
    expired_max: int = 259200
    max_targets: int = 10
    max_extended_params: int = 20
    loop_max_days: int = 180


@dataclass(frozen=True)
class PushSpec:
    """Everything one PushTemplate call needs; field names are Campaign's."""

    task_name: str
    app_id: str
    workspace_id: str
    template_name: str
    template_placeholders: tuple[str, ...]
    template_values: Mapping[str, str]
    delivery_type: int
    expired_seconds: int
    timezone: str = "Asia/Shanghai"
    strategy_type: int = IMMEDIATE
    fixed_time: datetime | None = None
    loop_start_date: date | None = None
    loop_end_date: date | None = None
    loop_circle_type: int | None = None
    loop_circle_values: tuple[int, ...] = ()
    loop_time: time | None = None
    classification: str = ""
    notify_type: str = ""
    third_channel_category: Mapping[str, str] = field(default_factory=dict)
    notify_level: Mapping[str, str] = field(default_factory=dict)
    mi_channel_id: str = ""
    extended_params: Mapping[str, str] = field(default_factory=dict)
    sms_strategy: int = 0
    sms_sign_name: str = ""
    sms_template_code: str = ""
    sms_template_param: Mapping[str, str] = field(default_factory=dict)
    activity_event: str = ""
    activity_content_state: Mapping[str, Any] | None = None
    dismissal_date: datetime | None = None


class StrategyError(ValueError):
    """A spec or a call that breaks the rules; ``errors`` is keyed by PushSpec field."""

    def __init__(self, errors: Mapping[str, list[str]]):
        self.errors = {key: list(messages) for key, messages in errors.items()}
        super().__init__(" ".join(m for messages in self.errors.values() for m in messages))


def parse_placeholders(*texts: str) -> tuple[str, ...]:
    """``#name#`` placeholders in order of first appearance, each once (``##`` is none)."""
    found = (m.group(1) for text in texts if text for m in PLACEHOLDER_RE.finditer(text))
    return tuple(dict.fromkeys(found))


def render(text: str, values: Mapping[str, str]) -> str:
    """Preview: fill known placeholders, leave unknown ones as ``#name#``."""
    return PLACEHOLDER_RE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


def humanize_seconds(n: int) -> str:
    """A duration for people: "5 minutes", "72 hours", "1 day 2 hours".

    Whole days up to three read as hours ("72 hours"), the way mPaaS states its
    expiry bound; otherwise days, hours, minutes and seconds, zero parts left out.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    days, rest = divmod(n, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days and days <= 3 and not (hours or minutes or seconds):
        days, hours = 0, days * 24
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours})
    if minutes:
        parts.append(ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes})
    if seconds or not parts:
        parts.append(ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds})
    return " ".join(parts)


def validate_template_name(name: str) -> list[str]:
    """Template names are required, at most 128 characters, comma-free, untrimmed-free."""
    if not name or not name.strip():
        return [_("Template name is required.")]
    errors = []
    if name != name.strip():
        errors.append(_("Template name may not start or end with spaces."))
    if "," in name or "\uff0c" in name:
        errors.append(_("Template name may not contain commas."))
    if len(name) > MAX_NAME_LENGTH:
        errors.append(
            _("Template name may be at most %(max)d characters (it has %(n)d).")
            % {"max": MAX_NAME_LENGTH, "n": len(name)}
        )
    return errors


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def _names(items: Any) -> str:
    return ", ".join(str(i) for i in items)


def _tags(names: Any) -> str:
    return ", ".join(f"#{n}#" for n in names)


def _is_aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def validate(spec: PushSpec, *, now: datetime, limits: Limits = Limits()) -> dict[str, list[str]]:
    """Check every documented rule; errors keyed by PushSpec field ("" for non-field).

    An empty dict means the spec is valid at ``now`` (aware). Fields irrelevant to
    the chosen strategy type, and the SMS fields while SMS is off, are ignored.
    """
    if not _is_aware(now):
        raise ValueError("now must be timezone-aware")
    errors: dict[str, list[str]] = {}

    def add(key: str, message: str, **params: Any) -> None:
        errors.setdefault(key, []).append(message % params if params else message)

    if not spec.task_name.strip():
        add("task_name", _("Task name is required."))
    elif len(spec.task_name) > MAX_NAME_LENGTH:
        add("task_name", _("Task name may be at most %(max)d characters."), max=MAX_NAME_LENGTH)
    if not spec.app_id.strip():
        add("app_id", _("App ID is required."))
    if not spec.workspace_id.strip():
        add("workspace_id", _("Workspace ID is required."))
    for message in validate_template_name(spec.template_name):
        add("template_name", message)

    if missing := [p for p in spec.template_placeholders if p not in spec.template_values]:
        add("template_values", _("Template values are missing for %(p)s."), p=_tags(missing))
    if unknown := [k for k in spec.template_values if k not in spec.template_placeholders]:
        msg = _("The template has no placeholders %(p)s; remove their values.")
        add("template_values", msg, p=_tags(unknown))

    if spec.delivery_type not in DELIVERY_TYPES:
        msg = _("Delivery type must be one of %(codes)s.")
        add("delivery_type", msg, codes=_names(DELIVERY_TYPES))
    if not limits.expired_min <= spec.expired_seconds <= limits.expired_max:
        msg = _("Expiry must be between %(min)s and %(max)s (%(smin)d to %(smax)d seconds).")
        add(
            "expired_seconds",
            msg,
            min=humanize_seconds(limits.expired_min),
            max=humanize_seconds(limits.expired_max),
            smin=limits.expired_min,
            smax=limits.expired_max,
        )

    ext = spec.extended_params
    if len(ext) > limits.max_extended_params:
        msg = ngettext(
            "At most %(max)d extended parameter is allowed (there are %(n)d).",
            "At most %(max)d extended parameters are allowed (there are %(n)d).",
            limits.max_extended_params,
        )
        add("extended_params", msg, max=limits.max_extended_params, n=len(ext))
    # Case-insensitive: a near-miss like "NotifyType" is refused rather than sent.
    reserved_lower = {k.lower() for k in RESERVED_EXTENDED_KEYS}
    if reserved := [k for k in ext if k.strip().lower() in reserved_lower]:
        msg = _("Extended parameters may not use the reserved keys %(keys)s.")
        add("extended_params", msg, keys=_names(reserved))
    if any(not k.strip() for k in ext):
        add("extended_params", _("Extended parameter names may not be empty."))

    if spec.sms_strategy < 0:
        add("sms_strategy", _("SMS strategy must be 0 (off) or a positive number."))
    elif spec.sms_strategy:
        if not spec.sms_sign_name.strip():
            add("sms_sign_name", _("SMS signature is required when the SMS supplement is on."))
        if not spec.sms_template_code.strip():
            msg = _("SMS template code is required when the SMS supplement is on.")
            add("sms_template_code", msg)
        elif not SMS_TEMPLATE_CODE_RE.fullmatch(spec.sms_template_code):
            add("sms_template_code", _("SMS template code must look like SMS_123456789."))
        if not spec.sms_template_param:
            msg = _("SMS template parameters are required when the SMS supplement is on.")
            add("sms_template_param", msg)

    if spec.classification not in ("", *CLASSIFICATIONS):
        add("classification", _("Classification must be 0 (operational) or 1 (system)."))
    if spec.notify_type not in ("", *NOTIFY_TYPES):
        add("notify_type", _("Notify type must be “notify” or “transparent”."))
    for vendor, code in spec.third_channel_category.items():
        table = THIRD_CHANNEL_CATEGORIES.get(vendor, {})
        if vendor not in THIRD_CHANNEL_CATEGORIES:
            msg = _("Unknown vendor “%(vendor)s” in channel categories; use one of %(known)s.")
            add("third_channel_category", msg, vendor=vendor, known=_names(VENDORS))
        elif table is None and not (code.isascii() and code.isdigit()):
            msg = _("The %(vendor)s channel category must be digits.")
            add("third_channel_category", msg, vendor=vendor)
        elif table is not None and code not in table:
            msg = _("The %(vendor)s channel category must be one of %(codes)s.")
            add("third_channel_category", msg, vendor=vendor, codes=_names(table))
    for vendor, level in spec.notify_level.items():
        if vendor not in NOTIFY_LEVELS:
            msg = _("Notify levels exist only for %(known)s, not “%(vendor)s”.")
            add("notify_level", msg, vendor=vendor, known=_names(NOTIFY_LEVELS))
        elif level not in NOTIFY_LEVELS[vendor]:
            msg = _("The %(vendor)s notify level must be one of %(levels)s.")
            add("notify_level", msg, vendor=vendor, levels=_names(NOTIFY_LEVELS[vendor]))
    if len(spec.mi_channel_id) > MAX_MI_CHANNEL_ID_LENGTH:
        msg = _("Xiaomi channel ID may be at most %(max)d characters.")
        add("mi_channel_id", msg, max=MAX_MI_CHANNEL_ID_LENGTH)

    if spec.activity_event not in ("", *ACTIVITY_EVENTS):
        add("activity_event", _("Live-activity event must be “update” or “end”."))
    if spec.dismissal_date is not None:
        if spec.activity_event != "end":
            msg = _("A dismissal date applies only to the “end” live-activity event.")
            add("dismissal_date", msg)
        if not _is_aware(spec.dismissal_date):
            add("dismissal_date", _("Dismissal date must include a time zone."))
        elif spec.dismissal_date <= now:
            add("dismissal_date", _("Dismissal date must be in the future."))
    if spec.activity_content_state and not spec.activity_event:
        msg = _("Live-activity content state needs a live-activity event.")
        add("activity_content_state", msg)

    zone = _zone(spec.timezone)
    if zone is None:
        add("timezone", _("Unknown time zone “%(tz)s”."), tz=spec.timezone)
    if spec.strategy_type not in STRATEGY_TYPES:
        msg = _("Strategy type must be 0 (immediate), 1 (fixed time) or 2 (loop).")
        add("strategy_type", msg)
    elif spec.strategy_type == FIXED:
        if spec.fixed_time is None:
            add("fixed_time", _("Send time is required for a fixed-time push."))
        elif not _is_aware(spec.fixed_time):
            add("fixed_time", _("Send time must include a time zone."))
        elif spec.fixed_time <= now:
            add("fixed_time", _("Send time must be in the future."))
    elif spec.strategy_type == LOOP:
        _validate_loop(spec, zone, now, limits, add)
    return errors


def _validate_loop(
    spec: PushSpec, zone: ZoneInfo | None, now: datetime, limits: Limits, add: Callable[..., None]
) -> None:
    start, end, kind = spec.loop_start_date, spec.loop_end_date, spec.loop_circle_type
    if start is None:
        add("loop_start_date", _("Start date is required for a loop push."))
    if end is None:
        add("loop_end_date", _("End date is required for a loop push."))
    if spec.loop_time is None:
        add("loop_time", _("Send time of day is required for a loop push."))
    if kind is None:
        add("loop_circle_type", _("Repeat (daily, weekly or monthly) is required for a loop push."))
    elif kind not in CIRCLE_TYPES:
        add("loop_circle_type", _("Repeat must be 1 (daily), 2 (weekly) or 3 (monthly)."))

    if zone is not None:  # "today" is the credential's day: unknowable without its zone
        today = now.astimezone(zone).date()
        last = today + timedelta(days=limits.loop_max_days)
        if start is not None and start < today:
            msg = _("The loop may not start before today (%(today)s).")
            add("loop_start_date", msg, today=today.isoformat())
        if end is not None and end > last:
            msg = ngettext(
                "The loop may end at most %(days)d day after today (%(last)s).",
                "The loop may end at most %(days)d days after today (%(last)s).",
                limits.loop_max_days,
            )
            add("loop_end_date", msg, days=limits.loop_max_days, last=last.isoformat())
        elif end is not None and start is not None and end < start:
            add("loop_end_date", _("The loop must end on or after its start date."))
        elif end is not None and end < today:
            msg = _("The loop may not end before today (%(today)s).")
            add("loop_end_date", msg, today=today.isoformat())

    values = spec.loop_circle_values
    if kind == DAILY and values:
        add("loop_circle_values", _("A daily loop takes no days; clear them."))
    elif kind == WEEKLY or kind == MONTHLY:
        weekly = kind == WEEKLY
        if not values:
            msg = (
                _("Choose at least one weekday for a weekly loop.")
                if weekly
                else _("Choose at least one day of the month for a monthly loop.")
            )
            add("loop_circle_values", msg)
        elif any(type(v) is not int or not 1 <= v <= (7 if weekly else 31) for v in values):
            msg = (
                _("Weekly loop days must be between 1 (Monday) and 7 (Sunday).")
                if weekly
                else _("Monthly loop days must be between 1 and 31.")
            )
            add("loop_circle_values", msg)
        if repeated := [v for v, n in Counter(values).items() if n > 1]:
            add(
                "loop_circle_values",
                _("Loop days may not repeat: %(days)s."),
                days=_names(repeated),
            )


def check(spec: PushSpec, *, now: datetime, limits: Limits = Limits()) -> None:
    """Raise :class:`StrategyError` unless ``spec`` is valid at ``now``."""
    errors = validate(spec, now=now, limits=limits)
    if errors:
        raise StrategyError(errors)


def _ms(moment: datetime) -> int:
    return int(moment.replace(microsecond=0).timestamp()) * 1000


def strategy_content(spec: PushSpec) -> dict[str, Any] | None:
    """StrategyContent (camelCase, epoch milliseconds), or None for an immediate push.

    Fixed: ``fixedTime`` truncated to the second. Loop: ``startTime``/``endTime``
    are 00:00 of the start/end day in ``spec.timezone``; ``circleValue`` sorted,
    omitted for daily; ``time`` is ``HH:mm:ss``. Raises StrategyError when a
    needed field is missing; the time rules ("in the future") are ``validate``'s.
    """
    if spec.strategy_type == IMMEDIATE:
        return None
    if spec.strategy_type == FIXED:
        if spec.fixed_time is None or not _is_aware(spec.fixed_time):
            raise StrategyError({"fixed_time": [_("Send time with a time zone is required.")]})
        return {"fixedTime": _ms(spec.fixed_time)}
    if spec.strategy_type != LOOP:
        raise StrategyError({"strategy_type": [_("Unknown strategy type.")]})
    zone = _zone(spec.timezone)
    circle_type = spec.loop_circle_type if spec.loop_circle_type in CIRCLE_TYPES else None
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
    if spec.loop_circle_type != DAILY:
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


def template_params(
    spec: PushSpec, targets: Mapping[str, str], *, limits: Limits = Limits()
) -> dict[str, str]:
    """The PushTemplate business parameters (PascalCase) for one call.

    ``targets`` maps target id -> msgKey: 1..max_targets pairs, ids and msgKeys
    non-empty, msgKeys unique. Maps are compact JSON text with Chinese kept as
    is, integers are decimal text, empty optionals are left out. The spec is
    not re-validated here: ``check()`` it first.
    """
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
        problems.append(
            _("Message keys must be unique: %(keys)s repeat.") % {"keys": _names(repeated)}
        )
    if problems:
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
    }
    if spec.sms_strategy:  # the SMS fields mean nothing, and are not validated, while off
        optional |= {
            "SmsStrategy": str(spec.sms_strategy),
            "SmsSignName": spec.sms_sign_name,
            "SmsTemplateCode": spec.sms_template_code,
            "SmsTemplateParam": _json_or_none(spec.sms_template_param),
        }
    params.update({key: value for key, value in optional.items() if value})
    return params
