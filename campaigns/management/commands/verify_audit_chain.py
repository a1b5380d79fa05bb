"""manage.py verify_audit_chain: check the audit trail's hash chain."""

from django.core.management.base import BaseCommand, CommandError

from campaigns import audit


class Command(BaseCommand):
    help = "Check the audit trail's hash chain; exit non-zero naming the first bad row."

    def handle(self, *args, **options):
        checked, broken = audit.verify_chain()
        if broken is not None:
            raise CommandError(
                f"audit chain broken at event {broken.event_id}: {broken.reason} "
                f"({checked} earlier event(s) verified)"
            )
        self.stdout.write(f"Audit chain intact: {checked} event(s) verified.")
