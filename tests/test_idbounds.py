"""Id bounds (campaigns/idbounds.py): every writer of a delivery's dates records them, so
the history's date windows walk the primary key between two ids and still list every row
dated inside. The pages are checked against a plain date filter, on rows written by the
real pipeline (planning, sending, settling, cancelling) and by migration 0021."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import idbounds, lifecycle, planning, queueing
from campaigns.models import Delivery, IdBounds, Run
from campaigns.sending import settling
from tests.pipeline_helpers import check_invariants, drain, make_campaign, make_list, quick_pipeline
from tests.test_history import all_pages
from tests.test_migrations import latest, migrate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_pipeline(settings, redis_conn):
    # several plan chunks, so several bounds a run
    quick_pipeline(settings, PUSH_PLAN_CHUNK=20)


def page_ids(client, query: dict) -> list[int]:
    """The ids of every page of the history for `query`, following its next links."""
    pages, _sql = all_pages(client, query)
    return [pk for page in pages for pk in page]


def test_bounds_are_the_widest_ids_recorded_on_either_side_of_an_hour():
    t = datetime(2026, 3, 1, 10, 20, tzinfo=UTC)
    finished = idbounds.FINISHED
    idbounds.record(finished, t, t, 8, 10)
    idbounds.record(finished, t + timedelta(minutes=5), t + timedelta(minutes=6), 9, 9)
    # a write dated 10:50 to 12:10: its ceiling is keyed at 10:00, its floor at 12:00
    idbounds.record(finished, t + timedelta(minutes=30), t + timedelta(hours=1, minutes=50), 3, 12)
    idbounds.record(idbounds.PLANNED, t, t, 1, 99)  # another kind
    idbounds.record(finished, None, t, 1, 1000)  # nothing was written
    rows = {r.hour.hour: (r.min_id, r.max_id) for r in IdBounds.objects.filter(kind=finished)}
    assert rows == {10: (8, 12), 12: (3, None)}
    assert idbounds.ceiling(finished, t.replace(minute=0)) is None  # nothing before 10:00
    assert idbounds.ceiling(finished, t) == 12  # the hour 10:00 is before 10:20
    assert idbounds.floor(finished, t) == 3  # from 10:00 on: both rows
    assert idbounds.floor(finished, t + timedelta(hours=1)) == 3  # from 11:00: the 12:00 row
    assert idbounds.floor(finished, t + timedelta(hours=3)) is None  # nothing from 13:00
    assert idbounds.ceiling(idbounds.PLANNED, t + timedelta(days=1)) == 99


def assert_windows_are_exact(client, count: int) -> None:
    """On either date field, every window around today ("until", "since", the day, and
    the days before and after) lists exactly the deliveries a plain date filter finds,
    newest first; no delivery lies outside its bounds."""
    assert idbounds.uncovered(idbounds.FINISHED) == []
    assert idbounds.uncovered(idbounds.PLANNED) == []
    today = timezone.localdate()
    yesterday, tomorrow = str(today - timedelta(days=1)), str(today + timedelta(days=1))
    everything = list(Delivery.objects.order_by("-id").values_list("pk", flat=True))
    assert len(everything) == count
    for field in ("finished", "created"):
        for window, expected in (
            ({"date_to": str(today)}, everything),
            ({"date_from": str(today)}, everything),
            ({"date_from": str(today), "date_to": str(today)}, everything),
            ({"date_to": yesterday}, []),
            ({"date_from": tomorrow}, []),
            ({"date_from": yesterday, "date_to": yesterday}, []),
        ):
            assert page_ids(client, {"date_field": field, **window}) == expected, window


def test_date_windows_list_every_row_the_pipeline_wrote(
    client, auditor, credential, template, sandbox, marketer, monkeypatch
):
    """Two campaigns sent and settled through the pipeline, the older settled last; then
    one planned and cancelled before it sent. Every window lists exactly what a plain
    date filter finds."""
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
    assert_windows_are_exact(client, 115)  # settled rows: their bounds from settling

    run = lifecycle.launch(third, marketer)
    planning.plan(run.pk)  # planned, not sent: the cancel ends its deliveries
    lifecycle.cancel(third, marketer)
    drain()
    settling.settle_run(held[-1])  # nothing left to copy: the cancel wrote its rows
    assert Run.objects.filter(settled_at__isnull=True).count() == 0
    assert Delivery.objects.filter(status="cancelled").count() == 30
    assert_windows_are_exact(client, 145)
    today = str(timezone.localdate())
    cancelled = page_ids(client, {"date_to": today, "status": "cancelled"})
    assert cancelled == list(
        Delivery.objects.filter(status="cancelled").order_by("-id").values_list("pk", flat=True)
    )
    for campaign in (first, second, third):
        check_invariants(campaign, sandbox.records())


def test_an_unsettled_run_is_in_its_date_windows(
    client, auditor, credential, template, sandbox, marketer, monkeypatch
):
    """Deliveries not settled yet have no time of their own: the page reads their batch's
    and widens the walk's bounds to the run's ids."""
    campaign = make_campaign(credential, template, make_list(60), task_name="Open")
    monkeypatch.setattr(queueing, "settle_later", lambda run_id: None)
    lifecycle.launch(campaign, marketer)
    drain()
    assert Run.objects.get(campaign=campaign).settled_at is None
    assert not IdBounds.objects.filter(kind="finished").exists()  # nothing settled
    client.force_login(auditor)
    today = str(timezone.localdate())
    everything = list(Delivery.objects.order_by("-id").values_list("pk", flat=True))
    assert len(everything) == 60
    for window in (
        {"date_to": today},
        {"date_from": today},
        {"date_from": today, "date_to": today},
    ):
        assert page_ids(client, window) == everything, window
        assert page_ids(client, {**window, "status": "sent"}) == everything, window


def test_migration_0021_records_the_bounds_of_rows_written_before_it():
    """Rows written at 0020 (no bounds yet) are covered once 0021 has run."""
    try:
        apps = migrate([("campaigns", "0020_unused_indexes")])
        assert "campaigns_idbounds" not in connection.introspection.table_names()
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
    assert idbounds.uncovered(idbounds.FINISHED) == []
    assert idbounds.uncovered(idbounds.PLANNED) == []
    ids = list(Delivery.objects.order_by("id").values_list("pk", flat=True))
    assert idbounds.ceiling(idbounds.FINISHED, planned + timedelta(hours=3)) == ids[-1]
    # before 09:30: the hours 08:00 and 09:00, whose rows finished at 08:30 and 09:30
    assert idbounds.ceiling(idbounds.FINISHED, planned + timedelta(hours=1)) == ids[3]
    assert idbounds.ceiling(idbounds.FINISHED, planned + timedelta(minutes=30)) == ids[1]
    assert idbounds.floor(idbounds.FINISHED, planned + timedelta(hours=2)) == ids[4]
    assert idbounds.ceiling(idbounds.PLANNED, planned + timedelta(minutes=31)) == ids[-1]
    assert idbounds.floor(idbounds.PLANNED, planned) == ids[0]
    assert idbounds.ceiling(idbounds.FINISHED, planned.replace(minute=0)) is None
