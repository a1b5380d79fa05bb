"""Shared helpers for send-pipeline tests: building campaigns, draining the real queue
in-process, and the one invariant check every pipeline test ends with."""

from __future__ import annotations

from collections import defaultdict

import django_rq
from django.db.models import F
from rq import SimpleWorker

from campaigns import idbounds
from campaigns.models import Batch, Campaign, Delivery, Run, Target, TargetList


def quick_pipeline(settings, **overrides) -> None:
    """The pipeline tests' settings: short backoffs and 4 callers, then `overrides`
    (setting name -> value) for what a file needs besides."""
    settings.PUSH_BACKOFF_BASE = 0.01
    settings.PUSH_BACKOFF_MAX = 0.05
    settings.PUSH_CONCURRENCY = 4
    for name, value in overrides.items():
        setattr(settings, name, value)


def make_campaign(credential, template, target_list, **changes) -> Campaign:
    fields = {
        "task_name": "Spring sale",
        "credential": credential,
        "template": template,
        "template_values": {"name": "Ann", "coupon": "C-42"},
        "target_list": target_list,
        "expired_seconds": 3600,
    }
    fields.update(changes)
    return Campaign.objects.create(**fields)


def make_list(size: int, name: str = "list") -> TargetList:
    target_list = TargetList.objects.create(name=f"{name}-{size}", delivery_type=3)
    Target.objects.bulk_create(
        (Target(target_list=target_list, target_id=f"u{n:07d}") for n in range(size)),
        batch_size=2000,
    )
    target_list.target_count = size
    target_list.save(update_fields=["target_count"])
    return target_list


def drain(max_rounds: int = 200) -> int:
    """Run every job on the `push` queue in this process (no fork) until it is empty."""
    queue = django_rq.get_queue("push")
    worker = SimpleWorker([queue], connection=queue.connection)
    rounds = 0
    while queue.count and rounds < max_rounds:
        worker.work(burst=True)
        rounds += 1
    return rounds


def check_invariants(campaign: Campaign, ledger: list[dict], *, rate_limit: float | None = None):
    """Every target of every run has exactly one final outcome; no target went out under
    two msgKeys; no call carried more than 10 targets; counters match the rows; and the
    sandbox never saw more calls in a second than the limit."""
    calls = [
        r for r in ledger if r["action"] in ("PushTemplate", "PushMultiple") and r.get("targets")
    ]
    task_calls = [r for r in calls if r.get("task_name") == campaign.task_name]
    assert all(len(r["targets"]) <= 10 for r in task_calls if r["action"] == "PushTemplate"), (
        "a PushTemplate call carried more than 10 targets"
    )
    assert all(len(r["targets"]) <= 100 for r in task_calls), "a call carried more than 100"
    revoked = {
        (r["params"]["MessageId"], r["params"]["TargetId"])
        for r in ledger
        if r["action"] == "RevokePushMessage" and r.get("accepted")
    }
    keys_by_target: dict[str, set[str]] = defaultdict(set)
    for record in task_calls:
        if record.get("accepted"):
            for target, key in record["targets"].items():
                keys_by_target[target].add(key)
    for run in campaign.runs.all():
        deliveries = Delivery.objects.filter(run=run)
        # a delivery's outcome is its batch's (in_state asks the batch); once the run is
        # settled, every delivery's own columns say the same
        if run.settled_at is not None:
            assert not deliveries.exclude(status=F("batch__status")).exists(), (
                f"run {run.number} settled with deliveries not in their batch's state"
            )
        assert not deliveries.in_state(Delivery.Status.PENDING).exists() or run.status in (
            Run.Status.PAUSED,
        ), f"run {run.number} left pending deliveries"
        counts = run.counts()
        if run.finished_at is not None:
            assert not run.tallies.exists(), f"run {run.number} closed with unfolded tallies"
            assert (run.sent, run.failed, run.cancelled) == (
                counts.sent,
                counts.failed,
                counts.cancelled,
            )
        assert counts.total == run.total == deliveries.count()
        assert counts.sent == deliveries.in_state(Delivery.Status.SENT).count()
        assert counts.failed == deliveries.in_state(Delivery.Status.FAILED).count()
        assert counts.cancelled == deliveries.in_state(Delivery.Status.CANCELLED).count()
        assert (
            counts.pending + counts.in_flight
            == deliveries.in_state(Delivery.Status.PENDING).count()
        )
        assert run.batch_count == Batch.objects.filter(run=run).count()
        if run.kind == Run.Kind.RECALL:
            # every delivery recorded as recalled was revoked by mPaaS, once per delivery
            for target, key in deliveries.in_state(Delivery.Status.SENT).values_list(
                "target_id", "recall_of__msg_key"
            ):
                assert (key, target) in revoked, f"{target} recorded recalled but not revoked"
            continue
        sent_keys = {
            key: target
            for target, key in deliveries.in_state(Delivery.Status.SENT).values_list(
                "target_id", "msg_key"
            )
        }
        # every delivery recorded as sent was accepted by mPaaS under its own msgKey
        for key, target in sent_keys.items():
            assert key in keys_by_target[target], f"{target} recorded sent but not accepted"
    # within one run, a target is only ever accepted under one msgKey
    run_prefixes = {run.number: f"pc{campaign.pk}r{run.number}n" for run in campaign.runs.all()}
    for target, keys in keys_by_target.items():
        for prefix in run_prefixes.values():
            assert len({k for k in keys if k.startswith(prefix)}) <= 1, (
                f"{target} sent under two msgKeys in one run: {keys}"
            )
    # the history's date windows find every dated delivery between its id bounds
    assert idbounds.uncovered(idbounds.FINISHED) == [], "finished deliveries out of bounds"
    assert idbounds.uncovered(idbounds.PLANNED) == [], "planned deliveries out of bounds"
    if rate_limit:
        sending = ("PushTemplate", "PushMultiple", "RevokePushMessage")
        times = sorted(r["ts"] for r in ledger if r["action"] in sending)
        peak, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= 1.0:
                start += 1
            peak = max(peak, end - start + 1)
        assert peak <= rate_limit, f"{peak} calls in one second, limit {rate_limit}"
