"""Reading long lists a page at a time: keyset pages and day windows.

Keyset pages never count and never OFFSET: a page is the rows past a cursor (the last
key shown), one more than the page size read to know whether there is a next page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone


@dataclass(frozen=True)
class Page:
    """One keyset page: its rows, and the cursor of the next page (None on the last)."""

    rows: list
    next_cursor: Any = None


def cursor(raw: str | None) -> int | None:
    """A cursor from a query string (a positive integer), or None."""
    return int(raw) if raw and raw.isdigit() else None


def keyset_page(
    rows: QuerySet,
    *,
    key: str,
    size: int,
    after: Any = None,
    descending: bool = False,
    key_of: Callable[[Any], Any] | None = None,
) -> Page:
    """The `size` rows of `rows` that follow `after` in `key` order (ascending, or
    descending with `descending`). `key_of` reads the key of a row (default: the
    attribute `key`, or the first item of a values_list row)."""
    if after is not None:
        rows = rows.filter(**{f"{key}__{'lt' if descending else 'gt'}": after})
    found = list(rows.order_by(f"-{key}" if descending else key)[: size + 1])
    if len(found) <= size:
        return Page(found)
    last = found[size - 1]
    if key_of is None:
        return Page(found[:size], last[0] if isinstance(last, tuple) else getattr(last, key))
    return Page(found[:size], key_of(last))


def local_day_start(day: date) -> datetime:
    """Midnight of `day` in TIME_ZONE, as an aware datetime (compared in UTC)."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def day_window(rows: QuerySet, column: str, start: date | None, end: date | None) -> QuerySet:
    """Rows whose `column` falls on the days from `start` to `end` inclusive (either
    may be None), days being the console's time zone's."""
    return rows.filter(day_q(column, start, end))


def day_q(column: str, start: date | None, end: date | None) -> Q:
    """`day_window` as a Q, to combine with other conditions."""
    q = Q()
    if start:
        q &= Q(**{f"{column}__gte": local_day_start(start)})
    if end:
        q &= Q(**{f"{column}__lt": local_day_start(end + timedelta(days=1))})
    return q
