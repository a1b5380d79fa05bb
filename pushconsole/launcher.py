"""`make run`: the whole console on its embedded defaults, supervised by supervisord.

Writes `var/supervisord.conf` and runs supervisord (the `supervisor` package) in the
foreground with these programs: the embedded Redis (unless REDIS_URL is set), the local
mPaaS sandbox (unless SANDBOX_PORT=0), RUN_WORKERS RQ workers on the `push` queue (the
first with the RQ scheduler), the rqcron schedule (sweeper, due-check, reconcile) and the
web server on WEB_HOST:WEB_PORT (gunicorn). A child that exits is restarted (with
supervisord's growing backoff while it keeps failing to start), so a Redis blink or a
killed worker never takes the web server down. "Running at …" is printed only once the
web server answers HTTP, not merely once its port is open; a port already in use is
named with the WEB_PORT setting. Ctrl-C (or SIGTERM) stops every child, the web server
first and Redis last.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
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
START_TIMEOUT = 60.0  # seconds for the web port to answer


def _quote(arg: str) -> str:
    """One argument of a supervisord `command=` line (shell-like quoting, % doubled)."""
    arg = arg.replace("%", "%%")
    if arg and all(c.isalnum() or c in "-_./:=,@+" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def programs(host: str, port: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, command, options) of every supervised child, in start order."""
    var = Path(settings.VAR_DIR)
    out: list[tuple[str, list[str], dict[str, str]]] = []
    if settings.EMBEDDED_REDIS:
        socket_path = Path(settings.EMBEDDED_REDIS_SOCKET)
        out.append(("redis", embedded_redis.server_args(socket_path), {"startsecs": "1"}))
    if settings.SANDBOX_PORT:
        sandbox = [PYTHON, "-m", "mpaas_sandbox", "serve", "--host", settings.SANDBOX_HOST]
        sandbox += ["--port", str(settings.SANDBOX_PORT), "--config", str(var / "sandbox.json")]
        sandbox += ["--ledger", str(var / "sandbox-ledger.jsonl")]
        sandbox += ["--latency-ms", os.environ.get("SANDBOX_LATENCY_MS", "20-60")]
        out.append(("sandbox", sandbox, {}))
    workers = max(1, int(os.environ.get("RUN_WORKERS", "1")))
    for index in range(workers):
        worker = [PYTHON, "manage.py", "rqworker", "push"]
        if index == 0:
            worker.append("--with-scheduler")
        out.append((f"worker{index}", worker, {"stopwaitsecs": "20"}))
    out.append(("rqcron", [PYTHON, "manage.py", "rqcron", "campaigns.cron"], {}))
    web = [PYTHON, "-m", "gunicorn", "pushconsole.wsgi", "--bind", f"{host}:{port}"]
    web += ["--workers", "2", "--threads", "4", "--access-logfile", "-"]
    web += ["--graceful-timeout", "10", "--control-socket", str(var / "gunicorn.ctl")]
    out.append(("web", web, {"stopwaitsecs": "15"}))
    return out


def supervisord_conf(host: str, port: str) -> str:
    """The supervisord configuration of `make run` (docs/DEPLOY.md has the production
    one, deploy/supervisord.conf)."""
    var = Path(settings.VAR_DIR)
    lines = [
        "; written by pushconsole/launcher.py on every `make run`; edits are lost",
        "[supervisord]",
        "nodaemon=true",
        f"logfile={_quote(str(var / 'supervisord.log'))}",
        f"pidfile={_quote(str(var / 'supervisord.pid'))}",
        f"directory={_quote(str(BASE_DIR))}",
        "umask=077",
        "loglevel=info",
        "",
        "[unix_http_server]",
        f"file={_quote(str(var / 'supervisor.sock'))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_quote(str(var / 'supervisor.sock'))}",
        "",
    ]
    for priority, (name, command, options) in enumerate(programs(host, port), start=1):
        settings_ = {
            "command": " ".join(_quote(arg) for arg in command),
            "priority": str(priority * 10),  # started in order, stopped in reverse
            "autorestart": "true",
            "startsecs": "3",
            "startretries": "100",  # each failed start waits one second longer
            "stopasgroup": "true",
            "killasgroup": "true",
            "redirect_stderr": "true",
            "stdout_logfile": "/dev/stdout",
            "stdout_logfile_maxbytes": "0",
            **options,
        }
        lines.append(f"[program:{name}]")
        lines += [f"{key}={value}" for key, value in settings_.items()]
        lines.append("")
    return "\n".join(lines)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def web_answers(host: str, port: int) -> bool:
    """Whether the web server answers HTTP on host:port (any status: a refused Host header
    is an answer too). An open port is not enough: gunicorn's master listens before its
    workers have loaded the app, and a request in that time waits for them. (http.client,
    not urllib: no proxy from the environment is asked.)"""
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def fresh_metrics_dir(var: Path) -> Path:
    """prometheus-client's multiprocess directory for every child, emptied first (its
    files are one process's counters each; a restart starts them from zero)."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or var / "metrics")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    return path


def main() -> int:
    host = os.environ.get("WEB_HOST", "127.0.0.1")
    port = os.environ.get("WEB_PORT", "8000")
    if port_in_use(host, int(port)):
        print(
            f"Port {port} on {host} is already in use (another Push Console?). "
            f"Stop it, or choose another port with WEB_PORT, e.g. WEB_PORT={int(port) + 1} "
            "make run",
            file=sys.stderr,
            flush=True,
        )
        return 1
    var = Path(settings.VAR_DIR)
    os.chmod(var, 0o700)
    conf = var / "supervisord.conf"
    conf.write_text(supervisord_conf(host, port))
    conf.chmod(0o600)
    # The sandbox and the console's template mirror share the control endpoints' token.
    env = {**os.environ, "MPAAS_SANDBOX_TOKEN": settings.SANDBOX_CONTROL_TOKEN}
    if settings.EMBEDDED_REDIS:
        env["REDIS_URL"] = settings.REDIS_URL
    env["PROMETHEUS_MULTIPROC_DIR"] = str(fresh_metrics_dir(var))
    print(f"  starting supervisord ({conf}) …", flush=True)
    supervisor = subprocess.Popen(
        [PYTHON, "-m", "supervisor.supervisord", "-c", str(conf)],
        cwd=BASE_DIR,
        env=env,
        start_new_session=True,  # Ctrl-C reaches the launcher, which stops it in order
    )

    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    exit_code = 0
    deadline = time.monotonic() + START_TIMEOUT
    while not stopping and supervisor.poll() is None and not web_answers(host, int(port)):
        if time.monotonic() > deadline:
            print(
                f"The web server did not answer on {host}:{port} within "
                f"{START_TIMEOUT:.0f} s (is port {port} taken? set WEB_PORT); see the log "
                "above; stopping",
                file=sys.stderr,
                flush=True,
            )
            stopping, exit_code = True, 1
            break
        time.sleep(0.2)
    if not stopping and supervisor.poll() is None:
        password_file = var / "demo_admin_password"
        print(f"\nPush Console is running at http://{host}:{port}/", flush=True)
        if password_file.exists():
            print(f"Demo login: admin / {password_file.read_text().strip()[:16]}", flush=True)
        print("Press Ctrl-C to stop.\n", flush=True)
    elif not stopping:
        exit_code = 1
    while not stopping and supervisor.poll() is None:
        time.sleep(0.5)
    if supervisor.poll() is not None and not stopping:
        print(f"  supervisord exited with code {supervisor.returncode}", flush=True)
        exit_code = 1
    print("\nStopping …", flush=True)
    if supervisor.poll() is None:
        supervisor.send_signal(signal.SIGTERM)  # stops the programs in reverse order
        try:
            supervisor.wait(60)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()
            exit_code = 1
    elif stopping and exit_code == 0 and supervisor.returncode not in (0, None):
        exit_code = 1
    print("Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
