"""Campaigns: what marketing builds (template, targets, strategy, schedule). Each launch
of one is a Run (`run.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from campaigns.mpaas.strategy import PushSpec
from campaigns.mpaas.vocabulary import (
    CircleType,
    DeliveryType,
    PushAction,
    Silent,
    StrategyType,
    TransparentUrgency,
)

from .credential import Credential
from .target import TargetList
from .template import MessageTemplate

if TYPE_CHECKING:
    from .run import Run


class ScheduleMode(models.TextChoices):
    AUTO = "auto", _("Auto")
    MPAAS = "mpaas", _("Schedule on mPaaS")
    CONSOLE = "console", _("Schedule in this console")


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SCHEDULED = "scheduled", _("Scheduled")
        PAUSED = "paused", _("Paused")
        CANCELLED = "cancelled", _("Cancelled")
        COMPLETED = "completed", _("Completed")
        COMPLETED_WITH_ERRORS = "completed_with_errors", _("Completed with errors")
        FAILED = "failed", _("Failed")

    # The campaign's state machine: which statuses each action may start from. Every
    # action moves the campaign with one conditional UPDATE (`move`), so a double click
    # or two processes act once.
    LAUNCHABLE = frozenset({Status.DRAFT})
    PAUSABLE = frozenset({Status.QUEUED, Status.SENDING})  # + console-kept schedules
    RESUMABLE = frozenset({Status.PAUSED})
    CANCELLABLE = frozenset({Status.QUEUED, Status.SENDING, Status.PAUSED, Status.SCHEDULED})
    RETRYABLE = frozenset({Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED})
    # Sending now: its page polls progress. In progress: listed as running.
    SENDING_NOW = frozenset({Status.QUEUED, Status.SENDING})
    IN_PROGRESS = frozenset({Status.QUEUED, Status.SENDING, Status.PAUSED})
    # The colour a status badge takes (Bootstrap's text-bg-*).
    STATUS_TONES = {
        Status.COMPLETED: "success",
        Status.COMPLETED_WITH_ERRORS: "warning",
        Status.FAILED: "danger",
        Status.SENDING: "primary",
        Status.QUEUED: "primary",
        Status.PAUSED: "warning",
    }

    # Basics
    task_name = models.CharField(_("task name"), max_length=128)
    credential = models.ForeignKey(
        Credential, on_delete=models.PROTECT, related_name="campaigns", verbose_name=_("credential")
    )
    template = models.ForeignKey(
        MessageTemplate,
        on_delete=models.PROTECT,
        related_name="campaigns",
        verbose_name=_("template"),
    )
    template_values = models.JSONField(_("template values"), default=dict, blank=True)
    # Per-person values: placeholder -> the target list's column it is read from. Such a
    # campaign sends with PushMultiple; the other placeholders keep template_values.
    value_columns = models.JSONField(_("per-person columns"), default=dict, blank=True)
    target_list = models.ForeignKey(
        TargetList,
        on_delete=models.PROTECT,
        related_name="campaigns",
        verbose_name=_("target list"),
    )
    expired_seconds = models.PositiveIntegerField(_("expiry (seconds)"), default=3600)

    # Delivery strategy
    strategy_type = models.PositiveSmallIntegerField(
        _("delivery"), choices=StrategyType.choices, default=StrategyType.IMMEDIATE
    )
    fixed_time = models.DateTimeField(_("send at"), null=True, blank=True)
    loop_start_date = models.DateField(_("loop start date"), null=True, blank=True)
    loop_end_date = models.DateField(_("loop end date"), null=True, blank=True)
    loop_circle_type = models.PositiveSmallIntegerField(
        _("repeat"), choices=CircleType.choices, null=True, blank=True
    )
    loop_circle_values = models.JSONField(_("days"), default=list, blank=True)
    loop_time = models.TimeField(_("time of day"), null=True, blank=True)
    schedule_mode = models.CharField(
        _("where the schedule is kept"),
        max_length=8,
        choices=ScheduleMode.choices,
        default=ScheduleMode.AUTO,
    )
    # Decided at launch for fixed-time and loop campaigns: "mpaas" or "console".
    schedule_resolved = models.CharField(max_length=8, blank=True)

    # Channel options
    classification = models.CharField(_("vivo message type"), max_length=1, blank=True)
    notify_type = models.CharField(_("notify type"), max_length=16, blank=True)
    third_channel_category = models.JSONField(_("vendor categories"), default=dict, blank=True)
    notify_level = models.JSONField(_("vendor notify levels"), default=dict, blank=True)
    mi_channel_id = models.CharField(_("Xiaomi channel ID"), max_length=64, blank=True)
    extended_params = models.JSONField(_("extended parameters"), default=dict, blank=True)
    push_action = models.PositiveSmallIntegerField(
        _("tap action"), choices=PushAction.choices, null=True, blank=True
    )
    silent = models.PositiveSmallIntegerField(
        _("silent"), choices=Silent.choices, null=True, blank=True
    )
    channel_id = models.CharField(_("channel ID"), max_length=64, blank=True)
    vendor_template = models.JSONField(_("vendor template"), null=True, blank=True)

    # Transparent message (NotifyType transparent only)
    transparent_payload = models.JSONField(_("transparent-message payload"), null=True, blank=True)
    transparent_urgency = models.CharField(
        _("transparent-message urgency"),
        max_length=8,
        choices=TransparentUrgency.choices,
        blank=True,
    )

    # SMS supplement
    sms_strategy = models.PositiveSmallIntegerField(_("SMS strategy"), default=0)
    sms_sign_name = models.CharField(_("SMS sign name"), max_length=64, blank=True)
    sms_template_code = models.CharField(_("SMS template code"), max_length=64, blank=True)
    sms_template_param = models.JSONField(_("SMS template parameters"), default=dict, blank=True)

    # iOS live activity
    activity_event = models.CharField(_("live-activity event"), max_length=8, blank=True)
    activity_content_state = models.JSONField(
        _("live-activity content state"), null=True, blank=True
    )
    dismissal_date = models.DateTimeField(_("dismissal date"), null=True, blank=True)

    # Lifecycle
    status = models.CharField(
        _("status"), max_length=24, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    status_reason = models.CharField(_("reason"), max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")

    def __str__(self) -> str:
        return self.task_name

    @property
    def delivery_type(self) -> int:
        return self.target_list.delivery_type

    def delivery_type_label(self) -> str:
        return DeliveryType(self.delivery_type).label

    def pausable_from(self) -> frozenset[str]:
        """A schedule kept in this console can also be paused while it waits."""
        if self.schedule_resolved == ScheduleMode.CONSOLE:
            return self.PAUSABLE | {self.Status.SCHEDULED}
        return self.PAUSABLE

    def status_tone(self) -> str:
        return self.STATUS_TONES.get(self.status, "secondary")

    def can_launch(self) -> bool:
        return self.status in self.LAUNCHABLE

    def can_edit(self) -> bool:
        return self.status == self.Status.DRAFT

    def can_pause(self) -> bool:
        return self.status in self.pausable_from()

    def can_resume(self) -> bool:
        return self.status in self.RESUMABLE

    def can_cancel(self) -> bool:
        return self.status in self.CANCELLABLE

    def can_retry(self) -> bool:
        """A finished campaign whose latest run is closed with failed targets."""
        if self.status not in self.RETRYABLE:
            return False
        run = self.latest_run()
        return run is not None and run.finished_at is not None and run.failed > 0

    def is_sending_now(self) -> bool:
        return self.status in self.SENDING_NOW

    def latest_run(self) -> Run | None:
        """The latest run that sends (a recall run is not one)."""
        from .run import Run

        return self.runs.exclude(kind=Run.Kind.RECALL).order_by("-number").first()

    def per_person(self) -> bool:
        """Whether some placeholder takes each target's own value (PushMultiple)."""
        return bool(self.value_columns)

    def move(self, allowed: frozenset[str], **fields) -> bool:
        """Conditional UPDATE: set `fields` only if the campaign's status in the database
        is one of `allowed`. Returns whether it did."""
        return bool(Campaign.objects.filter(pk=self.pk, status__in=allowed).update(**fields))

    def push_spec(self) -> PushSpec:
        """This campaign as the plain value mpaas/strategy.py validates and mpaas/wire.py
        turns into params."""
        template = self.template
        credential = self.credential
        return PushSpec(
            task_name=self.task_name,
            app_id=credential.app_id,
            workspace_id=credential.workspace_id,
            template_name=template.name,
            template_placeholders=template.placeholders(),
            template_values=dict(self.template_values or {}),
            delivery_type=self.target_list.delivery_type,
            expired_seconds=self.expired_seconds,
            timezone=credential.timezone,
            strategy_type=self.strategy_type,
            fixed_time=self.fixed_time,
            loop_start_date=self.loop_start_date,
            loop_end_date=self.loop_end_date,
            loop_circle_type=self.loop_circle_type,
            loop_circle_values=tuple(self.loop_circle_values or ()),
            loop_time=self.loop_time,
            classification=self.classification,
            notify_type=self.notify_type,
            third_channel_category=dict(self.third_channel_category or {}),
            notify_level=dict(self.notify_level or {}),
            mi_channel_id=self.mi_channel_id,
            extended_params=dict(self.extended_params or {}),
            sms_strategy=self.sms_strategy,
            sms_sign_name=self.sms_sign_name,
            sms_template_code=self.sms_template_code,
            sms_template_param=dict(self.sms_template_param or {}),
            activity_event=self.activity_event,
            activity_content_state=self.activity_content_state,
            dismissal_date=self.dismissal_date,
            transparent_payload=self.transparent_payload,
            transparent_urgency=self.transparent_urgency,
            push_action=self.push_action,
            silent=self.silent,
            channel_id=self.channel_id,
            vendor_template=self.vendor_template,
            per_person=tuple(self.value_columns or ()),
        )
