"""StrategyContent of a scheduled push (PUSH_API.md §3): its rules and its trigger times.

Pure functions: the clock comes in as ``now_ms``, days are counted in ``tz``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any

from .rules import BusinessError, is_int, json_object

__all__ = ["DAY_MS", "LOOP_MAX_DAYS_AHEAD", "loop_occurrences", "today_start_ms", "validate"]

LOOP_MAX_DAYS_AHEAD = 180
DAY_MS = 86_400_000
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d)")


def today_start_ms(now_ms: int, tz: tzinfo) -> int:
    today = datetime.fromtimestamp(now_ms / 1000, tz).date()
    return int(datetime(today.year, today.month, today.day, tzinfo=tz).timestamp() * 1000)


def loop_occurrences(strategy: dict[str, Any], tz: tzinfo) -> list[int]:
    """Every day from startTime to endTime matching circleType/circleValue, at ``time``.

    Weekly values are ISO weekdays (1 = Monday); monthly values are days of the month."""
    start = datetime.fromtimestamp(strategy["startTime"] / 1000, tz).date()
    end = datetime.fromtimestamp(strategy["endTime"] / 1000, tz).date()
    hours, minutes, seconds = (int(p) for p in strategy["time"].split(":"))
    values = set(strategy.get("circleValue") or [])
    circle = strategy["circleType"]
    moments = []
    day = start
    while day <= end:
        if (
            circle == 1
            or (circle == 2 and day.isoweekday() in values)
            or (circle == 3 and day.day in values)
        ):
            moment = datetime(day.year, day.month, day.day, hours, minutes, seconds, tzinfo=tz)
            moments.append(int(moment.timestamp() * 1000))
        day += timedelta(days=1)
    return moments


def validate(strategy_type: int, raw: str | None, now_ms: int, tz: tzinfo) -> list[int]:
    """StrategyContent for StrategyType 1 (fixed) or 2 (loop); returns the trigger times
    in epoch ms (one for a fixed push, one per occurrence for a loop)."""
    strategy = json_object(raw)
    if strategy is None:
        raise BusinessError(
            "3028", "StrategyContent must be a JSON object when StrategyType is 1/2"
        )
    if strategy_type == 1:
        fixed = strategy.get("fixedTime")
        if not is_int(fixed):
            raise BusinessError("3028", "StrategyContent.fixedTime must be epoch milliseconds")
        if fixed <= now_ms:
            raise BusinessError("3028", "StrategyContent.fixedTime must be in the future")
        return [fixed]
    today_ms = today_start_ms(now_ms, tz)
    start, end = strategy.get("startTime"), strategy.get("endTime")
    for name, value in (("startTime", start), ("endTime", end)):
        if not is_int(value):
            raise BusinessError("3028", f"StrategyContent.{name} must be epoch milliseconds")
        if value < today_ms:
            raise BusinessError(
                "3028", f"StrategyContent.{name} must not be before 00:00 today ({tz})"
            )
    if end < start:
        raise BusinessError("3028", "StrategyContent.endTime must not be before startTime")
    if end > today_ms + LOOP_MAX_DAYS_AHEAD * DAY_MS:
        raise BusinessError("3028", "StrategyContent.endTime must be at most 180 days after today")
    circle = strategy.get("circleType")
    if circle not in (1, 2, 3) or not is_int(circle):
        raise BusinessError("3028", "StrategyContent.circleType must be 1, 2 or 3")
    values = strategy.get("circleValue")
    if circle == 1:
        if values not in (None, "", []):
            raise BusinessError("3028", "StrategyContent.circleValue must be empty for daily loops")
    else:
        top = 7 if circle == 2 else 31
        if (
            not isinstance(values, list)
            or not values
            or not all(is_int(v) and 1 <= v <= top for v in values)
        ):
            kind = "weekly" if circle == 2 else "monthly"
            raise BusinessError(
                "3028", f"StrategyContent.circleValue must list {kind} days from 1 to {top}"
            )
    time_of_day = strategy.get("time")
    if not isinstance(time_of_day, str) or not _TIME_OF_DAY.fullmatch(time_of_day):
        raise BusinessError("3028", "StrategyContent.time must be HH:mm:ss")
    moments = loop_occurrences(strategy, tz)
    if not moments:
        raise BusinessError(
            "3028", "StrategyContent has no day between startTime and endTime that matches"
        )
    return moments
