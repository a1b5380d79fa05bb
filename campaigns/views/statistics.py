"""Statistics pages: the "refresh mPaaS statistics" button, the CSV export behind each
chart, and the send calendar. They read the database; only the refresh button calls
mPaaS (through the statistics job's own function)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import can_read, can_send
from campaigns import audit, charts, csvio, sendcalendar, statistics
from campaigns.models import Campaign, Credential


@can_send
@require_POST
def statistics_refresh(request):
    credential = Credential.objects.filter(
        pk=request.POST.get("credential", "")
        if request.POST.get("credential", "").isdigit()
        else None
    ).first()
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
        target = "/"
    if credential is None:
        messages.error(request, _("credential: No such credential; choose one from the list."))
        return redirect(target)
    result = statistics.refresh(credential)
    audit.record(
        "statistics.refresh",
        obj=credential,
        request=request,
        details={"credential": credential.name, "days": result.days, "error": result.error},
    )
    if result.error:
        messages.warning(request, charts.unavailable_text(credential))
    else:
        messages.success(
            request,
            _("mPaaS statistics of %(name)s refreshed: %(days)d days, %(tasks)d push tasks.")
            % {"name": credential.name, "days": result.days, "tasks": result.tasks},
        )
    return redirect(target)


@can_read
@require_GET
def statistics_export(request, key: str):
    """The numbers behind one chart as CSV (neutralised cells, audited like the history)."""
    if key in charts.CREDENTIAL_CHARTS and request.GET.get("credential", "").isdigit():
        scope = get_object_or_404(Credential, pk=request.GET["credential"])
        chart = charts.CREDENTIAL_CHARTS[key](scope)
    elif key in charts.CAMPAIGN_CHARTS and request.GET.get("campaign", "").isdigit():
        scope = get_object_or_404(
            Campaign.objects.select_related("credential"), pk=request.GET["campaign"]
        )
        chart = charts.CAMPAIGN_CHARTS[key](scope)
    else:
        raise Http404(_("No such chart."))
    audit.record("statistics.export", obj=scope, request=request, details={"chart": key})
    filename = f"{key}-{scope.pk}-{timezone.localtime():%Y%m%d-%H%M%S}.csv"
    return csvio.streaming_csv_response(
        filename,
        [*chart.table_header(), _("Source")],
        ([*row, chart.source] for row in chart.table_rows()),
    )


@can_read
@require_GET
def send_calendar(request):
    try:
        first = sendcalendar.parse_month(request.GET.get("month"), timezone.localdate())
        error = ""
    except sendcalendar.MonthError as exc:
        first, error = timezone.localdate().replace(day=1), str(exc)
    month = sendcalendar.month_view(first)
    return render(
        request,
        "campaigns/calendar.html",
        {"month": month, "error": error, "weekdays": sendcalendar.weekday_names()},
        status=400 if error else 200,
    )


urlpatterns = [
    path("statistics/refresh/", statistics_refresh, name="statistics-refresh"),
    path("statistics/export/<slug:key>.csv", statistics_export, name="statistics-export"),
    path("calendar/", send_calendar, name="calendar"),
]
