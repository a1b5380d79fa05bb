"""A saved draft reopened in the builder, bound and checked so its problems show at once."""

from __future__ import annotations

from django import forms
from django.utils.datastructures import MultiValueDict

from campaigns.forms.campaigns import CampaignForm
from campaigns.models import Campaign


def reopened(campaign: Campaign) -> CampaignForm:
    """The builder form for a saved draft, bound to the draft's own values and checked,
    so a reopened draft shows its field and rule errors at once (a fixed time now in
    the past, a template value still missing, ...)."""
    unbound = CampaignForm(instance=campaign)
    data = MultiValueDict()
    for name, field in unbound.fields.items():
        value = unbound[name].value()
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[name] = "on"
            continue
        shown = field.widget.format_value(value)
        if shown is None:
            continue
        data.setlist(name, [str(v) for v in shown] if isinstance(shown, list) else [str(shown)])
    form = CampaignForm(data, instance=campaign)
    if form.is_valid():
        form.show_rule_errors()
    return form
