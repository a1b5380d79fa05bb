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

from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import ceilings
from campaigns.models import Attempt, Batch, Delivery, Run
from campaigns.paging import day_q, day_window, local_day_start
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
        by_outcome = _outcome_filter(data)
        by_finished = bool(data.get("date_from") or data.get("date_to")) and (
            DATE_FIELDS.get(data.get("date_field") or "finished") == "finished_at"
        )
        unsettled = _unsettled_runs(runs) if by_outcome or by_finished else []
        if by_outcome is not None:
            settled = by_outcome[0]
            if unsettled:  # their deliveries may not show their outcome yet: ask the batch
                settled = (settled & ~Q(run_id__in=unsettled)) | (
                    Q(run_id__in=unsettled) & by_outcome[1]
                )
            rows = rows.filter(settled)
        if data.get("date_from") or data.get("date_to"):
            rows, runs = _in_dates(rows, runs, data, unsettled)
        if runs is not None:
            rows = rows.filter(run__in=runs)
        # `id + 0`: the same order, but one the primary key index cannot produce (see
        # _window_scan), so the planner reads the date window through its index
        newest_first = (F("id") + 0).desc() if _window_scan(data) else "-id"
        return rows.order_by(newest_first).values_list("pk", flat=True)

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


def _outcome_filter(data: dict[str, Any]) -> tuple[Q, Q] | None:
    """The status and ResultCode filters (None when neither is used), as read from a
    settled delivery's own columns, and as read from its batch (a run not settled yet:
    `sending.settling`). An open batch's deliveries are pending with no ResultCode."""
    own, batch = Q(), Q()
    if not (data["status"] or data["result_code"]):
        return None
    if data["status"] == Delivery.Status.PENDING:
        own &= Q(status=Delivery.Status.PENDING)
        batch &= Q(batch__status__in=Batch.OPEN_STATUSES)
    elif data["status"]:
        own &= Q(status=data["status"])
        batch &= Q(batch__status=data["status"])
    if data["result_code"]:
        own &= Q(result_code=data["result_code"])
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
) -> tuple[QuerySet[Delivery], list[int] | QuerySet[Run] | None]:
    """`rows` within the date window, and the run filter still to apply (None when the
    window took it over).

    An "until" window (no start) is also bounded by its id ceiling (`ceilings`): no
    delivery dated before the day's end has a higher id, so walking newest first from
    there reads about a page of rows, not every row after the window.

    A planned-time window with both ends, or with a run filter, is a subquery of the
    batches planned then (`batch_created_idx`), not a join: the deliveries are then read
    by batch, however old the window. With a run filter too, the runs go into that batch
    subquery (a delivery's run is its batch's run), so the deliveries are read by one
    index and SQLite, which plans without statistics, cannot pick the run's index and
    read every delivery of the run instead. An open one over every run ("since",
    "until") is a join instead: the walk newest first looks each row's batch up by its
    key (as a subquery, SQLite first built the set of every batch since the day).
    """
    start, end = data.get("date_from"), data.get("date_to")
    finished = DATE_FIELDS.get(data.get("date_field") or "finished") == "finished_at"
    if end and not start:
        top = _ceiling(finished, end, unsettled)
        if top is None:
            return rows.none(), runs
        rows = rows.filter(id__lte=top)
    if finished:
        if not unsettled:
            return day_window(rows, "finished_at", start, end), runs
        # a delivery of an unsettled run finished when its batch did (if it has)
        live = day_q("batch__finished_at", start, end) & ~Q(batch__status__in=Batch.OPEN_STATUSES)
        return rows.filter(
            (day_q("finished_at", start, end) & ~Q(run_id__in=unsettled))
            | (Q(run_id__in=unsettled) & live)
        ), runs
    if runs is None and not (start and end):
        return rows.filter(day_q("batch__created_at", start, end)), None
    planned = day_window(Batch.objects.all(), "created_at", start, end)
    if runs is not None:
        # `run_id + 0`: the window's index reads the batches, not the run's (SQLite took
        # the run's, every batch of the runs), so the cost stays the window's rows
        planned = planned.alias(run_of=F("run_id") + 0).filter(run_of__in=runs)
    return rows.filter(batch__in=planned.values("pk")), None


def _ceiling(finished: bool, end: date, unsettled: list[int] | QuerySet[Run]) -> int | None:
    """No delivery dated (finished, or planned) on or before `end` has an id above this;
    None when none is. An unsettled run's deliveries are dated by their batches, so
    their newest id counts too."""
    before = local_day_start(end + timedelta(days=1))
    top = ceilings.ceiling(ceilings.FINISHED if finished else ceilings.PLANNED, before)
    if finished and unsettled:
        live = Delivery.objects.filter(run_id__in=unsettled).aggregate(m=Max("id"))["m"]
        top = max((t for t in (top, live) if t is not None), default=None)
    return top


def _window_scan(data: dict[str, Any]) -> bool:
    """Whether a date-filtered page should read the date window through its index and
    sort the window's ids, rather than walk newest-first along the primary key.

    Walking back from the newest delivery (or, in an "until" window, from its id
    ceiling) stops at the page's last match: quick when the matches are recent, a walk
    through every newer delivery when they are not, and PostgreSQL picks that walk
    anyway because it cannot know that ids and dates rise together. A window with both
    ends, or one campaign's window, can lie far back, so it is read through
    `delivery_run_finished_idx` / `delivery_finished_idx` (time finished) or
    `batch_created_idx` (time planned) instead: the cost is then the rows inside the
    window, however old. The same goes for a launcher's "until" window (their runs may
    be a thin share of the walk). An open window over every campaign ("since", "until")
    holds the newest rows (of its ceiling), where the walk is best.
    """
    start, end = data.get("date_from"), data.get("date_to")
    if not (start or end):
        return False
    if data.get("campaign") or data.get("task_name"):
        return True
    if end and not start:
        return bool(data.get("launched_by"))
    return bool(end)


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
