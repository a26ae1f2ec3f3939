"""Durable work: recorded in PostgreSQL, carried by RQ, done exactly once. Report intake batches,
new-content scan batches and scan runs all go through this one mechanism.

A unit of work is a row in a podmod table, written before its job is enqueued. Redis only
carries the job (its one argument is the row's id), so an emptied Redis loses nothing: the reader
calls `enqueue_pending` every pass, which enqueues again each undone row whose job is missing,
stuck "queued" in no queue, failed for good, finished without marking the row done, or started
by a worker that died (nobody holds the row's advisory lock). The job takes that lock (`claim`)
and marks the row done in the transaction that stores its results (`mark_done`), so running it
twice or at once in two workers adds nothing. Jobs ride out a database outage by starting again
(`through_outages`).

Ids read from a pod table above a watermark (a `Feed`; the marks are `store.watermark` and
`store.set_watermark`, which never moves one down) may commit out of order: ids missing below
the watermark are watched as gaps (`watch_gaps`, `fill_gaps`, `expire_gaps`) until they appear or
reader.gap_timeout passes.

A new kind of work plugs in with a `Kind` (a notification outbox, say):
- a table in schema podmod with `id bigserial`, `created_at`, `enqueued_at`, `attempts integer
  NOT NULL DEFAULT 0` (the enqueues, for the back-off; another name where the table's own
  `attempts` means something else: `Kind.attempts_column`) and `done_at` (plus its own columns),
  and an index on id WHERE done_at IS NULL;
- an advisory lock class of its own (a constant no other kind uses);
- a job function in worker/jobs.py, listed in queue.JOB_FUNCTIONS (the worker runs nothing
  else), that calls `claim`, does the work, and `mark_done`s the row in the same transaction;
- the reader's pass calling `enqueue_pending` for the kind.
Producers insert rows in their own transactions; everything else is here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import redis
from psycopg import sql
from rq.job import JobStatus

from podmod import queue
from podmod.config import Config
from podmod.db import connection_lost
from podmod.errors import first_line

log = logging.getLogger("podmod.durable")
T = TypeVar("T")

MAX_GAP = 1000  # a larger hole in ids is history (deleted rows), not transactions in flight
MAX_BACKOFF_DOUBLINGS = 8


@dataclass(frozen=True)
class Kind:
    """One kind of durable work: where its units are recorded and how their jobs are named."""

    table: str  # in schema podmod, with the columns the module docstring lists
    lock_class: int  # (lock_class, id % 2**31): held by whoever works on that unit
    queue: str  # one of queue.QUEUE_NAMES
    job_function: str  # one of queue.JOB_FUNCTIONS
    job_id_prefix: str  # job id: "<queue_prefix>-<job_id_prefix>-<id>"
    description: str  # the job's description, with {id}
    # SQL condition on the table's columns: the undone rows the reader leaves alone
    # (worked in the foreground, say); a constant of the code, never input.
    pending_condition: str = "true"
    # The job works for a while and may finish with the unit not done: the next job carries on.
    hands_over: bool = False
    attempts_column: str = "attempts"  # counts the unit's enqueues, for the back-off

    def job_id(self, config: Config, unit_id: int) -> str:
        return f"{config['queue_prefix']}-{self.job_id_prefix}-{unit_id}"

    def _table(self) -> sql.Identifier:
        return sql.Identifier("podmod", self.table)


def lock_key(unit_id: int) -> int:
    """The second half of a unit's advisory lock (PostgreSQL's two-key locks take 32-bit ints)."""
    return unit_id % 2**31


# ---------------------------------------------------------------------------------------------
# Reader side: enqueue what is not done


def enqueue(config: Config, rconn: redis.Redis, kind: Kind, unit_id: int) -> Any:
    """Put the job for one unit on its queue (replacing a dead job of that id)."""
    return queue.enqueue_durable(
        config,
        rconn,
        kind.queue,
        kind.job_function,
        unit_id,
        job_id=kind.job_id(config, unit_id),
        description=kind.description.format(id=unit_id),
    )


def enqueue_pending(
    config: Config, state: psycopg.Connection, rconn: redis.Redis, kind: Kind
) -> list[int]:
    """Enqueue the job of every undone unit whose job is missing, failed for good, finished without
    the unit done (after a back-off growing with its attempts; at once for a kind that hands over),
    or started by a worker that died. Returns the ids enqueued."""
    rows = state.execute(
        sql.SQL(
            "SELECT id, {attempts} AS attempts, enqueued_at,"
            " now() - coalesce(enqueued_at, created_at) AS waited"
            " FROM {table} WHERE done_at IS NULL AND ({condition}) ORDER BY id"
        ).format(
            attempts=sql.Identifier(kind.attempts_column),
            table=kind._table(),
            condition=sql.SQL(kind.pending_condition),
        )
    ).fetchall()
    state.commit()
    if not rows:
        return []
    chosen = _needing_a_job(config, state, rconn, kind, rows)
    for unit_id in chosen:
        enqueue(config, rconn, kind, unit_id)
    if chosen:
        state.execute(
            sql.SQL(
                "UPDATE {table} SET enqueued_at = now(), {attempts} = {attempts} + 1"
                " WHERE id = ANY(%s)"
            ).format(table=kind._table(), attempts=sql.Identifier(kind.attempts_column)),
            (chosen,),
        )
        state.commit()
    return chosen


def _needing_a_job(
    config: Config,
    state: psycopg.Connection,
    rconn: redis.Redis,
    kind: Kind,
    rows: list[dict[str, Any]],
) -> list[int]:
    grace = config["reader.restart_grace"]
    statuses = queue.job_statuses(rconn, [kind.job_id(config, r["id"]) for r in rows], grace=grace)
    chosen = []
    for row, (status, job) in zip(rows, statuses, strict=True):
        waited = row["waited"].total_seconds()
        if status in queue.LIVE_STATUSES:
            continue
        if status == JobStatus.STARTED:
            started = job.started_at.replace(tzinfo=UTC) if job and job.started_at else None
            running_for = (datetime.now(UTC) - started).total_seconds() if started else waited
            if running_for < grace or held_elsewhere(state, kind, row["id"]):
                continue
        elif status == JobStatus.FINISHED and kind.hands_over:
            pass  # its job did its share; the next one carries on
        elif (
            status is not None
            and row["enqueued_at"] is not None
            and waited < grace * 2 ** min(row["attempts"], MAX_BACKOFF_DOUBLINGS)
        ):
            continue  # finished without marking it done, or failed: back off
        chosen.append(row["id"])
    return chosen


def record_batches(
    state: psycopg.Connection,
    kind: Kind,
    ids_column: str,
    ids: list[int],
    size: int,
    **fixed: Any,
) -> list[int]:
    """Record `ids` as units of `size` ids each (in `ids_column`, beside the `fixed` columns),
    inside the caller's transaction; returns the new units' ids. Their jobs are enqueued after."""
    columns = [*fixed, ids_column]
    statement = sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id").format(
        table=kind._table(),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    return [
        state.execute(statement, (*fixed.values(), ids[start : start + size])).fetchone()["id"]
        for start in range(0, len(ids), size)
    ]


def held_elsewhere(state: psycopg.Connection, kind: Kind, unit_id: int) -> bool:
    """Whether another session holds the unit's lock (a worker is on it)."""
    key = (kind.lock_class, lock_key(unit_id))
    row = state.execute("SELECT pg_try_advisory_lock(%s, %s) AS free", key).fetchone()
    if row["free"]:
        state.execute("SELECT pg_advisory_unlock(%s, %s)", key)
    state.commit()
    return not row["free"]


# ---------------------------------------------------------------------------------------------
# Worker side: one worker per unit, done once


def lock(state: psycopg.Connection, kind: Kind, unit_id: int) -> None:
    """Take the unit's lock for this session (waiting for a worker already on it); it is held
    until the connection closes, so a worker that dies lets it go with its connection."""
    state.execute("SELECT pg_advisory_lock(%s, %s)", (kind.lock_class, lock_key(unit_id)))
    state.commit()


def claim(
    state: psycopg.Connection, kind: Kind, unit_id: int, columns: tuple[str, ...]
) -> dict[str, Any] | None:
    """Take the unit's lock and read its columns; None when it is done (or does not exist)."""
    lock(state, kind, unit_id)
    row = state.execute(
        sql.SQL("SELECT {columns}, done_at FROM {table} WHERE id = %s").format(
            columns=sql.SQL(", ").join(map(sql.Identifier, columns)), table=kind._table()
        ),
        (unit_id,),
    ).fetchone()
    state.commit()
    if row is None or row["done_at"] is not None:
        return None
    return row


def mark_done(state: psycopg.Connection, kind: Kind, unit_id: int, **results: Any) -> None:
    """Mark the unit done, with its result columns, inside the transaction storing its work."""
    assignments = [sql.SQL("done_at = now()")] + [
        sql.SQL("{} = %s").format(sql.Identifier(column)) for column in results
    ]
    state.execute(
        sql.SQL("UPDATE {table} SET {assignments} WHERE id = %s").format(
            table=kind._table(), assignments=sql.SQL(", ").join(assignments)
        ),
        (*results.values(), unit_id),
    )


def through_outages(
    work: Callable[[], T],
    *,
    name: str,
    give_up_after: float,
    max_pause: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run idempotent `work` (which opens its own connections) until it succeeds, starting it
    again whenever the database connection is lost, with a pause growing from 0.5 s to `max_pause`;
    after `give_up_after` seconds of outage the last error is raised. Other errors are raised at
    once.

    A job that fails on a lost connection would otherwise burn its retries (RQ waits 2, 10, then
    60 s) and then the reader's back-off, so a backlog could sit idle for minutes after PostgreSQL
    came back; this way it resumes within `max_pause` of the database answering again.
    """
    started = time.monotonic()
    pause = 0.5
    while True:
        try:
            return work()
        except Exception as error:
            if not connection_lost(error) or time.monotonic() - started >= give_up_after:
                raise
            log.warning(
                "%s: the database connection was lost (%s); trying again in %.1f s",
                name,
                first_line(error),
                pause,
            )
            sleep(pause)
            pause = min(pause * 2, max_pause)


# ---------------------------------------------------------------------------------------------
# Feeds: ids read above a watermark, the missing ones below it watched as gaps


@dataclass(frozen=True)
class Feed:
    """A pod table's ids read in order above a watermark (podmod.watermarks), with the ids missing
    below it kept in a gap table (`gap_column`, and `scope_column` = `scope` where one gap table
    serves several feeds)."""

    watermark: str
    gap_table: str
    gap_column: str
    scope_column: str | None = None
    scope: str | None = None

    def _gaps(self) -> sql.Identifier:
        return sql.Identifier("podmod", self.gap_table)

    def _where(self) -> tuple[sql.Composable, tuple[Any, ...]]:
        if self.scope_column is None:
            return sql.SQL("true"), ()
        return sql.SQL("{} = %s").format(sql.Identifier(self.scope_column)), (self.scope,)


def holes(previous: int, ids: list[int]) -> list[int]:
    """Ids between the old watermark and the highest id read that were not there."""
    missing: list[int] = []
    expected = previous + 1
    for unit_id in ids:
        if unit_id > expected and unit_id - expected <= MAX_GAP:
            missing.extend(range(expected, unit_id))
        expected = unit_id + 1
    return missing


def gaps(state: psycopg.Connection, feed: Feed) -> list[int]:
    """The ids of a feed watched as gaps, lowest first."""
    where, params = feed._where()
    column = sql.Identifier(feed.gap_column)
    return [
        row[feed.gap_column]
        for row in state.execute(
            sql.SQL("SELECT {column} FROM {gaps} WHERE {where} ORDER BY {column}").format(
                column=column, gaps=feed._gaps(), where=where
            ),
            params,
        )
    ]


def watch_gaps(state: psycopg.Connection, feed: Feed, ids: list[int]) -> None:
    """Watch these ids as gaps (those watched already stay as they are)."""
    if not ids:
        return
    columns = [sql.Identifier(feed.gap_column)]
    values = [sql.SQL("unnest(%s::integer[])")]
    params: tuple[Any, ...] = (ids,)
    if feed.scope_column is not None:
        columns.insert(0, sql.Identifier(feed.scope_column))
        values.insert(0, sql.SQL("%s"))
        params = (feed.scope, ids)
    state.execute(
        sql.SQL("INSERT INTO {gaps} ({columns}) SELECT {values} ON CONFLICT DO NOTHING").format(
            gaps=feed._gaps(),
            columns=sql.SQL(", ").join(columns),
            values=sql.SQL(", ").join(values),
        ),
        params,
    )


def fill_gaps(state: psycopg.Connection, feed: Feed, ids: list[int]) -> None:
    """Stop watching these ids: they have committed and are batched now."""
    if not ids:
        return
    where, params = feed._where()
    state.execute(
        sql.SQL("DELETE FROM {gaps} WHERE {where} AND {column} = ANY(%s)").format(
            gaps=feed._gaps(), where=where, column=sql.Identifier(feed.gap_column)
        ),
        (*params, ids),
    )


def expire_gaps(state: psycopg.Connection, gap_table: str, timeout: float) -> int:
    """Give up on the gaps of a gap table (every feed it serves) watched for `timeout` seconds;
    returns how many."""
    return len(
        state.execute(
            sql.SQL(
                "DELETE FROM {gaps} WHERE first_seen_at < now() - make_interval(secs => %s)"
                " RETURNING 1"
            ).format(gaps=sql.Identifier("podmod", gap_table)),
            (timeout,),
        ).fetchall()
    )
