"""Liveness (/healthz) and readiness (/readyz) for load balancers and supervisors.

Both answer without signing in and say nothing secret: check names and ok / failing,
never a URL, a path or an error text. Readiness checks the database, that every
migration is applied, that the hashed static files were collected (production), Redis,
that an RQ worker sent a heartbeat within READY_WORKER_SECONDS and that the sweeper ran
within READY_SWEEP_SECONDS.
(django-health-check was considered; its stock checks cover the database and caches but
not RQ workers or our sweeper, so two small views were simpler than its plugin classes.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from rq import Worker

from campaigns import queueing, sweeper
from pushconsole import checks

log = logging.getLogger(__name__)


@login_not_required
@never_cache
def healthz(request):
    """Liveness: this process answers requests."""
    return JsonResponse({"status": "ok"})


def _database() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0] == 1


def _migrations() -> bool:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    return not executor.migration_plan(executor.loader.graph.leaf_nodes())


def _redis() -> bool:
    return bool(queueing.connection().ping())


def _worker() -> bool:
    limit = time.time() - settings.READY_WORKER_SECONDS
    for worker in Worker.all(connection=queueing.connection()):
        beat = worker.last_heartbeat  # RQ keeps it in UTC, without a zone
        if beat is not None and beat.replace(tzinfo=UTC).timestamp() > limit:
            return True
    return False


def _sweeper() -> bool:
    last = sweeper.last_sweep()
    return last is not None and time.time() - last < settings.READY_SWEEP_SECONDS


def _static() -> bool:
    return not checks.static_manifest_missing()


CHECKS: dict[str, Callable[[], bool]] = {
    "static": _static,
    "database": _database,
    "migrations": _migrations,
    "redis": _redis,
    "worker": _worker,
    "sweeper": _sweeper,
}


@login_not_required
@never_cache
def readyz(request):
    """Readiness: every dependency answers and the background processes are alive."""
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = "ok" if check() else "failing"
        except Exception as exc:  # noqa: BLE001 - a check that raises is failing
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "failing"
    ready = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": results},
        status=200 if ready else 503,
    )
