"""The campaign builder form.

It converts what marketing types into a Campaign (drafts may be incomplete), then runs
every rule of mpaas/strategy.py and puts each message next to the field it is about. Saving a
draft needs only the basics; launching needs the rules to pass (sending.launch checks
again on the server).
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import datetime

from django import forms
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.conf import push_limits
from campaigns.forms.campaign_fields import (
    CATEGORY_PREFIX,
    EXTENDED_ROWS,
    LEVEL_PREFIX,
    SPEC_TO_FORM,
    VALUE_PREFIX,
    CampaignFields,
    choices_with_blank,
)
from campaigns.models import Campaign, Credential, MessageTemplate, ScheduleMode, TargetList
from campaigns.mpaas import strategy
from campaigns.mpaas.vocabulary import (
    NOTIFY_LEVELS,
    THIRD_CHANNEL_CATEGORIES,
    CircleType,
    Vendor,
)


class CampaignForm(CampaignFields):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["credential"].queryset = Credential.objects.filter(is_active=True)
        self.fields["template"].queryset = MessageTemplate.objects.all()
        self.fields["target_list"].queryset = TargetList.objects.all()
        self.fields["loop_circle_type"].required = False
        self.fields["schedule_mode"].required = False  # blank means Auto
        self.fields["template"].widget.attrs.update(
            {
                "hx-get": reverse_lazy("campaign-template-values"),
                "hx-trigger": "change",
                "hx-target": "#template-values",
            }
        )
        self.fields["credential"].widget.attrs.update(
            {
                "hx-get": reverse_lazy("campaign-credential-info"),
                "hx-trigger": "change, load",
                "hx-target": "#credential-info",
            }
        )
        self.fields["expired_seconds"].widget.attrs.update({"min": 1, "step": 1})
        for vendor, label in Vendor.choices:
            table = THIRD_CHANNEL_CATEGORIES[vendor]
            name = f"{CATEGORY_PREFIX}{vendor}"
            if table:
                self.fields[name] = forms.ChoiceField(
                    label=label,
                    required=False,
                    choices=choices_with_blank(table.items(), _("Not set")),
                )
            else:
                self.fields[name] = forms.CharField(
                    label=label,
                    required=False,
                    max_length=8,
                    help_text=_("Category code (digits)."),
                )
        for vendor, levels in NOTIFY_LEVELS.items():
            self.fields[f"{LEVEL_PREFIX}{vendor}"] = forms.ChoiceField(
                label=Vendor(vendor).label,
                required=False,
                choices=choices_with_blank(levels.items(), _("Not set")),
            )
        for n in range(EXTENDED_ROWS):
            self.fields[f"ext_key_{n}"] = forms.CharField(
                label=_("Key %(n)d") % {"n": n + 1}, required=False, max_length=64
            )
            self.fields[f"ext_value_{n}"] = forms.CharField(
                label=_("Value %(n)d") % {"n": n + 1}, required=False, max_length=500
            )
        self._offer_templates_of_the_app()
        self._add_value_fields()
        self._set_initial_from_instance()

    def _offer_templates_of_the_app(self) -> None:
        """Offer only the chosen credential's app's templates (any stays valid, so a
        mismatch is refused with its own message rather than "not a valid choice")."""
        credential = self.selected_credential()
        if credential is None:
            return
        field = self.fields["template"]
        offered = list(MessageTemplate.objects.filter(app_id=credential.app_id))
        chosen = self.selected_template()
        if chosen is not None and chosen.app_id != credential.app_id:
            offered.append(chosen)  # still shown as chosen, with the error beside it
        field.widget.choices = [("", field.empty_label)] + [(t.pk, str(t)) for t in offered]

    # -- dynamic parts --------------------------------------------------------------

    def selected_template(self) -> MessageTemplate | None:
        raw = self.data.get("template") if self.is_bound else None
        if raw:
            return MessageTemplate.objects.filter(pk=raw).first() if str(raw).isdigit() else None
        return self.instance.template if self.instance.template_id else None

    def selected_credential(self) -> Credential | None:
        raw = self.data.get("credential") if self.is_bound else None
        if raw:
            return Credential.objects.filter(pk=raw).first() if str(raw).isdigit() else None
        return self.instance.credential if self.instance.credential_id else None

    def zone(self) -> zoneinfo.ZoneInfo:
        credential = self.selected_credential()
        try:
            return zoneinfo.ZoneInfo(credential.timezone if credential else "Asia/Shanghai")
        except zoneinfo.ZoneInfoNotFoundError:
            return zoneinfo.ZoneInfo("Asia/Shanghai")

    def _add_value_fields(self) -> None:
        template = self.selected_template()
        values = self.instance.template_values or {}
        for name in template.placeholders() if template else ():
            self.fields[f"{VALUE_PREFIX}{name}"] = forms.CharField(
                label=f"#{name}#", required=False, max_length=1000, initial=values.get(name, "")
            )

    def value_fields(self):
        return [self[name] for name in self.fields if name.startswith(VALUE_PREFIX)]

    def fields_named(self, *prefixes: str):
        return [self[name] for name in self.fields if name.startswith(prefixes)]

    def extended_rows(self):
        return [(self[f"ext_key_{n}"], self[f"ext_value_{n}"]) for n in range(EXTENDED_ROWS)]

    def _set_initial_from_instance(self) -> None:
        campaign = self.instance
        zone = self.zone()
        for name in ("fixed_time", "dismissal_date"):
            value = getattr(campaign, name)
            if value:
                self.initial[name] = value.astimezone(zone).replace(tzinfo=None)
        values = list(campaign.loop_circle_values or [])
        if campaign.loop_circle_type == CircleType.WEEKLY:
            self.initial["loop_weekdays"] = values
        elif campaign.loop_circle_type == CircleType.MONTHLY:
            self.initial["loop_monthdays"] = values
        for vendor, code in (campaign.third_channel_category or {}).items():
            self.initial[f"{CATEGORY_PREFIX}{vendor}"] = code
        for vendor, level in (campaign.notify_level or {}).items():
            self.initial[f"{LEVEL_PREFIX}{vendor}"] = level
        for n, (key, value) in enumerate((campaign.extended_params or {}).items()):
            if n < EXTENDED_ROWS:
                self.initial[f"ext_key_{n}"] = key
                self.initial[f"ext_value_{n}"] = value
        if campaign.sms_template_param:
            self.initial["sms_template_param"] = json.dumps(
                campaign.sms_template_param, ensure_ascii=False
            )
        for name in ("transparent_payload", "vendor_template"):
            if getattr(campaign, name) is not None:
                self.initial[name] = json.dumps(getattr(campaign, name), ensure_ascii=False)
        if campaign.activity_content_state is not None:
            self.initial["activity_content_state"] = json.dumps(
                campaign.activity_content_state, ensure_ascii=False
            )

    # -- cleaning -------------------------------------------------------------------

    def _local(self, value: datetime | None) -> datetime | None:
        """A typed date-time means that wall time in the credential's timezone."""
        if value is None:
            return None
        naive = timezone.make_naive(value) if timezone.is_aware(value) else value
        return naive.replace(tzinfo=self.zone())

    def _json_object(self, name: str) -> dict | None:
        raw = (self.cleaned_data.get(name) or "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            self.add_error(name, _('This must be a JSON object, e.g. {"code": "1234"}.'))
            return None
        if not isinstance(value, dict):
            self.add_error(name, _('This must be a JSON object, e.g. {"code": "1234"}.'))
            return None
        return value

    def _keys_beyond_the_rows(self) -> int:
        """How many non-blank ``ext_key_N`` were posted past the form's EXTENDED_ROWS rows
        (a crafted or stale page); they would otherwise be dropped without a word."""
        beyond = 0
        for name in self.data:
            number = name[len("ext_key_") :] if name.startswith("ext_key_") else ""
            if number.isdigit() and int(number) >= EXTENDED_ROWS:
                beyond += bool(str(self.data.get(name) or "").strip())
        return beyond

    def clean_schedule_mode(self) -> str:
        return self.cleaned_data.get("schedule_mode") or ScheduleMode.AUTO

    # Model fields built from several form fields in clean(); _post_clean puts them on
    # the instance, where Django's ModelForm puts the rest.
    DERIVED = (
        "loop_circle_values",
        "template_values",
        "third_channel_category",
        "notify_level",
        "extended_params",
        "sms_template_param",
        "activity_content_state",
        "transparent_payload",
        "vendor_template",
    )

    def clean(self):
        cleaned = super().clean()
        cleaned["fixed_time"] = self._local(cleaned.get("fixed_time"))
        cleaned["dismissal_date"] = self._local(cleaned.get("dismissal_date"))
        circle = cleaned.get("loop_circle_type")
        if circle == CircleType.WEEKLY:
            cleaned["loop_circle_values"] = sorted(cleaned.get("loop_weekdays") or [])
        elif circle == CircleType.MONTHLY:
            cleaned["loop_circle_values"] = sorted(cleaned.get("loop_monthdays") or [])
        else:
            cleaned["loop_circle_values"] = []
        # A blank value field is a value not given (mpaas/strategy.py then names it).
        cleaned["template_values"] = {
            name[len(VALUE_PREFIX) :]: cleaned[name]
            for name in self.fields
            if name.startswith(VALUE_PREFIX) and cleaned.get(name)
        }
        cleaned["third_channel_category"] = {
            vendor: str(cleaned[f"{CATEGORY_PREFIX}{vendor}"]).strip()
            for vendor in Vendor.values
            if str(cleaned.get(f"{CATEGORY_PREFIX}{vendor}") or "").strip()
        }
        cleaned["notify_level"] = {
            vendor: cleaned[f"{LEVEL_PREFIX}{vendor}"]
            for vendor in NOTIFY_LEVELS
            if cleaned.get(f"{LEVEL_PREFIX}{vendor}")
        }
        extended = {}
        for n in range(EXTENDED_ROWS):
            key = (cleaned.get(f"ext_key_{n}") or "").strip()
            value = cleaned.get(f"ext_value_{n}") or ""
            if not key and value:
                self.add_error(f"ext_key_{n}", _("A value needs a key."))
            elif key in extended:
                self.add_error(f"ext_key_{n}", _("Key %(key)s is given twice.") % {"key": key})
            elif key:
                extended[key] = value
        cleaned["extended_params"] = extended
        if over := self._keys_beyond_the_rows():
            self.add_error(
                "ext_key_0",
                _(
                    "At most %(max)d extended parameters can be sent; %(count)d more keys "
                    "were given and none of them was kept. Remove them or merge them."
                )
                % {"max": EXTENDED_ROWS, "count": over},
            )
        cleaned["sms_template_param"] = self._json_object("sms_template_param") or {}
        cleaned["activity_content_state"] = self._json_object("activity_content_state")
        cleaned["transparent_payload"] = self._json_object("transparent_payload")
        cleaned["vendor_template"] = self._json_object("vendor_template")
        cleaned["transparent_urgency"] = cleaned.get("transparent_urgency") or ""
        template = cleaned.get("template")
        if template is not None and (mismatch := template.app_error(cleaned.get("credential"))):
            self.add_error("template", mismatch)
        return cleaned

    def _post_clean(self):
        if hasattr(self, "cleaned_data"):
            for name in self.DERIVED:
                if name in self.cleaned_data:
                    setattr(self.instance, name, self.cleaned_data[name])
        super()._post_clean()
        # Rules are checked on every save so the builder can show them; a draft with
        # broken rules still saves (see `launch_errors`), launching does not.
        self.rule_errors: dict[str, list[str]] = {}
        if self.errors or not (
            self.instance.credential_id
            and self.instance.template_id
            and self.instance.target_list_id
        ):
            return
        errors = strategy.validate(
            self.instance.push_spec(), now=timezone.now(), limits=push_limits()
        )
        self.rule_errors = errors

    def show_rule_errors(self) -> None:
        """Put mpaas/strategy.py's messages next to their fields (for display)."""
        for spec_field, messages in self.rule_errors.items():
            for message in messages:
                if spec_field == "template_values":
                    # each value field left blank, or (values the template does not
                    # have) the whole form
                    blank = [
                        field.name
                        for field in self.value_fields()
                        if not self.cleaned_data.get(field.name)
                    ]
                    for name in blank or [None]:
                        self.add_error(name, message)
                else:
                    self.add_error(self.form_field_for(spec_field), message)

    def labelled(self, errors: dict[str, list[str]]) -> list[str]:
        """mpaas/strategy.py's messages as "Label: message" lines, each pair once (several
        fields may share one message; each is named, none repeated)."""
        lines: dict[str, None] = {}
        for spec_field, messages in errors.items():
            name = self.form_field_for(spec_field)
            field = self.fields.get(name) if name else None
            label = str(field.label) if field is not None and field.label else spec_field
            for message in messages:
                line = _("%(label)s: %(message)s") % {"label": label, "message": message}
                lines.setdefault(line, None)
        return list(lines)

    def form_field_for(self, spec_field: str) -> str | None:
        if spec_field == "loop_circle_values":
            circle = getattr(self, "cleaned_data", {}).get("loop_circle_type")
            return "loop_monthdays" if circle == CircleType.MONTHLY else "loop_weekdays"
        if spec_field in SPEC_TO_FORM:
            return SPEC_TO_FORM[spec_field]
        return spec_field if spec_field in self.fields else None


class CampaignSearchForm(forms.Form):
    q = forms.CharField(
        label=gettext_lazy("Search task name"),
        required=False,
        max_length=128,
        widget=forms.TextInput(attrs={"class": "form-control", "type": "search"}),
    )
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("All"))] + list(Campaign.Status.choices),
        widget=forms.Select(attrs={"class": "form-select"}),
    )
