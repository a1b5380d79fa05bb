"""A saved draft reopened in the builder with its problems shown, and the error summary."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _

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


@dataclass(frozen=True)
class SummaryLine:
    anchor: str  # the id of the input to jump to
    label: str
    message: str


def error_summary(form: forms.BaseForm) -> list[SummaryLine]:
    """Every error of the form, in field order, each with the id of its input (the
    first box of a group of checkboxes or radios); form-wide errors point at the form."""
    lines = [SummaryLine("campaign-form", _("Form"), str(m)) for m in form.non_field_errors()]
    for bf in form:
        if not bf.errors:
            continue
        anchor = bf.auto_id
        if isinstance(bf.field.widget, forms.RadioSelect | forms.CheckboxSelectMultiple):
            anchor = f"{anchor}_0"
        label = str(bf.label or bf.name)
        lines.extend(SummaryLine(anchor, label, str(m)) for m in bf.errors)
    return lines
