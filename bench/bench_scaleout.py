"""Scale-out: calls/s with one worker process vs two, each with the same PUSH_CONCURRENCY,
in the same run (same sandbox, same database, same machine load), and their ratio.

Worker *processes* on one machine, not hosts: the multi-host layout is the drill's
subject (docs/DEPLOY.md); here the question is whether a second worker adds throughput
or only contends for the database. On a small machine the CPU is shared by every
process, so the ratio is a floor for what a second host gives.

    .venv/bin/python bench/bench_scaleout.py                    # 20,000 targets, 16 callers each
    .venv/bin/python bench/bench_scaleout.py --targets 50000 --threads 32 --postgres
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c
import bench_dispatch as dispatch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=16, help="PUSH_CONCURRENCY per worker")
    p.add_argument("--latency", default="30", help="sandbox latency ms")
    p.add_argument("--sweep-interval", type=float, default=5.0)
    p.add_argument("--poll-interval", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--postgres", action="store_true", help=f"use {c.PG_SERVER}/{c.PG_BENCH_DB}")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"load before: {c.load()}")
    sandbox = None
    results = []
    with c.Env(postgres=args.postgres, redis=True) as env:
        try:
            sandbox, url = dispatch.start_sandbox(
                args.latency, env.child_env(), env.workdir / "sb.log"
            )
            dispatch.world_sandbox_url = url
            user, credential, template = c.make_campaign_world(endpoint=url)
            auditor = c.make_user("bench-auditor", "Auditor")
            target_lists = {args.targets: c.make_list(f"scaleout-{args.targets}", args.targets)}
            world = (user, credential, template, auditor, target_lists)
            for workers in (1, 2):
                r = dispatch.console_case(env, world, workers, args.threads, args.targets, args)
                results.append(r)
                print(
                    f"  {workers} worker(s) x {args.threads}: {r['wall_seconds']} s, "
                    f"{r['calls_per_second']} calls/s ({r['run_status']})",
                    flush=True,
                )
        finally:
            c.stop(sandbox)
    one, two = results
    ratio = round(two["calls_per_second"] / one["calls_per_second"], 2)
    print(f"\nscale-out: {args.targets} targets, latency {args.latency} ms, {env.vendor}")
    c.table(
        ["workers", "callers each", "status", "seconds", "calls/s", "peak/s"],
        [
            [
                r["workers"],
                r["push_concurrency"],
                r["run_status"],
                r["wall_seconds"],
                r["calls_per_second"],
                r["sandbox"]["peak_calls_per_second"],
            ]
            for r in results
        ],
    )
    print(f"2 workers / 1 worker: x {ratio} calls/s; load after {c.load()}")
    c.write_result(
        "scaleout",
        {"targets": args.targets, "latency_ms": args.latency, "ratio": ratio, "cases": results},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
