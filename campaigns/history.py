"""The send history reader: which deliveries match a filter, a keyset page at a time.

Exact-match filters only, so every filter is an index lookup (or a small subquery) and
never a `LIKE '%x%'` over the delivery table. `HistoryQuery.page()` gives one keyset page
of the matches (newest first, `before=` the last id shown) and `iter_rows()` walks all of
them in chunks for the export; both read ids first, then those rows by primary key, and
neither counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    DateTimeField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import idbounds
from campaigns.models import Attempt, Batch, Delivery, Run
from campaigns.paging import day_q, local_day_start
from campaigns.sending.settling import unsettled_runs

# a delivery's time finished is its own; its time planned is its batch's
DATE_FIELDS = {"finished": "finished_at", "created": "batch__created_at"}
# what a history row shows besides the delivery itself
RELATED = ("batch", "run__campaign", "run__launched_by", "run__campaign__launched_by")
EXPORT_CHUNK = 2000
# a filter matching more runs than this reads them as a subquery, not a list of ids
RUN_LIST_MAX = 100


@dataclass(frozen=True)
class HistoryQuery:
    """A send-history filter (empty fields filter nothing); `matches_nothing` for a
    filter that did not validate."""

    campaign: int | None = None
    task_name: str = ""
    target_id: str = ""
    msg_key: str = ""
    request_id: str = ""
    result_code: str = ""
    status: str = ""
    launched_by: str = ""
    date_field: str = "finished"
    date_from: date | None = None
    date_to: date | None = None
    matches_nothing: bool = False

    def matching_ids(self) -> QuerySet:
        """The ids of the deliveries the filters match, newest first (keyset on id), as
        one query on the delivery table: no joins for display, so the indexes of the
        filtered columns answer it."""
        if self.matches_nothing:
            return Delivery.objects.none().values_list("pk", flat=True)
        data = dataclasses.asdict(self)
        rows = Delivery.objects.all()
        if data["target_id"]:
            rows = rows.filter(target_id=data["target_id"])
        if data["msg_key"]:
            rows = rows.filter(msg_key=data["msg_key"])
        if data["request_id"]:
            rows = rows.filter(batch__in=batches_with_request_id(data["request_id"]))
        runs = _runs(data)
        dated = bool(data.get("date_from") or data.get("date_to"))
        by_finished = dated and (
            DATE_FIELDS.get(data.get("date_field") or "finished") == "finished_at"
        )
        outcome_used = bool(data["status"] or data["result_code"])
        unsettled = _unsettled_runs(runs) if outcome_used or by_finished else []
        bounded = False
        if dated:
            rows, runs, bounded = _in_dates(rows, runs, data, unsettled)
        if outcome_used:
            own = ("status", "result_code")
            if bounded and connection.vendor == "postgresql":
                # within id bounds the walk is the cheapest read: keep PostgreSQL off the
                # status index (every failed delivery of every run, then sorted)
                rows = rows.alias(
                    status_v=Concat("status", Value("")), code_v=Concat("result_code", Value(""))
                )
                own = ("status_v", "code_v")
            settled, by_batch = _outcome_filter(data, *own)
            if unsettled:  # their deliveries may not show their outcome yet: ask the batch
                settled = (settled & ~Q(run_id__in=unsettled)) | (
                    Q(run_id__in=unsettled) & by_batch
                )
            rows = rows.filter(settled)
        if runs is not None:
            rows = rows.filter(run__in=runs)
        return rows.order_by("-id").values_list("pk", flat=True)

    def page(self, before: int | None = None, size: int = 50) -> list[Delivery]:
        """Up to `size` matching deliveries with an id below `before` (from the newest
        when None or 0), newest first, with what a history row shows. The next page is
        `before=<the last id shown>`; nothing is ever counted."""
        return _with_related(self.page_ids(before, size))

    def iter_rows(self, chunk: int = 2000) -> Iterator[Delivery]:
        """Every matching delivery, newest first, read `chunk` at a time by the same
        keyset as page(), so a long export holds one chunk in memory and each read
        stays as cheap as a page."""
        before = None
        while True:
            ids = self.page_ids(before, chunk)
            yield from _with_related(ids)
            if len(ids) < chunk:
                return
            before = ids[-1]

    def page_ids(self, before: int | None, size: int) -> list[int]:
        ids = self.matching_ids()
        if before:
            ids = ids.filter(id__lt=before)
        return list(ids[:size])


def _with_related(ids: list[int]) -> list[Delivery]:
    """The deliveries `ids`, in that order, with RELATED, read by primary key.

    A page is read in two steps: its ids alone (matching_ids(), which an index on the
    filtered columns answers, and whose sort, if any, sorts integers rather than
    thousands of joined rows), then only those rows joined with what they show."""
    if not ids:
        return []
    found = Delivery.objects.select_related(*RELATED).in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def batches_with_request_id(request_id: str) -> list[int]:
    """The ids of the batches whose last call, or any earlier attempt, had this RequestId.

    Read first, as a list: one UNION of two index lookups. As a subquery with an OR,
    PostgreSQL scanned the whole batch table for it."""
    last = Batch.objects.filter(request_id=request_id).order_by().values_list("pk", flat=True)
    earlier = (
        Attempt.objects.filter(request_id=request_id).order_by().values_list("batch_id", flat=True)
    )
    return list(last.union(earlier))


def _runs(data: dict[str, Any]) -> list[int] | QuerySet[Run] | None:
    """The runs the campaign and launcher filters allow, or None when neither is used.

    Read first, as a list of ids (up to RUN_LIST_MAX, else a subquery): one run then
    reads as `run_id = …`, which `delivery_run_id_idx` (run, id) answers newest first in
    LIMIT rows. As a subquery, PostgreSQL walked the primary key back from the newest
    delivery through every other campaign's rows (0.7-1 s at 5 M rows)."""
    runs = Run.objects.all()
    used = False
    if data["campaign"]:
        runs, used = runs.filter(campaign_id=data["campaign"]), True
    if data["task_name"]:
        runs, used = runs.filter(campaign__task_name=data["task_name"]), True
    if data["launched_by"]:
        # a scheduled occurrence may have no launcher of its own: the campaign's counts
        who = data["launched_by"]
        runs = runs.filter(
            Q(launched_by__username=who)
            | Q(launched_by__isnull=True, campaign__launched_by__username=who)
        )
        used = True
    if not used:
        return None
    ids = list(runs.order_by().values_list("pk", flat=True)[: RUN_LIST_MAX + 1])
    return ids if len(ids) <= RUN_LIST_MAX else runs.values("pk")


def _outcome_filter(
    data: dict[str, Any], status: str = "status", result_code: str = "result_code"
) -> tuple[Q, Q]:
    """The status and ResultCode filters, as read from a settled delivery's own columns
    (named `status` and `result_code`), and as read from its batch (a run not settled
    yet: `sending.settling`). An open batch's deliveries are pending with no ResultCode."""
    own, batch = Q(), Q()
    if data["status"] == Delivery.Status.PENDING:
        own &= Q(**{status: Delivery.Status.PENDING})
        batch &= Q(batch__status__in=Batch.OPEN_STATUSES)
    elif data["status"]:
        own &= Q(**{status: data["status"]})
        batch &= Q(batch__status=data["status"])
    if data["result_code"]:
        own &= Q(**{result_code: data["result_code"]})
        batch &= Q(batch__result_code=data["result_code"]) & ~Q(
            batch__status__in=Batch.OPEN_STATUSES
        )
    return own, batch


def _unsettled_runs(runs: list[int] | QuerySet[Run] | None) -> list[int] | QuerySet[Run]:
    """The runs (among `runs`, if given) whose deliveries may not be settled yet: open
    runs and runs just closed. Few at any time; empty in a quiet console."""
    unsettled = unsettled_runs()
    if runs is not None:
        unsettled = unsettled.filter(pk__in=runs)
    ids = list(unsettled.order_by().values_list("pk", flat=True)[: RUN_LIST_MAX + 1])
    return ids if len(ids) <= RUN_LIST_MAX else unsettled.values("pk")


def _in_dates(
    rows: QuerySet[Delivery],
    runs: list[int] | QuerySet[Run] | None,
    data: dict[str, Any],
    unsettled: list[int] | QuerySet[Run],
) -> tuple[QuerySet[Delivery], list[int] | QuerySet[Run] | None, bool]:
    """`rows` within the date window, the run filter still to apply, and whether id
    bounds hold the window.

    The window is read newest first along the primary key between its id bounds
    (`idbounds`): no delivery dated in it has an id outside them, so the walk reads
    about a page of rows when the window holds a page, and at most the rows between
    the bounds when it holds fewer, however old the window. Read through a date index
    instead, a window costs every row in it (a day: ~80,000 rows at 5 M; "until": half
    the table) before the newest 50 can be picked.

    Time finished: a delivery of an unsettled run finished when its batch did (if it
    has), and has no date of its own yet: the bounds widen to its run's ids. Time
    planned is the batch's: a join, each walked row's batch looked up by its key (as a
    subquery, SQLite first built the set of every batch in the window).
    """
    start, end = data.get("date_from"), data.get("date_to")
    finished = DATE_FIELDS.get(data.get("date_field") or "finished") == "finished_at"
    bounds = _bounds(finished, start, end, unsettled)
    if bounds is None:
        return rows.none(), runs, False
    low, high = bounds
    if low is not None:
        rows = rows.filter(id__gte=low)
    if high is not None:
        rows = rows.filter(id__lte=high)
    bounded = low is not None or high is not None
    if not finished:
        rows = rows.alias(planned_at=_opaque("batch__created_at", bounded))
        return rows.filter(day_q("planned_at", start, end)), runs, bounded
    rows = rows.alias(finished=_opaque("finished_at", bounded))
    if not unsettled:
        return rows.filter(day_q("finished", start, end)), runs, bounded
    live = day_q("batch__finished_at", start, end) & ~Q(batch__status__in=Batch.OPEN_STATUSES)
    return (
        rows.filter(
            (day_q("finished", start, end) & ~Q(run_id__in=unsettled))
            | (Q(run_id__in=unsettled) & live)
        ),
        runs,
        bounded,
    )


def _opaque(column: str, bounded: bool) -> F | ExpressionWrapper | Subquery:
    """`column` (a delivery's time finished, or its batch's time planned), hidden from
    PostgreSQL's date indexes and joins when the id bounds hold the window.

    PostgreSQL estimates the rows of a window between its id bounds as if ids and dates
    were independent (70 of a day's 83,000), so it reads the whole window through
    `delivery_run_finished_idx` or hash-joins every batch planned in it, and sorts the
    lot (50 ms at 5 M), instead of walking the ids, which stops at a page. `+ interval
    '0'` keeps the value and takes the index away; the time planned is read per walked
    row by the batch's key (a scalar subquery, which PostgreSQL cannot turn into a
    join). SQLite already walks, and keeps the plain column."""
    if not (bounded and connection.vendor == "postgresql"):
        return F(column)
    if column == "batch__created_at":
        planned = Batch.objects.filter(pk=OuterRef("batch_id")).order_by()  # no Meta ordering
        return Subquery(planned.values("created_at")[:1])
    return ExpressionWrapper(F(column) + timedelta(0), output_field=DateTimeField())


# unsettled runs whose ids widen a finished-time window's bounds (one by one, by index);
# with more, the window is walked without bounds
LIVE_RUNS_MAX = 5


def _bounds(
    finished: bool, start: date | None, end: date | None, unsettled: list[int] | QuerySet[Run]
) -> tuple[int | None, int | None] | None:
    """The ids (lowest, highest) between which every delivery dated (finished, or
    planned) in the window lies, either None for no bound; None when none is dated in
    it."""
    kind = idbounds.FINISHED if finished else idbounds.PLANNED
    low = idbounds.floor(kind, local_day_start(start)) if start else None
    high = idbounds.ceiling(kind, local_day_start(end + timedelta(days=1))) if end else None
    if finished and unsettled:
        if not isinstance(unsettled, list) or len(unsettled) > LIVE_RUNS_MAX:
            return None, None
        live = [i for run_id in unsettled for i in idbounds.run_ids(run_id) if i is not None]
        if start:
            low = min((i for i in (low, *live) if i is not None), default=None)
        if end:
            high = max((i for i in (high, *live) if i is not None), default=None)
    if (start and low is None) or (end and high is None):
        return None  # nothing is dated in the window
    return low, high


def launched_by(delivery: Delivery) -> str:
    """Who launched the run (a scheduled occurrence counts as its campaign's launcher)."""
    user = delivery.run.launched_by or delivery.run.campaign.launched_by
    return user.get_username() if user else ""


def _local(moment) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds") if moment else ""


def export_header() -> list[str]:
    return [
        _("Finished"),
        _("Campaign"),
        _("Campaign ID"),
        _("Run"),
        _("Target ID"),
        _("msgKey"),
        _("Status"),
        _("ResultCode"),
        _("RequestId"),
        _("Launched by"),
        _("Batch ID"),
        _("Possibly pushed twice"),
    ]


def export_row(delivery: Delivery, *, twice: bool = False) -> list:
    campaign = delivery.run.campaign
    return [
        _local(delivery.outcome_finished_at),
        campaign.task_name,
        campaign.pk,
        delivery.run.number,
        delivery.target_id,
        delivery.msg_key,
        delivery.get_outcome_status_display(),
        delivery.outcome_result_code,
        delivery.batch.request_id,
        launched_by(delivery),
        delivery.batch_id,
        _("yes, same msgKey") if twice else "",
    ]


def export_rows(
    deliveries: Iterator[Delivery], twice_for: Callable[[list[Delivery]], set[int]]
) -> Iterator[list]:
    """Export rows of `deliveries`, the "possibly pushed twice" column from `twice_for`
    (doubts.twice_for) asked once per chunk of EXPORT_CHUNK rows."""
    chunk: list[Delivery] = []
    for delivery in deliveries:
        chunk.append(delivery)
        if len(chunk) == EXPORT_CHUNK:
            yield from _rows(chunk, twice_for)
            chunk = []
    yield from _rows(chunk, twice_for)


def _rows(chunk: list[Delivery], twice_for) -> Iterator[list]:
    if not chunk:
        return
    twice = twice_for(chunk)
    for delivery in chunk:
        yield export_row(delivery, twice=delivery.pk in twice)
