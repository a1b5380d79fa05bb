"""manage.py reconcile_schedules: compare mPaaS-side scheduled tasks with mPaaS."""

from django.core.management.base import BaseCommand, CommandError

from campaigns import scheduling
from campaigns.models import Credential
from campaigns.mpaas.client import PushError


class Command(BaseCommand):
    help = (
        "List each app's mPaaS scheduled tasks (QueryPushSchedulerList), mark the console's "
        "tasks executed or missing, and report tasks on mPaaS the console does not know."
    )

    def add_arguments(self, parser):
        parser.add_argument("--credential", default="", help="only this credential (name)")

    def handle(self, *args, credential, **options):
        credentials = Credential.objects.filter(is_active=True)
        if credential:
            credentials = credentials.filter(name=credential)
            if not credentials.exists():
                raise CommandError(f"no active credential named {credential!r}")
        failed = False
        for item in credentials:
            try:
                report = scheduling.reconcile(item)
            except PushError as exc:
                self.stderr.write(f"{item.name}: could not list tasks: {exc}")
                failed = True
                continue
            unknown = report["unknown_on_mpaas"]
            self.stdout.write(
                f"{item.name}: {report['pending']} waiting, {report['executed']} executed, "
                f"{report['missing']} missing on mPaaS, {len(unknown)} unknown to the console"
                + (f" ({', '.join(unknown[:10])})" if unknown else "")
            )
        if failed:
            raise CommandError("some credentials could not be reconciled")
