"""The mPaaS vocabulary: every code, enum and label of the push contract, defined once.

Models take their field choices from here, forms their option lists, the rules
(``mpaas/strategy.py``) their allowed values and the client (``mpaas/client.py``)
its error classification. The contract is ``mpaas/PUSH_API.md``. Labels are lazy,
so each reader sees them in their own language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

# -- enums (PUSH_API §2, §3) ------------------------------------------------------------


class DeliveryType(models.IntegerChoices):
    """What a target ID is (``DeliveryType``); there is no 4."""

    ANDROID_DEVICE = 1, _("Android device")
    IOS_DEVICE = 2, _("iOS device")
    USER_ID = 3, _("User ID")
    LIVE_ACTIVITY_TOKEN = 5, _("iOS live-activity push token")
    LIVE_ACTIVITY_ID = 6, _("Live-activity ID")
    HARMONYOS_DEVICE = 7, _("HarmonyOS device")


class StrategyType(models.IntegerChoices):
    """When a push goes out (``StrategyType``); 1 and 2 create an mPaaS scheduled task."""

    IMMEDIATE = 0, _("Immediate")
    FIXED = 1, _("Fixed time")
    LOOP = 2, _("Loop")


class CircleType(models.IntegerChoices):
    """How a loop push repeats (StrategyContent ``circleType``)."""

    DAILY = 1, _("Daily")
    WEEKLY = 2, _("Weekly")
    MONTHLY = 3, _("Monthly")


class Weekday(models.IntegerChoices):
    """StrategyContent numbers weekdays 1 = Monday ... 7 = Sunday (``date.isoweekday()``)."""

    MONDAY = 1, _("Monday")
    TUESDAY = 2, _("Tuesday")
    WEDNESDAY = 3, _("Wednesday")
    THURSDAY = 4, _("Thursday")
    FRIDAY = 5, _("Friday")
    SATURDAY = 6, _("Saturday")
    SUNDAY = 7, _("Sunday")


class Classification(models.TextChoices):
    """vivo's message class (``Classification``); blank means mPaaS's default."""

    OPERATIONAL = "0", _("Operational message (vivo)")
    SYSTEM = "1", _("System message (vivo)")


class NotifyType(models.TextChoices):
    """Which channel carries the push (``NotifyType``); blank means mPaaS's default."""

    NOTIFY = "notify", _("Vendor or default channel")
    TRANSPARENT = "transparent", _("mPaaS self-built channel")


class PushAction(models.IntegerChoices):
    """What a tap on the message opens (``PushAction``): PushSimple's page documents 0 and 1
    (default Web URL); the PushTemplate page does not list the field (the model has it)."""

    WEB_URL = 0, _("Open the web URL")
    INTENT = 1, _("Open an in-app page (Intent Activity)")


class Silent(models.IntegerChoices):
    """Whether the message is shown (``Silent``): 1 silent, 0 shown (PushSimple's page)."""

    SHOWN = 0, _("Shown in the notification bar")
    SILENT = 1, _("Silent (not shown on the device)")


class TransparentUrgency(models.TextChoices):
    """``TransparentMessageUrgency`` (transparent messages only). The values are not
    documented by mPaaS; HIGH and NORMAL follow the vendors' (FCM, HMS) urgency."""

    HIGH = "HIGH", _("High")
    NORMAL = "NORMAL", _("Normal")


# PushTemplate fields the 2019-08-21 SDK (aliyun-python-sdk-mpaas 1.0.0) has; a campaign on
# a credential of that version that uses others is warned on review (wire names).
V2019_PUSH_TEMPLATE_PARAMS = frozenset(
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
        "PushAction",
        "Silent",
    }
)


class ActivityEvent(models.TextChoices):
    """What an iOS live-activity push does (``ActivityEvent``)."""

    UPDATE = "update", _("Update the live activity")
    END = "end", _("End the live activity")


class Vendor(models.TextChoices):
    """Phone vendors whose channel options (category, level) a push may set."""

    HMS = "hms", _("Huawei (HMS)")
    HARMONYOS = "harmonyos", _("HarmonyOS")
    HONOR = "honor", _("Honor")
    VIVO = "vivo", _("vivo")
    OPPO = "oppo", _("OPPO")
    XIAOMI = "xiaomi", _("Xiaomi")


# -- extended parameters ------------------------------------------------------------------

# ExtendedParams keys mPaaS sets itself; a caller must never send them.
RESERVED_EXTENDED_KEYS = frozenset(
    {"notifyType", "action", "silent", "pushType", "templateCode", "channel", "taskId"}
)
# Keys the phones act on; anything else is passed through to the app.
MEANINGFUL_EXTENDED_KEYS = (
    "sound",
    "badge",
    "mutable-content",
    "badge_add_num",
    "badge_class",
    "big_text",
)

# -- vendor channel categories and notify levels ----------------------------------------

_CATEGORY_LABELS: dict[str, Promise] = {
    "IM": _("IM: instant messaging"),
    "VOIP": _("VoIP: voice and video calls"),
    "SUBSCRIPTION": _("SUBSCRIPTION: subscriptions"),
    "TRAVEL": _("TRAVEL: travel"),
    "HEALTH": _("HEALTH: health"),
    "WORK": _("WORK: work reminders"),
    "ACCOUNT": _("ACCOUNT: account updates"),
    "EXPRESS": _("EXPRESS: orders and logistics"),
    "FINANCE": _("FINANCE: finance"),
    "DEVICE_REMINDER": _("DEVICE_REMINDER: device reminders"),
    "SYSTEM_REMINDER": _("SYSTEM_REMINDER: system reminders"),
    "MAIL": _("MAIL: mail"),
    "PLAY_VOICE": _("PLAY_VOICE: voice broadcast (transparent messages only)"),
    "CUSTOMER_SERVICE": _("CUSTOMER_SERVICE: customer service"),
    "MARKETING": _("MARKETING: news, recommendations, promotions"),
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
# Vendor -> code table (``ThirdChannelCategory``); None means the codes are
# unconfirmed: free text, digits only.
THIRD_CHANNEL_CATEGORIES: dict[str, Mapping[str, Promise] | None] = {
    Vendor.HMS.value: HMS_CATEGORIES,
    Vendor.HARMONYOS.value: HARMONYOS_CATEGORIES,
    Vendor.HONOR.value: None,
    Vendor.VIVO.value: None,
    Vendor.OPPO.value: None,
    Vendor.XIAOMI.value: None,
}
# Vendor -> level -> label (``NotifyLevel``); only these vendors have levels.
NOTIFY_LEVELS: dict[str, dict[str, Promise]] = {
    Vendor.HMS.value: {
        "1": _("Low: silent, no sound or vibration"),
        "2": _("Normal: sound and vibration"),
    },
    Vendor.OPPO.value: {
        "1": _("Notification bar"),
        "2": _("Notification bar and lock screen"),
        "16": _("Notification bar, lock screen, banner, sound and vibration"),
    },
}

# -- answers (PUSH_API §4) ----------------------------------------------------------------


class ResultCode(NamedTuple):
    meaning: Promise
    retryable: bool


# PushResult codes of a refused call (HTTP 200, Success=false); keys are text because
# ResultCode arrives as text. ``retryable`` decides transient vs permanent in the client.
RESULT_CODES: dict[str, ResultCode] = {
    code: ResultCode(meaning, retryable)
    for codes, meaning, retryable in (
        ("3003 3007 8012", _("App ID or workspace missing or wrong"), False),
        ("3009", _("Delivery type not supported"), False),
        ("3019", _("Task name empty"), False),
        ("3020", _("Expiry wrong"), False),
        ("3026", _("Expiry too long"), False),
        ("3021", _("Target empty"), False),
        ("3022", _("Template does not exist"), False),
        ("3023", _("Template values do not match the template"), False),
        ("3028", _("Invalid parameter"), False),
        ("3029", _("Too many targets in one call"), False),
        ("3032", _("Push API switched off for the app"), False),
        ("3035", _("Too many extended parameters"), False),
        ("3044", _("Invalid extended parameters"), False),
        ("3043", _("Content too long"), False),
        ("3050", _("Payload too long"), False),
        ("3049", _("Too many per-target extended parameters (fewer than 10)"), False),
        ("MESSAGE_NOT_FOUND", _("Recall: no such message to this target"), False),
        ("MESSAGE_ALREADY_REVOKED", _("Recall: the message was recalled already"), False),
        ("MESSAGE_TOO_OLD", _("Recall: sent more than 7 days ago"), False),
        ("8011", _("Flow control: throttled; back off and retry"), True),
        ("8013", _("Tenant invalid"), False),
        ("8014", _("No permission"), False),
    )
    for code in codes.split()
}
# ResultCodes of an accepted call (the answer may also carry PushResult.Success).
SUCCESS_RESULT_CODES = frozenset({"OK", "100", "SUCCESS"})
# Gateway error codes (HTTP 4xx/5xx ``Code``) worth retrying; any 5xx is too.
RETRYABLE_GATEWAY_CODES = frozenset(
    {"Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable", "InternalError"}
)


def is_success(code: str) -> bool:
    """Whether a ResultCode says mPaaS accepted the call."""
    return code in SUCCESS_RESULT_CODES


def is_retryable(code: str) -> bool:
    """Whether a refused call's ResultCode is worth retrying; unknown codes are not."""
    known = RESULT_CODES.get(code)
    return known is not None and known.retryable


def is_retryable_gateway(code: str, http_status: int | None) -> bool:
    """Whether a gateway error (HTTP 4xx/5xx) is worth retrying: throttling, any 5xx."""
    return code in RETRYABLE_GATEWAY_CODES or (http_status is not None and http_status >= 500)


def result_label(code: str) -> str:
    """What a ResultCode means, for people: its meaning, "Accepted", or "" if unknown."""
    known = RESULT_CODES.get(code)
    if known is not None:
        return str(known.meaning)
    return str(_("Accepted")) if is_success(code) else ""


# -- display ------------------------------------------------------------------------------


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
