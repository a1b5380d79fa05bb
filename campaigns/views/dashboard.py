"""The dashboard: what is sending now, today's numbers, and which credentials are
sandboxes (so nobody mistakes a rehearsal for a real send)."""

from __future__ import annotations

from datetime import datetime, time

from django.db.models import Sum
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from campaigns.models import Campaign, Credential, MessageTemplate, Run, RunTally, TargetList
from campaigns.roles import can_read

ACTIVE = [Campaign.Status.QUEUED, Campaign.Status.SENDING, Campaign.Status.PAUSED]


@can_read
def home(request):
    today = datetime.combine(timezone.localdate(), time.min, tzinfo=timezone.get_current_timezone())
    running = list(
        Campaign.objects.filter(status__in=ACTIVE).select_related("credential").order_by("-pk")[:20]
    )
    latest = {}
    for run in Run.objects.filter(campaign__in=running).order_by("campaign_id", "number"):
        latest[run.campaign_id] = run
    # folded counts of today's runs plus the tallies of those still open
    totals = Run.objects.filter(created_at__gte=today).aggregate(
        sent=Sum("sent"), failed=Sum("failed")
    )
    open_totals = RunTally.objects.filter(run__created_at__gte=today).aggregate(
        sent=Sum("sent"), failed=Sum("failed")
    )
    return render(
        request,
        "campaigns/home.html",
        {
            "running": [
                (campaign, run, run.counts() if run else None)
                for campaign in running
                for run in [latest.get(campaign.pk)]
            ],
            "sent_today": (totals["sent"] or 0) + (open_totals["sent"] or 0),
            "failed_today": (totals["failed"] or 0) + (open_totals["failed"] or 0),
            "credentials": Credential.objects.all(),
            "templates": MessageTemplate.objects.all()[:10],
            "target_lists": TargetList.objects.all()[:10],
            "recent": Campaign.objects.select_related("credential").order_by("-pk")[:10],
        },
    )


urlpatterns = [
    path("", home, name="home"),
]
