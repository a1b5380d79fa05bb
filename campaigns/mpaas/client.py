"""The mPaaS push API client: the ONLY module that imports aliyunsdkcore.

`PushClient(credential)` makes signed RPC calls with the SDK's `CommonRequest` (POST,
domain and API version from the credential) and turns every answer into a `PushReply`
or a `PushError` whose `kind` tells the sending loop what to do:

- transient: nothing was delivered and a retry may succeed (a ResultCode marked
  retryable in `vocabulary.RESULT_CODES`, i.e. 8011; a gateway Throttling* or 5xx,
  `vocabulary.RETRYABLE_GATEWAY_CODES`; connection refused / connect timeout);
- permanent: retrying cannot help (bad parameters, template missing, bad credentials);
- ambiguous: the request may have reached mPaaS but no answer came back (read timeout,
  connection dropped after sending), or the answer could not be read (not JSON, not an
  object, no PushResult: `UNREADABLE_ANSWER`). Retry only with the same msgKeys.

The SDK never retries here (`auto_retry=False`): retries happen in the sending loop only.

The SDK builds and signs every request; `_FastTransport` only carries it: the same
method, URL, headers (in the same order) and body the SDK's vendored requests 2.18 would
put on the wire (tests/test_transport.py compares the bytes), sent with urllib3 2, which
costs a send job about half the CPU per call. With a proxy configured it steps aside
and the SDK sends as it always did.
Nothing here logs the secret, the signature or a signed URL; SDK error texts are
scrubbed of URLs before they are stored or shown.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zoneinfo
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import urllib3
from aliyunsdkcore.acs_exception import error_code as sdk_error_code
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdkcore.vendored.requests import certs as sdk_certs
from aliyunsdkcore.vendored.requests import utils as sdk_requests_utils
from django.conf import settings
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from .analysis import (
    AnalysisRangeError,
    CoreIndex,
    TaskFigures,
    check_analysis_range,
    content_of,
    day_ms,
)
from .answers import (  # noqa: F401 - re-exported: callers import them from here
    AMBIGUOUS,
    PERMANENT,
    TRANSIENT,
    UNREADABLE_ANSWER,
    PushError,
    PushReply,
    scrub,
)
from .transport import NOT_SENT_MARKERS, PROXY_VARIABLES, wire_request
from .vocabulary import is_retryable, is_retryable_gateway, is_success

PRODUCT = "mpaas"

# What the SDK's vendored requests Session puts in front of every request's own headers.
_SESSION_HEADERS = (
    ("User-Agent", sdk_requests_utils.default_user_agent()),
    ("Accept-Encoding", "gzip, deflate"),
    ("Accept", "*/*"),
    ("Connection", "keep-alive"),
)


class _FastTransport(AcsClient):
    """An AcsClient whose HTTP goes through urllib3 2 instead of the SDK's vendored
    requests: signing, endpoints, error parsing stay the SDK's own."""

    def __init__(self, *args, pool_size: int, **kwargs) -> None:
        super().__init__(*args, pool_size=pool_size, **kwargs)
        # as the SDK's HTTPAdapter(10, pool_size): 10 hosts, pool_size connections each
        self._pools = urllib3.PoolManager(num_pools=10, maxsize=pool_size, block=False)
        self._pool_of: dict[tuple, urllib3.HTTPConnectionPool] = {}  # by origin and TLS

    def _handle_single_request(self, endpoint, request, read_timeout, connect_timeout, signer):
        if self.proxy or any(os.environ.get(name) for name in PROXY_VARIABLES):
            return super()._handle_single_request(
                endpoint, request, read_timeout, connect_timeout, signer
            )
        prepared = self._make_http_response(
            endpoint, request, read_timeout, connect_timeout, signer
        )
        method, url, headers, body = wire_request(prepared, self._port, _SESSION_HEADERS)
        verify = prepared.get_verify_value()
        tls = {}
        if url.startswith("https://"):
            tls = (
                {"cert_reqs": "CERT_NONE"}
                if verify is False
                else {
                    "cert_reqs": "CERT_REQUIRED",
                    "ca_certs": verify if isinstance(verify, str) else sdk_certs.where(),
                }
            )
        split = url.index("/", url.index("//") + 2)
        try:
            key = (url[:split], *sorted(tls.items()))
            pool = self._pool_of.get(key)
            if pool is None:  # (≤ 10 kept, as the PoolManager keeps ≤ 10 pools open)
                self._pool_of = {} if len(self._pool_of) >= 10 else self._pool_of
                pool = self._pool_of[key] = self._pools.connection_from_url(
                    url, pool_kwargs=tls or None
                )
            answer = pool.urlopen(
                method,
                url[split:],
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # named as the SDK's requests would name them ("NewConnectionError: …")
            return (
                None,
                None,
                None,
                ClientException(sdk_error_code.SDK_HTTP_ERROR, f"{type(exc).__name__}: {exc}"),
            )
        content = answer.data
        exception = self._get_server_exception(
            answer.status, content, endpoint, request.string_to_sign
        )
        return answer.status, answer.headers, content, exception


_clients: dict[tuple, AcsClient] = {}
_clients_lock = threading.Lock()


@sensitive_variables("secret")
def _acs_client(credential) -> AcsClient:
    """One shared AcsClient per credential and process (it is thread-safe; requests are
    not). Keyed by everything that changes the signature or the connection pool."""
    key = (
        credential.pk,
        credential.access_key_id,
        credential.secret_ciphertext,
        credential.region,
        settings.PUSH_CONCURRENCY,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            secret = credential.secret()
            client = _FastTransport(
                credential.access_key_id,
                secret,
                credential.region,
                auto_retry=False,
                max_retry_time=0,
                pool_size=max(10, settings.PUSH_CONCURRENCY * 2),
            )
            _clients[key] = client
        return client


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """(protocol, domain): https unless the endpoint explicitly says http://."""
    if endpoint.startswith("http://"):
        return "http", endpoint[len("http://") :].rstrip("/")
    if endpoint.startswith("https://"):
        return "https", endpoint[len("https://") :].rstrip("/")
    return "https", endpoint.rstrip("/")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        # The SDK would send a dict as its Python repr: always JSON-encode maps.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


class PushClient:
    def __init__(self, credential) -> None:
        self.credential = credential
        self.protocol, self.domain = _split_endpoint(credential.endpoint)

    # -- transport -------------------------------------------------------------------

    def _call(self, action: str, params: Mapping[str, Any]) -> tuple[dict, str, int, int]:
        """Make one signed POST. Returns (parsed JSON, body text, http status, latency)."""
        request = CommonRequest(
            domain=self.domain,
            version=self.credential.api_version,
            action_name=action,
            product=PRODUCT,
        )
        request.set_method("POST")
        request.set_protocol_type(self.protocol)
        request.set_accept_format("JSON")
        request.set_connect_timeout(settings.PUSH_CONNECT_TIMEOUT)
        request.set_read_timeout(settings.PUSH_READ_TIMEOUT)
        for name, value in params.items():
            if value is not None:
                request.add_body_params(name, _as_text(value))
        started = time.monotonic()
        try:
            raw = _acs_client(self.credential).do_action_with_exception(request)
        except ServerException as exc:
            raise self._server_error(exc, _elapsed_ms(started)) from None
        except ClientException as exc:
            raise self._client_error(exc, _elapsed_ms(started)) from None
        latency = _elapsed_ms(started)
        body = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        try:
            data = json.loads(body)
        except ValueError:
            # A 2xx without a JSON answer: mPaaS may have acted on it.
            raise self._unreadable(_("not JSON"), body, latency) from None
        if not isinstance(data, dict):
            raise self._unreadable(_("JSON, but not an object"), body, latency)
        return data, body, 200, latency

    def _unreadable(self, why: str, body: str, latency: int, request_id: str = "") -> PushError:
        """A 2xx answer the console cannot read: ambiguous (mPaaS may have acted on it),
        told in words, the body kept scrubbed for the batch page."""
        message = _(
            "mPaaS's answer could not be read (%(why)s): the push may or may not have been "
            "accepted. It is retried with the same msgKeys; check mPaaS's push records."
        ) % {"why": why}
        return PushError(
            AMBIGUOUS,
            UNREADABLE_ANSWER,
            message,
            request_id=request_id,
            http_status=200,
            latency_ms=latency,
            body=body[:4000],
            credential_name=self.credential.name,
            key_id=self.credential.access_key_id,
        )

    def _server_error(self, exc: ServerException, latency: int) -> PushError:
        code = exc.get_error_code() or "Unknown"
        status = exc.get_http_status()
        message = scrub(exc.get_error_msg() or "")
        if code == "SignatureDoesNotMatch":
            message = _("The AccessKey secret does not match this AccessKey ID.")
        elif code.startswith("InvalidAccessKeyId"):
            message = _("mPaaS does not know this AccessKey ID, or it is disabled.")
        elif code == "InvalidTimeStamp.Expired":
            message = _("This machine's clock is more than 15 minutes off.")
        return PushError(
            TRANSIENT if is_retryable_gateway(code, status) else PERMANENT,
            code,
            message,
            request_id=exc.get_request_id() or "",
            http_status=status,
            latency_ms=latency,
            credential_name=self.credential.name,
            key_id=self.credential.access_key_id,
        )

    def _client_error(self, exc: ClientException, latency: int) -> PushError:
        code = exc.get_error_code() or "SDK.ClientError"
        raw_message = exc.get_error_msg() or ""
        message = scrub(raw_message)
        if code == "SDK.HttpError":
            not_sent = any(marker in raw_message for marker in NOT_SENT_MARKERS)
            kind = TRANSIENT if not_sent else AMBIGUOUS
        else:
            kind = PERMANENT
        return PushError(
            kind,
            code,
            message,
            latency_ms=latency,
            credential_name=self.credential.name,
            key_id=self.credential.access_key_id,
        )

    # -- API -------------------------------------------------------------------------

    def push_template(self, params: Mapping[str, Any]) -> PushReply:
        """Call PushTemplate with business `params` (wire names, from mpaas/wire.py).

        Returns the reply when mPaaS accepted the push; raises PushError otherwise,
        including business failures that arrive as HTTP 200 with Success=false."""
        return self._push("PushTemplate", params)

    def push_multiple(self, params: Mapping[str, Any]) -> PushReply:
        """Call PushMultiple (≤ 100 targets, each its own values and msgKey; params from
        `wire.multiple_params`). Answers are read as PushTemplate's."""
        return self._push("PushMultiple", params)

    def revoke(self, params: Mapping[str, Any]) -> PushReply:
        """Call RevokePushMessage (MessageId = the msgKey, TargetId; `wire.revoke_params`).
        Returns the reply when the message was revoked; raises PushError otherwise."""
        return self._push("RevokePushMessage", params)

    def _push(self, action: str, params: Mapping[str, Any]) -> PushReply:
        data, body, status, latency = self._call(action, params)
        result = data.get("PushResult")
        code = str(data.get("ResultCode") or "")
        request_id = str(data.get("RequestId") or "")
        readable = isinstance(result, dict) and isinstance(result.get("Success"), bool)
        if not readable and (not code or is_success(code)):
            # Neither a failure code nor a PushResult saying Success: nobody can tell.
            why = _("no PushResult") if result is None else _("PushResult of the wrong shape")
            raise self._unreadable(why, body, latency, request_id)
        success = bool(result["Success"]) if readable else False
        result_msg = result.get("ResultMsg") if isinstance(result, dict) else ""
        if not success:
            raise PushError(
                TRANSIENT if is_retryable(code) else PERMANENT,
                code or "Unknown",
                str(data.get("ResultMessage") or result_msg or ""),
                request_id=request_id,
                http_status=status,
                latency_ms=latency,
                body=body[:4000],
                credential_name=self.credential.name,
                key_id=self.credential.access_key_id,
            )
        task_id = result.get("Data")
        return PushReply(
            request_id=str(data.get("RequestId", "")),
            result_code=code,
            result_message=str(data.get("ResultMessage") or ""),
            success=True,
            result_msg=str(result.get("ResultMsg") or ""),
            data=str(task_id) if task_id not in (None, "") else None,
            http_status=status,
            latency_ms=latency,
            body=body[:4000],
        )

    def _checked(self, action: str, params: Mapping[str, Any]) -> dict:
        data, body, status, latency = self._call(action, params)
        code = str(data.get("ResultCode", ""))
        if not is_success(code):
            raise PushError(
                TRANSIENT if is_retryable(code) else PERMANENT,
                code or "Unknown",
                str(data.get("ResultMessage") or ""),
                request_id=str(data.get("RequestId", "")),
                http_status=status,
                latency_ms=latency,
                body=body[:4000],
                credential_name=self.credential.name,
                key_id=self.credential.access_key_id,
            )
        return data

    def list_scheduled(
        self, start: datetime, end: datetime, *, page_size: int = 100, max_pages: int = 100
    ) -> list[dict]:
        """QueryPushSchedulerList over trigger times in [start, end]: every task, all pages."""
        tasks: list[dict] = []
        for page in range(1, max_pages + 1):
            data = self._checked(
                "QueryPushSchedulerList",
                {
                    "AppId": self.credential.app_id,
                    "WorkspaceId": self.credential.workspace_id,
                    "StartTime": int(start.timestamp() * 1000),
                    "EndTime": int(end.timestamp() * 1000),
                    "Type": 1,
                    "PageNumber": page,
                    "PageSize": page_size,
                },
            )
            content = (data.get("ResultContent") or {}).get("Data") or {}
            batch = content.get("List") or []
            tasks.extend(batch)
            if len(batch) < page_size or len(tasks) >= int(content.get("TotalCount") or 0):
                break
        return tasks

    def cancel_scheduled(self, task_ids: list[str]) -> dict:
        """CancelPushScheduler for `task_ids`; returns mPaaS's whole answer. Its
        ResultContent is a string of undocumented content (the official model types it
        str): `scheduling.read_cancel_answer` reads it, defensively."""
        data = self._checked(
            "CancelPushScheduler",
            {
                "AppId": self.credential.app_id,
                "WorkspaceId": self.credential.workspace_id,
                "UniqueIds": ",".join(task_ids),
                "Type": 1,
            },
        )
        return data

    # -- statistics (QueryPushAnalysis*) ------------------------------------------------

    def analysis_core_index(
        self,
        start: date,
        end: date,
        *,
        platform: str | None = None,
        channel: str | None = None,
        type: str = "TEMPLATE",  # noqa: A002 - the wire name
        task_id: str | None = None,
    ) -> CoreIndex:
        """QueryPushAnalysisCoreIndex over the days `start`..`end` (inclusive, in the
        credential's timezone; mPaaS counts whole days, at most 90 apart). Raises
        AnalysisRangeError before any call when the range breaks that rule."""
        check_analysis_range(start, end)
        zone = zoneinfo.ZoneInfo(self.credential.timezone)
        data = self._checked(
            "QueryPushAnalysisCoreIndex",
            {
                "AppId": self.credential.app_id,
                "WorkspaceId": self.credential.workspace_id,
                "StartTime": day_ms(start, zone),
                "EndTime": day_ms(end, zone),
                "Platform": platform or None,
                "Channel": channel or None,
                "Type": type or None,
                "TaskId": task_id or None,
            },
        )
        return CoreIndex.from_answer(data)

    def analysis_task_list(
        self,
        *,
        since: datetime | None = None,
        task_id: str | None = None,
        task_name: str | None = None,
        page_size: int = 100,
        max_pages: int = 20,
    ) -> list[dict]:
        """QueryPushAnalysisTaskList, every page: the push tasks created since `since`
        (newest first), each entry a dict as mPaaS sent it (read with `_text`/`_number`)."""
        tasks: list[dict] = []
        for page in range(1, max_pages + 1):
            data = self._checked(
                "QueryPushAnalysisTaskList",
                {
                    "AppId": self.credential.app_id,
                    "WorkspaceId": self.credential.workspace_id,
                    "StartTime": int(since.timestamp() * 1000) if since else None,
                    "TaskId": task_id,
                    "TaskName": task_name,
                    "PageNumber": page,
                    "PageSize": page_size,
                },
            )
            batch = content_of(data)
            batch = (
                [item for item in batch if isinstance(item, dict)]
                if isinstance(batch, list)
                else []
            )
            tasks.extend(batch)
            if len(batch) < page_size:
                break
        return tasks

    def analysis_task_detail(self, task_id: str) -> TaskFigures:
        """QueryPushAnalysisTaskDetail for one push task (its ID is digits)."""
        task_id = str(task_id or "").strip()
        if not task_id.isdigit():
            raise AnalysisRangeError(
                _("A push task ID is digits only; %(value)r is not one.") % {"value": task_id}
            )
        data = self._checked(
            "QueryPushAnalysisTaskDetail",
            {
                "AppId": self.credential.app_id,
                "WorkspaceId": self.credential.workspace_id,
                "TaskId": task_id,
            },
        )
        return TaskFigures.from_answer(task_id, data)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
