"""Session clocks: an absolute lifetime from sign-in, and "fresh sign-in" for risky acts.

Sign-in stamps the session with the time (and so does re-entering the password on the
confirm page). `SessionAbsoluteMiddleware` ends a session SESSION_ABSOLUTE_SECONDS after
sign-in however active it was; `fresh_sign_in_required` sends a user whose password is
older than FRESH_SIGN_IN_SECONDS in this session to re-enter it before the view runs."""

from __future__ import annotations

import time
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.utils.translation import gettext as _

SIGNED_IN_AT = "_pushconsole_signed_in_at"
PASSWORD_AT = "_pushconsole_password_at"


def stamp(request, *, sign_in: bool) -> None:
    """Record that the password was just entered (and, at sign-in, when the session began)."""
    now = int(time.time())
    request.session[PASSWORD_AT] = now
    if sign_in:
        request.session[SIGNED_IN_AT] = now


def on_logged_in(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        stamp(request, sign_in=True)


def is_fresh(request) -> bool:
    entered = request.session.get(PASSWORD_AT, 0)
    return int(time.time()) - entered <= settings.FRESH_SIGN_IN_SECONDS


def require_fresh(request):
    """None when the password was entered recently; else the redirect to confirm it."""
    if is_fresh(request):
        return None
    messages.info(request, _("Enter your password again to continue."))
    query = urlencode({"next": request.get_full_path()})
    return redirect(f"{reverse('password-confirm')}?{query}")


def fresh_sign_in_required(view):
    """View decorator: re-enter the password first when it is older than
    FRESH_SIGN_IN_SECONDS in this session."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        return require_fresh(request) or view(request, *args, **kwargs)

    return wrapped


class SessionAbsoluteMiddleware:
    """After AuthenticationMiddleware: a session older than SESSION_ABSOLUTE_SECONDS since
    sign-in ends (signed out, sent to sign in again), however active it was. A session
    from before this rule without a stamp gets one now."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            began = request.session.get(SIGNED_IN_AT)
            now = int(time.time())
            if began is None:
                request.session[SIGNED_IN_AT] = now
            elif now - began > settings.SESSION_ABSOLUTE_SECONDS:
                logout(request)
                messages.info(
                    request, _("Your session has ended. Please sign in again."), fail_silently=True
                )
                query = urlencode({"next": request.get_full_path()})
                return redirect(f"{resolve_url(settings.LOGIN_URL)}?{query}")
        return self.get_response(request)
