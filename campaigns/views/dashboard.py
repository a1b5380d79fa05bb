"""The dashboard: what is sending now, today's numbers, and which credentials are
sandboxes (so nobody mistakes a rehearsal for a real send)."""

from __future__ import annotations

from datetime import datetime, time

from django.db.models import Sum
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from campaigns.models import Campaign, Credential, MessageTemplate, Run, TargetList
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
    totals = Run.objects.filter(created_at__gte=today).aggregate(
        sent=Sum("sent"), failed=Sum("failed")
    )
    return render(
        request,
        "campaigns/home.html",
        {
            "running": [(campaign, latest.get(campaign.pk)) for campaign in running],
            "sent_today": totals["sent"] or 0,
            "failed_today": totals["failed"] or 0,
            "credentials": Credential.objects.all(),
            "templates": MessageTemplate.objects.all()[:10],
            "target_lists": TargetList.objects.all()[:10],
            "recent": Campaign.objects.select_related("credential").order_by("-pk")[:10],
        },
    )


urlpatterns = [
    path("", home, name="home"),
]
