"""What one claimed batch sends, by kind of run: PushTemplate, PushMultiple or a recall.

A run's `mode` is decided once per send job (`mode_of`): a recall run revokes (one
RevokePushMessage per delivery, MessageId = the recalled delivery's msgKey); a campaign
with per-person values sends PushMultiple (each target its own TemplateKeyValue); any
other sends PushTemplate.
"""

from __future__ import annotations

from collections.abc import Iterable

from campaigns.conf import multiple_batch_size, push_limits
from campaigns.models import Campaign, Delivery, Run
from campaigns.mpaas import wire
from campaigns.mpaas.client import PushClient, PushReply
from campaigns.mpaas.strategy import PushSpec

TEMPLATE, MULTIPLE, RECALL = "template", "multiple", "recall"


def mode_of(run: Run, campaign: Campaign) -> str:
    if run.kind == Run.Kind.RECALL:
        return RECALL
    return MULTIPLE if campaign.per_person() else TEMPLATE


def params_for(mode: str, spec: PushSpec, batch_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """The exact business parameters of each batch's call of a PushMultiple or recall
    run, from its deliveries. (A PushTemplate claim reads its targets with the claim:
    `statements.claim_with_targets`, then `template_params`.)"""
    ids = list(batch_ids)
    rows: dict[int, list[tuple]] = {batch_id: [] for batch_id in ids}
    if mode == RECALL:
        for batch_id, target_id, message_id in (
            Delivery.objects.filter(batch_id__in=ids)
            .order_by("pk")
            .values_list("batch_id", "target_id", "recall_of__msg_key")
        ):
            rows[batch_id].append((message_id, target_id))
        # one message per call: RevokePushMessage takes one MessageId and one TargetId
        return {batch_id: wire.revoke_params(spec, *group[0]) for batch_id, group in rows.items()}
    if mode == MULTIPLE:
        for batch_id, target_id, key, values in (
            Delivery.objects.filter(batch_id__in=ids)
            .order_by("pk")
            .values_list("batch_id", "target_id", "msg_key", "values")
        ):
            rows[batch_id].append((target_id, key, values or {}))
        size = multiple_batch_size()
        return {
            batch_id: wire.multiple_params(spec, group, max_targets=size)
            for batch_id, group in rows.items()
        }
    raise ValueError(f"no delivery-read parameters for mode {mode!r}")


def template_params(
    spec: PushSpec, targets: dict[int, list[tuple[str, str]]]
) -> dict[int, dict[str, str]]:
    """PushTemplate parameters of each batch from its (target ID, msgKey) pairs."""
    limits = push_limits()
    return {
        batch_id: wire.template_params(spec, dict(pairs), limits=limits)
        for batch_id, pairs in targets.items()
    }


def make_call(mode: str, client: PushClient, params: dict[str, str]) -> PushReply:
    """One call of the mode's action (raises PushError as the client does)."""
    if mode == RECALL:
        return client.revoke(params)
    if mode == MULTIPLE:
        return client.push_multiple(params)
    return client.push_template(params)


def batch_size(mode: str) -> int:
    """Targets per call of the mode's action."""
    from django.conf import settings

    if mode == RECALL:
        return 1
    if mode == MULTIPLE:
        return multiple_batch_size()
    return min(settings.PUSH_BATCH_SIZE, 10)
