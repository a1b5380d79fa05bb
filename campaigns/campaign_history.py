"""A campaign's whole history for its page: every run with its counts, the events, totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns import scheduling
from campaigns.models import AuditEvent, Campaign, Occurrence, Run
from campaigns.models.run import RunCounts

EVENT_LABELS = {
    "campaign.create": gettext_lazy("Draft created"),
    "campaign.launch": gettext_lazy("Launched"),
    "campaign.pause": gettext_lazy("Paused"),
    "campaign.resume": gettext_lazy("Resumed"),
    "campaign.cancel": gettext_lazy("Cancelled"),
    "campaign.cancel_tasks": gettext_lazy("mPaaS tasks cancelled"),
    "campaign.retry_failed": gettext_lazy("Failed targets retried"),
    "campaign.run_finished": gettext_lazy("Run finished"),
    "campaign.test_send": gettext_lazy("Test send"),
}


@dataclass(frozen=True)
class RunRow:
    run: Run
    counts: RunCounts
    status_label: str  # what the run's outcome was, true to its counts


@dataclass(frozen=True)
class Event:
    at: datetime
    who: str
    what: str
    why: str


def _status_label(run: Run, counts: RunCounts) -> str:
    """A run stopped by a cancel after every target was sent (or failed) did not cancel
    anything: say how it ended instead."""
    if run.status == Run.Status.CANCELLED and counts.cancelled == 0 and counts.pending == 0:
        if counts.in_flight == 0:
            done = Run.Status.COMPLETED_WITH_ERRORS if counts.failed else Run.Status.COMPLETED
            return str(Run.Status(done).label)
    return run.get_status_display()


def run_rows(campaign: Campaign) -> list[RunRow]:
    """Every run, newest first, each with its live counts."""
    rows = []
    for run in campaign.runs.order_by("-number"):
        counts = run.counts()
        rows.append(RunRow(run, counts, _status_label(run, counts)))
    return rows


def totals(rows: list[RunRow]) -> dict[str, int]:
    """Targets across all runs (`rows` newest first). A retry run re-sends the failures
    of the run before it, so what is still failed is the newest run's failed."""
    return {
        "runs": len(rows),
        "calls": sum(r.run.batch_count for r in rows),
        "sent": sum(r.counts.sent for r in rows),
        "still_failed": rows[0].counts.failed if rows else 0,
        "cancelled": sum(r.counts.cancelled for r in rows),
    }


def describe_details(action: str, details: dict) -> str:
    """An audit event's details in words (for the campaign page and the audit trail)."""
    d = details or {}
    if action == "campaign.pause":
        return d.get("reason", "") or ""
    if action == "campaign.cancel":
        return _("%(targets)s target(s) and %(occ)s send time(s) cancelled") % {
            "targets": d.get("targets_cancelled", 0),
            "occ": d.get("occurrences_cancelled", 0),
        }
    if action == "campaign.retry_failed":
        return _("Run %(run)s with the %(targets)s failed target(s) of run %(source)s") % {
            "run": d.get("run"),
            "targets": d.get("targets"),
            "source": d.get("source_run"),
        }
    if action == "campaign.run_finished":
        return _("Run %(run)s: %(sent)s sent, %(failed)s failed, %(cancelled)s cancelled") % {
            "run": d.get("run"),
            "sent": d.get("sent", 0),
            "failed": d.get("failed", 0),
            "cancelled": d.get("cancelled", 0),
        }
    if action == "campaign.test_send":
        return _("%(code)s %(message)s to %(targets)s") % {
            "code": d.get("result_code", ""),
            "message": d.get("message", ""),
            "targets": ", ".join(d.get("targets", [])),
        }
    if action == "campaign.cancel_tasks":
        return _("%(cancelled)s cancelled, %(failed)s failed") % {
            "cancelled": d.get("cancelled", 0),
            "failed": d.get("failed", 0),
        }
    if "fields" in d:
        return _("Fields: %(fields)s") % {"fields": ", ".join(map(str, d["fields"]))}
    if "copied_from" in d:
        return _("Copied from campaign %(pk)s") % {"pk": d["copied_from"]}
    return ""


def events(campaign: Campaign, limit: int = 200) -> list[Event]:
    """The campaign's pauses, auto-pauses, resumes, cancels, retries and runs, from the
    audit trail, oldest first; an event without a person was the console itself."""
    rows = AuditEvent.objects.filter(
        object_type="campaign", object_id=str(campaign.pk), action__in=list(EVENT_LABELS)
    ).order_by("pk")[:limit]
    out = []
    for e in rows:
        who = e.actor_username
        what = str(EVENT_LABELS[e.action])
        if not who:
            who = _("the console")
            if e.action == "campaign.pause":
                what = _("Paused automatically")
        out.append(Event(e.created_at, who, what, describe_details(e.action, e.details)))
    return out


def with_list_columns(campaigns: QuerySet) -> QuerySet:
    """The campaign list's columns: targets sent across runs, still failed (the newest
    run's failed) and the next pending send time kept in this console (folded counters:
    a run sending now lags by its unfolded tallies)."""
    latest = Run.objects.filter(campaign=OuterRef("pk")).order_by("-number")
    return campaigns.annotate(
        sent_total=Coalesce(Sum("runs__sent"), 0),
        failed_now=Coalesce(Subquery(latest.values("failed")[:1], output_field=IntegerField()), 0),
        next_due=Subquery(
            Occurrence.objects.filter(campaign=OuterRef("pk"), status=Occurrence.Status.PENDING)
            .order_by("due_at")
            .values("due_at")[:1]
        ),
    )


def add_next_send(rows: list[Campaign]) -> list[Campaign]:
    """`next_send` on each row: the console's next occurrence, or for a schedule kept on
    mPaaS the next time of its spec; none for a campaign that will not send again."""
    now = timezone.now()
    for c in rows:
        c.next_send = getattr(c, "next_due", None)
        if c.next_send is None and c.status == Campaign.Status.SCHEDULED:
            times = scheduling.occurrence_times(c.push_spec(), after=now)
            c.next_send = times[0] if times else None
    return rows
