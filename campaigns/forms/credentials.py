"""The credential form. The AccessKey secret is write-only (never rendered back; blank
keeps the stored one) and the AccessKey ID is never shown in full after it is saved:
the edit form shows its last four characters and blank keeps it, like the secret."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from crispy_forms.helper import FormHelper
from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_variables

from campaigns.models import Credential

SECRET_FIELD = "access_key_secret"
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_REGION_RE = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")


def _endpoint_problem(value: str) -> str | None:
    """Why `value` is not an endpoint the push client can use, or None."""
    has_scheme = "://" in value
    parts = urlsplit(value if has_scheme else f"https://{value}")
    if has_scheme and parts.scheme not in ("http", "https"):
        return _("Only https:// (or http:// for a local sandbox) endpoints are supported.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return _("Give the host only, without a path, query or user name.")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        return _("The port must be a number from 1 to 65535.")
    host = (parts.hostname or "").lower()
    if not host or not (_HOST_RE.match(host) or host.startswith("[")):
        return _(
            "Enter a host name such as mpaas.cn-hangzhou.aliyuncs.com, "
            "or http://127.0.0.1:8900 for a local sandbox."
        )
    return None


class WriteOnlyTextInput(forms.TextInput):
    """A text input that never puts a value into the page (not even the one just typed,
    when the form comes back with errors)."""

    def format_value(self, value):
        return None


class CredentialForm(forms.ModelForm):
    access_key_id = forms.CharField(
        label=gettext_lazy("AccessKey ID"),
        required=False,
        max_length=128,
        widget=WriteOnlyTextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    access_key_secret = forms.CharField(
        label=gettext_lazy("AccessKey secret"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = Credential
        fields = [
            "name",
            "app_id",
            "workspace_id",
            "access_key_id",
            "api_version",
            "endpoint",
            "region",
            "timezone",
            "rate_limit",
            "scheduled_task_quota",
            "approval",
            "approval_threshold",
        ]
        help_texts = {
            "region": gettext_lazy("An Alibaba Cloud region ID such as cn-hangzhou."),
            "timezone": gettext_lazy(
                "IANA name such as Asia/Shanghai; fixed-time and loop pushes use it."
            ),
            "rate_limit": gettext_lazy("PushTemplate calls per second, across all workers."),
            "scheduled_task_quota": gettext_lazy(
                "How many unexecuted mPaaS scheduled tasks the app may hold."
            ),
        }
        error_messages = {
            "name": {"unique": gettext_lazy("Another credential already has this name.")},
            "rate_limit": {
                "min_value": gettext_lazy("The send rate must be at least 0.1 calls per second."),
                "invalid": gettext_lazy("Enter the send rate as a number, such as 20 or 0.5."),
            },
            "scheduled_task_quota": {
                "min_value": gettext_lazy("The quota must be at least 1 scheduled task."),
                "invalid": gettext_lazy("Enter the quota as a whole number, such as 100."),
            },
            "api_version": {
                "invalid_choice": gettext_lazy("Choose one of the listed API versions."),
            },
        }

    def __init__(self, *args, **kwargs):
        instance = kwargs.get("instance")
        self.editing = bool(instance and instance.pk)
        self._stored_key_id = instance.access_key_id if self.editing else ""
        if self.editing:
            # Never put the stored AccessKey ID into the page, not even in a value attribute.
            kwargs["initial"] = {**kwargs.get("initial", {}), "access_key_id": ""}
        super().__init__(*args, **kwargs)
        key_id, secret = self.fields["access_key_id"], self.fields[SECRET_FIELD]
        if self.editing:
            masked = self.instance.masked_access_key_id
            key_id.widget.attrs["placeholder"] = masked
            key_id.help_text = _("Stored: %(masked)s. Leave blank to keep it.") % {"masked": masked}
            secret.help_text = _("Write-only. Leave blank to keep the stored secret.")
        else:
            key_id.required = secret.required = True
            key_id.help_text = _("Shown only as its last four characters once saved.")
            secret.help_text = _("Write-only: it is stored encrypted and never shown again.")
        # Forms posted without the approval fields (older scripts) keep approval off.
        self.fields["approval"].required = False
        self.fields["approval_threshold"].required = False
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean_access_key_id(self) -> str:
        value = self.cleaned_data["access_key_id"].strip()
        if not value:
            return self.instance.access_key_id  # editing: keep the stored one
        if any(ch.isspace() for ch in value):
            raise forms.ValidationError(_("An AccessKey ID contains no spaces."))
        return value

    def clean_endpoint(self) -> str:
        value = self.cleaned_data["endpoint"].strip().rstrip("/")
        problem = _endpoint_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_region(self) -> str:
        value = self.cleaned_data["region"].strip()
        if not _REGION_RE.match(value):
            raise forms.ValidationError(
                _("A region ID looks like cn-hangzhou or ap-southeast-1 (lower case).")
            )
        return value

    def clean_approval(self) -> str:
        # Left out of the post: keep the stored setting (never weaken it by omission).
        return self.cleaned_data["approval"] or self.instance.approval

    def clean_approval_threshold(self) -> int:
        value = self.cleaned_data["approval_threshold"]
        if value is None and "approval_threshold" not in self.data:
            return self.instance.approval_threshold
        return value or 0

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("approval") == Credential.Approval.ABOVE and not cleaned.get(
            "approval_threshold"
        ):
            self.add_error(
                "approval_threshold",
                _("Give the number of targets above which a second person must approve."),
            )
        return cleaned

    def clean_timezone(self) -> str:
        return self.cleaned_data["timezone"].strip()

    @sensitive_variables("secret")
    def clean_access_key_secret(self) -> str:
        secret = self.cleaned_data[SECRET_FIELD]
        if secret and any(ch.isspace() for ch in secret):
            raise forms.ValidationError(_("An AccessKey secret contains no spaces."))
        return secret

    @sensitive_variables("secret")
    def _post_clean(self):
        secret = self.cleaned_data.get(SECRET_FIELD) if hasattr(self, "cleaned_data") else ""
        if secret:
            self.instance.set_secret(secret)
        super()._post_clean()

    def _update_errors(self, errors):
        # Credential.clean() reports a missing secret on the model field; the form's
        # own required check already says so next to the secret input.
        if hasattr(errors, "error_dict"):
            errors.error_dict.pop("secret_ciphertext", None)
            if not errors.error_dict:
                return
        super()._update_errors(errors)

    def changed_fields(self) -> list[str]:
        """Names (never values) of the fields this save changes, for the audit trail."""
        names = set(self.changed_data) - {"access_key_id", SECRET_FIELD}
        # A form posted without the approval fields keeps them as they were.
        names -= {n for n in ("approval", "approval_threshold") if n not in self.data}
        if self._stored_key_id != self.instance.access_key_id:
            names.add("access_key_id")
        if self.cleaned_data.get(SECRET_FIELD):
            names.add(SECRET_FIELD)
        return sorted(names)
