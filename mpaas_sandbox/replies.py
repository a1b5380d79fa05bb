"""Answers: the ``Reply`` the HTTP layer writes, and the JSON shapes shared by every action.

Bodies leave out empty values instead of sending ``null``: the official response models drop
a null field (``to_map()`` omits it), so an answer with nulls would not survive them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = [
    "JSON_TYPE",
    "PUSH_RESULT_ACTIONS",
    "GatewayError",
    "Reply",
    "business_reply",
    "garbage_reply",
    "gateway_reply",
    "json_reply",
    "success_reply",
]

JSON_TYPE = "application/json;charset=utf-8"
# Actions whose answer carries PushResult {Success, ResultMsg, Data} (their response models).
PUSH_RESULT_ACTIONS = frozenset({"PushTemplate", "PushMultiple", "RevokePushMessage"})


@dataclasses.dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    delay_s: float = 0.0
    drop: bool = False  # close the connection without any response
    request_id: str = ""


def json_reply(status: int, payload: Any, request_id: str = "") -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, request_id=request_id)


class GatewayError(Exception):
    """An error of the API gateway: HTTP 4xx/5xx, raised by the SDK as ServerException."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def gateway_reply(error: GatewayError, request_id: str) -> Reply:
    return json_reply(
        error.status,
        {
            "RequestId": request_id,
            "HostId": "mpaas.cn-hangzhou.aliyuncs.com",
            "Code": error.code,
            "Message": error.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product=mPaaS",
        },
    )


def business_reply(action: str | None, code: str, message: str, request_id: str) -> Reply:
    """A business failure: HTTP 200 with the ResultCode (and Success=false for pushes)."""
    payload: dict[str, Any] = {
        "RequestId": request_id,
        "ResultCode": code,
        "ResultMessage": message,
    }
    if action in PUSH_RESULT_ACTIONS:
        payload["PushResult"] = {"Success": False, "ResultMsg": message}
    return json_reply(200, payload)


def success_reply(request_id: str, **fields: Any) -> Reply:
    """``{"RequestId", "ResultCode": "OK", "ResultMessage": "", **fields}``."""
    payload = {"RequestId": request_id, "ResultCode": "OK", "ResultMessage": "", **fields}
    return json_reply(200, payload)


def garbage_reply(kind: str, request_id: str) -> Reply:
    """HTTP 200 that no client can read as a push answer (the ``garbage`` fault): a proxy's
    HTML page, a JSON list, or an object without PushResult. The call was handled first."""
    if kind == "not_json":
        return Reply(200, b"<html><body>502 Bad Gateway (proxy)</body></html>", "text/html")
    if kind == "not_object":
        return json_reply(200, [{"RequestId": request_id}], request_id)
    return json_reply(200, {"RequestId": request_id, "ResultCode": "OK"}, request_id)
