"""The signed-in user's own password forms: confirm it (fresh sign-in), change it."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_variables

from accounts.forms.users import PasswordFieldsMixin


def _current_password_field(label) -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class ConfirmPasswordForm(forms.Form):
    def __init__(self, *args, user, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)
        self.fields["password"] = _current_password_field(gettext_lazy("Your password"))
        self.helper = FormHelper()
        self.helper.form_tag = False

    @sensitive_variables("password")
    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError(_("That is not your password."))
        return password


class OwnPasswordForm(PasswordFieldsMixin, forms.Form):
    def __init__(self, *args, user, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)
        self.fields["current"] = _current_password_field(gettext_lazy("Current password"))
        self.add_password_fields()
        self.fields["password1"].label = gettext_lazy("New password")
        self.fields["password2"].label = gettext_lazy("New password again")
        self.order_fields(["current", "password1", "password2"])
        self.helper = FormHelper()
        self.helper.form_tag = False

    @sensitive_variables("current")
    def clean_current(self) -> str:
        current = self.cleaned_data["current"]
        if not self.user.check_password(current):
            raise forms.ValidationError(_("That is not your current password."))
        return current

    def clean(self):
        cleaned = super().clean()
        self.check_passwords(self.user)
        return cleaned

    def save(self):
        self.user.set_password(self.cleaned_data["password1"])
        self.user.save(update_fields=["password"])
        return self.user
