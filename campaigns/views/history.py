"""Send history: every delivery with its msgKey, outcome, RequestId and launcher; one
batch with every call's parameters and mPaaS's answer; CSV export of the same filters.

Pages are keyset-paginated on Delivery.id (newest first, `?before=<id>`) and never
count the table; the export walks the same keyset in chunks while it streams.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.roles import can_read
from campaigns import audit, csvio, doubts, history, paging
from campaigns.forms.history import HistoryFilterForm
from campaigns.models import Batch
from campaigns.mpaas.client import UNREADABLE_ANSWER

PAGE_SIZE = 50


@can_read
@require_GET
def history_list(request):
    form = HistoryFilterForm(request.GET or None)
    before = paging.cursor(request.GET.get("before"))
    rows = form.query().page(before=before, size=PAGE_SIZE + 1)  # one more: is there a next?
    filters = form.active_filters()
    twice = doubts.twice_for(rows[:PAGE_SIZE])
    next_query = None
    if len(rows) > PAGE_SIZE:
        next_query = urlencode({**filters, "before": rows[PAGE_SIZE - 1].pk})
    return render(
        request,
        "campaigns/history/list.html",
        {
            "form": form,
            "rows": [(row, history.launched_by(row), row.pk in twice) for row in rows[:PAGE_SIZE]],
            "next_query": next_query,
            "export_query": urlencode(filters),
            "first_page": before is None,
            "filtered": bool(filters),
        },
    )


@can_read
@require_GET
def history_export(request):
    form = HistoryFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(
            request,
            "campaigns/history/list.html",
            {
                "form": form,
                "rows": [],
                "first_page": True,
                "filtered": True,
            },
            status=400,
        )
    filters = form.active_filters()
    audit.record("history.export", request=request, details={"filters": filters})
    query = form.query()
    rows = history.export_rows(query.iter_rows(chunk=history.EXPORT_CHUNK), doubts.twice_for)
    filename = f"send-history-{timezone.localtime():%Y%m%d-%H%M%S}.csv"
    return csvio.streaming_csv_response(filename, history.export_header(), rows)


def _pretty(text: str) -> tuple[str, bool]:
    """(text, True) re-indented when it is JSON, else (text, False) as received."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True), True
    except (TypeError, ValueError):
        return text, False


@can_read
@require_GET
def history_batch(request, pk: int):
    batch = get_object_or_404(
        Batch.objects.select_related("run__launched_by", "campaign__launched_by"), pk=pk
    )
    attempts = []
    lost = doubts.lost_attempts(batch)
    for attempt in batch.attempt_log.order_by("number"):
        params = json.dumps(attempt.request_params, indent=2, ensure_ascii=False, sort_keys=True)
        body, is_json = _pretty(attempt.response_body)
        attempts.append(
            {
                "attempt": attempt,
                "params": params,
                "body": body,
                "is_json": is_json,
                "lost": attempt.pk in lost,
                "unreadable": attempt.result_code == UNREADABLE_ANSWER,
            }
        )
    launcher = batch.run.launched_by or batch.campaign.launched_by
    return render(
        request,
        "campaigns/history/batch.html",
        {
            "batch": batch,
            "launched_by": launcher.get_username() if launcher else "",
            "deliveries": batch.deliveries.order_by("id"),
            "attempts": attempts,
            "possibly_twice": batch.pk in doubts.twice_batches([batch.pk]),
        },
    )


urlpatterns = [
    path("", history_list, name="history-list"),
    path("export.csv", history_export, name="history-export"),
    path("batches/<int:pk>/", history_batch, name="history-batch"),
]
