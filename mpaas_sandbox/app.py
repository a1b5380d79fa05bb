"""The sandbox's behaviour, independent of the HTTP plumbing in server.py.

``Sandbox.handle()`` takes one request (method, path with query, body, headers) and returns
a ``Reply``: status, body, and what the connection should do (wait, or drop unanswered).
Each RPC action has one handler below; answers follow the official response models.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from . import analysis
from . import faults as fault_names
from .config import (
    ACTIONS,
    FIXED_AT_START,
    SUPPORTED_VERSIONS,
    ConfigError,
    SandboxConfig,
    apply_changes,
    resolve_timezone,
    template_name,
    template_placeholders,
)
from .control import handle_control
from .faults import FaultInjector
from .ledger import Ledger
from .messages import MessageStore
from .params import COMMON_PARAMS
from .queries import (
    TASK_NOT_FOUND,
    validate_cancel,
    validate_core_index,
    validate_query,
    validate_revoke,
    validate_task_detail,
    validate_task_list,
)
from .replies import (
    GatewayError,
    Reply,
    business_reply,
    garbage_reply,
    gateway_reply,
    success_reply,
)
from .rules import (
    BusinessError,
    ValidPush,
    lenient_target_msgs,
    lenient_targets,
    validate_push_multiple,
    validate_push_template,
)
from .signature import sign_string, signatures_match, string_to_sign
from .tasks import ScheduledTask, TaskStore

__all__ = ["ACTIONS", "GatewayError", "Reply", "Sandbox", "gateway_reply"]

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
FORM_TYPES = ("", "application/x-www-form-urlencoded")
UNAVAILABLE_MESSAGE = "The request has failed due to a temporary failure of the server."
INTERNAL_MESSAGE = "The request processing has failed due to some unknown error."
PUSH_TASK_TYPES = {"PushTemplate": 1, "PushMultiple": 2}  # QueryPushSchedulerList's Type


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


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
        if config.control_token is None:
            # Nobody chose one: draw one, so the control endpoints are never open to all.
            config = apply_changes(config, {"control_token": secrets.token_urlsafe(32)})
        self._config_lock = threading.RLock()
        self._state = (config, resolve_timezone(config.timezone))
        self.ledger = Ledger(config.ledger_path)
        self.faults = FaultInjector(config.seed)
        self.tasks = TaskStore()
        self.messages = MessageStore()
        self._nonces = _NonceStore()
        self._handlers: dict[str, Callable[..., Reply]] = {
            "PushTemplate": self._push,
            "PushMultiple": self._push,
            "RevokePushMessage": self._revoke,
            "QueryPushSchedulerList": self._query,
            "CancelPushScheduler": self._cancel,
            "QueryPushAnalysisCoreIndex": self._core_index,
            "QueryPushAnalysisTaskList": self._task_list,
            "QueryPushAnalysisTaskDetail": self._task_detail,
        }
        assert set(self._handlers) == set(ACTIONS)

    # -- configuration -------------------------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        return self._state[0]

    @property
    def control_token(self) -> str:
        return self.config.control_token or ""

    def configure(self, **changes: Any) -> SandboxConfig:
        """Validate and apply changes at runtime; raises ConfigError and changes nothing.

        ``FIXED_AT_START`` settings (address, ledger file, control token) cannot change."""
        fixed = sorted(FIXED_AT_START.intersection(changes))
        if fixed:
            raise ConfigError(f"{fixed[0]} is fixed when the sandbox starts")
        with self._config_lock:
            config = apply_changes(self.config, changes)
            tz = resolve_timezone(config.timezone)
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
        """Forget ledger (memory and file), tasks, messages, nonces and QPS windows; reseed."""
        self.ledger.reset()
        self.tasks.reset()
        self.messages.reset()
        self._nonces.reset()
        self.faults.reset(self.config.seed)

    def now_ms(self, config: SandboxConfig | None = None) -> int:
        """The scheduling clock: wall clock plus ``clock_offset_seconds``."""
        config = config or self.config
        return int((time.time() + config.clock_offset_seconds) * 1000)

    def close(self) -> None:
        self.ledger.close()

    # -- requests ------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        content_type: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        path, _, query = target.partition("?")
        if path.startswith("/_sandbox/"):
            return handle_control(self, method, path, body, content_type, headers or {})
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body and method == "POST" and content_type.split(";")[0].strip() in FORM_TYPES:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return self._rpc(method, path, params)

    def _rpc(self, method: str, path: str, params: dict[str, str]) -> Reply:
        arrival = time.time()
        config, tz = self._state
        request_id = _request_id()
        action = params.get("Action")
        multiple = lenient_target_msgs(params) if action == "PushMultiple" else None
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
            "targets": _multiple_targets(multiple)
            if action == "PushMultiple"
            else lenient_targets(params.get("TargetMsgkey")),
            "target_msgs": multiple,
            "task_id": None,
            "push_task_id": None,
            "params": {k: v for k, v in params.items() if k not in COMMON_PARAMS},
        }
        try:
            if path not in ("", "/"):
                raise GatewayError(
                    404, "InvalidApi.NotFound", f"Specified api {path} is not found."
                )
            self._authenticate(method, params, config)
            record["authenticated"] = True
            reply = self._run(str(action), params, record, config, tz)
        except GatewayError as error:
            reply = gateway_reply(error, request_id)
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

    def _run(
        self, action: str, params: Mapping[str, str], record: dict[str, Any], config, tz
    ) -> Reply:
        """One authenticated call: faults first (for ``fault_actions``), then the handler.

        Ambiguous and hold act on the outcome the handler gave: an accepted push stays
        accepted. GatewayError from a 5xx fault propagates to ``_rpc``."""
        plan = None
        if action in config.fault_actions:
            plan = self.faults.decide(config, params["AccessKeyId"])
            record["fault"], record["latency_ms"] = plan.fault, plan.latency_ms
        delay = plan.latency_ms / 1000 if plan else 0.0
        fault = plan.fault if plan else None
        if fault in (fault_names.QPS_CAP, fault_names.THROTTLE):
            why = "over the QPS cap" if fault == fault_names.QPS_CAP else "injected"
            reply = self._failed(
                action, record, BusinessError("8011", f"flow control: request throttled ({why})")
            )
            reply.delay_s = delay
            return reply
        if fault == fault_names.ERROR_5XX:
            if plan.http_status == 503:
                error = GatewayError(503, "ServiceUnavailable", UNAVAILABLE_MESSAGE)
            else:
                error = GatewayError(500, "InternalError", INTERNAL_MESSAGE)
            record["result_code"], record["result_message"] = error.code, error.message
            reply = gateway_reply(error, record["request_id"])
            reply.delay_s = delay
            return reply
        try:
            reply = self._handlers[action](action, params, record, config, tz)
        except BusinessError as error:
            reply = self._failed(action, record, error)
        if fault == fault_names.AMBIGUOUS:
            reply.drop = True
        elif fault == fault_names.HOLD:
            delay += config.hold_seconds
            record["latency_ms"] = int(delay * 1000)
        elif fault == fault_names.GARBAGE:
            record["garbage"] = plan.garbage
            reply = garbage_reply(plan.garbage, record["request_id"])
        reply.delay_s = delay
        return reply

    @staticmethod
    def _failed(action: str, record: dict[str, Any], error: BusinessError) -> Reply:
        record["result_code"], record["result_message"] = error.code, error.message
        return business_reply(action, error.code, error.message, record["request_id"])

    # -- pushes --------------------------------------------------------------------------

    def _push(self, action, params, record, config, tz) -> Reply:
        if config.fail_code:
            raise BusinessError(
                config.fail_code, f"forced failure (sandbox fail_code {config.fail_code})"
            )
        now_ms = self.now_ms(config)
        validate = validate_push_template if action == "PushTemplate" else validate_push_multiple
        push = validate(
            params,
            apps=config.apps,
            templates=config.templates,
            expired_min=config.expired_min,
            expired_max=config.expired_max,
            now_ms=now_ms,
            tz=tz,
        )
        scheduled = (
            self._schedule(action, params, push, config, now_ms) if push.strategy_type else None
        )
        task = self.messages.add(
            app_id=params["AppId"],
            workspace_id=params["WorkspaceId"],
            task_name=params["TaskName"],
            template_name=params["TemplateName"],
            push_type="TEMPLATE" if action == "PushTemplate" else "MULTIPLE",
            delivery_type=int(params["DeliveryType"]),
            now_ms=now_ms,
            targets=push.targets,
            scheduled=scheduled,
        )
        record["accepted"] = True
        record["task_id"] = scheduled.unique_id if scheduled else None
        record["push_task_id"] = task.task_id
        result: dict[str, Any] = {"Success": True, "ResultMsg": ""}
        if scheduled is not None:
            result["Data"] = scheduled.unique_id
        elif action == "PushMultiple":
            result["Data"] = str(task.task_id)
        return success_reply(record["request_id"], PushResult=result)

    def _schedule(
        self, action: str, params: Mapping[str, str], push: ValidPush, config, now_ms: int
    ) -> ScheduledTask:
        task = ScheduledTask(
            unique_id=uuid.uuid4().hex,
            app_id=params["AppId"],
            workspace_id=params["WorkspaceId"],
            strategy_type=push.strategy_type,
            occurrences=list(push.occurrences),
            title=params["TemplateName"],
            content=params.get("TemplateKeyValue", ""),
            delivery_type=int(params["DeliveryType"]),
            gmt_create_ms=now_ms,
            task_type=PUSH_TASK_TYPES[action],
        )
        if not self.tasks.add_within_quota(task, config.task_quota, now_ms):
            raise BusinessError(
                "3028",
                f"the app already has {config.task_quota} unexecuted scheduled tasks (quota)",
            )
        return task

    def _revoke(self, action, params, record, config, tz) -> Reply:
        message_id, target_id = validate_revoke(params, config.apps)
        record["revoked"] = self.messages.revoke(
            params["AppId"], params["WorkspaceId"], message_id, target_id, self.now_ms(config)
        )
        record["accepted"] = True
        return success_reply(record["request_id"], PushResult={"Success": True, "ResultMsg": ""})

    # -- scheduled tasks -----------------------------------------------------------------

    def _query(self, action, params, record, config, tz) -> Reply:
        query = validate_query(params, config.apps)
        data = self.tasks.query(
            params["AppId"], params["WorkspaceId"], now_ms=self.now_ms(config), **query
        )
        return success_reply(record["request_id"], ResultContent={"Data": data})

    def _cancel(self, action, params, record, config, tz) -> Reply:
        """ResultContent is a string (the model says str; its content is undocumented): the
        sandbox sends the JSON text of {"Cancelled", "AlreadyExecuted", "NotFound"}."""
        ids = validate_cancel(params, config.apps)
        outcome = self.tasks.cancel(
            params["AppId"], params["WorkspaceId"], ids, self.now_ms(config)
        )
        content = json.dumps(outcome, separators=(",", ":"))
        return success_reply(record["request_id"], ResultContent=content)

    # -- statistics ----------------------------------------------------------------------

    def _core_index(self, action, params, record, config, tz) -> Reply:
        query = validate_core_index(params, config.apps, tz)
        data = analysis.core_index(
            self.messages.tasks(params["AppId"], params["WorkspaceId"]),
            query,
            seed=config.stats_seed,
            now_ms=self.now_ms(config),
        )
        return success_reply(record["request_id"], ResultContent={"Data": data})

    def _task_list(self, action, params, record, config, tz) -> Reply:
        query = validate_task_list(params, config.apps)
        tasks = self.messages.task_list(params["AppId"], params["WorkspaceId"], query)
        data = [analysis.task_list_item(t) for t in tasks]
        return success_reply(record["request_id"], ResultContent={"Data": data})

    def _task_detail(self, action, params, record, config, tz) -> Reply:
        task_id = validate_task_detail(params, config.apps)
        task = self.messages.get(params["AppId"], params["WorkspaceId"], task_id)
        if task is None:
            raise BusinessError(TASK_NOT_FOUND, f"push task {task_id} does not exist")
        data = analysis.task_detail(task, seed=config.stats_seed, now_ms=self.now_ms(config))
        return success_reply(record["request_id"], ResultContent={"Data": data})


def _multiple_targets(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """PushMultiple's targets as the target -> msgKey map every ledger record carries."""
    if entries is None:
        return None
    return {
        e["target"]: e["msg_key"]
        for e in entries
        if isinstance(e["target"], str) and isinstance(e["msg_key"], str)
    }
