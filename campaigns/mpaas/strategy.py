"""The rules of a PushTemplate call: PushSpec, Limits, and validate, one check per section.

Pure functions: no database, no network, no file I/O, no settings read. The
Campaign model maps itself to a :class:`PushSpec`; everything here works on
that plain value. ``validate`` composes one check per section of the call
(basics, template values, delivery, expiry, extended params, SMS, channel
options, live activity, schedule); ``wire`` writes the checked spec as wire
parameters. The contract is ``mpaas/PUSH_API.md`` §2 and §3; codes, enums and
labels come from ``vocabulary``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .vocabulary import (
    NOTIFY_LEVELS,
    RESERVED_EXTENDED_KEYS,
    THIRD_CHANNEL_CATEGORIES,
    ActivityEvent,
    CircleType,
    Classification,
    DeliveryType,
    NotifyType,
    PushAction,
    Silent,
    StrategyType,
    TransparentUrgency,
    Vendor,
    humanize_seconds,
)

MAX_NAME_LENGTH = 128
MAX_MI_CHANNEL_ID_LENGTH = 64
MAX_CHANNEL_ID_LENGTH = 64
PLACEHOLDER_RE = re.compile(r"#(\w+)#", re.UNICODE)
SMS_TEMPLATE_CODE_RE = re.compile(r"SMS_[0-9]+")

# One broken rule: (PushSpec field or "" for none, message for people).
Problem = tuple[str, str]


@dataclass(frozen=True)
class Limits:
    """Configurable bounds; `campaigns.conf.push_limits()` builds one from settings when called."""

    expired_min: int = 180
    expired_max: int = 259200
    max_targets: int = 10
    max_extended_params: int = 20
    loop_max_days: int = 180
    # Not documented by mPaaS (3050 says "payload too long" without a number): settings.
    transparent_payload_max_bytes: int = 4096
    vendor_template_max_bytes: int = 4096


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
    strategy_type: int = StrategyType.IMMEDIATE
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
    transparent_payload: Mapping[str, Any] | None = None
    transparent_urgency: str = ""
    push_action: int | None = None
    silent: int | None = None
    channel_id: str = ""
    vendor_template: Mapping[str, Any] | None = None
    # Placeholders each target fills with its own value (PushMultiple): no fixed value.
    per_person: tuple[str, ...] = ()


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


def zone_or_none(name: str) -> ZoneInfo | None:
    """The time zone called ``name``, or None when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def _names(items: Iterable[Any]) -> str:
    return ", ".join(str(i) for i in items)


def _tags(names: Iterable[str]) -> str:
    return ", ".join(f"#{n}#" for n in names)


def is_aware(value: datetime) -> bool:
    """Whether ``value`` carries a time zone that gives it an offset."""
    return value.tzinfo is not None and value.utcoffset() is not None


def validate(spec: PushSpec, *, now: datetime, limits: Limits = Limits()) -> dict[str, list[str]]:
    """Check every documented rule; errors keyed by PushSpec field ("" for non-field).

    An empty dict means the spec is valid at ``now`` (aware). Fields irrelevant to
    the chosen strategy type, and the SMS fields while SMS is off, are ignored.
    """
    if not is_aware(now):
        raise ValueError("now must be timezone-aware")
    errors: dict[str, list[str]] = {}
    for key, message in chain(
        _basics(spec),
        _template_values(spec),
        _delivery(spec),
        _expiry(spec, limits),
        _extended_params(spec, limits),
        _sms(spec),
        _channel_options(spec),
        _transparent(spec, limits),
        _display(spec),
        _vendor_template(spec, limits),
        _live_activity(spec, now),
        _schedule(spec, now, limits),
    ):
        errors.setdefault(key, []).append(message)
    return errors


def check(spec: PushSpec, *, now: datetime, limits: Limits = Limits()) -> None:
    """Raise :class:`StrategyError` unless ``spec`` is valid at ``now``."""
    errors = validate(spec, now=now, limits=limits)
    if errors:
        raise StrategyError(errors)


def _basics(spec: PushSpec) -> Iterator[Problem]:
    """Task name, app, workspace and template name."""
    if not spec.task_name.strip():
        yield "task_name", _("Task name is required.")
    elif len(spec.task_name) > MAX_NAME_LENGTH:
        msg = _("Task name may be at most %(max)d characters.")
        yield "task_name", msg % {"max": MAX_NAME_LENGTH}
    if not spec.app_id.strip():
        yield "app_id", _("App ID is required.")
    if not spec.workspace_id.strip():
        yield "workspace_id", _("Workspace ID is required.")
    for message in validate_template_name(spec.template_name):
        yield "template_name", message


def _template_values(spec: PushSpec) -> Iterator[Problem]:
    """One value for each placeholder of the template, and no others."""
    given = set(spec.template_values) | set(spec.per_person)
    if missing := [p for p in spec.template_placeholders if p not in given]:
        msg = _("Template values are missing for %(p)s.")
        yield "template_values", msg % {"p": _tags(missing)}
    if unknown := [k for k in spec.template_values if k not in spec.template_placeholders]:
        msg = _("The template has no placeholders %(p)s; remove their values.")
        yield "template_values", msg % {"p": _tags(unknown)}


def _delivery(spec: PushSpec) -> Iterator[Problem]:
    """A known delivery type (what the target IDs are)."""
    if spec.delivery_type not in DeliveryType.values:
        msg = _("Delivery type must be one of %(codes)s.")
        yield "delivery_type", msg % {"codes": _names(DeliveryType.values)}


def _expiry(spec: PushSpec, limits: Limits) -> Iterator[Problem]:
    """ExpiredSeconds within the configured bounds."""
    if not limits.expired_min <= spec.expired_seconds <= limits.expired_max:
        msg = _("Expiry must be between %(min)s and %(max)s (%(smin)d to %(smax)d seconds).")
        bounds = {
            "min": humanize_seconds(limits.expired_min),
            "max": humanize_seconds(limits.expired_max),
            "smin": limits.expired_min,
            "smax": limits.expired_max,
        }
        yield "expired_seconds", msg % bounds


def _extended_params(spec: PushSpec, limits: Limits) -> Iterator[Problem]:
    """Few enough extended parameters, none reserved, none unnamed."""
    ext = spec.extended_params
    if len(ext) > limits.max_extended_params:
        msg = ngettext(
            "At most %(max)d extended parameter is allowed (there are %(n)d).",
            "At most %(max)d extended parameters are allowed (there are %(n)d).",
            limits.max_extended_params,
        )
        yield "extended_params", msg % {"max": limits.max_extended_params, "n": len(ext)}
    # Case-insensitive: a near-miss like "NotifyType" is refused rather than sent.
    reserved_lower = {k.lower() for k in RESERVED_EXTENDED_KEYS}
    if reserved := [k for k in ext if k.strip().lower() in reserved_lower]:
        msg = _("Extended parameters may not use the reserved keys %(keys)s.")
        yield "extended_params", msg % {"keys": _names(reserved)}
    if any(not k.strip() for k in ext):
        yield "extended_params", _("Extended parameter names may not be empty.")


def _sms(spec: PushSpec) -> Iterator[Problem]:
    """The SMS supplement: off (0), or on with signature, template code and parameters."""
    if spec.sms_strategy < 0:
        yield "sms_strategy", _("SMS strategy must be 0 (off) or a positive number.")
        return
    if not spec.sms_strategy:
        return
    if not spec.sms_sign_name.strip():
        yield "sms_sign_name", _("SMS signature is required when the SMS supplement is on.")
    if not spec.sms_template_code.strip():
        msg = _("SMS template code is required when the SMS supplement is on.")
        yield "sms_template_code", msg
    elif not SMS_TEMPLATE_CODE_RE.fullmatch(spec.sms_template_code):
        yield "sms_template_code", _("SMS template code must look like SMS_123456789.")
    if not spec.sms_template_param:
        msg = _("SMS template parameters are required when the SMS supplement is on.")
        yield "sms_template_param", msg


def _channel_options(spec: PushSpec) -> Iterator[Problem]:
    """Classification, notify type, vendor categories and levels, Xiaomi channel."""
    if spec.classification not in ("", *Classification.values):
        yield "classification", _("Classification must be 0 (operational) or 1 (system).")
    if spec.notify_type not in ("", *NotifyType.values):
        yield "notify_type", _("Notify type must be “notify” or “transparent”.")
    yield from _vendor_categories(spec.third_channel_category)
    yield from _notify_levels(spec.notify_level)
    if len(spec.mi_channel_id) > MAX_MI_CHANNEL_ID_LENGTH:
        msg = _("Xiaomi channel ID may be at most %(max)d characters.")
        yield "mi_channel_id", msg % {"max": MAX_MI_CHANNEL_ID_LENGTH}


def json_size(value: Any) -> int:
    """Bytes of ``value`` as the wire sends it (compact JSON, UTF-8, Chinese kept)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _transparent(spec: PushSpec, limits: Limits) -> Iterator[Problem]:
    """A transparent message (NotifyType transparent) carries a JSON-object payload of
    bounded size and may have an urgency; neither field means anything otherwise."""
    transparent = spec.notify_type == NotifyType.TRANSPARENT
    payload = spec.transparent_payload
    if transparent and not payload:
        msg = _("A transparent message needs a payload (a JSON object).")
        yield "transparent_payload", msg
    elif not transparent and payload:
        msg = _("A payload is sent only with the notify type “transparent”.")
        yield "transparent_payload", msg
    elif payload and not isinstance(payload, Mapping):
        yield "transparent_payload", _("The payload must be a JSON object.")
    elif payload and json_size(payload) > limits.transparent_payload_max_bytes:
        msg = _("The payload may be at most %(max)d bytes as JSON (it has %(n)d).")
        max_n = {"max": limits.transparent_payload_max_bytes, "n": json_size(payload)}
        yield "transparent_payload", msg % max_n
    urgency = spec.transparent_urgency
    if urgency and urgency not in TransparentUrgency.values:
        msg = _("Urgency must be one of %(values)s.")
        yield "transparent_urgency", msg % {"values": _names(TransparentUrgency.values)}
    elif urgency and not transparent:
        msg = _("Urgency is sent only with the notify type “transparent”.")
        yield "transparent_urgency", msg


def _display(spec: PushSpec) -> Iterator[Problem]:
    """What a tap opens (PushAction), whether the message is shown (Silent), ChannelId."""
    if spec.push_action is not None and spec.push_action not in PushAction.values:
        msg = _("Tap action must be 0 (web URL) or 1 (in-app page).")
        yield "push_action", msg
    if spec.silent is not None and spec.silent not in Silent.values:
        yield "silent", _("Silent must be 0 (shown) or 1 (silent).")
    channel = spec.channel_id
    if len(channel) > MAX_CHANNEL_ID_LENGTH:
        msg = _("Channel ID may be at most %(max)d characters.")
        yield "channel_id", msg % {"max": MAX_CHANNEL_ID_LENGTH}
    elif channel and (channel != channel.strip() or any(c.isspace() for c in channel)):
        yield "channel_id", _("Channel ID may not contain spaces.")


def _vendor_template(spec: PushSpec, limits: Limits) -> Iterator[Problem]:
    """VendorTemplate: a JSON object of bounded size (its keys are not documented)."""
    value = spec.vendor_template
    if value is None or value == {}:
        return
    if not isinstance(value, Mapping):
        yield "vendor_template", _("The vendor template must be a JSON object.")
    elif json_size(value) > limits.vendor_template_max_bytes:
        msg = _("The vendor template may be at most %(max)d bytes as JSON (it has %(n)d).")
        max_n = {"max": limits.vendor_template_max_bytes, "n": json_size(value)}
        yield "vendor_template", msg % max_n


def _vendor_categories(categories: Mapping[str, str]) -> Iterator[Problem]:
    """Each vendor known; its code from its table, or digits where codes are unconfirmed."""
    for vendor, code in categories.items():
        if vendor not in THIRD_CHANNEL_CATEGORIES:
            msg = _("Unknown vendor “%(vendor)s” in channel categories; use one of %(known)s.")
            yield "third_channel_category", msg % {"vendor": vendor, "known": _names(Vendor.values)}
            continue
        table = THIRD_CHANNEL_CATEGORIES[vendor]
        if table is None and not (code.isascii() and code.isdigit()):
            msg = _("The %(vendor)s channel category must be digits.")
            yield "third_channel_category", msg % {"vendor": vendor}
        elif table is not None and code not in table:
            msg = _("The %(vendor)s channel category must be one of %(codes)s.")
            yield "third_channel_category", msg % {"vendor": vendor, "codes": _names(table)}


def _notify_levels(levels: Mapping[str, str]) -> Iterator[Problem]:
    """Levels only for vendors that have them, each from that vendor's list."""
    for vendor, level in levels.items():
        if vendor not in NOTIFY_LEVELS:
            msg = _("Notify levels exist only for %(known)s, not “%(vendor)s”.")
            yield "notify_level", msg % {"vendor": vendor, "known": _names(NOTIFY_LEVELS)}
        elif level not in NOTIFY_LEVELS[vendor]:
            msg = _("The %(vendor)s notify level must be one of %(levels)s.")
            yield "notify_level", msg % {"vendor": vendor, "levels": _names(NOTIFY_LEVELS[vendor])}


def _live_activity(spec: PushSpec, now: datetime) -> Iterator[Problem]:
    """iOS live activity: a known event; a future dismissal date only with "end"."""
    if spec.activity_event not in ("", *ActivityEvent.values):
        yield "activity_event", _("Live-activity event must be “update” or “end”.")
    if spec.dismissal_date is not None:
        if spec.activity_event != ActivityEvent.END:
            msg = _("A dismissal date applies only to the “end” live-activity event.")
            yield "dismissal_date", msg
        if not is_aware(spec.dismissal_date):
            yield "dismissal_date", _("Dismissal date must include a time zone.")
        elif spec.dismissal_date <= now:
            yield "dismissal_date", _("Dismissal date must be in the future.")
    if spec.activity_content_state and not spec.activity_event:
        msg = _("Live-activity content state needs a live-activity event.")
        yield "activity_content_state", msg


def _schedule(spec: PushSpec, now: datetime, limits: Limits) -> Iterator[Problem]:
    """A known time zone and strategy type, then the fixed-time or loop fields."""
    zone = zone_or_none(spec.timezone)
    if zone is None:
        yield "timezone", _("Unknown time zone “%(tz)s”.") % {"tz": spec.timezone}
    if spec.strategy_type not in StrategyType.values:
        msg = _("Strategy type must be 0 (immediate), 1 (fixed time) or 2 (loop).")
        yield "strategy_type", msg
    elif spec.strategy_type == StrategyType.FIXED:
        yield from _fixed(spec, now)
    elif spec.strategy_type == StrategyType.LOOP:
        yield from _loop_fields(spec)
        if zone is not None:  # "today" is the credential's day: unknowable without its zone
            yield from _loop_dates(spec, now.astimezone(zone).date(), limits)
        yield from _loop_days(spec)


def _fixed(spec: PushSpec, now: datetime) -> Iterator[Problem]:
    """A fixed-time push: an aware send time in the future."""
    if spec.fixed_time is None:
        yield "fixed_time", _("Send time is required for a fixed-time push.")
    elif not is_aware(spec.fixed_time):
        yield "fixed_time", _("Send time must include a time zone.")
    elif spec.fixed_time <= now:
        yield "fixed_time", _("Send time must be in the future.")


def _loop_fields(spec: PushSpec) -> Iterator[Problem]:
    """A loop push: start, end, time of day and a known repeat."""
    if spec.loop_start_date is None:
        yield "loop_start_date", _("Start date is required for a loop push.")
    if spec.loop_end_date is None:
        yield "loop_end_date", _("End date is required for a loop push.")
    if spec.loop_time is None:
        yield "loop_time", _("Send time of day is required for a loop push.")
    kind = spec.loop_circle_type
    if kind is None:
        msg = _("Repeat (daily, weekly or monthly) is required for a loop push.")
        yield "loop_circle_type", msg
    elif kind not in CircleType.values:
        yield "loop_circle_type", _("Repeat must be 1 (daily), 2 (weekly) or 3 (monthly).")


def _loop_dates(spec: PushSpec, today: date, limits: Limits) -> Iterator[Problem]:
    """Loop dates within [today, today + loop_max_days], the end not before the start."""
    start, end = spec.loop_start_date, spec.loop_end_date
    last = today + timedelta(days=limits.loop_max_days)
    if start is not None and start < today:
        msg = _("The loop may not start before today (%(today)s).")
        yield "loop_start_date", msg % {"today": today.isoformat()}
    if end is None:
        return
    if end > last:
        msg = ngettext(
            "The loop may end at most %(days)d day after today (%(last)s).",
            "The loop may end at most %(days)d days after today (%(last)s).",
            limits.loop_max_days,
        )
        yield "loop_end_date", msg % {"days": limits.loop_max_days, "last": last.isoformat()}
    elif start is not None and end < start:
        yield "loop_end_date", _("The loop must end on or after its start date.")
    elif end < today:
        msg = _("The loop may not end before today (%(today)s).")
        yield "loop_end_date", msg % {"today": today.isoformat()}


# Circle type -> (highest day number, "none chosen" message, "out of range" message).
_LOOP_DAYS: dict[int, tuple[int, Promise, Promise]] = {
    CircleType.WEEKLY: (
        7,
        gettext_lazy("Choose at least one weekday for a weekly loop."),
        gettext_lazy("Weekly loop days must be between 1 (Monday) and 7 (Sunday)."),
    ),
    CircleType.MONTHLY: (
        31,
        gettext_lazy("Choose at least one day of the month for a monthly loop."),
        gettext_lazy("Monthly loop days must be between 1 and 31."),
    ),
}


def _loop_days(spec: PushSpec) -> Iterator[Problem]:
    """Loop days: none for daily; 1-7 weekdays or 1-31 month days, at least one, no repeats."""
    kind, values = spec.loop_circle_type, spec.loop_circle_values
    if kind == CircleType.DAILY and values:
        yield "loop_circle_values", _("A daily loop takes no days; clear them.")
    if kind not in _LOOP_DAYS:
        return
    top, none_chosen, out_of_range = _LOOP_DAYS[kind]
    if not values:
        yield "loop_circle_values", str(none_chosen)
    elif any(type(v) is not int or not 1 <= v <= top for v in values):
        yield "loop_circle_values", str(out_of_range)
    if repeated := [v for v, n in Counter(values).items() if n > 1]:
        msg = _("Loop days may not repeat: %(days)s.")
        yield "loop_circle_values", msg % {"days": _names(repeated)}
