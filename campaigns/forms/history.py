"""The send-history filter form: exact-match fields only, validated into a
`history.HistoryQuery` (which reads the matching deliveries)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy

from campaigns.history import HistoryQuery
from campaigns.models import Campaign, Delivery

CAMPAIGN_CHOICES = 200  # the select lists the newest campaigns; any id is still accepted


def _text(label, max_length: int, **kwargs) -> forms.CharField:
    return forms.CharField(label=label, required=False, max_length=max_length, **kwargs)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class HistoryFilterForm(forms.Form):
    campaign = forms.TypedChoiceField(
        label=gettext_lazy("Campaign"), required=False, coerce=int, empty_value=None
    )
    task_name = _text(gettext_lazy("Task name (exact)"), 128)
    target_id = _text(gettext_lazy("Target ID"), 200)
    msg_key = _text(gettext_lazy("msgKey"), 64)
    request_id = _text(gettext_lazy("RequestId"), 64)
    result_code = _text(gettext_lazy("ResultCode"), 64)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("All"))] + list(Delivery.Status.choices),
    )
    launched_by = _text(gettext_lazy("Launched by (username)"), 150)
    date_field = forms.ChoiceField(
        label=gettext_lazy("Dates apply to"),
        required=False,
        choices=[
            ("finished", gettext_lazy("Time finished")),
            ("created", gettext_lazy("Time planned")),
        ],
    )
    date_from = forms.DateField(label=gettext_lazy("From"), required=False, widget=DateInput())
    date_to = forms.DateField(
        label=gettext_lazy("To (inclusive)"), required=False, widget=DateInput()
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        recent = list(
            Campaign.objects.order_by("-pk").values_list("pk", "task_name")[:CAMPAIGN_CHOICES]
        )
        chosen = self.data.get("campaign", "") if self.is_bound else ""
        if chosen.isdigit() and int(chosen) not in {pk for pk, _name in recent}:
            # a link from an older campaign's page: offer it too, if it exists
            recent += list(Campaign.objects.filter(pk=int(chosen)).values_list("pk", "task_name"))
        self.fields["campaign"].choices = [("", gettext_lazy("All"))] + [
            (str(pk), f"#{pk} {name}") for pk, name in recent
        ]
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = (
                "form-select form-select-sm" if is_select else "form-control form-control-sm"
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in (
            "task_name",
            "target_id",
            "msg_key",
            "request_id",
            "result_code",
            "launched_by",
        ):
            data[name] = (data.get(name) or "").strip()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", gettext_lazy("The end date is before the start date."))
        return data

    def active_filters(self) -> dict[str, str]:
        """The filters in use, as strings: for links to further pages and the audit."""
        if not self.is_valid():
            return {}
        out = {}
        for name, value in self.cleaned_data.items():
            if value in (None, ""):
                continue
            if name == "date_field" and not (
                self.cleaned_data.get("date_from") or self.cleaned_data.get("date_to")
            ):
                continue
            out[name] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    def query(self) -> HistoryQuery:
        """The filters as a query: every delivery when unbound, none when invalid."""
        if not self.is_bound:
            return HistoryQuery()
        if not self.is_valid():
            return HistoryQuery(matches_nothing=True)
        data = self.cleaned_data
        return HistoryQuery(
            campaign=data.get("campaign"),
            task_name=data["task_name"],
            target_id=data["target_id"],
            msg_key=data["msg_key"],
            request_id=data["request_id"],
            result_code=data["result_code"],
            status=data.get("status") or "",
            launched_by=data["launched_by"],
            date_field=data.get("date_field") or "finished",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )
