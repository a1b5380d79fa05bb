"""The demo world and the one-command start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.core.management import call_command

from campaigns.models import Credential, MessageTemplate, TargetList
from tests.fault_helpers import kill_tree

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


def test_the_launcher_counts_the_web_as_running_when_it_answers_http(tmp_path):
    """ "Running at …" waits for an HTTP answer (any status), not an open port: gunicorn's
    master listens before its workers have loaded the app."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self):  # a Host header Django refuses still answers
            self.send_error(400)

        def log_message(self, *args):
            pass

    answering = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=answering.serve_forever, daemon=True).start()
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        probe = (
            "import sys; from pushconsole.launcher import web_answers; "
            "print(*(web_answers('127.0.0.1', int(port)) for port in sys.argv[1:]))"
        )
        ports = [str(silent.getsockname()[1]), str(answering.server_address[1]), str(free_port())]
        env = {
            **os.environ,
            "VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "pushconsole.settings",
        }
        env.pop("DATABASE_URL", None)
        done = subprocess.run(
            [sys.executable, "-c", probe, *ports],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    answering.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True", "False"]  # silent, answering, closed


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
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
    reader.start()
    try:
        # what the user is told: once "running at" is printed, the pages answer
        deadline = time.monotonic() + 60
        while not any("Push Console is running at" in line for line in lines):
            assert launcher.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{env['WEB_PORT']}/login/") as r:
            assert r.status == 200
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
        launcher.wait(timeout=60)
        reader.join(10)
    output = "".join(lines)
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


def console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A `make run` environment of its own: var/ in tmp_path, free ports, embedded Redis."""
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "WEB_PORT": str(free_port()),
        "SANDBOX_PORT": str(free_port()),
        **extra,
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    return env


def login_status(env: dict[str, str]) -> int | None:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{env['WEB_PORT']}/login/", timeout=5
        ) as response:
            return response.status
    except OSError:
        return None


def children_running(launcher: subprocess.Popen, needle: str) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if needle in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_for(predicate, timeout: float, what: str, tick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if tick:
            tick()
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


LAUNCH_DEMO = """
from campaigns import lifecycle
from campaigns.models import Campaign, Credential, MessageTemplate, TargetList
campaign = Campaign.objects.create(
    task_name="after the blink", credential=Credential.objects.get(),
    template=MessageTemplate.objects.get(), target_list=TargetList.objects.get(),
    template_values={"name": "Ann", "coupon": "C-1", "date": "today"}, expired_seconds=3600,
)
lifecycle.launch(campaign, None)
print(campaign.pk)
"""


def campaign_status(env: dict[str, str], campaign_id: int) -> str:
    code = (
        "from campaigns.models import Campaign; "
        f"print(Campaign.objects.get(pk={campaign_id}).status)"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.slow
def test_make_run_survives_a_killed_worker_and_a_killed_redis(tmp_path):
    """Under `make run`'s supervisor a killed worker and a killed Redis are restarted; the
    web server answers throughout, and a campaign launched afterwards is sent."""
    env = console_env(tmp_path, SWEEP_INTERVAL_SECONDS="2")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "pushconsole.launcher"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    answers: list[int | None] = []
    try:
        wait_for(lambda: login_status(env) == 200, 60, "the login page")
        workers = wait_for(lambda: children_running(launcher, "rqworker"), 30, "the worker")
        old_worker = {proc.pid for proc in workers}
        for proc in workers:
            kill_tree(proc.pid)
        wait_for(
            lambda: {p.pid for p in children_running(launcher, "rqworker")} - old_worker,
            30,
            "a new worker",
            tick=lambda: answers.append(login_status(env)),
        )
        (redis_server,) = children_running(launcher, "redis-server")
        redis_server.kill()
        wait_for(
            lambda: [
                p for p in children_running(launcher, "redis-server") if p.pid != redis_server.pid
            ],
            30,
            "Redis to be restarted",
            tick=lambda: answers.append(login_status(env)),
        )
        launched = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", LAUNCH_DEMO],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        campaign_id = int(launched.stdout.strip().splitlines()[-1])
        wait_for(
            lambda: campaign_status(env, campaign_id) == "completed",
            60,
            "the campaign to complete",
            tick=lambda: answers.append(login_status(env)),
        )
        # and once more at the end: each wait may be over at its first look, with no tick
        answers.append(login_status(env))
        assert answers and all(status == 200 for status in answers), answers
        assert launcher.poll() is None  # nothing made the console stop
    finally:
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=90)
    assert launcher.returncode == 0, output[-3000:]
    assert output.count("Push Console is running at") == 1


@pytest.mark.slow
def test_make_run_names_the_port_and_web_port_when_the_port_is_taken(tmp_path):
    env = console_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["WEB_PORT"])))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "pushconsole.launcher"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"Port {env['WEB_PORT']} on 127.0.0.1 is already in use" in result.stderr
    assert "WEB_PORT" in result.stderr
    assert "running at" not in result.stdout
