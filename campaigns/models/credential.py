"""mPaaS API credentials (admins only). The AccessKey secret is encrypted at rest and
never rendered, logged or exported: code reads it with `secret()` only to sign calls."""

from __future__ import annotations

import ipaddress
import zoneinfo
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from campaigns import crypto


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("Timezone must be an IANA name such as Asia/Shanghai; %(value)s is not one."),
            params={"value": value},
        ) from None


def mask(value: str, keep: int = 4) -> str:
    """Show only the last `keep` characters: 'LTAI5tAbCd' -> '••••AbCd'."""
    if not value:
        return ""
    return "••••" + value[-keep:] if len(value) > keep else "••••"


class Credential(models.Model):
    class Approval(models.TextChoices):
        OFF = "off", _("Not needed")
        ABOVE = "above", _("Needed above a number of targets")
        ALWAYS = "always", _("Always needed")

    class ApiVersion(models.TextChoices):
        V2019 = "2019-08-21", "2019-08-21"
        V2020 = "2020-10-28", "2020-10-28"

    name = models.CharField(_("name"), max_length=100, unique=True)
    app_id = models.CharField(_("AppId"), max_length=64)
    workspace_id = models.CharField(_("WorkspaceId"), max_length=64)
    access_key_id = models.CharField(_("AccessKey ID"), max_length=128)
    secret_ciphertext = models.TextField(editable=False)
    region = models.CharField(_("region"), max_length=32, default="cn-hangzhou")
    endpoint = models.CharField(
        _("endpoint"),
        max_length=255,
        default="mpaas.cn-hangzhou.aliyuncs.com",
        help_text=_("Host name, or http://host:port for a local sandbox."),
    )
    api_version = models.CharField(
        _("API version"), max_length=10, choices=ApiVersion.choices, default=ApiVersion.V2020
    )
    timezone = models.CharField(
        _("timezone"), max_length=64, default="Asia/Shanghai", validators=[validate_timezone]
    )
    rate_limit = models.FloatField(
        _("send rate limit (calls/s)"), default=20.0, validators=[MinValueValidator(0.1)]
    )
    scheduled_task_quota = models.PositiveIntegerField(
        _("scheduled-task quota"), default=100, validators=[MinValueValidator(1)]
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Two-person approval of campaigns sent with this credential (campaigns/approvals.py).
    approval = models.CharField(
        _("two-person approval"), max_length=8, choices=Approval.choices, default=Approval.OFF
    )
    approval_threshold = models.PositiveIntegerField(
        _("approval needed above (targets)"),
        default=0,
        help_text=_("With “Needed above a number of targets”: lists larger than this need it."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("credential")
        verbose_name_plural = _("credentials")

    def __str__(self) -> str:
        return self.name

    def set_secret(self, plaintext: str) -> None:
        self.secret_ciphertext = crypto.encrypt(plaintext)

    @sensitive_variables()
    def secret(self) -> str:
        """The AccessKey secret in plaintext, for signing only. Never render or log it."""
        return crypto.decrypt(self.secret_ciphertext)

    def needs_approval(self, target_count: int) -> bool:
        """Whether a campaign to `target_count` targets needs a second person's release."""
        if self.approval == self.Approval.ALWAYS:
            return True
        return self.approval == self.Approval.ABOVE and target_count > self.approval_threshold

    @property
    def masked_access_key_id(self) -> str:
        return mask(self.access_key_id)

    @property
    def is_sandbox(self) -> bool:
        """True when the endpoint is a local http:// stand-in: its sends reach no phone.

        Only an exact loopback address counts: an IPv4 literal in 127.0.0.0/8, ::1 or
        `localhost` - never a name that merely starts with "127." or "localhost"."""
        if not self.endpoint.startswith("http://"):
            return False
        try:
            host = urlsplit(self.endpoint).hostname or ""
        except ValueError:
            return False
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def clean(self) -> None:
        if self.endpoint.startswith("http://") and not self.is_sandbox:
            raise ValidationError(
                {"endpoint": _("Plain http:// is allowed only for a sandbox on this machine.")}
            )
        if not self.secret_ciphertext:
            raise ValidationError({"secret_ciphertext": _("An AccessKey secret is required.")})
