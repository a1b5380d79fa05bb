"""manage.py sweep: run the sweeper once, or in a loop."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from campaigns import sweeper


class Command(BaseCommand):
    help = (
        "Return expired batch leases to the queue, re-queue work whose job vanished and "
        "close finished runs. Once, or every --interval seconds with --loop."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sweeping")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between sweeps with --loop (default SWEEP_INTERVAL_SECONDS)",
        )

    def handle(self, *args, loop, interval, **options):
        interval = settings.SWEEP_INTERVAL_SECONDS if interval is None else interval
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        if loop:
            sweeper.sweep_forever(interval)
        else:
            self.stdout.write(str(sweeper.sweep()))
