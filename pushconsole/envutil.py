"""Small helpers for reading settings from the environment."""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def refuse_without(names: list[str], what: str) -> None:
    """Exit with one line on stderr (no traceback) unless every variable is set."""
    missing = [name for name in names if not os.environ.get(name, "").strip()]
    if missing:
        sys.stderr.write(
            f"Push Console: {what} needs {', '.join(missing)} in the environment "
            "(see docs/DEPLOY.md, Environment); refusing to start.\n"
        )
        raise SystemExit(2)


def generated_secret(path: Path, kind: str) -> str:
    """Read a secret from `path`, creating it (mode 0600) on first use.

    Used only when the environment does not provide one, so that a fresh clone runs
    with no configuration and nothing secret is ever committed.
    """
    if path.exists():
        return path.read_text().strip()
    if kind == "fernet":
        value = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    else:
        value = secrets.token_urlsafe(50)
    # Write a private temp file, then link it into place: the link either creates the
    # file whole or fails because another process won the race; then read theirs.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    try:
        os.link(tmp, path)
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value
