"""The roles of DESIGN §6 as Django groups, and the checks views use.

Admins may do everything; Marketing builds and sends; Auditors read everything except
secrets and change nothing; Approvers read what Marketing reads and release or reject
campaigns awaiting two-person approval (never their own). Superusers count as Admins."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied

MARKETING = "Marketing"
ADMIN = "Admin"
AUDITOR = "Auditor"
APPROVER = "Approver"
ALL_ROLES = (MARKETING, ADMIN, AUDITOR, APPROVER)


def roles_of(user) -> set[str]:
    if not user.is_authenticated or not user.is_active:
        return set()
    cached = getattr(user, "_pushconsole_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._pushconsole_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    """True when the user holds one of `roles`, or is an Admin (who may do everything)."""
    held = roles_of(user)
    return ADMIN in held or bool(held.intersection(roles))


def role_required(*roles: str) -> Callable:
    """View decorator: 403 unless the user holds one of `roles` (or is an Admin)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.required_roles = roles
        return wrapped

    return decorator


# Shorthands for the kinds of page.
can_send = role_required(MARKETING)
can_read = role_required(MARKETING, AUDITOR, APPROVER)
can_approve = role_required(APPROVER)
admin_only = role_required(ADMIN)
