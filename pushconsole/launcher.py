"""`make run`: start the whole console on its embedded defaults and supervise it.

Starts, in order: the embedded Redis (unless REDIS_URL is set), the local mPaaS sandbox
(unless SANDBOX_PORT=0), one RQ worker on the `push` queue with the scheduler, and the
web server on 127.0.0.1:8000 (gunicorn). Prints the URL and the demo login. Ctrl-C (or
SIGTERM) stops every child cleanly, the web server first and Redis last; if any child
dies, the others are stopped and the launcher exits non-zero.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pushconsole.settings")
django.setup()

from django.conf import settings  # noqa: E402

from pushconsole import embedded_redis  # noqa: E402

BASE_DIR = Path(settings.BASE_DIR)
PYTHON = sys.executable


def _spawn(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    print(f"  starting {name}: {' '.join(args[1:4])} …", flush=True)
    # Own session: the terminal's Ctrl-C reaches only the launcher, which then stops
    # the children in a safe order.
    return subprocess.Popen(args, cwd=BASE_DIR, env=env, start_new_session=True)


def _stop(name: str, child: subprocess.Popen, timeout: float = 15.0) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"  {name} did not stop in {timeout:.0f}s; killing it", flush=True)
        child.kill()
        child.wait()


def main() -> int:
    host = os.environ.get("WEB_HOST", "127.0.0.1")
    port = os.environ.get("WEB_PORT", "8000")
    # The sandbox and the console's template mirror share the control endpoints' token.
    env = {**os.environ, "MPAAS_SANDBOX_TOKEN": settings.SANDBOX_CONTROL_TOKEN}
    redis_child = None
    if settings.EMBEDDED_REDIS:
        socket_path = Path(settings.EMBEDDED_REDIS_SOCKET)
        print(f"  starting embedded redis-server on {socket_path} …", flush=True)
        redis_child = embedded_redis.start(socket_path)
        env["REDIS_URL"] = settings.REDIS_URL

    children: list[tuple[str, subprocess.Popen]] = []
    if settings.SANDBOX_PORT:
        children.append(
            (
                "mPaaS sandbox",
                _spawn(
                    "mPaaS sandbox",
                    [
                        PYTHON,
                        "-m",
                        "mpaas_sandbox",
                        "serve",
                        "--host",
                        settings.SANDBOX_HOST,
                        "--port",
                        str(settings.SANDBOX_PORT),
                        "--config",
                        str(settings.VAR_DIR / "sandbox.json"),
                        "--ledger",
                        str(settings.VAR_DIR / "sandbox-ledger.jsonl"),
                        "--latency-ms",
                        os.environ.get("SANDBOX_LATENCY_MS", "20-60"),
                    ],
                    env,
                ),
            )
        )
    children.append(
        (
            "worker",
            _spawn("worker", [PYTHON, "manage.py", "rqworker", "push", "--with-scheduler"], env),
        )
    )
    children.append(
        (
            "sweeper schedule",
            _spawn("sweeper schedule", [PYTHON, "manage.py", "rqcron", "campaigns.cron"], env),
        )
    )
    children.append(
        (
            "web server",
            _spawn(
                "web server",
                [
                    PYTHON,
                    "-m",
                    "gunicorn",
                    "pushconsole.wsgi",
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                    "--graceful-timeout",
                    "10",
                    "--control-socket",
                    str(settings.VAR_DIR / "gunicorn.ctl"),
                ],
                env,
            ),
        )
    )

    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    password_file = Path(settings.VAR_DIR) / "demo_admin_password"
    print(f"\nPush Console is running at http://{host}:{port}/", flush=True)
    if password_file.exists():
        print(f"Demo login: admin / {password_file.read_text().strip()[:16]}", flush=True)
    print("Press Ctrl-C to stop.\n", flush=True)

    exit_code = 0
    while not stopping:
        for name, child in children:
            if child.poll() is not None:
                print(f"  {name} exited with code {child.returncode}; stopping", flush=True)
                exit_code = 1
                stopping = True
                break
        time.sleep(0.5)

    print("\nStopping …", flush=True)
    for name, child in reversed(children):
        _stop(name, child)
    embedded_redis.stop(redis_child)
    print("Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
