"""Soak the send pipeline end to end with real processes and injected faults.

Sets up a throwaway world (a temp VAR_DIR with a fresh SQLite database unless
--database-url, an embedded Redis on a temp socket unless --redis-url, the mPaaS sandbox
as a subprocess with a JSONL ledger), creates a credential, a template and a list of N
targets through the ORM, launches with `lifecycle.launch`, runs N `rqworker push`
processes and a `sweep --loop` process until the run finishes, then prints throughput
and the delivery invariants checked against the sandbox ledger. Exits 1 if an invariant
fails. The numbers also go to bench/results/soak_pipeline.json.

    .venv/bin/python bench/soak_pipeline.py --targets 10000 --workers 2 --latency 20-50 \\
        --error-5xx 0.01 --throttle 0.005 --ambiguous 0.001 --rate-limit 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

ROOT, PYTHON = c.ROOT, c.PYTHON
KEY_ID, SECRET = "LTAIsoakKey0001", "soak-secret-0001"
APP_ID, WORKSPACE, TEMPLATE = "ONEXSOAK000001", "default", "soak_tpl"
UNLIMITED_RATE = 1_000_000.0  # --rate-limit 0: no limit worth the name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2, help="rqworker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="PUSH_CONCURRENCY")
    parser.add_argument("--jobs-per-run", type=int, default=2, help="PUSH_JOBS_PER_RUN")
    parser.add_argument("--latency", default="20-50", help='sandbox latency ms, "N" or "LO-HI"')
    parser.add_argument("--error-5xx", type=float, default=0.01, help="share of 5xx answers")
    parser.add_argument("--throttle", type=float, default=0.005, help="share of 8011 answers")
    parser.add_argument("--ambiguous", type=float, default=0.001, help="share dropped unanswered")
    parser.add_argument("--qps-cap", type=int, default=0, help="sandbox QPS cap (0 = none)")
    parser.add_argument("--rate-limit", type=float, default=0, help="credential calls/s, 0 = none")
    parser.add_argument("--seed", type=int, default=1, help="sandbox fault seed")
    parser.add_argument("--lease", type=int, default=45, help="PUSH_LEASE_SECONDS")
    parser.add_argument("--max-attempts", type=int, default=10, help="PUSH_MAX_ATTEMPTS")
    parser.add_argument("--sweep-interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=900, help="give up after (s)")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument(
        "--redis-url", default="", help="an EMPTY Redis database (default: embedded, temp socket)"
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "soak_pipeline.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, ledger)")
    return parser.parse_args(argv)


def start_sandbox(args: argparse.Namespace, workdir: Path, env: dict) -> tuple:
    ledger = workdir / "sandbox-ledger.jsonl"
    cmd = [
        PYTHON,
        "-m",
        "mpaas_sandbox",
        "serve",
        "--port",
        "0",
        "--key",
        f"{KEY_ID}:{SECRET}",
        "--app",
        f"{APP_ID}:{WORKSPACE}",
        "--template",
        f"{TEMPLATE}:name,coupon",
        "--ledger",
        str(ledger),
        "--seed",
        str(args.seed),
        "--latency-ms",
        args.latency,
        "--error-5xx-rate",
        str(args.error_5xx),
        "--throttle-rate",
        str(args.throttle),
        "--ambiguous-rate",
        str(args.ambiguous),
        "--qps-cap",
        str(args.qps_cap),
    ]
    with open(workdir / "sandbox.log", "ab") as errors:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
    line = proc.stdout.readline()  # "mpaas sandbox listening on http://127.0.0.1:PORT (...)"
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split()[0]
    return proc, url, ledger


def build_world(args: argparse.Namespace, sandbox_url: str):
    from django.contrib.auth import get_user_model

    from campaigns.models import Campaign, Credential, MessageTemplate, Target, TargetList

    user = get_user_model().objects.create_superuser("soak", "soak@example.invalid", "soak-pw")
    credential = Credential(
        name="Soak sandbox",
        app_id=APP_ID,
        workspace_id=WORKSPACE,
        access_key_id=KEY_ID,
        endpoint=sandbox_url,
        rate_limit=args.rate_limit if args.rate_limit > 0 else UNLIMITED_RATE,
    )
    credential.set_secret(SECRET)
    credential.save()
    template = MessageTemplate.objects.create(
        app_id=APP_ID, name=TEMPLATE, title="Hi #name#", body="Coupon #coupon# for you"
    )
    target_list = TargetList.objects.create(name=f"soak-{args.targets}", delivery_type=3)
    Target.objects.bulk_create(
        (Target(target_list=target_list, target_id=f"s{n:08d}") for n in range(args.targets)),
        batch_size=5000,
    )
    target_list.target_count = args.targets
    target_list.save(update_fields=["target_count"])
    campaign = Campaign.objects.create(
        task_name="Soak",
        credential=credential,
        template=template,
        template_values={"name": "Ann", "coupon": "C-42"},
        target_list=target_list,
        expired_seconds=3600,
    )
    return user, campaign


def peak_per_second(times: list[float]) -> int:
    times = sorted(times)
    peak, left = 0, 0
    for right, moment in enumerate(times):
        while moment - times[left] >= 1.0:
            left += 1
        peak = max(peak, right - left + 1)
    return peak


def measure(args, run, campaign, ledger_path: Path, wall: float) -> tuple[dict, dict]:
    from django.db.models import Count, Sum

    from campaigns.models import Attempt, Batch, Delivery
    from mpaas_sandbox import load_ledger, summarize

    records = load_ledger(str(ledger_path))
    summary = summarize(records)
    pushes = [r for r in records if r.get("action") == "PushTemplate"]
    accepted_keys: dict[str, set[str]] = {}
    for record in pushes:
        if record.get("accepted"):
            for target, key in (record.get("targets") or {}).items():
                accepted_keys.setdefault(target, set()).add(key)
    deliveries = Delivery.objects.filter(run=run)
    by_status = dict(deliveries.values_list("status").annotate(n=Count("id")))
    batches = Batch.objects.filter(run=run)
    attempts = batches.aggregate(n=Sum("attempts"))["n"] or 0
    outcomes = dict(
        Attempt.objects.filter(batch__run=run).values_list("outcome").annotate(n=Count("id"))
    )
    final = {Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.CANCELLED}
    distinct_targets = deliveries.values("target_id").distinct().count()
    sent_not_accepted = sum(
        1
        for target, key in deliveries.filter(status=Delivery.Status.SENT).values_list(
            "target_id", "msg_key"
        )
        if key not in accepted_keys.get(target, set())
    )
    peak = peak_per_second([r["ts"] for r in pushes])
    limit = args.rate_limit if args.rate_limit > 0 else None
    numbers = {
        "targets": args.targets,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "latency_ms": args.latency,
        "error_5xx_rate": args.error_5xx,
        "throttle_rate": args.throttle,
        "ambiguous_rate": args.ambiguous,
        "rate_limit": limit,
        "database": "postgresql" if "postgres" in os.environ["DATABASE_URL"] else "sqlite",
        "run_status": run.status,
        "wall_seconds": round(wall, 2),
        "calls": len(pushes),
        "calls_per_second": round(len(pushes) / wall, 1),
        "targets_per_second": round(args.targets / wall, 1),
        "batches": batches.count(),
        "retries": attempts - batches.filter(attempts__gt=0).count(),
        "attempt_outcomes": outcomes,
        "ambiguous_batches": batches.filter(ambiguous=True).count(),
        "deliveries_by_status": by_status,
        "by_fault": summary["by_fault"],
        "by_result_code": summary["by_result_code"],
        "msgkeys_accepted_more_than_once": summary["msgkeys_accepted_more_than_once"],
        "targets_with_multiple_msgkeys": summary["targets_with_multiple_msgkeys"],
        "max_targets_per_call": summary["max_targets_per_call"],
        "peak_calls_per_second": peak,
    }
    checks = {
        "every target has exactly one final outcome": (
            deliveries.count() == args.targets == distinct_targets
            and sum(n for status, n in by_status.items() if status in final) == args.targets
            and run.counts().done == args.targets
        ),
        "no target accepted under two msgKeys": summary["targets_with_multiple_msgkeys"] == 0,
        "every target recorded sent was accepted under its msgKey": sent_not_accepted == 0,
        "no call carried more than 10 targets": summary["max_targets_per_call"] <= 10,
        "peak calls/s within the rate limit": limit is None or peak <= limit,
        "the run finished": run.finished_at is not None,
    }
    return numbers, checks


def report(numbers: dict, checks: dict) -> None:
    print(
        f"\nsoak: {numbers['targets']} targets, {numbers['workers']} worker(s) × "
        f"{numbers['concurrency']} threads on {numbers['database']}"
    )
    print(f"  run status                 {numbers['run_status']}")
    print(f"  wall time launch→finish    {numbers['wall_seconds']} s")
    print(f"  calls                      {numbers['calls']}")
    print(f"  calls/s                    {numbers['calls_per_second']}")
    print(f"  targets/s                  {numbers['targets_per_second']}")
    print(f"  retries                    {numbers['retries']}")
    print(f"  ambiguous batches          {numbers['ambiguous_batches']}")
    print(f"  attempt outcomes           {numbers['attempt_outcomes']}")
    print(f"  faults injected            {numbers['by_fault']}")
    print(f"  deliveries                 {numbers['deliveries_by_status']}")
    print(f"  msgKeys accepted 2+ times  {numbers['msgkeys_accepted_more_than_once']}")
    print(f"  max targets per call       {numbers['max_targets_per_call']}")
    limit = numbers["rate_limit"] or "none"
    print(f"  peak calls/s (1 s window)  {numbers['peak_calls_per_second']} (limit {limit})")
    print("invariants:")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pc-soak-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pushconsole.settings",
        "VAR_DIR": str(workdir / "var"),
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'soak.sqlite3'}",
        "PUSH_CONCURRENCY": str(args.concurrency),
        "PUSH_JOBS_PER_RUN": str(args.jobs_per_run),
        "PUSH_LEASE_SECONDS": str(args.lease),
        "PUSH_MAX_ATTEMPTS": str(args.max_attempts),
        "LOG_LEVEL": "WARNING",
    }
    redis_child = sandbox = sweeper = None
    workers: list[subprocess.Popen] = []
    try:
        if args.redis_url:
            env["REDIS_URL"] = args.redis_url
        else:
            from pushconsole import embedded_redis

            socket_path = workdir / "redis.sock"
            redis_child = embedded_redis.start(socket_path)
            env["REDIS_URL"] = f"unix://{socket_path}?db=0"
        os.environ.update(env)  # before Django reads its settings
        import django

        django.setup()
        from django.core.management import call_command

        from campaigns import lifecycle

        call_command("migrate", verbosity=0, interactive=False)
        sandbox, sandbox_url, ledger = start_sandbox(args, workdir, env)
        user, campaign = build_world(args, sandbox_url)
        workers = [
            c.spawn(["rqworker", "push"], env, workdir / f"worker-{n}.log")
            for n in range(args.workers)
        ]
        sweeper = c.spawn(
            ["sweep", "--loop", "--interval", str(args.sweep_interval)],
            env,
            workdir / "sweeper.log",
        )
        time.sleep(1.0)  # let the workers import Django before the clock starts
        started = time.monotonic()
        run = lifecycle.launch(campaign, user)
        next_report = started + 5
        while True:
            run.refresh_from_db()
            now = time.monotonic()
            if run.finished_at is not None:
                break
            if now - started > args.timeout:
                print(f"soak: gave up after {args.timeout:.0f}s", file=sys.stderr)
                break
            if now >= next_report:
                n = run.counts()
                print(
                    f"  {now - started:6.1f}s  sent {n.sent}, failed {n.failed}, "
                    f"pending {n.pending}, in flight {n.in_flight}",
                    flush=True,
                )
                next_report = now + 5
            time.sleep(0.1)
        wall = time.monotonic() - started
        for proc in [*workers, sweeper]:
            c.stop(proc)
        c.stop(sandbox)  # flushes and closes the ledger
        numbers, checks = measure(args, run, campaign, ledger, wall)
        numbers["invariants"] = checks
        report(numbers, checks)
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(numbers, indent=2, default=str) + "\n")
        print(f"wrote {out}")
        if args.keep:
            print(f"kept {workdir}")
        return 0 if all(checks.values()) else 1
    finally:
        for proc in [*workers, sweeper, sandbox]:
            c.stop(proc)
        if redis_child is not None:
            from pushconsole import embedded_redis

            embedded_redis.stop(redis_child)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
