"""The request the SDK built and signed, as its vendored requests 2.18 would put it on the
wire: URL, headers in order, body (for `client._FastTransport`, which sends it with
urllib3 2; tests/test_transport.py compares the bytes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Texts of network failures where the request certainly never reached the server.
NOT_SENT_MARKERS = (
    "Connection refused",
    "NewConnectionError",
    "ConnectTimeout",
    "Name or service not known",
    "NameResolutionError",
    "nodename nor servname",
    "No route to host",
)
# With any of these set (or a proxy given), the SDK sends by itself.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def wire_headers(
    headers: Mapping[str, str], body: str | bytes | None, session: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """The headers, in order, that the SDK's requests 2.18 sends: the session's defaults
    first, each replaced in place (case-insensitively, with the request's spelling) by
    the request's own, then the request's others, then Content-Length."""
    merged: dict[str, tuple[str, str]] = {name.lower(): (name, v) for name, v in session}
    for name, value in headers.items():
        merged[name.lower()] = (name, value)
    if body:
        merged["content-length"] = ("Content-Length", str(len(body)))
    elif "content-length" not in merged:
        merged["content-length"] = ("Content-Length", "0")
    return {name: value for name, value in merged.values() if value is not None}


def wire_request(
    prepared, port: int, session: Iterable[tuple[str, str]]
) -> tuple[str, str, dict[str, str], str | bytes | None]:
    """(method, absolute URL, headers, body) of an SDK HttpResponse, as its
    `get_response_object` would send them."""
    scheme = "https://" if prepared.get_ssl_enabled() else "http://"
    host = prepared.get_host()
    if host.startswith("https://") or scheme == "https://":
        suffix = f":{port}" if port not in (80, 443) else ""
    else:
        suffix = f":{port}" if port != 80 else ""
    if host.startswith(("http://", "https://")):
        url = host + suffix + prepared.get_url()
    else:
        url = scheme + host + suffix + prepared.get_url()
    body = prepared.get_body()
    return prepared.get_method(), url, wire_headers(prepared.get_headers(), body, session), body
