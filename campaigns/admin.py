"""Django admin: a read-only window on the domain tables. Every change goes through the
console's pages, which validate, audit and never show a secret; here nothing can be
added, changed or deleted, and the AccessKey ID is shown masked like everywhere else."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _

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


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Credential)
class CredentialAdmin(ReadOnlyAdmin):
    list_display = ["name", "app_id", "workspace_id", "masked_key_id", "endpoint", "is_active"]
    fields = [
        "name",
        "app_id",
        "workspace_id",
        "masked_key_id",
        "region",
        "endpoint",
        "api_version",
        "timezone",
        "rate_limit",
        "scheduled_task_quota",
        "is_active",
    ]
    readonly_fields = fields
    search_fields = ["name", "app_id"]

    @admin.display(description=_("AccessKey ID"))
    def masked_key_id(self, obj: Credential) -> str:
        return obj.masked_access_key_id


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ReadOnlyAdmin):
    list_display = ["name", "app_id", "title"]
    search_fields = ["name", "title"]


@admin.register(TargetList)
class TargetListAdmin(ReadOnlyAdmin):
    list_display = ["name", "delivery_type", "target_count"]


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdmin):
    list_display = ["task_name", "status", "credential", "target_list", "created_at"]
    list_filter = ["status"]
    search_fields = ["task_name"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "number", "kind", "status", "total", "sent", "failed"]


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["run", "seq", "status", "attempts", "result_code", "request_id"]
    list_filter = ["status"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["target_id", "msg_key", "outcome", "outcome_code"]
    list_select_related = ["batch"]
    search_fields = ["=target_id", "=msg_key"]

    @admin.display(description=_("Status"))
    def outcome(self, delivery: Delivery) -> str:
        # its batch's outcome until the run is settled (sending/settling.py)
        return delivery.get_outcome_status_display()

    @admin.display(description=_("ResultCode"))
    def outcome_code(self, delivery: Delivery) -> str:
        return delivery.outcome_result_code


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = ["batch", "number", "outcome", "result_code", "request_id", "latency_ms"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_username", "action", "object_repr", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_username", "object_repr"]


# Users and roles are managed on the console's Users page (audited, fresh sign-in);
# the admin only shows them.
User = get_user_model()
for model in (User, Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    list_display = ["username", "email", "is_active", "is_staff", "is_superuser", "last_login"]
    fields = ["username", "email", "is_active", "is_staff", "is_superuser", "groups", "last_login"]
    readonly_fields = fields
    search_fields = ["username", "email"]


@admin.register(Group)
class GroupAdmin(ReadOnlyAdmin):
    list_display = ["name"]
    fields = ["name"]
    readonly_fields = fields
