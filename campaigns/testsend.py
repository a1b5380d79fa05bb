"""Test sends: the message as it stands, to one to five typed targets, never in a run."""

from __future__ import annotations

import dataclasses
import re
import secrets

from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import audit
from campaigns.conf import push_limits
from campaigns.importing import validate_target_id
from campaigns.models import AuditEvent, Campaign
from campaigns.mpaas import strategy, wire
from campaigns.mpaas.client import PushClient, PushError
from campaigns.mpaas.vocabulary import StrategyType, result_label

MAX_TARGETS = 5
ACTION = "campaign.test_send"


class TestSendError(ValueError):
    """The typed targets or the message cannot be sent; `message` says why."""


@dataclasses.dataclass(frozen=True)
class Answer:
    ok: bool
    request_id: str
    result_code: str
    message: str  # in words
    targets: list[str]

    @classmethod
    def from_event(cls, event: AuditEvent) -> Answer:
        d = event.details
        return cls(
            ok=bool(d.get("success")),
            request_id=d.get("request_id", ""),
            result_code=d.get("result_code", ""),
            message=d.get("message", ""),
            targets=list(d.get("targets", [])),
        )


def parse_targets(text: str, delivery_type: int) -> list[str]:
    """One to five target IDs, separated by commas, spaces or new lines, each valid for
    the campaign's delivery type; raises TestSendError naming the first bad one."""
    ids = list(dict.fromkeys(v for v in re.split(r"[\s,;]+", text or "") if v))
    if not ids:
        raise TestSendError(_("Type one to five target IDs."))
    if len(ids) > MAX_TARGETS:
        raise TestSendError(
            _("At most %(max)d test targets; %(n)d were given.")
            % {"max": MAX_TARGETS, "n": len(ids)}
        )
    for value in ids:
        reason = validate_target_id(value, delivery_type)
        if reason:
            raise TestSendError(
                _("Test target %(value)s: %(reason)s") % {"value": value[:60], "reason": reason}
            )
    return ids


def send(campaign: Campaign, text: str, *, request=None) -> Answer:
    """Send the campaign's message now (always immediate, never a scheduled task) to the
    typed targets through the real client; audited as a test, no run or delivery rows."""
    targets = parse_targets(text, campaign.delivery_type)
    limits = push_limits()
    spec = dataclasses.replace(
        campaign.push_spec(),
        strategy_type=StrategyType.IMMEDIATE,
        task_name=(_("[test] %(name)s") % {"name": campaign.task_name})[:128],
    )
    errors = strategy.validate(spec, now=timezone.now(), limits=limits)
    if errors:
        raise TestSendError(" ".join(m for ms in errors.values() for m in ms))
    token = secrets.token_hex(4)
    params = wire.template_params(
        spec, {t: f"pc{campaign.pk}t{token}n{i}" for i, t in enumerate(targets)}, limits=limits
    )
    try:
        reply = PushClient(campaign.credential).push_template(params)
    except PushError as exc:
        answer = Answer(
            False, exc.request_id, exc.code, result_label(exc.code) or exc.message, targets
        )
    else:
        answer = Answer(
            True,
            reply.request_id,
            reply.result_code,
            result_label(reply.result_code) or reply.result_message or _("Accepted"),
            targets,
        )
    audit.record(
        ACTION,
        obj=campaign,
        request=request,
        details={
            "test": True,
            "targets": targets,
            "success": answer.ok,
            "request_id": answer.request_id,
            "result_code": answer.result_code,
            "message": answer.message,
        },
    )
    return answer


def recent(campaign: Campaign, limit: int = 5) -> list[Answer]:
    """The campaign's last test sends, newest first (from the audit trail)."""
    events = AuditEvent.objects.filter(
        action=ACTION, object_type="campaign", object_id=str(campaign.pk)
    ).order_by("-pk")[:limit]
    return [Answer.from_event(e) for e in events]
