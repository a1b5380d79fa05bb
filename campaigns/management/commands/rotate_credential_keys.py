"""manage.py rotate_credential_keys: re-encrypt every stored secret (AccessKey secrets and
sealed TOTP seeds) with the first key."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import SealedTOTPDevice
from campaigns import audit, crypto
from campaigns.models import Credential


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored AccessKey secret and TOTP seed under the first key of "
        "CREDENTIAL_KEYS. "
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
            seeds = 0
            for device in SealedTOTPDevice.objects.select_for_update().order_by("pk"):
                try:
                    new_token = crypto.rotate(device.key_ciphertext)
                except crypto.SecretUnreadableError:
                    raise CommandError(
                        f"TOTP device {device.pk}: its seed cannot be decrypted with "
                        "CREDENTIAL_KEYS"
                    ) from None
                SealedTOTPDevice.objects.filter(pk=device.pk).update(key_ciphertext=new_token)
                seeds += 1
            audit.record(
                "credential.rotate_keys", details={"credentials": rotated, "totp_seeds": seeds}
            )
        self.stdout.write(
            f"Re-encrypted {rotated} credential secret(s) and {seeds} TOTP seed(s) "
            "under the first key."
        )
