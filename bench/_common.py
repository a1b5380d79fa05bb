"""Shared plumbing for bench/bench_*.py: a throwaway environment, timing helpers, output.

Every benchmark prints a table and writes bench/results/<name>.json. Nothing here
asserts on time: targets are reported as met / not met (STYLE.md: benchmarks print
numbers).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
# never `test` / `test_test`: CI owns those; BENCH_PG_DB lets two benchmarks run at once
PG_BENCH_DB = os.environ.get("BENCH_PG_DB", "bench")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The sandbox a benchmark starts takes this control token (MPAAS_SANDBOX_TOKEN in its
# environment); the /_sandbox/ endpoints refuse calls without it.
SANDBOX_TOKEN = secrets.token_urlsafe(24)


def sandbox_env(env: dict) -> dict:
    """`env` for a sandbox child: with the control token, never on its command line."""
    return {**env, "MPAAS_SANDBOX_TOKEN": SANDBOX_TOKEN}


def sandbox_control(url: str, path: str, payload: dict | None = None) -> bytes:
    """GET (no payload) or POST JSON to a bench sandbox's /_sandbox/<path>, with the token."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{url}/_sandbox/{path}", data=data)
    request.add_header("X-Sandbox-Token", SANDBOX_TOKEN)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return response.read()


def load() -> str:
    """The machine load now (1, 5, 15 min averages), as `uptime` shows it."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary_ms(samples: list[float]) -> dict:
    """p50/p95/max of samples given in seconds, as milliseconds."""
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2) if ms else None,
        "p95_ms": round(pct(ms, 95), 2) if ms else None,
        "max_ms": round(max(ms), 2) if ms else None,
    }


def table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_result(name: str, data: dict, path: str | None = None) -> Path:
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "finished_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_at_end": load(),
        **data,
    }
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return out


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


# -- the throwaway environment --------------------------------------------------------


def psql(sql: str, db: str = "postgres") -> None:
    subprocess.run(
        ["psql", f"{PG_SERVER}/{db}", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        stdout=subprocess.DEVNULL,
    )


class Env:
    """A temp VAR_DIR, a fresh database (SQLite file, or the `bench` PostgreSQL database
    created and dropped here), optionally an embedded Redis on a temp socket; Django set
    up and migrated in this process. Use as a context manager."""

    def __init__(self, *, postgres: bool = False, redis: bool = False, extra: dict | None = None):
        self.postgres = postgres
        self.want_redis = redis
        self.extra = extra or {}
        self.workdir = Path(tempfile.mkdtemp(prefix="pc-bench-"))
        self.redis_child = None
        self.env: dict[str, str] = {}

    @property
    def vendor(self) -> str:
        return "postgresql" if self.postgres else "sqlite"

    def __enter__(self) -> Env:
        if self.postgres:
            psql(f"DROP DATABASE IF EXISTS {PG_BENCH_DB}")
            psql(f"CREATE DATABASE {PG_BENCH_DB}")
            database_url = f"{PG_SERVER}/{PG_BENCH_DB}"
        else:
            database_url = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self.env = {
            "DJANGO_SETTINGS_MODULE": "pushconsole.settings",
            "VAR_DIR": str(self.workdir / "var"),
            "DATABASE_URL": database_url,
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            **{k: str(v) for k, v in self.extra.items()},
        }
        if self.want_redis:
            from pushconsole import embedded_redis

            socket_path = self.workdir / "redis.sock"
            self.redis_child = embedded_redis.start(socket_path)
            self.env["REDIS_URL"] = f"unix://{socket_path}?db=0"
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        return self

    def child_env(self, **overrides) -> dict[str, str]:
        return {**os.environ, **self.env, **{k: str(v) for k, v in overrides.items()}}

    def __exit__(self, *exc) -> None:
        from django.db import connections

        connections.close_all()
        if self.redis_child is not None:
            from pushconsole import embedded_redis

            embedded_redis.stop(self.redis_child)
        if self.postgres:
            try:
                psql(f"DROP DATABASE IF EXISTS {PG_BENCH_DB} WITH (FORCE)")
            except subprocess.CalledProcessError as exc:
                print(f"could not drop the bench database: {exc}", file=sys.stderr)
        if os.environ.get("BENCH_KEEP"):  # keep the logs (worker, sandbox) to read
            print(f"kept {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """`manage.py <args>` in its own session (so `stop` ends its children too), output
    appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM the process's session, SIGKILL it after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return  # already gone
        proc.wait()


@contextmanager
def timed():
    box = {}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - started


def make_user(username: str, role: str):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username, f"{username}@example.invalid", "pw")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def executemany_sqlite(sql: str, rows, chunk: int = 50_000) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        buf = []
        for row in rows:
            buf.append(row)
            if len(buf) >= chunk:
                cursor.executemany(sql, buf)
                buf = []
        if buf:
            cursor.executemany(sql, buf)


def copy_rows(table_sql: str, rows) -> None:
    """PostgreSQL COPY FROM STDIN of an iterable of tuples (psycopg 3)."""
    from django.db import connection

    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table_sql} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


KEY_ID, SECRET = "LTAIbenchKey0001", "bench-secret-0001"
APP_ID, WORKSPACE, TEMPLATE = "ONEXBENCH00001", "default", "bench_tpl"


def make_campaign_world(endpoint: str = "http://127.0.0.1:9", rate_limit: float = 1_000_000.0):
    """A launcher user, a credential, a template: what every campaign needs."""
    from campaigns.models import Credential, MessageTemplate

    user = make_user("bench-launcher", "Marketing")
    credential = Credential(
        name="Bench sandbox",
        app_id=APP_ID,
        workspace_id=WORKSPACE,
        access_key_id=KEY_ID,
        endpoint=endpoint,
        rate_limit=rate_limit,
    )
    credential.set_secret(SECRET)
    credential.save()
    template = MessageTemplate.objects.create(
        app_id=APP_ID, name=TEMPLATE, title="Hi #name#", body="Coupon #coupon# for you"
    )
    return user, credential, template


def make_list(name: str, count: int, prefix: str = "u"):
    """A TargetList of `count` targets `<prefix>0000000..`, inserted with raw SQL (fast)."""
    from django.db import connection, transaction

    from campaigns.models import Target, TargetList

    target_list = TargetList.objects.create(name=name, delivery_type=3, target_count=count)
    table = Target._meta.db_table
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (target_list_id, target_id) "
                    f"SELECT %s, %s || lpad(n::text, 8, '0') FROM generate_series(0, %s) n",
                    [target_list.pk, prefix, count - 1],
                )
        else:
            executemany_sqlite(
                f"INSERT INTO {table} (target_list_id, target_id) VALUES (%s, %s)",
                ((target_list.pk, f"{prefix}{n:08d}") for n in range(count)),
            )
    return target_list


def make_campaign(name: str, credential, template, target_list):
    from campaigns.models import Campaign

    return Campaign.objects.create(
        task_name=name,
        credential=credential,
        template=template,
        template_values={"name": "Ann", "coupon": "C-42"},
        target_list=target_list,
        expired_seconds=3600,
    )
