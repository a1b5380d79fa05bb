"""Target-list forms: the list itself, uploading a file, pasting IDs, searching IDs."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.importing import header
from campaigns.models import TargetList

MAX_PASTE_CHARS = 1_000_000  # below DATA_UPLOAD_MAX_MEMORY_SIZE; bigger lists are uploaded


def _helper() -> FormHelper:
    helper = FormHelper()
    helper.form_tag = False
    return helper


class TargetListForm(forms.ModelForm):
    class Meta:
        model = TargetList
        fields = ["name", "delivery_type", "description"]
        help_texts = {
            "delivery_type": gettext_lazy(
                "Every ID in the list is of this type; it decides which IDs are valid."
            ),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper()


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("File (CSV or TXT)"),
        help_text=gettext_lazy("UTF-8 text: one target ID per line, or a CSV with a header row."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )
    column = forms.CharField(
        label=gettext_lazy("Column name"),
        required=False,
        max_length=200,
        help_text=gettext_lazy(
            "For a CSV with a header row: the column holding the IDs. "
            "Leave empty for one ID per line."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper()

    def clean_column(self) -> str | None:
        return self.cleaned_data["column"].strip() or None

    def clean(self):
        """A file with a header row but no column named: offer its columns (the likely
        one filled in) instead of rejecting every row."""
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is None or cleaned.get("column"):
            return cleaned
        names = header.columns(upload)
        if names:
            self.data = self.data.copy()
            self.data["column"] = header.guess(names)
            self.add_error(
                "column",
                _(
                    "This file has a header row: choose the column holding the IDs "
                    "(%(names)s). “%(guess)s” is filled in; choose the file again and upload."
                )
                % {"names": ", ".join(f"“{n}”" for n in names), "guess": self.data["column"]},
            )
        return cleaned


class PasteForm(forms.Form):
    text = forms.CharField(
        label=gettext_lazy("Target IDs"),
        max_length=MAX_PASTE_CHARS,
        strip=False,  # row numbers in the error report must match the pasted lines
        widget=forms.Textarea(attrs={"rows": 6, "class": "font-monospace-sm"}),
        help_text=gettext_lazy("One ID per line. Upload a file for long lists."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper()


class TargetSearchForm(forms.Form):
    q = forms.CharField(
        label=gettext_lazy("Find target ID"),
        required=False,
        max_length=200,
        help_text=gettext_lazy("Exact ID or the start of one."),
    )
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
