"""Two-person approval: submit a draft (freezing exactly what will go out), approve or
reject it as someone else, void it on any edit, and let launch send only the snapshot.

The snapshot's sending part (`snapshot["send"]`) holds the PushSpec, the template's
texts, the target list's size and a SHA-256 over its sorted target IDs, every send time
and the first call's parameters; its fingerprint is recomputed from the live campaign at
approval and at launch, so an edit of the campaign, its template or its list made after
the submission is noticed and voids the approval. `snapshot["display"]` holds
language- and time-dependent texts that are shown only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date, datetime, time

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.roles import APPROVER, has_role
from campaigns import audit, planning, scheduling
from campaigns.models import Campaign, CampaignApproval, Target, TargetList
from campaigns.mpaas.strategy import PushSpec
from campaigns.mpaas.vocabulary import StrategyType

CHECKSUM_CHUNK = 5000
Status = CampaignApproval.Status


class ApprovalError(Exception):
    """The approval step does not apply (wrong person, wrong state, stale snapshot)."""


def required(campaign: Campaign) -> bool:
    """Whether this campaign may be launched only after a second person's release."""
    return campaign.credential.needs_approval(campaign.target_list.target_count)


def target_checksum(target_list: TargetList) -> str:
    """SHA-256 over the list's target IDs in sorted order, one per line, read from the
    database in chunks (a server-side cursor where there is one): memory stays flat
    however long the list. The (list, target_id) unique index serves the order."""
    digest = hashlib.sha256()
    rows = (
        Target.objects.filter(target_list=target_list)
        .order_by("target_id")
        .values_list("target_id", flat=True)
    )
    for target_id in rows.iterator(chunk_size=CHECKSUM_CHUNK):
        digest.update(target_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def spec_to_json(spec: PushSpec) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(spec), default=_iso, sort_keys=True))


def spec_from_json(data: dict) -> PushSpec:
    """The PushSpec a snapshot froze (dates, times and tuples restored)."""
    values = dict(data)
    for name in ("fixed_time", "dismissal_date"):
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    for name in ("loop_start_date", "loop_end_date"):
        if values.get(name):
            values[name] = date.fromisoformat(values[name])
    if values.get("loop_time"):
        values["loop_time"] = time.fromisoformat(values["loop_time"])
    values["template_placeholders"] = tuple(values.get("template_placeholders") or ())
    values["loop_circle_values"] = tuple(values.get("loop_circle_values") or ())
    return PushSpec(**values)


def _iso(value):
    if isinstance(value, date | time | datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def sending_part(campaign: Campaign) -> dict:
    """What will go out, from the live campaign: deterministic, secret-free, language-free."""
    template, target_list, credential = campaign.template, campaign.target_list, campaign.credential
    spec = campaign.push_spec()
    times = (
        scheduling.occurrence_times(spec) if spec.strategy_type != StrategyType.IMMEDIATE else []
    )
    values = dict(campaign.template_values or {})
    return {
        "campaign_id": campaign.pk,
        "credential": {
            "id": credential.pk,
            "name": credential.name,
            "app_id": credential.app_id,
            "workspace_id": credential.workspace_id,
            "endpoint": credential.endpoint,
        },
        "template": {
            "id": template.pk,
            "name": template.name,
            "title": template.title,
            "body": template.body,
            "uri": template.uri,
        },
        "values": values,
        "rendered": template.preview(values),
        "targets": {
            "list_id": target_list.pk,
            "list_name": target_list.name,
            "delivery_type": target_list.delivery_type,
            "count": target_list.target_count,
            "sha256": target_checksum(target_list),
        },
        "schedule_mode": campaign.schedule_mode,
        "send_times": [t.isoformat() for t in times],
        "spec": spec_to_json(spec),
        "first_call": planning.first_call(campaign),
    }


def fingerprint(send: dict) -> str:
    text = json.dumps(send, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _display(campaign: Campaign) -> dict:
    schedule = ""
    if campaign.strategy_type != StrategyType.IMMEDIATE:
        schedule = scheduling.describe(campaign)
    return {"strategy": campaign.get_strategy_type_display(), "schedule": schedule}


def open_approval(campaign: Campaign) -> CampaignApproval | None:
    """The campaign's pending or approved submission, if any."""
    return campaign.approvals.filter(status__in=CampaignApproval.OPEN).first()


def latest(campaign: Campaign) -> CampaignApproval | None:
    return campaign.approvals.select_related("submitted_by", "decided_by").first()


def submit(campaign: Campaign, user, *, request=None) -> CampaignApproval:
    """Freeze the draft as it is now and ask for a second person's release. An earlier
    open submission is voided (superseded)."""
    from campaigns.lifecycle import launch_errors

    if not campaign.can_edit():
        raise ApprovalError(_("Only a draft can be submitted for approval."))
    errors = launch_errors(campaign)
    if errors:
        raise ApprovalError(
            _("Fix what stops the launch before submitting: %(errors)s")
            % {"errors": " ".join(str(m) for ms in errors.values() for m in ms)}
        )
    send = sending_part(campaign)
    with transaction.atomic():
        void(campaign, reason="resubmitted", request=request)
        approval = CampaignApproval.objects.create(
            campaign=campaign,
            snapshot={"send": send, "display": _display(campaign)},
            fingerprint=fingerprint(send),
            submitted_by=user,
        )
        audit.record(
            "campaign.submit",
            actor=user,
            obj=campaign,
            request=request,
            details=_audit_details(approval),
        )
    return approval


def _audit_details(approval: CampaignApproval, **extra) -> dict:
    targets = approval.snapshot.get("send", {}).get("targets", {})
    return {
        "approval": approval.pk,
        "fingerprint": approval.fingerprint,
        "targets": targets.get("count"),
        "targets_sha256": targets.get("sha256"),
        **extra,
    }


def is_current(approval: CampaignApproval, campaign: Campaign | None = None) -> bool:
    """Whether the live campaign still matches the snapshot exactly."""
    campaign = campaign or Campaign.objects.select_related(
        "credential", "template", "target_list"
    ).get(pk=approval.campaign_id)
    return fingerprint(sending_part(campaign)) == approval.fingerprint


def refresh(campaign: Campaign, *, request=None) -> CampaignApproval | None:
    """Void the open submission if the campaign, its template or its list changed since
    (audited); returns the open submission still in force, if any."""
    approval = open_approval(campaign)
    if approval is not None and campaign.can_edit() and not is_current(approval, campaign):
        void(campaign, reason="changed", request=request)
        return None
    return approval


def void(campaign: Campaign, *, reason: str, actor=None, request=None) -> int:
    """Void every open submission of `campaign` (audited). Returns how many."""
    voided = 0
    for approval in campaign.approvals.filter(status__in=CampaignApproval.OPEN):
        moved = CampaignApproval.objects.filter(
            pk=approval.pk, status__in=CampaignApproval.OPEN
        ).update(status=Status.VOIDED, voided_at=timezone.now(), void_reason=reason[:200])
        if moved:
            voided += 1
            audit.record(
                "campaign.approval_voided",
                actor=actor,
                obj=campaign,
                request=request,
                details=_audit_details(approval, reason=reason, was=approval.status),
            )
    return voided


def void_for(*, template=None, target_list=None, request=None) -> int:
    """Void the open submissions of draft campaigns using this template or list."""
    campaigns = Campaign.objects.filter(
        status=Campaign.Status.DRAFT, approvals__status__in=CampaignApproval.OPEN
    )
    if template is not None:
        campaigns = campaigns.filter(template=template)
        reason = "template_edited"
    else:
        campaigns = campaigns.filter(target_list=target_list)
        reason = "changed"
    return sum(void(c, reason=reason, request=request) for c in campaigns.distinct())


def _decide(approval: CampaignApproval, user, *, approve: bool, comment: str, request=None):
    if not has_role(user, APPROVER):
        raise ApprovalError(_("Only an Approver or an Admin may decide on a campaign."))
    if approval.submitted_by_id == user.pk:
        raise ApprovalError(_("Someone other than the submitter must decide."))
    if approval.status != Status.PENDING:
        raise ApprovalError(_("This submission is no longer awaiting approval."))
    if not approve and not comment.strip():
        raise ApprovalError(_("Say why the campaign is rejected."))
    campaign = Campaign.objects.select_related("credential", "template", "target_list").get(
        pk=approval.campaign_id
    )
    if approve and not is_current(approval, campaign):
        void(campaign, reason="changed", request=request)
        raise ApprovalError(
            _("The campaign changed after it was submitted; the submission is void.")
        )
    status = Status.APPROVED if approve else Status.REJECTED
    with transaction.atomic():
        moved = CampaignApproval.objects.filter(pk=approval.pk, status=Status.PENDING).update(
            status=status, decided_by=user, decided_at=timezone.now(), comment=comment.strip()
        )
        if not moved:
            raise ApprovalError(_("This submission is no longer awaiting approval."))
        audit.record(
            "campaign.approve" if approve else "campaign.reject",
            actor=user,
            obj=campaign,
            request=request,
            details=_audit_details(approval, comment=comment.strip()),
        )
    approval.refresh_from_db()
    return approval


def approve(approval: CampaignApproval, user, *, comment: str = "", request=None):
    """Release the submission (someone other than the submitter, still unchanged)."""
    return _decide(approval, user, approve=True, comment=comment, request=request)


def reject(approval: CampaignApproval, user, *, comment: str, request=None):
    """Send the submission back with a reason (the comment is required)."""
    return _decide(approval, user, approve=False, comment=comment, request=request)


class Stale(Exception):
    """Raised inside launch's transaction: the approval no longer matches."""


def claim_for_launch(campaign: Campaign) -> CampaignApproval | None:
    """Inside launch's transaction: None when no approval is needed; else the approved
    submission, locked and marked launched. Raises ApprovalError when there is none and
    Stale when the campaign changed since (the caller voids it after rolling back)."""
    if not required(campaign):
        return None
    approval = (
        CampaignApproval.objects.select_for_update()
        .filter(campaign=campaign, status=Status.APPROVED)
        .first()
    )
    if approval is None:
        raise ApprovalError(
            _("This campaign needs a second person's approval before it can be launched.")
        )
    if not is_current(approval, campaign):
        raise Stale
    CampaignApproval.objects.filter(pk=approval.pk).update(
        status=Status.LAUNCHED, launched_at=timezone.now()
    )
    return approval


def launched_spec(campaign: Campaign) -> PushSpec | None:
    """The PushSpec frozen by the approval this campaign was launched under, if any:
    what every run of it sends, whatever is edited later."""
    snapshot = (
        campaign.approvals.filter(status=Status.LAUNCHED).values_list("snapshot", flat=True).first()
    )
    return spec_from_json(snapshot["send"]["spec"]) if snapshot else None
