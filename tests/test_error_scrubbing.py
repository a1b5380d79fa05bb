"""Issue 16 item 6: a business error answered with HTTP 200 (or any other status) is
stored and shown without URLs or AccessKey IDs, and only an exact loopback address
counts as a local sandbox."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from campaigns.models import Credential
from campaigns.mpaas.client import PushClient, PushError, scrub
from tests.conftest import APP_ID, SANDBOX_KEY_ID, WORKSPACE

pytestmark = pytest.mark.django_db

LEAK = (
    "upstream said no: see https://mpaas.cn-hangzhou.aliyuncs.com/?AccessKeyId="
    f"{SANDBOX_KEY_ID}&SignatureNonce=abc123&Signature=c2lnbmVk%3D for details; "
    f"key {SANDBOX_KEY_ID} SignatureNonce=nonce-77 via http://10.0.0.8:8080/internal"
)


@pytest.fixture
def leaky_mpaas():
    """A loopback stand-in that answers every call HTTP 200 with a business error whose
    text carries a signed URL, the caller's AccessKey ID and an internal URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps(
                {
                    "RequestId": "REQ-LEAK-1",
                    "ResultCode": "SYSTEM_ERROR_X",
                    "ResultMessage": LEAK,
                    "PushResult": {"Success": False, "ResultMsg": LEAK},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def leaky_credential(leaky_mpaas):
    credential = Credential(
        name="Leaky",
        app_id=APP_ID,
        workspace_id=WORKSPACE,
        access_key_id=SANDBOX_KEY_ID,
        endpoint=leaky_mpaas,
    )
    credential.set_secret("leaky-secret")
    credential.save()
    return credential


def assert_clean(text: str) -> None:
    for leaked in (SANDBOX_KEY_ID, "Signature", "abc123", "nonce-77", "://", "10.0.0.8"):
        assert leaked not in text, leaked


def test_scrub_removes_urls_key_ids_and_signed_fragments():
    cleaned = scrub(LEAK)
    assert_clean(cleaned)
    assert cleaned.startswith("upstream said no") and "for details" in cleaned
    assert "STS-xyz" not in scrub("key STS-xyz rejected", "STS-xyz")


def test_a_business_error_with_http_200_is_scrubbed(leaky_credential):
    with pytest.raises(PushError) as raised:
        PushClient(leaky_credential).push_template({"AppId": APP_ID, "TaskName": "t"})
    error = raised.value
    assert error.http_status == 200 and error.code == "SYSTEM_ERROR_X"
    assert_clean(error.message)
    assert_clean(error.body)
    assert_clean(str(error))
    assert "upstream said no" in error.message and "REQ-LEAK-1" in error.body


def test_the_test_connection_page_shows_no_url_or_key_id(client, admin_user, leaky_credential):
    client.force_login(admin_user)
    response = client.post(reverse("credential-test", args=[leaky_credential.pk]))
    assert response.status_code == 200
    assert "SYSTEM_ERROR_X" in response.text and "upstream said no" in response.text
    assert "SignatureNonce" not in response.text and "c2lnbmVk" not in response.text
    assert SANDBOX_KEY_ID not in response.text
    assert "10.0.0.8" not in response.text


@pytest.mark.parametrize(
    "endpoint, sandbox",
    [
        ("http://127.0.0.1:8900", True),
        ("http://127.9.8.7:8900", True),
        ("http://localhost:8900", True),
        ("http://[::1]:8900", True),
        ("http://127.attacker.example", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://localhost.attacker.example", False),
        ("http://128.0.0.1", False),
        ("http://10.0.0.1", False),
        ("https://127.0.0.1", False),
        ("mpaas.cn-hangzhou.aliyuncs.com", False),
    ],
)
def test_a_sandbox_is_only_an_exact_loopback_address(endpoint, sandbox):
    credential = Credential(endpoint=endpoint)
    assert credential.is_sandbox is sandbox


def test_plain_http_to_a_lookalike_name_is_refused(credential):
    from django.core.exceptions import ValidationError

    credential.endpoint = "http://127.attacker.example"
    with pytest.raises(ValidationError) as raised:
        credential.full_clean()
    assert "endpoint" in raised.value.message_dict
