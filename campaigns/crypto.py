"""Encryption of AccessKey secrets at rest (MultiFernet, keys from settings).

Keys are read when called, not at import, so rotation and tests see the current list.
The first key encrypts; every key decrypts.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadableError(Exception):
    """The stored secret cannot be decrypted with any configured CREDENTIAL_KEYS."""


def _fernet() -> MultiFernet:
    keys = list(settings.CREDENTIAL_KEYS)
    if not keys:
        raise ImproperlyConfigured("CREDENTIAL_KEYS is empty")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "CREDENTIAL_KEYS must be comma-separated Fernet keys (32 url-safe base64 bytes)"
        ) from None


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadableError(
            "the stored AccessKey secret cannot be decrypted with CREDENTIAL_KEYS"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt `token` under the first key (MultiFernet.rotate)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadableError(
            "the stored AccessKey secret cannot be decrypted with CREDENTIAL_KEYS"
        ) from None
