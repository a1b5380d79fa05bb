"""Per-person values and recall pages of a campaign: the placeholder → column mapping of a
draft, the recall confirmation (whole campaign or one delivery), recall progress, cancel."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import can_read, can_send
from campaigns import perperson, recall
from campaigns.models import Campaign, Delivery, Run
from campaigns.mpaas.client import PushError

COLUMN_PREFIX = "column_"


def _campaign(pk: int) -> Campaign:
    return get_object_or_404(
        Campaign.objects.select_related("credential", "template", "target_list"), pk=pk
    )


@can_send
@require_http_methods(["GET", "POST"])
def campaign_values(request, pk: int):
    """Which placeholder takes each target's own value (a column of the list)."""
    campaign = _campaign(pk)
    placeholders = campaign.template.placeholders()
    columns = list(campaign.target_list.value_columns or [])
    errors: dict[str, list[str]] = {}
    chosen = dict(campaign.value_columns or {})
    if request.method == "POST":
        chosen = {p: request.POST.get(f"{COLUMN_PREFIX}{p}", "").strip() for p in placeholders}
        try:
            perperson.set_columns(campaign, chosen, request.user, request=request)
        except perperson.MappingError as exc:
            errors = exc.errors
            for message in errors.get("", []):
                messages.error(request, message)
        else:
            messages.success(request, _("Per-person values saved."))
            return redirect("campaign-detail", pk=pk)
    rows = [
        {
            "placeholder": p,
            "name": f"{COLUMN_PREFIX}{p}",
            "chosen": chosen.get(p, ""),
            "fixed": (campaign.template_values or {}).get(p, ""),
            "errors": errors.get(p, []),
        }
        for p in placeholders
    ]
    return render(
        request,
        "campaigns/campaigns/values.html",
        {"campaign": campaign, "rows": rows, "columns": columns},
        status=400 if errors else 200,
    )


def _delivery(campaign: Campaign, request) -> Delivery | None:
    raw = request.POST.get("delivery") or request.GET.get("delivery") or ""
    if not raw:
        return None
    if not raw.isdigit():
        return get_object_or_404(Delivery, pk=0)
    return get_object_or_404(Delivery, pk=int(raw), run__campaign=campaign)


@can_read
@require_GET
def recall_page(request, pk: int):
    """What a recall would do now (a confirmation form), and the recalls so far."""
    campaign = _campaign(pk)
    delivery = _delivery(campaign, request)
    plan = recall.plan_for(campaign, delivery)
    runs = recall.recall_runs(campaign)
    open_run = plan.open_run
    return render(
        request,
        "campaigns/campaigns/recall.html",
        {
            "campaign": campaign,
            "delivery": delivery,
            "plan": plan,
            "runs": [(run, run.counts()) for run in runs],
            "active": open_run is not None,
            "sending": campaign.status in Campaign.IN_PROGRESS,
        },
    )


@can_send
@require_POST
def recall_start(request, pk: int):
    campaign = _campaign(pk)
    delivery = _delivery(campaign, request)
    back = redirect("campaign-recall", pk=pk)
    if delivery is not None:
        back["Location"] += f"?delivery={delivery.pk}"
    if request.POST.get("confirm") != "yes":
        messages.error(request, _("Tick the confirmation box to recall."))
        return back
    try:
        run, cancelled = recall.start(campaign, request.user, delivery=delivery, request=request)
    except recall.RecallError as exc:
        messages.error(request, str(exc))
        return back
    except PushError as exc:
        messages.error(request, _("mPaaS did not answer the cancel: %(error)s") % {"error": exc})
        return back
    if cancelled is not None:
        messages.info(
            request,
            _("Scheduled tasks not yet executed: %(done)d cancelled, %(failed)d not.")
            % {
                "done": len(cancelled.get("cancelled", [])),
                "failed": sum(len(v) for k, v in cancelled.items() if k != "cancelled"),
            },
        )
    if run is not None:
        messages.success(request, _("Recall started: run %(n)d.") % {"n": run.number})
    return back


@can_send
@require_POST
def recall_cancel(request, pk: int, run: int):
    campaign = _campaign(pk)
    target = get_object_or_404(Run, pk=run, campaign=campaign, kind=Run.Kind.RECALL)
    try:
        count = recall.cancel(target, request.user, request=request)
    except recall.RecallError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, _("Recall cancelled: %(count)d messages not recalled.") % {"count": count}
        )
    return redirect("campaign-recall", pk=pk)


urlpatterns = [
    path("<int:pk>/values/", campaign_values, name="campaign-values"),
    path("<int:pk>/recall/", recall_page, name="campaign-recall"),
    path("<int:pk>/recall/start/", recall_start, name="campaign-recall-start"),
    path("<int:pk>/recall/<int:run>/cancel/", recall_cancel, name="campaign-recall-cancel"),
]
