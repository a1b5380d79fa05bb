"""What a push call comes back as: a `PushReply`, or a `PushError` of a kind (transient,
permanent, ambiguous) the sending loop acts on, with every text scrubbed of URLs and
AccessKey IDs before it is stored or shown."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TRANSIENT, PERMANENT, AMBIGUOUS = "transient", "permanent", "ambiguous"
# The code an answer gets when the console cannot read it (not JSON, not an object, no
# PushResult): recorded as ambiguous, audited, and shown as needing reconcile.
UNREADABLE_ANSWER = "Console.UnreadableAnswer"

_URL_RE = re.compile(
    r"(with url: )?(\b[a-z][a-z0-9+.-]*://\S+|\S*\?\S*(Signature|AccessKeyId)=\S*)", re.I
)
# Signed-query fragments and AccessKey IDs (Alibaba Cloud's start with LTAI) left over.
_KEY_RE = re.compile(
    r"\b(AccessKeyId|Signature|SignatureNonce)=[^\s&\"',;]*|\bLTAI[0-9A-Za-z]{4,}", re.I
)


def scrub(text: str, *literals: str, limit: int = 1000) -> str:
    """Remove URLs (signed ones carry the AccessKeyId and signature), signed-query
    fragments, AccessKey IDs and each of `literals` (say, the credential's key ID)
    from a text before it is stored or shown."""
    text = _URL_RE.sub("[url removed]", text or "")
    text = _KEY_RE.sub("[key removed]", text)
    for literal in literals:
        if literal:
            text = text.replace(literal, "[key removed]")
    return text[:limit]


@dataclass
class PushReply:
    request_id: str
    result_code: str
    result_message: str
    success: bool
    result_msg: str
    data: str | None
    http_status: int
    latency_ms: int
    body: str


@dataclass
class PushError(Exception):
    kind: str
    code: str
    message: str
    request_id: str = ""
    http_status: int | None = None
    latency_ms: int = 0
    body: str = ""
    credential_name: str = field(default="", repr=False)
    key_id: str = field(default="", repr=False)  # scrubbed out of message and body

    def __post_init__(self) -> None:
        # Whatever the path and HTTP status, nothing stored or shown keeps a URL or key ID.
        self.message = scrub(self.message, self.key_id)
        self.body = scrub(self.body, self.key_id, limit=4000)
        super().__init__(str(self))

    def __str__(self) -> str:
        who = f"credential {self.credential_name!r}: " if self.credential_name else ""
        return f"{who}{self.code}: {self.message}"
