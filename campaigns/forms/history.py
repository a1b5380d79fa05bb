"""The send-history filter: exact-match fields only, so every filter is an index lookup
(or a small subquery) and never a `LIKE '%x%'` over the delivery table.

HistoryFilterForm.page() gives one keyset page of the matches (newest first, `before=`
the last id shown) and iter_rows() walks all of them in chunks for the export; both read
ids first, then those rows by primary key, and neither counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy

from campaigns.models import Attempt, Batch, Campaign, Delivery, Run

CAMPAIGN_CHOICES = 200  # the select lists the newest campaigns; any id is still accepted
DATE_FIELDS = {"finished": "finished_at", "created": "batch__created_at"}
# what a history row shows besides the delivery itself
RELATED = ("batch", "run__campaign", "run__launched_by", "run__campaign__launched_by")


def _text(label, max_length: int, **kwargs) -> forms.CharField:
    return forms.CharField(label=label, required=False, max_length=max_length, **kwargs)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class HistoryFilterForm(forms.Form):
    campaign = forms.TypedChoiceField(
        label=gettext_lazy("Campaign"), required=False, coerce=int, empty_value=None
    )
    task_name = _text(gettext_lazy("Task name (exact)"), 128)
    target_id = _text(gettext_lazy("Target ID"), 200)
    msg_key = _text(gettext_lazy("msgKey"), 64)
    request_id = _text(gettext_lazy("RequestId"), 64)
    result_code = _text(gettext_lazy("ResultCode"), 64)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("All"))] + list(Delivery.Status.choices),
    )
    launched_by = _text(gettext_lazy("Launched by (username)"), 150)
    date_field = forms.ChoiceField(
        label=gettext_lazy("Dates apply to"),
        required=False,
        choices=[
            ("finished", gettext_lazy("Time finished")),
            ("created", gettext_lazy("Time planned")),
        ],
    )
    date_from = forms.DateField(label=gettext_lazy("From"), required=False, widget=DateInput())
    date_to = forms.DateField(
        label=gettext_lazy("To (inclusive)"), required=False, widget=DateInput()
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        recent = list(
            Campaign.objects.order_by("-pk").values_list("pk", "task_name")[:CAMPAIGN_CHOICES]
        )
        chosen = self.data.get("campaign", "") if self.is_bound else ""
        if chosen.isdigit() and int(chosen) not in {pk for pk, _name in recent}:
            # a link from an older campaign's page: offer it too, if it exists
            recent += list(Campaign.objects.filter(pk=int(chosen)).values_list("pk", "task_name"))
        self.fields["campaign"].choices = [("", gettext_lazy("All"))] + [
            (str(pk), f"#{pk} {name}") for pk, name in recent
        ]
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = (
                "form-select form-select-sm" if is_select else "form-control form-control-sm"
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in (
            "task_name",
            "target_id",
            "msg_key",
            "request_id",
            "result_code",
            "launched_by",
        ):
            data[name] = (data.get(name) or "").strip()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", gettext_lazy("The end date is before the start date."))
        return data

    def active_filters(self) -> dict[str, str]:
        """The filters in use, as strings: for links to further pages and the audit."""
        if not self.is_valid():
            return {}
        out = {}
        for name, value in self.cleaned_data.items():
            if value in (None, ""):
                continue
            if name == "date_field" and not (
                self.cleaned_data.get("date_from") or self.cleaned_data.get("date_to")
            ):
                continue
            out[name] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    def matching_ids(self) -> QuerySet:
        """The ids of the deliveries the filters match, newest first (keyset on id), as
        one query on the delivery table: no joins for display, so the indexes of the
        filtered columns answer it. An unbound form matches every delivery; invalid
        filters match none."""
        if not self.is_bound:
            return Delivery.objects.order_by("-id").values_list("pk", flat=True)
        if not self.is_valid():
            return Delivery.objects.none().values_list("pk", flat=True)
        data = self.cleaned_data
        rows = Delivery.objects.all()
        if data["target_id"]:
            rows = rows.filter(target_id=data["target_id"])
        if data["msg_key"]:
            rows = rows.filter(msg_key=data["msg_key"])
        if data["status"]:
            rows = rows.filter(status=data["status"])
        if data["result_code"]:
            rows = rows.filter(result_code=data["result_code"])
        if data["request_id"]:
            rows = rows.filter(batch__in=batches_with_request_id(data["request_id"]))
        runs = _runs(data)
        if runs is not None:
            rows = rows.filter(run__in=runs)
        if data.get("date_from") or data.get("date_to"):
            rows = _in_dates(rows, data)
        # `id + 0`: the same order, but one the primary key index cannot produce (see
        # _window_scan), so the planner reads the date window through its index
        newest_first = (F("id") + 0).desc() if _window_scan(data) else "-id"
        return rows.order_by(newest_first).values_list("pk", flat=True)

    def page(self, before: int | None = None, size: int = 50) -> list[Delivery]:
        """Up to `size` matching deliveries with an id below `before` (from the newest
        when None or 0), newest first, with what a history row shows. The next page is
        `before=<the last id shown>`; nothing is ever counted."""
        return _with_related(self._page_ids(before, size))

    def iter_rows(self, chunk: int = 2000) -> Iterator[Delivery]:
        """Every matching delivery, newest first, read `chunk` at a time by the same
        keyset as page(), so a long export holds one chunk in memory and each read
        stays as cheap as a page."""
        before = None
        while True:
            ids = self._page_ids(before, chunk)
            yield from _with_related(ids)
            if len(ids) < chunk:
                return
            before = ids[-1]

    def _page_ids(self, before: int | None, size: int) -> list[int]:
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


def batches_with_request_id(request_id: str) -> QuerySet[Batch]:
    """Batches whose last call, or any earlier attempt, had this RequestId."""
    earlier = Attempt.objects.filter(request_id=request_id).values("batch_id")
    return Batch.objects.filter(Q(request_id=request_id) | Q(pk__in=earlier)).values("pk")


def _runs(data: dict[str, Any]) -> QuerySet[Run] | None:
    """A subquery of the runs the campaign and launcher filters allow, or None."""
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
    return runs.values("pk") if used else None


def local_day_start(day: date) -> datetime:
    """Midnight of `day` in TIME_ZONE, as an aware datetime (compared in UTC)."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def _in_dates(rows: QuerySet[Delivery], data: dict[str, Any]) -> QuerySet[Delivery]:
    column = DATE_FIELDS.get(data.get("date_field") or "finished", "finished_at")
    if data.get("date_from"):
        rows = rows.filter(**{f"{column}__gte": local_day_start(data["date_from"])})
    if data.get("date_to"):
        end = local_day_start(data["date_to"] + timedelta(days=1))
        rows = rows.filter(**{f"{column}__lt": end})
    return rows


def _window_scan(data: dict[str, Any]) -> bool:
    """Whether a date-filtered page should read the finish-time window through its index
    and sort the window's ids, rather than walk newest-first along the primary key.

    Walking back from the newest delivery stops at the page's last match: quick when the
    matches are recent, a walk through every newer delivery when they are not, and
    PostgreSQL picks that walk anyway because it cannot know that ids and finish times
    rise together. A window with an end date, or one campaign's window, can lie far back,
    so it is read through `delivery_run_finished_idx` / `delivery_finished_idx` instead:
    the cost is then the rows inside the window, however old. An open window ("since
    ...") over all campaigns holds the newest rows, where the walk is best.
    """
    if not (data.get("date_from") or data.get("date_to")):
        return False
    finished = DATE_FIELDS.get(data.get("date_field") or "finished") == "finished_at"
    one_campaign = data.get("campaign") or data.get("task_name")
    return finished and bool(data.get("date_to") or one_campaign)
