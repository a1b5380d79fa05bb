"""The sweeper's "queued" marker: a slot whose job left the queue without starting (its
worker's host dropped off the network between dequeue and start) is free again at once,
while a job still waiting in the queue keeps its slot busy."""

from __future__ import annotations

from rq.job import Job, JobStatus

from campaigns import queueing


def test_a_waiting_job_keeps_its_slot_busy(redis_conn):
    slot = queueing.send_slots()[0]
    assert queueing.enqueue(4242, slot) is True
    assert queueing.slot_busy(queueing.connection(), 4242, slot)
    assert queueing.enqueue(4242, slot) is False  # no second job while one waits
    assert queueing.queue().count == 1


def test_a_job_taken_off_the_queue_but_never_started_frees_its_slot(redis_conn):
    slot = queueing.send_slots()[0]
    conn = queueing.connection()
    assert queueing.enqueue(4243, slot) is True
    # a worker pops the job, marks it started, and its host is cut before the job runs
    job_id = queueing.queue().pop_job_id()
    Job.fetch(job_id, connection=conn).set_status(JobStatus.STARTED)
    assert not queueing.slot_busy(conn, 4243, slot)
    assert queueing.enqueue(4243, slot) is True  # the sweeper re-queues the slot
    assert queueing.queue().count == 1


def test_a_marker_whose_job_vanished_frees_its_slot(redis_conn):
    slot = queueing.send_slots()[1]
    conn = queueing.connection()
    assert queueing.enqueue(4244, slot) is True
    Job.fetch(queueing.queue().pop_job_id(), connection=conn).delete()
    assert not queueing.slot_busy(conn, 4244, slot)
