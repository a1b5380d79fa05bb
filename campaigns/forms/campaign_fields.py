"""The campaign builder's fields: what marketing types, with labels, help and widgets."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy

from campaigns.models import Campaign
from campaigns.mpaas.vocabulary import (
    ActivityEvent,
    Classification,
    NotifyType,
    PushAction,
    Silent,
    TransparentUrgency,
    Weekday,
)

EXTENDED_ROWS = 20
VALUE_PREFIX = "value__"
CATEGORY_PREFIX = "tcc_"
LEVEL_PREFIX = "level_"

# Where mpaas/strategy.py's messages about a PushSpec field are shown in this form.
SPEC_TO_FORM = {
    "app_id": "credential",
    "workspace_id": "credential",
    "template_name": "template",
    "template_placeholders": "template",
    "delivery_type": "target_list",
    "timezone": "credential",
    "third_channel_category": f"{CATEGORY_PREFIX}hms",
    "notify_level": f"{LEVEL_PREFIX}hms",
    "extended_params": "ext_key_0",
    "template_values": None,  # per-placeholder, see _values_errors
}


def choices_with_blank(pairs, blank: str) -> list[tuple[str, str]]:
    """A blank option, then (code, label) pairs: a Choices' ``.choices`` or a table's items."""
    return [("", blank)] + [(str(code), label) for code, label in pairs]


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class CampaignFields(forms.ModelForm):
    """The fields of the builder (the rules and conversions are CampaignForm's)."""

    """Builder form. The credential's timezone governs fixed times, loop days and the
    dismissal date: values are typed and shown in that zone."""

    extended_max = EXTENDED_ROWS

    loop_weekdays = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Weekdays"),
        required=False,
        coerce=int,
        choices=Weekday.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    loop_monthdays = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Days of the month"),
        required=False,
        coerce=int,
        choices=[(n, str(n)) for n in range(1, 32)],
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("A month without the chosen day skips it."),
    )
    fixed_time = forms.DateTimeField(
        label=gettext_lazy("Send at"),
        required=False,
        widget=DateTimeLocalInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )
    dismissal_date = forms.DateTimeField(
        label=gettext_lazy("Dismissal date"),
        required=False,
        widget=DateTimeLocalInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        help_text=gettext_lazy("Only with the 'end' event."),
    )
    classification = forms.ChoiceField(
        label=gettext_lazy("vivo message type"),
        required=False,
        choices=choices_with_blank(Classification.choices, gettext_lazy("Default (system)")),
    )
    notify_type = forms.ChoiceField(
        label=gettext_lazy("Notify type"),
        required=False,
        choices=choices_with_blank(NotifyType.choices, gettext_lazy("Default")),
    )
    activity_event = forms.ChoiceField(
        label=gettext_lazy("Live-activity event"),
        required=False,
        choices=choices_with_blank(ActivityEvent.choices, gettext_lazy("None")),
    )
    sms_strategy = forms.TypedChoiceField(
        label=gettext_lazy("SMS supplement"),
        coerce=int,
        required=False,
        empty_value=0,
        choices=[
            (0, gettext_lazy("Off")),
            (1, gettext_lazy("On (strategy 1)")),
            (2, gettext_lazy("On (strategy 2)")),
        ],
        help_text=gettext_lazy(
            "Hangzhou non-finance region only. When on, sign name, "
            "template code and template parameters are all required."
        ),
    )
    sms_template_param = forms.CharField(
        label=gettext_lazy("SMS template parameters (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    activity_content_state = forms.CharField(
        label=gettext_lazy("Live-activity content state (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    push_action = forms.TypedChoiceField(
        label=gettext_lazy("Tap action"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=choices_with_blank(PushAction.choices, gettext_lazy("Default (web URL)")),
    )
    silent = forms.TypedChoiceField(
        label=gettext_lazy("Silent"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=choices_with_blank(Silent.choices, gettext_lazy("Default")),
    )
    vendor_template = forms.CharField(
        label=gettext_lazy("Vendor template (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("Sent as VendorTemplate; its keys are not documented by mPaaS."),
    )
    transparent_payload = forms.CharField(
        label=gettext_lazy("Transparent-message payload (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy(
            "Required with the notify type “mPaaS self-built channel” (transparent); "
            "a JSON object your app reads."
        ),
    )
    transparent_urgency = forms.ChoiceField(
        label=gettext_lazy("Transparent-message urgency"),
        required=False,
        choices=choices_with_blank(TransparentUrgency.choices, gettext_lazy("Default")),
    )

    class Meta:
        model = Campaign
        fields = [
            "task_name",
            "credential",
            "template",
            "target_list",
            "expired_seconds",
            "strategy_type",
            "schedule_mode",
            "fixed_time",
            "loop_start_date",
            "loop_end_date",
            "loop_circle_type",
            "loop_time",
            "classification",
            "notify_type",
            "mi_channel_id",
            "channel_id",
            "push_action",
            "silent",
            "transparent_urgency",
            "sms_strategy",
            "sms_sign_name",
            "sms_template_code",
            "activity_event",
            "dismissal_date",
        ]
        widgets = {
            "strategy_type": forms.RadioSelect,
            "schedule_mode": forms.RadioSelect,
            "loop_start_date": forms.DateInput(attrs={"type": "date"}),
            "loop_end_date": forms.DateInput(attrs={"type": "date"}),
            "loop_time": forms.TimeInput(attrs={"type": "time", "step": 1}, format="%H:%M:%S"),
        }
        help_texts = {
            "channel_id": gettext_lazy(
                "Sent as ChannelId (the notification channel); mPaaS does not document it."
            ),
            "task_name": gettext_lazy("Shown in mPaaS's push records (TaskName)."),
            "expired_seconds": gettext_lazy("How long mPaaS keeps trying to deliver."),
        }
