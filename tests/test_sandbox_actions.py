"""The sandbox's PushMultiple, RevokePushMessage and QueryPushAnalysis* over real HTTP:
rules and result codes, what the ledger records, the figures, and the faults."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mpaas_sandbox import SandboxServer, summarize
from tests.sandbox_helpers import (
    APP_ID,
    CONTROL_TOKEN,
    KEY_ID,
    SECRET,
    TEMPLATE,
    WORKSPACE,
    call,
    push_params,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000
BASE = {"AppId": APP_ID, "WorkspaceId": WORKSPACE}


@pytest.fixture(autouse=True)
def _redis_settings():
    """Overrides conftest's autouse Django/Redis fixture: the sandbox needs neither."""


@pytest.fixture(scope="module")
def shared():
    with SandboxServer(
        keys={KEY_ID: SECRET},
        apps={APP_ID: [WORKSPACE]},
        templates={TEMPLATE: ["name", "money"]},
        control_token=CONTROL_TOKEN,
    ) as server:
        yield server


FAULTS_OFF = dict(
    error_5xx_rate=0,
    throttle_rate=0,
    ambiguous_rate=0,
    hold_rate=0,
    qps_cap=0,
    fail_code=None,
    clock_offset_seconds=0,
    stats_seed=0,
    seed=0,
    fault_actions=("PushTemplate", "PushMultiple", "RevokePushMessage"),
)


@pytest.fixture
def sandbox(shared):
    shared.configure(**FAULTS_OFF)
    shared.reset()
    return shared


def targets(count: int, *, prefix: str = "user", **per_target) -> dict[str, str]:
    """TargetMsg.N.* for `count` targets, each with its own values (name N<n>)."""
    params = {}
    for n in range(1, count + 1):
        params[f"TargetMsg.{n}.Target"] = f"{prefix}{n}"
        params[f"TargetMsg.{n}.MsgKey"] = f"{prefix}-mk-{n}"
        params[f"TargetMsg.{n}.TemplateKeyValue"] = json.dumps(
            {"name": f"N{n}", "money": str(n * 10)}, ensure_ascii=False
        )
    for name, value in per_target.items():
        params[name] = value
    return params


def multiple(server, count: int = 3, **changes):
    params = {
        **BASE,
        "TaskName": "per person",
        "TemplateName": TEMPLATE,
        "DeliveryType": 3,
        "ExpiredSeconds": 300,
        **targets(count),
    }
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return call(server.url, "PushMultiple", params)


def revoke(server, message_id: str, target_id: str, **changes):
    return call(
        server.url,
        "RevokePushMessage",
        {**BASE, "MessageId": message_id, "TargetId": target_id, **changes},
    )


def midnight_ms(days_from_today: int = 0) -> int:
    today = datetime.now(SHANGHAI).date() + timedelta(days=days_from_today)
    return int(datetime(today.year, today.month, today.day, tzinfo=SHANGHAI).timestamp() * 1000)


# -- PushMultiple ---------------------------------------------------------------------------


def test_push_multiple_gives_each_target_its_own_values_in_the_ledger(sandbox):
    answer = multiple(sandbox, 3, **{"TargetMsg.2.ExtendedParams": '{"sound": "ding"}'})

    assert (answer.body["ResultCode"], answer.body["PushResult"]["Success"]) == ("OK", True)
    task_id = answer.body["PushResult"]["Data"]  # an immediate PushMultiple's push task ID
    assert task_id.isdigit()
    [record] = sandbox.records()
    assert (record["action"], record["accepted"], record["push_task_id"]) == (
        "PushMultiple",
        True,
        int(task_id),
    )
    assert record["targets"] == {"user1": "user-mk-1", "user2": "user-mk-2", "user3": "user-mk-3"}
    assert [
        (t["target"], t["msg_key"], t["template_key_value"], t["extended_params"])
        for t in record["target_msgs"]
    ] == [
        ("user1", "user-mk-1", {"name": "N1", "money": "10"}, None),
        ("user2", "user-mk-2", {"name": "N2", "money": "20"}, {"sound": "ding"}),
        ("user3", "user-mk-3", {"name": "N3", "money": "30"}, None),
    ]
    stats = summarize(sandbox.records())
    assert (stats["push_calls"], stats["targets_accepted"]) == (1, 3)
    assert (stats["max_targets_per_call"], stats["max_targets_per_multiple_call"]) == (0, 3)


def test_push_multiple_takes_100_targets_and_refuses_101(sandbox):
    assert multiple(sandbox, 100).body["ResultCode"] == "OK"

    refused = multiple(sandbox, 101)

    assert (refused.body["ResultCode"], refused.body["ResultMessage"]) == (
        "3029",
        "TargetMsg has 101 targets, at most 100",
    )
    assert refused.body["PushResult"] == {
        "Success": False,
        "ResultMsg": "TargetMsg has 101 targets, at most 100",
    }
    assert sandbox.records()[-1]["accepted"] is False


MULTIPLE_FAILING = [
    ({"TargetMsg.2.MsgKey": "user-mk-1"}, "3028", "TargetMsg.2.MsgKey repeats a msgKey"),
    ({"TargetMsg.2.Target": "user1"}, "3028", "TargetMsg.2.Target repeats a target"),
    ({"TargetMsg.2.MsgKey": ""}, "3028", "TargetMsg.2.MsgKey is empty"),
    ({"TargetMsg.2.Target": ""}, "3021", "TargetMsg.2.Target is empty"),
    ({"TargetMsg.5.Target": "gap"}, "3028", "TargetMsg indexes must run 1, 2, ... without gaps"),
    ({"TargetMsg.01.Target": "x"}, "3028", "unknown parameter TargetMsg.01.Target"),
    ({"TargetMsg.1.Title": "x"}, "3028", "unknown parameter TargetMsg.1.Title"),
    ({"TargetMsgkey": '{"u": "k"}'}, "3028", "unknown parameter TargetMsgkey"),
    ({"TemplateKeyValue": "{}"}, "3028", "unknown parameter TemplateKeyValue"),
    ({"SmsStrategy": "0"}, "3028", "unknown parameter SmsStrategy"),
    (
        {"TargetMsg.2.TemplateKeyValue": '{"name": "x"}'},
        "3023",
        "TargetMsg.2.TemplateKeyValue misses placeholder money",
    ),
    (
        {"TargetMsg.1.TemplateKeyValue": "[]"},
        "3023",
        "TargetMsg.1.TemplateKeyValue must be a JSON object",
    ),
    (
        {"TargetMsg.2.ExtendedParams": json.dumps({f"k{i}": "v" for i in range(10)})},
        "3049",
        "TargetMsg.2.ExtendedParams has 10 keys, at most 9",
    ),
    (
        {"TargetMsg.1.ExtendedParams": '{"pushType": "x"}'},
        "3044",
        "TargetMsg.1.ExtendedParams may not set reserved key pushType",
    ),
    (
        {"TargetMsg.1.ExtendedParams": "[1]"},
        "3044",
        "TargetMsg.1.ExtendedParams must be a JSON object",
    ),
    (
        {"ExtendedParams": json.dumps({f"k{i}": "v" for i in range(21)})},
        "3035",
        "ExtendedParams has 21 keys, at most 20",
    ),
    ({"DeliveryType": 5}, "3009", "DeliveryType must be one of 1, 2, 3, 7"),
    ({"TaskName": ""}, "3019", "TaskName is empty"),
    ({"TemplateName": "nope"}, "3022", "template nope does not exist"),
    ({"ExpiredSeconds": 100}, "3020", "ExpiredSeconds must be at least 180"),
    ({"WorkspaceId": "prod"}, "8012", "WorkspaceId prod is not valid"),
    ({"StrategyType": 1}, "3028", "StrategyContent must be a JSON object"),
]


@pytest.mark.parametrize(("changes", "code", "message"), MULTIPLE_FAILING)
def test_push_multiple_rule_answers_its_code(sandbox, changes, code, message):
    answer = multiple(sandbox, 3, **changes)

    assert answer.status == 200
    assert answer.body["ResultCode"] == code
    assert answer.body["ResultMessage"].startswith(message)
    assert answer.body["PushResult"]["Success"] is False
    assert sandbox.records()[0]["accepted"] is False


def test_push_multiple_without_targets_is_3021(sandbox):
    answer = multiple(sandbox, 0)

    assert (answer.body["ResultCode"], answer.body["ResultMessage"]) == (
        "3021",
        "TargetMsg is empty",
    )


def test_push_multiple_per_target_extended_params_of_nine_keys_pass(sandbox):
    nine = json.dumps({f"k{i}": "v" for i in range(9)})

    assert multiple(sandbox, 2, **{"TargetMsg.1.ExtendedParams": nine}).body["ResultCode"] == "OK"


def test_scheduled_push_multiple_is_a_batch_task_of_its_own_type(sandbox):
    fixed = int(time.time() * 1000) + 3_600_000
    answer = multiple(sandbox, 2, StrategyType=1, StrategyContent=json.dumps({"fixedTime": fixed}))
    task_id = answer.body["PushResult"]["Data"]

    window = {**BASE, "StartTime": fixed - 1, "EndTime": fixed + 1}
    template_tasks = call(sandbox.url, "QueryPushSchedulerList", window).body
    batch_tasks = call(sandbox.url, "QueryPushSchedulerList", {**window, "Type": 2}).body

    assert len(task_id) == 32
    assert template_tasks["ResultContent"]["Data"]["TotalCount"] == 0  # Type defaults to 1
    [item] = batch_tasks["ResultContent"]["Data"]["List"]
    assert (item["UniqueId"], item["Type"]) == (task_id, 2)


# -- RevokePushMessage ----------------------------------------------------------------------


def test_revoke_within_seven_days_then_again_then_unknown(sandbox):
    multiple(sandbox, 2)

    done = revoke(sandbox, "user-mk-1", "user1")
    again = revoke(sandbox, "user-mk-1", "user1")
    wrong_target = revoke(sandbox, "user-mk-1", "user2")
    unknown = revoke(sandbox, "never-sent", "user1")

    assert done.body["ResultCode"] == "OK"
    assert done.body["PushResult"] == {"Success": True, "ResultMsg": ""}
    assert (again.body["ResultCode"], again.body["PushResult"]["Success"]) == (
        "MESSAGE_ALREADY_REVOKED",
        False,
    )
    assert wrong_target.body["ResultCode"] == "MESSAGE_NOT_FOUND"
    assert unknown.body["ResultCode"] == "MESSAGE_NOT_FOUND"
    records = [r for r in sandbox.records() if r["action"] == "RevokePushMessage"]
    assert [r["result_code"] for r in records] == [
        "OK",
        "MESSAGE_ALREADY_REVOKED",
        "MESSAGE_NOT_FOUND",
        "MESSAGE_NOT_FOUND",
    ]
    assert records[0]["params"]["MessageId"] == "user-mk-1" and records[0]["revoked"] == 1
    assert summarize(sandbox.records())["messages_revoked"] == 1


def test_revoke_follows_the_sandbox_clock_past_seven_days(sandbox):
    call(sandbox.url, "PushTemplate", push_params())  # user1024 / k-1024
    multiple(sandbox, 1)

    sandbox.set_clock_offset(7 * 86400 - 60)  # still within 7 days
    assert revoke(sandbox, "k-1024", "user1024").body["ResultCode"] == "OK"
    sandbox.set_clock_offset(7 * 86400 + 60)
    too_old = revoke(sandbox, "user-mk-1", "user1")

    assert (too_old.body["ResultCode"], too_old.body["ResultMessage"]) == (
        "MESSAGE_TOO_OLD",
        "message user-mk-1 went out more than 7 days ago",
    )


def test_a_scheduled_message_cannot_be_revoked_before_it_goes_out(sandbox):
    fixed = int(time.time() * 1000) + 3_600_000
    call(
        sandbox.url,
        "PushTemplate",
        push_params(StrategyType=1, StrategyContent=json.dumps({"fixedTime": fixed})),
    )

    assert revoke(sandbox, "k-1024", "user1024").body["ResultCode"] == "MESSAGE_NOT_FOUND"
    sandbox.set_clock_offset(3700)
    assert revoke(sandbox, "k-1024", "user1024").body["ResultCode"] == "OK"


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"MessageId": ""}, "3028", "MessageId is empty"),
        ({"TargetId": ""}, "3021", "TargetId is empty"),
        ({"WorkspaceId": ""}, "3003", "AppId or WorkspaceId is empty"),
        ({"Target": "x"}, "3028", "unknown parameter Target"),
    ],
)
def test_revoke_parameter_rules(sandbox, changes, code, message):
    answer = revoke(sandbox, "k", "t", **changes)

    assert (answer.body["ResultCode"], answer.body["ResultMessage"]) == (code, message)
    assert answer.body["PushResult"] == {"Success": False, "ResultMsg": message}


# -- statistics -----------------------------------------------------------------------------


def core_index(server, **changes):
    params = {**BASE, "StartTime": midnight_ms(0), "EndTime": midnight_ms(0) + 1, **changes}
    return call(server.url, "QueryPushAnalysisCoreIndex", params).body


def test_core_index_counts_what_was_accepted_with_consistent_figures(sandbox):
    multiple(sandbox, 100)
    multiple(sandbox, 100, **targets(100, prefix="other"))
    call(
        sandbox.url,
        "PushTemplate",
        push_params(TargetMsgkey=json.dumps({f"t{i}": f"k{i}" for i in range(10)})),
    )
    multiple(sandbox, 3, TemplateName="nope")  # refused: not counted

    data = core_index(sandbox)["ResultContent"]["Data"]
    multiple_only = core_index(sandbox, Type="MULTIPLE")["ResultContent"]["Data"]
    template_only = core_index(sandbox, Type="TEMPLATE")["ResultContent"]["Data"]

    assert data["PushTotalNum"] == data["PushNum"] == 210.0
    assert (multiple_only["PushNum"], template_only["PushNum"]) == (200.0, 10.0)
    assert 0 < data["ArrivalNum"] <= data["PushNum"]
    assert 0 < data["OpenNum"] <= data["ArrivalNum"]
    assert data["OpenNum"] + data["IgnoreNum"] <= data["ArrivalNum"]
    assert data["ArrivalRate"] == round(data["ArrivalNum"] / data["PushNum"], 4)
    assert data["OpenRate"] == round(data["OpenNum"] / data["ArrivalNum"], 4)
    assert data["IgnoreRate"] == round(data["IgnoreNum"] / data["ArrivalNum"], 4)
    by_platform = [
        core_index(sandbox, Platform=p)["ResultContent"]["Data"]["PushNum"]
        for p in ("IOS", "ANDROID", "HARMONYOS")
    ]
    assert sum(by_platform) == 210.0 and all(n > 0 for n in by_platform[:2])
    by_channel = [
        core_index(sandbox, Platform="ANDROID", Channel=c)["ResultContent"]["Data"]["PushNum"]
        for c in ("HMS", "MIUI", "OPPO", "VIVO", "FCM", "ANDROID")
    ]
    assert sum(by_channel) == by_platform[1]
    yesterday = core_index(sandbox, StartTime=midnight_ms(-1), EndTime=midnight_ms(-1))
    assert yesterday["ResultContent"]["Data"]["PushNum"] == 0.0


def test_figures_are_the_same_under_the_same_seed_and_change_with_it(sandbox):
    multiple(sandbox, 100)
    first = core_index(sandbox)["ResultContent"]["Data"]
    sandbox.reset()
    multiple(sandbox, 100)
    again = core_index(sandbox)["ResultContent"]["Data"]
    sandbox.configure(stats_seed=42)
    other = core_index(sandbox)["ResultContent"]["Data"]

    assert first == again
    assert other["PushNum"] == first["PushNum"] and other != first


def test_a_revoked_message_is_never_opened(sandbox):
    multiple(sandbox, 100)
    before = core_index(sandbox)["ResultContent"]["Data"]
    for n in range(1, 101):
        revoke(sandbox, f"user-mk-{n}", f"user{n}")

    after = core_index(sandbox)["ResultContent"]["Data"]

    assert before["OpenNum"] > 0
    assert (after["PushNum"], after["ArrivalNum"]) == (before["PushNum"], before["ArrivalNum"])
    assert (after["OpenNum"], after["IgnoreNum"]) == (0.0, 0.0)


def test_scheduled_pushes_count_once_they_have_gone_out(sandbox):
    fixed = int(time.time() * 1000) + 3_600_000
    multiple(sandbox, 10, StrategyType=1, StrategyContent=json.dumps({"fixedTime": fixed}))
    window = {"StartTime": midnight_ms(0), "EndTime": midnight_ms(1)}

    assert core_index(sandbox, **window)["ResultContent"]["Data"]["PushNum"] == 0.0
    sandbox.set_clock_offset(3700)
    assert core_index(sandbox, **window)["ResultContent"]["Data"]["PushNum"] == 10.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"StartTime": None}, "StartTime must be an integer"),
        ({"EndTime": "soon"}, "EndTime must be an integer"),
        ({"EndTime": 0}, "EndTime must not be before StartTime"),
        ({"EndTime": "LATE"}, "EndTime must be an integer"),
        ({"Platform": "WINDOWS"}, "Platform must be one of IOS, ANDROID, HARMONYOS"),
        ({"Channel": "APNS"}, "Channel must be one of IOS, FCM, HMS"),
        ({"Type": "template"}, "Type must be one of SIMPLE, TEMPLATE, MULTIPLE, BROADCAST"),
    ],
)
def test_core_index_parameter_rules(sandbox, changes, message):
    params = {**BASE, "StartTime": midnight_ms(0), "EndTime": midnight_ms(1)}
    for name, value in changes.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value

    body = call(sandbox.url, "QueryPushAnalysisCoreIndex", params).body

    assert body["ResultCode"] == "3028" and body["ResultMessage"].startswith(message)
    assert "ResultContent" not in body


def test_core_index_range_is_at_most_90_days(sandbox):
    ok = core_index(sandbox, StartTime=midnight_ms(-90), EndTime=midnight_ms(0) + 5)
    too_long = core_index(sandbox, StartTime=midnight_ms(-91), EndTime=midnight_ms(0))

    assert ok["ResultCode"] == "OK"
    assert (too_long["ResultCode"], too_long["ResultMessage"]) == (
        "3028",
        "StartTime and EndTime must be at most 90 days apart",
    )


def test_task_list_and_detail_describe_each_accepted_call(sandbox):
    first = multiple(sandbox, 4).body["PushResult"]["Data"]
    call(sandbox.url, "PushTemplate", push_params(TaskName="template one"))
    revoke(sandbox, "user-mk-1", "user1")

    listed = call(sandbox.url, "QueryPushAnalysisTaskList", BASE).body["ResultContent"]["Data"]
    by_name = call(
        sandbox.url, "QueryPushAnalysisTaskList", {**BASE, "TaskName": "per person"}
    ).body["ResultContent"]["Data"]
    detail = call(sandbox.url, "QueryPushAnalysisTaskDetail", {**BASE, "TaskId": first}).body

    assert [(t["TaskName"], t["Type"]) for t in listed] == [("template one", 1), ("per person", 2)]
    assert [t["TaskId"] for t in by_name] == [first]
    assert by_name[0]["TemplateName"] == TEMPLATE and by_name[0]["List"] == []
    data = detail["ResultContent"]["Data"]
    assert (data["TaskId"], data["PushNum"], data["PushSuccessNum"]) == (int(first), 4.0, 4.0)
    assert data["PushArrivalNum"] <= 4.0
    assert data["EndTime"] >= data["StartTime"] and data["Duration"].isdigit()
    page = call(sandbox.url, "QueryPushAnalysisTaskList", {**BASE, "PageSize": 1, "PageNumber": 2})
    assert [t["TaskName"] for t in page.body["ResultContent"]["Data"]] == ["per person"]


def test_task_detail_rules(sandbox):
    missing = call(sandbox.url, "QueryPushAnalysisTaskDetail", BASE).body
    not_digits = call(sandbox.url, "QueryPushAnalysisTaskDetail", {**BASE, "TaskId": "x1"}).body
    unknown = call(sandbox.url, "QueryPushAnalysisTaskDetail", {**BASE, "TaskId": "1"}).body

    assert (missing["ResultCode"], missing["ResultMessage"]) == ("3028", "TaskId is empty")
    assert not_digits["ResultCode"] == "3028"
    assert (unknown["ResultCode"], unknown["ResultMessage"]) == (
        "TASK_NOT_FOUND",
        "push task 1 does not exist",
    )


# -- faults ---------------------------------------------------------------------------------


def test_faults_act_on_push_multiple_and_revoke_by_default(sandbox):
    multiple(sandbox, 1)
    sandbox.configure(throttle_rate=1)

    throttled = [multiple(sandbox, 1, TaskName="again"), revoke(sandbox, "user-mk-1", "user1")]
    query = call(sandbox.url, "QueryPushAnalysisTaskList", BASE)

    assert [a.body["ResultCode"] for a in throttled] == ["8011", "8011"]
    assert [a.body["PushResult"]["Success"] for a in throttled] == [False, False]
    assert query.body["ResultCode"] == "OK"  # not a fault action by default
    assert [r["fault"] for r in sandbox.records()][1:] == ["throttle", "throttle", None]


def test_fault_actions_can_include_the_queries(sandbox):
    sandbox.configure(error_5xx_rate=1, fault_actions=["QueryPushAnalysisCoreIndex"])

    answer = call(sandbox.url, "QueryPushAnalysisCoreIndex", {**BASE, "StartTime": 0, "EndTime": 1})
    push = call(sandbox.url, "PushTemplate", push_params())

    assert answer.status in (500, 503)
    assert push.body["ResultCode"] == "OK"


def test_ambiguous_push_multiple_is_accepted_then_dropped(sandbox):
    sandbox.configure(ambiguous_rate=1)

    with pytest.raises(OSError):
        multiple(sandbox, 2)

    [record] = sandbox.records()
    assert (record["accepted"], record["http_status"], record["fault"]) == (True, None, "ambiguous")


def test_qps_cap_counts_every_sending_action_together(sandbox):
    multiple(sandbox, 1)
    time.sleep(1.05)
    sandbox.configure(qps_cap=2)

    codes = [
        call(sandbox.url, "PushTemplate", push_params()).body["ResultCode"],
        multiple(sandbox, 1, TaskName="b").body["ResultCode"],
        revoke(sandbox, "user-mk-1", "user1").body["ResultCode"],
    ]

    assert codes == ["OK", "OK", "8011"]


def test_fail_code_forces_push_multiple_too(sandbox):
    sandbox.configure(fail_code="3032")

    assert multiple(sandbox, 1).body["ResultCode"] == "3032"
    assert revoke(sandbox, "x", "y").body["ResultCode"] == "MESSAGE_NOT_FOUND"
