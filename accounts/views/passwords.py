"""Every user's own password: change it, and confirm it before a risky act (fresh sign-in)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import sessions
from accounts.forms.passwords import ConfirmPasswordForm, OwnPasswordForm
from campaigns import audit

CONFIRM_FAILURES = "_pushconsole_confirm_failures"
CONFIRM_FAILURE_LIMIT = 5


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return "/"


@never_cache
@sensitive_post_parameters("current", "password1", "password2")
@require_http_methods(["GET", "POST"])
def password_change(request):
    form = OwnPasswordForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()  # a new hash ends the user's other sessions
        update_session_auth_hash(request, request.user)
        sessions.stamp(request, sign_in=False)
        audit.record("user.change_own_password", obj=request.user, request=request)
        messages.success(request, _("Your password was changed. Your other sessions ended."))
        return redirect("home")
    return render(request, "accounts/password_change.html", {"form": form})


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def password_confirm(request):
    """Re-enter the password (fresh sign-in). Five wrong tries in a session end it."""
    form = ConfirmPasswordForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            sessions.stamp(request, sign_in=False)
            request.session.pop(CONFIRM_FAILURES, None)
            audit.record("login.confirm", request=request)
            return redirect(_next_url(request))
        failures = request.session.get(CONFIRM_FAILURES, 0) + 1
        request.session[CONFIRM_FAILURES] = failures
        audit.record("login.confirm_failure", request=request, details={"failures": failures})
        if failures >= CONFIRM_FAILURE_LIMIT:
            logout(request)
            return redirect("login")
    return render(
        request, "accounts/password_confirm.html", {"form": form, "next": _next_url(request)}
    )


urlpatterns = [
    path("password/", password_change, name="password-change"),
    path("confirm/", password_confirm, name="password-confirm"),
]
