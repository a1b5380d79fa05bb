"""Per-person values (PushMultiple) and recall (RevokePushMessage) through the real send
pipeline: Redis queue, real HTTP to the sandbox, one recorded outcome per delivery."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import importing, lifecycle, perperson, planning, recall
from campaigns.models import AuditEvent, Batch, Campaign, Delivery, Run, Target, TargetList
from campaigns.mpaas import wire
from campaigns.mpaas.strategy import StrategyError
from tests.pipeline_helpers import check_invariants, drain, make_campaign, quick_pipeline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_pipeline(settings, redis_conn):
    quick_pipeline(settings, PUSH_JOB_SECONDS=20)


def csv_list(rows: int, name: str = "people", *, blank_every: int = 0) -> TargetList:
    target_list = TargetList.objects.create(name=name, delivery_type=3)
    lines = ["user_id,first_name,code"]
    for n in range(rows):
        first = "" if blank_every and n % blank_every == 0 else f"Name{n}"
        lines.append(f"u{n:06d},{first},C{n}")
    data = ("\n".join(lines) + "\n").encode()
    importing.import_targets(target_list, io.BytesIO(data), column="user_id", chunk_size=5000)
    target_list.refresh_from_db()
    return target_list


def per_person(credential, template, target_list, marketer, **changes) -> Campaign:
    campaign = make_campaign(
        credential, template, target_list, template_values={"coupon": "FIXED"}, **changes
    )
    perperson.set_columns(campaign, {"name": "first_name"}, marketer)
    return campaign


def test_import_keeps_the_other_columns_per_target(db):
    target_list = csv_list(3)
    assert target_list.value_columns == ["first_name", "code"]
    assert target_list.target_count == 3
    assert Target.objects.get(target_id="u000002").values == {"first_name": "Name2", "code": "C2"}


def test_a_mapped_column_missing_from_the_file_refuses_it_and_changes_nothing(
    credential, template, marketer
):
    target_list = csv_list(2)
    per_person(credential, template, target_list, marketer)
    data = b"user_id,code\nu9,C9\n"
    with pytest.raises(importing.ImportFileError, match="first_name"):
        importing.import_targets(target_list, io.BytesIO(data), column="user_id")
    target_list.refresh_from_db()
    assert target_list.target_count == 2
    assert not Target.objects.filter(target_id="u9").exists()


def test_an_empty_mapped_value_is_a_per_row_import_error(credential, template, marketer):
    target_list = csv_list(2)
    per_person(credential, template, target_list, marketer)
    data = b"user_id,first_name,code\nu7,,C7\nu8,Eve,C8\n"
    result = importing.import_targets(target_list, io.BytesIO(data), column="user_id")
    assert result.added == 1
    assert result.errors == [(2, "no value in column “first_name”", "u7,,C7")]
    assert not Target.objects.filter(target_id="u7").exists()


def test_mapping_to_an_unknown_column_is_refused_and_changes_nothing(
    credential, template, marketer
):
    campaign = make_campaign(credential, template, csv_list(2))
    with pytest.raises(perperson.MappingError, match="no column “surname”"):
        perperson.set_columns(campaign, {"name": "surname"}, marketer)
    campaign.refresh_from_db()
    assert campaign.value_columns == {}


def test_launch_names_how_many_targets_lack_a_value(credential, template, marketer):
    target_list = TargetList.objects.create(name="gaps", delivery_type=3)
    importing.import_targets(
        target_list,
        io.BytesIO(b"user_id,first_name\nu1,Ann\nu2,\nu3,\n"),
        column="user_id",
    )
    campaign = per_person(credential, template, target_list, marketer)
    with pytest.raises(lifecycle.LaunchError, match="2 targets have no value for “name”"):
        lifecycle.launch(campaign, marketer)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert not campaign.runs.exists()


def test_a_batch_size_above_100_is_refused_at_launch(
    credential, template, marketer, sandbox, settings
):
    settings.PUSH_MULTIPLE_BATCH_SIZE = 150
    campaign = per_person(credential, template, csv_list(5), marketer)
    with pytest.raises(lifecycle.LaunchError, match="PUSH_MULTIPLE_BATCH_SIZE is 150"):
        lifecycle.launch(campaign, marketer)
    assert not campaign.runs.exists()
    assert sandbox.records() == []


def test_wire_never_sends_an_empty_value():
    from campaigns.mpaas.strategy import PushSpec

    spec = PushSpec(
        task_name="t",
        app_id="A",
        workspace_id="W",
        template_name="tpl",
        template_placeholders=("name",),
        template_values={},
        delivery_type=3,
        expired_seconds=300,
        timezone="UTC",
        per_person=("name",),
    )
    params = wire.multiple_params(spec, [("u1", "k1", {"name": "Ann"})])
    assert params["TargetMsg.1.Target"] == "u1"
    assert params["TargetMsg.1.MsgKey"] == "k1"
    assert json.loads(params["TargetMsg.1.TemplateKeyValue"]) == {"name": "Ann"}
    assert "TargetMsgkey" not in params and "TemplateKeyValue" not in params
    with pytest.raises(StrategyError, match="no value for name"):
        wire.multiple_params(spec, [("u1", "k1", {"name": " "})])
    with pytest.raises(StrategyError, match="At most 100"):
        wire.multiple_params(spec, [(f"u{n}", f"k{n}", {"name": "A"}) for n in range(101)])


@pytest.mark.slow
def test_20000_per_person_targets_go_in_at_most_200_calls_with_their_own_values(
    credential, template, marketer, sandbox
):
    target_list = csv_list(20_000)
    campaign = per_person(credential, template, target_list, marketer)
    run = lifecycle.launch(campaign, marketer)
    drain()
    campaign.refresh_from_db()
    run.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    assert (run.total, run.sent, run.failed) == (20_000, 20_000, 0)
    ledger = sandbox.records()
    calls = [r for r in ledger if r["action"] == "PushMultiple"]
    assert len(calls) <= 200
    assert not [r for r in ledger if r["action"] == "PushTemplate"]
    assert all(r["accepted"] for r in calls)
    seen = {}
    for record in calls:
        for msg in record["target_msgs"]:
            seen[msg["target"]] = (msg["msg_key"], msg["template_key_value"])
    keys = dict(Delivery.objects.filter(run=run).values_list("target_id", "msg_key"))
    assert len(seen) == 20_000
    for n in (0, 1, 777, 19_999):
        target = f"u{n:06d}"
        assert seen[target] == (keys[target], {"coupon": "FIXED", "name": f"Name{n}"})
    check_invariants(campaign, ledger)


def sent_campaign(credential, template, marketer, rows: int) -> Campaign:
    campaign = per_person(credential, template, csv_list(rows), marketer)
    lifecycle.launch(campaign, marketer)
    drain()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    return campaign


def test_recall_of_1000_targets_records_one_revoke_outcome_per_delivery(
    credential, template, marketer, sandbox
):
    campaign = sent_campaign(credential, template, marketer, 1000)
    first = campaign.runs.get(number=1)
    run, cancelled = recall.start(campaign, marketer)
    assert cancelled is None
    drain()
    run.refresh_from_db()
    campaign.refresh_from_db()
    codes = list(Batch.objects.filter(run=run).values_list("result_code", "result_message")[:3])
    assert run.kind == Run.Kind.RECALL and run.status == Run.Status.COMPLETED, codes
    assert (run.total, run.sent, run.failed) == (1000, 1000, 0)
    assert campaign.status == Campaign.Status.COMPLETED  # a recall leaves it alone
    revokes = [r for r in sandbox.records() if r["action"] == "RevokePushMessage"]
    assert len(revokes) == 1000 and all(r["accepted"] for r in revokes)
    originals = dict(Delivery.objects.filter(run=first).values_list("pk", "msg_key"))
    recalled = list(Delivery.objects.filter(run=run).values_list("recall_of_id", "status"))
    assert sorted(pk for pk, _status in recalled) == sorted(originals)
    assert {status for _pk, status in recalled} == {Delivery.Status.SENT}
    assert {r["params"]["MessageId"] for r in revokes} == set(originals.values())
    assert Batch.objects.filter(run=run).count() == 1000
    assert AuditEvent.objects.filter(action="campaign.recall", actor=marketer).count() == 1
    assert AuditEvent.objects.filter(action="campaign.recall_finished").count() == 1
    check_invariants(campaign, sandbox.records())

    # twice: a clear message, nothing called again
    with pytest.raises(recall.RecallError, match="already recalled"):
        recall.start(campaign, marketer)
    assert len([r for r in sandbox.records() if r["action"] == "RevokePushMessage"]) == 1000
    assert campaign.runs.filter(kind=Run.Kind.RECALL).count() == 1


def test_recall_lists_old_deliveries_as_too_old_and_does_not_call_them(
    credential, template, marketer, sandbox
):
    campaign = sent_campaign(credential, template, marketer, 30)
    first = campaign.runs.get(number=1)
    old = list(Delivery.objects.filter(run=first).order_by("pk").values_list("pk", flat=True)[:10])
    Delivery.objects.filter(pk__in=old).update(finished_at=timezone.now() - timedelta(days=8))
    plan = recall.plan_for(campaign)
    assert (plan.recallable, plan.too_old, plan.already_recalled) == (20, 10, 0)
    run, _cancelled = recall.start(campaign, marketer)
    drain()
    run.refresh_from_db()
    assert (run.total, run.sent) == (20, 20)
    called = {
        r["params"]["MessageId"] for r in sandbox.records() if r["action"] == "RevokePushMessage"
    }
    assert not called & set(Delivery.objects.filter(pk__in=old).values_list("msg_key", flat=True))


def test_one_delivery_is_recalled_alone(credential, template, marketer, sandbox):
    campaign = sent_campaign(credential, template, marketer, 12)
    delivery = Delivery.objects.filter(run__campaign=campaign).order_by("pk")[3]
    run, _cancelled = recall.start(campaign, marketer, delivery=delivery)
    drain()
    run.refresh_from_db()
    assert (run.total, run.sent) == (1, 1)
    assert Delivery.objects.get(run=run).recall_of == delivery
    plan = recall.plan_for(campaign)
    assert (plan.recallable, plan.already_recalled) == (11, 1)


def test_a_recall_can_be_cancelled(credential, template, marketer, sandbox):
    campaign = sent_campaign(credential, template, marketer, 40)
    run, _cancelled = recall.start(campaign, marketer)
    drain_planning_only = planning.plan(run.pk)  # planned, no send job run yet
    assert drain_planning_only == "planned"
    count = recall.cancel(run, marketer)
    drain()
    run.refresh_from_db()
    assert count == 40 and run.status == Run.Status.CANCELLED and run.finished_at
    assert run.cancelled == 40 and run.sent == 0
    assert not [r for r in sandbox.records() if r["action"] == "RevokePushMessage"]
    assert AuditEvent.objects.filter(action="campaign.recall_cancel").count() == 1
    with pytest.raises(recall.RecallError, match="already ended"):
        recall.cancel(run, marketer)
