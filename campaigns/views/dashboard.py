"""The dashboard: what is sending now, today's numbers, and which credentials are
sandboxes (so nobody mistakes a rehearsal for a real send)."""

from __future__ import annotations

from datetime import datetime, time

from django.db.models import Sum
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from accounts.roles import can_read
from campaigns import charts
from campaigns.models import Campaign, Credential, MessageTemplate, Run, TargetList


@can_read
def home(request):
    today = datetime.combine(timezone.localdate(), time.min, tzinfo=timezone.get_current_timezone())
    campaigns = list(
        Campaign.objects.filter(status__in=Campaign.IN_PROGRESS)
        .select_related("credential")
        .order_by("-pk")[:20]
    )
    latest = {}
    for run in Run.objects.filter(campaign__in=campaigns).order_by("campaign_id", "number"):
        latest[run.campaign_id] = run
    running = []
    for campaign in campaigns:
        run = latest.get(campaign.pk)
        running.append((campaign, run, run.counts() if run else None))
    totals = (
        Run.objects.filter(created_at__gte=today)
        .with_live_counts()
        .aggregate(sent=Sum("live_sent"), failed=Sum("live_failed"))
    )
    return render(
        request,
        "campaigns/home.html",
        {
            "running": running,
            "sent_today": totals["sent"] or 0,
            "failed_today": totals["failed"] or 0,
            "credentials": Credential.objects.all(),
            "templates": MessageTemplate.objects.all()[:10],
            "target_lists": TargetList.objects.all()[:10],
            "dashboard_charts": charts.dashboard_charts(),
            "recent": Campaign.objects.select_related("credential").order_by("-pk")[:10],
        },
    )


urlpatterns = [
    path("", home, name="home"),
]
