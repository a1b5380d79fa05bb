"""mpaas_sandbox over real loopback HTTP: signature, gateway errors, rules, faults, ledger, CLI."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mpaas_sandbox import (
    ConfigError,
    SandboxServer,
    percent_encode,
    sign,
    string_to_sign,
    summarize,
)
from mpaas_sandbox.__main__ import main as cli_main

try:
    from tests.sandbox_helpers import (
        APP_ID,
        CONTROL_TOKEN,
        KEY_ID,
        SECRET,
        TEMPLATE,
        WORKSPACE,
        call,
        control,
        push_params,
        signed_request,
        utc_timestamp,
    )
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from sandbox_helpers import (  # type: ignore[no-redef]
        APP_ID,
        CONTROL_TOKEN,
        KEY_ID,
        SECRET,
        TEMPLATE,
        WORKSPACE,
        call,
        control,
        push_params,
        signed_request,
        utc_timestamp,
    )

ROOT = Path(__file__).resolve().parents[1]
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000
BASE = {
    "keys": {KEY_ID: SECRET},
    "apps": {APP_ID: [WORKSPACE]},
    "templates": {TEMPLATE: ["name", "money"]},
    "seed": 0,
    "latency_ms": 0,
    "qps_cap": 0,
    "throttle_rate": 0,
    "error_5xx_rate": 0,
    "ambiguous_rate": 0,
    "hold_rate": 0,
    "hold_seconds": 15,
    "fail_code": None,
    "timezone": "Asia/Shanghai",
    "expired_min": 180,
    "expired_max": 259200,
    "task_quota": 100,
    "clock_offset_seconds": 0,
}


@pytest.fixture(autouse=True)
def _redis_settings():
    """Overrides conftest's autouse Django/Redis fixture: the sandbox needs neither."""


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    ledger = tmp_path_factory.mktemp("sandbox") / "ledger.jsonl"
    with SandboxServer(ledger_path=str(ledger), control_token=CONTROL_TOKEN, **BASE) as server:
        yield server


@pytest.fixture
def sandbox(shared):
    shared.configure(**BASE)
    shared.reset()
    return shared


def push(server, **changes):
    return call(server.url, "PushTemplate", push_params(**changes))


def now_ms(server) -> int:
    return int((time.time() + server.config.clock_offset_seconds) * 1000)


def midnight_ms(days_from_today: int = 0) -> int:
    today = datetime.now(SHANGHAI).date() + timedelta(days=days_from_today)
    return int(datetime(today.year, today.month, today.day, tzinfo=SHANGHAI).timestamp() * 1000)


# -- signature ---------------------------------------------------------------------------


def test_signature_reproduces_the_push_api_test_vector():
    params = {
        "Action": "PushTemplate",
        "Version": "2019-08-21",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "Timestamp": "2024-01-01T00:00:00Z",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureType": "",
        "SignatureVersion": "1.0",
        "SignatureNonce": "00000000000000000000000000000001",
        "AccessKeyId": "testid",
        "AppId": "ONEX570DA89211721",
        "WorkspaceId": "default",
        "TemplateName": "tpl_1",
        "TargetMsgkey": '{"user1024":"1578807462788"}',
        "TemplateKeyValue": '{"name":"张三 *~"}',
        "DeliveryType": "3",
        "ExpiredSeconds": "300",
    }
    assert sign(params, "testsecret") == "oMR5m4/zA0AXIGZbaj3NfOAciBU="
    assert sign({**params, "Signature": "ignored"}, "testsecret") == "oMR5m4/zA0AXIGZbaj3NfOAciBU="
    assert string_to_sign("POST", {"b": "2", "a": "x y"}) == "POST&%2F&a%3Dx%2520y%26b%3D2"


def test_percent_encode_follows_rfc_3986():
    assert percent_encode("a b*~/é+") == "a%20b%2A~%2F%C3%A9%2B"
    assert percent_encode("Az09-_.~") == "Az09-_.~"


# -- a successful call and its ledger line -----------------------------------------------


def test_push_template_is_accepted_and_recorded(sandbox):
    answer = push(sandbox, TargetMsgkey=json.dumps({"user1": "m-1", "user2": "m-2"}))

    assert answer.status == 200
    assert answer.body["ResultCode"] == "OK"
    assert answer.body["ResultMessage"] == ""
    # an immediate push has no task ID: Data is left out (the models drop a null field)
    assert answer.body["PushResult"] == {"Success": True, "ResultMsg": ""}
    assert answer.headers["x-acs-request-id"] == answer.body["RequestId"]
    [record] = sandbox.records()
    assert record["request_id"] == answer.body["RequestId"]
    assert record["action"] == "PushTemplate"
    assert record["access_key_id"] == KEY_ID
    assert (record["http_status"], record["result_code"], record["accepted"]) == (200, "OK", True)
    assert record["fault"] is None
    assert record["app_id"] == APP_ID
    assert record["task_name"] == "spring sale"
    assert record["template_name"] == TEMPLATE
    assert record["delivery_type"] == "3"
    assert record["targets"] == {"user1": "m-1", "user2": "m-2"}
    assert record["params"]["ExpiredSeconds"] == "300"
    assert json.loads(record["params"]["TemplateKeyValue"]) == {"name": "张三 *~", "money": "200"}
    assert "Signature" not in record["params"] and "AccessKeyId" not in record["params"]
    line = Path(sandbox.config.ledger_path).read_text(encoding="utf-8")
    assert SECRET not in line and "Signature" not in line
    assert json.loads(line) == record


def test_get_with_every_parameter_in_the_query_is_accepted(sandbox):
    answer = call(sandbox.url, "PushTemplate", push_params(), method="GET")

    assert (answer.status, answer.body["ResultCode"]) == (200, "OK")
    assert sandbox.records()[0]["targets"] == {"user1024": "k-1024"}


def test_keep_alive_connection_serves_many_requests_without_delayed_ack_stalls(sandbox):
    host, port = sandbox.url[len("http://") :].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    durations = []
    for i in range(20):
        request = signed_request(sandbox.url, "PushTemplate", push_params(TaskName=f"t{i}"))
        started = time.perf_counter()
        connection.request("POST", request.selector, request.data, dict(request.header_items()))
        response = connection.getresponse()
        body = json.loads(response.read())
        durations.append(time.perf_counter() - started)
        assert response.getheader("Connection") == "keep-alive"
        assert body["ResultCode"] == "OK"
    connection.close()
    # A response written in two pieces stalls ~40 ms on the client's delayed ACK.
    assert sorted(durations)[10] < 0.03
    assert len(sandbox.records()) == 20


# -- gateway errors ----------------------------------------------------------------------


def test_wrong_secret_gives_signature_does_not_match_with_server_string(sandbox):
    timestamp = utc_timestamp()
    answer = call(
        sandbox.url,
        "PushTemplate",
        push_params(),
        secret="not-the-secret",
        nonce="nonce-1",
        timestamp=timestamp,
    )
    signed = {
        "Action": "PushTemplate",
        "Version": "2019-08-21",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "Timestamp": timestamp,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureType": "",
        "SignatureVersion": "1.0",
        "SignatureNonce": "nonce-1",
        "AccessKeyId": KEY_ID,
        **{k: str(v) for k, v in push_params().items()},
    }

    assert answer.status == 400
    assert set(answer.body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert answer.body["Code"] == "SignatureDoesNotMatch"
    assert answer.body["Message"] == (
        "Specified signature is not matched with our calculation. "
        "server string to sign is:" + string_to_sign("POST", signed)
    )
    # the SDK compares message.split(':')[1] with its own string to sign: exactly one colon
    assert answer.body["Message"].split(":")[1] == string_to_sign("POST", signed)
    [record] = sandbox.records()
    assert (record["http_status"], record["result_code"]) == (400, "SignatureDoesNotMatch")
    assert (record["authenticated"], record["accepted"]) == (False, False)


def test_unknown_access_key_id_is_not_found(sandbox):
    answer = call(sandbox.url, "PushTemplate", push_params(), key_id="nobody")

    assert (answer.status, answer.body["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    assert sandbox.records()[0]["access_key_id"] == "nobody"


@pytest.mark.parametrize(
    ("timestamp", "code"),
    [
        (-16 * 60, "InvalidTimeStamp.Expired"),
        (+16 * 60, "InvalidTimeStamp.Expired"),
        ("2024-01-01 00:00:00", "InvalidTimeStamp.Format"),
        ("yesterday", "InvalidTimeStamp.Format"),
    ],
)
def test_timestamp_outside_15_minutes_or_malformed_is_rejected(sandbox, timestamp, code):
    # offsets are applied now, not at collection: a long suite must not age them
    if isinstance(timestamp, int):
        timestamp = utc_timestamp(timestamp)
    answer = call(sandbox.url, "PushTemplate", push_params(), timestamp=timestamp)

    assert (answer.status, answer.body["Code"]) == (400, code)


def test_timestamp_within_15_minutes_is_accepted(sandbox):
    answer = call(sandbox.url, "PushTemplate", push_params(), timestamp=utc_timestamp(-14 * 60))

    assert answer.body["ResultCode"] == "OK"


def test_reused_nonce_is_rejected_for_the_same_key(sandbox):
    first = call(sandbox.url, "PushTemplate", push_params(), nonce="nonce-42")
    second = call(sandbox.url, "PushTemplate", push_params(TaskName="again"), nonce="nonce-42")

    assert first.body["ResultCode"] == "OK"
    assert (second.status, second.body["Code"]) == (400, "SignatureNonceUsed")
    assert [r["accepted"] for r in sandbox.records()] == [True, False]


def test_nonce_of_a_badly_signed_call_is_not_spent(sandbox):
    call(sandbox.url, "PushTemplate", push_params(), nonce="nonce-7", secret="wrong")
    answer = call(sandbox.url, "PushTemplate", push_params(), nonce="nonce-7")

    assert answer.body["ResultCode"] == "OK"


@pytest.mark.parametrize("name", ["Timestamp", "SignatureNonce", "AccessKeyId", "Version"])
def test_missing_common_parameter_is_named(sandbox, name):
    answer = call(sandbox.url, "PushTemplate", push_params(), drop=(name,))

    assert (answer.status, answer.body["Code"]) == (400, f"Missing{name}")


def test_unknown_action_is_not_found(sandbox):
    answer = call(sandbox.url, "PushSimple", push_params())

    assert (answer.status, answer.body["Code"]) == (404, "InvalidApi.NotFound")


# -- PushTemplate rules ------------------------------------------------------------------


def _targets(count: int) -> str:
    return json.dumps({f"user{i}": f"key{i}" for i in range(count)})


FAILING = [
    ({"AppId": None}, "3003", "AppId or WorkspaceId is empty"),
    ({"WorkspaceId": ""}, "3003", "AppId or WorkspaceId is empty"),
    ({"AppId": "OTHERAPP"}, "3007", "AppId OTHERAPP is not valid"),
    ({"WorkspaceId": "prod"}, "8012", "WorkspaceId prod is not valid for AppId " + APP_ID),
    ({"TaskName": ""}, "3019", "TaskName is empty"),
    ({"TaskName": None}, "3019", "TaskName is empty"),
    ({"DeliveryType": 4}, "3009", "DeliveryType must be one of 1, 2, 3, 5, 6, 7"),
    ({"DeliveryType": "x"}, "3009", "DeliveryType must be one of 1, 2, 3, 5, 6, 7"),
    ({"ExpiredSeconds": None}, "3020", "ExpiredSeconds must be an integer number of seconds"),
    ({"ExpiredSeconds": "3.5"}, "3020", "ExpiredSeconds must be an integer number of seconds"),
    ({"ExpiredSeconds": 179}, "3020", "ExpiredSeconds must be at least 180"),
    ({"ExpiredSeconds": 259201}, "3026", "ExpiredSeconds must be at most 259200"),
    ({"TargetMsgkey": None}, "3021", "TargetMsgkey is empty"),
    ({"TargetMsgkey": "{}"}, "3021", "TargetMsgkey has no targets"),
    ({"TargetMsgkey": '["u1"]'}, "3028", "TargetMsgkey must be a JSON object of target -> msgKey"),
    ({"TargetMsgkey": '{"u1": 5}'}, "3028", "TargetMsgkey must map non-empty target ids"),
    ({"TargetMsgkey": '{"u1": "k", "u2": "k"}'}, "3028", "TargetMsgkey repeats a msgKey"),
    ({"TargetMsgkey": _targets(11)}, "3029", "TargetMsgkey has 11 targets, at most 10"),
    ({"TemplateName": "tpl,1"}, "3028", "TemplateName may not contain a comma"),
    ({"TemplateName": "missing"}, "3022", "template missing does not exist"),
    ({"TemplateKeyValue": "[1]"}, "3023", "TemplateKeyValue must be a JSON object"),
    ({"TemplateKeyValue": '{"name": "x"}'}, "3023", "TemplateKeyValue misses placeholder money"),
    ({"TemplateKeyValue": None}, "3023", "TemplateKeyValue misses placeholder name"),
    ({"ExtendedParams": "[1]"}, "3044", "ExtendedParams must be a JSON object"),
    ({"ExtendedParams": _targets(21)}, "3035", "ExtendedParams has 21 keys, at most 20"),
    (
        {"ExtendedParams": '{"silent": "1"}'},
        "3044",
        "ExtendedParams may not set reserved key silent",
    ),
    (
        {"ExtendedParams": '{"taskId": "1"}'},
        "3044",
        "ExtendedParams may not set reserved key taskId",
    ),
    ({"StrategyType": 3}, "3028", "StrategyType must be 0, 1 or 2"),
    ({"StrategyType": 1}, "3028", "StrategyContent must be a JSON object when StrategyType is 1/2"),
    ({"SmsStrategy": 2}, "3028", "SmsSignName is required when SmsStrategy is not 0"),
    (
        {"SmsStrategy": 2, "SmsSignName": "s", "SmsTemplateCode": "SMS_1"},
        "3028",
        "SmsTemplateParam is required when SmsStrategy is not 0",
    ),
    ({"NotifyType": "push"}, "3028", "NotifyType must be notify or transparent"),
    ({"Classification": "2"}, "3028", "Classification must be 0 or 1"),
    ({"ThirdChannelCategory": "hms"}, "3028", "ThirdChannelCategory must be a JSON object"),
    ({"ThirdChannelCategory": '{"hms": 9}'}, "3028", "ThirdChannelCategory.hms must be a code"),
    ({"NotifyLevel": "[2]"}, "3028", "NotifyLevel must be a JSON object"),
    ({"ActivityEvent": "start"}, "3028", "ActivityEvent must be update or end"),
    ({"ActivityContentState": "1"}, "3028", "ActivityContentState must be a JSON object"),
    ({"DismissalDate": "soon"}, "3028", "DismissalDate must be an integer timestamp in seconds"),
    ({"appId": APP_ID}, "3028", "unknown parameter appId"),
    ({"Title": "hello"}, "3028", "unknown parameter Title"),
    ({"TargetMsg.1.Target": "u1"}, "3028", "unknown parameter TargetMsg.1.Target"),
    ({"PushAction": "open"}, "3028", "PushAction must be an integer"),
    ({"TransparentMessagePayload": "[1]"}, "3028", "TransparentMessagePayload must be a JSON"),
]


@pytest.mark.parametrize(("changes", "code", "message"), FAILING)
def test_push_template_rule_answers_the_real_code(sandbox, changes, code, message):
    answer = push(sandbox, **changes)

    assert answer.status == 200
    assert answer.body["ResultCode"] == code
    assert answer.body["ResultMessage"].startswith(message)
    assert answer.body["PushResult"] == {
        "Success": False,
        "ResultMsg": answer.body["ResultMessage"],
    }
    [record] = sandbox.records()
    assert (record["result_code"], record["accepted"], record["authenticated"]) == (
        code,
        False,
        True,
    )


PASSING = [
    {"TargetMsgkey": _targets(10)},
    {"ExpiredSeconds": 180},
    {"ExpiredSeconds": 259200},
    {"DeliveryType": 1},
    {"DeliveryType": 7},
    {"TemplateKeyValue": '{"name": "a", "money": "1", "extra": "ignored"}'},
    {"ExtendedParams": json.dumps({f"k{i}": "v" for i in range(20)})},
    {"ExtendedParams": '{"sound": "ding", "badge": "1", "mutable-content": "1"}'},
    {"NotifyType": "transparent", "Classification": "0", "MiChannelId": "123321"},
    {"ThirdChannelCategory": '{"hms": "9", "vivo": "1"}', "NotifyLevel": '{"oppo": "2"}'},
    {
        "SmsStrategy": 2,
        "SmsSignName": "mPaaS",
        "SmsTemplateCode": "SMS_216070269",
        "SmsTemplateParam": '{"code": "123456"}',
    },
    {"SmsStrategy": 0},
    {"ActivityEvent": "end", "ActivityContentState": '{"score": 1}', "DismissalDate": 1700000000},
    {"StrategyType": 0, "NotifyType": ""},
    # the official request model's fields beyond PUSH_API.md §2
    {"PushAction": 0, "Silent": 1, "ChannelId": "c1", "TenantId": "t1", "VendorTemplate": "{}"},
    {"TransparentMessagePayload": '{"hms": {"k": "v"}}', "TransparentMessageUrgency": "HIGH"},
]


@pytest.mark.parametrize("changes", PASSING)
def test_push_template_valid_variant_is_accepted(sandbox, changes):
    answer = push(sandbox, **changes)

    assert (answer.body["ResultCode"], answer.body["PushResult"]["Success"]) == ("OK", True)
    assert sandbox.records()[0]["accepted"] is True


def test_expiry_bounds_are_configurable(sandbox):
    sandbox.configure(expired_min=60, expired_max=600)

    assert push(sandbox, ExpiredSeconds=60).body["ResultCode"] == "OK"
    assert push(sandbox, ExpiredSeconds=601).body["ResultCode"] == "3026"


def test_any_app_is_accepted_when_none_is_configured(sandbox):
    sandbox.configure(apps={})

    assert push(sandbox, AppId="ANY", WorkspaceId="w").body["ResultCode"] == "OK"


# -- StrategyContent ---------------------------------------------------------------------


def _loop(**changes):
    content = {
        "startTime": midnight_ms(0),
        "endTime": midnight_ms(7),
        "circleType": 2,
        "circleValue": [1, 3],
        "time": "09:45:11",
    }
    content.update(changes)
    return {"StrategyType": 2, "StrategyContent": json.dumps(content)}


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (
            {"StrategyType": 1, "StrategyContent": '{"fixedTime": 1000}'},
            "fixedTime must be in the future",
        ),
        (
            {"StrategyType": 1, "StrategyContent": '{"fixedTime": "soon"}'},
            "fixedTime must be epoch milliseconds",
        ),
        (
            _loop(startTime=midnight_ms(-1)),
            "startTime must not be before 00:00 today (Asia/Shanghai)",
        ),
        (
            _loop(startTime=midnight_ms(3), endTime=midnight_ms(2)),
            "endTime must not be before startTime",
        ),
        (_loop(endTime=midnight_ms(181)), "endTime must be at most 180 days after today"),
        (_loop(circleType=4), "circleType must be 1, 2 or 3"),
        (_loop(circleValue=[0, 8]), "circleValue must list weekly days from 1 to 7"),
        (_loop(circleType=3, circleValue=[32]), "circleValue must list monthly days from 1 to 31"),
        (_loop(circleType=1, circleValue=[1]), "circleValue must be empty for daily loops"),
        (_loop(time="9:45"), "time must be HH:mm:ss"),
        (_loop(time="24:00:00"), "time must be HH:mm:ss"),
    ],
)
def test_strategy_content_rule_is_named_in_3028(sandbox, strategy, message):
    answer = push(sandbox, **strategy)

    assert answer.body["ResultCode"] == "3028"
    assert answer.body["ResultMessage"] == f"StrategyContent.{message}"


@pytest.mark.parametrize(
    "strategy",
    [
        _loop(),
        _loop(circleType=1, circleValue=None, endTime=midnight_ms(180)),
        _loop(circleType=3, circleValue=[1, 31], startTime=midnight_ms(1), endTime=midnight_ms(40)),
    ],
)
def test_valid_loop_strategy_creates_a_task(sandbox, strategy):
    answer = push(sandbox, **strategy)

    task_id = answer.body["PushResult"]["Data"]
    assert answer.body["ResultCode"] == "OK"
    assert len(task_id) == 32 and int(task_id, 16) >= 0
    assert sandbox.records()[0]["task_id"] == task_id


# -- scheduled tasks ---------------------------------------------------------------------


def _query(server, start_ms, end_ms, **extra):
    params = {
        "AppId": APP_ID,
        "WorkspaceId": WORKSPACE,
        "StartTime": start_ms,
        "EndTime": end_ms,
        "Type": 1,
    }
    return call(server.url, "QueryPushSchedulerList", {**params, **extra})


def test_fixed_time_task_is_listed_executed_after_clock_shift_and_cancelled(sandbox):
    start = now_ms(sandbox)
    fixed_a, fixed_b = start + 3_600_000, start + 3 * 3_600_000
    task_a = push(sandbox, StrategyType=1, StrategyContent=json.dumps({"fixedTime": fixed_a}))
    task_b = push(sandbox, StrategyType=1, StrategyContent=json.dumps({"fixedTime": fixed_b}))
    id_a, id_b = task_a.body["PushResult"]["Data"], task_b.body["PushResult"]["Data"]

    listed = _query(sandbox, start, start + 4 * 3_600_000)
    assert listed.body["ResultCode"] == "OK"
    data = listed.body["ResultContent"]["Data"]
    assert data["TotalCount"] == 2
    first = data["List"][0]
    assert first["UniqueId"] == id_a
    # ExecutedStatus is a string (the model says str); a fixed task is its own parent
    assert (first["PushTime"], first["ExecutedStatus"], first["StrategyType"]) == (
        fixed_a,
        "0",
        1,
    )
    assert (first["Type"], first["CreateType"], first["DeliveryType"], first["ParentId"]) == (
        1,
        0,
        3,
        id_a,
    )
    assert first["PushTitle"] == TEMPLATE
    assert abs(first["GmtCreate"] - start) < 5_000
    assert [item["UniqueId"] for item in data["List"]] == [id_a, id_b]
    assert _query(sandbox, start, fixed_a - 1).body["ResultContent"]["Data"]["TotalCount"] == 0

    status, clock = control(sandbox.url, "clock", {"offset_seconds": 2 * 3600})
    assert status == 200 and clock["offset_seconds"] == 7200
    shifted = _query(sandbox, start, start + 4 * 3_600_000).body["ResultContent"]["Data"]["List"]
    assert [(item["UniqueId"], item["ExecutedStatus"]) for item in shifted] == [
        (id_a, "1"),
        (id_b, "0"),
    ]

    cancel = call(
        sandbox.url,
        "CancelPushScheduler",
        {"AppId": APP_ID, "WorkspaceId": WORKSPACE, "UniqueIds": f"{id_a},{id_b},nope", "Type": 1},
    )
    assert cancel.body["ResultCode"] == "OK"
    # ResultContent is a string (the model says str): the sandbox puts JSON text in it
    assert isinstance(cancel.body["ResultContent"], str)
    assert json.loads(cancel.body["ResultContent"]) == {
        "Cancelled": [id_b],
        "AlreadyExecuted": [id_a],
        "NotFound": ["nope"],
    }
    remaining = _query(sandbox, start, start + 4 * 3_600_000).body["ResultContent"]["Data"]
    assert [item["UniqueId"] for item in remaining["List"]] == [id_a]
    assert [r["action"] for r in sandbox.records()][-2:] == [
        "CancelPushScheduler",
        "QueryPushSchedulerList",
    ]


def test_loop_task_lists_one_sub_task_per_occurrence_under_its_parent(sandbox):
    answer = push(sandbox, **_loop(circleType=1, circleValue=None, endTime=midnight_ms(2)))
    task_id = answer.body["PushResult"]["Data"]
    window = (midnight_ms(0), midnight_ms(10))
    at = (9 * 3600 + 45 * 60 + 11) * 1000

    items = _query(sandbox, *window).body["ResultContent"]["Data"]["List"]
    assert [item["PushTime"] for item in items] == [midnight_ms(d) + at for d in range(3)]
    assert {item["ParentId"] for item in items} == {task_id}
    assert task_id not in {item["UniqueId"] for item in items}  # sub-tasks have their own IDs
    assert len({item["UniqueId"] for item in items}) == 3
    assert {item["StrategyType"] for item in items} == {2}
    by_parent = _query(sandbox, *window, UniqueId=task_id).body["ResultContent"]["Data"]
    assert by_parent["TotalCount"] == 3
    one = _query(sandbox, *window, UniqueId=items[1]["UniqueId"]).body["ResultContent"]["Data"]
    assert [i["UniqueId"] for i in one["List"]] == [items[1]["UniqueId"]]

    moment = midnight_ms(1) + at + 1000  # just after the second occurrence
    sandbox.configure(clock_offset_seconds=(moment - time.time() * 1000) / 1000)
    statuses = [
        i["ExecutedStatus"] for i in _query(sandbox, *window).body["ResultContent"]["Data"]["List"]
    ]
    assert statuses == ["1", "1", "0"]

    cancel = call(
        sandbox.url,
        "CancelPushScheduler",
        {"AppId": APP_ID, "WorkspaceId": WORKSPACE, "UniqueIds": task_id},
    )
    assert json.loads(cancel.body["ResultContent"])["Cancelled"] == [task_id]
    left = _query(sandbox, *window).body["ResultContent"]["Data"]["List"]
    assert [i["ExecutedStatus"] for i in left] == ["1", "1"]  # the one to come is gone


def test_query_paging_and_validation(sandbox):
    start = now_ms(sandbox)
    for minute in (1, 2, 3):
        push(
            sandbox,
            StrategyType=1,
            StrategyContent=json.dumps({"fixedTime": start + minute * 60_000}),
        )

    page = _query(sandbox, start, start + 600_000, PageNumber=2, PageSize=2).body["ResultContent"][
        "Data"
    ]
    assert (page["TotalCount"], [i["PushTime"] for i in page["List"]]) == (3, [start + 180_000])
    missing = call(
        sandbox.url, "QueryPushSchedulerList", {"AppId": APP_ID, "WorkspaceId": WORKSPACE}
    )
    assert (missing.body["ResultCode"], missing.body["ResultMessage"]) == (
        "3028",
        "StartTime must be an integer",
    )
    assert _query(sandbox, start, start + 1, AppId="OTHER").body["ResultCode"] == "3007"


def test_scheduled_task_quota_per_app(sandbox):
    sandbox.configure(task_quota=1)
    content = json.dumps({"fixedTime": now_ms(sandbox) + 600_000})

    assert push(sandbox, StrategyType=1, StrategyContent=content).body["ResultCode"] == "OK"
    second = push(sandbox, StrategyType=1, StrategyContent=content)
    assert (second.body["ResultCode"], second.body["ResultMessage"]) == (
        "3028",
        "the app already has 1 unexecuted scheduled tasks (quota)",
    )
    assert push(sandbox).body["ResultCode"] == "OK"  # immediate pushes are not tasks


# -- faults ------------------------------------------------------------------------------


def test_qps_cap_answers_8011_above_the_cap(sandbox):
    sandbox.configure(qps_cap=3)

    codes = [push(sandbox, TaskName=f"t{i}").body["ResultCode"] for i in range(5)]

    assert codes == ["OK", "OK", "OK", "8011", "8011"]
    assert [r["fault"] for r in sandbox.records()][3:] == ["qps_cap", "qps_cap"]
    assert sandbox.summary()["accepted_calls"] == 3
    other = call(
        sandbox.url,
        "QueryPushSchedulerList",
        {"AppId": APP_ID, "WorkspaceId": WORKSPACE, "StartTime": 0, "EndTime": 1},
    )
    assert other.body["ResultCode"] == "OK"  # faults apply to PushTemplate only


def test_error_5xx_rate_answers_gateway_errors(sandbox):
    sandbox.configure(error_5xx_rate=1)

    answers = [push(sandbox, TaskName=f"t{i}") for i in range(6)]

    assert {(a.status, a.body["Code"]) for a in answers} == {
        (503, "ServiceUnavailable"),
        (500, "InternalError"),
    }
    assert all(
        set(a.body) == {"RequestId", "HostId", "Code", "Message", "Recommend"} for a in answers
    )
    assert {(r["fault"], r["accepted"]) for r in sandbox.records()} == {("error_5xx", False)}


def test_throttle_rate_answers_8011(sandbox):
    sandbox.configure(throttle_rate=1)

    answer = push(sandbox)

    assert (answer.status, answer.body["ResultCode"]) == (200, "8011")
    assert answer.body["PushResult"]["Success"] is False


def test_ambiguous_fault_accepts_then_drops_the_connection(sandbox):
    sandbox.configure(ambiguous_rate=1)

    with pytest.raises(ConnectionError):
        push(sandbox)

    [record] = sandbox.records()
    assert (record["accepted"], record["fault"], record["http_status"]) == (True, "ambiguous", None)
    assert record["targets"] == {"user1024": "k-1024"}


def test_hold_fault_accepts_then_answers_late(sandbox):
    sandbox.configure(hold_rate=1, hold_seconds=0.5)

    with pytest.raises(TimeoutError):
        call(sandbox.url, "PushTemplate", push_params(), timeout=0.2)
    [record] = sandbox.records()
    assert (record["accepted"], record["fault"], record["latency_ms"]) == (True, "hold", 500)

    started = time.perf_counter()
    assert call(sandbox.url, "PushTemplate", push_params(TaskName="b")).body["ResultCode"] == "OK"
    assert time.perf_counter() - started >= 0.5


def test_latency_range_delays_answers(sandbox):
    sandbox.configure(latency_ms="20-30")

    started = time.perf_counter()
    push(sandbox)
    push(sandbox, TaskName="two")

    assert time.perf_counter() - started >= 0.04
    assert all(20 <= r["latency_ms"] <= 30 for r in sandbox.records())


def test_fail_code_forces_a_business_code(sandbox):
    sandbox.configure(fail_code="3022")

    answer = push(sandbox)

    assert (answer.body["ResultCode"], answer.body["PushResult"]["Success"]) == ("3022", False)
    assert sandbox.records()[0]["accepted"] is False


def _fault_sequence(server, calls=30):
    for i in range(calls):
        try:
            push(server, TaskName=f"t{i}")
        except ConnectionError:
            pass  # the ambiguous fault drops the connection: recorded in the ledger all the same
    return [(r["fault"], r["latency_ms"]) for r in server.records()]


def test_same_seed_gives_the_same_fault_sequence(sandbox):
    faults = {
        "throttle_rate": 0.3,
        "error_5xx_rate": 0.2,
        "ambiguous_rate": 0.1,
        "latency_ms": "0-5",
    }
    sandbox.configure(seed=7, **faults)
    first = _fault_sequence(sandbox)
    sandbox.reset()  # reseeds from the configured seed
    second = _fault_sequence(sandbox)
    sandbox.configure(seed=8)
    sandbox.reset()
    other = _fault_sequence(sandbox)

    assert first == second
    assert other != first
    assert {fault for fault, _ in first} == {None, "throttle", "error_5xx", "ambiguous"}


# -- ledger summary ----------------------------------------------------------------------


def test_summary_counts_resends_and_targets_under_two_msgkeys(sandbox):
    push(sandbox, TaskName="t1", TargetMsgkey='{"u1": "k1", "u2": "k2"}')
    push(sandbox, TaskName="t1", TargetMsgkey='{"u1": "k1", "u2": "k2"}')  # resend, same msgKeys
    push(sandbox, TaskName="t1", TargetMsgkey='{"u1": "k9"}')  # second msgKey for u1: violation
    push(sandbox, TaskName="t2", TargetMsgkey='{"u1": "k10"}')  # other task: fine
    push(sandbox, TaskName="t3", TemplateName="missing")
    call(sandbox.url, "PushTemplate", push_params(), secret="wrong")

    summary = sandbox.summary()

    assert summary["calls"] == 6
    assert summary["accepted_calls"] == 4
    assert summary["targets_accepted"] == 6
    assert summary["distinct_msgkeys"] == 4
    assert summary["msgkeys_accepted_more_than_once"] == 2
    assert summary["resent_msgkey_examples"] == ["k1", "k2"]
    assert summary["targets_with_multiple_msgkeys"] == 1
    assert summary["multiple_msgkey_examples"] == [
        {"task_name": "t1", "target": "u1", "msgkeys": ["k1", "k9"]}
    ]
    assert summary["max_targets_per_call"] == 2
    assert summary["by_result_code"] == {"3022": 1, "OK": 4, "SignatureDoesNotMatch": 1}
    assert 1 <= summary["peak_calls_per_second"] <= 5  # the unauthenticated call never counts
    status, stats = control(sandbox.url, "stats")
    assert status == 200 and stats == summary


def test_summarize_peak_is_a_sliding_one_second_window():
    def rec(ts, action="PushTemplate", authenticated=True):
        return {"ts": ts, "action": action, "authenticated": authenticated, "result_code": "OK"}

    records = [rec(t) for t in (0.0, 0.2, 0.5, 0.99, 1.0, 1.5, 3.0)]
    records += [rec(0.1, authenticated=False), rec(0.3, action="QueryPushSchedulerList")]

    summary = summarize(records)

    assert summary["peak_calls_per_second"] == 4
    assert (summary["calls"], summary["push_calls"], summary["accepted_calls"]) == (9, 8, 0)
    assert summarize([])["peak_calls_per_second"] == 0


def test_summary_cli_reads_the_ledger_file(sandbox):
    push(sandbox, TaskName="t1", TargetMsgkey='{"u1": "k1"}')
    push(sandbox, TaskName="t1", TargetMsgkey='{"u1": "k2"}')
    ledger = sandbox.config.ledger_path

    as_json = subprocess.run(
        [sys.executable, "-m", "mpaas_sandbox", "summary", ledger, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    as_text = subprocess.run(
        [sys.executable, "-m", "mpaas_sandbox", "summary", ledger],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )

    summary = json.loads(as_json.stdout)
    assert (summary["accepted_calls"], summary["targets_with_multiple_msgkeys"]) == (2, 1)
    assert "targets under 2+ msgKeys (bad)     1" in as_text.stdout
    assert "violation: task 't1' target 'u1' msgKeys k1, k2" in as_text.stdout


# -- control endpoints and configuration -------------------------------------------------


def test_control_config_validates_and_applies(sandbox):
    bad = control(sandbox.url, "config", {"error_5xx_rate": 2})
    unknown = control(sandbox.url, "config", {"nope": 1})
    good = control(sandbox.url, "config", {"fail_code": "3032", "latency_ms": "1-2"})

    assert bad == (400, {"error": "error_5xx_rate must be between 0 and 1"})
    assert unknown == (400, {"error": "unknown setting nope"})
    assert good[0] == 200 and good[1]["fail_code"] == "3032" and good[1]["latency_ms"] == [1, 2]
    assert good[1]["keys"] == [KEY_ID]  # ids only, never secrets
    assert push(sandbox).body["ResultCode"] == "3032"


def test_control_templates_registers_a_template(sandbox):
    status, config = control(
        sandbox.url, "templates", {"name": "welcome", "placeholders": ["user"]}
    )
    bad = control(sandbox.url, "templates", {"name": "a,b", "placeholders": []})

    assert status == 200 and config["templates"]["welcome"] == ["user"]
    assert bad[0] == 400
    answer = push(sandbox, TemplateName="welcome", TemplateKeyValue='{"user": "Li"}')
    assert answer.body["ResultCode"] == "OK"


def test_control_reset_clears_ledger_memory_file_and_tasks(sandbox):
    push(
        sandbox, StrategyType=1, StrategyContent=json.dumps({"fixedTime": now_ms(sandbox) + 60_000})
    )
    assert control(sandbox.url, "ledger")[1].count("\n") == 1

    assert control(sandbox.url, "reset", {}) == (200, {"reset": True})

    assert sandbox.records() == []
    assert Path(sandbox.config.ledger_path).read_text() == ""
    assert control(sandbox.url, "tasks") == (200, [])


def _raw_control(server, path, body=b"", headers=None, method="POST"):
    """A request the way a web page (or curl) would send it: no helper adds anything."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, f"/_sandbox/{path}", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_text_plain_post_without_token_is_refused_and_the_ledger_is_kept(sandbox):
    """The attack: a page in the operator's browser posts a "simple" cross-origin request
    (text/plain needs no CORS preflight) to empty the ledger or move it."""
    push(sandbox)
    ledger_file = Path(sandbox.config.ledger_path)
    before = ledger_file.read_text(encoding="utf-8")

    attacks = [
        ("reset", b"{}", {"Content-Type": "text/plain"}),
        ("config", b'{"ledger_path": "/tmp/evil.jsonl"}', {"Content-Type": "text/plain"}),
        ("reset", b"{}", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("reset", b"{}", {"Content-Type": "application/json"}),  # JSON, but no token
        ("reset", b"{}", {"Content-Type": "application/json", "X-Sandbox-Token": "guess" * 4}),
    ]
    for path, body, headers in attacks:
        status, answer = _raw_control(sandbox, path, body, headers)
        assert status == 403, (path, headers)
        assert "X-Sandbox-Token" in json.loads(answer)["error"]

    assert len(sandbox.records()) == 1
    assert ledger_file.read_text(encoding="utf-8") == before
    assert not Path("/tmp/evil.jsonl").exists()


def test_control_post_with_the_token_must_still_be_json(sandbox):
    push(sandbox)
    token = {"X-Sandbox-Token": CONTROL_TOKEN}

    plain = _raw_control(sandbox, "reset", b"{}", {**token, "Content-Type": "text/plain"})
    form = control(sandbox.url, "reset", {}, content_type="application/x-www-form-urlencoded")

    assert plain[0] == 415 and json.loads(plain[1]) == {
        "error": "send the body as application/json"
    }
    assert form[0] == 415
    assert len(sandbox.records()) == 1
    assert control(sandbox.url, "reset", {}) == (200, {"reset": True})
    assert sandbox.records() == []


@pytest.mark.parametrize("name", ["ledger_path", "control_token", "host", "port"])
def test_file_paths_and_the_token_cannot_be_set_over_http(sandbox, tmp_path, name):
    value = {"ledger_path": str(tmp_path / "moved.jsonl"), "port": 1}.get(name, "x" * 20)

    status, answer = control(sandbox.url, "config", {name: value})

    assert (status, answer) == (400, {"error": f"{name} is fixed when the sandbox starts"})
    assert not (tmp_path / "moved.jsonl").exists()
    assert sandbox.config.ledger_path != str(tmp_path / "moved.jsonl")
    with pytest.raises(ConfigError, match=f"{name} is fixed when the sandbox starts"):
        sandbox.configure(**{name: value})


def test_every_control_endpoint_needs_the_token_and_never_shows_it(sandbox):
    push(sandbox)
    for path in ("stats", "ledger", "config", "tasks"):
        assert control(sandbox.url, path, token=None)[0] == 403
        assert control(sandbox.url, path, token="not-the-right-token-0")[0] == 403
    status, config = control(sandbox.url, "config")
    assert status == 200 and "control_token" not in config
    assert CONTROL_TOKEN not in control(sandbox.url, "ledger")[1]
    assert sandbox.control_token == CONTROL_TOKEN


def test_a_sandbox_started_without_a_token_draws_one_nobody_else_knows():
    with SandboxServer(**BASE) as first, SandboxServer(**BASE) as second:
        assert len(first.control_token) >= 32
        assert first.control_token != second.control_token
        assert control(first.url, "stats", token=CONTROL_TOKEN)[0] == 403
        assert control(first.url, "stats", token=first.control_token)[0] == 200


def test_invalid_python_config_raises():
    with pytest.raises(ConfigError, match="hold_rate must be between 0 and 1"):
        SandboxServer(hold_rate=-0.1)
    with pytest.raises(ConfigError, match="latency_ms must be milliseconds as N or LOW-HIGH"):
        SandboxServer(latency_ms="50-20")


# -- command line ------------------------------------------------------------------------


def test_serve_rejects_a_bad_rate_with_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "mpaas_sandbox", "serve", "--error-5xx-rate", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert result.returncode == 2
    assert result.stderr == "mpaas_sandbox: error: --error-5xx-rate must be between 0 and 1\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qps-cap", "-1"], "--qps-cap must be at least 0"),
        (["--key", "no-secret"], "--key must be ID:SECRET"),
        (["--fail-code", "oops"], "--fail-code must be a numeric result code such as 3022"),
        (["--latency-ms", "50-20"], "--latency-ms must be milliseconds as N or LOW-HIGH"),
        (["--hold-rate", "0.6", "--ambiguous-rate", "0.6"], "--error-5xx-rate + --throttle-rate"),
        (["--expired-min", "600", "--expired-max", "60"], "--expired-min must not exceed"),
        (["--timezone", "Mars/Olympus"], "--timezone must be a known time zone"),
    ],
)
def test_serve_names_the_flag_and_the_rule(args, message, capsys):
    assert cli_main(["serve", *args]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"mpaas_sandbox: error: {message}")
    assert err.count("\n") == 1


def test_serve_takes_the_token_from_the_env_over_the_config_file(tmp_path, monkeypatch):
    from mpaas_sandbox.__main__ import build_config, build_parser

    settings = tmp_path / "sandbox.json"
    settings.write_text(json.dumps({"control_token": "from-the-config-file-01"}))
    args = build_parser().parse_args(
        ["serve", "--config", str(settings), "--fault-action", "PushMultiple"]
    )
    monkeypatch.delenv("MPAAS_SANDBOX_TOKEN", raising=False)

    assert build_config(args).control_token == "from-the-config-file-01"
    assert build_config(args).fault_actions == ("PushMultiple",)
    monkeypatch.setenv("MPAAS_SANDBOX_TOKEN", "from-the-environment-01")
    assert build_config(args).control_token == "from-the-environment-01"
    monkeypatch.setenv("MPAAS_SANDBOX_TOKEN", "short")
    with pytest.raises(ConfigError, match="MPAAS_SANDBOX_TOKEN must be 16 to 256 characters"):
        build_config(args)


def test_the_sandbox_runs_on_the_standard_library_alone():
    """No site-packages (-S): the official models and every other package are test-only."""
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
        "import mpaas_sandbox, mpaas_sandbox.__main__; "
        "print(sorted(m.split('.')[0] for m in sys.modules if 'site-packages' in "
        "(getattr(sys.modules[m], '__file__', '') or '')))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=30
    )

    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_serve_subprocess_answers_and_stops_on_sigterm(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mpaas_sandbox",
            "serve",
            "--port",
            "0",
            "--key",
            f"{KEY_ID}:{SECRET}",
            "--app",
            f"{APP_ID}:{WORKSPACE}",
            "--template",
            f"{TEMPLATE}:name,money",
            "--ledger",
            str(ledger),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MPAAS_SANDBOX_TOKEN": CONTROL_TOKEN},
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "the sandbox printed nothing"
        line = process.stdout.readline().strip()
        assert line.startswith("mpaas sandbox listening on http://127.0.0.1:")
        assert line.endswith(f"(ledger: {ledger})")
        url = line.split()[4]

        answer = call(url, "PushTemplate", push_params())

        assert answer.body["ResultCode"] == "OK"
        assert control(url, "stats")[1]["accepted_calls"] == 1  # the token came from the env
        assert control(url, "stats", token=None)[0] == 403
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert json.loads(ledger.read_text())["request_id"] == answer.body["RequestId"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
