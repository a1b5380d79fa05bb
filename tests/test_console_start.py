"""The demo world and the one-command start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command

from campaigns.models import Credential, MessageTemplate, TargetList

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_seed_demo_creates_the_demo_world_once(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    call_command("seed_demo")  # again: reuses what is there
    out = capsys.readouterr().out
    assert out.count("Created the demo admin.") == 1
    assert "Demo login: admin / " in out
    credential = Credential.objects.get()
    assert credential.is_sandbox
    assert MessageTemplate.objects.get().placeholders() == ("name", "coupon", "date")
    assert TargetList.objects.get().targets.count() == 25
    config = (tmp_path / "sandbox.json").read_text()
    assert credential.secret() in config  # the sandbox must know the key pair
    assert json.loads(config)["control_token"] == settings.SANDBOX_CONTROL_TOKEN
    assert oct((tmp_path / "sandbox.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.django_db
def test_home_lists_credential_template_and_list(client, admin_user, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    credential = Credential.objects.get()
    for text in (
        "Sandbox (demo)",
        "demo_welcome",
        "Demo users",
        "Sandbox</span>",
        credential.masked_access_key_id,
    ):
        assert text in page
    assert credential.access_key_id not in page
    assert credential.secret() not in page


def test_pages_require_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_launcher_starts_everything_and_stops_cleanly(tmp_path):
    """`make run` minus the install: migrate, seed, launch; the login page answers; the
    sandbox answers; Ctrl-C stops every child."""
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "WEB_PORT": str(free_port()),
        "SANDBOX_PORT": str(free_port()),
        "MPAAS_SANDBOX_TOKEN": "launcher-test-token-0001",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run(
        [python, "manage.py", "seed_demo"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "Demo login: admin / " in seeded.stdout
    launcher = subprocess.Popen(
        [python, "-m", "pushconsole.launcher"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{env['WEB_PORT']}/login/") as r:
                    status = r.status
                break
            except OSError:
                time.sleep(0.3)
        assert status == 200
        stats = urllib.request.Request(
            f"http://127.0.0.1:{env['SANDBOX_PORT']}/_sandbox/stats",
            headers={"X-Sandbox-Token": env["MPAAS_SANDBOX_TOKEN"]},
        )
        with urllib.request.urlopen(stats) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:  # no token, no control
            urllib.request.urlopen(f"http://127.0.0.1:{env['SANDBOX_PORT']}/_sandbox/stats")
        assert refused.value.code == 403
        assert (tmp_path / "redis.sock").exists()
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, output
    assert "Push Console is running at http://127.0.0.1:" in output
    assert "Stopped." in output
    assert not (tmp_path / "redis.sock").exists() or not _socket_answers(tmp_path / "redis.sock")


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True
