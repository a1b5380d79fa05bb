"""Two-person approval: the frozen snapshot a second person releases or rejects."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class CampaignApproval(models.Model):
    """One submission of a draft for approval. `snapshot` is exactly what will go out
    (see campaigns/approvals.py); `fingerprint` is the SHA-256 of its sending part, so
    any later edit of the campaign, its template or its list is noticed at launch."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting approval")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        VOIDED = "voided", _("Voided by an edit")
        LAUNCHED = "launched", _("Launched")

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.PROTECT, related_name="approvals"
    )
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PENDING
    )
    snapshot = models.JSONField(_("snapshot"))
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(_("comment"), max_length=2000, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=200, blank=True)
    launched_at = models.DateTimeField(null=True, blank=True)

    # Why a submission was voided (stored as the key).
    VOID_REASONS = {
        "resubmitted": _("submitted again"),
        "campaign_edited": _("the campaign was edited"),
        "template_edited": _("its template was edited"),
        "changed": _("the campaign, its template or its list changed"),
    }

    # Approvals still in force: a pending one may be approved, an approved one launched.
    OPEN = frozenset({Status.PENDING, Status.APPROVED})

    class Meta:
        ordering = ["-pk"]
        verbose_name = _("campaign approval")
        verbose_name_plural = _("campaign approvals")
        indexes = [models.Index(fields=["status", "campaign"], name="approval_status_idx")]

    def __str__(self) -> str:
        return f"{self.campaign_id} approval {self.pk} ({self.status})"

    def void_reason_label(self) -> str:
        return str(self.VOID_REASONS.get(self.void_reason, self.void_reason))
