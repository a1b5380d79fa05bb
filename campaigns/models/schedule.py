"""Schedules: tasks held by mPaaS (one per scheduled call) and occurrences held by this
console (one per send time of a console-side schedule)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .campaign import Campaign
from .credential import Credential
from .ledger import Batch
from .run import Run


class ScheduledTask(models.Model):
    """An mPaaS scheduled task created by a PushTemplate call with StrategyType 1 or 2
    (its ID is PushResult.Data; a loop task's occurrences are sub-tasks whose ParentId is
    this ID). Unexecuted ones count against the app's quota, and so do tasks whose cancel
    answer could not be read (`RECONCILE`) until reconcile settles them."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting on mPaaS")
        EXECUTED = "executed", _("Executed")
        CANCELLED = "cancelled", _("Cancelled")
        MISSING = "missing", _("Missing on mPaaS")
        RECONCILE = "reconcile", _("Needs reconcile")

    # Statuses of a task that may still be waiting on mPaaS (they count against the quota).
    OPEN_STATUSES = (Status.PENDING, Status.RECONCILE)

    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="+")
    app_id = models.CharField(max_length=64, db_index=True)
    task_id = models.CharField(_("task ID"), max_length=128)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="tasks")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="tasks")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app_id", "task_id"], name="task_unique_per_app")
        ]
        indexes = [models.Index(fields=["app_id", "status"], name="task_quota_idx")]

    def __str__(self) -> str:
        return self.task_id


class Occurrence(models.Model):
    """One send time of a console-side schedule. Dispatch moves it out of `pending` with
    one conditional UPDATE, so two schedulers never dispatch it twice."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DISPATCHED = "dispatched", _("Dispatched")
        MISSED = "missed", _("Missed")
        CANCELLED = "cancelled", _("Cancelled")

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="occurrences")
    due_at = models.DateTimeField(_("due at"))
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    run = models.OneToOneField(
        Run, null=True, blank=True, on_delete=models.PROTECT, related_name="occurrence"
    )
    dispatched_at = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "due_at"], name="occurrence_unique")
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="occurrence_due_idx")]

    def __str__(self) -> str:
        return f"{self.campaign} at {self.due_at:%Y-%m-%d %H:%M}"
