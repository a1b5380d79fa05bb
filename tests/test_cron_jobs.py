"""The periodic jobs rqcron queues (sweep, due-check, reconcile, statistics) through a
database outage: each ends with a result line, so an outage does not pile failed jobs up
in the registry (RQ keeps a failed job a year by default)."""

from __future__ import annotations

import django_rq
import pytest
from django.db import OperationalError, connection
from rq import SimpleWorker

from campaigns import jobs


def refuse(execute, sql, params, many, context):
    raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


@pytest.mark.django_db(transaction=True)
def test_periodic_jobs_end_with_a_result_line_while_the_database_is_away(redis_conn):
    queue = django_rq.get_queue("push")
    periodic = (jobs.sweep, jobs.dispatch_due, jobs.reconcile_schedules, jobs.fetch_statistics)
    queued = [queue.enqueue(job) for job in periodic]
    with connection.execute_wrapper(refuse):
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    assert queue.failed_job_registry.get_job_ids() == []
    results = [job.return_value() for job in (queue.fetch_job(j.id) for j in queued)]
    assert results == ["database unavailable; the next run tries again"] * len(periodic)


@pytest.mark.django_db(transaction=True)
def test_run_jobs_end_with_a_result_line_while_the_database_is_away(redis_conn):
    """Planning and settling a run, like sending it, leave their work in the database:
    the sweeper re-queues them once it is back (a CI drill met a plan job that failed
    mid-outage and stayed in the failed registry)."""
    queue = django_rq.get_queue("push")
    queued = [
        queue.enqueue(jobs.plan_run, 4242),
        queue.enqueue(jobs.send_batches, 4242, "send0"),
        queue.enqueue(jobs.settle_run, 4242),
    ]
    with connection.execute_wrapper(refuse):
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    assert queue.failed_job_registry.get_job_ids() == []
    results = [job.return_value() for job in (queue.fetch_job(j.id) for j in queued)]
    assert results == ["database unavailable; the sweeper re-queues the run"] * 3
