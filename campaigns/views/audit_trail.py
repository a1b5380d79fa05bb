"""The audit trail page (auditors and admins): filter, page newest-first by id, and
check the hash chain."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import AUDITOR, role_required
from campaigns import audit, paging
from campaigns.forms.audit import AuditFilterForm
from campaigns.models import AuditEvent

PAGE_SIZE = 50
BREAK_REASONS = {
    audit.BAD_LINK: gettext_lazy(
        "its link to the previous event does not match (an event before it was removed or inserted)"
    ),
    audit.BAD_MAC: gettext_lazy(
        "its contents do not match its keyed hash (it was altered or re-hashed without the key)"
    ),
    audit.UNKNOWN_KEY: gettext_lazy(
        "it is signed with an audit key that is not configured (forged, or an old key was dropped)"
    ),
    audit.NOT_WITNESSED: gettext_lazy(
        "it does not match the checkpoint in the witness file (the chain was rewritten)"
    ),
    audit.MISSING: gettext_lazy(
        "the witness file recorded this event but it is no longer in the database "
        "(the newest events were cut or the table was emptied)"
    ),
    audit.BAD_WITNESS: gettext_lazy(
        "the witness file holds a checkpoint whose signature does not verify (it was edited)"
    ),
}


def _query(form: AuditFilterForm) -> str:
    """The filters as a query string, for the "Older" link."""
    pairs = [(name, form.data.get(name, "")) for name in form.FILTERS if form.data.get(name)]
    return urlencode(pairs)


@never_cache
@role_required(AUDITOR)
@require_GET
def audit_list(request):
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.order_by("-id")
    if form.is_bound and form.is_valid():
        events = form.filter(events)
    elif form.is_bound:
        events = events.none()
    before = paging.cursor(request.GET.get("before"))
    page = paging.keyset_page(events, key="id", descending=True, size=PAGE_SIZE, after=before)
    rows = [
        {
            "event": event,
            "details": json.dumps(event.details, ensure_ascii=False, sort_keys=True, indent=1),
        }
        for event in page.rows
    ]
    return render(
        request,
        "campaigns/audit/list.html",
        {
            "form": form,
            "rows": rows,
            "query": _query(form),
            "paged": before is not None,
            "next_before": page.next_cursor,
            "time_zone": timezone.get_current_timezone_name(),
        },
    )


@never_cache
@role_required(AUDITOR)
@require_POST
def audit_verify(request):
    checked, broken = audit.verify_chain()
    audit.record(
        "audit.verify",
        request=request,
        details={
            "checked": checked,
            "broken_at": broken.event_id if broken else None,
        },
    )
    reason = BREAK_REASONS.get(broken.reason, broken.reason) if broken else ""
    return render(
        request,
        "campaigns/audit/verify.html",
        {
            "checked": checked,
            "broken": broken,
            "reason": reason,
            "witnessed": audit.latest_checkpoint(),
        },
    )


urlpatterns = [
    path("", audit_list, name="audit-list"),
    path("verify/", audit_verify, name="audit-verify"),
]
