"""The console's HTTP transport puts on the wire exactly the bytes the SDK would.

`client._FastTransport` lets the SDK build and sign each request and sends it with
urllib3 2 instead of the SDK's vendored requests. Both are pointed at a socket that
records the raw request and answers a fixed JSON; with the signature's timestamp and
nonce fixed, the two byte strings must be equal, for the test vector and for any
parameters (a property test), and the sandbox still verifies the signature."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.utils import parameter_helper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.mpaas import client as client_module
from campaigns.mpaas import wire
from campaigns.mpaas.client import PushClient, PushError
from campaigns.mpaas.strategy import PushSpec
from tests.conftest import APP_ID, TEMPLATE_NAME, WORKSPACE

ANSWER = json.dumps(
    {"RequestId": "R-1", "ResultCode": "OK", "ResultMessage": "", "PushResult": {"Success": True}}
).encode()


class Recorder:
    """A one-request-per-connection HTTP server that keeps each raw request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _sep, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(data[: len(head) + 4] + body)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=utf-8\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.close()


@pytest.fixture
def frozen_signature(monkeypatch):
    """The two values the SDK draws per request: its timestamp and its nonce."""
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: "2026-12-01T12:00:00Z")
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: "6f9d1c2e-0000-4000-8000-1234")


def both_requests(credential, recorder, monkeypatch, params) -> tuple[bytes, bytes]:
    """The raw request the console's transport sends, and the one the SDK's own does."""
    credential.endpoint = recorder.url
    client_module._clients.clear()
    PushClient(credential).push_template(params)
    with monkeypatch.context() as m:
        m.setattr(client_module, "_FastTransport", lambda *a, pool_size, **k: AcsClient(*a, **k))
        client_module._clients.clear()
        PushClient(credential).push_template(params)
    client_module._clients.clear()
    ours, sdks = recorder.requests[-2:]
    return ours, sdks


def vector_params() -> dict[str, str]:
    spec = PushSpec(
        task_name="vector",
        app_id=APP_ID,
        workspace_id=WORKSPACE,
        template_name=TEMPLATE_NAME,
        template_placeholders=("name", "coupon"),
        template_values={"name": "张三", "coupon": "C-1"},
        delivery_type=3,
        expired_seconds=3600,
    )
    return wire.template_params(spec, {"user-1": "mk-1", "user-2": "mk-2"})


def test_the_test_vector_goes_out_byte_for_byte_as_the_sdk_sends_it(
    credential, recorder, frozen_signature, monkeypatch
):
    ours, sdks = both_requests(credential, recorder, monkeypatch, vector_params())
    assert ours == sdks
    head = ours.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /?")
    assert "Signature=" in head and "SignatureNonce=6f9d1c2e-0000-4000-8000-1234" in head
    assert "\r\nx-sdk-client: python/2.0.0" in head
    assert f"TemplateName={TEMPLATE_NAME}".encode() in ours


# Any business parameters: names as mPaaS spells them, values any text (what the SDK
# signs and form-encodes), including the empty string and non-ASCII.
_names = st.from_regex(r"[A-Z][A-Za-z0-9]{0,24}", fullmatch=True)
_values = st.text(max_size=200)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=st.dictionaries(_names, _values, min_size=1, max_size=12))
def test_any_parameters_go_out_byte_for_byte_as_the_sdk_sends_them(
    credential, recorder, frozen_signature, monkeypatch, params
):
    ours, sdks = both_requests(credential, recorder, monkeypatch, params)
    assert ours == sdks


def test_the_sandbox_verifies_the_signature_of_the_console_transport(credential, sandbox):
    client_module._clients.clear()
    reply = PushClient(credential).push_template(vector_params())
    assert reply.success is True
    [record] = [r for r in sandbox.records() if r["action"] == "PushTemplate"]
    assert record["accepted"] is True
    assert isinstance(client_module._acs_client(credential), client_module._FastTransport)


def test_with_a_proxy_configured_the_sdk_sends_itself(credential, recorder, monkeypatch):
    """The transport steps aside for a proxy: the SDK's requests sends, through the proxy
    (none listens here, so the call fails as a proxy error and the server sees nothing)."""
    credential.endpoint = recorder.url
    client_module._clients.clear()
    sent = []
    original = AcsClient._handle_single_request

    def spy(self, *args):
        sent.append("sdk")
        return original(self, *args)

    monkeypatch.setattr(AcsClient, "_handle_single_request", spy)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with pytest.raises(PushError) as caught:
        PushClient(credential).push_template(vector_params())
    client_module._clients.clear()
    assert sent == ["sdk"]
    assert "ProxyError" in caught.value.message
    assert recorder.requests == []
