"""A per-address sign-in limit across usernames (password spraying), beside axes' lock.

django-axes locks one username from one address. This wraps the sign-in view: when the
wrong passwords from one address, summed over every username axes has counted within
LOGIN_COOLOFF_MINUTES, reach LOGIN_IP_FAILURE_LIMIT, every sign-in from that address is
refused with the lockout page (HTTP 429) until the oldest of them ages out. The first
refusal of a lock is audited as `login.ip_lockout`.
"""

from __future__ import annotations

from functools import wraps

from axes.helpers import get_client_ip_address
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

from campaigns import audit


def failures_from(ip: str) -> int:
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    total = AccessAttempt.objects.filter(ip_address=ip, attempt_time__gte=since).aggregate(
        n=Sum("failures_since_start")
    )["n"]
    return total or 0


def limited_by_address(view):
    """Refuse sign-in POSTs from an address over LOGIN_IP_FAILURE_LIMIT failures."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method == "POST":
            ip = get_client_ip_address(request)
            if ip and failures_from(ip) >= settings.LOGIN_IP_FAILURE_LIMIT:
                audit.record(
                    "login.ip_lockout",
                    request=request,
                    details={"username": str(request.POST.get("username", ""))[:150]},
                )
                return render(
                    request,
                    "accounts/lockout.html",
                    {"cooloff_timedelta": settings.AXES_COOLOFF_TIME, "by_address": True},
                    status=429,
                )
        return view(request, *args, **kwargs)

    return wrapped
