"""HTTP plumbing: a threading HTTP/1.1 server around ``Sandbox`` and the ``SandboxServer`` API.

Keep-alive responses are written in one ``wfile.write`` (headers + body) with Nagle off:
written in two pieces, each response stalls ~40 ms on the client's delayed ACK.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import GatewayError, Reply, Sandbox, gateway_reply
from .config import SandboxConfig, apply_changes
from .ledger import summarize

__all__ = ["SandboxServer"]

MAX_BODY = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "mpaas-sandbox"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        sandbox = self.server.sandbox
        if self.headers.get("Transfer-Encoding"):
            error = GatewayError(411, "MissingContentLength", "Send the body with Content-Length.")
            self._write(gateway_reply(error, ""))
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            error = GatewayError(400, "InvalidContentLength", "Content-Length is not valid.")
            self._write(gateway_reply(error, ""))
            return
        body = self.rfile.read(length) if length else b""
        try:
            reply = sandbox.handle(
                method, self.path, body, self.headers.get("Content-Type", ""), dict(self.headers)
            )
        # A sandbox bug must still get an answer: a dropped connection would pass for the
        # ambiguous fault and mislead a drill. The traceback goes to stderr.
        except Exception:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            error = GatewayError(500, "InternalError", "The sandbox failed on this request.")
            reply = gateway_reply(error, "")
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        if reply.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client went away first: nothing left to drop
            return
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        head = (
            f"HTTP/1.1 {reply.status} {phrase}\r\n"
            f"Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(reply.body)}\r\n"
            + (f"x-acs-request-id: {reply.request_id}\r\n" if reply.request_id else "")
            + f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n\r\n"
        )
        try:
            self.wfile.write(head.encode("latin-1") + reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up, e.g. its read timeout during a hold

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the ledger is the request log."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sandbox = sandbox
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler


class SandboxServer:
    """The sandbox on a background thread: ``with SandboxServer(config) as sandbox: ...``.

    ``config`` fields may also be given as keyword arguments; the port defaults to 0 (free).
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.sandbox = Sandbox(apply_changes(config or SandboxConfig(), overrides))
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("the sandbox is already started")
        config = self.sandbox.config
        self._httpd = _HTTPServer((config.host, config.port), self.sandbox)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="mpaas-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None
        self.sandbox.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self.sandbox.config.host

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def config(self) -> SandboxConfig:
        return self.sandbox.config

    @property
    def control_token(self) -> str:
        """The token the ``/_sandbox/`` endpoints require in ``X-Sandbox-Token``."""
        return self.sandbox.control_token

    def records(self) -> list[dict[str, Any]]:
        """The in-memory ledger, oldest first."""
        return self.sandbox.ledger.records()

    def summary(self) -> dict[str, Any]:
        return summarize(self.records())

    def configure(self, **changes: Any) -> SandboxConfig:
        """Any SandboxConfig field except host, port, ledger_path and control_token."""
        return self.sandbox.configure(**changes)

    def add_template(self, name: str, placeholders: list[str] | tuple[str, ...]) -> SandboxConfig:
        return self.sandbox.add_template(name, placeholders)

    def set_clock_offset(self, seconds: float) -> SandboxConfig:
        return self.sandbox.configure(clock_offset_seconds=seconds)

    def reset(self) -> None:
        self.sandbox.reset()
