"""O(1) rows per call: a call writes its batch and its Attempt; the deliveries take their
batch's outcome in bulk once the run is closed (campaigns/sending/settling.py). Every
page, export, count and follow-up reads the right state before that, and after."""

from __future__ import annotations

import codecs
import csv
import io

import pytest

from campaigns import lifecycle, queueing
from campaigns.models import Batch, Campaign, Delivery, Run
from campaigns.sending import settling
from campaigns.sweeper import sweep
from tests.pipeline_helpers import check_invariants, drain, make_campaign, make_list, quick_pipeline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_pipeline(settings, redis_conn):
    quick_pipeline(settings, PUSH_JOB_SECONDS=5)


@pytest.fixture
def settle_job_lost(monkeypatch):
    """The settle job queued at close never runs (as if lost with Redis)."""
    monkeypatch.setattr(queueing, "settle_later", lambda run_id: None)


def raw(run: Run, status: str) -> int:
    """Deliveries whose own column says `status` (what settling writes)."""
    return Delivery.objects.filter(run=run, status=status).count()


def export(client, **query) -> list[list[str]]:
    response = client.get("/history/export.csv", query)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_a_closed_run_is_settled_by_the_job_queued_at_close(
    credential, template, sandbox, marketer
):
    campaign = make_campaign(credential, template, make_list(40))
    run = lifecycle.launch(campaign, marketer)
    drain()  # plan, send, then the settle job queued when the run closed
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED and run.settled_at is not None
    assert run.settled_at >= run.finished_at
    assert raw(run, Delivery.Status.SENT) == 40
    # every delivery took its own batch's RequestId-bearing outcome: code and time too
    for delivery in Delivery.objects.filter(run=run).select_related("batch"):
        assert delivery.result_code == delivery.batch.result_code != ""
        assert delivery.finished_at == delivery.batch.finished_at
    check_invariants(campaign, sandbox.records())


def test_before_settling_every_reader_asks_the_batch(
    client, auditor, credential, template, sandbox, marketer, settle_job_lost
):
    campaign = make_campaign(credential, template, make_list(25), task_name="Unsettled")
    run = lifecycle.launch(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert run.status == Run.Status.COMPLETED and run.settled_at is None
    # the calls wrote batches and attempts only: the deliveries' own rows are untouched
    assert raw(run, Delivery.Status.PENDING) == 25
    assert Delivery.objects.filter(run=run).in_state(Delivery.Status.SENT).count() == 25
    assert (run.counts().sent, run.counts().pending) == (25, 0)
    check_invariants(campaign, sandbox.records())

    client.force_login(auditor)
    page = client.get("/history/", {"campaign": campaign.pk, "status": "sent"})
    rows = [row for row, *_rest in page.context["rows"]]
    assert len(rows) == 25 and all(row.outcome_status == "sent" for row in rows)
    html = page.content.decode()
    assert html.count('<td class="text-nowrap">Sent</td>') == 25
    assert '<td class="text-nowrap">Pending' not in html
    code = Batch.objects.filter(run=run).values_list("result_code", flat=True).first()
    by_code = client.get("/history/", {"result_code": code})
    assert len(by_code.context["rows"]) == 25
    assert not client.get("/history/", {"status": "pending"}).context["rows"]
    rows = export(client, campaign=campaign.pk)
    header, body = rows[0], rows[1:]
    status = header.index("Status")
    assert len(body) == 25 and {row[status] for row in body} == {"Sent"}
    assert all(row[header.index("Finished")] for row in body)


def test_the_sweeper_settles_a_run_whose_settle_job_was_lost(
    credential, template, sandbox, marketer, settle_job_lost
):
    campaign = make_campaign(credential, template, make_list(30))
    run = lifecycle.launch(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert run.settled_at is None
    assert sweep().settled == 0  # closed under a minute ago: its job may still come
    Run.objects.filter(pk=run.pk).update(finished_at=run.finished_at.replace(year=2000))
    assert sweep().settled == 1
    run.refresh_from_db()
    assert run.settled_at is not None and raw(run, Delivery.Status.SENT) == 30
    assert settling.settle_run(run.pk) == 0  # idempotent: nothing left to copy


def test_retrying_failures_reads_the_source_run_settled(
    credential, template, sandbox, marketer, settings, settle_job_lost
):
    settings.PUSH_MAX_CONSECUTIVE_FAILURES = 100
    sandbox.configure(fail_code="3022")
    campaign = make_campaign(credential, template, make_list(20))
    run = lifecycle.launch(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert (run.status, run.failed, run.settled_at) == (Run.Status.FAILED, 20, None)
    assert raw(run, Delivery.Status.FAILED) == 0  # not settled yet
    sandbox.configure(fail_code=None)
    retry = lifecycle.retry_failed(Campaign.objects.get(pk=campaign.pk), marketer)
    drain()
    retry.refresh_from_db()
    run.refresh_from_db()
    assert run.settled_at is not None and raw(run, Delivery.Status.FAILED) == 20
    assert (retry.total, retry.sent) == (20, 20)
    check_invariants(campaign, sandbox.records())
