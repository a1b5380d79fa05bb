"""Optional TOTP two-factor sign-in (django-otp), with sealed seeds and backup codes.

A user who enrolled an authenticator app must enter a code after the password before any
other page; with REQUIRE_2FA_FOR_ADMINS an Admin without one is sent to enrol first.
django-otp's OTPMiddleware marks the session verified (`request.user.is_verified()`).
The seed is stored encrypted (accounts.models.SealedTOTPDevice). Wrong codes are limited
per session (OTP_SESSION_FAILURE_LIMIT, then the session ends) and per address
(LOGIN_IP_FAILURE_LIMIT within LOGIN_COOLOFF_MINUTES), never per device, so wrong codes
from someone holding only the password never block the holder's right code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import default_key

from accounts.models import BackupCode, SealedTOTPDevice
from accounts.roles import ADMIN, roles_of
from accounts.user_facts import facts_of

PENDING_SESSION_KEY = "pushconsole_totp_pending"
FAILURES_SESSION_KEY = "pushconsole_otp_failures"
FAILURE_ACTION = "login.2fa_failure"
BACKUP_CODE_COUNT = 10
# Pages a signed-in user may open before the second step is done.
ALWAYS_OPEN = {"logout", "login", "language-set"}
OPEN_WHILE_UNVERIFIED = ALWAYS_OPEN | {"two-factor-verify"}
OPEN_WHILE_ENROLLING = ALWAYS_OPEN | {"two-factor-setup"}


def confirmed_device(user) -> SealedTOTPDevice | None:
    return SealedTOTPDevice.objects.filter(user=user, confirmed=True).first()


def required_for(user) -> bool:
    """True when this user must sign in with a code (REQUIRE_2FA_FOR_ADMINS, an Admin)."""
    return bool(getattr(settings, "REQUIRE_2FA_FOR_ADMINS", False)) and ADMIN in roles_of(user)


def must_enrol(user) -> bool:
    """True for a user who must have a device and has none yet."""
    return required_for(user) and confirmed_device(user) is None


@sensitive_variables("key")
def pending_device(request) -> SealedTOTPDevice:
    """The device being enrolled, not saved: its key waits in the session until the
    user proves, with a code, that the app holds it (so merely opening the page
    changes nothing)."""
    key = request.session.get(PENDING_SESSION_KEY)
    if not key:
        key = request.session[PENDING_SESSION_KEY] = default_key()
    device = SealedTOTPDevice(user=request.user, name=_("Authenticator app"), confirmed=False)
    device.set_key(key)
    return device


def confirm_pending(request, token: str) -> SealedTOTPDevice | None:
    """Save the pending device as confirmed when `token` is its current code."""
    device = pending_device(request)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if not totp.verify(int(token), device.tolerance):
        return None
    device.last_t = totp.t()  # this code may not be used again
    device.confirmed = True
    device.save()
    del request.session[PENDING_SESSION_KEY]
    return device


def session_failures(request) -> int:
    return request.session.get(FAILURES_SESSION_KEY, 0)


def count_failure(request) -> int:
    """One more wrong code in this session; returns the session's count."""
    failures = session_failures(request) + 1
    request.session[FAILURES_SESSION_KEY] = failures
    return failures


def session_exhausted(request) -> bool:
    return session_failures(request) >= settings.OTP_SESSION_FAILURE_LIMIT


def address_locked(request) -> bool:
    """Too many wrong codes from this address (all users, all sessions) lately."""
    from campaigns import audit
    from campaigns.models import AuditEvent

    ip = audit.client_ip(request)
    if not ip:
        return False
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    recent = AuditEvent.objects.filter(action=FAILURE_ACTION, ip=ip, created_at__gte=since)
    return recent.count() >= settings.LOGIN_IP_FAILURE_LIMIT


def _code_hash(user, code: str) -> str:
    normal = code.replace("-", "").replace(" ", "").lower()
    message = f"{user.pk}:{normal}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


@sensitive_variables("codes")
def new_backup_codes(user) -> list[str]:
    """Replace the user's backup codes with BACKUP_CODE_COUNT new ones and return them
    (the only time they exist in plain text)."""
    raws = [secrets.token_hex(5) for _ in range(BACKUP_CODE_COUNT)]  # 40 random bits each
    codes = [f"{raw[:5]}-{raw[5:]}" for raw in raws]
    with transaction.atomic():
        BackupCode.objects.filter(user=user).delete()
        BackupCode.objects.bulk_create(
            BackupCode(user=user, code_hash=_code_hash(user, code)) for code in codes
        )
    return codes


def use_backup_code(user, code: str) -> bool:
    """Spend one unused backup code of `user` (a conditional UPDATE: once only)."""
    if not code.strip():
        return False
    return bool(
        BackupCode.objects.filter(
            user=user, code_hash=_code_hash(user, code), used_at__isnull=True
        ).update(used_at=timezone.now())
    )


def backup_codes_left(user) -> int:
    return BackupCode.objects.filter(user=user, used_at__isnull=True).count()


def qr_data_uri(text: str) -> str:
    """`text` as a QR code, an SVG image in a data: URI (no script, allowed by the CSP)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


class TwoFactorMiddleware:
    """After OTPMiddleware and LoginRequiredMiddleware: holds a signed-in user at the
    code page (enrolled, session not verified) or at enrolment (Admin who must have 2FA)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return None
        name = request.resolver_match.url_name if request.resolver_match else None
        has_device = facts_of(user).has_device  # read with the user's roles
        if has_device:
            if name in OPEN_WHILE_UNVERIFIED:
                return None
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse('two-factor-verify')}?{query}")
        if required_for(user) and name not in OPEN_WHILE_ENROLLING:  # must enrol
            return redirect("two-factor-setup")
        return None
