"""The audit trail's filter form: actor, action, object and a day window."""

from __future__ import annotations

from django import forms
from django.apps import apps
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import AuditEvent
from campaigns.paging import day_window


def _object_types() -> list[tuple[str, str]]:
    """The object types events can name: this app's models and the user model."""
    models = list(apps.get_app_config("campaigns").get_models())
    models.append(apps.get_model("auth", "User"))
    types = {model._meta.model_name: str(model._meta.verbose_name) for model in models}
    return sorted(types.items(), key=lambda item: item[1])


class AuditFilterForm(forms.Form):
    FILTERS = ("actor", "action", "object_type", "object_id", "date_from", "date_to")

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
        return day_window(events, "created_at", data["date_from"], data["date_to"])
