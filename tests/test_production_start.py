"""A fresh production start done as docs/DEPLOY.md says: the keys are required, migrate,
collectstatic, check --deploy, then a real gunicorn serves the sign-in page and its
hashed style sheet; without collectstatic the documented check fails, naming it."""

from __future__ import annotations

import base64
import os
import re
import secrets
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.slow

KEYS = ("SECRET_KEY", "CREDENTIAL_KEYS", "AUDIT_KEY")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(var: Path, redis_url: str, **keys: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("PUSH_")}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "DJANGO_ALLOW_ASYNC_UNSAFE"):  # the tests' own
        env.pop(name, None)
    env.update(
        PUSHCONSOLE_PROFILE="production",
        VAR_DIR=str(var),
        DATABASE_URL=f"sqlite:///{var / 'pushconsole.sqlite3'}",
        REDIS_URL=redis_url,
        ALLOWED_HOSTS="127.0.0.1",
        **keys,
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def get(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_the_production_profile_refuses_to_start_without_its_keys(tmp_path, redis_url):
    var = tmp_path / "var"
    env = production_env(var, redis_url, AUDIT_KEY="a" * 50)
    result = manage(env, "migrate", "--noinput")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY, CREDENTIAL_KEYS" in lines[0] and "AUDIT_KEY" not in lines[0]
    assert "Traceback" not in result.stderr
    assert not var.exists() or not any(var.iterdir())  # no key generated, no database


def test_a_fresh_production_start_following_deploy_md_serves_pages(tmp_path, redis_url):
    var = tmp_path / "var"
    env = production_env(
        var,
        redis_url,
        SECRET_KEY=secrets.token_urlsafe(64),
        CREDENTIAL_KEYS=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        AUDIT_KEY=secrets.token_urlsafe(50),
    )
    migrate = manage(env, "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    # Forgetting collectstatic: the documented check fails and says what to run.
    early = manage(env, "check", "--deploy")
    assert early.returncode != 0
    assert "pushconsole.E001" in early.stderr and "collectstatic" in early.stderr

    collect = manage(env, "collectstatic", "--noinput")
    assert collect.returncode == 0, collect.stderr[-3000:]
    check = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert check.returncode == 0, check.stdout + check.stderr

    port = free_port()
    log = (tmp_path / "gunicorn.log").open("wb")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "pushconsole.wsgi", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, page = get(f"{base}/login/")
                break
            except OSError:
                assert web.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.3)
        assert status == 200, page[-2000:]
        assert "Log in" in page
        sheets = re.findall(r'<link[^>]+href="(/static/[^"]+\.css)"', page)
        assert sheets, page[:2000]
        for sheet in sheets:
            assert re.search(r"\.[0-9a-f]{12}\.css$", sheet), f"{sheet} is not a hashed name"
            status, body = get(base + sheet)
            assert status == 200 and len(body) > 100, sheet
        status, _ = get(f"{base}/healthz")
        assert status == 200
    finally:
        web.terminate()
        try:
            web.wait(15)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()
        log.close()

    # every file the console created under VAR_DIR is readable by its owner only
    loose = [
        str(path.relative_to(var))
        for path in [var, *var.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert loose == []


def test_a_web_worker_starts_with_its_views_loaded_and_its_objects_frozen(tmp_path, redis_url):
    """What gunicorn imports readies the worker: every view module loaded and the app's
    objects moved out of the collector's sight (pushconsole/wsgi.py), so no request
    pays the imports or a full collection's walk over them."""
    env = production_env(tmp_path / "var", redis_url)
    env.pop("PUSHCONSOLE_PROFILE")
    probe = (
        "import gc, sys; before = gc.get_freeze_count(); import pushconsole.wsgi; "
        "print(before, gc.get_freeze_count(), 'campaigns.views.history' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    before, frozen, views_loaded = done.stdout.split()
    assert (int(before), views_loaded) == (0, "True")
    assert int(frozen) > 50_000, frozen
