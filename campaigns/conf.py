"""Settings read when called (never at import), so override_settings and env work."""

from __future__ import annotations

from django.conf import settings

from campaigns.mpaas import strategy


def push_limits() -> strategy.Limits:
    return strategy.Limits(
        expired_min=settings.PUSH_EXPIRED_MIN,
        expired_max=settings.PUSH_EXPIRED_MAX,
        max_targets=min(settings.PUSH_BATCH_SIZE, 10),
        transparent_payload_max_bytes=settings.PUSH_TRANSPARENT_PAYLOAD_MAX_BYTES,
        vendor_template_max_bytes=settings.PUSH_VENDOR_TEMPLATE_MAX_BYTES,
    )


MULTIPLE_MAX_TARGETS = 100  # mPaaS's maximum of targets in one PushMultiple call


def multiple_batch_size() -> int:
    """Targets per PushMultiple call (never above mPaaS's 100)."""
    return max(1, min(settings.PUSH_MULTIPLE_BATCH_SIZE, MULTIPLE_MAX_TARGETS))


def multiple_batch_size_error() -> str | None:
    """Why PUSH_MULTIPLE_BATCH_SIZE cannot be used as set, or None."""
    from django.utils.translation import gettext as _

    size = settings.PUSH_MULTIPLE_BATCH_SIZE
    if 1 <= size <= MULTIPLE_MAX_TARGETS:
        return None
    return _(
        "The setting PUSH_MULTIPLE_BATCH_SIZE is %(size)d; mPaaS takes 1 to %(max)d targets "
        "in one PushMultiple call. Change the setting; nothing was launched."
    ) % {"size": size, "max": MULTIPLE_MAX_TARGETS}
