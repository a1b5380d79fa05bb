"""Prometheus metrics: counters where things happen, gauges read at scrape time, /metrics.

Counters and the call-latency histogram are prometheus-client objects incremented in the
process where the event happens (an RQ work-horse, a gunicorn worker, rqcron's sweep).
With several processes, set `PROMETHEUS_MULTIPROC_DIR` (the same directory for every
process of a host, emptied before they start: `make run` and deploy/supervisord.conf do
both) before any of them starts: prometheus-client then keeps each process's values in
a small file there, and a scrape adds them up. Without it a scrape shows this process's
counters only. The gauges (open batches, queue depth) are read from the database and
Redis at scrape time, so they are right whichever process answers.

`/metrics` is off (404) unless `METRICS_TOKEN` or `METRICS_ALLOW_IPS` is set; with a
token a scrape must send `Authorization: Bearer <token>` (403 otherwise); with an
allow-list the client address must be in it (403 otherwise); with both, both.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

CALLS = Counter(
    "pushconsole_push_calls",
    "PushTemplate calls made, by ResultCode and outcome kind",
    ["code", "outcome"],
)
CALL_SECONDS = Histogram(
    "pushconsole_push_call_seconds",
    "Duration of PushTemplate calls (request to answer or error)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
TARGETS = Counter(
    "pushconsole_targets",
    "Targets whose delivery was recorded final, by result (sent, failed, cancelled)",
    ["result"],
)
LEASE_EXPIRIES = Counter(
    "pushconsole_lease_expiries",
    "Claimed batches whose lease expired and that the sweeper returned to the queue",
)
RATE_LIMIT_WAITS = Counter(
    "pushconsole_rate_limit_waits",
    "Calls that had to wait for a slot under their credential's rate limit",
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "pushconsole_rate_limit_wait_seconds",
    "Seconds spent waiting for rate-limit slots",
)
SWEEPS = Counter("pushconsole_sweeps", "Sweeper runs completed")
EVENT_METRICS = (
    CALLS,
    CALL_SECONDS,
    TARGETS,
    LEASE_EXPIRIES,
    RATE_LIMIT_WAITS,
    RATE_LIMIT_WAIT_SECONDS,
    SWEEPS,
)


def count_call(code: str, outcome: str, seconds: float) -> None:
    """One PushTemplate call ended with ResultCode `code` and outcome kind `outcome`."""
    CALLS.labels(code=code[:64] or "none", outcome=outcome).inc()
    CALL_SECONDS.observe(max(seconds, 0.0))


def count_targets(result: str, count: int) -> None:
    if count:
        TARGETS.labels(result=result).inc(count)


class StateCollector:
    """Gauges computed at scrape time: open batches by status, jobs on the push queue."""

    def collect(self):
        from campaigns import queueing
        from campaigns.models import Batch

        batches = GaugeMetricFamily(
            "pushconsole_open_batches",
            "Batches not yet final (pending or in flight), by status",
            labels=["status"],
        )
        counts = dict.fromkeys(Batch.OPEN_STATUSES, 0)
        try:
            rows = (
                Batch.objects.filter(status__in=Batch.OPEN_STATUSES)
                .values_list("status")
                .order_by()
                .annotate(n=Count("pk"))
            )
            counts.update(dict(rows))
            for status, n in counts.items():
                batches.add_metric([str(status)], n)
            yield batches
        except Exception as exc:  # noqa: BLE001 - a scrape during an outage still answers
            log.warning("metrics: open batches unavailable: %s", type(exc).__name__)
        depth = GaugeMetricFamily(
            "pushconsole_queue_depth", "Jobs waiting on the push queue", labels=["queue"]
        )
        try:
            depth.add_metric([queueing.QUEUE], queueing.queue().count)
            yield depth
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: queue depth unavailable: %s", type(exc).__name__)


def render() -> bytes:
    """The exposition text: every process's counters (multiprocess mode) or this
    process's, plus the gauges read now."""
    registry = CollectorRegistry()
    path = settings.METRICS_MULTIPROC_DIR
    if path:
        MultiProcessCollector(registry, path=str(path))
    else:
        for collector in EVENT_METRICS:
            registry.register(collector)
    registry.register(StateCollector())
    return generate_latest(registry)


def allowed(authorization: str, remote_addr: str) -> bool | None:
    """None: the endpoint is off. Else whether this scrape may read it."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOW_IPS
    if not token and not networks:
        return None
    if token:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return False
    if networks:
        try:
            address = ipaddress.ip_address(remote_addr)
        except ValueError:
            return False
        if not any(address in ipaddress.ip_network(net, strict=False) for net in networks):
            return False
    return True


@login_not_required
@never_cache
def metrics_view(request):
    verdict = allowed(request.headers.get("Authorization", ""), request.META.get("REMOTE_ADDR", ""))
    if verdict is None:
        raise Http404
    if not verdict:
        return HttpResponseForbidden("forbidden\n", content_type="text/plain")
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
