"""Alibaba Cloud RPC signature V1 (HMAC-SHA1), as aliyun-python-sdk-core computes it.

See PUSH_API.md §1: merge query and body parameters (without ``Signature``), sort by key,
percent-encode keys and values per RFC 3986, join, prefix ``METHOD&%2F&`` and sign with
``secret + "&"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["percent_encode", "string_to_sign", "sign", "signatures_match"]


_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]*")


def percent_encode(value: object) -> str:
    """RFC 3986 encoding: only ``A-Za-z0-9-_.~`` stay; space is ``%20``, ``*`` is ``%2A``."""
    text = str(value)
    if _UNRESERVED.fullmatch(text):  # most values: skip quote()'s per-byte work
        return text
    return quote(text, safe="~", encoding="utf-8")


def string_to_sign(method: str, params: Mapping[str, object]) -> str:
    """The canonical string the signature covers; ``Signature`` itself is left out."""
    pairs = sorted(
        ((k, v) for k, v in params.items() if k != "Signature"),
        key=lambda kv: kv[0].encode("utf-8"),
    )
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    # The canonical string holds only unreserved characters, %XX, "=" and "&", so encoding it
    # again is three replacements (same result as percent_encode, far cheaper on long bodies).
    encoded = canonical.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
    return f"{method.upper()}&%2F&{encoded}"


def sign_string(text: str, secret: str) -> str:
    digest = hmac.new((secret + "&").encode("utf-8"), text.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def sign(params: Mapping[str, object], secret: str, method: str = "POST") -> str:
    """``base64(HMAC-SHA1(secret + "&", string_to_sign(method, params)))``."""
    return sign_string(string_to_sign(method, params), secret)


def signatures_match(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
