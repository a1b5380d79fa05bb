"""Launch and planning of a big campaign.

Builds a target list of N targets (raw SQL), then measures:

- launch: `lifecycle.launch(campaign, user)` (validation, the conditional UPDATE, run 1,
  the audit row, planning queued on an embedded Redis after commit), on --launches
  campaigns of that list; target ≤ 300 ms.
- planning: `planning.plan(run_id)` called in-process until the run is planning_done
  (PUSH_JOB_SECONDS is set high so one call plans everything); target ≤ 2 × baseline.
- baseline: the same delivery and batch rows for another run of the same list, read
  from the target table and bulk-inserted directly in one transaction (executemany on
  SQLite, COPY on PostgreSQL).

    .venv/bin/python bench/bench_launch.py                   # 200,000 targets, SQLite
    .venv/bin/python bench/bench_launch.py --targets 1000000 --postgres
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

LAUNCH_TARGET_MS = 300
PLAN_TARGET_RATIO = 2.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", type=int, default=200_000, help="1,000,000 = full")
    p.add_argument("--launches", type=int, default=5, help="campaigns launched (timed)")
    p.add_argument("--plan-chunk", type=int, default=5000, help="PUSH_PLAN_CHUNK")
    p.add_argument("--postgres", action="store_true", help=f"use {c.PG_SERVER}/{c.PG_BENCH_DB}")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def baseline_insert(run, target_list_id: int) -> int:
    """The run's batches and deliveries straight into the tables: one transaction."""
    from django.db import connection, transaction
    from django.utils import timezone

    from campaigns.planning import msg_key

    now = timezone.now()
    pg = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, target_id FROM campaigns_target WHERE target_list_id = %s ORDER BY id",
            [target_list_id],
        )
        refs = cursor.fetchall()
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM campaigns_batch")
        first = cursor.fetchone()[0] + 1
        n_batches = (len(refs) + 9) // 10
        batch_rows = (
            (
                first + b,
                run.pk,
                run.campaign_id,
                b,
                "pending",
                min(10, len(refs) - 10 * b),
                0,
                0,
                False,
                "",
                "",
                "",
                "",
                "",
                now,
            )
            for b in range(n_batches)
        )
        delivery_rows = (
            (
                run.pk,
                first + i // 10,
                target_id,
                msg_key(run.campaign_id, run.number, ref),
                "pending",
                "",
            )
            for i, (ref, target_id) in enumerate(refs)
        )
        bcols = (
            "id, run_id, campaign_id, seq, status, target_count, lease_token, attempts, "
            "ambiguous, request_id, result_code, result_message, push_result_msg, "
            "push_result_data, created_at"
        )
        dcols = "run_id, batch_id, target_id, msg_key, status, result_code"
        if pg:
            c.copy_rows(f"campaigns_batch ({bcols})", batch_rows)
            c.copy_rows(f"campaigns_delivery ({dcols})", delivery_rows)
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('campaigns_batch', 'id'), "
                "(SELECT max(id) FROM campaigns_batch))"
            )
        else:
            c.executemany_sqlite(
                f"INSERT INTO campaigns_batch ({bcols}) VALUES ({', '.join(['%s'] * 15)})",
                batch_rows,
            )
            c.executemany_sqlite(
                f"INSERT INTO campaigns_delivery ({dcols}) VALUES (%s, %s, %s, %s, %s, %s)",
                delivery_rows,
            )
        cursor.execute(
            "UPDATE campaigns_run SET planning_done = %s, batch_count = %s, total = %s, "
            "planned_through = %s WHERE id = %s",
            [True, n_batches, len(refs), refs[-1][0], run.pk],
        )
    return len(refs)


_PLAN_CHILD = """
import json, time
from campaigns import planning
from campaigns.models import Run
def hwm():  # this process image's peak RSS (ru_maxrss would carry the parent's over)
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) / 1024 for l in status if l.startswith("VmHWM:"))
start_rss = hwm()
calls, t0 = 0, time.perf_counter()
while True:
    calls += 1
    outcome = planning.plan({run_id})
    run = Run.objects.get(pk={run_id})
    if run.planning_done or outcome == "duplicate":
        break
print(json.dumps({{
    "seconds": time.perf_counter() - t0,
    "calls": calls,
    "peak_rss_mb": round(hwm(), 1),
    "rss_at_start_mb": round(start_rss, 1),
}}))
"""


def plan_in_child(env, run_id: int) -> dict:
    """`planning.plan(run_id)` until the run is planned, in a fresh `manage.py shell`:
    seconds (without Django's start), plan calls and the process's peak RSS."""
    import json
    import subprocess

    out = subprocess.run(
        [c.PYTHON, "manage.py", "shell", "-c", _PLAN_CHILD.format(run_id=run_id)],
        cwd=c.ROOT,
        env=env.child_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"load before: {c.load()}")
    extra = {"PUSH_JOB_SECONDS": 1_000_000, "PUSH_PLAN_CHUNK": args.plan_chunk}
    with c.Env(postgres=args.postgres, redis=True, extra=extra) as env:
        from django.db import connection

        from campaigns import lifecycle
        from campaigns.models import Batch, Delivery, Run

        user, credential, template = c.make_campaign_world()
        with c.timed() as gen:
            target_list = c.make_list("launch-list", args.targets)
        if env.postgres:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(f"built a list of {args.targets:,} targets in {gen['s']:.1f} s on {env.vendor}")

        # baseline first, so the console's planning meets the bigger tables
        base_campaign = c.make_campaign("Baseline", credential, template, target_list)
        base_run = Run.objects.create(campaign=base_campaign, number=1, launched_by=user)
        with c.timed() as base:
            inserted = baseline_insert(base_run, target_list.pk)
        assert inserted == args.targets

        launch_times, runs = [], []
        for k in range(args.launches):
            campaign = c.make_campaign(f"Launch {k}", credential, template, target_list)
            t0 = time.perf_counter()
            run = lifecycle.launch(campaign, user)
            launch_times.append(time.perf_counter() - t0)
            runs.append(run)
        run = runs[0]
        # planning runs in a process of its own, as in a work horse, so its peak RSS is
        # its own (not the baseline's rows read in this one)
        from django.db import connections

        connections.close_all()
        planned_child = plan_in_child(env, run.pk)
        planned = {"s": planned_child["seconds"]}
        calls = planned_child["calls"]
        run.refresh_from_db()
        assert run.planning_done, planned_child
        deliveries = Delivery.objects.filter(run=run).count()
        batches = Batch.objects.filter(run=run).count()
        assert deliveries == args.targets, deliveries
        lt = c.summary_ms(launch_times)
        ratio = planned["s"] / base["s"]
        numbers = {
            "database": env.vendor,
            "targets": args.targets,
            "plan_chunk": args.plan_chunk,
            "launch": lt,
            "launch_met": lt["max_ms"] <= LAUNCH_TARGET_MS,
            "planning_seconds": round(planned["s"], 2),
            "planning_peak_rss_mb": planned_child["peak_rss_mb"],
            "planning_rss_at_start_mb": planned_child["rss_at_start_mb"],
            "plan_calls": calls,
            "planned_deliveries": deliveries,
            "planned_batches": batches,
            "baseline_seconds": round(base["s"], 2),
            "planning_ratio": round(ratio, 2),
            "planning_met": ratio <= PLAN_TARGET_RATIO,
            "targets_per_second_planning": round(args.targets / planned["s"]),
            "targets_per_second_baseline": round(args.targets / base["s"]),
        }
        print(f"\nlaunch + planning: {args.targets:,} targets on {env.vendor}; load {c.load()}")
        c.table(
            ["measure", "console", "baseline", "ratio", "target", "verdict"],
            [
                [
                    f"launch ({args.launches}×) p50 / max ms",
                    f"{lt['p50_ms']} / {lt['max_ms']}",
                    "-",
                    "-",
                    f"≤ {LAUNCH_TARGET_MS} ms",
                    c.verdict(numbers["launch_met"]),
                ],
                [
                    "planning s",
                    round(planned["s"], 2),
                    round(base["s"], 2),
                    round(ratio, 2),
                    f"≤ {PLAN_TARGET_RATIO} × baseline",
                    c.verdict(numbers["planning_met"]),
                ],
                [
                    "planning peak RSS MB (process of its own; at start)",
                    f"{planned_child['peak_rss_mb']} ({planned_child['rss_at_start_mb']})",
                    "-",
                    "-",
                    "-",
                    "",
                ],
                [
                    "targets/s",
                    numbers["targets_per_second_planning"],
                    numbers["targets_per_second_baseline"],
                    "",
                    "",
                    "",
                ],
            ],
        )
        c.write_result("launch_" + env.vendor, numbers, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
