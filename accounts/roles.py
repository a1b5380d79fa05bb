"""The roles of DESIGN §6 as Django groups, and the checks views use.

Admins may do everything; Marketing builds and sends; Auditors read everything except
secrets and change nothing; Approvers read what Marketing reads and release or reject
campaigns awaiting two-person approval (never their own). Superusers count as Admins."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied

from accounts.user_facts import facts_of

MARKETING = "Marketing"
ADMIN = "Admin"
AUDITOR = "Auditor"
APPROVER = "Approver"
ALL_ROLES = (MARKETING, ADMIN, AUDITOR, APPROVER)


def roles_of(user) -> set[str]:
    """The roles `user` holds, read once per request (with the user's other facts)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    held = set(facts_of(user).groups.intersection(ALL_ROLES))
    if user.is_superuser:
        held.add(ADMIN)
    return held


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
