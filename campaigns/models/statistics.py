"""Delivery statistics copied from mPaaS (QueryPushAnalysis*) by the statistics job: daily
figures per credential x platform x channel x type, figures per push task, and whether the
last fetch worked. Pages read these rows; they never call mPaaS while rendering."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .credential import Credential


class DailyStatistic(models.Model):
    """One day's QueryPushAnalysisCoreIndex figures. An empty platform or channel means
    "all" (the query had no such filter)."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))
    platform = models.CharField(_("platform"), max_length=12, blank=True)
    channel = models.CharField(_("channel"), max_length=12, blank=True)
    push_type = models.CharField(_("push type"), max_length=10)
    push_total = models.PositiveIntegerField(default=0)
    pushed = models.PositiveIntegerField(_("pushed"), default=0)
    arrived = models.PositiveIntegerField(_("arrived"), default=0)
    arrival_rate = models.FloatField(default=0)
    opened = models.PositiveIntegerField(_("opened"), default=0)
    open_rate = models.FloatField(default=0)
    ignored = models.PositiveIntegerField(_("ignored"), default=0)
    ignore_rate = models.FloatField(default=0)
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["credential", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["credential", "day", "platform", "channel", "push_type"],
                name="daily_statistic_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.credential_id} {self.day} {self.platform or '*'} {self.push_type}"


class TaskStatistic(models.Model):
    """One push task's figures (QueryPushAnalysisTaskList + TaskDetail). mPaaS's push
    task ID is not the scheduled task's ID; the task name links it to a campaign."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="+")
    task_id = models.CharField(_("push task ID"), max_length=64)
    task_name = models.CharField(_("task name"), max_length=200, blank=True, db_index=True)
    template_name = models.CharField(max_length=200, blank=True)
    task_type = models.PositiveSmallIntegerField(default=0)
    created_on_mpaas = models.DateTimeField(null=True, blank=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    pushed = models.PositiveIntegerField(_("pushed"), default=0)
    push_success = models.PositiveIntegerField(_("pushed successfully"), default=0)
    arrived = models.PositiveIntegerField(_("arrived"), default=0)
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["credential", "task_id"]
        constraints = [
            models.UniqueConstraint(fields=["credential", "task_id"], name="task_statistic_unique")
        ]

    def __str__(self) -> str:
        return self.task_id


class StatisticsFetch(models.Model):
    """How the last statistics fetch of a credential went: pages show "statistics
    unavailable since …" while `failing_since` is set."""

    credential = models.OneToOneField(
        Credential, on_delete=models.CASCADE, related_name="statistics_fetch"
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)

    def __str__(self) -> str:
        return f"statistics of {self.credential_id}"
