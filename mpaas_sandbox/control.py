"""The ``/_sandbox/...`` control endpoints (stats, ledger, config, tasks, templates, reset,
clock), guarded so that only whoever started the sandbox can use them.

- Every request must carry the control token in the ``X-Sandbox-Token`` header (403
  otherwise). A web page in the operator's browser cannot send that header to another
  origin without a CORS preflight, which the sandbox never grants.
- A POST must be ``application/json`` (415 otherwise): an HTML form or a "simple"
  cross-origin ``fetch`` (text/plain) is refused before its body is read.
- Nothing here sets a file path or the token: ``host``, ``port``, ``ledger_path`` and
  ``control_token`` are fixed when the sandbox starts (``FIXED_AT_START``).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .config import ConfigError, public_view
from .ledger import summarize
from .replies import Reply, json_reply

if TYPE_CHECKING:
    from .app import Sandbox

__all__ = ["TOKEN_HEADER", "handle_control"]

TOKEN_HEADER = "X-Sandbox-Token"


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def _authorised(sandbox: Sandbox, headers: Mapping[str, str]) -> bool:
    given = _header(headers, TOKEN_HEADER).encode("utf-8")
    return hmac.compare_digest(given, sandbox.control_token.encode("utf-8"))


def handle_control(
    sandbox: Sandbox,
    method: str,
    path: str,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str],
) -> Reply:
    name = path[len("/_sandbox/") :].rstrip("/")
    if method not in ("GET", "POST"):
        return json_reply(405, {"error": f"{method} is not allowed here"})
    if not _authorised(sandbox, headers):
        return json_reply(
            403, {"error": f"the control endpoints need the sandbox's token in {TOKEN_HEADER}"}
        )
    if method == "GET":
        return _get(sandbox, name, path)
    if content_type.split(";")[0].strip().lower() != "application/json":
        return json_reply(415, {"error": "send the body as application/json"})
    try:
        data = json.loads(body.decode("utf-8") or "{}")
        if not isinstance(data, dict):
            raise ConfigError("the body must be a JSON object")
        return _post(sandbox, name, path, data)
    except (ValueError, UnicodeDecodeError) as error:  # ConfigError is a ValueError
        message = str(error) if isinstance(error, ConfigError) else "invalid JSON body"
        return json_reply(400, {"error": message})


def _get(sandbox: Sandbox, name: str, path: str) -> Reply:
    if name == "stats":
        return json_reply(200, summarize(sandbox.ledger.records()))
    if name == "ledger":
        lines = "".join(
            json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in sandbox.ledger.records()
        )
        return Reply(200, lines.encode("utf-8"), "application/x-ndjson;charset=utf-8")
    if name == "config":
        return json_reply(200, public_view(sandbox.config))
    if name == "tasks":
        return json_reply(200, [t.as_dict() for t in sandbox.tasks.all()])
    return json_reply(404, {"error": f"no sandbox endpoint GET {path}"})


def _post(sandbox: Sandbox, name: str, path: str, data: dict[str, Any]) -> Reply:
    if name == "reset":
        if data:
            raise ConfigError("reset takes an empty JSON object")
        sandbox.reset()
        return json_reply(200, {"reset": True})
    if name == "config":
        return json_reply(200, public_view(sandbox.configure(**data)))
    if name == "templates":
        if set(data) - {"name", "placeholders"}:
            raise ConfigError('the body must be {"name": "...", "placeholders": [...]}')
        config = sandbox.add_template(data.get("name"), data.get("placeholders", []))
        return json_reply(200, public_view(config))
    if name == "clock":
        if set(data) != {"offset_seconds"}:
            raise ConfigError('the body must be {"offset_seconds": N}')
        config = sandbox.configure(clock_offset_seconds=data["offset_seconds"])
        return json_reply(
            200, {"offset_seconds": config.clock_offset_seconds, "now_ms": sandbox.now_ms()}
        )
    return json_reply(404, {"error": f"no sandbox endpoint POST {path}"})
