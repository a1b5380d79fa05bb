"""Hosts as Linux network namespaces for the multi-host drill: five namespaces joined by a
bridge in the root namespace on 10.250.0.0/24 (addresses only on links made here), a
throwaway PostgreSQL cluster and Redis on the db host, processes started in a host, links
cut and restored, and everything removed afterwards (leftovers of a crashed run too)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SUBNET = "10.250.0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
ROLES = {"db": 2, "web": 3, "w1": 4, "w2": 5, "sbx": 6}
# names carry the pid of the run that made them: pc-<role>-<pid>, bridge pcbr<pid>,
# root-side veth pc<role><pid> (interface names are at most 15 characters)
NETNS_NAME = re.compile(r"^pc-(?:" + "|".join(ROLES) + r")-(\d+)$")
LINK_NAME = re.compile(r"^pc(?:br|" + "|".join(ROLES) + r")(\d+)$")


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"pc-probe-{os.getpid()}"
    made = run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL's initdb is not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


def _kill_namespace_processes(name: str) -> None:
    pids = run("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            continue  # gone meanwhile
    psutil.wait_procs([p for p in psutil.process_iter() if str(p.pid) in pids], timeout=5)


def remove_leftovers(keep: str = "") -> list[str]:
    """Delete namespaces, bridges and veths of earlier runs whose pid is no longer alive
    (a crashed run's), and their processes. Returns the names removed."""
    removed = []
    for line in run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NETNS_NAME.match(name)
        if match and match.group(1) != keep and not psutil.pid_exists(int(match.group(1))):
            _kill_namespace_processes(name)
            run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for line in run("ip", "-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = LINK_NAME.match(name)
        if match and match.group(1) != keep and not psutil.pid_exists(int(match.group(1))):
            run("ip", "link", "del", name, check=False)
            removed.append(name)
    return removed


class Hosts:
    """The five hosts of one run. `create()` builds them; `remove()` always cleans up."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or str(os.getpid())
        self.bridge = f"pcbr{self.tag}"
        self.procs: list[subprocess.Popen] = []

    def ns(self, role: str) -> str:
        return f"pc-{role}-{self.tag}"

    def port(self, role: str) -> str:
        """The root-side end of the host's veth, enslaved to the bridge."""
        return f"pc{role}{self.tag}"

    @staticmethod
    def addr(role: str) -> str:
        return f"{SUBNET}.{ROLES[role]}"

    def create(self) -> None:
        remove_leftovers(keep=self.tag)
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for role in ROLES:
            ns = self.ns(role)
            run("ip", "netns", "add", ns)
            run("ip", "link", "add", self.port(role), "type", "veth", "peer", "eth0", "netns", ns)
            run("ip", "link", "set", self.port(role), "master", self.bridge, "up")
            run(
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "addr",
                "add",
                f"{self.addr(role)}/24",
                "dev",
                "eth0",
            )
            run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def cut(self, role: str) -> None:
        """Pull the host's cable: its link to the bridge goes down."""
        run("ip", "link", "set", self.port(role), "down")

    def restore(self, role: str) -> None:
        run("ip", "link", "set", self.port(role), "up")

    def exec_argv(self, role: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(role), *argv]

    def spawn(self, role: str, argv: list[str], env: dict, log: Path) -> subprocess.Popen:
        """Start `argv` on host `role` (cwd the project), output to `log`."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                self.exec_argv(role, argv),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log_path = log
        proc.role = role
        self.procs.append(proc)
        return proc

    def manage(self, role: str, args: list[str], env: dict, log: Path) -> subprocess.Popen:
        return self.spawn(role, [sys.executable, "manage.py", *args], env, log)

    def remove(self) -> None:
        for proc in self.procs:
            kill_tree(proc.pid)
        for role in ROLES:
            _kill_namespace_processes(self.ns(role))
            run("ip", "netns", "del", self.ns(role), check=False)
            run("ip", "link", "del", self.port(role), check=False)
        run("ip", "link", "del", self.bridge, check=False)


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            continue  # exited meanwhile
    psutil.wait_procs(family, timeout=10)


def family_pids(proc: subprocess.Popen) -> set[int]:
    """A process and all its descendants (an RQ worker and its work-horse)."""
    try:
        root = psutil.Process(proc.pid)
        return {root.pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def wait_port(address: str, port: int, timeout: float = 60, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited {proc.returncode}: {tail(proc.log_path)}")
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {address}:{port} after {timeout:.0f}s")


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Postgres:
    """A throwaway cluster in `workdir` (owned by `postgres`), run on the db host."""

    def __init__(self, hosts: Hosts, workdir: Path, port: int = 5432) -> None:
        self.hosts = hosts
        self.dir = workdir / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = port
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent

    @property
    def url(self) -> str:
        return f"postgres://postgres@{self.hosts.addr('db')}:{self.port}"

    def _as_postgres(self, *argv: str, timeout: float = 120) -> None:
        argv = self.hosts.exec_argv("db", ["runuser", "-u", "postgres", "--", *argv])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{argv} failed: {done.stdout}{done.stderr}{tail(self.log)}")

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '{self.hosts.addr('db')}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
                "fsync = off\nfull_page_writes = off\n"  # a process crash keeps the page cache
                # a worker host cut mid-transaction keeps its row locks until its session
                # ends: without these the sweeper waits on them (docs/DEPLOY.md)
                "idle_in_transaction_session_timeout = '5s'\n"
                "tcp_keepalives_idle = 5\ntcp_keepalives_interval = 2\ntcp_keepalives_count = 3\n"
                # a session cut inside a send round's pipeline is not "idle in
                # transaction" (no Sync yet), and keepalives wait while its answers go
                # unacknowledged: this ends it
                "tcp_user_timeout = 5000\n"
            )
        self.pg_ctl("start")

    def pg_ctl(self, action: str, mode: str | None = None) -> None:
        argv = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w"]
        if mode:
            argv += ["-m", mode]
        self._as_postgres(*argv, action)

    def restart(self, mode: str) -> None:
        self.pg_ctl("restart", mode)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.pg_ctl("stop", "immediate")
            except AssertionError:
                pass  # the namespace's processes are killed anyway


class Redis:
    """A Redis without persistence on the db host, killed and started again (empty)."""

    def __init__(self, hosts: Hosts, workdir: Path, port: int = 6379) -> None:
        self.hosts = hosts
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.hosts.addr('db')}:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--bind", self.hosts.addr("db"), "--port", str(self.port)]
        argv += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        argv += ["--dir", str(self.workdir)]
        self.proc = self.hosts.spawn("db", argv, dict(os.environ), self.workdir / "redis.log")
        wait_port(self.hosts.addr("db"), self.port, 30, self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc.pid)
            self.proc.wait()
