"""Id bounds: how the send history reads a date window newest first in about a page of rows.

The history lists deliveries newest first (by id). A date window read through its date
index costs every row inside it (a day is ~80,000 rows at 5 M; "until a day" half the
table) before the newest 50 can be picked, and walking the primary key back from the
newest row costs every row after the window. What would bound the walk is the range of
ids dated inside the window, and nothing makes ids and dates rise together: a delivery
finishes long after it is planned, and runs interleave.

So every writer of a delivery's dates records bounds (`IdBounds`, one row per kind and
hour): "of the deliveries I just wrote, those dated from this hour on have ids ≤ this
(the hour of my earliest date), those dated up to that hour ids ≥ that (the hour of my
latest)". Then every delivery dated before E has an id ≤ `ceiling(kind, E)` and every
one dated from S on an id ≥ `floor(kind, S)`, and the history walks the primary key
back from the ceiling to the floor (`history._in_dates`), stopping at a page's worth of
matches. The bounds are exact to within what was written together (a plan chunk, a
settle chunk), so the walk reads about a page of rows when the window holds that many,
and at most the rows between the bounds when it holds fewer.

Writers: planning (time planned, and time finished of a cancelled run's chunk),
settling and cancelling (time finished). `rebuild()` recomputes them all from the rows
(migration 0021; fixtures that write deliveries with raw SQL), and `uncovered()` lists
any delivery outside its bounds (the invariant check).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import F, Max, Min, OuterRef, Q, Subquery

from campaigns.models import Delivery, IdBounds

FINISHED = IdBounds.Kind.FINISHED
PLANNED = IdBounds.Kind.PLANNED


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def record(
    kind: str, first: datetime | None, last: datetime | None, low: int | None, high: int | None
) -> None:
    """Record that the deliveries just written, dated (as `kind`) from `first` to `last`,
    have ids from `low` to `high`. Call it in the transaction that writes them. Nothing
    when any is None (nothing was written)."""
    if first is None or last is None or low is None or high is None:
        return
    if hour_of(first) == hour_of(last):
        _upsert(kind, first, low, high)
    else:
        _upsert(kind, first, None, high)
        _upsert(kind, last, low, None)


def _upsert(kind: str, moment: datetime, low: int | None, high: int | None) -> None:
    table = connection.ops.quote_name(IdBounds._meta.db_table)
    greatest, least = ("GREATEST", "LEAST") if connection.vendor == "postgresql" else ("MAX", "MIN")
    hour = connection.ops.adapt_datetimefield_value(hour_of(moment))
    # a NULL bound is "none recorded": keep the other side's (SQLite's MAX(x, NULL) is NULL)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (kind, hour, min_id, max_id) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT (kind, hour) DO UPDATE SET "
            f"min_id = COALESCE({least}({table}.min_id, excluded.min_id), "
            f"{table}.min_id, excluded.min_id), "
            f"max_id = COALESCE({greatest}({table}.max_id, excluded.max_id), "
            f"{table}.max_id, excluded.max_id)",
            [str(kind), hour, low, high],
        )


def run_ids(run_id: int) -> tuple[int | None, int | None]:
    """The lowest and highest delivery id of a run (two reads of `delivery_run_id_idx`):
    bounds for its deliveries when their dates are not recorded per hour (a cancel, or
    a run not settled yet)."""
    ids = Delivery.objects.filter(run_id=run_id).values_list("id", flat=True)
    return ids.order_by("id").first(), ids.order_by("-id").first()


def ceiling(kind: str, before: datetime) -> int | None:
    """An id no delivery dated (as `kind`) before `before` exceeds; None when none is
    dated before it."""
    return IdBounds.objects.filter(kind=kind, hour__lt=before).aggregate(m=Max("max_id"))["m"]


def floor(kind: str, since: datetime) -> int | None:
    """An id no delivery dated (as `kind`) at or after `since` is below; None when none
    is dated then."""
    rows = IdBounds.objects.filter(kind=kind, hour__gte=hour_of(since))
    return rows.aggregate(m=Min("min_id"))["m"]


def rebuild(delivery_model=Delivery, bounds_model=IdBounds) -> int:
    """Recompute every bound from the rows: one grouped read of the delivery table per
    kind, in SQL (Django's TruncHour is a Python function per row on SQLite, 17 µs a
    row). Returns the rows written. The models are parameters for the migration."""
    quote = connection.ops.quote_name
    bounds = quote(bounds_model._meta.db_table)
    delivery = quote(delivery_model._meta.db_table)
    batch = quote(delivery_model._meta.get_field("batch").related_model._meta.db_table)
    if connection.vendor == "postgresql":
        hour = "date_trunc('hour', {} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # Django keeps SQLite datetimes as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        hour = "strftime('%%Y-%%m-%%d %%H:00:00', {})"
    insert = (
        "INSERT INTO {bounds} (kind, hour, min_id, max_id) SELECT %s, {hour}, min(d.id), max(d.id) "
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {bounds}")
        cursor.execute(
            insert.format(bounds=bounds, hour=hour.format("d.finished_at"))
            + f"FROM {delivery} d WHERE d.finished_at IS NOT NULL GROUP BY 2",
            [str(FINISHED)],
        )
        written = cursor.rowcount
        cursor.execute(
            insert.format(bounds=bounds, hour=hour.format("b.created_at"))
            + f"FROM {delivery} d JOIN {batch} b ON b.id = d.batch_id GROUP BY 2",
            [str(PLANNED)],
        )
        return written + cursor.rowcount


def uncovered(kind: str) -> list[int]:
    """Ids of deliveries outside their date's bounds (as `kind`): should be none."""
    column = "finished_at" if kind == FINISHED else "batch__created_at"
    # the hour a delivery's date falls in, as the bounds' rows are keyed (UTC hours)
    bounds = IdBounds.objects.filter(kind=kind).order_by().values("kind")
    ceiling_at = bounds.filter(hour__lte=OuterRef(column)).annotate(m=Max("max_id")).values("m")
    floor_at = (
        bounds.filter(hour__gt=OuterRef(column) - timedelta(hours=1))
        .annotate(m=Min("min_id"))
        .values("m")
    )
    rows = Delivery.objects.filter(**{f"{column}__isnull": False}).annotate(
        top=Subquery(ceiling_at), bottom=Subquery(floor_at)
    )
    outside = Q(top__isnull=True) | Q(bottom__isnull=True) | Q(id__gt=F("top"))
    outside |= Q(id__lt=F("bottom"))
    return list(rows.filter(outside).values_list("id", flat=True)[:100])
