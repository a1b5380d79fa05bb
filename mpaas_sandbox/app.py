"""The sandbox's behaviour, independent of the HTTP plumbing in server.py.

``Sandbox.handle()`` takes one request (method, path with query, body) and returns a ``Reply``:
status, body, and what the connection should do (wait, or drop without answering).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from . import faults as fault_names
from .config import (
    SUPPORTED_VERSIONS,
    ConfigError,
    SandboxConfig,
    apply_changes,
    public_view,
    resolve_timezone,
    template_name,
    template_placeholders,
)
from .faults import FaultInjector
from .ledger import Ledger, summarize
from .rules import (
    COMMON_PARAMS,
    BusinessError,
    lenient_targets,
    validate_cancel,
    validate_push_template,
    validate_query,
)
from .signature import sign_string, signatures_match, string_to_sign
from .tasks import ScheduledTask, TaskStore

__all__ = ["GatewayError", "Reply", "Sandbox", "gateway_reply"]

ACTIONS = ("PushTemplate", "QueryPushSchedulerList", "CancelPushScheduler")
REQUIRED_COMMON = (
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
)
TIMESTAMP_TOLERANCE_S = 15 * 60
NONCE_WINDOW_S = 15 * 60
JSON_TYPE = "application/json;charset=utf-8"
FORM_TYPES = ("", "application/x-www-form-urlencoded")
UNAVAILABLE_MESSAGE = "The request has failed due to a temporary failure of the server."
INTERNAL_MESSAGE = "The request processing has failed due to some unknown error."


@dataclasses.dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    delay_s: float = 0.0
    drop: bool = False  # close the connection without any response
    request_id: str = ""


def _json(status: int, payload: Any, request_id: str = "") -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, request_id=request_id)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


class GatewayError(Exception):
    """An error of the API gateway: HTTP 4xx/5xx, raised by the SDK as ServerException."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def gateway_reply(error: GatewayError, request_id: str) -> Reply:
    return _json(
        error.status,
        {
            "RequestId": request_id,
            "HostId": "mpaas.cn-hangzhou.aliyuncs.com",
            "Code": error.code,
            "Message": error.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product=mPaaS",
        },
    )


class _NonceStore:
    """SignatureNonce values seen per AccessKeyId within the last 15 minutes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._expiry: deque[tuple[float, tuple[str, str]]] = deque()

    def use(self, key_id: str, nonce: str, now: float) -> bool:
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                _, entry = self._expiry.popleft()
                self._seen.pop(entry, None)
            entry = (key_id, nonce)
            if entry in self._seen:
                return False
            self._seen[entry] = now + NONCE_WINDOW_S
            self._expiry.append((now + NONCE_WINDOW_S, entry))
            return True

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
            self._expiry.clear()


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        config = apply_changes(config or SandboxConfig(), {})
        self._config_lock = threading.RLock()
        self._state = (config, resolve_timezone(config.timezone))
        self.ledger = Ledger(config.ledger_path)
        self.faults = FaultInjector(config.seed)
        self.tasks = TaskStore()
        self._nonces = _NonceStore()

    # -- configuration -------------------------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        return self._state[0]

    def configure(self, **changes: Any) -> SandboxConfig:
        """Validate and apply changes at runtime; raises ConfigError and changes nothing."""
        fixed = sorted({"host", "port"}.intersection(changes))
        if fixed:
            raise ConfigError(f"{fixed[0]} is fixed when the sandbox is created")
        with self._config_lock:
            config = apply_changes(self.config, changes)
            tz = resolve_timezone(config.timezone)
            try:
                self.ledger.set_path(config.ledger_path)
            except OSError as error:
                raise ConfigError(f"ledger_path cannot be opened: {error}") from None
            if "seed" in changes:
                self.faults.reset(config.seed)
            self._state = (config, tz)
            return config

    def add_template(self, name: Any, placeholders: Any) -> SandboxConfig:
        name = template_name(name)
        placeholders = template_placeholders(placeholders)
        with self._config_lock:
            return self.configure(templates={**self.config.templates, name: placeholders})

    def reset(self) -> None:
        """Forget ledger (memory and file), tasks, nonces and QPS windows; reseed faults."""
        self.ledger.reset()
        self.tasks.reset()
        self._nonces.reset()
        self.faults.reset(self.config.seed)

    def now_ms(self, config: SandboxConfig | None = None) -> int:
        """The scheduling clock: wall clock plus ``clock_offset_seconds``."""
        config = config or self.config
        return int((time.time() + config.clock_offset_seconds) * 1000)

    def close(self) -> None:
        self.ledger.close()

    # -- requests ------------------------------------------------------------------------

    def handle(self, method: str, target: str, body: bytes = b"", content_type: str = "") -> Reply:
        path, _, query = target.partition("?")
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body and method == "POST" and content_type.split(";")[0].strip() in FORM_TYPES:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return self._rpc(method, path, params)

    def _rpc(self, method: str, path: str, params: dict[str, str]) -> Reply:
        arrival = time.time()
        config, tz = self._state
        request_id = _request_id()
        action = params.get("Action")
        record: dict[str, Any] = {
            "time": datetime.fromtimestamp(arrival, UTC).isoformat(timespec="milliseconds"),
            "ts": round(arrival, 6),
            "action": action,
            "request_id": request_id,
            "access_key_id": params.get("AccessKeyId"),
            "http_status": None,
            "result_code": None,
            "result_message": "",
            "accepted": False,
            "authenticated": False,
            "fault": None,
            "latency_ms": 0,
            "app_id": params.get("AppId"),
            "workspace_id": params.get("WorkspaceId"),
            "task_name": params.get("TaskName"),
            "template_name": params.get("TemplateName"),
            "delivery_type": params.get("DeliveryType"),
            "targets": lenient_targets(params.get("TargetMsgkey")),
            "task_id": None,
            "params": {k: v for k, v in params.items() if k not in COMMON_PARAMS},
        }
        try:
            if path not in ("", "/"):
                raise GatewayError(
                    404, "InvalidApi.NotFound", f"Specified api {path} is not found."
                )
            self._authenticate(method, params, config)
            record["authenticated"] = True
            if action == "PushTemplate":
                reply = self._push_template(params, record, config, tz)
            elif action == "QueryPushSchedulerList":
                reply = self._query(params, config, request_id)
            else:
                reply = self._cancel(params, config, request_id)
        except GatewayError as error:
            reply = gateway_reply(error, request_id)
            record["result_code"], record["result_message"] = error.code, error.message
        except BusinessError as error:
            reply = self._business_reply(action, error.code, error.message, request_id)
            record["result_code"], record["result_message"] = error.code, error.message
        reply.request_id = request_id
        record["http_status"] = None if reply.drop else reply.status
        record["result_code"] = record["result_code"] or "OK"
        self.ledger.append(record)
        return reply

    def _authenticate(self, method: str, params: Mapping[str, str], config: SandboxConfig) -> None:
        """Gateway checks in the gateway's order; the nonce is spent only by a valid signature."""
        for name in REQUIRED_COMMON:
            if not params.get(name):
                raise GatewayError(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Action"] not in ACTIONS:
            raise GatewayError(
                404, "InvalidApi.NotFound", f"Specified api {params['Action']} is not found."
            )
        if params["Version"] not in SUPPORTED_VERSIONS:
            raise GatewayError(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params["SignatureMethod"] != "HMAC-SHA1":
            raise GatewayError(400, "InvalidSignatureMethod", "SignatureMethod must be HMAC-SHA1.")
        if params["SignatureVersion"] != "1.0":
            raise GatewayError(400, "InvalidSignatureVersion", "SignatureVersion must be 1.0.")
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise GatewayError(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            ) from None
        # The gateway's own clock: the scheduling offset must not lock signed clients out.
        skew = abs(time.time() - stamp.replace(tzinfo=UTC).timestamp())
        if skew > TIMESTAMP_TOLERANCE_S:
            raise GatewayError(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        secret = config.keys.get(params["AccessKeyId"])
        if secret is None:
            raise GatewayError(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        server_string = string_to_sign(method, params)
        if not signatures_match(sign_string(server_string, secret), params["Signature"]):
            raise GatewayError(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{server_string}",
            )
        if not self._nonces.use(params["AccessKeyId"], params["SignatureNonce"], time.monotonic()):
            raise GatewayError(
                400, "SignatureNonceUsed", "Specified signature nonce was used already."
            )

    def _push_template(
        self, params: Mapping[str, str], record: dict[str, Any], config: SandboxConfig, tz: Any
    ) -> Reply:
        plan = self.faults.decide(config, params["AccessKeyId"])
        record["fault"], record["latency_ms"] = plan.fault, plan.latency_ms
        delay = plan.latency_ms / 1000
        if plan.fault in (fault_names.QPS_CAP, fault_names.THROTTLE):
            why = "over the QPS cap" if plan.fault == fault_names.QPS_CAP else "injected"
            error = BusinessError("8011", f"flow control: request throttled ({why})")
            record["result_code"], record["result_message"] = error.code, error.message
            reply = self._business_reply(
                "PushTemplate", error.code, error.message, record["request_id"]
            )
            reply.delay_s = delay
            return reply
        if plan.fault == fault_names.ERROR_5XX:
            if plan.http_status == 503:
                error = GatewayError(503, "ServiceUnavailable", UNAVAILABLE_MESSAGE)
            else:
                error = GatewayError(500, "InternalError", INTERNAL_MESSAGE)
            record["result_code"], record["result_message"] = error.code, error.message
            reply = gateway_reply(error, record["request_id"])
            reply.delay_s = delay
            return reply
        now_ms = self.now_ms(config)
        try:
            if config.fail_code:
                raise BusinessError(
                    config.fail_code, f"forced failure (sandbox fail_code {config.fail_code})"
                )
            push = validate_push_template(
                params,
                apps=config.apps,
                templates=config.templates,
                expired_min=config.expired_min,
                expired_max=config.expired_max,
                now_ms=now_ms,
                tz=tz,
            )
            task_id = self._schedule(params, push, config, now_ms) if push.strategy_type else None
        except BusinessError as error:
            record["result_code"], record["result_message"] = error.code, error.message
            reply = self._business_reply(
                "PushTemplate", error.code, error.message, record["request_id"]
            )
        else:
            record["accepted"], record["task_id"] = True, task_id
            reply = _json(
                200,
                {
                    "RequestId": record["request_id"],
                    "ResultCode": "OK",
                    "ResultMessage": "",
                    "PushResult": {"Success": True, "ResultMsg": "", "Data": task_id},
                },
            )
        if plan.fault == fault_names.AMBIGUOUS:
            reply.drop = True
        elif plan.fault == fault_names.HOLD:
            delay += config.hold_seconds
            record["latency_ms"] = int(delay * 1000)
        reply.delay_s = delay
        return reply

    def _schedule(self, params: Mapping[str, str], push, config: SandboxConfig, now_ms: int) -> str:
        task = ScheduledTask(
            unique_id=uuid.uuid4().hex,
            app_id=params["AppId"],
            workspace_id=params["WorkspaceId"],
            strategy_type=push.strategy_type,
            push_time_ms=push.push_time_ms,
            done_ms=push.window_end_ms,
            title=params["TemplateName"],
            content=params.get("TemplateKeyValue", ""),
            delivery_type=int(params["DeliveryType"]),
            gmt_create_ms=now_ms,
        )
        if not self.tasks.add_within_quota(task, config.task_quota, now_ms):
            raise BusinessError(
                "3028",
                f"the app already has {config.task_quota} unexecuted scheduled tasks (quota)",
            )
        return task.unique_id

    def _query(self, params: Mapping[str, str], config: SandboxConfig, request_id: str) -> Reply:
        query = validate_query(params, config.apps)
        data = self.tasks.query(
            params["AppId"], params["WorkspaceId"], now_ms=self.now_ms(config), **query
        )
        return self._content_reply(data, request_id)

    def _cancel(self, params: Mapping[str, str], config: SandboxConfig, request_id: str) -> Reply:
        ids = validate_cancel(params, config.apps)
        data = self.tasks.cancel(params["AppId"], params["WorkspaceId"], ids, self.now_ms(config))
        return self._content_reply(data, request_id)

    @staticmethod
    def _content_reply(data: dict[str, Any], request_id: str) -> Reply:
        payload = {"RequestId": request_id, "ResultCode": "OK", "ResultMessage": ""}
        return _json(200, {**payload, "ResultContent": {"Data": data}})

    @staticmethod
    def _business_reply(action: str | None, code: str, message: str, request_id: str) -> Reply:
        payload: dict[str, Any] = {
            "RequestId": request_id,
            "ResultCode": code,
            "ResultMessage": message,
        }
        if action == "PushTemplate":
            payload["PushResult"] = {"Success": False, "ResultMsg": message, "Data": None}
        else:
            payload["ResultContent"] = {"Data": None}
        return _json(200, payload)

    # -- control endpoints ---------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        name = path[len("/_sandbox/") :].rstrip("/")
        if method == "GET":
            if name == "stats":
                return _json(200, summarize(self.ledger.records()))
            if name == "ledger":
                lines = "".join(
                    json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                    for r in self.ledger.records()
                )
                return Reply(200, lines.encode("utf-8"), "application/x-ndjson;charset=utf-8")
            if name == "config":
                return _json(200, public_view(self.config))
            if name == "tasks":
                return _json(200, [dataclasses.asdict(t) for t in self.tasks.all()])
        elif method == "POST":
            if name == "reset":
                self.reset()
                return _json(200, {"reset": True})
            if name in ("config", "templates", "clock"):
                try:
                    data = json.loads(body.decode("utf-8") or "{}")
                    if not isinstance(data, dict):
                        raise ConfigError("the body must be a JSON object")
                    if name == "config":
                        config = self.configure(**data)
                    elif name == "templates":
                        config = self.add_template(data.get("name"), data.get("placeholders", []))
                    else:
                        if set(data) != {"offset_seconds"}:
                            raise ConfigError('the body must be {"offset_seconds": N}')
                        config = self.configure(clock_offset_seconds=data["offset_seconds"])
                        return _json(
                            200,
                            {
                                "offset_seconds": config.clock_offset_seconds,
                                "now_ms": self.now_ms(),
                            },
                        )
                except (ValueError, UnicodeDecodeError) as error:  # ConfigError is a ValueError
                    message = str(error) if isinstance(error, ConfigError) else "invalid JSON body"
                    return _json(400, {"error": message})
                return _json(200, public_view(config))
        else:
            return _json(405, {"error": f"{method} is not allowed here"})
        return _json(404, {"error": f"no sandbox endpoint {method} {path}"})
