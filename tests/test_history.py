"""Send history: an auditor finds who got what, when, under which msgKey and RequestId,
and who launched it; batch pages show every call; CSV export streams the same rows."""

from __future__ import annotations

import codecs
import csv
import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import history, idbounds, lifecycle
from campaigns.csvio import csv_lines, neutralise
from campaigns.forms.history import HistoryFilterForm
from campaigns.models import Attempt, AuditEvent, Batch, Campaign, Delivery, Run
from tests.conftest import SANDBOX_SECRET
from tests.pipeline_helpers import drain, make_campaign

SHANGHAI = ZoneInfo("Asia/Shanghai")


def make_ledger(campaign: Campaign, count: int, *, launched_by=None, run_number=1, **fields):
    """`count` finished deliveries of one closed and settled run, in batches of 10,
    written directly."""
    now = timezone.now()
    run = Run.objects.create(
        campaign=campaign,
        number=run_number,
        launched_by=launched_by,
        status="completed",
        finished_at=now,
        settled_at=now,
    )
    deliveries = []
    for seq in range((count + 9) // 10):
        size = min(10, count - seq * 10)
        batch = Batch.objects.create(
            run=run,
            campaign=campaign,
            seq=seq,
            status="sent",
            target_count=size,
            request_id=f"REQ-{run.pk}-{seq}",
            result_code="OK",
            finished_at=now,
        )
        for n in range(size):
            ref = seq * 10 + n
            deliveries.append(
                Delivery(
                    run=run,
                    batch=batch,
                    target_id=f"t{ref:05d}",
                    msg_key=f"pc{campaign.pk}r{run_number}n{ref}",
                    status="sent",
                    result_code="OK",
                    finished_at=now,
                    **fields,
                )
            )
    Delivery.objects.bulk_create(deliveries)
    idbounds.rebuild()  # rows written directly: their date bounds, as a writer records them
    return run


def rows_of(response) -> list[Delivery]:
    return [delivery for delivery, *_rest in response.context["rows"]]


ID_READ = 'SELECT "campaigns_delivery"."id" AS "pk" FROM "campaigns_delivery"'


def delivery_reads(queries) -> tuple[list[str], list[str]]:
    """The captured reads of the delivery table, split into (ids alone, rows by id)."""
    sql = [q["sql"] for q in queries.captured_queries if 'FROM "campaigns_delivery"' in q["sql"]]
    ids = [q for q in sql if q.startswith(ID_READ)]
    return ids, [q for q in sql if q not in ids]


def export_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


# -- a real send, then finding it ---------------------------------------------------------


@pytest.fixture
def sent(credential, template, target_list, sandbox, marketer, redis_conn, settings):
    settings.PUSH_BACKOFF_BASE = 0.01
    settings.PUSH_JOB_SECONDS = 5
    campaign = make_campaign(credential, template, target_list, task_name="Spring sale")
    lifecycle.launch(campaign, marketer)
    drain()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    return campaign


@pytest.mark.django_db(transaction=True)
def test_auditor_finds_who_got_a_campaign_when_and_under_which_keys(client, auditor, sent):
    client.force_login(auditor)
    response = client.get("/history/", {"target_id": "user-007"})
    assert response.status_code == 200
    (delivery,) = rows_of(response)
    assert delivery.status == Delivery.Status.SENT
    page = response.content.decode()
    for text in (
        delivery.msg_key,
        delivery.batch.request_id,
        "Spring sale",
        "mark",
        f"/campaigns/{sent.pk}/",
        f"/history/batches/{delivery.batch_id}/",
    ):
        assert text in page
    assert SANDBOX_SECRET not in page


@pytest.mark.django_db(transaction=True)
def test_every_filter_is_an_exact_match(client, auditor, marketer, sent):
    client.force_login(auditor)
    delivery = Delivery.objects.get(target_id="user-003")
    batch_size = delivery.batch.target_count
    cases = {
        "msg_key": (delivery.msg_key, 1),
        "request_id": (delivery.batch.request_id, batch_size),
        "result_code": (delivery.result_code, 25),
        "status": ("sent", 25),
        "launched_by": ("mark", 25),
        "campaign": (str(sent.pk), 25),
        "task_name": ("Spring sale", 25),
    }
    for name, (value, expected) in cases.items():
        response = client.get("/history/", {name: value})
        assert len(rows_of(response)) == expected, name
    for name, value in {
        "target_id": "user-00",
        "task_name": "Spring",
        "launched_by": "mar",
        "msg_key": delivery.msg_key[:-1],
        "status": "failed",
    }.items():
        assert rows_of(client.get("/history/", {name: value})) == [], name


@pytest.mark.django_db(transaction=True)
def test_request_id_of_an_earlier_attempt_finds_its_batch(client, auditor, sent):
    client.force_login(auditor)
    batch = Batch.objects.filter(campaign=sent).first()
    attempt = batch.attempt_log.get()
    Attempt.objects.create(
        batch=batch,
        number=2,
        lease_token=9,
        started_at=timezone.now(),
        request_id="EARLIER-TRANSIENT-1",
        outcome="transient",
    )
    assert attempt.request_id == batch.request_id
    rows = rows_of(client.get("/history/", {"request_id": "EARLIER-TRANSIENT-1"}))
    assert {d.batch_id for d in rows} == {batch.pk} and len(rows) == batch.target_count


@pytest.mark.django_db(transaction=True)
def test_batch_page_shows_every_call_with_params_and_answer_and_no_secret(client, auditor, sent):
    client.force_login(auditor)
    batch = Batch.objects.filter(campaign=sent).order_by("seq").first()
    attempt = batch.attempt_log.get()
    assert SANDBOX_SECRET not in json.dumps(attempt.request_params)
    assert "AccessKeySecret" not in json.dumps(attempt.request_params)
    page = client.get(f"/history/batches/{batch.pk}/").content.decode()
    assert batch.request_id in page and batch.result_code in page
    for delivery in batch.deliveries.all():
        assert delivery.target_id in page and delivery.msg_key in page
    # parameters and the answer, pretty-printed (escaped quotes: autoescape on)
    assert "&quot;TemplateName&quot;: &quot;welcome_tpl&quot;" in page
    assert "&quot;RequestId&quot;: &quot;" + batch.request_id in page
    assert SANDBOX_SECRET not in page


@pytest.mark.django_db
def test_batch_page_escapes_an_answer_that_is_not_json(
    client, auditor, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list)
    run = make_ledger(campaign, 3)
    batch = run.batches.get()
    Attempt.objects.create(
        batch=batch,
        number=1,
        lease_token=1,
        started_at=timezone.now(),
        outcome="transient",
        http_status=502,
        response_body="<html><script>alert(1)</script></html>",
        request_params={"Note": "<b>x</b>"},
    )
    client.force_login(auditor)
    page = client.get(f"/history/batches/{batch.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "not JSON, shown as received" in page


# -- paging without counting ------------------------------------------------------------


@pytest.mark.django_db
def test_keyset_pages_of_fifty_newest_first_without_counting(
    client, auditor, marketer, credential, template, target_list
):
    campaign = make_campaign(credential, template, target_list)
    make_ledger(campaign, 120, launched_by=marketer)
    client.force_login(auditor)
    seen = []
    url, params = "/history/", {"launched_by": "mark"}
    with CaptureQueriesContext(connection) as queries:
        for _page in range(5):
            response = client.get(url, params)
            rows = rows_of(response)
            seen.append(len(rows))
            ids = [d.pk for d in rows]
            assert ids == sorted(ids, reverse=True)
            if not response.context["next_query"]:
                break
            url, params = "/history/?" + response.context["next_query"], None
    assert seen == [50, 50, 20]
    assert "launched_by=mark" in url  # the filters follow the pages
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


@pytest.mark.django_db
def test_dates_are_local_days_compared_in_utc(
    client, auditor, credential, template, target_list, settings
):
    settings.TIME_ZONE = "Asia/Shanghai"
    campaign = make_campaign(credential, template, target_list)
    make_ledger(campaign, 3)
    late = datetime(2024, 3, 1, 23, 30, tzinfo=SHANGHAI)  # 15:30 UTC on the 1st
    after_midnight = datetime(2024, 3, 2, 0, 10, tzinfo=SHANGHAI)  # 16:10 UTC on the 1st
    first, second, _third = Delivery.objects.order_by("id")
    Delivery.objects.filter(pk=first.pk).update(finished_at=late)
    Delivery.objects.filter(pk=second.pk).update(finished_at=after_midnight)
    idbounds.rebuild()
    client.force_login(auditor)

    def found(**dates):
        return {d.pk for d in rows_of(client.get("/history/", dates))}

    assert found(date_from="2024-03-01", date_to="2024-03-01") == {first.pk}
    assert found(date_from="2024-03-02", date_to="2024-03-02") == {second.pk}
    assert found(date_to="2024-02-29") == set()
    response = client.get("/history/", {"date_from": "2024-03-02", "date_to": "2024-03-01"})
    assert response.context["form"].errors["date_to"]


@pytest.mark.django_db
def test_history_is_for_readers_only(client, django_user_model, auditor, marketer, admin_user):
    assert client.get("/history/").status_code == 302  # to the login page
    nobody = django_user_model.objects.create_user("nobody", password="pw-nobody-123")
    client.force_login(nobody)
    assert client.get("/history/").status_code == 403
    assert client.get("/history/export.csv").status_code == 403
    for user in (auditor, marketer, admin_user):
        client.force_login(user)
        page = client.get("/history/")
        assert page.status_code == 200
        assert 'href="/history/"' in page.content.decode()  # the nav link


# -- export ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_streams_every_matching_row_in_chunks_and_is_audited(
    client, auditor, marketer, credential, template, target_list, monkeypatch
):
    monkeypatch.setattr(history, "EXPORT_CHUNK", 7)
    campaign = make_campaign(credential, template, target_list, task_name="=HYPERLINK(1)")
    make_ledger(campaign, 30, launched_by=marketer)
    client.force_login(auditor)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/history/export.csv", {"launched_by": "mark", "status": "sent"})
        assert response.streaming
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"].startswith("attachment; filename=")
        rows = export_rows(response)
    header, body = rows[0], rows[1:]
    assert header[:6] == ["Finished", "Campaign", "Campaign ID", "Run", "Target ID", "msgKey"]
    assert len(body) == 30
    assert [row[5] for row in body] == list(
        Delivery.objects.order_by("-id").values_list("msg_key", flat=True)
    )
    assert {row[1] for row in body} == {"'=HYPERLINK(1)"}  # formula neutralised
    assert {row[9] for row in body} == {"mark"}
    # 7 + 7 + 7 + 7 + 2, never all at once: each chunk's ids alone, then its rows by id
    id_reads, row_reads = delivery_reads(queries)
    assert len(id_reads) == 5 and all("LIMIT 7" in sql for sql in id_reads)
    assert len(row_reads) == 5
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    event = AuditEvent.objects.get(action="history.export")
    assert event.actor == auditor
    assert event.details == {"filters": {"launched_by": "mark", "status": "sent"}}


@pytest.mark.django_db
def test_export_refuses_invalid_filters_without_auditing(client, auditor):
    client.force_login(auditor)
    response = client.get("/history/export.csv", {"date_from": "yesterday"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="history.export").exists()


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2", "'-2"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
        (42, "42"),
    ],
)
def test_neutralise_prefixes_formula_starts(value, cell):
    assert neutralise(value) == cell


def test_csv_lines_start_with_a_bom_and_neutralise_every_cell():
    lines = list(csv_lines(["=h"], [["@x", 'say "hi"'], ["ok", None]]))
    assert lines[0] == "\ufeff'=h\r\n"
    assert lines[1] == '\'@x,"say ""hi"""\r\n'
    assert lines[2] == "ok,\r\n"


# -- date filters at scale: ids first, same keyset ------------------------------------------


def all_pages(client, params) -> tuple[list[int], list[str]]:
    """The ids of every page of /history/ for `params`, following next links, and the
    SQL of every query that read the delivery table."""
    url, ids, sql = "/history/", [], []
    with CaptureQueriesContext(connection) as queries:
        while url:
            response = client.get(url, params)
            assert response.status_code == 200
            ids.append([d.pk for d in rows_of(response)])
            next_query = response.context["next_query"]
            url, params = (f"/history/?{next_query}" if next_query else None), None
    sql = [q["sql"] for q in queries.captured_queries if 'FROM "campaigns_delivery"' in q["sql"]]
    return ids, sql


@pytest.fixture
def dated_ledger(credential, template, target_list, marketer):
    """Two campaigns whose runs interleave in id order, their deliveries finished on
    1, 2 or 3 March (local days) in turn, and a few not finished."""
    spring = make_campaign(credential, template, target_list, task_name="Spring")
    autumn = make_campaign(credential, template, target_list, task_name="Autumn")
    make_ledger(spring, 90, launched_by=marketer, run_number=1)
    make_ledger(autumn, 40, launched_by=marketer)
    make_ledger(spring, 90, launched_by=marketer, run_number=2)
    days = [datetime(2024, 3, d, 12, tzinfo=timezone.get_default_timezone()) for d in (1, 2, 3)]
    for n, pk in enumerate(Delivery.objects.order_by("id").values_list("pk", flat=True)):
        finished = None if n % 17 == 0 else days[n % 3]
        Delivery.objects.filter(pk=pk).update(finished_at=finished)
    idbounds.rebuild()
    return spring, autumn


@pytest.mark.django_db
def test_campaign_and_day_pages_are_exact_newest_first_across_pages_without_count(
    client, auditor, dated_ledger
):
    spring, _autumn = dated_ledger
    day = datetime(2024, 3, 2, 12, tzinfo=timezone.get_default_timezone())
    expected = list(
        Delivery.objects.filter(run__campaign=spring, finished_at=day)
        .order_by("-id")
        .values_list("pk", flat=True)
    )
    assert 50 < len(expected) < 100  # a page boundary inside the matches
    client.force_login(auditor)
    query = {"campaign": spring.pk, "date_from": "2024-03-02", "date_to": "2024-03-02"}
    pages, sql = all_pages(client, query)
    assert [len(page) for page in pages] == [50, len(expected) - 50]
    assert pages[0] + pages[1] == expected
    assert not [q for q in sql if "COUNT(" in q.upper()]
    # the LIMITed read takes ids alone (no joined rows to sort); the rows come by id
    limited = [q for q in sql if "LIMIT" in q.upper()]
    assert len(limited) == 2 and not [q for q in limited if "JOIN" in q.upper()]
    # the cursor is the last id shown, as without a date filter
    second = client.get("/history/", {**query, "before": pages[0][-1]})
    assert [d.pk for d in rows_of(second)] == pages[1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"date_from": "2024-03-01", "date_to": "2024-03-01"},
        {"date_from": "2024-03-02"},
        {"date_to": "2024-03-02", "task_name": "Spring"},
        {"date_from": "2024-03-03", "campaign": "spring"},
        {"date_from": "2024-03-01", "date_to": "2024-03-02", "status": "sent"},
        {"date_field": "created", "date_from": "2000-01-01", "launched_by": "mark"},
    ],
)
def test_every_date_filter_pages_the_same_rows_as_one_query(client, auditor, dated_ledger, query):
    spring, _autumn = dated_ledger
    query = {k: (str(spring.pk) if v == "spring" else v) for k, v in query.items()}
    form = HistoryFilterForm(query)
    assert form.is_valid(), form.errors
    expected = list(form.query().matching_ids())  # unsliced: one plain query
    assert len(expected) > 50
    client.force_login(auditor)
    pages, _sql = all_pages(client, query)
    assert all(len(page) == 50 for page in pages[:-1])
    assert [pk for page in pages for pk in page] == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"date_from": "2024-03-02", "date_to": "2024-03-02"},
        {"date_to": "2024-03-01"},
        {"date_from": "2024-03-02", "campaign": "spring"},
        {"date_from": "2024-03-01", "date_to": "2024-03-02", "launched_by": "mark"},
        {"date_from": "2024-03-03", "date_to": "2024-03-03", "status": "sent"},
    ],
)
def test_a_planned_time_window_pages_the_deliveries_of_the_batches_planned_then(
    client, auditor, dated_ledger, query
):
    spring, _autumn = dated_ledger
    days = [datetime(2024, 3, d, 9, tzinfo=timezone.get_default_timezone()) for d in (1, 2, 3)]
    for n, pk in enumerate(Batch.objects.order_by("id").values_list("pk", flat=True)):
        Batch.objects.filter(pk=pk).update(created_at=days[n % 3])
    idbounds.rebuild()
    query = {k: (str(spring.pk) if v == "spring" else v) for k, v in query.items()}
    start, end = query.get("date_from"), query.get("date_to")
    expected = Delivery.objects.all()
    if start:
        expected = expected.filter(batch__created_at__date__gte=start)
    if end:
        expected = expected.filter(batch__created_at__date__lte=end)
    if "campaign" in query:
        expected = expected.filter(run__campaign=spring)
    if "status" in query:
        expected = expected.filter(status=query["status"])
    expected = list(expected.order_by("-id").values_list("pk", flat=True))
    assert len(expected) > 50  # more than one page
    client.force_login(auditor)
    pages, _sql = all_pages(client, {**query, "date_field": "created"})
    assert [pk for page in pages for pk in page] == expected


@pytest.mark.django_db
def test_export_of_a_campaign_day_streams_every_matching_row(
    client, auditor, dated_ledger, monkeypatch
):
    monkeypatch.setattr(history, "EXPORT_CHUNK", 7)
    spring, _autumn = dated_ledger
    day = datetime(2024, 3, 1, 12, tzinfo=timezone.get_default_timezone())
    expected = list(
        Delivery.objects.filter(run__campaign=spring, finished_at=day)
        .order_by("-id")
        .values_list("msg_key", flat=True)
    )
    client.force_login(auditor)
    response = client.get(
        "/history/export.csv",
        {"campaign": spring.pk, "date_from": "2024-03-01", "date_to": "2024-03-01"},
    )
    body = export_rows(response)[1:]
    assert [row[5] for row in body] == expected
    assert {row[1] for row in body} == {"Spring"}


# -- the form's public reads: page() and iter_rows() ------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {},
        {"target_id": "t00003"},
        {"launched_by": "mark", "status": "sent"},
        {"campaign": "spring", "date_from": "2024-03-02", "date_to": "2024-03-02"},
        {"date_field": "created", "date_from": "2000-01-01"},
    ],
)
def test_a_page_reads_its_ids_alone_then_its_rows_by_id(dated_ledger, query):
    spring, _autumn = dated_ledger
    query = {k: (str(spring.pk) if v == "spring" else v) for k, v in query.items()}
    form = HistoryFilterForm(query or None)
    expected = list(form.query().matching_ids()[:5])
    assert expected
    with CaptureQueriesContext(connection) as queries:
        page = form.query().page(size=5)
    assert [d.pk for d in page] == expected
    id_reads, row_reads = delivery_reads(queries)
    assert len(id_reads) == 1 and "LIMIT 5" in id_reads[0]
    assert len(row_reads) == 1 and "JOIN" in row_reads[0] and "LIMIT" not in row_reads[0]
    with CaptureQueriesContext(connection) as queries:
        for delivery in page:  # everything a history row shows came with the page
            assert delivery.batch.request_id and delivery.run.campaign.task_name
            launcher = delivery.run.launched_by or delivery.run.campaign.launched_by
            assert launcher is not None
    assert not queries.captured_queries


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"launched_by": "mark"},
        {"campaign": "spring", "date_from": "2024-03-01", "date_to": "2024-03-02"},
        {"date_to": "2024-03-03"},
    ],
)
def test_pages_and_export_chunks_follow_the_same_keyset(dated_ledger, query):
    spring, _autumn = dated_ledger
    query = {k: (str(spring.pk) if v == "spring" else v) for k, v in query.items()}
    form = HistoryFilterForm(query)
    expected = list(form.query().matching_ids())
    assert len(expected) > 20
    pages, before = [], None
    while page := [d.pk for d in form.query().page(before=before, size=20)]:
        pages.append(page)
        before = page[-1]
    assert [pk for page in pages for pk in page] == expected
    assert all(len(page) == 20 for page in pages[:-1])
    for chunk in (7, 20, len(expected), len(expected) + 1):
        assert [d.pk for d in form.query().iter_rows(chunk=chunk)] == expected, chunk


@pytest.mark.django_db
def test_a_chunk_that_ends_the_matches_exactly_reads_one_empty_chunk_of_ids(dated_ledger):
    form = HistoryFilterForm({"launched_by": "mark"})
    total = len(list(form.query().matching_ids()))
    with CaptureQueriesContext(connection) as queries:
        assert len(list(form.query().iter_rows(chunk=total // 2))) == total == 2 * (total // 2)
    id_reads, row_reads = delivery_reads(queries)
    assert (len(id_reads), len(row_reads)) == (3, 2)  # the third finds no id: no row read


@pytest.mark.django_db
def test_invalid_filters_match_nothing_and_no_filter_matches_everything(dated_ledger):
    with CaptureQueriesContext(connection) as queries:
        assert HistoryFilterForm({"date_from": "yesterday"}).query().page() == []
        assert list(HistoryFilterForm({"status": "lost"}).query().iter_rows()) == []
    assert delivery_reads(queries) == ([], [])
    newest = list(Delivery.objects.order_by("-id").values_list("pk", flat=True)[:3])
    assert [d.pk for d in HistoryFilterForm().query().page(size=3)] == newest
    assert [d.pk for d in HistoryFilterForm({"before": ""}).query().page(size=3)] == newest
    assert [d.pk for d in HistoryFilterForm().query().page(before=newest[0], size=2)] == newest[1:]
