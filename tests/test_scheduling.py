"""Fixed-time and loop campaigns, on mPaaS and in this console. The clock is controlled
with time-machine; nothing waits for real time."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

from campaigns import lifecycle, scheduling
from campaigns.models import AuditEvent, Campaign, Occurrence, Run, ScheduledTask
from campaigns.mpaas import strategy
from tests.conftest import APP_ID, SANDBOX_KEY_ID, SANDBOX_SECRET, WORKSPACE
from tests.pipeline_helpers import check_invariants, drain, make_campaign, make_list
from tests.sandbox_helpers import sdk_call

pytestmark = pytest.mark.django_db(transaction=True)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)  # a Monday


@pytest.fixture(autouse=True)
def quick(settings, redis_conn):
    settings.PUSH_BACKOFF_BASE = 0.01
    settings.PUSH_CONCURRENCY = 2
    settings.PUSH_JOB_SECONDS = 5


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


def spec(**changes) -> strategy.PushSpec:
    base = dict(
        task_name="t",
        app_id="a",
        workspace_id="w",
        template_name="n",
        template_placeholders=(),
        template_values={},
        delivery_type=3,
        expired_seconds=600,
    )
    base.update(changes)
    return strategy.PushSpec(**base)


# -- occurrences (pure) ---------------------------------------------------------------------


def test_weekly_occurrences_cross_a_month_end():
    times = scheduling.occurrence_times(
        spec(
            strategy_type=2,
            loop_circle_type=2,
            loop_circle_values=(1, 4),
            loop_start_date=dt.date(2026, 3, 26),
            loop_end_date=dt.date(2026, 4, 9),
            loop_time=dt.time(9, 30),
            timezone="Asia/Shanghai",
        )
    )
    assert [t.strftime("%a %m-%d %H:%M") for t in times] == [
        "Thu 03-26 09:30",
        "Mon 03-30 09:30",
        "Thu 04-02 09:30",
        "Mon 04-06 09:30",
        "Thu 04-09 09:30",
    ]


def test_monthly_day_31_skips_months_without_it():
    times = scheduling.occurrence_times(
        spec(
            strategy_type=2,
            loop_circle_type=3,
            loop_circle_values=(31, 1),
            loop_start_date=dt.date(2026, 1, 30),
            loop_end_date=dt.date(2026, 5, 1),
            loop_time=dt.time(8, 0),
            timezone="Asia/Shanghai",
        )
    )
    assert [t.date().isoformat() for t in times] == [
        "2026-01-31",
        "2026-02-01",
        "2026-03-01",
        "2026-03-31",
        "2026-04-01",
        "2026-05-01",
    ]


def test_daily_occurrences_keep_local_time_across_dst_in_new_york():
    times = scheduling.occurrence_times(
        spec(
            strategy_type=2,
            loop_circle_type=1,
            loop_start_date=dt.date(2026, 3, 7),
            loop_end_date=dt.date(2026, 3, 9),
            loop_time=dt.time(9, 0),
            timezone="America/New_York",
        )
    )
    assert [t.strftime("%H:%M") for t in times] == ["09:00", "09:00", "09:00"]
    utc = [t.astimezone(dt.UTC).hour for t in times]
    assert utc == [14, 13, 13]  # EST, then EDT after 2026-03-08


def test_a_wall_time_in_the_dst_gap_moves_forward():
    [moment] = scheduling.occurrence_times(
        spec(
            strategy_type=2,
            loop_circle_type=1,
            loop_start_date=dt.date(2026, 3, 8),
            loop_end_date=dt.date(2026, 3, 8),
            loop_time=dt.time(2, 30),
            timezone="America/New_York",
        )
    )
    assert moment.strftime("%H:%M") == "03:30"


# -- mPaaS-side ---------------------------------------------------------------------------


def fixed_campaign(credential, template, target_list, **changes):
    return make_campaign(
        credential,
        template,
        target_list,
        strategy_type=1,
        fixed_time=NOW + dt.timedelta(days=1),
        **changes,
    )


def test_fixed_time_on_mpaas_records_a_task_id_per_call(
    clock, credential, template, target_list, sandbox, marketer
):
    campaign = fixed_campaign(credential, template, target_list, schedule_mode="mpaas")
    lifecycle.launch(campaign, marketer)
    drain()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.schedule_resolved == "mpaas"
    tasks = ScheduledTask.objects.filter(campaign=campaign)
    assert tasks.count() == 3
    calls = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert sorted(r["task_id"] for r in calls) == sorted(tasks.values_list("task_id", flat=True))
    assert all(r["params"]["StrategyType"] == "1" for r in calls)
    assert "Scheduled for 2026-03-03 10:00" in scheduling.describe(campaign)
    check_invariants(campaign, sandbox.records())


def test_quota_guard_refuses_the_101st_task(
    clock, credential, template, target_list, sandbox, marketer
):
    first = fixed_campaign(credential, template, make_list(980, "big"), schedule_mode="mpaas")
    lifecycle.launch(first, marketer)  # 98 calls → 98 tasks
    drain()
    assert scheduling.tasks_in_use(credential.app_id) == 98
    second = fixed_campaign(credential, template, target_list, schedule_mode="mpaas")  # 3 calls
    with pytest.raises(lifecycle.LaunchError) as caught:
        lifecycle.launch(second, marketer)
    message = caught.value.errors["schedule_mode"][0]
    assert "98 of 100" in message and "needs 3" in message and "this console" in message
    second.refresh_from_db()
    assert second.status == Campaign.Status.DRAFT
    small = fixed_campaign(credential, template, make_list(20, "small"), schedule_mode="mpaas")
    lifecycle.launch(small, marketer)  # exactly fills the quota: 100
    drain()
    assert scheduling.tasks_in_use(credential.app_id) == 100


def test_auto_mode_counts_a_loop_campaign_and_falls_back_to_the_console(
    clock, credential, template, target_list, sandbox, marketer
):
    credential.scheduled_task_quota = 2
    credential.save()
    campaign = make_campaign(
        credential,
        template,
        target_list,
        strategy_type=2,
        loop_circle_type=2,
        loop_circle_values=[1],
        loop_start_date=dt.date(2026, 3, 2),
        loop_end_date=dt.date(2026, 3, 30),
        loop_time=dt.time(9, 0),
    )
    choice = scheduling.choose(campaign)
    assert (choice.where, choice.needed, choice.quota) == ("console", 3, 2)
    assert "would exceed" in choice.reason
    credential.scheduled_task_quota = 3
    credential.save()
    campaign.refresh_from_db()
    assert scheduling.choose(campaign).where == "mpaas"


def test_reconcile_marks_executed_and_missing_tasks(
    clock, credential, template, target_list, sandbox, marketer, capsys
):
    campaign = fixed_campaign(credential, template, target_list, schedule_mode="mpaas")
    lifecycle.launch(campaign, marketer)
    drain()
    gone = ScheduledTask.objects.filter(campaign=campaign).first()
    ScheduledTask.objects.filter(pk=gone.pk).update(task_id="not-on-mpaas")
    sandbox.set_clock_offset(2 * 24 * 3600)  # mPaaS's clock passes the send time
    call_command("reconcile_schedules")
    out = capsys.readouterr().out
    # the renamed task has run on mPaaS too, so it is not reported as waiting there
    assert "0 waiting, 2 executed, 1 missing on mPaaS, 0 unknown to the console" in out
    statuses = sorted(ScheduledTask.objects.values_list("status", flat=True))
    assert statuses == ["executed", "executed", "missing"]
    assert scheduling.tasks_in_use(credential.app_id) == 0
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED


def test_cancel_with_a_mix_of_executed_and_unexecuted_tasks(
    clock, credential, template, sandbox, marketer
):
    early = make_campaign(
        credential,
        template,
        make_list(10, "early"),
        strategy_type=1,
        schedule_mode="mpaas",
        fixed_time=NOW + dt.timedelta(minutes=30),
    )
    lifecycle.launch(early, marketer)
    drain()
    late_ids = []
    for n in range(2):
        late = make_campaign(
            credential,
            template,
            make_list(10, f"late{n}"),
            strategy_type=1,
            schedule_mode="mpaas",
            fixed_time=NOW + dt.timedelta(days=2),
        )
        lifecycle.launch(late, marketer)
        drain()
        late_ids.append(ScheduledTask.objects.get(campaign=late).task_id)
    # Put all three tasks on one campaign so a single cancel meets both kinds.
    ScheduledTask.objects.update(campaign=early)
    sandbox.set_clock_offset(3600)  # the early task has run on mPaaS
    result = lifecycle.cancel(Campaign.objects.get(pk=early.pk), marketer)
    early_id = ScheduledTask.objects.exclude(task_id__in=late_ids).get().task_id
    # mPaaS cancelled the late ones and says so in its ResultContent string
    assert [sandbox.sandbox.tasks.get(i).cancelled for i in [*late_ids, early_id]] == [
        {0},
        {0},
        set(),
    ]
    assert sorted(result["cancelled"]) == sorted(late_ids)
    assert result["already_executed"] == [early_id]
    assert result["needs_reconcile"] == []
    assert ScheduledTask.objects.get(task_id=early_id).status == "executed"
    assert set(
        ScheduledTask.objects.filter(task_id__in=late_ids).values_list("status", flat=True)
    ) == {"cancelled"}
    assert scheduling.tasks_in_use(credential.app_id) == 0


def test_cancel_against_the_model_shaped_answer_does_not_crash_and_is_audited(
    clock, client, credential, template, target_list, sandbox, marketer
):
    """The old crash: the console read CancelPushScheduler's ResultContent as an object
    of lists; the official model (and now the sandbox) make it a string → HTTP 500."""
    campaign = fixed_campaign(credential, template, target_list, schedule_mode="mpaas")
    lifecycle.launch(campaign, marketer)
    drain()
    client.force_login(marketer)

    response = client.post(f"/campaigns/{campaign.pk}/cancel/", {"confirm": "yes"})

    assert response.status_code == 302
    cancels = [r for r in sandbox.records() if r["action"] == "CancelPushScheduler"]
    assert [r["result_code"] for r in cancels] == ["OK"]
    tasks = ScheduledTask.objects.filter(campaign=campaign)
    assert set(tasks.values_list("status", flat=True)) == {"cancelled"}
    event = AuditEvent.objects.get(action="campaign.cancel_tasks")
    assert event.details["cancelled"] == 3 and event.details["failed"] == 0
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.CANCELLED


def test_a_cancel_answer_that_cannot_be_read_waits_for_reconcile():
    ids = ["t1", "t2"]
    assert scheduling.read_cancel_answer({"ResultContent": "<html>"}, ids).needs_reconcile == ids
    assert scheduling.read_cancel_answer({"ResultContent": ""}, ids).cancelled == ids
    assert scheduling.read_cancel_answer(
        {"ResultContent": '{"Cancelled": ["t1"], "AlreadyExecuted": [], "NotFound": []}'}, ids
    ).needs_reconcile == ["t2"]


def _scheduled_call(sandbox, fixed_ms: int) -> str:
    answer = sdk_call(
        sandbox.url,
        "PushTemplate",
        {
            "AppId": APP_ID,
            "WorkspaceId": WORKSPACE,
            "TaskName": "t",
            "TemplateName": "welcome_tpl",
            "TemplateKeyValue": {"name": "a", "coupon": "b"},
            "DeliveryType": 3,
            "TargetMsgkey": {"u1": f"k-{fixed_ms}"},
            "ExpiredSeconds": 600,
            "StrategyType": 1,
            "StrategyContent": {"fixedTime": fixed_ms},
        },
        key_id=SANDBOX_KEY_ID,
        secret=SANDBOX_SECRET,
    )
    return answer.body["PushResult"]["Data"]


def test_read_cancel_answer_reads_the_sandboxs_real_answer_per_task(clock, sandbox):
    soon = int((NOW + dt.timedelta(minutes=5)).timestamp() * 1000)
    later = int((NOW + dt.timedelta(days=1)).timestamp() * 1000)
    ran, waiting = _scheduled_call(sandbox, soon), _scheduled_call(sandbox, later)
    sandbox.set_clock_offset(600)
    answer = sdk_call(
        sandbox.url,
        "CancelPushScheduler",
        {"AppId": APP_ID, "WorkspaceId": WORKSPACE, "UniqueIds": f"{ran},{waiting},gone"},
        key_id=SANDBOX_KEY_ID,
        secret=SANDBOX_SECRET,
    ).body
    assert isinstance(answer["ResultContent"], str)

    for given in (answer, answer["ResultContent"]):  # the whole body or its ResultContent
        outcome = scheduling.read_cancel_answer(given, [ran, waiting, "gone", "unnamed"])
        assert outcome == scheduling.CancelOutcome(
            cancelled=[waiting],
            already_executed=[ran],
            not_found=["gone"],
            needs_reconcile=["unnamed"],  # an ID the answer does not mention
        )


@pytest.mark.parametrize(
    ("content", "cancelled"),
    [
        (None, True),
        ("", True),
        ("true", True),
        ("SUCCESS", True),
        ('{"Data": null}', True),
        ('["a"]', ["a"]),
        ({"Cancelled": ["a", "b"], "NotFound": []}, ["a", "b"]),  # an older client's Data
        ("false", False),
        ("任务不存在", False),
        ("{not json", False),
        ('{"Cancelled": "a,b"}', False),
        ('{"Other": 1}', False),
        (42, False),
    ],
)
def test_read_cancel_answer_never_guesses(content, cancelled):
    outcome = scheduling.read_cancel_answer(
        {"ResultCode": "OK", "ResultContent": content}, ["a", "b"]
    )
    if cancelled is True:
        assert outcome == scheduling.CancelOutcome(cancelled=["a", "b"])
    elif cancelled is False:
        assert outcome == scheduling.CancelOutcome(needs_reconcile=["a", "b"])
    else:
        assert outcome.cancelled == cancelled
        assert sorted(outcome.cancelled + outcome.needs_reconcile) == ["a", "b"]


def test_reconcile_reads_loop_sub_tasks_under_their_parent(
    clock, credential, template, target_list, sandbox, marketer
):
    """mPaaS lists a loop task's occurrences as sub-tasks (ParentId = the task ID the push
    answered with, ExecutedStatus a string): the console's task is neither missing nor
    executed until every occurrence has run."""
    campaign = make_campaign(
        credential,
        template,
        target_list,
        strategy_type=2,
        schedule_mode="mpaas",
        loop_circle_type=1,
        loop_start_date=dt.date(2026, 3, 3),
        loop_end_date=dt.date(2026, 3, 5),
        loop_time=dt.time(9, 0),
    )
    lifecycle.launch(campaign, marketer)
    drain()
    ids = set(ScheduledTask.objects.filter(campaign=campaign).values_list("task_id", flat=True))
    listed = sdk_call(
        sandbox.url,
        "QueryPushSchedulerList",
        {
            "AppId": APP_ID,
            "WorkspaceId": WORKSPACE,
            "StartTime": int(NOW.timestamp() * 1000),
            "EndTime": int((NOW + dt.timedelta(days=5)).timestamp() * 1000),
        },
        key_id=SANDBOX_KEY_ID,
        secret=SANDBOX_SECRET,
    ).body["ResultContent"]["Data"]["List"]
    assert {item["ParentId"] for item in listed} == ids
    assert not ids & {item["UniqueId"] for item in listed}
    assert len(listed) == 3 * len(ids)

    first = scheduling.reconcile(credential)
    assert (first["pending"], first["missing"], first["unknown_on_mpaas"]) == (len(ids), 0, [])

    sandbox.set_clock_offset(2 * 86400)  # 2026-03-04 10:00: two of three have run
    assert scheduling.reconcile(credential)["pending"] == len(ids)
    sandbox.set_clock_offset(4 * 86400)
    assert scheduling.reconcile(credential)["executed"] == len(ids)
    assert set(ScheduledTask.objects.values_list("status", flat=True)) == {"executed"}


# -- console-side -------------------------------------------------------------------------


def console_weekly(credential, template, target_list, **changes):
    fields = dict(
        strategy_type=2,
        schedule_mode="console",
        loop_circle_type=2,
        loop_circle_values=[1, 4],
        loop_start_date=dt.date(2026, 3, 2),
        loop_end_date=dt.date(2026, 3, 16),
        loop_time=dt.time(11, 0),
        expired_seconds=600,
    )
    fields.update(changes)
    return make_campaign(credential, template, target_list, **fields)


def test_console_weekly_schedule_dispatches_each_occurrence_as_a_new_run(
    clock, credential, template, target_list, sandbox, marketer
):
    campaign = console_weekly(credential, template, target_list)
    assert lifecycle.launch(campaign, marketer) is None
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    due = list(Occurrence.objects.filter(campaign=campaign).values_list("due_at", flat=True))
    assert [d.astimezone(SHANGHAI).strftime("%a %d %H:%M") for d in due] == [
        "Mon 02 11:00",
        "Thu 05 11:00",
        "Mon 09 11:00",
        "Thu 12 11:00",
        "Mon 16 11:00",
    ]
    assert "next on 2026-03-02 11:00" in scheduling.describe(campaign)
    clock.move_to(dt.datetime(2026, 3, 2, 11, 0, 5, tzinfo=SHANGHAI))
    assert scheduling.dispatch_due() == {"dispatched": 1, "missed": 0}
    drain()
    clock.move_to(dt.datetime(2026, 3, 5, 11, 0, 5, tzinfo=SHANGHAI))
    assert scheduling.dispatch_due() == {"dispatched": 1, "missed": 0}
    drain()
    runs = Run.objects.filter(campaign=campaign).order_by("number")
    assert [(r.kind, r.sent) for r in runs] == [("occurrence", 25), ("occurrence", 25)]
    calls = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert all("StrategyType" not in r["params"] for r in calls)  # immediate pushes
    keys = [set(r.deliveries.values_list("msg_key", flat=True)) for r in runs]
    assert not keys[0] & keys[1]  # each occurrence has its own msgKeys
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED  # three more to come
    check_invariants(campaign, sandbox.records())


def test_a_late_occurrence_within_expiry_is_sent_and_beyond_it_is_recorded_missed(
    clock, credential, template, target_list, sandbox, marketer
):
    campaign = console_weekly(credential, template, target_list, expired_seconds=600)
    lifecycle.launch(campaign, marketer)
    clock.move_to(dt.datetime(2026, 3, 2, 11, 9, tzinfo=SHANGHAI))  # 9 min late: still ok
    assert scheduling.dispatch_due() == {"dispatched": 1, "missed": 0}
    clock.move_to(dt.datetime(2026, 3, 5, 11, 11, tzinfo=SHANGHAI))  # 11 min late: missed
    assert scheduling.dispatch_due() == {"dispatched": 0, "missed": 1}
    missed = Occurrence.objects.get(campaign=campaign, status="missed")
    assert "past the 600 s expiry" in missed.detail
    assert scheduling.dispatch_due() == {"dispatched": 0, "missed": 0}  # never twice


def test_two_schedulers_at_once_dispatch_an_occurrence_once(
    clock, credential, template, target_list, sandbox, marketer
):
    campaign = console_weekly(credential, template, target_list)
    lifecycle.launch(campaign, marketer)
    clock.move_to(dt.datetime(2026, 3, 2, 11, 0, 1, tzinfo=SHANGHAI))
    results = []
    barrier = threading.Barrier(2)

    def scheduler():
        from django.db import connection

        barrier.wait()
        try:
            results.append(scheduling.dispatch_due()["dispatched"])
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert Run.objects.filter(campaign=campaign).count() == 1


def test_pause_and_cancel_stop_future_occurrences(
    clock, credential, template, target_list, sandbox, marketer
):
    campaign = console_weekly(credential, template, target_list)
    lifecycle.launch(campaign, marketer)
    lifecycle.pause(Campaign.objects.get(pk=campaign.pk), marketer)
    clock.move_to(dt.datetime(2026, 3, 2, 11, 0, 1, tzinfo=SHANGHAI))
    assert scheduling.dispatch_due() == {"dispatched": 0, "missed": 0}
    lifecycle.resume(Campaign.objects.get(pk=campaign.pk), marketer)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SCHEDULED
    lifecycle.cancel(Campaign.objects.get(pk=campaign.pk), marketer)
    assert not Occurrence.objects.filter(campaign=campaign, status="pending").exists()
    assert Occurrence.objects.filter(campaign=campaign, status="cancelled").count() == 5
