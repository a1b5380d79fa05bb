"""Runs: one launch of a campaign (the first send, a retry of failed targets, one
occurrence of a schedule, or a recall), its live counts and its per-job tallies."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, models
from django.db.models import F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from campaigns.mpaas import vocabulary

from .campaign import Campaign


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
        before the commit. It waits for send rounds in progress and they wait for it
        (they take a key-share lock: `share`); planning holds a weaker one (`plan`)."""
        # No ordering (the default one joins the campaign, and FOR UPDATE would lock that
        # row too, out of order), and OF self.
        return (
            self.select_for_update(of=("self",))
            .filter(pk=run_id)
            .order_by()
            .values_list("status", flat=True)
            .first()
        )

    def lock_all(self, **where) -> list[int]:
        """`lock` for every run `where` picks, in id order: their ids."""
        return list(
            self.select_for_update(of=("self",))
            .filter(**where)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def plan(self, run_id: int) -> Run:
        """Inside a transaction: the run, its row locked for a planning chunk. On
        PostgreSQL `FOR NO KEY UPDATE`: it excludes `lock` (pause, cancel, the sweeper,
        failures) and another planner, but not send rounds (`share`), so the first
        batches keep going out while the rest is planned."""
        return (
            self.select_for_update(of=("self",), no_key=True)
            .select_related("campaign")
            .get(pk=run_id)
        )

    def share(self, run_id: int) -> tuple[str, int]:
        """Inside a transaction: the run's status and failure streak under a key-share
        lock on its row (PostgreSQL `FOR KEY SHARE`; SQLite has one writer at a time
        anyway). Send rounds do not exclude each other, nor planning (`plan`), but
        whatever changes the run's status takes `lock` first (pause and cancel too):
        it waits for rounds in progress and rounds wait for it, so no batch is claimed
        after a pause or cancel commits. A holder never updates the run row in the round
        (a plain update does not conflict with this lock, but keep the round's rows
        to the batches)."""
        with connection.cursor() as cursor:
            cursor.execute(*self.share_sql(run_id))
            status, streak = cursor.fetchone()
        return status, streak

    def progress_of(self, campaign_id: int) -> tuple[Campaign, RunProgress | None] | None:
        """The progress fragment's whole read, in one statement (each trip to a busy
        database costs a request more than the statement): the campaign (id, status,
        reason, name; the rest deferred) and its latest sending run
        (`Campaign.latest_run`) with its live counts, None before the first launch.
        None if there is no such campaign."""
        table = connection.ops.quote_name(Campaign._meta.db_table)
        run = connection.ops.quote_name(Run._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                _counts_sql(
                    "c.id = %s",
                    columns="c.id, c.status, c.status_reason, c.task_name, ",
                    source=f"{table} c LEFT JOIN {run} r ON r.id = (SELECT l.id FROM {run} l "
                    f"WHERE l.campaign_id = c.id AND l.kind <> '{Run.Kind.RECALL.value}' "
                    "ORDER BY l.number DESC LIMIT 1)",
                ),
                [campaign_id],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        read = dict(zip(("id", "status", "status_reason", "task_name"), row[:4], strict=True))
        # (from_db takes the values in the model's field order)
        names = [f.attname for f in Campaign._meta.concrete_fields if f.attname in read]
        campaign = Campaign.from_db(connection.alias, names, [read[name] for name in names])
        total, sent, failed, cancelled, in_flight, run_id, planning_done = row[4:]
        if run_id is None:
            return campaign, None
        counts = RunCounts.of(total, sent, failed, cancelled, in_flight)
        return campaign, RunProgress(run_id, bool(planning_done), counts)

    @staticmethod
    def share_sql(run_id: int) -> tuple[str, list]:
        """`share`'s statement and parameters (a send round pipelines it with its
        answers on PostgreSQL: `sending.statements.share_and_record`)."""
        table = connection.ops.quote_name(Run._meta.db_table)
        lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
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
        the rest of what is planned so far. Fixed SQL (`_counts_sql`): the progress fragment
        asks it every second of every watched send, and composing it with the ORM took
        longer than running it."""
        with connection.cursor() as cursor:
            cursor.execute(_counts_sql("r.id = %s"), [self.pk])
            row = cursor.fetchone()
        if row is None:
            raise Run.DoesNotExist(f"run {self.pk}")
        return RunCounts.of(*row[:5])

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

    @classmethod
    def of(cls, total: int, sent: int, failed: int, cancelled: int, in_flight: int) -> RunCounts:
        """From the live figures (`_counts_sql`): pending is what is left of the total."""
        return cls(
            total=total,
            pending=max(0, total - sent - failed - cancelled - in_flight),
            in_flight=in_flight,
            sent=sent,
            failed=failed,
            cancelled=cancelled,
        )

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.cancelled

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


@dataclass(frozen=True)
class RunProgress:
    """What the progress fragment shows of a run (`RunQuerySet.progress_of`)."""

    pk: int
    planning_done: bool
    counts: RunCounts


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


def _counts_sql(where: str, columns: str = "", source: str = "") -> str:
    """The live counts of the runs `where` picks (alias r, from `source`, by default the
    runs): `columns` first, then total, sent, failed, cancelled, in flight, the run's id
    and planning_done (`RunQuerySet.with_live_counts` as fixed text)."""
    from .ledger import Batch

    run, tally, batch = (
        connection.ops.quote_name(model._meta.db_table) for model in (Run, RunTally, Batch)
    )
    live = [
        f"r.{column} + COALESCE((SELECT SUM(t.{column}) FROM {tally} t WHERE t.run_id = r.id), 0)"
        for column in ("sent", "failed", "cancelled")
    ]
    return (
        f"SELECT {columns}r.total, {', '.join(live)}, COALESCE((SELECT SUM(b.target_count) "
        f"FROM {batch} b WHERE b.run_id = r.id AND b.status = '{Batch.Status.CLAIMED.value}'), "
        f"0), r.id, r.planning_done FROM {source or f'{run} r'} WHERE {where}"
    )
