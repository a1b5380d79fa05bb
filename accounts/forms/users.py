"""User forms for admins: create a user with roles and an initial password, change a
user's roles, set a new password. There is no self-registration."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import UsernameField
from django.contrib.auth.models import Group
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_variables

from accounts.roles import ADMIN, ALL_ROLES, APPROVER, AUDITOR, MARKETING

ROLE_CHOICES = [
    (MARKETING, gettext_lazy("Marketing: templates, lists, campaigns")),
    (ADMIN, gettext_lazy("Admin: everything, credentials and users")),
    (AUDITOR, gettext_lazy("Auditor: reads everything, changes nothing")),
    (APPROVER, gettext_lazy("Approver: releases or rejects other people's campaigns")),
]
PASSWORD_FIELDS = ("password1", "password2")

# Used only while settings.AUTH_PASSWORD_VALIDATORS is empty: Django's own validators.
FALLBACK_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


def password_validators() -> list:
    """Django's password validators from settings, or the fallback list above."""
    config = settings.AUTH_PASSWORD_VALIDATORS or FALLBACK_PASSWORD_VALIDATORS
    return password_validation.get_password_validators(config)


def roles_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=gettext_lazy("Roles"),
        choices=ROLE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": gettext_lazy("Choose at least one role.")},
    )


def set_roles(user, roles: list[str]) -> tuple[list[str], list[str]]:
    """Make `user`'s role groups exactly `roles`. Returns (added, removed) role names."""
    held = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
    wanted = set(roles)
    added, removed = sorted(wanted - held), sorted(held - wanted)
    if added:
        user.groups.add(*[Group.objects.get_or_create(name=name)[0] for name in added])
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    # Admins use Django's admin and the RQ dashboard, which both require is_staff.
    staff = ADMIN in wanted or user.is_superuser
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])
    return added, removed


class PasswordFieldsMixin:
    """Two password inputs, checked against each other and Django's validators."""

    def add_password_fields(self) -> None:
        self.fields["password1"] = forms.CharField(
            label=gettext_lazy("Password"),
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
            help_text=password_validation.password_validators_help_text_html(password_validators()),
        )
        self.fields["password2"] = forms.CharField(
            label=gettext_lazy("Password again"),
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        )

    @sensitive_variables("password1", "password2")
    def check_passwords(self, user) -> None:
        password1 = self.cleaned_data.get("password1")
        password2 = self.cleaned_data.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", _("The two passwords differ."))
            return
        if password1:
            try:
                password_validation.validate_password(password1, user, password_validators())
            except forms.ValidationError as error:
                self.add_error("password1", error)


class UserCreateForm(PasswordFieldsMixin, forms.ModelForm):
    roles = roles_field()

    class Meta:
        model = get_user_model()
        fields = ["username", "email"]
        field_classes = {"username": UsernameField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_password_fields()
        self.fields["email"].required = False
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        model = self._meta.model
        if model.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(
                _("A user named “%(name)s” already exists.") % {"name": username}
            )
        return username

    def _post_clean(self):
        super()._post_clean()
        # Validate against the user being created (UserAttributeSimilarityValidator
        # compares with the username and email).
        self.check_passwords(self.instance)

    def save(self, commit: bool = True):
        user = super().save(commit=False)
        user.set_password(self.cleaned_data["password1"])
        if commit:
            user.save()
            set_roles(user, self.cleaned_data["roles"])
        return user


class UserRolesForm(forms.Form):
    roles = roles_field()

    def __init__(self, *args, user, acting_user, **kwargs):
        self.user, self.acting_user = user, acting_user
        initial = kwargs.pop("initial", {}) or {}
        initial.setdefault(
            "roles", list(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        )
        super().__init__(*args, initial=initial, **kwargs)
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean_roles(self) -> list[str]:
        roles = self.cleaned_data["roles"]
        if (
            self.user.pk == self.acting_user.pk
            and ADMIN not in roles
            and not self.user.is_superuser
        ):
            raise forms.ValidationError(
                _("You cannot remove your own Admin role; another admin must do it.")
            )
        return roles


class UserPasswordForm(PasswordFieldsMixin, forms.Form):
    def __init__(self, *args, user, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)
        self.add_password_fields()
        self.helper = FormHelper()
        self.helper.form_tag = False

    def clean(self):
        cleaned = super().clean()
        self.check_passwords(self.user)
        return cleaned

    def save(self):
        self.user.set_password(self.cleaned_data["password1"])
        self.user.save(update_fields=["password"])
        return self.user
