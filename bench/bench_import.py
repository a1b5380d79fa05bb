"""Importing a big target list: `campaigns.importing.import_targets` against a raw bulk load.

Writes a seeded CSV of N unique user IDs (header `user_id`), then in one subprocess per
side (so each side's peak RSS is its own, from resource.getrusage):

- console: `import_targets(list, file, column="user_id")`, the path an upload takes (it
  also prints how long its first pass, reading and staging, took, and the disk the
  staged rows took: staging.py);
- baseline: the same file into an equivalent table (same columns, unique constraint and
  index) in one transaction: `executemany` with the sqlite3 module on SQLite, `COPY` on
  PostgreSQL;
- baseline, same DDL (context, not the target): the same load into a copy of
  campaigns_target's own DDL, which adds the foreign key to campaigns_targetlist
  (checked per row at commit, ~3 µs a row on PostgreSQL). Every write to
  campaigns_target pays that; the baseline above does not. (The foreign key has no
  index of its own since migration 0010: the two indexes above lead with its column.)

Targets: console time ≤ 3 × baseline; console peak RSS ≤ 200 MB.

    .venv/bin/python bench/bench_import.py --rows 200000     # quick
    .venv/bin/python bench/bench_import.py                   # 1,000,000 rows, SQLite
    BENCH_PG_DB=bench_import .venv/bin/python bench/bench_import.py --postgres
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

TIME_RATIO_TARGET = 3.0
RSS_TARGET_MB = 200
MODULUS = 2_147_483_647  # prime: n -> n * MULT % MODULUS is a bijection below it
MULT = 48_271


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--postgres", action="store_true", help=f"use {c.PG_SERVER}/{c.PG_BENCH_DB}")
    p.add_argument("--json", default=None)
    p.add_argument("--side", choices=["console", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--list-id", type=int, help=argparse.SUPPRESS)
    p.add_argument("--table", default="bench_target", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def write_csv(path: Path, rows: int, seed: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("user_id\n")
        for n in range(rows):
            out.write(f"u{(n + seed) * MULT % MODULUS:010d}\n")


def maxrss_mb() -> float:
    """Peak RSS of this process. getrusage's ru_maxrss carries over the parent's RSS at
    fork time on Linux (a floor of the bench process's ~80 MB), so /proc's VmHWM (the
    high-water mark of this process image, reset at exec) is used when available."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return getrusage_mb()


def getrusage_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the two sides, each in its own process -------------------------------------------------


def side_console(args) -> dict:
    import django

    django.setup()
    from campaigns.importing import import_targets
    from campaigns.models import TargetList

    target_list = TargetList.objects.get(pk=args.list_id)
    before = maxrss_mb()
    passes = {"read_s": 0.0, "staged_mb": 0.0}

    def read(_rows, _size):  # the first pass: its last call is its end
        passes["read_s"] = time.perf_counter() - t0

    def written(_rows, _total):
        passes["staged_mb"] = max(passes["staged_mb"], unlinked_files_mb())

    t0 = time.perf_counter()
    with open(args.csv, "rb") as stream:
        result = import_targets(
            target_list, stream, column="user_id", progress=read, write_progress=written
        )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "read_pass_seconds": passes["read_s"],
        "staging_disk_mb": passes["staged_mb"],
        "rss_before_mb": before,
        "peak_rss_mb": maxrss_mb(),
        "added": result.added,
        "invalid": result.invalid,
    }


def unlinked_files_mb() -> float:
    """The size of the files this process holds open that are already unlinked: the
    staging database and SQLite's sort files (staging.py)."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").endswith(" (deleted)"):
                total += os.stat(f"/proc/self/fd/{fd}").st_size
        except OSError:
            continue
    return total / 2**20


def _read_ids(path: str):
    with open(path, encoding="utf-8") as stream:
        next(stream)  # header
        for line in stream:
            yield line.strip()


def side_baseline(args) -> dict:
    url = os.environ["DATABASE_URL"]
    before = maxrss_mb()
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")  # as on Django's connections
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO {args.table} (target_list_id, target_id) VALUES (?, ?)",
            ((args.list_id, t) for t in _read_ids(args.csv)),
        )
        conn.execute("COMMIT")
        seconds = time.perf_counter() - t0
        added = conn.execute(f"SELECT count(*) FROM {args.table}").fetchone()[0]
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            with conn.cursor() as cursor:
                copy_sql = f"COPY {args.table} (target_list_id, target_id) FROM STDIN"
                with cursor.copy(copy_sql) as cp:
                    for t in _read_ids(args.csv):
                        cp.write_row((args.list_id, t))
            conn.commit()
            seconds = time.perf_counter() - t0
            added = conn.execute(f"SELECT count(*) FROM {args.table}").fetchone()[0]
    return {
        "seconds": seconds,
        "rss_before_mb": before,
        "peak_rss_mb": maxrss_mb(),
        "added": added,
        "invalid": 0,
    }


def create_equivalent_tables(vendor: str) -> None:
    """bench_target: the baseline's table. bench_target_fk: campaigns_target's own DDL
    (foreign key included) under another name."""
    from django.db import connection

    pk = "INTEGER PRIMARY KEY AUTOINCREMENT" if vendor == "sqlite" else "BIGSERIAL PRIMARY KEY"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE bench_target (id {pk}, target_list_id BIGINT NOT NULL, "
            "target_id VARCHAR(200) NOT NULL, UNIQUE (target_list_id, target_id))"
        )
        cursor.execute("CREATE INDEX bench_target_walk ON bench_target (target_list_id, id)")
        if vendor == "sqlite":
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'campaigns_target' "
                "AND sql IS NOT NULL ORDER BY type DESC"  # the table before its indexes
            )
            for (sql,) in cursor.fetchall():
                sql = sql.replace('"campaigns_target"', '"bench_target_fk"')
                cursor.execute(sql.replace('INDEX "', 'INDEX "bench_fk_'))
        else:
            cursor.execute("CREATE TABLE bench_target_fk (LIKE campaigns_target INCLUDING ALL)")
            cursor.execute(
                "ALTER TABLE bench_target_fk ADD FOREIGN KEY (target_list_id) "
                "REFERENCES campaigns_targetlist (id) DEFERRABLE INITIALLY DEFERRED"
            )


def run_side(side: str, env, csv_path: Path, list_id: int, table: str = "bench_target") -> dict:
    cmd = [c.PYTHON, __file__, "--side", side, "--csv", str(csv_path), "--list-id", str(list_id)]
    cmd += ["--table", table]
    out = subprocess.run(cmd, env=env.child_env(), cwd=c.ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{side} side failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.side:
        result = side_console(args) if args.side == "console" else side_baseline(args)
        print(json.dumps(result))
        return 0
    print(f"load before: {c.load()}")
    with c.Env(postgres=args.postgres) as env:
        from django.db import connections

        from campaigns.models import TargetList

        csv_path = env.workdir / "targets.csv"
        with c.timed() as gen:
            write_csv(csv_path, args.rows, args.seed)
        size_mb = csv_path.stat().st_size / 2**20
        print(f"wrote {args.rows:,} IDs ({size_mb:.1f} MB) in {gen['s']:.1f} s")
        create_equivalent_tables(env.vendor)
        target_list = TargetList.objects.create(name="import-bench", delivery_type=3)
        connections.close_all()
        base = run_side("baseline", env, csv_path, target_list.pk)
        console = run_side("console", env, csv_path, target_list.pk)
        same_ddl = run_side("baseline", env, csv_path, target_list.pk, "bench_target_fk")
        ratio = console["seconds"] / base["seconds"]
        ratio_same_ddl = console["seconds"] / same_ddl["seconds"]
        numbers = {
            "database": env.vendor,
            "rows": args.rows,
            "file_mb": round(size_mb, 1),
            "console": console,
            "baseline": base,
            "baseline_same_ddl": same_ddl,
            "ratio": round(ratio, 2),
            "ratio_vs_same_ddl": round(ratio_same_ddl, 2),
            "time_met": ratio <= TIME_RATIO_TARGET,
            "rss_met": console["peak_rss_mb"] <= RSS_TARGET_MB,
        }
        print(f"\nimport: {args.rows:,} IDs on {env.vendor}; load {c.load()}")
        c.table(
            ["side", "seconds", "rows/s", "added", "RSS before MB", "peak RSS MB", "growth MB"],
            [
                [
                    name,
                    round(s["seconds"], 2),
                    round(args.rows / s["seconds"]),
                    s["added"],
                    round(s["rss_before_mb"], 1),
                    round(s["peak_rss_mb"], 1),
                    round(s["peak_rss_mb"] - s["rss_before_mb"], 1),
                ]
                for name, s in (
                    ("console import_targets", console),
                    ("baseline bulk", base),
                    ("baseline bulk, same DDL", same_ddl),
                )
            ],
        )
        print(
            f"  ratio {ratio:.2f} (≤ {TIME_RATIO_TARGET}: {c.verdict(numbers['time_met'])}); "
            f"peak RSS {console['peak_rss_mb']:.0f} MB (≤ {RSS_TARGET_MB} MB: "
            f"{c.verdict(numbers['rss_met'])})"
        )
        print(f"  ratio to the same-DDL load (context): {ratio_same_ddl:.2f}")
        read_s = console["read_pass_seconds"]
        print(
            f"  console passes: reading and staging {read_s:.2f} s "
            f"({read_s * 100 / console['seconds']:.0f} %), writing sorted "
            f"{console['seconds'] - read_s:.2f} s; staging files on disk at most "
            f"{console['staging_disk_mb']:.0f} MB"
        )
        c.write_result("import_" + env.vendor, numbers, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
