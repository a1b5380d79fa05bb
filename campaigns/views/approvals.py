"""Two-person approval pages: submit a draft, the approvers' queue, approve or reject."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import APPROVER, can_approve, can_send, has_role
from campaigns import approvals
from campaigns.forms.approvals import DecisionForm
from campaigns.models import Campaign, CampaignApproval


def approval_context(campaign: Campaign, request) -> dict:
    """What the review and campaign pages show of two-person approval (voids a stale
    submission first, audited)."""
    required = approvals.required(campaign)
    current = approvals.refresh(campaign, request=request) if campaign.can_edit() else None
    return {
        "approval_required": required,
        "approval": current,
        "approval_history": campaign.approvals.select_related("submitted_by", "decided_by")[:20],
        "approved": current is not None and current.status == CampaignApproval.Status.APPROVED,
    }


@can_send
@require_POST
def approval_submit(request, pk: int):
    campaign = get_object_or_404(
        Campaign.objects.select_related("credential", "template", "target_list"), pk=pk
    )
    try:
        approvals.submit(campaign, request.user, request=request)
    except approvals.ApprovalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Submitted. An approver other than you must release it."))
    return redirect("campaign-review", pk=pk)


@can_approve
@require_GET
def approval_list(request):
    pending = (
        CampaignApproval.objects.filter(status=CampaignApproval.Status.PENDING)
        .select_related("campaign", "submitted_by")
        .order_by("submitted_at")[:200]
    )
    return render(request, "campaigns/approvals/list.html", {"pending": pending})


@can_approve
def approval_detail(request, pk: int):
    approval = get_object_or_404(
        CampaignApproval.objects.select_related("campaign", "submitted_by", "decided_by"), pk=pk
    )
    own = approval.submitted_by_id == request.user.pk
    form = DecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        decide = (
            approvals.approve
            if form.cleaned_data["decision"] == DecisionForm.APPROVE
            else approvals.reject
        )
        try:
            decide(approval, request.user, comment=form.cleaned_data["comment"], request=request)
        except approvals.ApprovalError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Decision recorded."))
            return redirect("approval-list")
        approval.refresh_from_db()
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "campaigns/approvals/detail.html",
        {
            "approval": approval,
            "send": approval.snapshot["send"],
            "display": approval.snapshot.get("display", {}),
            "form": form,
            "own": own,
            "may_decide": has_role(request.user, APPROVER)
            and not own
            and approval.status == CampaignApproval.Status.PENDING,
        },
        status=status,
    )


urlpatterns = [
    path("", approval_list, name="approval-list"),
    path("<int:pk>/", approval_detail, name="approval-detail"),
    path("submit/<int:pk>/", approval_submit, name="approval-submit"),
]
