"""Calls in doubt: unreadable answers (never a crash: ambiguous, audited, told in words),
attempts left unknown by a lost worker, and deliveries possibly pushed twice (same msgKey)
on the history list, the batch page, the CSV export and the campaign page."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from campaigns import lifecycle, planning, queueing, sweeper
from campaigns.models import Attempt, AuditEvent, Batch, Campaign, Credential, Delivery
from campaigns.mpaas.client import AMBIGUOUS, UNREADABLE_ANSWER, PushClient, PushError
from campaigns.sending import job
from campaigns.sending.recorder import RunLedger
from tests.pipeline_helpers import check_invariants, drain, make_campaign, make_list, quick_pipeline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_pipeline(settings, redis_conn):
    quick_pipeline(settings, PUSH_CONCURRENCY=2, PUSH_JOB_SECONDS=5, PUSH_PLAN_CHUNK=50)


class _Stub(BaseHTTPRequestHandler):
    body = b""

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


GARBAGE = {
    "not json": b"<html>502 Bad Gateway https://x.example/?AccessKeyId=LTAIabcdefgh</html>",
    "json list": b'[{"RequestId": "r-1"}]',
    "no PushResult": b'{"RequestId": "r-2", "ResultCode": "OK"}',
    "PushResult a string": b'{"RequestId": "r-3", "ResultCode": "OK", "PushResult": "yes"}',
    "Success missing": b'{"RequestId": "r-4", "PushResult": {"Data": "1"}}',
}


@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE)
def test_an_unreadable_push_answer_is_ambiguous_told_in_words_and_scrubbed(stub, body):
    _Stub.body = body
    credential = Credential(
        name="stub",
        app_id="APP",
        workspace_id="default",
        access_key_id="LTAIabcdefgh",
        endpoint=f"http://127.0.0.1:{stub.server_address[1]}",
    )
    credential.set_secret("s")
    with pytest.raises(PushError) as raised:
        PushClient(credential).push_template({"AppId": "APP", "TargetMsgkey": '{"u":"k"}'})
    error = raised.value
    assert (error.kind, error.code, error.http_status) == (AMBIGUOUS, UNREADABLE_ANSWER, 200)
    assert "could not be read" in error.message
    assert "LTAIabcdefgh" not in error.body and "x.example" not in error.body


def test_a_business_failure_without_push_result_is_still_a_failure(stub):
    _Stub.body = b'{"RequestId": "r", "ResultCode": "3022", "ResultMessage": "no template"}'
    credential = Credential(
        name="stub", app_id="A", workspace_id="w", access_key_id="k", endpoint=_url(stub)
    )
    credential.set_secret("s")
    with pytest.raises(PushError) as raised:
        PushClient(credential).push_template({"AppId": "A"})
    assert (raised.value.kind, raised.value.code) == ("permanent", "3022")


def _url(stub) -> str:
    return f"http://127.0.0.1:{stub.server_address[1]}"


def test_garbage_answers_end_as_needs_reconcile_audited_and_shown_never_a_500(
    client, auditor, credential, template, sandbox, marketer, settings
):
    settings.PUSH_MAX_ATTEMPTS = 1
    sandbox.configure(garbage_rate=1.0)
    campaign = make_campaign(credential, template, make_list(20))
    run = lifecycle.launch(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert (run.sent, run.failed) == (0, 20)
    batches = Batch.objects.filter(run=run)
    assert all(b.ambiguous and b.result_code == UNREADABLE_ANSWER for b in batches)
    kinds = {r["garbage"] for r in sandbox.records() if r["action"] == "PushTemplate"}
    assert kinds  # the sandbox answered garbage (which kinds depends on the seed)
    events = AuditEvent.objects.filter(action="batch.unreadable_answer")
    assert sorted(e.details["batch"] for e in events) == sorted(b.pk for b in batches)
    client.force_login(auditor)
    page = client.get(f"/campaigns/{campaign.pk}/")
    assert page.status_code == 200
    assert "2 calls got an answer from mPaaS that could not be read" in page.text
    batch_page = client.get(f"/history/batches/{batches[0].pk}/")
    assert batch_page.status_code == 200
    assert 'data-testid="attempt-unreadable"' in batch_page.text
    assert "Needs reconcile" in batch_page.text


def _ledger(run):
    return RunLedger(job.context_for(run.pk, queueing.Slot("send", 0)))


def test_a_lost_worker_then_a_resend_is_possibly_pushed_twice_everywhere(
    client, auditor, credential, template, sandbox, marketer
):
    campaign = make_campaign(credential, template, make_list(15))
    run = lifecycle.launch(campaign, marketer)
    planning.plan(run.pk)
    ledger = _ledger(run)
    claim = ledger.round([], 1)[0]
    job.call(ledger.ctx, claim)  # the call goes out and is accepted; the worker dies
    Batch.objects.filter(pk=claim.batch_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    sweeper.sweep()  # reclaimed as ambiguous, then sent again with the same msgKeys
    drain()
    campaign = Campaign.objects.get(pk=campaign.pk)
    assert campaign.status == Campaign.Status.COMPLETED
    lost = Attempt.objects.get(batch_id=claim.batch_id, number=1)
    assert lost.outcome == Attempt.Outcome.UNKNOWN
    twice = set(Delivery.objects.filter(batch_id=claim.batch_id).values_list("msg_key", flat=True))
    assert len(twice) == 10
    check_invariants(campaign, sandbox.records())

    client.force_login(auditor)
    page = client.get(f"/campaigns/{campaign.pk}/").text
    assert "10 deliveries possibly pushed twice, same msgKey" in page
    assert "1 call has an unknown outcome: its worker was lost" in page
    batch_page = client.get(f"/history/batches/{claim.batch_id}/").text
    assert 'data-testid="batch-possibly-twice"' in batch_page
    assert 'data-testid="attempt-lost"' in batch_page
    listing = client.get(f"/history/?campaign={campaign.pk}").text
    assert listing.count('data-testid="possibly-twice"') == 10
    export = client.get(f"/history/export.csv?campaign={campaign.pk}")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    column = rows[0].index("Possibly pushed twice")
    marked = {row[5] for row in rows[1:] if row[column]}
    assert marked == twice
    assert all(row[column] == "yes, same msgKey" for row in rows[1:] if row[5] in twice)


def test_a_clean_send_shows_no_doubts(client, auditor, credential, template, sandbox, marketer):
    campaign = make_campaign(credential, template, make_list(5))
    lifecycle.launch(campaign, marketer)
    drain()
    client.force_login(auditor)
    assert 'data-testid="campaign-doubts"' not in client.get(f"/campaigns/{campaign.pk}/").text
    assert 'data-testid="possibly-twice"' not in client.get("/history/").text
