"""/healthz and /readyz: unauthenticated, nothing secret, readiness that can fail."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rq import Worker

from campaigns import queueing, sweeper


@pytest.fixture
def anonymous():
    return Client()


def test_healthz_answers_without_signing_in(db, anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


def test_readyz_fails_until_a_worker_beats_and_the_sweeper_ran(
    transactional_db, anonymous, redis_conn
):
    response = anonymous.get("/readyz")
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["status"] == "not ready"
    assert body["checks"] == {
        "static": "ok",  # the development profile serves static files from the finders
        "database": "ok",
        "migrations": "ok",
        "redis": "ok",
        "worker": "failing",
        "sweeper": "failing",
    }

    sweeper.sweep()
    worker = Worker([queueing.queue()], connection=queueing.connection())
    worker.register_birth()
    worker.heartbeat()
    try:
        response = anonymous.get("/readyz")
    finally:
        worker.register_death()
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["status"] == "ready"


def test_readyz_says_nothing_secret_when_redis_is_gone(db, anonymous, settings, tmp_path):
    url = f"unix://{tmp_path}/nobody-listens.sock?db=0"
    settings.RQ_QUEUES = {"push": {"URL": url, "DEFAULT_TIMEOUT": 3600}}
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["checks"]["redis"] == "failing"
    assert body["checks"]["database"] == "ok"
    text = response.content.decode()
    for secret in ("sock", str(tmp_path), "Error", settings.SECRET_KEY):
        assert secret not in text


def test_a_stale_sweep_is_not_ready(transactional_db, anonymous, redis_conn, settings):
    sweeper.sweep()
    settings.READY_SWEEP_SECONDS = 0
    body = json.loads(anonymous.get("/readyz").content)
    assert body["checks"]["sweeper"] == "failing"
