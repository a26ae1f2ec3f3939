"""`podmod bench intake` and `podmod bench outage`: a backlog of reports ingested by `podmod read`
and `podmod worker` as processes, and the same through a database outage; beside each, the naive
baseline (podmod.bench.intake_naive) on the same backlog."""

from __future__ import annotations

import subprocess
import time

import psycopg

from podmod.bench.scratch import (
    MemoryWatch,
    Scratch,
    build_pod,
    scratch,
    spawn,
    stderr_tail,
    stopping,
)
from podmod.db import connect

NAIVE = "podmod.bench.intake_naive"  # the module the baseline's processes run


def bench_intake(
    server_url: str | None, redis_url: str | None, *, reports: int, posts: int, workers: int = 1
) -> dict[str, float]:
    """A backlog of `reports` on a pod with `posts` posts: time until every report is a signal,
    and the peak memory of the reader and of the workers meanwhile."""
    people = max(posts // 10, 1000)
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=people, posts=posts, comments=posts // 4, reports=reports)
        env = sc.env()
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            started = time.perf_counter()
            reader = spawn(["read"], env)
            pool = [spawn(["worker"], env) for _ in range(workers)]
            reader_memory = MemoryWatch(reader)
            worker_memory = [MemoryWatch(worker) for worker in pool]
            with stopping([reader, *pool]):
                done = _wait_for_signals(conn, reports, timeout=600, processes=[reader, *pool])
                elapsed = time.perf_counter() - started
            cases = conn.execute("SELECT count(*) FROM podmod.cases").fetchone()[0]
        reconcile_seconds, missing = _time_reconcile(sc.database_url)
        if missing:
            raise RuntimeError(f"reconcile found {missing} reports the intake had missed")
    return {
        "reports": reports,
        "posts": posts,
        "workers": workers,
        "ingested": done,
        "cases": cases,
        "seconds": round(elapsed, 2),
        "reports_per_second": round(done / elapsed, 1),
        "reconcile_seconds": reconcile_seconds,
        "reader_peak_memory_mib": reader_memory.peak_mib,
        "worker_peak_memory_mib": max(watch.peak_mib for watch in worker_memory),
    }


def _time_reconcile(database_url: str) -> tuple[float, int]:
    """The reader's full check of every report below the watermark, after the intake."""
    from podmod import intake

    with (
        connect(database_url, purpose="state") as state,
        connect(database_url, purpose="pod") as pod,
    ):
        started = time.perf_counter()
        missing = intake.reconcile(pod, state)
        return round(time.perf_counter() - started, 3), missing


def naive_processes(sc: Scratch) -> list[subprocess.Popen]:
    """The naive baseline's reader and worker (podmod.bench.intake_naive) as processes."""
    env = sc.env()
    interval = "0.5"  # podmod's default reader.interval
    return [
        spawn(["reader", sc.database_url, sc.redis_url, interval], env, NAIVE),
        spawn(["worker", sc.redis_url], env, NAIVE),
    ]


def bench_intake_naive(
    server_url: str | None, redis_url: str | None, *, reports: int, posts: int, measured: int
) -> dict[str, float]:
    """The naive baseline on the same backlog: one job per report, row-by-row writes. Its rate is
    measured over the first `measured` reports (it would take too long to drain a large backlog)."""
    people = max(posts // 10, 1000)
    measured = min(measured, reports)
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=people, posts=posts, comments=posts // 4, reports=reports)
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            started = time.perf_counter()
            reader, worker = processes = naive_processes(sc)
            reader_memory, worker_memory = MemoryWatch(reader), MemoryWatch(worker)
            with stopping(processes):
                done = _wait_for_signals(conn, measured, timeout=900, processes=processes)
                elapsed = time.perf_counter() - started
    return {
        "reports": reports,
        "measured": measured,
        "ingested": done,
        "seconds": round(elapsed, 2),
        "reports_per_second": round(done / elapsed, 1),
        "reader_peak_memory_mib": reader_memory.peak_mib,
        "worker_peak_memory_mib": worker_memory.peak_mib,
    }


def bench_outage(
    server_url: str | None,
    redis_url: str | None,
    *,
    reports: int,
    outage: float,
    naive: bool = False,
) -> dict[str, float]:
    """A database outage in the middle of an intake backlog: every podmod connection is cut every
    50 ms for `outage` seconds (what a PostgreSQL restart or a flapping network does); then the
    time from the last cut until intake resumed (a report stored) and until every report is a
    signal. `naive` runs the same worker with jobs
    that leave a lost connection to RQ's retries (podmod.bench.intake_naive)."""
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=2000, posts=20_000, comments=5000, reports=reports)
        env = sc.env(PODMOD_READER_BATCH_SIZE=str(max(reports // 40, 10)))  # 40 jobs
        worker = spawn(["podmod-worker"], env, NAIVE) if naive else spawn(["worker"], env)
        reader = spawn(["read"], env)
        processes = [reader, worker]
        with psycopg.connect(sc.database_url, autocommit=True) as conn, stopping(processes):
            deadline = time.monotonic() + 120
            while not conn.execute("SELECT EXISTS (SELECT FROM podmod.intake_batches)").fetchone()[
                0
            ]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the reader recorded no batch: {stderr_tail(reader)}")
                time.sleep(0.01)
            before = _signals(conn)
            cuts, ends = 0, time.monotonic() + outage
            while time.monotonic() < ends:
                cuts += conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name LIKE 'podmod-%%' AND pid <> pg_backend_pid()"
                    " AND datname = current_database()"  # (the server may be shared)
                ).fetchone()[0]
                time.sleep(0.05)
            over = time.perf_counter()
            during = _signals(conn) - before
            _wait_for_signals(conn, before + during + 1, timeout=600, processes=processes)
            resumed = time.perf_counter() - over
            done = _wait_for_signals(conn, reports, timeout=600, processes=processes)
            recovery = time.perf_counter() - over
    return {
        "reports": reports,
        "outage_seconds": outage,
        "connections_cut": cuts,
        "stored_before_outage": before,
        "stored_during_outage": during,
        "ingested": done,
        "resumed_seconds": round(resumed, 2),
        "recovery_seconds": round(recovery, 2),
    }


def compare_outage(
    server_url: str | None, redis_url: str | None, *, reports: int, outage: float
) -> dict[str, float]:
    """bench_outage for podmod and for the naive worker, on the same backlog and outage."""
    ours = bench_outage(server_url, redis_url, reports=reports, outage=outage)
    naive = bench_outage(server_url, redis_url, reports=reports, outage=outage, naive=True)
    return {
        **ours,
        "naive_resumed_seconds": naive["resumed_seconds"],
        "naive_recovery_seconds": naive["recovery_seconds"],
        "naive_stored_during_outage": naive["stored_during_outage"],
        "times_sooner": round(naive["recovery_seconds"] / max(ours["recovery_seconds"], 0.01), 1),
    }


def _signals(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM podmod.signals WHERE kind = 'report'").fetchone()[0]


def _wait_for_signals(
    conn: psycopg.Connection, expected: int, *, timeout: float, processes: list[subprocess.Popen]
) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = _signals(conn)
        if count >= expected:
            return count
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a podmod process exited early: {stderr_tail(process)}")
        time.sleep(0.05)
    raise RuntimeError(f"only {count} of {expected} reports ingested within {timeout} s")
