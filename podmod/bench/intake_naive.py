"""The naive baseline of the intake figures: the obvious way to write report intake, one RQ job per
report with row-by-row writes, producing the same cases and signals podmod does; and podmod's own
worker leaving a lost database connection to RQ's retries, for the outage figure. Nothing here runs
in production.

Run as `python -m podmod.bench.intake_naive reader|worker|podmod-worker ...`: the processes whose
rate, latency, memory and recovery podmod.bench.intake and podmod.bench.latency measure. It imports
little on purpose: the naive reader's and worker's memory are figures.
"""

from __future__ import annotations

import signal
import sys
import time

import psycopg
from psycopg.rows import dict_row

from podmod import pod_db

NAIVE_QUEUE = "bench-naive"
INGEST_JOB = "podmod.bench.intake_naive.ingest_one_report"


def ingest_one_report(database_url: str, report_id: int) -> bool:
    """The naive ingest job: one report, its own connection, one row at a time."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = pod_db.load_reports(conn, [report_id])
        if not rows:
            return False
        row = rows[0]
        if row["person_id"] is not None:
            subject = f"person:{row['person_id']}"
        else:
            subject = f"item:{row['item_type']}:{row['item_id']}"
        case = conn.execute(
            "SELECT id FROM podmod.cases WHERE subject = %s AND status = 'open'", (subject,)
        ).fetchone()
        if case is None:
            case = conn.execute(
                "INSERT INTO podmod.cases (subject, person_id, account, local)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (subject, row["person_id"], row["account"], row["local"]),
            ).fetchone()
        conn.execute(
            "INSERT INTO podmod.signals (case_id, kind, report_id, item_type, item_id, item_guid,"
            " item_missing, reporter_user_id, reporter, reason, snapshot, reviewed, occurred_at)"
            " VALUES (%s, 'report', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (report_id) WHERE kind = 'report' DO NOTHING",
            (
                case["id"],
                row["report_id"],
                row["item_type"],
                row["item_id"],
                row["item_guid"],
                row["item_missing"],
                row["reporter_user_id"],
                row["reporter"],
                row["reason"],
                row["root_text"] if row["post_type"] == "Reshare" else row["item_text"],
                row["reviewed"],
                row["reported_at"],
            ),
        )
        conn.execute("SELECT podmod.refresh_cases(%s)", ([case["id"]],))
        conn.commit()
    return True


def run_reader(database_url: str, redis_url: str, interval: float) -> None:
    """The naive reader: every `interval` seconds, fetch every new report row whole, and enqueue
    a job for each one. Runs until SIGTERM."""
    import redis
    from rq import Queue

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    queue = Queue(NAIVE_QUEUE, connection=redis.Redis.from_url(redis_url))
    last = 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not stopping:
            rows = conn.execute(
                "SELECT * FROM reports WHERE id > %s ORDER BY id", (last,)
            ).fetchall()
            for row in rows:
                queue.enqueue(INGEST_JOB, database_url, row[0])
                last = row[0]
                if stopping:
                    return
            time.sleep(interval)


def run_worker(redis_url: str) -> None:
    """A plain RQ worker (a fork per job, as RQ does by default) on the naive queue."""
    import redis
    from rq import Queue, Worker

    conn = redis.Redis.from_url(redis_url)
    Worker([Queue(NAIVE_QUEUE, connection=conn)], connection=conn).work(logging_level="WARNING")


def run_podmod_worker_leaving_outages_to_rq() -> None:
    """podmod's own worker, but its jobs do not start again when their database connection is
    lost: such a job fails into RQ's retries (2, 10, then 60 s later), as a plain RQ job does."""
    import worker.jobs
    from podmod import queue
    from podmod.config import load_config
    from podmod.logs import setup_logging

    worker.jobs.through_outages = lambda work, **_: work()
    config = load_config()
    setup_logging(config["log.level"])
    queue.run_worker(config)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "reader":
        run_reader(args[0], args[1], float(args[2]))
    elif command == "worker":
        run_worker(args[0])
    elif command == "podmod-worker":
        run_podmod_worker_leaving_outages_to_rq()
    else:
        raise SystemExit(f"unknown baseline process {command!r}")
