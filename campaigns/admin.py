"""Django admin registrations. No secret is ever shown: the credential form takes the
AccessKey secret write-only (blank keeps the stored one), and audit events are
read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from campaigns import audit
from campaigns.models import (
    Attempt,
    AuditEvent,
    Batch,
    Campaign,
    Credential,
    Delivery,
    MessageTemplate,
    Run,
    TargetList,
)


class CredentialAdminForm(forms.ModelForm):
    access_key_secret = forms.CharField(
        label=_("AccessKey secret"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only. Leave blank to keep the stored secret."),
    )

    class Meta:
        model = Credential
        fields = [
            "name",
            "app_id",
            "workspace_id",
            "access_key_id",
            "region",
            "endpoint",
            "api_version",
            "timezone",
            "rate_limit",
            "scheduled_task_quota",
            "is_active",
        ]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.secret_ciphertext and not cleaned.get("access_key_secret"):
            self.add_error("access_key_secret", _("An AccessKey secret is required."))
        return cleaned

    def _update_errors(self, errors):
        # Model.clean() reports a missing secret on secret_ciphertext, which this form
        # shows as access_key_secret.
        if hasattr(errors, "error_dict") and "secret_ciphertext" in errors.error_dict:
            errors.error_dict.setdefault("access_key_secret", []).extend(
                errors.error_dict.pop("secret_ciphertext")
            )
        super()._update_errors(errors)

    @sensitive_variables("secret")
    def _post_clean(self):
        secret = self.cleaned_data.get("access_key_secret") if hasattr(self, "cleaned_data") else ""
        if secret:
            self.instance.set_secret(secret)
        super()._post_clean()


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialAdminForm
    list_display = [
        "name",
        "app_id",
        "workspace_id",
        "masked_access_key_id",
        "endpoint",
        "is_active",
    ]
    search_fields = ["name", "app_id"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit.record(
            "credential.update" if change else "credential.create",
            obj=obj,
            request=request,
            details={"fields": sorted(form.changed_data)},
        )


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "app_id", "title"]
    search_fields = ["name", "title"]


@admin.register(TargetList)
class TargetListAdmin(admin.ModelAdmin):
    list_display = ["name", "delivery_type", "target_count"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["task_name", "status", "credential", "target_list", "created_at"]
    list_filter = ["status"]
    search_fields = ["task_name"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "number", "kind", "status", "total", "sent", "failed"]


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["run", "seq", "status", "attempts", "result_code", "request_id"]
    list_filter = ["status"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["target_id", "msg_key", "status", "result_code"]
    search_fields = ["=target_id", "=msg_key"]


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = ["batch", "number", "outcome", "result_code", "request_id", "latency_ms"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_username", "action", "object_repr", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_username", "object_repr"]
