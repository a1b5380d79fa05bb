"""Campaigns and their runs. A campaign is what marketing builds; a run is one launch
of it (the first send, a retry of failed targets, or one occurrence of a schedule)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, models
from django.db.models import F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from campaigns.mpaas import vocabulary
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


def _per_run_sum(rows: models.QuerySet, column: str) -> Coalesce:
    """Sum of `column` over the `rows` of the outer query's run (0 when none)."""
    return Coalesce(
        Subquery(
            rows.filter(run=OuterRef("pk"))
            .order_by()
            .values("run")
            .annotate(n=Sum(column))
            .values("n")
        ),
        Value(0),
    )


class RunQuerySet(models.QuerySet):
    def lock(self, run_id: int) -> str | None:
        """Inside a transaction: lock the run's row and return its status. Transactions
        that change a run's state take this lock first (campaign, then run, then
        batches), so they cannot deadlock, and a status read under it cannot go stale
        before the commit. (Send rounds take a shared lock instead: `share`.)"""
        # No ordering (the default one joins the campaign, and FOR UPDATE would lock that
        # row too, out of order), and OF self.
        return (
            self.select_for_update(of=("self",))
            .filter(pk=run_id)
            .order_by()
            .values_list("status", flat=True)
            .first()
        )

    def share(self, run_id: int) -> tuple[str, int]:
        """Inside a transaction: the run's status and failure streak under a shared lock
        on its row (PostgreSQL; SQLite has one writer at a time anyway). Send rounds do
        not exclude each other, but pause and cancel, which update the row, wait for
        rounds in progress and rounds wait for them, so no batch is claimed after a pause
        or cancel commits. A holder must never update the run row (two would deadlock
        upgrading)."""
        with connection.cursor() as cursor:
            cursor.execute(*self.share_sql(run_id))
            status, streak = cursor.fetchone()
        return status, streak

    @staticmethod
    def share_sql(run_id: int) -> tuple[str, list]:
        """`share`'s statement and parameters (a send round pipelines it with its
        answers on PostgreSQL: `sending.statements.share_and_record`)."""
        table = connection.ops.quote_name(Run._meta.db_table)
        lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
        return f"SELECT status, consecutive_failures FROM {table} WHERE id = %s{lock}", [run_id]

    def with_live_counts(self) -> RunQuerySet:
        """Annotate live_sent / live_failed / live_cancelled (folded plus the tallies not
        yet folded) and in_flight (targets of claimed batches)."""
        from .ledger import Batch

        tallies = RunTally.objects.all()
        return self.annotate(
            live_sent=F("sent") + _per_run_sum(tallies, "sent"),
            live_failed=F("failed") + _per_run_sum(tallies, "failed"),
            live_cancelled=F("cancelled") + _per_run_sum(tallies, "cancelled"),
            in_flight=_per_run_sum(
                Batch.objects.filter(status=Batch.Status.CLAIMED), "target_count"
            ),
        )


class Run(models.Model):
    """One launch of a campaign. Its counters are maintained with every outcome write,
    so reading progress never counts deliveries."""

    class Kind(models.TextChoices):
        INITIAL = "initial", _("Initial send")
        RETRY = "retry", _("Retry of failed targets")
        OCCURRENCE = "occurrence", _("Scheduled occurrence")
        RECALL = "recall", _("Recall of sent messages")

    class Status(models.TextChoices):
        PLANNING = "planning", _("Planning")
        SENDING = "sending", _("Sending")
        PAUSED = "paused", _("Paused")
        CANCELLED = "cancelled", _("Cancelled")
        COMPLETED = "completed", _("Completed")
        COMPLETED_WITH_ERRORS = "completed_with_errors", _("Completed with errors")
        FAILED = "failed", _("Failed")

    # Runs that may still send, and those whose jobs are working.
    OPEN = frozenset({Status.PLANNING, Status.SENDING, Status.PAUSED})
    WORKING = frozenset({Status.PLANNING, Status.SENDING})

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="runs")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.INITIAL)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PLANNING)
    source_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="retries"
    )
    # A recall of one delivery (from the history's batch page) holds only that one.
    recall_only = models.ForeignKey(
        "campaigns.Delivery", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Planning walks the target list by primary key; this is how far it got.
    planned_through = models.BigIntegerField(default=0)
    planning_done = models.BooleanField(default=False)
    batch_count = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    # Outcome counts folded so far. While the run is open, send jobs count into their
    # own RunTally rows instead (no shared row to queue on); closing the run folds
    # them in. `counts()` gives the live figures either way.
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When every delivery took its batch's outcome (`sending.settling`); until then the
    # batches are the record of the run's outcomes and readers ask them.
    settled_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["campaign", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="run_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign} #{self.number}"

    def counts(self) -> RunCounts:
        """The run's live counts in one statement (one snapshot): folded outcomes plus
        the tallies not yet folded; in flight = targets of claimed batches; pending =
        the rest of what is planned so far."""
        total, sent, failed, cancelled, in_flight = (
            Run.objects.filter(pk=self.pk)
            .with_live_counts()
            .values_list("total", "live_sent", "live_failed", "live_cancelled", "in_flight")
            .get()
        )
        return RunCounts(
            total=total,
            pending=max(0, total - sent - failed - cancelled - in_flight),
            in_flight=in_flight,
            sent=sent,
            failed=failed,
            cancelled=cancelled,
        )

    def outcomes(self) -> list[OutcomeRow]:
        """Finished calls of this run grouped by status and ResultCode, most targets
        first, each with the code's meaning (mPaaS's code table)."""
        from .ledger import Batch

        rows = (
            Batch.objects.filter(run=self)
            .exclude(status__in=Batch.OPEN_STATUSES)
            .values("status", "result_code")
            .annotate(calls=models.Count("pk"), targets=Sum("target_count"))
            .order_by("-targets")
        )
        return [
            OutcomeRow(
                status=row["status"],
                status_label=Batch.Status(row["status"]).label,
                result_code=row["result_code"] or "",
                meaning=vocabulary.result_label(row["result_code"] or ""),
                calls=row["calls"],
                targets=row["targets"] or 0,
            )
            for row in rows
        ]


@dataclass(frozen=True)
class OutcomeRow:
    """Calls of one run that ended with one status and ResultCode (see `Run.outcomes`)."""

    status: str
    status_label: str
    result_code: str
    meaning: str
    calls: int
    targets: int


@dataclass(frozen=True)
class RunCounts:
    """A run's targets by state at one moment (see `Run.counts`)."""

    total: int
    pending: int
    in_flight: int
    sent: int
    failed: int
    cancelled: int

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.cancelled

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


class RunTally(models.Model):
    """Outcome counts of an open run, one row per send job slot (`shard`). Each job adds
    to its own row in the transaction that records outcomes, so recording never waits on
    another job; closing the run folds the rows into the run and deletes them."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tallies")
    shard = models.PositiveIntegerField()
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "shard"], name="run_tally_shard_unique")
        ]

    def __str__(self) -> str:
        return f"{self.run} tally {self.shard}"
