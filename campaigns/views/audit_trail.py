"""The audit trail page (auditors and admins): filter, page newest-first by id, and
check the hash chain."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import AUDITOR, role_required
from campaigns import audit
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
FILTERS = ("actor", "action", "object_type", "object_id", "date_from", "date_to")


def _object_types() -> list[tuple[str, str]]:
    """The object types events can name: this app's models and the user model."""
    models = list(apps.get_app_config("campaigns").get_models())
    models.append(apps.get_model("auth", "User"))
    types = {model._meta.model_name: str(model._meta.verbose_name) for model in models}
    return sorted(types.items(), key=lambda item: item[1])


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label=gettext_lazy("Actor (username)"), required=False, max_length=150)
    action = forms.ChoiceField(label=gettext_lazy("Action"), required=False)
    object_type = forms.ChoiceField(label=gettext_lazy("Object type"), required=False)
    object_id = forms.CharField(label=gettext_lazy("Object ID"), required=False, max_length=64)
    date_from = forms.DateField(
        label=gettext_lazy("From (date)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = forms.DateField(
        label=gettext_lazy("To (date, inclusive)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # action is indexed: the distinct list is read from the index.
        actions = AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
        self.fields["action"].choices = [("", _("Any action"))] + [(a, a) for a in actions]
        self.fields["object_type"].choices = [("", _("Any type"))] + _object_types()
        for field in self.fields.values():
            css = "form-select" if isinstance(field, forms.ChoiceField) else "form-control"
            field.widget.attrs.setdefault("class", css)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("The end date is before the start date."))
        return cleaned

    def filter(self, events):
        """Apply the valid filters. Dates are days in the console's time zone."""
        data = self.cleaned_data
        if data["actor"].strip():
            events = events.filter(actor_username=data["actor"].strip())
        if data["action"]:
            events = events.filter(action=data["action"])
        if data["object_type"]:
            events = events.filter(object_type=data["object_type"])
        if data["object_id"].strip():
            events = events.filter(object_id=data["object_id"].strip())
        zone = timezone.get_default_timezone()
        if data["date_from"]:
            events = events.filter(
                created_at__gte=datetime.combine(data["date_from"], time.min, tzinfo=zone)
            )
        if data["date_to"]:
            next_day = data["date_to"] + timedelta(days=1)
            events = events.filter(created_at__lt=datetime.combine(next_day, time.min, tzinfo=zone))
        return events


def _query(form: AuditFilterForm) -> str:
    """The filters as a query string, for the "Older" link."""
    pairs = [(name, form.data.get(name, "")) for name in FILTERS if form.data.get(name)]
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
    before = request.GET.get("before", "")
    if before.isdigit():
        events = events.filter(id__lt=int(before))
    page = list(events[: PAGE_SIZE + 1])
    rows = [
        {
            "event": event,
            "details": json.dumps(event.details, ensure_ascii=False, sort_keys=True, indent=1),
        }
        for event in page[:PAGE_SIZE]
    ]
    return render(
        request,
        "campaigns/audit/list.html",
        {
            "form": form,
            "rows": rows,
            "query": _query(form),
            "paged": before.isdigit(),
            "next_before": page[PAGE_SIZE - 1].id if len(page) > PAGE_SIZE else None,
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
