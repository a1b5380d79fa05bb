"""The message-template form and the live preview's sample values."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import Credential, MessageTemplate
from campaigns.mpaas import strategy

SAMPLE_PREFIX = "sample__"
SHOWN_FIELD = "shown_placeholders"  # the placeholders the page has inputs for


def active_app_ids() -> list[str]:
    return list(
        Credential.objects.filter(is_active=True)
        .order_by("app_id")
        .values_list("app_id", flat=True)
        .distinct()
    )


class TemplateForm(forms.ModelForm):
    """A mirror of a template created in the mPaaS console. The name rules are the
    model's (MessageTemplate.clean); uniqueness per app is checked here so that the
    message stands next to the name field."""

    app_id = forms.ChoiceField(
        label=gettext_lazy("AppId"),
        help_text=gettext_lazy(
            "The mPaaS app the template was created in (from the active credentials)."
        ),
    )

    class Meta:
        model = MessageTemplate
        fields = ["app_id", "name", "title", "body", "uri", "description"]
        help_texts = {
            "name": gettext_lazy(
                "Exactly as created in the mPaaS console; may not contain commas."
            ),
            "title": gettext_lazy("Placeholders look like #name#."),
            "uri": gettext_lazy("Optional; may contain placeholders too."),
        }
        widgets = {"body": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        app_ids = active_app_ids()
        current = self.instance.app_id
        if current and current not in app_ids:
            app_ids.append(current)  # keep an edit valid after its credential was retired
        self.fields["app_id"].choices = [("", _("Choose an AppId"))] + [(a, a) for a in app_ids]
        if read_only:
            for field in self.fields.values():
                field.disabled = True
        self.helper = FormHelper()
        self.helper.form_tag = False

    def add_error(self, field, error):
        # MessageTemplate.clean() checks the name on the instance, which still holds the
        # old (or no) name when this form has already refused the typed one: drop that
        # second, misleading message ("Template name is required.").
        if field is None and self.has_error("name") and hasattr(error, "error_dict"):
            error.error_dict.pop("name", None)
        super().add_error(field, error)

    def clean(self):
        cleaned = super().clean()
        app_id, name = cleaned.get("app_id"), cleaned.get("name")
        if app_id and name:
            taken = MessageTemplate.objects.filter(app_id=app_id, name=name)
            if taken.exclude(pk=self.instance.pk).exists():
                self.add_error(
                    "name",
                    _("A template named “%(name)s” already exists for AppId %(app_id)s.")
                    % {"name": name, "app_id": app_id},
                )
        return cleaned


def preview(data) -> dict:
    """What the live preview shows for the posted title/body/URI and sample values:
    the placeholders in order, each with its sample value, and the rendered texts.
    `changed` tells whether the page's sample-value inputs are for other placeholders
    (only then are they redrawn, so typing a sample value never loses focus)."""
    title, body, uri = (str(data.get(key, "")) for key in ("title", "body", "uri"))
    names = strategy.parse_placeholders(title, body, uri)
    values = {name: str(data.get(SAMPLE_PREFIX + name, "")) for name in names}
    filled = {name: value for name, value in values.items() if value}
    shown = ",".join(names)
    return {
        "shown": shown,
        "changed": data.get(SHOWN_FIELD) != shown,
        "placeholders": [
            {"name": name, "field": SAMPLE_PREFIX + name, "value": values[name]} for name in names
        ],
        "title": strategy.render(title, filled),
        "body": strategy.render(body, filled),
        "uri": strategy.render(uri, filled),
    }
