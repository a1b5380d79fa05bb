"""/metrics: who may read it, and the numbers after a real campaign sent by real worker
processes in prometheus-client's multiprocess mode (one directory, several processes)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from campaigns import lifecycle, sweeper
from campaigns.models import Batch, Run
from tests.fault_helpers import FAST_ENV, run_finished, run_settled, wait_until
from tests.pipeline_helpers import check_invariants, drain, make_campaign, make_list
from tests.processes import ROOT, worker_env, workers

TOKEN = "metrics-token-MARKER-1234"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(values: dict, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, have), value in values.items()
        if sample == name and all(dict(have).get(k) == v for k, v in labels.items())
    )


def test_metrics_is_off_without_a_token_or_an_allow_list(client, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW_IPS = "", []
    assert client.get("/metrics").status_code == 404


def test_metrics_needs_the_bearer_token(client, db, settings, redis_conn):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW_IPS = TOKEN, []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 403
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    assert b"pushconsole_open_batches" in answer.content
    assert TOKEN.encode() not in answer.content


def test_metrics_allow_list_checks_the_client_address(client, db, settings, redis_conn):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW_IPS = "", ["10.9.0.0/16", "192.0.2.7"]
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.9.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.8").status_code == 403
    settings.METRICS_TOKEN = TOKEN  # both set: both needed
    assert client.get("/metrics", REMOTE_ADDR="10.9.3.4").status_code == 403
    ok = client.get(
        "/metrics", REMOTE_ADDR="10.9.3.4", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert ok.status_code == 200


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_scrape_after_a_campaign_adds_up_every_process(
    client, credential, template, sandbox, marketer, redis_conn, redis_url, settings, tmp_path
):
    """Two real worker processes and a `manage.py sweep` process write into one
    multiprocess directory; a scrape by the web process adds them up."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    settings.METRICS_TOKEN, settings.METRICS_MULTIPROC_DIR = TOKEN, str(directory)
    for name, value in FAST_ENV.items():
        setattr(settings, name, float(value) if "BACKOFF" in name else int(value))
    credential.rate_limit = 8  # 30 calls at 8/s: callers wait for slots
    credential.save()
    sandbox.configure(error_5xx_rate=0.25, seed=11)
    campaign = make_campaign(credential, template, make_list(295))
    env = {**FAST_ENV, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with workers(redis_url, 2, **env):
        run = lifecycle.launch(campaign, marketer)
        wait_until(run_finished(run), 90, "the campaign to finish")
        # the settle job queued at the close is the last job: the queue is empty after it
        wait_until(run_settled(run), 30, "the run's deliveries to be settled")
    sweep = subprocess.run(
        [sys.executable, "manage.py", "sweep"],
        cwd=ROOT,
        env=worker_env(redis_url, **env),
        capture_output=True,
        timeout=60,
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    run.refresh_from_db()
    assert (run.status, run.sent) == (Run.Status.COMPLETED, 295)
    records = sandbox.records()
    check_invariants(campaign, records, rate_limit=8)
    calls = [r for r in records if r["action"] == "PushTemplate"]
    accepted = [r for r in calls if r["accepted"]]
    assert len(accepted) == 30 and len(calls) > 30  # some 5xx were retried

    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    values = samples(answer.content.decode())
    name = "pushconsole_push_calls_total"
    assert total(values, name, code="OK", outcome="success") == 30
    assert total(values, name) == len(calls)
    assert total(values, name, outcome="transient") == len(calls) - 30
    assert total(values, "pushconsole_push_call_seconds_count") == len(calls)
    assert total(values, "pushconsole_push_call_seconds_sum") > 0
    assert total(values, "pushconsole_targets_total", result="sent") == 295
    assert total(values, "pushconsole_targets_total", result="failed") == 0
    assert total(values, "pushconsole_rate_limit_waits_total") > 0
    assert total(values, "pushconsole_rate_limit_wait_seconds_total") > 0
    assert total(values, "pushconsole_sweeps_total") == 1  # the sweep process's
    assert total(values, "pushconsole_open_batches", status="pending") == 0
    assert total(values, "pushconsole_queue_depth", queue="push") == 0
    print(
        f"metrics: {len(calls)} calls ({len(calls) - 30} 5xx), "
        f"{total(values, 'pushconsole_rate_limit_waits_total'):.0f} rate-limit waits"
    )


@pytest.mark.django_db(transaction=True)
def test_gauges_and_lease_expiries_are_read_from_the_database_and_redis(
    client, credential, template, target_list, sandbox, marketer, redis_conn, settings
):
    settings.METRICS_TOKEN, settings.METRICS_MULTIPROC_DIR = TOKEN, ""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    campaign = make_campaign(credential, template, target_list)
    lifecycle.launch(campaign, marketer)  # planning queued, not yet run
    before = samples(client.get("/metrics", headers=headers).content.decode())
    assert total(before, "pushconsole_queue_depth", queue="push") == 1
    drain()
    run = campaign.runs.get()
    batch = Batch.objects.filter(run=run).first()
    # a batch left claimed by a worker that died: its lease expired a minute ago
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.CLAIMED, lease_expires_at=timezone.now() - timedelta(seconds=60)
    )
    mid = samples(client.get("/metrics", headers=headers).content.decode())
    assert total(mid, "pushconsole_open_batches", status="claimed") == 1
    assert total(mid, "pushconsole_open_batches", status="pending") == 0
    sweeper.sweep()
    after = samples(client.get("/metrics", headers=headers).content.decode())
    assert total(after, "pushconsole_open_batches", status="pending") == 1
    expiries = "pushconsole_lease_expiries_total"
    assert total(after, expiries) == total(mid, expiries) + 1
    sweeps = "pushconsole_sweeps_total"
    assert total(after, sweeps) == total(mid, sweeps) + 1
