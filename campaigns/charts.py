"""Charts a marketer reads at a glance, drawn as SVG on the server (no script): the figures
come from this console's ledger or from the stored mPaaS statistics, never from a call
while rendering. Each Chart carries its own table (shown behind a toggle, exported as CSV)
and the geometry its template draws."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Max, Min, Sum
from django.db.models.functions import TruncDate, TruncMinute
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from campaigns.models import (
    Batch,
    Campaign,
    Credential,
    DailyStatistic,
    StatisticsFetch,
    TaskStatistic,
)

WIDTH, HEIGHT = 480, 260
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 14, 52
COLOURS = ("#0d6efd", "#dc3545", "#198754", "#fd7e14", "#6f42c1")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2")
MAX_X_LABELS = 6
DASHBOARD_DAYS = 30
MAX_RUNS, MAX_MINUTES = 5, 180


@dataclass
class Series:
    name: str
    values: list[float]
    colour: str = COLOURS[0]
    dash: str = ""
    points: str = ""  # polyline points
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, tooltip
    bars: list[tuple[float, float, float, float, str]] = field(default_factory=list)


@dataclass
class Chart:
    key: str
    title: str
    source: str
    x_label: str
    y_label: str
    categories: list[str]
    series: list[Series]
    kind: str = "line"  # or "bar"
    percent: bool = False
    export_url: str = ""
    unavailable: str = ""  # "statistics unavailable since …"
    uid: str = ""
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM

    @property
    def point_count(self) -> int:
        return sum(len(s.values) for s in self.series)

    @property
    def is_empty(self) -> bool:
        return not any(any(v for v in s.values) for s in self.series)

    def table_header(self) -> list[str]:
        return [self.x_label, *(s.name for s in self.series)]

    def table_rows(self) -> list[list]:
        return [
            [category, *(_cell(s.values[i], self.percent) for s in self.series)]
            for i, category in enumerate(self.categories)
        ]

    @property
    def x_label_y(self) -> int:
        return self.height - 6

    @property
    def y_label_x(self) -> int:
        return 12

    @property
    def y_label_y(self) -> float:
        return (self.plot_top + self.plot_bottom) / 2


def _cell(value: float, percent: bool) -> str | int | float:
    if percent:
        return f"{value:.1f}%"
    return int(value) if float(value).is_integer() else round(value, 2)


def _tip(chart: Chart, series: Series, i: int) -> str:
    return f"{chart.categories[i]} · {series.name}: {_cell(series.values[i], chart.percent)}"


def _nice_max(top: float, percent: bool) -> float:
    """The axis top: 100 % for shares, else four equal steps of 1, 2, 2.5 or 5 x 10^k."""
    if percent:
        return 100.0
    step = 1.0
    while step * 4 < top:
        for factor in (2, 1.25, 2, 2):  # 1, 2, 2.5, 5, 10, 20, 25, 50, ...
            step *= factor
            if step * 4 >= top:
                break
    return step * 4


def _tick(value: float, percent: bool) -> str:
    return f"{value:.0f}%" if percent else f"{value:g}"


def layout(chart: Chart) -> Chart:
    """Compute axes ticks, polylines, dots and bars in the SVG's own coordinates."""
    count = len(chart.categories)
    top = _nice_max(max((max(s.values, default=0) for s in chart.series), default=0), chart.percent)
    span_x = chart.plot_right - chart.plot_left
    span_y = chart.plot_bottom - chart.plot_top

    def y_of(value: float) -> float:
        return round(chart.plot_bottom - (value / top) * span_y, 1)

    chart.y_ticks = [(y_of(top * n / 4), _tick(top * n / 4, chart.percent)) for n in range(5)]
    if chart.kind == "bar":
        slot = span_x / max(count, 1)
        width = slot * 0.8 / max(len(chart.series), 1)
        centres = [chart.plot_left + slot * (i + 0.5) for i in range(count)]
        for n, series in enumerate(chart.series):
            for i, value in enumerate(series.values):
                x = chart.plot_left + slot * i + slot * 0.1 + width * n
                y = y_of(value)
                tip = _tip(chart, series, i)
                series.bars.append(
                    (round(x, 1), y, round(width, 1), round(chart.plot_bottom - y, 1), tip)
                )
    else:
        step = span_x / max(count - 1, 1)
        centres = [chart.plot_left + step * i for i in range(count)]
        for series in chart.series:
            coords = [(round(centres[i], 1), y_of(v)) for i, v in enumerate(series.values)]
            series.points = " ".join(f"{x},{y}" for x, y in coords)
            series.dots = [
                (
                    x,
                    y,
                    _tip(chart, series, i),
                )
                for i, (x, y) in enumerate(coords)
            ]
    every = max(1, -(-count // MAX_X_LABELS))
    chart.x_ticks = [(round(centres[i], 1), chart.categories[i]) for i in range(0, count, every)]
    for n, series in enumerate(chart.series):
        series.colour, series.dash = COLOURS[n % len(COLOURS)], DASHES[n % len(DASHES)]
    return chart


def _as_of(moment: datetime | None) -> str:
    if moment is None:
        return _("mPaaS statistics, not fetched yet")
    return _("mPaaS statistics, as of %(when)s") % {
        "when": date_format(timezone.localtime(moment), "Y-m-d H:i")
    }


def unavailable_text(credential: Credential) -> str:
    fetch = StatisticsFetch.objects.filter(credential=credential).first()
    if not fetch or not fetch.failing_since:
        return ""
    return _("Statistics unavailable since %(when)s (%(error)s)") % {
        "when": date_format(timezone.localtime(fetch.failing_since), "Y-m-d H:i"),
        "error": fetch.last_error,
    }


def _days(credential: Credential, now: datetime) -> list[date]:
    today = now.astimezone(zoneinfo.ZoneInfo(credential.timezone)).date()
    return [today - timedelta(days=n) for n in range(DASHBOARD_DAYS - 1, -1, -1)]


def sends_per_day(credential: Credential, now: datetime | None = None) -> Chart:
    """Targets sent and failed per day over the last 30 days (the console's ledger), days in
    the credential's timezone."""
    days = _days(credential, now or timezone.now())
    zone = zoneinfo.ZoneInfo(credential.timezone)
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=zone)
    # from the batches: a call's targets share its outcome, settled or not
    rows = (
        Batch.objects.filter(
            campaign__credential=credential,
            finished_at__gte=start,
            status__in=(Batch.Status.SENT, Batch.Status.FAILED),
        )
        .annotate(day=TruncDate("finished_at", tzinfo=zone))
        .values("day", "status")
        .annotate(n=Sum("target_count"))
    )
    counts = {(row["day"], row["status"]): row["n"] for row in rows}
    return layout(
        Chart(
            key="sends-per-day",
            uid=f"sends-per-day-{credential.pk}",
            title=_("Targets sent and failed per day"),
            source=_("Source: this console"),
            x_label=_("Day (%(zone)s)") % {"zone": credential.timezone},
            y_label=_("Targets"),
            categories=[d.strftime("%m-%d") for d in days],
            series=[
                Series(_("Sent"), [counts.get((d, Batch.Status.SENT), 0) for d in days]),
                Series(_("Failed"), [counts.get((d, Batch.Status.FAILED), 0) for d in days]),
            ],
            export_url=_export("sends-per-day", credential=credential.pk),
        )
    )


def rates_per_day(credential: Credential, now: datetime | None = None) -> Chart:
    """Arrival and open rates per day (stored mPaaS statistics, all platforms and types):
    arrived of pushed, opened of arrived, as percentages."""
    days = _days(credential, now or timezone.now())
    stats = DailyStatistic.objects.filter(
        credential=credential, day__in=days, platform="", channel=""
    )
    rows = {
        row["day"]: row
        for row in stats.values("day").annotate(
            pushed=Sum("pushed"), arrived=Sum("arrived"), opened=Sum("opened")
        )
    }
    as_of = stats.aggregate(at=Max("fetched_at"))["at"]

    def share(day: date, part: str, whole: str) -> float:
        row = rows.get(day)
        return round(100 * row[part] / row[whole], 1) if row and row[whole] else 0.0

    return layout(
        Chart(
            key="rates-per-day",
            uid=f"rates-per-day-{credential.pk}",
            title=_("Arrival and open rates per day"),
            source=_as_of(as_of),
            x_label=_("Day (%(zone)s)") % {"zone": credential.timezone},
            y_label=_("Share (%)"),
            categories=[d.strftime("%m-%d") for d in days],
            series=[
                Series(_("Arrived of pushed"), [share(d, "arrived", "pushed") for d in days]),
                Series(_("Opened of arrived"), [share(d, "opened", "arrived") for d in days]),
            ],
            percent=True,
            export_url=_export("rates-per-day", credential=credential.pk),
            unavailable=unavailable_text(credential),
        )
    )


def sends_per_minute(campaign: Campaign) -> Chart:
    """Targets sent per minute since each run's first send (the latest five runs)."""
    runs = list(campaign.runs.order_by("-number")[:MAX_RUNS])[::-1]
    per_run = {}
    for run in runs:
        rows = (
            Batch.objects.filter(run=run, status=Batch.Status.SENT)
            .annotate(minute=TruncMinute("finished_at"))
            .values("minute")
            .annotate(n=Sum("target_count"))
            .order_by("minute")
        )
        rows = [r for r in rows if r["minute"]]
        if rows:
            first = rows[0]["minute"]
            per_run[run.number] = {
                int((r["minute"] - first).total_seconds() // 60): r["n"] for r in rows
            }
    length = min(max((max(m) + 1 for m in per_run.values()), default=1), MAX_MINUTES)
    return layout(
        Chart(
            key="sends-per-minute",
            uid=f"sends-per-minute-{campaign.pk}",
            title=_("Targets sent per minute during each run"),
            source=_("Source: this console"),
            x_label=_("Minutes since the run's first send"),
            y_label=_("Targets per minute"),
            categories=[str(m) for m in range(length)],
            series=[
                Series(_("Run %(n)s") % {"n": n}, [minutes.get(m, 0) for m in range(length)])
                for n, minutes in per_run.items()
            ],
            export_url=_export("sends-per-minute", campaign=campaign.pk),
        )
    )


def outcomes(campaign: Campaign) -> Chart:
    """The latest run's targets by outcome and ResultCode (`Run.outcomes()`)."""
    run = campaign.latest_run()
    rows = run.outcomes() if run else []
    return layout(
        Chart(
            key="outcomes",
            uid=f"outcomes-{campaign.pk}",
            title=_("Outcomes by ResultCode (latest run)"),
            source=_("Source: this console"),
            x_label=_("Outcome and ResultCode"),
            y_label=_("Targets"),
            categories=[f"{r.status_label} {r.result_code or '—'}" for r in rows],
            series=[Series(_("Targets"), [r.targets or 0 for r in rows])],
            kind="bar",
            export_url=_export("outcomes", campaign=campaign.pk),
        )
    )


def task_figures(campaign: Campaign) -> Chart:
    """mPaaS's figures per push task of this campaign (tasks named like the campaign)."""
    tasks = list(
        TaskStatistic.objects.filter(
            credential=campaign.credential, task_name=campaign.task_name
        ).order_by("task_id")[:50]
    )
    as_of = TaskStatistic.objects.filter(pk__in=[t.pk for t in tasks]).aggregate(
        at=Min("fetched_at")
    )["at"]
    return layout(
        Chart(
            key="tasks",
            uid=f"tasks-{campaign.pk}",
            title=_("mPaaS figures per push task"),
            source=_as_of(as_of),
            x_label=_("Push task ID"),
            y_label=_("Messages"),
            categories=[t.task_id for t in tasks],
            series=[
                Series(_("Pushed"), [t.pushed for t in tasks]),
                Series(_("Pushed successfully"), [t.push_success for t in tasks]),
                Series(_("Arrived"), [t.arrived for t in tasks]),
            ],
            kind="bar",
            export_url=_export("tasks", campaign=campaign.pk),
            unavailable=unavailable_text(campaign.credential),
        )
    )


CREDENTIAL_CHARTS = {"sends-per-day": sends_per_day, "rates-per-day": rates_per_day}
CAMPAIGN_CHARTS = {
    "sends-per-minute": sends_per_minute,
    "outcomes": outcomes,
    "tasks": task_figures,
}


def dashboard_charts(now: datetime | None = None) -> list[tuple[Credential, list[Chart]]]:
    return [
        (c, [sends_per_day(c, now), rates_per_day(c, now)])
        for c in Credential.objects.filter(is_active=True)
    ]


def campaign_charts(campaign: Campaign) -> list[Chart]:
    charts = [sends_per_minute(campaign), outcomes(campaign)]
    tasks = task_figures(campaign)
    if tasks.categories or campaign.schedule_resolved == "mpaas":
        charts.append(tasks)
    return charts


def _export(key: str, **scope: int) -> str:
    name, pk = next(iter(scope.items()))
    return f"{reverse('statistics-export', args=[key])}?{name}={pk}"
