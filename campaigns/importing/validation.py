"""Whether a value can be a target ID of a delivery type: the per-type rules."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from campaigns.models import Target
from campaigns.mpaas.vocabulary import DeliveryType

TARGET_ID_MAX_LENGTH: int = Target._meta.get_field("target_id").max_length

_ASCII_ID = re.compile(r"[A-Za-z0-9_.:\-]+")
_ALLOWED = {
    DeliveryType.ANDROID_DEVICE: _ASCII_ID,
    DeliveryType.IOS_DEVICE: _ASCII_ID,
    DeliveryType.USER_ID: re.compile(r"[^\s,\"']+"),  # plus str.isprintable()
    DeliveryType.LIVE_ACTIVITY_TOKEN: re.compile(r"[0-9A-Fa-f]+"),
    DeliveryType.LIVE_ACTIVITY_ID: _ASCII_ID,
    DeliveryType.HARMONYOS_DEVICE: _ASCII_ID,
}


def validate_target_id(value: str, delivery_type: int) -> str | None:
    """Return why `value` cannot be a target ID of `delivery_type`, or None if it can.

    mPaaS does not publish exact formats, so the rules are permissive but safe:

    - every type: not empty; at most 200 characters (Target.target_id); no whitespace;
      no control or invisible characters (only printable ones); no comma or quote
      (`,` `"` `'`), which would split or corrupt CSV files and pasted lists;
    - 3 user ID: any other printable Unicode (letters including CJK, digits, `-_.@:+`);
    - 1 Android, 2 iOS, 7 HarmonyOS device IDs/tokens and 6 live-activity IDs: ASCII
      letters, digits and `- _ . :` only;
    - 5 iOS live-activity push token: hexadecimal digits only (APNs tokens are hex).
    """
    if not value:
        return _("target ID is empty")
    if len(value) > TARGET_ID_MAX_LENGTH:
        return _("target ID is longer than %(max)d characters") % {"max": TARGET_ID_MAX_LENGTH}
    try:
        allowed = _ALLOWED[delivery_type]
    except KeyError:
        raise ValueError(f"unknown delivery type {delivery_type!r}") from None
    if allowed.fullmatch(value) and value.isprintable():
        return None
    # Rejected: name the first rule broken.
    if any(char.isspace() for char in value):
        return _("target ID contains whitespace")
    if not value.isprintable():
        return _("target ID contains control or invisible characters")
    if any(char in ",\"'" for char in value):
        return _("target ID contains a comma or quote")
    if delivery_type == DeliveryType.LIVE_ACTIVITY_TOKEN:
        return _("an iOS live-activity push token may only contain hexadecimal digits")
    return _(
        "target ID for “%(type)s” may only contain ASCII letters, digits, hyphens, "
        "underscores, dots and colons"
    ) % {"type": DeliveryType(delivery_type).label}


def _all_valid(values: list[str], delivery_type: int) -> bool:
    """Whether validate_target_id accepts every one of `values`, checked on the whole
    batch at once. Every _ALLOWED pattern is one character class repeated, so the
    joined values match it exactly when each value does."""
    allowed = _ALLOWED.get(delivery_type)
    if allowed is None or not all(values) or max(map(len, values)) > TARGET_ID_MAX_LENGTH:
        return False
    joined = "".join(values)
    return allowed.fullmatch(joined) is not None and joined.isprintable()
