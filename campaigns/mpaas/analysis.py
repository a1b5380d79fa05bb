"""Statistics answers of mPaaS (QueryPushAnalysis*): the 90-day rule, checked before a
call, and defensive readers of the answers (pure; no SDK, no database)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

from django.utils.translation import gettext as _

MAX_ANALYSIS_DAYS = 90


class AnalysisRangeError(ValueError):
    """A statistics query mPaaS would refuse (checked before any call)."""


def check_analysis_range(start: date, end: date) -> None:
    """mPaaS's rule for QueryPushAnalysisCoreIndex: the end day is not before the start
    day and at most 90 days after it."""
    if end < start:
        raise AnalysisRangeError(_("The end day must not be before the start day."))
    if (end - start).days > MAX_ANALYSIS_DAYS:
        raise AnalysisRangeError(
            _(
                "mPaaS statistics cover at most %(max)d days from start to end; "
                "%(start)s to %(end)s is %(days)d days."
            )
            % {"max": MAX_ANALYSIS_DAYS, "start": start, "end": end, "days": (end - start).days}
        )


def day_ms(day: date, zone: zoneinfo.ZoneInfo) -> int:
    return int(datetime.combine(day, dtime.min, tzinfo=zone).timestamp() * 1000)


def content_of(data: dict) -> Any:
    content = data.get("ResultContent")
    return content.get("Data") if isinstance(content, dict) else None


def _number(value: Any) -> float:
    """A figure as mPaaS sent it (float, int or text); anything unreadable is 0."""
    if isinstance(value, bool):
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number and number not in (float("inf"), float("-inf")) else 0.0


def ms_time(value: Any) -> datetime | None:
    number = _number(value)
    if number <= 0:
        return None
    try:
        return datetime.fromtimestamp(number / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class CoreIndex:
    """QueryPushAnalysisCoreIndex's eight figures (ResultContent.Data). Rates are as mPaaS
    sent them (the sandbox sends shares 0-1; unconfirmed upstream)."""

    push_total: int = 0
    pushed: int = 0
    arrived: int = 0
    arrival_rate: float = 0.0
    opened: int = 0
    open_rate: float = 0.0
    ignored: int = 0
    ignore_rate: float = 0.0

    @classmethod
    def from_answer(cls, data: dict) -> CoreIndex:
        content = content_of(data)
        if not isinstance(content, dict):
            content = {}
        return cls(
            push_total=int(_number(content.get("PushTotalNum"))),
            pushed=int(_number(content.get("PushNum"))),
            arrived=int(_number(content.get("ArrivalNum"))),
            arrival_rate=_number(content.get("ArrivalRate")),
            opened=int(_number(content.get("OpenNum"))),
            open_rate=_number(content.get("OpenRate")),
            ignored=int(_number(content.get("IgnoreNum"))),
            ignore_rate=_number(content.get("IgnoreRate")),
        )


@dataclass(frozen=True)
class TaskFigures:
    """QueryPushAnalysisTaskDetail's figures for one push task."""

    task_id: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    pushed: int = 0
    push_success: int = 0
    arrived: int = 0

    @classmethod
    def from_answer(cls, task_id: str, data: dict) -> TaskFigures:
        content = content_of(data)
        if not isinstance(content, dict):
            content = {}
        return cls(
            task_id=task_id,
            start_time=ms_time(content.get("StartTime")),
            end_time=ms_time(content.get("EndTime")),
            pushed=int(_number(content.get("PushNum"))),
            push_success=int(_number(content.get("PushSuccessNum"))),
            arrived=int(_number(content.get("PushArrivalNum"))),
        )
