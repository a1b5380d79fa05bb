"""The sandbox against the official models of alibabacloud-mpaas20201028 3.4.1 (the oracle).

For every action the sandbox serves and every answer shape (success, business failure with
HTTP 200, gateway error 4xx/5xx), the sandbox's real JSON answer, over real HTTP and signed
by aliyun-python-sdk-core as the console signs it, must survive the official response body
model's from_map -> to_map unchanged: the same keys, each value of the type the model
declares. Every request parameter the sandbox accepts must be a wire name of the official
request model (its to_map() keys), and the official client itself must be able to call
every action (it flattens PushMultiple's TargetMsg list its own way).
"""

from __future__ import annotations

import copy
import json
import sys
import time
import typing
from typing import Any

import pytest
from alibabacloud_mpaas20201028 import models as official
from alibabacloud_mpaas20201028.client import Client as OfficialClient
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from darabonba.model import DaraModel

from mpaas_sandbox import SandboxServer
from mpaas_sandbox.config import ACTIONS
from mpaas_sandbox.params import ACCEPTED_PARAMS, TARGET_MSG_FIELDS
from tests.sandbox_helpers import (
    APP_ID,
    CONTROL_TOKEN,
    KEY_ID,
    SECRET,
    TEMPLATE,
    WORKSPACE,
    push_params,
    sdk_call,
)

GATEWAY_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


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


@pytest.fixture
def sandbox(shared):
    shared.configure(
        error_5xx_rate=0,
        fault_actions=["PushTemplate", "PushMultiple", "RevokePushMessage"],
        clock_offset_seconds=0,
    )
    shared.reset()
    return shared


# -- reading a model -----------------------------------------------------------------------


def _hints(model: type) -> dict[str, Any]:
    hints = typing.get_type_hints(model.__init__, vars(sys.modules[model.__module__]))
    hints.pop("return", None)
    return hints


def _is_model(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, DaraModel)


def _sample(hint: Any) -> Any:
    if _is_model(hint):
        return _full(hint)
    origin = typing.get_origin(hint)
    if origin is list:
        return [_sample(typing.get_args(hint)[0])]
    if origin is dict:
        return {"k": "v"}
    return {str: "s", int: 1, float: 1.5, bool: True}.get(hint, "any")


def _full(model: type) -> DaraModel:
    """An instance with every field set: its to_map() shows every wire name."""
    instance = model()
    for attribute, hint in _hints(model).items():
        setattr(instance, attribute, _sample(hint))
    return instance


def _wire_fields(model: type) -> dict[str, Any]:
    """Wire name -> declared type, read from the model itself."""
    empty, fields = model().to_map(), {}  # (a list field is always sent, [] when unset)
    for attribute, hint in _hints(model).items():
        probe = model()
        setattr(probe, attribute, _sample(hint))
        [key] = [k for k, v in probe.to_map().items() if empty.get(k, ...) != v]
        fields[key] = hint
    return fields


def _type_errors(value: Any, hint: Any, path: str) -> list[str]:
    if hint is Any:
        return []
    if _is_model(hint):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, the model says {hint.__name__} (object)"]
        fields = _wire_fields(hint)
        errors = [f"{path}.{k}: not a field of {hint.__name__}" for k in value if k not in fields]
        for key, item in value.items():
            if key in fields:
                errors += _type_errors(item, fields[key], f"{path}.{key}")
        return errors
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, the model says a list"]
        (item_hint,) = typing.get_args(hint)
        return [e for i, item in enumerate(value) for e in _type_errors(item, item_hint, path)]
    if origin is dict:
        return [] if isinstance(value, dict) else [f"{path}: the model says an object"]
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    return [] if ok else [f"{path}: {type(value).__name__} {value!r}, the model says {hint}"]


def assert_matches_model(body: dict, model: type) -> None:
    """Same keys after the model's from_map -> to_map, every value of the declared type."""
    assert _type_errors(body, model, model.__name__) == []
    assert model().from_map(copy.deepcopy(body)).to_map() == body


# -- the calls of each action ----------------------------------------------------------------


def _scheduled(server, **strategy) -> str:
    content = strategy or {"fixedTime": int(time.time() * 1000) + 3_600_000}
    answer = sdk_call(
        server.url, "PushTemplate", push_params(StrategyType=1, StrategyContent=json.dumps(content))
    )
    return answer.body["PushResult"]["Data"]


def multiple_params(count: int = 2, **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "AppId": APP_ID,
        "WorkspaceId": WORKSPACE,
        "TaskName": "per person",
        "TemplateName": TEMPLATE,
        "DeliveryType": 3,
        "ExpiredSeconds": 300,
    }
    for n in range(1, count + 1):
        params[f"TargetMsg.{n}.Target"] = f"user{n}"
        params[f"TargetMsg.{n}.MsgKey"] = f"mk-{n}"
        params[f"TargetMsg.{n}.TemplateKeyValue"] = json.dumps({"name": f"N{n}", "money": n})
    params.update(changes)
    return params


def _today_range() -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"StartTime": now - 86_400_000, "EndTime": now + 86_400_000}


def _prepare(server, action: str) -> dict[str, Any]:
    """Whatever the action needs to exist first; returns the parameters of a valid call."""
    base = {"AppId": APP_ID, "WorkspaceId": WORKSPACE}
    if action == "PushTemplate":
        return push_params()
    if action == "PushMultiple":
        return multiple_params()
    if action == "RevokePushMessage":
        sdk_call(server.url, "PushTemplate", push_params())
        return {**base, "MessageId": "k-1024", "TargetId": "user1024"}
    if action == "QueryPushSchedulerList":
        _scheduled(server)
        return {**base, **_today_range(), "Type": 1}
    if action == "CancelPushScheduler":
        return {**base, "UniqueIds": _scheduled(server), "Type": 1}
    sent = sdk_call(server.url, "PushMultiple", multiple_params())
    sdk_call(server.url, "PushTemplate", push_params())
    if action == "QueryPushAnalysisCoreIndex":
        return {**base, **_today_range(), "Type": "MULTIPLE"}
    if action == "QueryPushAnalysisTaskList":
        return {**base, "PageNumber": 1, "PageSize": 10}
    return {**base, "TaskId": sent.body["PushResult"]["Data"]}


def _body_model(action: str) -> type:
    return getattr(official, f"{action}ResponseBody")


# -- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_success_answer_survives_the_official_model(sandbox, action):
    answer = sdk_call(sandbox.url, action, _prepare(sandbox, action))

    assert (answer.status, answer.body["ResultCode"]) == (200, "OK")
    assert_matches_model(answer.body, _body_model(action))
    if "PushResult" in answer.body:
        assert answer.body["PushResult"]["Success"] is True


@pytest.mark.parametrize("action", ACTIONS)
def test_business_failure_answer_survives_the_official_model(sandbox, action):
    params = {**_prepare(sandbox, action), "WorkspaceId": ""}

    answer = sdk_call(sandbox.url, action, params)

    assert (answer.status, answer.body["ResultCode"]) == (200, "3003")
    assert_matches_model(answer.body, _body_model(action))
    if "PushResult" in answer.body:
        assert answer.body["PushResult"] == {
            "Success": False,
            "ResultMsg": answer.body["ResultMessage"],
        }


def _sdk_raises(server, action: str, params: dict, secret: str = SECRET) -> ServerException:
    client = AcsClient(KEY_ID, secret, "cn-hangzhou", auto_retry=False, max_retry_time=0)
    request = CommonRequest(
        domain=server.url.removeprefix("http://"),
        version="2020-10-28",
        action_name=action,
        product="mpaas",
    )
    request.set_method("POST")
    request.set_protocol_type("http")
    for name, value in params.items():
        request.add_body_params(name, str(value))
    with pytest.raises(ServerException) as raised:
        client.do_action_with_exception(request)
    return raised.value


@pytest.mark.parametrize("action", ACTIONS)
def test_gateway_errors_have_the_gateway_shape_the_sdks_read(sandbox, action):
    params = _prepare(sandbox, action)
    wrong = sdk_call(sandbox.url, action, params, secret="not-the-secret")
    sandbox.configure(error_5xx_rate=1, fault_actions=[action])
    unavailable = sdk_call(sandbox.url, action, params)

    assert (wrong.status, wrong.body["Code"]) == (400, "SignatureDoesNotMatch")
    assert unavailable.status in (500, 503)
    assert unavailable.body["Code"] in ("ServiceUnavailable", "InternalError")
    for answer in (wrong, unavailable):
        # the keys both SDKs read (Code, Message, RequestId), all strings, nothing more
        assert set(answer.body) == GATEWAY_KEYS
        assert all(isinstance(v, str) and v for v in answer.body.values())
        assert answer.headers["x-acs-request-id"] == answer.body["RequestId"]
    raised = _sdk_raises(sandbox, action, params)
    assert raised.get_http_status() in (500, 503)
    assert raised.get_error_code() in ("ServiceUnavailable", "InternalError")
    assert raised.get_request_id()


def test_cancel_result_content_is_a_string_and_scheduler_items_are_typed(sandbox):
    task_id = _scheduled(sandbox)
    base = {"AppId": APP_ID, "WorkspaceId": WORKSPACE}

    listed = sdk_call(sandbox.url, "QueryPushSchedulerList", {**base, **_today_range()}).body
    cancelled = sdk_call(sandbox.url, "CancelPushScheduler", {**base, "UniqueIds": task_id}).body

    data = listed["ResultContent"]["Data"]
    assert set(data) == {"TotalCount", "List"} and data["TotalCount"] == 1
    [item] = data["List"]
    assert (item["UniqueId"], item["ParentId"], item["ExecutedStatus"]) == (task_id, task_id, "0")
    assert isinstance(cancelled["ResultContent"], str)
    assert json.loads(cancelled["ResultContent"])["Cancelled"] == [task_id]


def test_analysis_numbers_are_floats_and_the_detail_task_id_an_integer(sandbox):
    params = _prepare(sandbox, "QueryPushAnalysisTaskDetail")

    detail = sdk_call(sandbox.url, "QueryPushAnalysisTaskDetail", params).body
    core = sdk_call(
        sandbox.url, "QueryPushAnalysisCoreIndex", _prepare(sandbox, "QueryPushAnalysisCoreIndex")
    ).body

    data = detail["ResultContent"]["Data"]
    assert data["TaskId"] == int(params["TaskId"])  # str in requests, int here: the model's
    assert all(isinstance(data[k], float) for k in ("PushNum", "PushSuccessNum", "PushArrivalNum"))
    assert all(isinstance(v, float) for v in core["ResultContent"]["Data"].values())


# -- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_sandbox_accepts_exactly_the_request_models_wire_names(action):
    model_names = set(_full(getattr(official, f"{action}Request")).to_map())

    assert ACCEPTED_PARAMS[action] == model_names


def test_push_multiple_target_fields_are_the_models_and_its_flattening_is_accepted(sandbox):
    assert set(_full(official.PushMultipleRequestTargetMsg).to_map()) == set(TARGET_MSG_FIELDS)
    request = official.PushMultipleRequest(
        app_id=APP_ID,
        workspace_id=WORKSPACE,
        task_name="flattened",
        template_name=TEMPLATE,
        delivery_type=3,
        expired_seconds=300,
        target_msg=[
            official.PushMultipleRequestTargetMsg(
                target=f"user{n}",
                msg_key=f"fk-{n}",
                template_key_value=json.dumps({"name": f"N{n}", "money": str(n)}),
                extended_params=json.dumps({"sound": f"s{n}"}),
            )
            for n in (1, 2, 3)
        ],
    )
    wire = TeaUtils.query(request.to_map())  # the SDK's own flattening: TargetMsg.N.<Field>
    assert "TargetMsg.3.ExtendedParams" in wire

    answer = sdk_call(sandbox.url, "PushMultiple", wire)

    assert answer.body["ResultCode"] == "OK"
    [record] = sandbox.records()
    assert [
        (t["target"], t["msg_key"], t["template_key_value"]["name"]) for t in record["target_msgs"]
    ] == [
        ("user1", "fk-1", "N1"),
        ("user2", "fk-2", "N2"),
        ("user3", "fk-3", "N3"),
    ]


def _official_request(action: str, params: dict[str, Any]) -> DaraModel:
    if action != "PushMultiple":
        return getattr(official, f"{action}Request")().from_map(params)
    flat = {k: v for k, v in params.items() if not k.startswith("TargetMsg.")}
    count = sum(1 for k in params if k.endswith(".Target"))
    flat["TargetMsg"] = [
        {
            field: params[f"TargetMsg.{n}.{field}"]
            for field in ("Target", "MsgKey", "TemplateKeyValue")
        }
        for n in range(1, count + 1)
    ]
    return official.PushMultipleRequest().from_map(flat)


@pytest.mark.parametrize("action", ACTIONS)
def test_the_official_client_calls_every_action_and_reads_the_answer(sandbox, action):
    params = {k: str(v) for k, v in _prepare(sandbox, action).items()}
    config = openapi_models.Config(
        access_key_id=KEY_ID,
        access_key_secret=SECRET,
        endpoint=f"127.0.0.1:{sandbox.port}",
        protocol="http",
        region_id="cn-hangzhou",
        signature_algorithm="v2",  # RPC signature V1 (HMAC-SHA1), what the sandbox verifies
    )
    method = "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")

    response = getattr(OfficialClient(config), method)(_official_request(action, params))

    assert (response.status_code, response.body.result_code) == (200, "OK")
    assert response.body.request_id == sandbox.records()[-1]["request_id"]
