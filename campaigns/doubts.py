"""Calls whose outcome is in doubt: unknown outcomes, unreadable answers, and the deliveries
possibly pushed twice (sent again, same msgKey, after a call that may have been accepted).

Computed from what the send record already holds (``Batch.ambiguous`` and the Attempt
rows), never written per delivery: a call may have reached mPaaS when its Attempt row
says ``unknown`` (the worker was lost after the call; the sweeper reclaimed the batch as
ambiguous) or ``ambiguous`` (timeout, dropped connection, unreadable answer). A batch
accepted by a later attempt after such a call may have pushed its targets twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Exists, F, OuterRef, Sum
from django.db.models.functions import Coalesce

from campaigns.models import Attempt, Batch, Campaign, Delivery
from campaigns.mpaas.client import UNREADABLE_ANSWER

DOUBTFUL = (Attempt.Outcome.UNKNOWN, Attempt.Outcome.AMBIGUOUS)


def _doubtful_then_accepted() -> Exists:
    """For a Batch queryset: an attempt in doubt followed by an accepted one."""
    later_accepted = Attempt.objects.filter(
        batch=OuterRef("batch"), outcome=Attempt.Outcome.SUCCESS, number__gt=OuterRef("number")
    )
    return Exists(
        Attempt.objects.filter(batch=OuterRef("pk"), outcome__in=DOUBTFUL).filter(
            Exists(later_accepted)
        )
    )


def twice_batches(batches) -> set[int]:
    """Ids among ``batches`` (a Batch queryset or ids) whose targets were possibly pushed
    twice. Only batches flagged ambiguous are looked at (the flag is set whenever a call
    may have been lost)."""
    rows = batches if hasattr(batches, "model") else Batch.objects.filter(pk__in=list(batches))
    found = rows.filter(ambiguous=True).filter(_doubtful_then_accepted())
    return set(found.values_list("pk", flat=True))


def twice_for(deliveries: Iterable[Delivery]) -> set[int]:
    """Ids of the given deliveries possibly pushed twice (sent, in such a batch)."""
    deliveries = list(deliveries)
    batches = twice_batches({d.batch_id for d in deliveries})
    return {d.pk for d in deliveries if d.batch_id in batches and d.is_sent}


def lost_attempts(batch: Batch) -> set[int]:
    """Ids of the batch's attempts whose outcome stays unknown because their worker was
    lost: an unknown attempt that is not the batch's current call in flight."""
    current = None
    if batch.status == Batch.Status.CLAIMED:
        current = batch.attempt_log.filter(lease_token=batch.lease_token).order_by("-number")
        current = current.values_list("pk", flat=True).first()
    unknown = batch.attempt_log.filter(outcome=Attempt.Outcome.UNKNOWN)
    return {pk for pk in unknown.values_list("pk", flat=True) if pk != current}


@dataclass(frozen=True)
class CampaignDoubts:
    """What a campaign's page says about calls in doubt (all runs)."""

    possibly_twice: int  # deliveries sent again after a call that may have been accepted
    unreadable_calls: int  # calls whose answer could not be read
    lost_calls: int  # attempts left unknown by a lost worker (batch reclaimed as ambiguous)

    def __bool__(self) -> bool:
        return bool(self.possibly_twice or self.unreadable_calls or self.lost_calls)


def for_campaign(campaign: Campaign) -> CampaignDoubts:
    batches = Batch.objects.filter(campaign=campaign, ambiguous=True)
    twice = batches.filter(_doubtful_then_accepted())
    attempts = Attempt.objects.filter(batch__in=batches)
    lost = attempts.filter(outcome=Attempt.Outcome.UNKNOWN).exclude(
        batch__status=Batch.Status.CLAIMED, lease_token=F("batch__lease_token")
    )
    return CampaignDoubts(
        possibly_twice=twice.filter(status=Batch.Status.SENT).aggregate(
            n=Coalesce(Sum("target_count"), 0)
        )["n"],
        unreadable_calls=attempts.filter(result_code=UNREADABLE_ANSWER).count(),
        lost_calls=lost.count(),
    )
