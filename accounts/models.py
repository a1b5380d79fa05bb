"""Per-user records: preferences (the console language), the sealed TOTP authenticator
and two-factor backup codes."""

from __future__ import annotations

import time
from base64 import b32encode
from binascii import unhexlify
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables
from django_otp.models import Device, TimestampMixin
from django_otp.oath import TOTP

from campaigns import crypto


class UserPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES)

    class Meta:
        # The table campaigns created before this model moved here (issue 11).
        db_table = "campaigns_userpreference"

    def __str__(self) -> str:
        return f"{self.user} ({self.language})"


class SealedTOTPDevice(TimestampMixin, Device):
    """A TOTP authenticator whose seed is encrypted at rest with CREDENTIAL_KEYS (the same
    MultiFernet as AccessKey secrets, re-encrypted by `rotate_credential_keys`).

    Replaces django-otp's TOTPDevice, which stores the seed as plain hex. Its code check is
    the same (django_otp.oath.TOTP, no reuse of a verified step, drift kept) but it keeps
    no per-device throttle: wrong codes are limited per session and per address by the
    verify page (accounts.two_factor), so a password-only attacker cannot lock the holder
    of the device out."""

    key_ciphertext = models.TextField(editable=False)
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = _("authenticator app")

    @sensitive_variables("hex_key")
    def set_key(self, hex_key: str) -> None:
        self.key_ciphertext = crypto.encrypt(hex_key)

    @property
    def bin_key(self) -> bytes:
        return unhexlify(crypto.decrypt(self.key_ciphertext).encode())

    def totp(self) -> TOTP:
        totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
        totp.time = time.time()
        return totp

    def verify_token(self, token) -> bool:
        try:
            token = int(token)
        except (TypeError, ValueError):
            return False
        totp = self.totp()
        if not totp.verify(token, self.tolerance, self.last_t + 1):
            return False
        self.last_t, self.drift = totp.t(), totp.drift
        self.set_last_used_timestamp(commit=False)
        self.save()
        return True

    @property
    def config_url(self) -> str:
        issuer = str(getattr(settings, "OTP_TOTP_ISSUER", "") or "").replace(":", "")
        label = f"{issuer}:{self.user.get_username()}" if issuer else self.user.get_username()
        params = {
            "secret": b32encode(self.bin_key),
            "algorithm": "SHA1",
            "digits": self.digits,
            "period": self.step,
        }
        query = urlencode(params) + (f"&issuer={quote(issuer)}" if issuer else "")
        return f"otpauth://totp/{quote(label)}?{query}"


class BackupCode(models.Model):
    """A one-time code for two-factor sign-in without the phone. Only an HMAC of it (keyed
    with SECRET_KEY, so a database reader cannot search for it) is stored; it is shown
    once, when made."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backup_codes"
    )
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"backup code {self.pk} of {self.user_id}"
