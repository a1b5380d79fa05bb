"""Credential pages (admins only): list, create, edit, test the connection, deactivate
or reactivate, delete while no campaign uses it. No page ever holds the AccessKey secret
or the full AccessKey ID, and none may be cached."""

from __future__ import annotations

from copy import copy

from django.contrib import messages
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import sessions
from accounts.roles import admin_only
from campaigns import audit, connection_check
from campaigns.deletion import delete_unless_used
from campaigns.forms.credentials import SECRET_FIELD, CredentialForm
from campaigns.models import Credential


@never_cache
@admin_only
@require_GET
def credential_list(request):
    credentials = Credential.objects.annotate(campaign_count=Count("campaigns")).order_by("name")
    return render(request, "campaigns/credentials/list.html", {"credentials": credentials})


def _edit(request, credential: Credential | None):
    # The form works on a copy: the page keeps showing the stored name and badges
    # while the typed values are refused.
    form = CredentialForm(request.POST or None, instance=copy(credential) or Credential())
    if request.method == "POST" and form.is_valid():
        if credential is not None and form.cleaned_data.get(SECRET_FIELD):
            # replacing a secret needs a fresh sign-in; the secret is typed again after
            if refusal := sessions.require_fresh(request):
                return refusal
        changed = form.changed_fields()
        with transaction.atomic():
            saved = form.save()
            if credential is None or changed:
                action = "credential.create" if credential is None else "credential.update"
                audit.record(action, obj=saved, request=request, details={"fields": changed})
        if credential is None:
            messages.success(request, _("Credential “%(name)s” added.") % {"name": saved.name})
        elif changed:
            messages.success(request, _("Credential “%(name)s” saved.") % {"name": saved.name})
        else:
            messages.info(request, _("Nothing was changed."))
        return redirect("credential-list")
    deletable = credential is not None and not credential.campaigns.exists()
    return render(
        request,
        "campaigns/credentials/edit.html",
        {"form": form, "credential": credential, "deletable": deletable},
    )


@never_cache
@admin_only
@sensitive_post_parameters(SECRET_FIELD)
@require_http_methods(["GET", "POST"])
def credential_create(request):
    return _edit(request, None)


@never_cache
@admin_only
@sensitive_post_parameters(SECRET_FIELD)
@require_http_methods(["GET", "POST"])
def credential_edit(request, pk: int):
    return _edit(request, get_object_or_404(Credential, pk=pk))


@never_cache
@admin_only
@require_POST
def credential_test(request, pk: int):
    credential = get_object_or_404(Credential, pk=pk)
    result = connection_check.check_connection(credential)
    details = result.audit_details()
    audit.record("credential.test", obj=credential, request=request, details=details)
    return render(
        request, "campaigns/credentials/test.html", {"credential": credential, "result": result}
    )


def _set_active(request, pk: int, active: bool):
    credential = get_object_or_404(Credential, pk=pk)
    with transaction.atomic():
        changed = Credential.objects.filter(pk=pk, is_active=not active).update(
            is_active=active, updated_at=timezone.now()
        )
        if changed:
            action = "credential.activate" if active else "credential.deactivate"
            audit.record(action, obj=credential, request=request, details={"fields": ["is_active"]})
    if not changed:
        messages.info(request, _("Nothing was changed."))
    elif active:
        messages.success(
            request, _("Credential “%(name)s” is active again.") % {"name": credential}
        )
    else:
        messages.success(
            request,
            _("Credential “%(name)s” deactivated: new campaigns cannot use it.")
            % {"name": credential},
        )
    return redirect("credential-list")


@never_cache
@admin_only
@require_POST
def credential_deactivate(request, pk: int):
    return _set_active(request, pk, active=False)


@never_cache
@admin_only
@require_POST
def credential_activate(request, pk: int):
    return _set_active(request, pk, active=True)


@never_cache
@admin_only
@require_http_methods(["GET", "POST"])
def credential_delete(request, pk: int):
    credential = get_object_or_404(Credential, pk=pk)
    used_by = credential.campaigns.count()
    if request.method == "POST" and not used_by:
        if delete_unless_used(credential, "credential.delete", request=request):
            messages.success(request, _("Credential “%(name)s” deleted.") % {"name": credential})
            return redirect("credential-list")
        used_by = 1  # a campaign started using it since the count
    if request.method == "POST":
        messages.error(request, _refused(used_by))
        return redirect("credential-list")
    return render(
        request,
        "campaigns/credentials/delete.html",
        {"credential": credential, "used_by": used_by, "refused": _refused(used_by)},
    )


def _refused(used_by: int) -> str:
    return ngettext(
        "This credential cannot be deleted while %(count)d campaign uses it. "
        "Deactivate it instead.",
        "This credential cannot be deleted while %(count)d campaigns use it. "
        "Deactivate it instead.",
        used_by,
    ) % {"count": used_by}


urlpatterns = [
    path("", credential_list, name="credential-list"),
    path("new/", credential_create, name="credential-create"),
    path("<int:pk>/", credential_edit, name="credential-edit"),
    path("<int:pk>/test/", credential_test, name="credential-test"),
    path("<int:pk>/deactivate/", credential_deactivate, name="credential-deactivate"),
    path("<int:pk>/activate/", credential_activate, name="credential-activate"),
    path("<int:pk>/delete/", credential_delete, name="credential-delete"),
]
