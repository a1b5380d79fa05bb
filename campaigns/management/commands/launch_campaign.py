"""manage.py launch_campaign: launch a draft as a user, with the console's rules."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from campaigns import lifecycle
from campaigns.models import Campaign


class Command(BaseCommand):
    help = "Launch a draft campaign (the same rules as the Launch button)."

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int, help="campaign ID")
        parser.add_argument("--as-user", default="", help="username recorded as launcher")

    def handle(self, *args, campaign_id, as_user, **options):
        try:
            campaign = Campaign.objects.select_related("credential", "template", "target_list").get(
                pk=campaign_id
            )
        except Campaign.DoesNotExist:
            raise CommandError(f"no campaign with ID {campaign_id}") from None
        user = None
        if as_user:
            user = get_user_model().objects.filter(username=as_user).first()
            if user is None:
                raise CommandError(f"no user named {as_user!r}")
        try:
            run = lifecycle.launch(campaign, user)
        except lifecycle.LaunchError as exc:
            raise CommandError(f"campaign {campaign_id} cannot be launched: {exc}") from None
        except lifecycle.StateError as exc:
            raise CommandError(f"campaign {campaign_id}: {exc}") from None
        if run is None:
            self.stdout.write(
                f"Scheduled campaign {campaign_id} ({campaign.task_name!r}) in this console: "
                f"{campaign.occurrences.count()} occurrence(s)."
            )
            return
        self.stdout.write(
            f"Launched campaign {campaign_id} ({campaign.task_name!r}): run {run.number}, "
            f"{campaign.target_list.target_count} target(s) queued for planning."
        )
