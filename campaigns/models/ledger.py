"""The send record: batches (one API call's worth), deliveries (one target in one run)
and attempts (every HTTP call, append-only)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .campaign import Campaign
from .run import Run


class Batch(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        CLAIMED = "claimed", _("In flight")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    OPEN_STATUSES = (Status.PENDING, Status.CLAIMED)

    # no index of its own: batch_seq_unique (run, seq) leads with the run
    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="batches", db_index=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="batches")
    seq = models.PositiveIntegerField(help_text=_("Position of the batch within its run."))
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    target_count = models.PositiveSmallIntegerField(default=0)
    # Lease and fencing: a claim bumps lease_token; writes of outcomes are conditional
    # on the token, so a worker whose lease was reclaimed can never overwrite.
    lease_token = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    ambiguous = models.BooleanField(
        default=False, help_text=_("A call may have reached mPaaS without an answer.")
    )
    request_id = models.CharField(max_length=64, blank=True)
    result_code = models.CharField(max_length=64, blank=True)  # no query filters batches by it
    result_message = models.CharField(max_length=1000, blank=True)
    push_success = models.BooleanField(null=True)
    push_result_msg = models.CharField(max_length=1000, blank=True)
    push_result_data = models.CharField(
        max_length=128, blank=True, help_text=_("Scheduled task ID for fixed-time or loop pushes.")
    )
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="batch_seq_unique")]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"], name="batch_open_idx"),
            models.Index(fields=["run", "status", "seq"], name="batch_run_status_idx"),
            models.Index(fields=["request_id"], name="batch_request_id_idx"),
            # history's "time planned" window: the batches planned in it (history._in_dates)
            models.Index(fields=["created_at"], name="batch_created_idx"),
        ]
        verbose_name_plural = _("batches")

    def __str__(self) -> str:
        return f"{self.run} batch {self.seq}"


class DeliveryQuerySet(models.QuerySet):
    def in_state(self, status: str) -> DeliveryQuerySet:
        """Deliveries whose outcome is `status`, settled or not: a delivery's outcome is
        its batch's (one call, one outcome for all its targets), so this asks the batch
        and is right at every moment, before and after settling."""
        if status == Delivery.Status.PENDING:
            return self.filter(batch__status__in=Batch.OPEN_STATUSES)
        return self.filter(batch__status=status)


class Delivery(models.Model):
    """One target in one run. Its status, ResultCode and time finished are its batch's,
    copied in bulk when the batch's run is settled (`sending.settling`): while a
    delivery's own status is still pending, `outcome_status` and friends read the batch
    (load it with select_related)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    # no index of its own: delivery_run_id_idx (run, id) leads with the run
    run = models.ForeignKey(
        Run, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="deliveries")
    target_id = models.CharField(max_length=200)
    # Fixed before the first call and reused on every retry of the batch.
    msg_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    result_code = models.CharField(max_length=64, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Per-person values (placeholder -> value) fixed at planning, sent with PushMultiple.
    values = models.JSONField(null=True, blank=True)
    # In a recall run: the delivery whose message this one revokes (its msgKey is the
    # MessageId); status sent = revoked.
    recall_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="recalls"
    )

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "target_id"], name="delivery_target_unique_in_run"
            )
        ]
        indexes = [
            models.Index(fields=["target_id"], name="delivery_target_idx"),
            models.Index(fields=["run", "status", "id"], name="delivery_run_status_idx"),
            # history filtered by campaign or launcher: a run's newest deliveries first
            models.Index(fields=["run", "id"], name="delivery_run_id_idx"),
            models.Index(fields=["finished_at"], name="delivery_finished_idx"),
            # campaign + date history pages: the day's rows of the campaign's runs, and
            # their ids without the table (index-only on PostgreSQL)
            models.Index(fields=["run", "finished_at", "id"], name="delivery_run_finished_idx"),
        ]
        verbose_name_plural = _("deliveries")

    def __str__(self) -> str:
        return f"{self.target_id} ({self.msg_key})"

    @property
    def _unsettled(self) -> bool:
        """Pending here, but its batch has an outcome that was not copied yet."""
        return self.status == self.Status.PENDING and self.batch.status in SETTLES_TO

    @property
    def outcome_status(self) -> str:
        return SETTLES_TO[self.batch.status] if self._unsettled else self.status

    def get_outcome_status_display(self) -> str:
        return self.Status(self.outcome_status).label

    @property
    def is_sent(self) -> bool:
        return self.outcome_status == self.Status.SENT

    @property
    def outcome_result_code(self) -> str:
        return self.batch.result_code if self._unsettled else self.result_code

    @property
    def outcome_finished_at(self):
        return self.batch.finished_at if self._unsettled else self.finished_at


# A final batch's status → its deliveries' (the same words).
SETTLES_TO = {
    Batch.Status.SENT: Delivery.Status.SENT,
    Batch.Status.FAILED: Delivery.Status.FAILED,
    Batch.Status.CANCELLED: Delivery.Status.CANCELLED,
}


class Attempt(models.Model):
    """One HTTP call. Written before the call (outcome 'unknown') and completed after,
    so a crash in between leaves a row that says the outcome is unknown."""

    class Outcome(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown (no answer recorded)")
        SUCCESS = "success", _("Accepted")
        TRANSIENT = "transient", _("Transient error")
        PERMANENT = "permanent", _("Permanent error")
        AMBIGUOUS = "ambiguous", _("Ambiguous (may have been sent)")

    # no index of its own: attempt_number_unique (batch, number) leads with it (0022)
    batch = models.ForeignKey(
        Batch, on_delete=models.PROTECT, related_name="attempt_log", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    lease_token = models.PositiveIntegerField()
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.UNKNOWN)
    request_id = models.CharField(max_length=64, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    result_code = models.CharField(max_length=64, blank=True)
    result_message = models.CharField(max_length=1000, blank=True)
    request_params = models.JSONField(default=dict, help_text=_("Business parameters sent."))
    response_body = models.TextField(blank=True)

    class Meta:
        ordering = ["batch", "number"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "number"], name="attempt_number_unique")
        ]
        indexes = [models.Index(fields=["request_id"], name="attempt_request_id_idx")]

    def __str__(self) -> str:
        return f"{self.batch} attempt {self.number}"


class IdBounds(models.Model):
    """Bounds on the ids of the deliveries dated in an hour, so the history reads a date
    window newest first from the primary key, between two ids, instead of reading every
    row of the window (`campaigns.idbounds`).

    Of the deliveries written together (a plan chunk, a settle chunk, a cancel), those
    whose earliest date (finished, or planned: their batch's) falls in `hour` have ids
    ≤ `max_id`, and those whose latest date falls in it have ids ≥ `min_id`. So every
    delivery dated before E has an id ≤ the largest max_id of the hours before E, and
    every one dated from S on an id ≥ the smallest min_id of the hours from S's on.
    Every writer of those dates records its bounds (planning, settling, cancelling)."""

    class Kind(models.TextChoices):
        FINISHED = "finished", _("time finished")
        PLANNED = "planned", _("time planned")

    kind = models.CharField(max_length=8, choices=Kind.choices)
    hour = models.DateTimeField()
    min_id = models.BigIntegerField(null=True)
    max_id = models.BigIntegerField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "hour"], name="id_bounds_hour")]
        verbose_name = _("history id bounds")
        verbose_name_plural = _("history id bounds")

    def __str__(self) -> str:
        return f"{self.kind} {self.hour:%Y-%m-%d %H:00} [{self.min_id}, {self.max_id}]"
