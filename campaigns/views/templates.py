"""Message-template pages: list, create, edit (a read-only view for auditors), delete,
and the htmx live preview."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import MARKETING, can_read, can_send, has_role
from campaigns import approvals, audit, sandbox_mirror
from campaigns.deletion import delete_unless_used
from campaigns.forms.templates import TemplateForm, preview
from campaigns.models import MessageTemplate


@can_read
@require_GET
def template_list(request):
    templates = MessageTemplate.objects.annotate(campaign_count=Count("campaigns"))
    context = {"templates": templates, "may_change": has_role(request.user, MARKETING)}
    return render(request, "campaigns/templates/list.html", context)


def _edit(request, template: MessageTemplate | None):
    may_change = has_role(request.user, MARKETING)
    instance = template or MessageTemplate(created_by=request.user)
    form = TemplateForm(request.POST or None, instance=instance, read_only=not may_change)
    if request.method == "POST" and form.is_valid():
        try:
            saved = form.save()
        except IntegrityError:  # a concurrent save took the name between check and insert
            form.add_error("name", _("A template with this name already exists for the app."))
        else:
            action = "template.edit" if template else "template.create"
            details = {"app_id": saved.app_id, "fields": sorted(form.changed_data)}
            audit.record(action, obj=saved, request=request, details=details)
            if template and form.changed_data:
                approvals.void_for(template=saved, request=request)
            sandbox_mirror.register(saved)
            messages.success(request, _("Template “%(name)s” saved.") % {"name": saved.name})
            return redirect("template-list")
    context = {"form": form, "template": template, "may_change": may_change}
    context["preview"] = preview(request.POST if form.is_bound else _initial(instance))
    return render(request, "campaigns/templates/edit.html", context)


def _initial(template: MessageTemplate) -> dict:
    return {"title": template.title, "body": template.body, "uri": template.uri}


@can_send
@require_http_methods(["GET", "POST"])
def template_create(request):
    return _edit(request, None)


@can_read
@require_http_methods(["GET", "POST"])
def template_edit(request, pk: int):
    # Also the template's read page: auditors see it read-only and may not POST.
    if request.method == "POST" and not has_role(request.user, MARKETING):
        raise PermissionDenied
    return _edit(request, get_object_or_404(MessageTemplate, pk=pk))


@can_send
@require_http_methods(["GET", "POST"])
def template_delete(request, pk: int):
    template = get_object_or_404(MessageTemplate, pk=pk)
    used_by = template.campaigns.count()
    if request.method == "POST":
        if delete_unless_used(template, "template.delete", request=request):
            messages.success(request, _("Template “%(name)s” deleted.") % {"name": template})
            return redirect("template-list")
        used_by = used_by or 1
        messages.error(request, _refused(used_by))
        return redirect("template-list")
    context = {"template": template, "used_by": used_by, "refused": _refused(used_by)}
    return render(request, "campaigns/templates/delete.html", context)


def _refused(used_by: int) -> str:
    return ngettext(
        "This template cannot be deleted while %(count)d campaign uses it. "
        "Delete or change that campaign first.",
        "This template cannot be deleted while %(count)d campaigns use it. "
        "Delete or change those campaigns first.",
        used_by,
    ) % {"count": used_by}


@can_send
@require_POST
def template_preview(request):
    """htmx: the placeholder list, sample-value inputs and rendered texts."""
    return render(request, "campaigns/templates/_preview.html", {"preview": preview(request.POST)})


urlpatterns = [
    path("", template_list, name="template-list"),
    path("new/", template_create, name="template-create"),
    path("<int:pk>/", template_edit, name="template-edit"),
    path("<int:pk>/delete/", template_delete, name="template-delete"),
    path("preview/", template_preview, name="template-preview"),
]
