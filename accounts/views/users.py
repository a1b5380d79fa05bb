"""User pages (admins only): list users and their roles, create a user, change roles,
deactivate (ending their sessions at once) or reactivate, set a new password.

A deactivated user is also refused on every later request even if a session survived:
Django's ModelBackend.get_user() returns no user for an inactive account."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import sessions
from accounts.forms.users import UserCreateForm, UserPasswordForm, UserRolesForm, set_roles
from accounts.roles import ADMIN, ALL_ROLES, admin_only
from campaigns import audit

User = get_user_model()


def end_sessions(user) -> int:
    """Delete every stored session of `user`. Returns how many were ended.

    Reads each unexpired session once (O(sessions)); only the database session engine
    is supported, which is the console's."""
    ended = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            ended.append(session.pk)
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


def _roles(user) -> list[str]:
    names = [group.name for group in user.role_groups]
    if user.is_superuser and ADMIN not in names:
        names.append(ADMIN)
    return sorted(names)


@never_cache
@admin_only
@require_GET
def user_list(request):
    users = User.objects.order_by("username").prefetch_related(
        Prefetch("groups", Group.objects.filter(name__in=ALL_ROLES), to_attr="role_groups")
    )
    rows = [{"user": user, "roles": _roles(user)} for user in users]
    return render(request, "accounts/users/list.html", {"rows": rows})


@never_cache
@admin_only
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def user_create(request):
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save()
            audit.record(
                "user.create",
                obj=user,
                request=request,
                details={"roles": sorted(form.cleaned_data["roles"])},
            )
        messages.success(request, _("User “%(name)s” created.") % {"name": user.username})
        return redirect("user-list")
    return render(request, "accounts/users/create.html", {"form": form})


@never_cache
@admin_only
@require_http_methods(["GET", "POST"])
def user_edit(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    form = UserRolesForm(request.POST or None, user=user, acting_user=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            added, removed = set_roles(user, form.cleaned_data["roles"])
            if added or removed:
                audit.record(
                    "user.update_roles",
                    obj=user,
                    request=request,
                    details={"added": added, "removed": removed},
                )
        if added or removed:
            messages.success(request, _("Roles of “%(name)s” saved.") % {"name": user.username})
        else:
            messages.info(request, _("Nothing was changed."))
        return redirect("user-list")
    return render(request, "accounts/users/edit.html", {"form": form, "subject": user})


@never_cache
@admin_only
@require_POST
def user_deactivate(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    if user.pk == request.user.pk:
        messages.error(request, _("You cannot deactivate yourself; another admin must do it."))
        return redirect("user-edit", pk=pk)
    with transaction.atomic():
        changed = User.objects.filter(pk=pk, is_active=True).update(is_active=False)
        if changed:
            ended = end_sessions(user)
            audit.record(
                "user.deactivate", obj=user, request=request, details={"sessions_ended": ended}
            )
    if changed:
        messages.success(
            request,
            _("User “%(name)s” deactivated and signed out everywhere.") % {"name": user.username},
        )
    else:
        messages.info(request, _("Nothing was changed."))
    return redirect("user-list")


@never_cache
@admin_only
@require_POST
def user_activate(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    with transaction.atomic():
        changed = User.objects.filter(pk=pk, is_active=False).update(is_active=True)
        if changed:
            audit.record("user.activate", obj=user, request=request)
    if changed:
        messages.success(request, _("User “%(name)s” may sign in again.") % {"name": user.username})
    else:
        messages.info(request, _("Nothing was changed."))
    return redirect("user-list")


@never_cache
@admin_only
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def user_password(request, pk: int):
    user = get_object_or_404(User, pk=pk)
    if user.pk != request.user.pk and (refusal := sessions.require_fresh(request)):
        return refusal  # resetting someone else's password needs a fresh sign-in
    form = UserPasswordForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()  # a new password hash ends the user's other sessions
            audit.record("user.reset_password", obj=user, request=request)
        if user.pk == request.user.pk:
            update_session_auth_hash(request, user)
        messages.success(request, _("New password set for “%(name)s”.") % {"name": user.username})
        return redirect("user-list")
    return render(request, "accounts/users/password.html", {"form": form, "subject": user})


urlpatterns = [
    path("", user_list, name="user-list"),
    path("new/", user_create, name="user-create"),
    path("<int:pk>/", user_edit, name="user-edit"),
    path("<int:pk>/deactivate/", user_deactivate, name="user-deactivate"),
    path("<int:pk>/activate/", user_activate, name="user-activate"),
    path("<int:pk>/password/", user_password, name="user-password"),
]
