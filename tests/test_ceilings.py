"""Id ceilings (campaigns/ceilings.py): every writer of a delivery's dates records one, so
the history's "until <day>" pages walk back from a bound and still list every row dated
before the day's end. The pages are checked against a plain date filter, rows written by
the real pipeline (planning, sending, settling, cancelling) and by migration 0021."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import ceilings, lifecycle, planning, queueing
from campaigns.models import Delivery, IdCeiling, Run
from campaigns.sending import settling
from tests.pipeline_helpers import check_invariants, drain, make_campaign, make_list
from tests.test_migrations import latest, migrate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_pipeline(settings, redis_conn):
    settings.PUSH_BACKOFF_BASE = 0.01
    settings.PUSH_BACKOFF_MAX = 0.05
    settings.PUSH_CONCURRENCY = 4
    settings.PUSH_PLAN_CHUNK = 20  # several plan chunks, so several ceilings a run


def page_ids(client, query: dict) -> list[int]:
    """Every page of the history for `query`, by following the "before" cursor."""
    ids, before = [], None
    while True:
        response = client.get("/history/", {**query, **({"before": before} if before else {})})
        assert response.status_code == 200
        rows = [row.pk for row, *_rest in response.context["rows"]]
        ids += rows
        if len(rows) < 50:
            return ids
        before = rows[-1]


def test_a_ceiling_is_the_highest_id_recorded_for_an_earlier_hour():
    t = datetime(2026, 3, 1, 10, 20, tzinfo=UTC)
    ceilings.record(ceilings.FINISHED, t, 10)
    ceilings.record(ceilings.FINISHED, t + timedelta(minutes=5), 7)  # same hour, lower
    ceilings.record(ceilings.FINISHED, t + timedelta(hours=2), 5)  # later, lower ids
    ceilings.record(ceilings.PLANNED, t, 99)  # another kind
    ceilings.record(ceilings.FINISHED, None, 1000)  # nothing was written
    assert IdCeiling.objects.filter(kind="finished").count() == 2
    assert ceilings.ceiling(ceilings.FINISHED, t.replace(minute=0)) is None
    assert ceilings.ceiling(ceilings.FINISHED, t) == 10  # the hour 10:00 is before 10:20
    assert ceilings.ceiling(ceilings.FINISHED, t + timedelta(days=1)) == 10
    assert ceilings.ceiling(ceilings.PLANNED, t + timedelta(days=1)) == 99


def assert_until_pages_are_exact(client, count: int) -> None:
    """On either date field, "until today" lists every delivery newest first, as a plain
    query does, and "until yesterday" none; no delivery lies above its ceiling."""
    assert ceilings.uncovered(ceilings.FINISHED) == []
    assert ceilings.uncovered(ceilings.PLANNED) == []
    today = timezone.localdate()
    everything = list(Delivery.objects.order_by("-id").values_list("pk", flat=True))
    assert len(everything) == count
    for field in ("finished", "created"):
        assert page_ids(client, {"date_field": field, "date_to": str(today)}) == everything
        yesterday = str(today - timedelta(days=1))
        assert page_ids(client, {"date_field": field, "date_to": yesterday}) == []


def test_until_pages_list_every_row_the_pipeline_wrote_before_the_day(
    client, auditor, credential, template, sandbox, marketer, monkeypatch
):
    """Two campaigns sent and settled through the pipeline, the older settled last; one
    cancelled before it sent. "Until today" on either date field lists exactly what a
    plain date filter finds; "until yesterday" lists nothing."""
    first = make_campaign(credential, template, make_list(70, "a"), task_name="First")
    second = make_campaign(credential, template, make_list(45, "b"), task_name="Second")
    third = make_campaign(credential, template, make_list(30, "c"), task_name="Third")
    held: list[int] = []
    monkeypatch.setattr(queueing, "settle_later", held.append)  # by hand, the older last
    for campaign in (first, second):
        lifecycle.launch(campaign, marketer)
        drain()
    for run_id in sorted(held, reverse=True):
        settling.settle_run(run_id)
    client.force_login(auditor)
    assert_until_pages_are_exact(client, 115)  # settled rows: their ceilings from settling

    run = lifecycle.launch(third, marketer)
    planning.plan(run.pk)  # planned, not sent: the cancel ends its deliveries
    lifecycle.cancel(third, marketer)
    drain()
    settling.settle_run(held[-1])  # nothing left to copy: the cancel wrote its rows
    assert Run.objects.filter(settled_at__isnull=True).count() == 0
    assert Delivery.objects.filter(status="cancelled").count() == 30
    assert_until_pages_are_exact(client, 145)
    today = str(timezone.localdate())
    cancelled = page_ids(client, {"date_to": today, "status": "cancelled"})
    assert cancelled == list(
        Delivery.objects.filter(status="cancelled").order_by("-id").values_list("pk", flat=True)
    )
    for campaign in (first, second, third):
        check_invariants(campaign, sandbox.records())


def test_an_unsettled_run_is_in_its_until_page(
    client, auditor, credential, template, sandbox, marketer, monkeypatch
):
    """Deliveries not settled yet have no time of their own: the page reads their batch's
    and bounds the walk by the run's newest id."""
    campaign = make_campaign(credential, template, make_list(60), task_name="Open")
    monkeypatch.setattr(queueing, "settle_later", lambda run_id: None)
    lifecycle.launch(campaign, marketer)
    drain()
    assert Run.objects.get(campaign=campaign).settled_at is None
    assert not IdCeiling.objects.filter(kind="finished").exists()  # nothing settled
    client.force_login(auditor)
    ids = page_ids(client, {"date_to": str(timezone.localdate())})
    assert ids == list(Delivery.objects.order_by("-id").values_list("pk", flat=True))
    assert len(ids) == 60


def test_migration_0021_records_the_ceilings_of_rows_written_before_it():
    """Rows written at 0020 (no ceilings yet) are covered once 0021 has run."""
    try:
        apps = migrate([("campaigns", "0020_unused_indexes")])
        assert "campaigns_idceiling" not in connection.introspection.table_names()
        user = apps.get_model("auth", "User").objects.create(username="old")
        credential = apps.get_model("campaigns", "Credential").objects.create(
            name="Old",
            app_id="ONEX570DA89211721",
            workspace_id="default",
            access_key_id="LTAIold",
            secret_ciphertext="x",
        )
        tpl = apps.get_model("campaigns", "MessageTemplate").objects.create(
            app_id="ONEX570DA89211721", name="old_tpl", title="t", body="b"
        )
        target_list = apps.get_model("campaigns", "TargetList").objects.create(
            name="Old", delivery_type=3
        )
        campaign = apps.get_model("campaigns", "Campaign").objects.create(
            task_name="Old",
            credential=credential,
            template=tpl,
            target_list=target_list,
            created_by=user,
        )
        run = apps.get_model("campaigns", "Run").objects.create(campaign=campaign, number=1)
        batch_model = apps.get_model("campaigns", "Batch")
        delivery_model = apps.get_model("campaigns", "Delivery")
        planned = datetime(2025, 5, 1, 8, 30, tzinfo=UTC)
        for seq in range(3):
            batch = batch_model.objects.create(
                run=run, campaign=campaign, seq=seq, status="sent", target_count=2
            )
            batch_model.objects.filter(pk=batch.pk).update(created_at=planned)
            for n in range(2):
                delivery_model.objects.create(
                    run=run,
                    batch=batch,
                    target_id=f"u{seq}{n}",
                    msg_key=f"old{seq}{n}",
                    status="sent",
                    finished_at=planned + timedelta(hours=seq),
                )
    finally:
        migrate(latest())
    assert ceilings.uncovered(ceilings.FINISHED) == []
    assert ceilings.uncovered(ceilings.PLANNED) == []
    newest = Delivery.objects.order_by("-id").values_list("pk", flat=True).first()
    assert ceilings.ceiling(ceilings.FINISHED, planned + timedelta(hours=3)) == newest
    assert ceilings.ceiling(ceilings.PLANNED, planned + timedelta(minutes=31)) == newest
    assert ceilings.ceiling(ceilings.FINISHED, planned.replace(minute=0)) is None
