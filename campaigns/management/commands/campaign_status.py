"""manage.py campaign_status: a campaign's runs, counters, outcomes and last errors."""

from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Attempt, Campaign


class Command(BaseCommand):
    help = "Print a campaign's status, per-run counters, outcomes by ResultCode, last errors."

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int, help="campaign ID")
        parser.add_argument("--errors", type=int, default=5, help="last errors to show")

    def handle(self, *args, campaign_id, errors, **options):
        try:
            campaign = Campaign.objects.get(pk=campaign_id)
        except Campaign.DoesNotExist:
            raise CommandError(f"no campaign with ID {campaign_id}") from None
        out = self.stdout.write
        out(f"Campaign {campaign.pk} {campaign.task_name!r}: {campaign.get_status_display()}")
        if campaign.status_reason:
            out(f"  reason: {campaign.status_reason}")
        for run in campaign.runs.order_by("number"):
            n = run.counts()
            pct = 100 * n.done / n.total if n.total else 0
            out(
                f"Run {run.number} ({run.get_kind_display()}, {run.get_status_display()}"
                f"{'' if run.planning_done else ', planning'}): total {n.total}, "
                f"pending {n.pending}, in flight {n.in_flight}, sent {n.sent}, "
                f"failed {n.failed}, cancelled {n.cancelled} — {pct:.1f}% done, "
                f"{run.batch_count} call(s)"
            )
            for row in run.outcomes():
                code = row.result_code or "—"
                label = f" ({row.meaning})" if row.meaning else ""
                out(f"    {code}{label}: {row.targets} target(s) in {row.calls} call(s)")
        last = (
            Attempt.objects.filter(batch__campaign=campaign)
            .exclude(outcome__in=[Attempt.Outcome.SUCCESS, Attempt.Outcome.UNKNOWN])
            .order_by("-pk")[:errors]
        )
        if last:
            out("Last errors:")
            for attempt in last:
                out(
                    f"    {attempt.started_at:%Y-%m-%d %H:%M:%S} batch {attempt.batch_id} "
                    f"attempt {attempt.number}: {attempt.outcome} {attempt.result_code} "
                    f"{attempt.result_message[:120]}"
                    + (f" [RequestId {attempt.request_id}]" if attempt.request_id else "")
                )
