"""PushClient against the sandbox over real HTTP: success and every error kind."""

from __future__ import annotations

import json
import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from campaigns import scheduling
from campaigns.mpaas import strategy, wire
from campaigns.mpaas.client import AMBIGUOUS, PERMANENT, TRANSIENT, PushClient, PushError, scrub
from tests.conftest import APP_ID, SANDBOX_SECRET, TEMPLATE_NAME, WORKSPACE

pytestmark = pytest.mark.django_db

DOCUMENTED_WIRE_NAMES = {
    "AppId",
    "WorkspaceId",
    "TaskName",
    "TemplateName",
    "TemplateKeyValue",
    "DeliveryType",
    "TargetMsgkey",
    "ExpiredSeconds",
    "ExtendedParams",
    "NotifyType",
    "Classification",
    "StrategyType",
    "StrategyContent",
    "SmsStrategy",
    "SmsSignName",
    "SmsTemplateCode",
    "SmsTemplateParam",
    "ThirdChannelCategory",
    "NotifyLevel",
    "MiChannelId",
    "ActivityEvent",
    "ActivityContentState",
    "DismissalDate",
}


def params(targets=None, **changes) -> dict[str, str]:
    spec = strategy.PushSpec(
        task_name="unit",
        app_id=APP_ID,
        workspace_id=WORKSPACE,
        template_name=changes.pop("template_name", TEMPLATE_NAME),
        template_placeholders=("name", "coupon"),
        template_values={"name": "张三", "coupon": "C-1"},
        delivery_type=3,
        expired_seconds=3600,
        **changes,
    )
    return wire.template_params(spec, targets or {"user-1": "mk-1", "user-2": "mk-2"})


def push_records(sandbox):
    return [r for r in sandbox.records() if r["action"] == "PushTemplate"]


def test_success_returns_request_id_and_ledger_holds_documented_wire_names(credential, sandbox):
    reply = PushClient(credential).push_template(params())
    assert reply.success is True
    assert reply.request_id
    assert reply.result_code == "OK"
    [record] = push_records(sandbox)
    assert record["accepted"] is True
    assert record["request_id"] == reply.request_id
    assert record["targets"] == {"user-1": "mk-1", "user-2": "mk-2"}
    assert set(record["params"]) <= DOCUMENTED_WIRE_NAMES
    assert json.loads(record["params"]["TemplateKeyValue"]) == {"name": "张三", "coupon": "C-1"}
    assert SANDBOX_SECRET not in json.dumps(record, ensure_ascii=False)


def test_unknown_template_is_a_permanent_business_error_at_http_200(credential, sandbox):
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params(template_name="no_such_tpl"))
    error = caught.value
    assert (error.kind, error.code, error.http_status) == (PERMANENT, "3022", 200)
    assert error.request_id
    assert "Sandbox" in str(error)  # names the credential


def test_flow_control_8011_is_transient(credential, sandbox):
    sandbox.configure(throttle_rate=1.0)
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params())
    assert (caught.value.kind, caught.value.code) == (TRANSIENT, "8011")
    assert push_records(sandbox)[0]["accepted"] is False


def test_gateway_503_is_transient(credential, sandbox):
    sandbox.configure(error_5xx_rate=1.0)
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params())
    assert caught.value.kind == TRANSIENT
    assert caught.value.http_status in (500, 503)
    assert caught.value.code in ("ServiceUnavailable", "InternalError")


def test_wrong_secret_is_permanent_and_says_the_secret_does_not_match(credential, sandbox):
    credential.set_secret("not-the-secret")
    credential.save()
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params())
    error = caught.value
    assert (error.kind, error.code, error.http_status) == (PERMANENT, "SignatureDoesNotMatch", 400)
    assert "AccessKey secret does not match" in error.message
    assert "credential 'Sandbox'" in str(error)
    assert not any(r.get("accepted") for r in push_records(sandbox))


def test_unknown_access_key_is_permanent(credential, sandbox):
    credential.access_key_id = "LTAInobody"
    credential.save()
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params())
    assert caught.value.kind == PERMANENT
    assert caught.value.code == "InvalidAccessKeyId.NotFound"


def test_connection_refused_is_transient(credential):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credential.endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params())
    assert caught.value.kind == TRANSIENT
    assert caught.value.code == "SDK.HttpError"
    assert "Signature=" not in caught.value.message
    assert "AccessKeyId=" not in caught.value.message


def test_read_timeout_after_send_is_ambiguous(credential, sandbox, settings):
    settings.PUSH_READ_TIMEOUT = 0.5
    sandbox.configure(hold_rate=1.0, hold_seconds=2.0)
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params())
    assert caught.value.kind == AMBIGUOUS
    assert "Signature=" not in caught.value.message
    assert push_records(sandbox)[0]["accepted"] is True  # it did go out


def test_dropped_connection_is_ambiguous(credential, sandbox):
    sandbox.configure(ambiguous_rate=1.0)
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(params())
    assert caught.value.kind == AMBIGUOUS
    assert push_records(sandbox)[0]["accepted"] is True


def test_scheduled_push_returns_task_id_that_can_be_listed(credential, sandbox):
    send_at = timezone.now() + timedelta(days=1)
    reply = PushClient(credential).push_template(params(strategy_type=1, fixed_time=send_at))
    assert reply.data
    client = PushClient(credential)
    tasks = client.list_scheduled(timezone.now(), timezone.now() + timedelta(days=2))
    assert [t["UniqueId"] for t in tasks] == [reply.data]
    assert (tasks[0]["ExecutedStatus"], tasks[0]["ParentId"]) == ("0", reply.data)


def test_cancel_scheduled_hands_the_model_shaped_answer_to_the_parser(credential, sandbox):
    send_at = timezone.now() + timedelta(days=1)
    reply = PushClient(credential).push_template(params(strategy_type=1, fixed_time=send_at))
    answer = PushClient(credential).cancel_scheduled([reply.data])
    assert scheduling.read_cancel_answer(answer, [reply.data]).cancelled == [reply.data]


def test_scrub_removes_signed_urls():
    text = (
        "HTTPConnectionPool(host='h', port=1): Max retries exceeded with url: "
        "/?AccessKeyId=LTAIx&Signature=abc%3D&Action=PushTemplate (Caused by X)"
    )
    cleaned = scrub(text)
    assert "LTAIx" not in cleaned and "Signature" not in cleaned
    assert "Caused by X" in cleaned


def test_the_client_is_the_only_module_of_the_app_that_imports_the_sdk():
    root = Path(__file__).resolve().parent.parent
    importers = sorted(
        str(path.relative_to(root))
        for folder in ("campaigns", "pushconsole")
        for path in (root / folder).rglob("*.py")
        if re.search(r"^\s*(from|import) aliyunsdkcore", path.read_text(), re.MULTILINE)
    )
    assert importers == ["campaigns/mpaas/client.py"]
