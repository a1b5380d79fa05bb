"""Dispatch throughput, progress polling and worker memory against the mPaaS sandbox.

One sandbox subprocess (--latency ms on every PushTemplate, no faults), an embedded Redis
on a temp socket, a fresh database. For each case WORKERSxTHREADS (C = workers ×
PUSH_CONCURRENCY in-flight calls, PUSH_JOBS_PER_RUN = workers) it starts the rqworker
processes and a sweeper, launches a campaign of N targets with `lifecycle.launch` and waits
until the run is finished: every outcome recorded and the run closed ("console s"). The
deliveries then take their batches' outcomes in bulk (`sending.settling`, a job queued
at close); that is waited for too and printed apart ("then settled s"). The default
cases are 1x8 and 1x32: one send job (one database thread) with 8 or 32 callers;
`--cases 2x16` splits C = 32 over two workers. Meanwhile:

- polling GET /campaigns/<id>/progress/ every --poll-interval s from a thread with
  Django's test Client (server time; target p95 ≤ 50 ms);
- sampling the RSS of each rqworker process and its work-horse children with psutil
  (peak minus the idle worker; target ≤ 50 MB and independent of N: the first case is
  also run at N/5 to compare).

Baseline per C: a minimal script making the same signed PushTemplate calls (same
parameters, 10 targets each) with aliyun-python-sdk-core, a pool of C threads and one
AcsClient, recording nothing. Target: console time ≤ 1.3 × baseline. With --rate-limit R
one more case runs with the credential limited to R calls/s and the sandbox ledger's
peak calls in any 1 s window is reported (it must not exceed R).

    .venv/bin/python bench/bench_dispatch.py --targets 20000          # quick
    .venv/bin/python bench/bench_dispatch.py                          # 100,000 targets
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

TIME_RATIO_TARGET = 1.3
PROGRESS_P95_MS = 50
MEMORY_TARGET_MB = 50


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", type=int, default=100_000)
    p.add_argument("--cases", default="1x8,1x32", help="WORKERSxPUSH_CONCURRENCY, comma-separated")
    p.add_argument("--latency", default="30", help="sandbox latency ms")
    p.add_argument("--rate-limit", type=float, default=200, help="extra case's calls/s (0 = skip)")
    p.add_argument("--rate-case", default="2x16", help="workers x threads of the rate-limit case")
    p.add_argument("--memory-small", action="store_true", default=True)
    p.add_argument("--no-memory-small", dest="memory_small", action="store_false")
    p.add_argument("--poll-interval", type=float, default=0.25)
    p.add_argument("--sweep-interval", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--postgres", action="store_true", help=f"use {c.PG_SERVER}/{c.PG_BENCH_DB}")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


# -- processes --------------------------------------------------------------------------


def start_sandbox(latency: str, env: dict, log: Path):
    cmd = [
        c.PYTHON,
        "-m",
        "mpaas_sandbox",
        "serve",
        "--port",
        "0",
        "--key",
        f"{c.KEY_ID}:{c.SECRET}",
        "--app",
        f"{c.APP_ID}:{c.WORKSPACE}",
        "--template",
        f"{c.TEMPLATE}:name,coupon",
        "--latency-ms",
        latency,
    ]
    with open(log, "ab") as errors:
        proc = subprocess.Popen(
            cmd,
            cwd=c.ROOT,
            env=c.sandbox_env(env),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].split()[0]


def sandbox_numbers(url: str) -> dict:
    stats = json.loads(c.sandbox_control(url, "stats"))
    times = [
        json.loads(line)["ts"]
        for line in c.sandbox_control(url, "ledger").splitlines()
        if line.strip() and b'"PushTemplate"' in line
    ]
    return {
        "push_calls": stats["push_calls"],
        "accepted_calls": stats["accepted_calls"],
        "targets_accepted": stats["targets_accepted"],
        "max_targets_per_call": stats["max_targets_per_call"],
        "msgkeys_accepted_more_than_once": stats["msgkeys_accepted_more_than_once"],
        "peak_calls_per_second": stats["peak_calls_per_second"],
        "first_to_last_call_s": round(max(times) - min(times), 2) if times else None,
    }


# -- memory -----------------------------------------------------------------------------


def rss_by_worker(procs) -> list[tuple[int, int]]:
    """(worker RSS, largest work-horse child RSS) per worker, bytes."""
    import psutil

    out = []
    for proc in procs:
        try:
            parent = psutil.Process(proc.pid)
            own = parent.memory_info().rss
            kids = [k.memory_info().rss for k in parent.children(recursive=True)]
        except psutil.Error:
            own, kids = 0, []
        out.append((own, max(kids, default=0)))
    return out


def _cpu(proc) -> float:
    """User + system seconds of a process and of its children it has reaped."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_snapshot(workers=()) -> dict[str, float]:
    """CPU seconds so far by component: the sandbox, the rqworkers (with their live work
    horses), PostgreSQL, Redis, and this process (the baseline's client, the poller)."""
    import resource

    import psutil

    out = {"sandbox": 0.0, "workers": 0.0, "postgres": 0.0, "redis": 0.0}
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            name = proc.info["name"] or ""
            cmd = " ".join(proc.info["cmdline"] or [])
            if name.startswith("postgres"):
                out["postgres"] += _cpu(proc)
            elif "redis-server" in name or "redis-server" in cmd:
                out["redis"] += _cpu(proc)
            elif "mpaas_sandbox" in cmd:
                out["sandbox"] += _cpu(proc)
        except psutil.Error:
            continue
    for worker in workers:
        try:
            parent = psutil.Process(worker.pid)
            out["workers"] += _cpu(parent)
            horses = parent.children(True)
        except psutil.Error:
            continue
        for horse in horses:
            # A horse ending as the run closes may be gone by now: skip it alone (this
            # used to drop the whole worker); once reaped, its time is in the worker's
            # children times.
            try:
                out["workers"] += _cpu(horse)
            except psutil.Error:
                continue
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["bench"] = usage.ru_utime + usage.ru_stime
    return out


def cpu_per_call(before: dict, after: dict, calls: int) -> dict[str, float]:
    """Milliseconds of CPU per call by component, and in total."""
    per = {k: round(1000 * (after[k] - before[k]) / calls, 3) for k in after}
    per["total"] = round(sum(per.values()), 3)
    return per


class Sampler(threading.Thread):
    def __init__(self, procs, interval=0.1):
        super().__init__(daemon=True)
        self.procs, self.interval = procs, interval
        self.peak = [0] * len(procs)
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            for n, (own, horse) in enumerate(rss_by_worker(self.procs)):
                self.peak[n] = max(self.peak[n], own, horse)
            self.stop_event.wait(self.interval)


class Poller(threading.Thread):
    """GET the progress fragment every `interval` s (server time, in-process)."""

    def __init__(self, user, campaign_id: int, interval: float):
        super().__init__(daemon=True)
        self.user, self.campaign_id, self.interval = user, campaign_id, interval
        self.samples: list[float] = []
        self.errors = 0
        self.stop_event = threading.Event()

    def run(self):
        from django.db import connection
        from django.test import Client

        client = Client()
        client.force_login(self.user)
        url = f"/campaigns/{self.campaign_id}/progress/"
        try:
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                response = client.get(url, HTTP_HX_REQUEST="true")
                self.samples.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    self.errors += 1
                self.stop_event.wait(self.interval)
        finally:
            connection.close()


# -- the two sides ------------------------------------------------------------------------


def console_case(env, world, workers: int, threads: int, targets: int, args, rate_limit=None):
    from campaigns import lifecycle
    from campaigns.models import Credential, Run

    user, credential, template, auditor, target_lists = world
    if rate_limit:
        credential = Credential.objects.get(pk=credential.pk)
        credential.pk = None
        credential.name = f"Bench limited {rate_limit}"
        credential.rate_limit = rate_limit
        credential.save()
    target_list = target_lists[targets]
    name = f"C{workers}x{threads}-{targets}" + (f"-rl{rate_limit}" if rate_limit else "")
    campaign = c.make_campaign(name, credential, template, target_list)
    child_env = env.child_env(
        PUSH_CONCURRENCY=threads,
        PUSH_JOBS_PER_RUN=max(workers, 2),
        PUSH_LEASE_SECONDS=45,
        PUSH_JOB_SECONDS=30,
    )
    logs = env.workdir
    procs = [
        c.spawn(["rqworker", "push"], child_env, logs / f"worker-{name}-{n}.log")
        for n in range(workers)
    ]
    sweeper = c.spawn(
        ["sweep", "--loop", "--interval", str(args.sweep_interval)],
        child_env,
        logs / f"sweeper-{name}.log",
    )
    try:
        time.sleep(4.0)  # let the workers import Django and settle before idle RSS
        idle = [own for own, _h in rss_by_worker(procs)]
        c.sandbox_control(world_sandbox_url, "reset", {})
        sampler = Sampler(procs)
        sampler.start()
        cpu_before = cpu_snapshot([*procs, sweeper])
        started = time.perf_counter()
        run = lifecycle.launch(campaign, user)
        poller = Poller(auditor, campaign.pk, args.poll_interval)
        poller.start()
        while True:
            run.refresh_from_db()
            if run.finished_at is not None:
                break
            if time.perf_counter() - started > args.timeout:
                print(f"  {name}: gave up after {args.timeout:.0f} s", file=sys.stderr)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - started
        cpu_after = cpu_snapshot([*procs, sweeper])
        # the deliveries then take their batches' outcomes in bulk (a job queued at
        # close): waited for, and timed apart, so it never overlaps the next case
        while run.settled_at is None and time.perf_counter() - started < args.timeout:
            time.sleep(0.05)
            run.refresh_from_db()
        settle = time.perf_counter() - started - wall
        poller.stop_event.set()
        sampler.stop_event.set()
        poller.join()
        sampler.join()
    finally:
        for proc in [*procs, sweeper]:
            c.stop(proc)
    run = Run.objects.get(pk=run.pk)
    growth = [max(0, peak - base) for peak, base in zip(sampler.peak, idle, strict=True)]
    return {
        "case": name,
        "workers": workers,
        "push_concurrency": threads,
        "c": workers * threads,
        "targets": targets,
        "rate_limit": rate_limit,
        "run_status": run.status,
        "sent": run.sent,
        "failed": run.failed,
        "wall_seconds": round(wall, 2),
        "settle_seconds": round(settle, 2),
        "calls_per_second": round(targets / 10 / wall, 1),
        "cpu_ms_per_call": cpu_per_call(cpu_before, cpu_after, targets // 10),
        "sandbox": sandbox_numbers(world_sandbox_url),
        "progress": {**c.summary_ms(poller.samples), "errors": poller.errors},
        "worker_idle_rss_mb": [round(b / 2**20, 1) for b in idle],
        "worker_peak_rss_mb": [round(p / 2**20, 1) for p in sampler.peak],
        "worker_growth_mb": round(max(growth) / 2**20, 1),
        "load_after": c.load(),
    }


def baseline_case(conc: int, targets: int, sandbox_url: str) -> dict:
    """Minimal SDK client: C threads, one AcsClient, a CommonRequest per call."""
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkcore.request import CommonRequest

    calls = targets // 10
    spec = json.loads(json.dumps(BASE_PARAMS))
    domain = sandbox_url.removeprefix("http://")
    client = AcsClient(
        c.KEY_ID,
        c.SECRET,
        "cn-hangzhou",
        auto_retry=False,
        max_retry_time=0,
        pool_size=max(10, conc),
    )

    def one(n: int) -> None:
        request = CommonRequest(
            domain=domain, version="2019-08-21", action_name="PushTemplate", product="mpaas"
        )
        request.set_method("POST")
        request.set_protocol_type("http")
        request.set_accept_format("JSON")
        keys = {f"b{n * 10 + k:08d}": f"bl{n}k{k}" for k in range(10)}
        for name, value in {**spec, "TargetMsgkey": json.dumps(keys)}.items():
            request.add_body_params(name, value)
        client.do_action_with_exception(request)

    c.sandbox_control(sandbox_url, "reset", {})
    cpu_before = cpu_snapshot()
    started = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        list(pool.map(one, range(calls)))
    wall = time.perf_counter() - started
    return {
        "c": conc,
        "targets": targets,
        "wall_seconds": round(wall, 2),
        "calls_per_second": round(calls / wall, 1),
        "cpu_ms_per_call": cpu_per_call(cpu_before, cpu_snapshot(), calls),
        "sandbox": sandbox_numbers(sandbox_url),
        "load_after": c.load(),
    }


BASE_PARAMS: dict = {}
world_sandbox_url = ""


def main(argv=None) -> int:
    global world_sandbox_url, BASE_PARAMS
    args = parse_args(argv)
    cases = [tuple(int(x) for x in case.split("x")) for case in args.cases.split(",") if case]
    print(f"load before: {c.load()}")
    sandbox = None
    with c.Env(postgres=args.postgres, redis=True) as env:
        try:
            sandbox, url = start_sandbox(args.latency, env.child_env(), env.workdir / "sb.log")
            world_sandbox_url = url
            user, credential, template = c.make_campaign_world(endpoint=url)
            auditor = c.make_user("bench-auditor", "Auditor")
            # The poller stands for the web: ready this process as gunicorn readies a web
            # worker (views loaded, the app's objects frozen out of the collector's walks).
            import pushconsole.wsgi  # noqa: F401

            sizes = {args.targets}
            if args.memory_small:
                sizes.add(args.targets // 5)
            target_lists = {n: c.make_list(f"dispatch-{n}", n) for n in sorted(sizes)}
            world = (user, credential, template, auditor, target_lists)
            # the exact business parameters the console sends, for the baseline
            from campaigns.conf import push_limits
            from campaigns.mpaas import wire

            probe = c.make_campaign("probe", credential, template, target_lists[args.targets])
            BASE_PARAMS = {
                k: v
                for k, v in wire.template_params(
                    probe.push_spec(), {"x": "y"}, limits=push_limits()
                ).items()
                if k != "TargetMsgkey"
            }
            results, baselines = [], {}
            for workers, threads in cases:
                conc = workers * threads
                if conc not in baselines:
                    baselines[conc] = baseline_case(conc, args.targets, url)
                    b = baselines[conc]
                    print(
                        f"  baseline C={conc}: {b['wall_seconds']} s, "
                        f"{b['calls_per_second']} calls/s",
                        flush=True,
                    )
                r = console_case(env, world, workers, threads, args.targets, args)
                r["baseline_seconds"] = baselines[conc]["wall_seconds"]
                r["ratio"] = round(r["wall_seconds"] / r["baseline_seconds"], 2)
                r["time_met"] = r["ratio"] <= TIME_RATIO_TARGET
                results.append(r)
                print(
                    f"  console {r['case']}: {r['wall_seconds']} s (× {r['ratio']}), "
                    f"progress p95 {r['progress']['p95_ms']} ms",
                    flush=True,
                )
            if args.memory_small:
                workers, threads = cases[0]
                r = console_case(env, world, workers, threads, args.targets // 5, args)
                r["baseline_seconds"] = None
                results.append(r)
                print(f"  console {r['case']}: {r['wall_seconds']} s", flush=True)
            if args.rate_limit > 0:
                workers, threads = (int(x) for x in args.rate_case.split("x"))
                r = console_case(
                    env, world, workers, threads, args.targets, args, rate_limit=args.rate_limit
                )
                r["rate_met"] = r["sandbox"]["peak_calls_per_second"] <= args.rate_limit
                results.append(r)
                print(
                    f"  console {r['case']}: {r['wall_seconds']} s, "
                    f"peak {r['sandbox']['peak_calls_per_second']}/s",
                    flush=True,
                )
        finally:
            c.stop(sandbox)
        for r in results:
            r["progress_met"] = (r["progress"]["p95_ms"] or 0) <= PROGRESS_P95_MS
            r["memory_met"] = r["worker_growth_mb"] <= MEMORY_TARGET_MB
        print(f"\ndispatch: latency {args.latency} ms, {env.vendor}; load {c.load()}")
        c.table(
            [
                "case",
                "C",
                "targets",
                "status",
                "console s",
                "then settled s",
                "baseline s",
                "ratio",
                f"≤{TIME_RATIO_TARGET}×",
                "calls/s",
                "peak/s",
                "progress p95 ms",
                f"≤{PROGRESS_P95_MS}ms",
                "worker +MB",
                f"≤{MEMORY_TARGET_MB}MB",
            ],
            [
                [
                    r["case"],
                    r["c"],
                    r["targets"],
                    r["run_status"],
                    r["wall_seconds"],
                    r["settle_seconds"],
                    r.get("baseline_seconds") or "-",
                    r.get("ratio", "-"),
                    c.verdict(r.get("time_met")),
                    r["calls_per_second"],
                    r["sandbox"]["peak_calls_per_second"]
                    if not r["rate_limit"]
                    else f"{r['sandbox']['peak_calls_per_second']} (limit {r['rate_limit']:g}: "
                    f"{c.verdict(r['rate_met'])})",
                    r["progress"]["p95_ms"],
                    c.verdict(r["progress_met"]),
                    r["worker_growth_mb"],
                    c.verdict(r["memory_met"]),
                ]
                for r in results
            ],
        )
        parts = ["sandbox", "workers", "postgres", "redis", "bench", "total"]
        print("\nCPU ms per call, by process (baseline: bench = the SDK client itself)")
        c.table(
            ["run", *parts],
            [
                [f"baseline C={conc}", *(b["cpu_ms_per_call"][k] for k in parts)]
                for conc, b in sorted(baselines.items())
            ]
            + [[r["case"], *(r["cpu_ms_per_call"][k] for k in parts)] for r in results],
        )
        c.write_result(
            "dispatch_" + env.vendor,
            {
                "database": env.vendor,
                "latency_ms": args.latency,
                "cases": results,
                "baselines": baselines,
            },
            args.json,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
