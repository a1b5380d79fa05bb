"""The confirm step before a campaign is cancelled or its failed targets retried."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.http import require_GET

from accounts.roles import can_send
from campaigns import campaign_history
from campaigns.models import Campaign


@can_send
@require_GET
def campaign_confirm(request, pk: int, action: str):
    if action not in ("cancel", "retry"):
        raise Http404
    campaign = get_object_or_404(Campaign.objects.select_related("target_list"), pk=pk)
    rows = campaign_history.run_rows(campaign)
    return render(
        request,
        "campaigns/campaigns/confirm.html",
        {
            "campaign": campaign,
            "action": action,
            "latest": rows[0] if rows else None,
            "pending_occurrences": campaign.occurrences.filter(status="pending").count(),
            "open_tasks": campaign.tasks.filter(status="pending").count(),
        },
    )


urlpatterns = [
    path("<int:pk>/confirm/<slug:action>/", campaign_confirm, name="campaign-confirm"),
]
