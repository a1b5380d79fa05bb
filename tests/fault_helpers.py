"""Real processes for the fault drills: `rqworker push` subprocesses pointed at the test
database and Redis with short timings, killed and restarted at will, and a wait loop in
which the test process plays the sweeper."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import django_rq
import psutil

from campaigns import sweeper
from campaigns.models import Attempt, Batch, Delivery, Run
from tests.processes import ROOT, worker_env

# Short timings so that a lost lease is noticed in seconds, not minutes.
LEASE_SECONDS = 3
SWEEP_INTERVAL = 0.5
CONCURRENCY = 4
READY_PER_CALLER = 3  # PUSH_READY_PER_CALLER's default, set here so the bounds below hold


def held_per_job(callers: int) -> int:
    """Batches one send job holds at most: a call under way and READY_PER_CALLER claims
    kept ready per caller (a claim is called, or released, or its lease expires)."""
    return callers * (1 + READY_PER_CALLER)


HELD_PER_JOB = held_per_job(CONCURRENCY)
FAST_ENV = {
    "PUSH_LEASE_SECONDS": str(LEASE_SECONDS),
    "PUSH_JOB_SECONDS": "4",
    "PUSH_BACKOFF_BASE": "0.05",
    "PUSH_BACKOFF_MAX": "0.5",
    "PUSH_CONCURRENCY": str(CONCURRENCY),
    "PUSH_READY_PER_CALLER": str(READY_PER_CALLER),
    "PUSH_MAX_ATTEMPTS": "30",
    "PUSH_PLAN_CHUNK": "500",
}


def process_env(redis_url: str, **overrides: str) -> dict[str, str]:
    return worker_env(redis_url, **{**FAST_ENV, **overrides})


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant (an RQ work-horse calls setpgrp, so killing
    the worker's process group would miss it). Returns the pids killed."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    killed = []
    for proc in family:
        try:
            proc.send_signal(signal.SIGKILL)
            killed.append(proc.pid)
        except psutil.NoSuchProcess:
            continue  # it exited by itself meanwhile
    psutil.wait_procs(family, timeout=5)
    return killed


class Fleet:
    """The subprocesses of one test. The `fleet` fixture calls `stop_all()` at teardown."""

    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.worker_env: dict[int, dict[str, str]] = {}  # pid -> overrides, to restart

    def spawn(self, args: list[str], label: str, **env: str) -> subprocess.Popen:
        """Start `python manage.py *args` on the test database and this fleet's Redis."""
        path = self.log_dir / f"{label}-{len(self.procs)}.log"
        with open(path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env=process_env(self.redis_url, **env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log_path = path
        self.procs.append(proc)
        return proc

    def worker(self, **env: str) -> subprocess.Popen:
        """Start one `manage.py rqworker push`; `env` overrides settings for it alone."""
        proc = self.spawn(["rqworker", "push"], "worker", **env)
        self.worker_env[proc.pid] = env
        return proc

    def workers(self, count: int, **env: str) -> list[subprocess.Popen]:
        return [self.worker(**env) for _ in range(count)]

    def horses(self, proc: subprocess.Popen) -> list[int]:
        """Pids of the work-horse(s) a worker has forked for its current job."""
        try:
            return [child.pid for child in psutil.Process(proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill(self, proc: subprocess.Popen) -> list[int]:
        """SIGKILL a worker and its work-horse: a power cut for that process tree."""
        killed = kill_tree(proc.pid)
        proc.wait()
        return killed

    def replace_dead_workers(self) -> int:
        """What a process supervisor does: start a fresh worker for each that exited."""
        restarted = 0
        for proc in list(self.procs):
            env = self.worker_env.get(proc.pid)
            if env is not None and proc.poll() is not None:
                del self.worker_env[proc.pid]
                self.worker(**env)
                restarted += 1
        return restarted

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc.pid)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, chars: int = 2500) -> str:
        parts = []
        for proc in self.procs:
            text = proc.log_path.read_text(errors="replace")
            parts.append(f"--- {proc.log_path.name} (exit {proc.poll()})\n{text[-chars:]}")
        return "\n".join(parts)

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str, **kw) -> float:
        """`wait_until`, with the subprocesses' logs in the message when it times out."""
        try:
            return wait_until(predicate, timeout, what, **kw)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    sweep: Callable[[], object] | None = sweeper.sweep,
    tick: Callable[[], object] | None = None,
    poll: float = 0.1,
) -> float:
    """Poll `predicate` until it holds, sweeping every SWEEP_INTERVAL seconds meanwhile
    (the test process is the sweeper) and calling `tick` on every poll. Returns the
    seconds waited; fails the test after `timeout` seconds."""
    started = time.monotonic()
    next_sweep = started
    while True:
        if predicate():
            return time.monotonic() - started
        now = time.monotonic()
        if now - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        if tick is not None:
            tick()
        if sweep is not None and now >= next_sweep:
            sweep()
            next_sweep = now + SWEEP_INTERVAL
        time.sleep(poll)


def settle(predicate: Callable[[], bool], timeout: float, **kw) -> bool:
    """Like `wait_until`, but returns False instead of failing on timeout."""
    try:
        wait_until(predicate, timeout, "settle", **kw)
    except AssertionError:
        return False
    return True


def failed_jobs() -> list[str]:
    """The last line of the traceback of every job on the `push` queue that failed."""
    queue = django_rq.get_queue("push")
    reasons = []
    for job_id in queue.failed_job_registry.get_job_ids():
        job = queue.fetch_job(job_id)
        lines = (job.exc_info or "").strip().splitlines() if job else []
        reasons.append(f"{job.description if job else job_id}: {lines[-1] if lines else '?'}")
    return reasons


def run_finished(run: Run) -> Callable[[], bool]:
    return lambda: Run.objects.filter(pk=run.pk, finished_at__isnull=False).exists()


def run_settled(run: Run) -> Callable[[], bool]:
    """Closed, and its deliveries settled by the job queued at the close."""
    return lambda: Run.objects.filter(pk=run.pk, settled_at__isnull=False).exists()


def sent_count(run: Run) -> int:
    return Delivery.objects.filter(run=run).in_state(Delivery.Status.SENT).count()


def push_calls(records: list[dict], task_name: str | None = None) -> list[dict]:
    return [
        r
        for r in records
        if r["action"] == "PushTemplate" and (task_name is None or r.get("task_name") == task_name)
    ]


def batch_of_call(record: dict) -> Batch:
    """The batch a ledger call was made for, found through its msgKeys."""
    key = next(iter(record["targets"].values()))
    return Delivery.objects.select_related("batch").get(msg_key=key).batch


def claimed_by(run: Run, pids: list[int]) -> list[int]:
    """Ids of the run's batches currently claimed by a process in `pids` (the worker
    field of the claiming Attempt is host:pid:thread)."""
    owned = []
    for batch in Batch.objects.filter(run=run, status=Batch.Status.CLAIMED):
        attempt = Attempt.objects.filter(batch=batch, lease_token=batch.lease_token).first()
        if attempt is not None and int(attempt.worker.split(":")[1]) in pids:
            owned.append(batch.pk)
    return owned
