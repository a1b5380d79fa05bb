"""The hot statements of a send round, in SQL, one shape per database.

A send job's database thread is the one serial part of sending: every call's claim and
outcome pass through it. Built through the ORM, a round spent more of its time composing
and quoting SQL than the database spent running it (py-spy on a 1 × 32 job). Here each
statement is fixed text with its values bound: on PostgreSQL through a server-side
binding cursor (values sent apart from the text, not quoted in Python, and the statement
prepared once a connection has run it a few times), whole rounds as arrays (`unnest`);
on SQLite through `executemany` and `RETURNING`. Arrays go in binary (`%b`): as text,
psycopg escaped every JSON string of a round's request parameters with a regex in
Python, 2.4 ms a round of 32 against 0.09 ms.

Every write keeps the fence of `recorder`: a claim bumps the lease token in the same
UPDATE that selects the batch, and an outcome is written only where status and token
still match.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from campaigns.models import Attempt, Batch, Delivery, Run, RunTally

BATCH = Batch._meta.db_table
RUN = Run._meta.db_table
ATTEMPT = Attempt._meta.db_table
DELIVERY = Delivery._meta.db_table
TALLY = RunTally._meta.db_table

PENDING, CLAIMED, SENT = (
    Batch.Status.PENDING.value,
    Batch.Status.CLAIMED.value,
    Batch.Status.SENT.value,
)
SENDING_RUN = Run.Status.SENDING.value


def _postgres() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def cursor() -> Iterator[Any]:
    """A cursor on Django's connection (same transaction), errors mapped to Django's
    (so the sender's reconnect logic sees OperationalError). On PostgreSQL a psycopg
    server-side binding cursor: Django's own binds on the client side."""
    if not _postgres():
        with connection.cursor() as cur:
            yield cur
        return
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cur:
        yield cur


def _stamp(moment: datetime):
    return moment if _postgres() else connection.ops.adapt_datetimefield_value(moment)


def _claim_update(guarded: bool = False) -> str:
    """The claim: one UPDATE that picks up to LIMIT due batches of a run by seq, bumps
    their fence token and attempt number, and returns them (parameters: lease end,
    run, [run again if `guarded`,] now, limit). `guarded`: only while the run is
    sending (for a claim pipelined after the run's key-share lock, before its status is
    read: the lock holds the status until the commit).

    PostgreSQL: `= ANY(ARRAY(…))` runs the pick first, once, and updates by primary key
    (as `IN (…)` the planner may walk every pending batch of every run and semi-join the
    pick to it), skipping rows another job is claiming. The picked rows are locked
    (PostgreSQL) or the write lock is held (SQLite), so they are still pending when
    updated."""
    guard = (
        f" AND EXISTS (SELECT 1 FROM {RUN} WHERE id = %s AND status = '{SENDING_RUN}')"
        if guarded
        else ""
    )
    pick = ("= ANY(ARRAY({} FOR UPDATE SKIP LOCKED))" if _postgres() else "IN ({})").format(
        f"SELECT id FROM {BATCH} WHERE run_id = %s{guard} AND status = '{PENDING}' "
        "AND (not_before IS NULL OR not_before <= %s) ORDER BY seq LIMIT %s"
    )
    return (
        f"UPDATE {BATCH} SET status = '{CLAIMED}', lease_token = lease_token + 1, "
        "lease_expires_at = %s, attempts = attempts + 1, not_before = NULL "
        f"WHERE id {pick} RETURNING id, lease_token, attempts, target_count, seq"
    )


def claim(
    cur, run_id: int, now: datetime, lease_until: datetime, limit: int
) -> list[tuple[int, int, int, int]]:
    """Claim up to `limit` due batches of the run (`_claim_update`): (id, new token,
    attempt number, target count) by seq."""
    cur.execute(_claim_update(), [_stamp(lease_until), run_id, _stamp(now), limit])
    return _claimed(cur)


def _claimed(cur) -> list[tuple[int, int, int, int]]:
    """`_claim_update`'s rows, by seq, without it."""
    rows = sorted(cur.fetchall(), key=lambda row: row[4])
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def claim_with_targets(
    cur, run_id: int, now: datetime, lease_until: datetime, limit: int
) -> tuple[list[tuple[int, int, int, int]], dict[int, list[tuple[str, str]]]]:
    """`claim`, and the (target ID, msgKey) pairs of each batch claimed, by delivery id:
    on PostgreSQL in the same statement (the claim as a data-modifying CTE), so a round
    makes one trip to the server for both."""
    if not _postgres():
        rows = claim(cur, run_id, now, lease_until, limit)
        targets: dict[int, list[tuple[str, str]]] = {row[0]: [] for row in rows}
        if rows:
            marks = ", ".join(["%s"] * len(rows))
            cur.execute(
                f"SELECT batch_id, target_id, msg_key FROM {DELIVERY} "
                f"WHERE batch_id IN ({marks}) ORDER BY id",
                list(targets),
            )
            for batch_id, target_id, key in cur.fetchall():
                targets[batch_id].append((target_id, key))
        return rows, targets
    cur.execute(_claim_with_targets_sql(), [lease_until, run_id, now, limit])
    return _claimed_with_targets(cur)


def _claim_with_targets_sql(guarded: bool = False) -> str:
    """PostgreSQL: the claim as a data-modifying CTE, with each batch's targets."""
    return (
        f"WITH c AS ({_claim_update(guarded)}) "
        # each claimed batch's targets as an array subquery, read by the batch_id index
        # (as a join, a planner without fresh statistics, right after planning wrote
        # the rows, hash-joined the claim to a scan of every delivery)
        "SELECT c.id, c.lease_token, c.attempts, c.target_count, ARRAY(SELECT "
        f"ARRAY[d.target_id::text, d.msg_key::text] FROM {DELIVERY} d "
        "WHERE d.batch_id = c.id ORDER BY d.id) FROM c ORDER BY c.seq"
    )


def _claimed_with_targets(cur) -> tuple[list[tuple], dict[int, list[tuple[str, str]]]]:
    rows, targets = [], {}
    for batch_id, token, number, count, pairs in cur.fetchall():
        rows.append((batch_id, token, number, count))
        targets[batch_id] = [(target_id, key) for target_id, key in pairs]
    return rows, targets


@dataclass(frozen=True)
class ClaimAsk:
    """A claim to make in the same trip as a round's answers (PostgreSQL)."""

    now: datetime
    lease_until: datetime
    limit: int
    with_targets: bool  # the batches' (target ID, msgKey) pairs too (PushTemplate)


Claimed = tuple[list[tuple[int, int, int, int]], dict[int, list[tuple[str, str]]] | None]


def insert_attempts(
    cur, rows: list[tuple[int, int, int, str, datetime, dict]], last: bool = False
) -> dict[int, int]:
    """Write the Attempt rows of claimed batches before any call: (batch id, number,
    token, worker, started, request params) each. Returns {batch id: attempt id}.
    `last`: nothing follows in the transaction, so on PostgreSQL the COMMIT may go in
    the same trip (`_commits_here`)."""
    if not rows:
        return {}
    if _postgres():
        commit = last and _commits_here()
        with cur.connection.pipeline() if commit else nullcontext():
            _insert_attempts_postgres(cur, rows)
            if commit:
                cur.connection.execute("COMMIT", prepare=False)
    else:
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, '', '', '', %s, '')"] * len(rows))
        cur.execute(
            f"INSERT INTO {ATTEMPT} (batch_id, number, lease_token, worker, started_at, "
            "outcome, request_id, result_code, result_message, request_params, "
            f"response_body) VALUES {values} RETURNING id, batch_id",
            [
                value
                for batch_id, number, token, worker, started, params in rows
                for value in (
                    batch_id,
                    number,
                    token,
                    worker,
                    _stamp(started),
                    Attempt.Outcome.UNKNOWN.value,
                    json.dumps(params),
                )
            ],
        )
    return {batch_id: attempt_id for attempt_id, batch_id in cur.fetchall()}


def _commits_here() -> bool:
    """Whether a statement may carry the COMMIT of Django's transaction: the outermost
    atomic block (no savepoint, none around it), which will commit when it exits (it
    then finds the connection idle and sends nothing: psycopg commits only a
    transaction in progress)."""
    return (
        len(connection.atomic_blocks) == 1
        and connection.commit_on_exit
        and not connection.savepoint_ids
        and not connection.needs_rollback
    )


def _insert_attempts_postgres(cur, rows: list[tuple]) -> None:
    cur.execute(
        f"INSERT INTO {ATTEMPT} (batch_id, number, lease_token, worker, started_at, "
        "outcome, request_id, result_code, result_message, request_params, "
        "response_body) SELECT b, n, t, w, s, %s, '', '', '', p::jsonb, '' FROM "
        "unnest(%b::bigint[], %b::int[], %b::int[], %b::text[], %b::timestamptz[], "
        "%b::text[]) AS v(b, n, t, w, s, p) RETURNING id, batch_id",
        [
            Attempt.Outcome.UNKNOWN.value,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [json.dumps(r[5]) for r in rows],
        ],
    )


def complete_attempts(cur, rows: list[tuple]) -> None:
    """Accepted calls' Attempt rows: (attempt id, latency ms, RequestId, HTTP status,
    ResultCode, ResultMessage, body) each."""
    outcome = Attempt.Outcome.SUCCESS.value
    if _postgres():
        columns = list(zip(*rows, strict=True))
        cur.execute(
            f"UPDATE {ATTEMPT} AS a SET outcome = %s, latency_ms = v.l, request_id = v.r, "
            "http_status = v.h, result_code = v.c, result_message = v.m, "
            "response_body = v.body FROM unnest(%b::bigint[], %b::int[], %b::text[], "
            "%b::int[], %b::text[], %b::text[], %b::text[]) AS v(id, l, r, h, c, m, body) "
            "WHERE a.id = v.id",
            [outcome, *(list(column) for column in columns)],
        )
        return
    cur.executemany(
        f"UPDATE {ATTEMPT} SET outcome = %s, latency_ms = %s, request_id = %s, "
        "http_status = %s, result_code = %s, result_message = %s, response_body = %s "
        "WHERE id = %s",
        [(outcome, *row[1:], row[0]) for row in rows],
    )


def _finish_sent_sqlite(cur, rows: list[tuple], now: datetime) -> set[int]:
    """Batches whose call was accepted → sent, where still claimed under the call's
    token: (batch id, token, RequestId, ResultCode, ResultMessage, ResultMsg, Data,
    HTTP status, latency ms) each. Returns the ids written (a zombie's late answer
    writes nothing). One writer at a time, so the tokens read here hold until the
    commit."""
    marks = ", ".join(["%s"] * len(rows))
    cur.execute(
        f"SELECT id, lease_token FROM {BATCH} WHERE id IN ({marks}) AND status = %s",
        [*(row[0] for row in rows), CLAIMED],
    )
    tokens = dict(cur.fetchall())
    current = [row for row in rows if tokens.get(row[0]) == row[1]]
    stamp = _stamp(now)
    cur.executemany(
        f"UPDATE {BATCH} SET status = %s, request_id = %s, result_code = %s, "
        "result_message = %s, push_success = 1, push_result_msg = %s, "
        "push_result_data = %s, http_status = %s, latency_ms = %s, finished_at = %s, "
        "lease_expires_at = NULL WHERE id = %s AND status = %s AND lease_token = %s",
        [(SENT, *row[2:], stamp, row[0], CLAIMED, row[1]) for row in current],
    )
    return {row[0] for row in current}


def add_to_tally(cur, run_id: int, shard: int, column: str, count: int) -> None:
    """Add `count` to a send job's tally row of the run (one statement, an upsert)."""
    assert column in ("sent", "failed", "cancelled")
    values = {"sent": 0, "failed": 0, "cancelled": 0, column: count}
    cur.execute(
        f"INSERT INTO {TALLY} AS t (run_id, shard, sent, failed, cancelled) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, shard) "
        f"DO UPDATE SET {column} = t.{column} + excluded.{column}",
        [run_id, shard, values["sent"], values["failed"], values["cancelled"]],
    )


def _finish_sent_postgres(cur, rows: list[tuple], now: datetime, run_id: int, shard: int) -> None:
    """`_finish_sent_sqlite`'s UPDATE (RETURNING the ids written, not yet read), and in
    the same statement the targets of the batches written added to the job's RunTally
    row."""
    rows = sorted(rows)  # row locks in id order, as every other batch writer
    columns = list(zip(*rows, strict=True))
    cur.execute(
        f"WITH f AS ({_FINISH_SENT} RETURNING b.id, b.target_count), t AS ("
        f"INSERT INTO {TALLY} AS t (run_id, shard, sent, failed, cancelled) "
        "SELECT %s, %s, sum(target_count), 0, 0 FROM f HAVING count(*) > 0 "
        "ON CONFLICT (run_id, shard) DO UPDATE SET sent = t.sent + excluded.sent) "
        "SELECT id FROM f",
        [SENT, now, *(list(column) for column in columns), CLAIMED, run_id, shard],
    )


_FINISH_SENT = (
    f"UPDATE {BATCH} AS b SET status = %s, request_id = v.r, result_code = v.c, "
    "result_message = v.m, push_success = TRUE, push_result_msg = v.pm, "
    "push_result_data = v.pd, http_status = v.h, latency_ms = v.l, "
    "finished_at = %s, lease_expires_at = NULL FROM unnest(%b::bigint[], "
    "%b::int[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::int[], %b::int[]) AS v(id, t, r, c, m, pm, pd, h, l) "
    "WHERE b.id = v.id AND b.status = %s AND b.lease_token = v.t"
)


def share_and_record(
    run_id: int,
    shard: int,
    attempts: list[tuple],
    sent: list[tuple],
    targets: dict[int, int],
    now: datetime,
    ask: ClaimAsk | None = None,
) -> tuple[str, int, set[int], Claimed | None]:
    """The start of a round with answers to record: the run's status and failure streak
    under a key-share lock on its row (see `RunQuerySet.share`), the accepted calls'
    Attempt rows completed (`complete_attempts`), their batches finished
    and their targets (`targets`: batch id → count) added to the job's tally row, for
    the batches written only. On PostgreSQL all of it goes in one pipeline, one trip
    to the server, and with it the claim `ask`s for, made only while the run is
    sending (every trip costs the database thread a wait for the interpreter lock
    behind the callers). Returns (status, streak, ids of the batches written, the claim
    as (rows, targets or None), or None where it was not made: SQLite, or not asked)."""
    if not _postgres():
        status, streak = Run.objects.share(run_id)
        with cursor() as cur:
            if attempts:
                complete_attempts(cur, attempts)
            written = _finish_sent_sqlite(cur, sent, now) if sent else set()
            if written:
                add_to_tally(cur, run_id, shard, "sent", sum(targets[pk] for pk in written))
        return status, streak, written, None
    import psycopg

    connection.ensure_connection()
    conn = connection.connection
    with (
        connection.wrap_database_errors,
        psycopg.Cursor(conn) as share,
        psycopg.Cursor(conn) as record,
        psycopg.Cursor(conn) as finish,
        psycopg.Cursor(conn) as claim_cur,
    ):
        with conn.pipeline():
            share.execute(*Run.objects.share_sql(run_id))
            if attempts:
                complete_attempts(record, attempts)
            if sent:
                _finish_sent_postgres(finish, sent, now, run_id, shard)
            if ask is not None:
                claim_cur.execute(
                    _claim_with_targets_sql(guarded=True)
                    if ask.with_targets
                    else _claim_update(guarded=True),
                    [ask.lease_until, run_id, run_id, ask.now, ask.limit],
                )
        status, streak = share.fetchone()
        written = {row[0] for row in finish.fetchall()} if sent else set()
        claimed: Claimed | None = None
        if ask is not None:
            claimed = (
                _claimed_with_targets(claim_cur)
                if ask.with_targets
                else (_claimed(claim_cur), None)
            )
    return status, streak, written, claimed
