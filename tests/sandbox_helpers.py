"""Sign and send mPaaS RPC calls to the sandbox with urllib (no aliyunsdkcore in tests)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from mpaas_sandbox import percent_encode, sign

KEY_ID = "test-key"
SECRET = "test-secret"
APP_ID = "ONEX570DA89211721"
WORKSPACE = "default"
TEMPLATE = "tpl_1"
CONTROL_TOKEN = "test-control-token-0001"  # give it to SandboxServer(control_token=...)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        return self.body.get("ResultCode") or self.body.get("Code")


def utc_timestamp(offset_seconds: float = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_seconds))


def signed_request(
    base_url: str,
    action: str,
    business: dict[str, Any],
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    method: str = "POST",
    timestamp: str | None = None,
    nonce: str | None = None,
    version: str = "2019-08-21",
    drop: tuple[str, ...] = (),
) -> urllib.request.Request:
    """Like aliyun-python-sdk-core: common params signed in the query, business in the body."""
    query = {
        "Action": action,
        "Version": version,
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "Timestamp": timestamp or utc_timestamp(),
        "SignatureMethod": "HMAC-SHA1",
        "SignatureType": "",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "AccessKeyId": key_id,
    }
    for name in drop:
        query.pop(name, None)
    body = {k: str(v) for k, v in business.items()}
    if method == "GET":
        query.update(body)
        body = {}
    query["Signature"] = sign({**query, **body}, secret, method)
    url = (
        base_url
        + "/?"
        + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in query.items())
    )
    data = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in body.items()).encode()
    request = urllib.request.Request(url, data=data if method == "POST" else None, method=method)
    if method == "POST":
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    return request


def send(request: urllib.request.Request, timeout: float = 5.0) -> Answer:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, json.loads(response.read()), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, json.loads(error.read()), dict(error.headers))


def call(base_url: str, action: str, business: dict[str, Any], **options: Any) -> Answer:
    timeout = options.pop("timeout", 5.0)
    return send(signed_request(base_url, action, business, **options), timeout)


def control(
    base_url: str,
    path: str,
    payload: Any = None,
    *,
    token: str | None = CONTROL_TOKEN,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """GET (payload None) or POST JSON to /_sandbox/<path> with the control token; JSON
    answers are decoded. ``token=None`` sends no token header."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{base_url}/_sandbox/{path}", data=data)
    if token is not None:
        request.add_header("X-Sandbox-Token", token)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read().decode()
    return status, raw if path == "ledger" else json.loads(raw)


def push_params(**changes: Any) -> dict[str, Any]:
    """A valid PushTemplate body for the app and template the tests configure."""
    params: dict[str, Any] = {
        "AppId": APP_ID,
        "WorkspaceId": WORKSPACE,
        "TaskName": "spring sale",
        "TemplateName": TEMPLATE,
        "TemplateKeyValue": json.dumps({"name": "张三 *~", "money": "200"}, ensure_ascii=False),
        "DeliveryType": 3,
        "TargetMsgkey": json.dumps({"user1024": "k-1024"}),
        "ExpiredSeconds": 300,
    }
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return params


def sdk_call(
    base_url: str,
    action: str,
    business: dict[str, Any],
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    version: str = "2020-10-28",
) -> Answer:
    """One call signed and sent by aliyun-python-sdk-core's CommonRequest, the way the
    console's client sends it (POST, business parameters in the form body); the raw answer
    of every status comes back (the SDK's get_response does not raise for 4xx/5xx)."""
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkcore.request import CommonRequest

    client = AcsClient(key_id, secret, "cn-hangzhou", auto_retry=False, max_retry_time=0)
    request = CommonRequest(
        domain=base_url.removeprefix("http://"),
        version=version,
        action_name=action,
        product="mpaas",
    )
    request.set_method("POST")
    request.set_protocol_type("http")
    request.set_accept_format("JSON")
    for name, value in business.items():
        request.add_body_params(name, value if isinstance(value, str) else json.dumps(value))
    status, headers, body = client.get_response(request)
    return Answer(status, json.loads(body), dict(headers))
