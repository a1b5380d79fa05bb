"""Sign-ins and sign-outs in the audit trail, from Django's auth signals.

Only sign-ins made through a page are recorded (the request was routed to a view):
programmatic logins without a network request - the test client's force_login, a
shell - are not someone signing in from somewhere. A failed attempt records the
username tried and the IP, never the password."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from accounts import sessions
from campaigns import audit


def _through_a_page(request) -> bool:
    return request is not None and getattr(request, "resolver_match", None) is not None


def on_logged_in(sender, request, user, **kwargs) -> None:
    if _through_a_page(request):
        audit.record("login.success", actor=user, request=request)


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if _through_a_page(request):
        # Django has already replaced sensitive values (the password) with stars;
        # keep only the username that was tried.
        tried = str(credentials.get("username", ""))[:150]
        audit.record("login.failure", request=request, details={"username": tried})


def on_logged_out(sender, request, user, **kwargs) -> None:
    if user is not None and _through_a_page(request):
        audit.record("logout", actor=user, request=request)


def on_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """django-axes refused a sign-in: too many failures for this username and IP."""
    audit.record("login.lockout", request=request, details={"username": str(username or "")[:150]})


def connect() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(on_locked_out, dispatch_uid="accounts.audit.lockout")
    user_logged_in.connect(on_logged_in, dispatch_uid="accounts.audit.login")
    user_logged_in.connect(sessions.on_logged_in, dispatch_uid="accounts.sessions.stamp")
    user_login_failed.connect(on_login_failed, dispatch_uid="accounts.audit.login_failed")
    user_logged_out.connect(on_logged_out, dispatch_uid="accounts.audit.logout")
