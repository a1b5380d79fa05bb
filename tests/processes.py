"""Real worker processes for tests: the environment that points a subprocess at the
test database and Redis, and a context manager that starts and always stops workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{name}"


def worker_env(redis_url: str, **overrides: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": redis_url}
    env["AUDIT_WITNESS_PATH"] = str(settings.AUDIT_WITNESS_PATH)
    env["AUDIT_KEY"] = settings.AUDIT_KEY
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@contextmanager
def workers(redis_url: str, count: int = 1, **overrides: str) -> Iterator[list[subprocess.Popen]]:
    """Start `count` real `rqworker push` processes; stop them all afterwards."""
    env = worker_env(redis_url, **overrides)
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "push"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
