"""Two-factor hardening, each test playing the attack: TOTP seeds are not readable from
the database (and rotate with the credential keys); wrong codes from a password-only
attacker never block the holder's right code; backup codes are hashed, work once and are
shown once."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import default_key

from accounts import two_factor
from accounts.models import BackupCode, SealedTOTPDevice
from campaigns.models import AuditEvent

pytestmark = pytest.mark.django_db


def enrol(user) -> tuple[SealedTOTPDevice, str]:
    hex_key = default_key()
    device = SealedTOTPDevice(user=user, name="app", confirmed=True)
    device.set_key(hex_key)
    device.save()
    return device, hex_key


def code(device: SealedTOTPDevice, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():06d}"


def sign_in(username: str, password: str, ip: str = "127.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=ip)
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302
    return client


def raw_rows(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
        return repr(cursor.fetchall())


def test_the_seed_is_not_in_the_database_in_any_readable_form(marketer):
    device, hex_key = enrol(marketer)
    from base64 import b32encode
    from binascii import unhexlify

    rows = raw_rows(SealedTOTPDevice._meta.db_table)
    assert hex_key not in rows and hex_key.upper() not in rows
    assert b32encode(unhexlify(hex_key)).decode() not in rows
    assert SealedTOTPDevice.objects.get(pk=device.pk).bin_key == unhexlify(hex_key)


def test_rotate_credential_keys_re_encrypts_seeds(marketer, settings):
    device, hex_key = enrol(marketer)
    before = device.key_ciphertext
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [new_key, *settings.CREDENTIAL_KEYS]
    out = StringIO()
    call_command("rotate_credential_keys", stdout=out)
    assert "1 TOTP seed(s)" in out.getvalue()
    device.refresh_from_db()
    assert device.key_ciphertext != before
    settings.CREDENTIAL_KEYS = [new_key]  # the old key is gone: the seed still reads
    from binascii import unhexlify

    assert SealedTOTPDevice.objects.get(pk=device.pk).bin_key == unhexlify(hex_key)


def test_wrong_codes_from_a_password_only_attacker_do_not_block_the_holder(marketer, settings):
    settings.OTP_SESSION_FAILURE_LIMIT = 5
    settings.LOGIN_IP_FAILURE_LIMIT = 20
    device, _ = enrol(marketer)
    attacker = sign_in("mark", "pw-mark-123", ip="198.51.100.7")
    for _ in range(8):
        attacker.post("/account/2fa/verify/", {"otp_token": "000000"})
    assert "_auth_user_id" not in attacker.session  # the attacker's session ended at 5
    holder = sign_in("mark", "pw-mark-123", ip="203.0.113.9")
    response = holder.post("/account/2fa/verify/", {"otp_token": code(device)})
    assert response.status_code == 302 and response["Location"] == "/"
    assert holder.get("/campaigns/").status_code == 200


def test_wrong_codes_are_limited_per_address_across_sessions(marketer, settings):
    settings.OTP_SESSION_FAILURE_LIMIT = 3
    settings.LOGIN_IP_FAILURE_LIMIT = 6
    device, _ = enrol(marketer)
    for _ in range(2):  # new sessions do not reset the address's count
        attacker = sign_in("mark", "pw-mark-123", ip="198.51.100.7")
        for _ in range(3):
            attacker.post("/account/2fa/verify/", {"otp_token": "000000"})
    attacker = sign_in("mark", "pw-mark-123", ip="198.51.100.7")
    refused = attacker.post("/account/2fa/verify/", {"otp_token": code(device)})
    assert refused.status_code == 429  # even a right code is not even checked from there
    assert AuditEvent.objects.filter(action="login.2fa_ip_lockout").exists()


def test_backup_codes_are_hashed_work_once_and_are_shown_once(marketer):
    device, _ = enrol(marketer)
    client = sign_in("mark", "pw-mark-123")
    client.post("/account/2fa/verify/", {"otp_token": code(device)})
    page = client.post("/account/2fa/backup-codes/")
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    codes = [c for c in two_factor_codes(page.content.decode())]
    assert len(codes) == 10
    rows = raw_rows(BackupCode._meta.db_table)
    assert not any(c in rows or c.replace("-", "") in rows for c in codes)
    assert codes[0] not in client.get("/account/2fa/").content.decode()  # shown once

    phone_lost = sign_in("mark", "pw-mark-123")
    used = phone_lost.post("/account/2fa/verify/", {"backup_code": codes[0]})
    assert used.status_code == 302 and phone_lost.get("/campaigns/").status_code == 200
    again = sign_in("mark", "pw-mark-123")
    reused = again.post("/account/2fa/verify/", {"backup_code": codes[0]})
    assert reused.status_code == 200 and "already used" in reused.content.decode()
    assert again.get("/campaigns/").status_code == 302
    assert AuditEvent.objects.filter(action="login.backup_code", actor=marketer).count() == 1
    # a new set replaces the old
    client.post("/account/2fa/backup-codes/")
    assert not two_factor.use_backup_code(marketer, codes[1])


def test_backup_codes_cannot_be_made_before_the_second_step(marketer):
    enrol(marketer)
    client = sign_in("mark", "pw-mark-123")
    response = client.post("/account/2fa/backup-codes/")
    assert response.status_code == 302
    assert not BackupCode.objects.exists()


def two_factor_codes(page: str) -> list[str]:
    import re

    block = page.split('data-testid="backup-codes"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r"<li>([0-9a-f]{5}-[0-9a-f]{5})</li>", block)


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_existing_plain_hex_seeds():
    from binascii import unhexlify

    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0001_initial")])
    executor = MigrationExecutor(connection)
    apps = executor.loader.project_state(list(executor.loader.applied_migrations)).apps
    user = apps.get_model("auth", "User").objects.create(username="old-totp")
    hex_key = default_key()
    apps.get_model("otp_totp", "TOTPDevice").objects.create(
        user=user, name="phone", confirmed=True, key=hex_key, last_t=7
    )
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    from django_otp.plugins.otp_totp.models import TOTPDevice

    assert not TOTPDevice.objects.exists()  # no plain-hex row is left
    device = SealedTOTPDevice.objects.get(user_id=user.pk)
    assert device.confirmed and device.last_t == 7
    assert device.bin_key == unhexlify(hex_key)
    assert hex_key not in raw_rows(SealedTOTPDevice._meta.db_table)
