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
