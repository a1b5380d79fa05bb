"""Testing a credential: one harmless authenticated call, and what mPaaS answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns import crypto
from campaigns.models import Credential
from campaigns.mpaas.client import AMBIGUOUS, PERMANENT, TRANSIENT, PushClient, PushError

ERROR_KINDS = {
    TRANSIENT: gettext_lazy("temporary: nothing was done and a retry may succeed"),
    PERMANENT: gettext_lazy("permanent: retrying cannot help until something is fixed"),
    AMBIGUOUS: gettext_lazy("ambiguous: no answer came back"),
}


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of `check_connection`, secret-free."""

    ok: bool
    tasks: int = 0
    kind: str = ""
    code: str = ""
    message: str = ""
    request_id: str = ""
    http_status: int | None = None

    @property
    def kind_label(self) -> str:
        return str(ERROR_KINDS.get(self.kind, self.kind))

    def audit_details(self) -> dict:
        if self.ok:
            return {"ok": True, "tasks": self.tasks}
        return {"ok": False, "kind": self.kind, "code": self.code, "request_id": self.request_id}


def check_connection(credential: Credential) -> ConnectionCheck:
    """One harmless authenticated call (QueryPushSchedulerList over the last day)."""
    now = timezone.now()
    try:
        tasks = PushClient(credential).list_scheduled(now - timedelta(days=1), now)
    except PushError as exc:
        return ConnectionCheck(
            ok=False,
            kind=exc.kind,
            code=exc.code,
            message=exc.message,
            request_id=exc.request_id,
            http_status=exc.http_status,
        )
    except crypto.SecretUnreadableError:
        return ConnectionCheck(
            ok=False,
            kind=PERMANENT,
            code="SecretUnreadable",
            message=_(
                "The stored AccessKey secret cannot be decrypted with the "
                "configured CREDENTIAL_KEYS. Enter the secret again."
            ),
        )
    return ConnectionCheck(ok=True, tasks=len(tasks))
