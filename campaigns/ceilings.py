"""Id ceilings: how the send history reads "until <day>" newest first in a few rows.

The history lists deliveries newest first (by id). A window open to the past ("until
a day") holds every older row, so reading it through its date index costs half the
table, and walking the primary key back from the newest row costs every row after it.
What would bound the walk is the highest id dated before the day's end, and nothing
makes ids and dates rise together: a delivery finishes long after it is planned, runs
interleave.

So every writer of a delivery's dates records a ceiling (`IdCeiling`): "the deliveries
I just wrote, dated at or after this hour, have ids ≤ this". Then every delivery dated
before E has an id ≤ `ceiling(kind, E)`, the largest max_id recorded for an hour before
E, and the history walks the primary key back from there (`history._in_dates`). The
bound is exact to within what was written together around E (a settle chunk, a plan
chunk), so the walk reads about a page of rows, not half the table.

Writers: planning (time planned, and time finished of a cancelled run's chunk),
settling and cancelling (time finished). `rebuild()` recomputes them all from the rows
(migration 0021; fixtures that write deliveries with raw SQL), and
`uncovered()` lists any delivery the ceilings miss (the invariant check).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.db.models import F, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce

from campaigns.models import Delivery, IdCeiling

FINISHED = IdCeiling.Kind.FINISHED
PLANNED = IdCeiling.Kind.PLANNED


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in (any floor ≤ the moment keeps the bound true)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def record(kind: str, earliest: datetime | None, max_id: int | None) -> None:
    """Record that deliveries just written, dated `earliest` or later (as `kind`), have
    ids ≤ `max_id`. Call it in the transaction that writes them. Nothing when either
    is None (nothing was written)."""
    if earliest is None or max_id is None:
        return
    table = connection.ops.quote_name(IdCeiling._meta.db_table)
    greater = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    hour = connection.ops.adapt_datetimefield_value(hour_of(earliest))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (kind, hour, max_id) VALUES (%s, %s, %s) "
            f"ON CONFLICT (kind, hour) DO UPDATE SET "
            f"max_id = {greater}({table}.max_id, excluded.max_id)",
            [str(kind), hour, max_id],
        )


def ceiling(kind: str, before: datetime) -> int | None:
    """An id no delivery dated (as `kind`) before `before` exceeds; None when there is
    none dated before it."""
    return IdCeiling.objects.filter(kind=kind, hour__lt=before).aggregate(m=Max("max_id"))["m"]


def newest_id() -> int | None:
    """The highest delivery id now (a ceiling for rows just written: safe, since any
    row written with them has an id ≤ it)."""
    return Delivery.objects.order_by("-id").values_list("id", flat=True).first()


def rebuild(delivery_model=Delivery, ceiling_model=IdCeiling) -> int:
    """Recompute every ceiling from the rows: one grouped read of the delivery table per
    kind, in SQL (Django's TruncHour is a Python function per row on SQLite, 17 µs a
    row). Returns the rows written. The models are parameters for the migration."""
    quote = connection.ops.quote_name
    ceiling = quote(ceiling_model._meta.db_table)
    delivery = quote(delivery_model._meta.db_table)
    batch = quote(delivery_model._meta.get_field("batch").related_model._meta.db_table)
    if connection.vendor == "postgresql":
        hour = "date_trunc('hour', {} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # Django keeps SQLite datetimes as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        hour = "strftime('%%Y-%%m-%%d %%H:00:00', {})"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ceiling}")
        cursor.execute(
            f"INSERT INTO {ceiling} (kind, hour, max_id) "
            f"SELECT %s, {hour.format('d.finished_at')}, max(d.id) FROM {delivery} d "
            f"WHERE d.finished_at IS NOT NULL GROUP BY 2",
            [str(FINISHED)],
        )
        written = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {ceiling} (kind, hour, max_id) "
            f"SELECT %s, {hour.format('b.created_at')}, max(d.id) FROM {delivery} d "
            f"JOIN {batch} b ON b.id = d.batch_id GROUP BY 2",
            [str(PLANNED)],
        )
        return written + cursor.rowcount


def uncovered(kind: str) -> list[int]:
    """Ids of deliveries whose date (as `kind`) no ceiling covers: should be none."""
    column = "finished_at" if kind == FINISHED else "batch__created_at"
    bound = (
        IdCeiling.objects.filter(kind=kind, hour__lte=OuterRef(column))
        .order_by()
        .values("kind")
        .annotate(m=Max("max_id"))
        .values("m")
    )
    rows = Delivery.objects.filter(**{f"{column}__isnull": False}).annotate(
        bound=Coalesce(Subquery(bound), 0)
    )
    return list(rows.filter(id__gt=F("bound")).values_list("id", flat=True)[:100])
