"""Two-factor sign-in pages: enrol an authenticator app, turn it off, and the code step
after the password (accounts.two_factor.TwoFactorMiddleware sends users here)."""

from __future__ import annotations

from base64 import b32encode

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from accounts import two_factor
from accounts.forms.two_factor import TokenForm
from accounts.models import BackupCode, SealedTOTPDevice
from accounts.two_factor import (
    confirm_pending,
    confirmed_device,
    must_enrol,
    pending_device,
    qr_data_uri,
    required_for,
)
from campaigns import audit

WRONG_CODE = gettext_lazy(
    "That code is not right. Check that your phone's clock is correct and try again."
)


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return "/"


@never_cache
@sensitive_variables("pending")
@sensitive_post_parameters("otp_token")
@require_http_methods(["GET", "POST"])
def two_factor_setup(request):
    device = confirmed_device(request.user)
    if device is not None:
        return render(
            request,
            "accounts/two_factor.html",
            {
                "device": device,
                "form": TokenForm(),
                "required": required_for(request.user),
                "backup_codes_left": two_factor.backup_codes_left(request.user),
            },
        )
    pending = pending_device(request)
    form = TokenForm(request.POST or None)
    if form.is_valid():
        device = confirm_pending(request, form.cleaned_data["otp_token"])
        if device is not None:
            django_otp.login(request, device)
            audit.record("2fa.enrol", request=request, obj=request.user)
            messages.success(
                request,
                _("Two-factor sign-in is on. You will be asked for a code each time you sign in."),
            )
            return redirect("two-factor-setup")
        form.add_error("otp_token", WRONG_CODE)
    return render(
        request,
        "accounts/two_factor.html",
        {
            "form": form,
            "qr": qr_data_uri(pending.config_url),
            "key": b32encode(pending.bin_key).decode(),
            "required": must_enrol(request.user),
        },
    )


@sensitive_post_parameters("otp_token")
@require_POST
def two_factor_disable(request):
    device = confirmed_device(request.user)
    if device is None:
        return redirect("two-factor-setup")
    if required_for(request.user):
        messages.error(request, _("Two-factor sign-in is required for administrators."))
        return redirect("two-factor-setup")
    form = TokenForm(request.POST)
    if form.is_valid() and device.verify_token(form.cleaned_data["otp_token"]):
        SealedTOTPDevice.objects.filter(user=request.user).delete()
        BackupCode.objects.filter(user=request.user).delete()
        audit.record("2fa.disable", request=request, obj=request.user)
        messages.success(request, _("Two-factor sign-in is off."))
    else:
        messages.error(request, WRONG_CODE)
    return redirect("two-factor-setup")


@never_cache
@sensitive_post_parameters("otp_token", "backup_code")
@require_http_methods(["GET", "POST"])
def two_factor_verify(request):
    """The code step after the password. Wrong codes count per session (the session ends
    at OTP_SESSION_FAILURE_LIMIT) and per address; the device itself is never throttled,
    so the holder of the phone, in their own session, always gets in."""
    device = confirmed_device(request.user)
    if device is None or request.user.is_verified():
        return redirect(_next_url(request))
    form = TokenForm(request.POST if "otp_token" in request.POST else None)
    if request.method == "POST":
        if two_factor.address_locked(request):
            audit.record("login.2fa_ip_lockout", request=request)
            return render(
                request,
                "accounts/lockout.html",
                {"cooloff_timedelta": settings.AXES_COOLOFF_TIME, "by_address": True},
                status=429,
            )
        backup = request.POST.get("backup_code", "")
        if backup:
            if two_factor.use_backup_code(request.user, backup):
                return _verified(request, device, "login.backup_code")
        elif form.is_valid() and device.verify_token(form.cleaned_data["otp_token"]):
            return _verified(request, device, "login.2fa")
        failures = two_factor.count_failure(request)
        audit.record(
            two_factor.FAILURE_ACTION,
            request=request,
            details={"failures": failures, "backup_code": bool(backup)},
        )
        if two_factor.session_exhausted(request):
            logout(request)
            messages.error(request, _("Too many wrong codes. Sign in again."))
            return redirect("login")
        if backup:
            messages.error(request, _("That backup code is not valid or was already used."))
        else:
            form.add_error("otp_token", WRONG_CODE)
    return render(
        request, "accounts/two_factor_verify.html", {"form": form, "next": _next_url(request)}
    )


def _verified(request, device, action: str):
    request.session.cycle_key()
    django_otp.login(request, device)
    request.session.pop(two_factor.FAILURES_SESSION_KEY, None)
    details = {"backup_codes_left": two_factor.backup_codes_left(request.user)}
    audit.record(action, request=request, details=details)
    return redirect(_next_url(request))


@never_cache
@require_POST
def two_factor_backup_codes(request):
    """Make a new set of backup codes (the old ones stop working) and show them once."""
    if confirmed_device(request.user) is None or not request.user.is_verified():
        return redirect("two-factor-setup")
    codes = two_factor.new_backup_codes(request.user)
    audit.record("2fa.backup_codes", request=request, obj=request.user)
    return render(request, "accounts/backup_codes.html", {"codes": codes})


urlpatterns = [
    path("", two_factor_setup, name="two-factor-setup"),
    path("disable/", two_factor_disable, name="two-factor-disable"),
    path("verify/", two_factor_verify, name="two-factor-verify"),
    path("backup-codes/", two_factor_backup_codes, name="two-factor-backup-codes"),
]
