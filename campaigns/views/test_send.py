"""Test send: the campaign's message to one to five typed targets, answered inline."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.urls import path

from accounts.roles import can_send
from campaigns import testsend
from campaigns.models import Campaign


def panel_context(campaign: Campaign, **extra) -> dict:
    return {
        "campaign": campaign,
        "test_answers": testsend.recent(campaign),
        "test_max": testsend.MAX_TARGETS,
        **extra,
    }


@can_send
def campaign_test_send(request, pk: int):
    """GET: the panel on its own page; POST: send, then the panel with the answer (the
    fragment for htmx, the page otherwise). Nothing is counted in the campaign."""
    campaign = get_object_or_404(Campaign.objects.select_related("credential", "template"), pk=pk)
    extra = {}
    if request.method == "POST":
        text = request.POST.get("test_targets", "")
        extra["test_targets"] = text
        try:
            extra["test_answer"] = testsend.send(campaign, text, request=request)
        except testsend.TestSendError as exc:
            extra["test_error"] = str(exc)
    context = panel_context(campaign, **extra)
    name = "_test_send.html" if request.htmx else "test_send.html"
    template = f"campaigns/campaigns/{name}"
    # htmx swaps only 2xx answers: the fragment carries the error itself
    status = 400 if "test_error" in extra and not request.htmx else 200
    return render(request, template, context, status=status)


urlpatterns = [
    path("<int:pk>/test-send/", campaign_test_send, name="campaign-test-send"),
]
