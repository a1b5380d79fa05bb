"""What review states before launch: calls, time, where the schedule is kept, send times."""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from campaigns import scheduling
from campaigns.conf import multiple_batch_size, push_limits
from campaigns.models import Campaign
from campaigns.mpaas.vocabulary import StrategyType, humanize_seconds

SHOWN_TIMES = 20


@dataclass
class ReviewPlan:
    targets: int
    calls: int  # per send time
    send_seconds: float
    send_time: str  # "about 2 seconds" per send time, "" without calls
    choice: scheduling.Choice | None  # None for an immediate push
    times: list[datetime] = field(default_factory=list)  # the first SHOWN_TIMES, local
    time_count: int = 0
    zone: str = ""

    @property
    def first_send(self) -> datetime | None:
        return self.times[0] if self.times else None

    @property
    def more_times(self) -> int:
        return max(0, self.time_count - len(self.times))

    @property
    def confirm_label(self) -> str:
        """The launch box's words, true to the schedule."""
        n = self.targets
        if self.choice is None:
            return ngettext("Send to %(n)s target now", "Send to %(n)s targets now", n) % {
                "n": _num(n)
            }
        if self.first_send is None:
            return _("Launch (no send time is left in the future)")
        when = first_send_text(self.first_send, self.zone)
        if self.time_count == 1:
            return ngettext(
                "Schedule %(n)s target for %(when)s", "Schedule %(n)s targets for %(when)s", n
            ) % {"n": _num(n), "when": when}
        return ngettext(
            "Send to %(n)s target at each of %(count)s send times, the first on %(when)s",
            "Send to %(n)s targets at each of %(count)s send times, the first on %(when)s",
            n,
        ) % {"n": _num(n), "count": _num(self.time_count), "when": when}


def _num(n: int) -> str:
    return number_format(n, force_grouping=True)


def first_send_text(moment: datetime, zone: str) -> str:
    return f"{date_format(moment, 'D Y-m-d H:i')} ({zone})"


def plan(campaign: Campaign, *, now: datetime | None = None) -> ReviewPlan:
    targets = campaign.target_list.target_count
    size = multiple_batch_size() if campaign.per_person() else push_limits().max_targets
    calls = math.ceil(targets / size) if targets else 0
    seconds = calls / campaign.credential.rate_limit if calls else 0
    result = ReviewPlan(
        targets=targets,
        calls=calls,
        send_seconds=seconds,
        send_time=humanize_seconds(max(1, math.ceil(seconds))) if calls else "",
        choice=None,
    )
    if campaign.strategy_type == StrategyType.IMMEDIATE:
        return result
    spec = campaign.push_spec()
    result.choice = scheduling.choose(campaign)
    result.zone = spec.timezone
    try:
        zone = zoneinfo.ZoneInfo(spec.timezone)
        times = scheduling.occurrence_times(spec, after=now or timezone.now())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return result
    result.time_count = len(times)
    result.times = [t.astimezone(zone) for t in times[:SHOWN_TIMES]]
    return result


def launched_message(campaign: Campaign, *, now: datetime | None = None) -> str:
    """The flash message after launch: when the first send is, not "in a moment" for a
    schedule."""
    if campaign.strategy_type == StrategyType.IMMEDIATE:
        return _("Launched. Sending starts in a moment.")
    spec = campaign.push_spec()
    times = scheduling.occurrence_times(spec, after=now or timezone.now())
    if not times:
        return _("Launched.")
    when = first_send_text(times[0].astimezone(zoneinfo.ZoneInfo(spec.timezone)), spec.timezone)
    if campaign.schedule_resolved == scheduling.MPAAS:
        return _("Launched. The calls to mPaaS are made now; mPaaS sends first on %(when)s.") % {
            "when": when
        }
    return _("Launched. The first send is on %(when)s.") % {"when": when}
