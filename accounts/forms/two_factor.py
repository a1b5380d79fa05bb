"""The one field of two-factor sign-in: a code from the authenticator app."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy


class TokenForm(forms.Form):
    otp_token = forms.CharField(
        label=gettext_lazy("Code from your authenticator app"),
        min_length=6,
        max_length=8,
        widget=forms.TextInput(
            attrs={
                "class": "form-control",
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9]*",
                "autofocus": True,
            }
        ),
    )

    def clean_otp_token(self) -> str:
        token = self.cleaned_data["otp_token"].replace(" ", "")
        if not token.isdigit():
            raise forms.ValidationError(gettext_lazy("Enter the digits shown in the app."))
        return token
