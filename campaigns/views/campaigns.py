"""Campaign pages: list, builder, review and launch, the live campaign page, actions."""

from __future__ import annotations

import zoneinfo

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import can_read, can_send
from campaigns import (
    approvals,
    audit,
    campaign_history,
    charts,
    doubts,
    lifecycle,
    paging,
    planning,
    reviewing,
    scheduling,
)
from campaigns.forms import drafts
from campaigns.forms.campaigns import CampaignForm, CampaignSearchForm
from campaigns.models import Batch, Campaign, Credential, MessageTemplate, Run
from campaigns.mpaas import wire
from campaigns.mpaas.client import PushError
from campaigns.mpaas.strategy import StrategyError
from campaigns.mpaas.vocabulary import StrategyType, humanize_seconds
from campaigns.views import test_send
from campaigns.views.approvals import approval_context

PAGE_SIZE = 50
PHONE_LOOKS = (("ios", "iOS"), ("android", "Android"))


def _campaign(pk: int) -> Campaign:
    return get_object_or_404(
        Campaign.objects.select_related("credential", "template", "target_list"), pk=pk
    )


@can_read
@require_GET
def campaign_list(request):
    form = CampaignSearchForm(request.GET or None)
    campaigns = Campaign.objects.select_related("credential", "target_list")
    if form.is_valid():
        if form.cleaned_data["q"]:
            campaigns = campaigns.filter(task_name__icontains=form.cleaned_data["q"])
        if form.cleaned_data["status"]:
            campaigns = campaigns.filter(status=form.cleaned_data["status"])
    before = paging.cursor(request.GET.get("before"))
    campaigns = campaign_history.with_list_columns(campaigns)
    page = paging.keyset_page(campaigns, key="pk", descending=True, size=PAGE_SIZE, after=before)
    return render(
        request,
        "campaigns/campaigns/list.html",
        {
            "form": form,
            "campaigns": campaign_history.add_next_send(page.rows),
            "next_before": page.next_cursor,
        },
    )


def _builder(request, campaign: Campaign | None):
    instance = campaign or Campaign(created_by=request.user)
    if request.method == "POST":
        form = CampaignForm(request.POST, instance=instance)
        if form.is_valid():
            created = instance.pk is None
            campaign = form.save()
            if not created:
                approvals.void(campaign, reason="campaign_edited", request=request)
            audit.record(
                "campaign.create" if created else "campaign.edit",
                obj=campaign,
                request=request,
                details={"fields": sorted(form.changed_data)},
            )
            if not form.rule_errors:
                messages.success(request, _("Draft saved. Review it before launching."))
                return redirect("campaign-review", pk=campaign.pk)
            # One draft from its first save: fixing the marked fields edits this draft.
            messages.warning(
                request,
                _("Draft saved, but it cannot be launched until the marked fields are fixed."),
            )
            return redirect("campaign-edit", pk=campaign.pk)
    elif instance.pk:
        form = drafts.reopened(instance)
    else:
        form = CampaignForm(instance=instance)
    return render(
        request,
        "campaigns/campaigns/builder.html",
        {
            "form": form,
            "campaign": campaign,
            **(test_send.panel_context(campaign) if campaign else {}),
            "preview": _preview(form),
            "category_fields": form.fields_named("tcc_"),
            "level_fields": form.fields_named("level_"),
        },
    )


@can_send
def campaign_create(request):
    return _builder(request, None)


@can_send
def campaign_edit(request, pk: int):
    campaign = _campaign(pk)
    if not campaign.can_edit():
        messages.error(request, _("Only a draft can be edited."))
        return redirect("campaign-detail", pk=pk)
    return _builder(request, campaign)


def _preview(form: CampaignForm) -> dict:
    """The builder's live sidebar: rendered message, StrategyContent, expiry reading."""
    template = form.selected_template()
    credential = form.selected_credential()
    values = {}
    if form.is_bound:
        values = {f.name[len("value__") :]: form.data.get(f.name, "") for f in form.value_fields()}
    elif form.instance.pk:
        values = dict(form.instance.template_values or {})
    if template:
        # a value not given shows as a visible marker, not as nothing
        for name in template.placeholders():
            if not str(values.get(name) or "").strip():
                values[name] = _("‹%(name)s: value missing›") % {"name": name}
    data = {
        "template": template,
        "credential": credential,
        "rendered": template.preview(values) if template else None,
        "phone_looks": PHONE_LOOKS,
    }
    seconds = form.data.get("expired_seconds") if form.is_bound else form.instance.expired_seconds
    try:
        data["expiry"] = humanize_seconds(int(seconds))
    except (TypeError, ValueError):
        data["expiry"] = ""
    complete = (
        form.instance.template_id and form.instance.credential_id and form.instance.target_list_id
    )
    if complete and (not form.is_bound or hasattr(form, "cleaned_data")):
        try:
            data["strategy_json"] = wire.strategy_content_json(form.instance.push_spec())
        except StrategyError as exc:
            data["strategy_errors"] = form.labelled(exc.errors)
            data["strategy_error"] = " ".join(data["strategy_errors"])
        if form.instance.strategy_type != StrategyType.IMMEDIATE:
            data["schedule"] = scheduling.choose(form.instance)
    return data


@can_send
@require_POST
def campaign_builder_preview(request):
    """htmx: re-render the sidebar and the template-values section from the form."""
    form = CampaignForm(request.POST, instance=Campaign())
    form.is_valid()
    return render(
        request,
        "campaigns/campaigns/_builder_preview.html",
        {"form": form, "preview": _preview(form)},
    )


@can_read
@require_GET
def campaign_review(request, pk: int):
    campaign = _campaign(pk)
    errors = lifecycle.launch_errors(campaign) if campaign.can_launch() else {}
    review = reviewing.plan(campaign)
    params = None if errors else planning.first_call(campaign)
    return render(
        request,
        "campaigns/campaigns/review.html",
        {
            "campaign": campaign,
            "errors": errors,
            "review": review,
            "calls": review.calls,
            "targets": review.targets,
            "params": params,
            "send_time": review.send_time,
            "expires_first": review.send_seconds > campaign.expired_seconds,
            "beyond_version": wire.beyond_api_version(campaign.credential.api_version, params)
            if params
            else [],
            **approval_context(campaign, request),
            **test_send.panel_context(campaign),
            "message": campaign.template.preview(campaign.template_values or {}),
            "phone_looks": PHONE_LOOKS,
        },
    )


@can_send
@require_POST
def campaign_launch(request, pk: int):
    campaign = _campaign(pk)
    if request.POST.get("confirm") != "yes":
        messages.error(request, _("Tick the confirmation box to launch."))
        return redirect("campaign-review", pk=pk)
    try:
        lifecycle.launch(campaign, request.user, request=request)
    except lifecycle.LaunchError as exc:
        for message in [m for ms in exc.errors.values() for m in ms]:
            messages.error(request, message)
        return redirect("campaign-review", pk=pk)
    except lifecycle.StateError as exc:
        messages.info(request, str(exc))
        return redirect("campaign-detail", pk=pk)
    campaign.refresh_from_db()
    messages.success(request, reviewing.launched_message(campaign))
    return redirect("campaign-detail", pk=pk)


@can_read
@require_GET
def campaign_detail(request, pk: int):
    campaign = _campaign(pk)
    run = campaign.latest_run()
    batches = Batch.objects.filter(run=run).order_by("seq") if run else Batch.objects.none()
    outcome = request.GET.get("outcome", "")
    if outcome in Batch.Status.values:
        batches = batches.filter(status=outcome)
    after = paging.cursor(request.GET.get("after"))
    page = paging.keyset_page(batches, key="seq", size=PAGE_SIZE, after=after)
    rows = campaign_history.run_rows(campaign)
    return render(
        request,
        "campaigns/campaigns/detail.html",
        {
            "campaign": campaign,
            "run": run,
            "counts": rows[0].counts if rows else None,
            "run_rows": rows,
            "totals": campaign_history.totals(rows),
            "events": campaign_history.events(campaign),
            "outcomes": run.outcomes() if run else [],
            "doubts": doubts.for_campaign(campaign),
            "batches": page.rows,
            "next_after": page.next_cursor,
            "outcome": outcome,
            "batch_statuses": Batch.Status.choices,
            "active": campaign.is_sending_now(),
            "polling": _polling(campaign),
            "schedule_text": scheduling.describe(campaign)
            if campaign.strategy_type != StrategyType.IMMEDIATE
            else "",
            "tasks": campaign.tasks.order_by("pk")[:100],
            "campaign_charts": charts.campaign_charts(campaign),
            "upcoming": scheduling.upcoming(campaign),
            # a send time cancelled before it came is not a past occurrence
            "past_occurrences": campaign.occurrences.exclude(status="pending")
            .exclude(status="cancelled", due_at__gt=timezone.now())
            .order_by("-due_at")[:20],
            "cancelled_future": campaign.occurrences.filter(
                status="cancelled", due_at__gt=timezone.now()
            ).count(),
            **approval_context(campaign, request),
        },
    )


def _polling(campaign: Campaign) -> bool:
    """Progress refreshes while sending and while paused (calls in flight finish)."""
    return campaign.is_sending_now() or campaign.status == Campaign.Status.PAUSED


@can_read
@require_GET
def campaign_progress(request, pk: int):
    """htmx fragment polled every second while the campaign is active: the campaign, its
    latest run and the run's live counts (one statement: `Run.objects.progress_of`)."""
    progress = Run.objects.progress_of(pk)
    if progress is None:
        raise Http404
    campaign, run = progress
    active = campaign.is_sending_now()
    response = render(
        request,
        "campaigns/campaigns/_progress.html",
        {
            "campaign": campaign,
            "run": run,
            "counts": run.counts if run else None,
            "active": active,
            "polling": _polling(campaign),
        },
    )
    shown = request.GET.get("shown", "")
    ended = not active and request.GET.get("was_active") and not _polling(campaign)
    if request.htmx and (ended or (shown and shown != campaign.status)):
        # the outcome table and the actions change with the status: the page re-fetches
        # them in place (no reload, so focus and the announcement are kept)
        response["HX-Trigger"] = "campaign-finished"
    return response


ACTIONS = {
    "pause": (lifecycle.pause, gettext_lazy("Paused. Calls already in flight finish.")),
    "resume": (lifecycle.resume, gettext_lazy("Resumed.")),
    "cancel": (
        lifecycle.cancel,
        gettext_lazy("Cancelled. Targets not yet sent are marked cancelled."),
    ),
}


CONFIRMED = ("cancel", "retry")  # these ask first (views/confirm.py)


@can_send
@require_POST
def campaign_action(request, pk: int, action: str):
    campaign = _campaign(pk)
    if action in CONFIRMED and request.POST.get("confirm") != "yes":
        return redirect("campaign-confirm", pk=pk, action=action)
    if action == "retry":
        try:
            run = lifecycle.retry_failed(campaign, request.user, request=request)
        except lifecycle.StateError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("Run %(number)d started with the %(count)d failed targets.")
                % {"number": run.number, "count": run.source_run.failed},
            )
        return redirect("campaign-detail", pk=pk)
    if action not in ACTIONS:
        raise Http404
    func, done = ACTIONS[action]
    try:
        result = func(campaign, request.user, request=request)
    except lifecycle.StateError as exc:
        messages.error(request, str(exc))
    except PushError as exc:
        messages.error(request, _("mPaaS did not answer the cancel: %(error)s") % {"error": exc})
    else:
        messages.success(request, done)
        if result:
            _report_cancel(request, result)
    return redirect("campaign-detail", pk=pk)


def _report_cancel(request, result: dict[str, list[str]]) -> None:
    """Say which scheduled tasks were cancelled and which had already run; never hide a
    failure to cancel."""
    if result["cancelled"]:
        messages.info(
            request, _("Cancelled on mPaaS: %(ids)s") % {"ids": ", ".join(result["cancelled"])}
        )
    if result["already_executed"]:
        messages.warning(
            request,
            _("Already executed, could not be cancelled: %(ids)s")
            % {"ids": ", ".join(result["already_executed"])},
        )
    if result["not_found"]:
        messages.warning(
            request, _("Not found on mPaaS: %(ids)s") % {"ids": ", ".join(result["not_found"])}
        )
    if result.get("needs_reconcile"):
        messages.warning(
            request,
            _(
                "mPaaS took the cancel but its answer could not be read for: %(ids)s — "
                "reconcile will tell whether they were cancelled."
            )
            % {"ids": ", ".join(result["needs_reconcile"])},
        )
    if result["failed"]:
        messages.error(
            request,
            _("Cancelling failed for: %(ids)s — see the task list.")
            % {"ids": ", ".join(result["failed"])},
        )


@can_send
@require_POST
def campaign_duplicate(request, pk: int):
    source = _campaign(pk)
    copy = Campaign.objects.get(pk=source.pk)
    copy.pk = None
    copy.task_name = _("Copy of %(name)s") % {"name": source.task_name}
    copy.status, copy.status_reason = Campaign.Status.DRAFT, ""
    copy.created_by, copy.launched_by, copy.cancelled_by = request.user, None, None
    copy.launched_at = copy.finished_at = None
    copy.task_name = copy.task_name[:128]
    copy.save()
    audit.record("campaign.create", obj=copy, request=request, details={"copied_from": source.pk})
    messages.success(request, _("A new draft was created from this campaign."))
    return redirect("campaign-edit", pk=copy.pk)


@can_send
@require_GET
def template_values_fragment(request):
    """htmx: the template-values inputs for the chosen template (builder)."""
    template_id = request.GET.get("template", "")
    template = (
        MessageTemplate.objects.filter(pk=template_id).first() if template_id.isdigit() else None
    )
    form = CampaignForm(instance=Campaign(template=template) if template else Campaign())
    return render(request, "campaigns/campaigns/_values.html", {"form": form})


@can_read
@require_GET
def credential_info(request):
    """htmx: the chosen credential's timezone and sandbox flag, shown in the builder."""
    credential_id = request.GET.get("credential", "")
    credential = (
        Credential.objects.filter(pk=credential_id).first() if credential_id.isdigit() else None
    )
    if credential is None:
        return HttpResponse("")
    now = timezone.now().astimezone(zoneinfo.ZoneInfo(credential.timezone))
    return render(
        request,
        "campaigns/campaigns/_credential_info.html",
        {
            "credential": credential,
            "now": now,
            "in_use": scheduling.tasks_in_use(credential.app_id),
        },
    )


urlpatterns = [
    path("", campaign_list, name="campaign-list"),
    path("new/", campaign_create, name="campaign-create"),
    path("preview/", campaign_builder_preview, name="campaign-builder-preview"),
    path("template-values/", template_values_fragment, name="campaign-template-values"),
    path("credential-info/", credential_info, name="campaign-credential-info"),
    path("<int:pk>/", campaign_detail, name="campaign-detail"),
    path("<int:pk>/edit/", campaign_edit, name="campaign-edit"),
    path("<int:pk>/review/", campaign_review, name="campaign-review"),
    path("<int:pk>/launch/", campaign_launch, name="campaign-launch"),
    path("<int:pk>/progress/", campaign_progress, name="campaign-progress"),
    path("<int:pk>/duplicate/", campaign_duplicate, name="campaign-duplicate"),
    path("<int:pk>/<slug:action>/", campaign_action, name="campaign-action"),
]
