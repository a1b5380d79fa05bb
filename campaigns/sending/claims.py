"""The typed values the send threads hand each other: a Claim out, an Outcome back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

from campaigns.mpaas.client import PERMANENT, PushError, PushReply


def _lease_end() -> float:
    return time.monotonic() + settings.PUSH_LEASE_SECONDS


@dataclass
class Claim:
    """A batch claimed for one call: its fence token, the attempt row written before the
    call, and the exact business parameters to send."""

    batch_id: int
    token: int
    attempt_no: int
    target_count: int
    params: dict[str, str]
    attempt_id: int
    lease_until: float = field(default_factory=_lease_end)  # monotonic end of the lease


@dataclass(frozen=True)
class Outcome:
    """What became of a claim handed to a caller: mPaaS's reply, a PushError, a bug in
    the call path, or not called at all (the run stopped sending first)."""

    claim: Claim
    reply: PushReply | None = None
    error: PushError | None = None
    bug: BaseException | None = None

    @property
    def called(self) -> bool:
        return self.reply is not None or self.error is not None or self.bug is not None

    @property
    def permanent(self) -> bool:
        return self.error is not None and self.error.kind == PERMANENT

    @classmethod
    def not_called(cls, claim: Claim) -> Outcome:
        return cls(claim)
