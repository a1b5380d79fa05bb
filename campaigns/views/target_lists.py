"""Target-list pages: list, create, detail (search and keyset paging of IDs), delete,
and adding IDs by upload or paste, with progress and the error report.

Small uploads import in the request; larger ones are moved under VAR_DIR/uploads and
imported by the RQ job `campaigns.jobs.import_targets_file`. Either way the outcome goes
to a Redis hash (ImportStatus) that the detail page shows and, while a job runs, polls.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import redis
from django.conf import settings
from django.contrib import messages
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import MARKETING, can_read, can_send, has_role
from campaigns import audit, importing, paging
from campaigns.deletion import delete_unless_used
from campaigns.forms.target_lists import PasteForm, TargetListForm, TargetSearchForm, UploadForm
from campaigns.importing import ImportStatus
from campaigns.models import Target, TargetList

log = logging.getLogger(__name__)

PAGE_SIZE = 50
SHOWN_ERRORS = 100
# Room for the multipart boundaries and the other fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def sync_import_bytes() -> int:
    """Uploads up to this size import in the request; larger ones go to a job."""
    return settings.TARGET_IMPORT_SYNC_BYTES


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams an upload to a temporary file and stops once it passes `limit` bytes:
    the parser then deletes the partial file, so an oversized upload cannot fill the
    disk even when the request's Content-Length understates it."""

    def __init__(self, request, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.stopped = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received = start + len(raw_data)
        if self.received > self.limit:
            self.stopped = True
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)


# -- pages -----------------------------------------------------------------------------


def _may_change(request) -> bool:
    return has_role(request.user, MARKETING)


@can_read
@require_GET
def target_list_list(request):
    page = Paginator(TargetList.objects.all(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "may_change": _may_change(request)}
    return render(request, "campaigns/target_lists/list.html", context)


@can_send
@require_http_methods(["GET", "POST"])
def target_list_create(request):
    form = TargetListForm(request.POST or None, instance=TargetList(created_by=request.user))
    if form.is_valid():
        target_list = form.save()
        details = {"delivery_type": target_list.delivery_type}
        audit.record("target_list.create", obj=target_list, request=request, details=details)
        messages.success(request, _("Target list “%(name)s” created.") % {"name": target_list})
        return redirect("target-list-detail", pk=target_list.pk)
    return render(request, "campaigns/target_lists/create.html", {"form": form})


@can_read
@require_GET
def target_list_detail(request, pk: int):
    return _detail(request, get_object_or_404(TargetList, pk=pk))


def _detail(request, target_list: TargetList, *, upload_form=None, paste_form=None, status=200):
    """The list page: its IDs 50 at a time in id order (keyset: ?after=<id>), optionally
    only those equal to or starting with ?q=; the count is target_count, never COUNT(*)."""
    search = TargetSearchForm(request.GET or None)
    query, after = "", 0
    if search.is_valid():
        query, after = search.cleaned_data["q"], search.cleaned_data["after"] or 0
    targets = Target.objects.filter(target_list=target_list)
    if query:
        targets = targets.filter(target_id__startswith=query)
    page = paging.keyset_page(
        targets.values_list("id", "target_id"), key="id", size=PAGE_SIZE, after=after or None
    )
    next_url = None
    if page.next_cursor is not None:
        params = {"q": query} if query else {}
        next_url = "?" + urlencode({**params, "after": page.next_cursor})
    import_status = None
    if key := request.GET.get("import"):
        import_status = ImportStatus.load(key, target_list.pk)
    context = {
        "target_list": target_list,
        "search": search,
        "query": query,
        "after": after,
        "targets": [target_id for _pk, target_id in page.rows],
        "next_url": next_url,
        "import_status": import_status,
        "may_change": _may_change(request),
        "upload_form": upload_form or UploadForm(),
        "paste_form": paste_form or PasteForm(),
        "upload_limit": importing.max_upload_bytes(),
    }
    return render(request, "campaigns/target_lists/detail.html", context, status=status)


@can_send
@require_http_methods(["GET", "POST"])
def target_list_delete(request, pk: int):
    target_list = get_object_or_404(TargetList, pk=pk)
    used_by = target_list.campaigns.count()
    if request.method == "POST":
        details = {"targets": target_list.target_count}
        if not delete_unless_used(
            target_list, "target_list.delete", request=request, details=details
        ):
            messages.error(request, _refused(used_by or 1))
            return redirect("target-list-detail", pk=pk)
        messages.success(request, _("Target list “%(name)s” deleted.") % {"name": target_list})
        return redirect("target-list-list")
    context = {"target_list": target_list, "used_by": used_by, "refused": _refused(used_by)}
    return render(request, "campaigns/target_lists/delete.html", context)


def _refused(used_by: int) -> str:
    return ngettext(
        "This list cannot be deleted while %(count)d campaign uses it. "
        "Delete or change that campaign first.",
        "This list cannot be deleted while %(count)d campaigns use it. "
        "Delete or change those campaigns first.",
        used_by,
    ) % {"count": used_by}


# -- adding IDs ------------------------------------------------------------------------


@csrf_exempt  # the CSRF check reads the body, so it runs in _upload, after the size checks
@can_send
@require_POST
def target_list_upload(request, pk: int):
    """Refuse an oversized upload from its Content-Length, before Django reads the
    body; otherwise stream it to disk through a handler that stops at the limit."""
    target_list = get_object_or_404(TargetList, pk=pk)
    limit = importing.max_upload_bytes()
    length = _content_length(request)
    if length > limit + MULTIPART_OVERHEAD:
        return _too_big(request, target_list, length - MULTIPART_OVERHEAD)
    request.upload_handlers = [LimitedUploadHandler(request, limit)]
    return _upload(request, target_list)


@csrf_protect
def _upload(request, target_list: TargetList):
    handler = request.upload_handlers[0]
    form = UploadForm(request.POST, request.FILES)
    if handler.stopped:
        return _too_big(request, target_list, None)
    if not form.is_valid():
        return _detail(request, target_list, upload_form=form, status=400)
    upload, column = form.cleaned_data["file"], form.cleaned_data["column"]
    if upload.size > sync_import_bytes():
        return _enqueue(request, target_list, upload, column)
    try:
        result = importing.import_targets(target_list, upload, column=column, actor=request.user)
    except importing.ImportFileError as exc:
        form.add_error(None, str(exc))
        return _detail(request, target_list, upload_form=form, status=400)
    return _show_result(request, target_list, result, source=upload.name)


def _content_length(request) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _too_big(request, target_list: TargetList, size: int | None):
    """Refuse with the file's size when known (from Content-Length), else the limit."""
    try:
        importing.check_upload_size(size or 0)
        limit = filesizeformat(importing.max_upload_bytes())
        message = _("The file is larger than the limit of %(limit)s.") % {"limit": limit}
    except importing.ImportFileError as exc:
        message = str(exc)
    messages.error(request, _("Upload refused: %(reason)s") % {"reason": message})
    return redirect("target-list-detail", pk=target_list.pk)


@can_send
@require_POST
def target_list_paste(request, pk: int):
    target_list = get_object_or_404(TargetList, pk=pk)
    form = PasteForm(request.POST)
    if not form.is_valid():
        return _detail(request, target_list, paste_form=form, status=400)
    result = importing.import_text(target_list, form.cleaned_data["text"], actor=request.user)
    return _show_result(request, target_list, result, source=_("pasted IDs"))


def _show_result(request, target_list: TargetList, result: importing.ImportResult, *, source):
    """Redirect to the list page showing this import's outcome (kept in Redis)."""
    url = reverse("target-list-detail", args=[target_list.pk])
    try:
        status = ImportStatus.begin(target_list.pk, source=source)
        status.finish(result)
    except redis.RedisError as exc:
        log.warning("could not keep the import outcome for list %s: %s", target_list.pk, exc)
        messages.success(request, _summary(result))
        return redirect(url)
    return redirect(f"{url}?import={status.key}")


def _summary(result: importing.ImportResult) -> str:
    return _(
        "Import finished: %(added)d added, %(dup)d duplicates in the file, "
        "%(old)d already in the list, %(invalid)d invalid rows."
    ) % {
        "added": result.added,
        "dup": result.duplicates_in_file,
        "old": result.already_in_list,
        "invalid": result.invalid,
    }


def _enqueue(request, target_list: TargetList, upload, column: str | None):
    """Hand the upload to a background import job and show its progress."""
    try:
        status = importing.queue_file_import(
            target_list,
            upload.temporary_file_path(),
            source=upload.name,
            size=upload.size,
            column=column,
            user=request.user,
        )
    except redis.RedisError as exc:
        log.warning("could not queue an import for list %s: %s", target_list.pk, exc)
        messages.error(request, _("The import could not be queued; try again in a minute."))
        return redirect("target-list-detail", pk=target_list.pk)
    messages.info(request, _("The file is being imported in the background."))
    url = reverse("target-list-detail", args=[target_list.pk])
    return redirect(f"{url}?import={status.key}")


@can_read
@require_GET
def target_list_import_status(request, pk: int, key: str):
    """htmx: the import's progress bar (polling every second) or, when done, its outcome."""
    target_list = get_object_or_404(TargetList, pk=pk)
    status = ImportStatus.load(key, target_list.pk)
    if status is None:
        raise Http404(_("No such import (outcomes are kept for a day)."))
    if status["done"]:
        target_list.refresh_from_db(fields=["target_count"])
    context = {"target_list": target_list, "import_status": status, "oob": bool(request.htmx)}
    return render(request, "campaigns/target_lists/_import_status.html", context)


@can_read
@require_GET
def target_list_errors(request, pk: int):
    """The last import's invalid rows as CSV (values made formula-safe by importing)."""
    target_list = get_object_or_404(TargetList, pk=pk)
    report = ImportStatus.error_report(target_list.pk)
    if report is None:
        messages.info(
            request,
            _(
                "There is no error report: the last import had no invalid rows, "
                "or it was more than a day ago."
            ),
        )
        return redirect("target-list-detail", pk=pk)
    response = HttpResponse(report, content_type="text/csv; charset=utf-8")
    filename = f"target-list-{target_list.pk}-invalid-rows.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


urlpatterns = [
    path("", target_list_list, name="target-list-list"),
    path("new/", target_list_create, name="target-list-create"),
    path("<int:pk>/", target_list_detail, name="target-list-detail"),
    path("<int:pk>/delete/", target_list_delete, name="target-list-delete"),
    path("<int:pk>/upload/", target_list_upload, name="target-list-upload"),
    path("<int:pk>/paste/", target_list_paste, name="target-list-paste"),
    path(
        "<int:pk>/imports/<slug:key>/",
        target_list_import_status,
        name="target-list-import-status",
    ),
    path("<int:pk>/errors.csv", target_list_errors, name="target-list-errors"),
]
