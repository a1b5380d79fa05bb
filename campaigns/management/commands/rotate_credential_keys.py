"""manage.py rotate_credential_keys: re-encrypt every stored secret with the first key."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from campaigns import audit, crypto
from campaigns.models import Credential


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored AccessKey secret under the first key of CREDENTIAL_KEYS. "
        "Run after putting a new key first; then the old keys can be removed."
    )

    def handle(self, *args, **options):
        rotated = 0
        with transaction.atomic():
            for credential in Credential.objects.select_for_update().order_by("pk"):
                try:
                    new_token = crypto.rotate(credential.secret_ciphertext)
                except crypto.SecretUnreadableError as exc:
                    raise CommandError(f"credential {credential.name!r}: {exc}") from None
                Credential.objects.filter(pk=credential.pk).update(secret_ciphertext=new_token)
                rotated += 1
            audit.record("credential.rotate_keys", details={"credentials": rotated})
        self.stdout.write(f"Re-encrypted {rotated} credential secret(s) under the first key.")
