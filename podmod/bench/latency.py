"""`podmod bench latency`: reports inserted at a steady rate while the reader and a worker run, and
how long until each one is a signal in podmod's store; the same for the naive baseline."""

from __future__ import annotations

import statistics
import time

import psycopg

from podmod.bench.intake import naive_processes
from podmod.bench.scratch import build_pod, scratch, spawn, stopping


def bench_latency(
    server_url: str | None,
    redis_url: str | None,
    *,
    rate: float,
    seconds: float,
    posts: int,
    naive: bool = False,
) -> dict[str, float]:
    """Reports inserted at `rate` per second while `podmod read` and one worker run (or, with
    `naive`, the naive baseline's reader and worker): how long until each one is a signal in
    podmod's store (what `podmod cases` shows). Reports still not visible 15 s after the last
    insert count with the time waited, so a pipeline that falls behind shows it."""
    people = max(posts // 10, 1000)
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=people, posts=posts, comments=posts // 4, reports=0)
        env = sc.env()
        processes = naive_processes(sc) if naive else [spawn(["read"], env), spawn(["worker"], env)]
        inserted: dict[int, float] = {}
        seen: dict[int, float] = {}
        with (
            stopping(processes),
            psycopg.connect(sc.database_url, autocommit=True) as pod,
            psycopg.connect(sc.database_url, autocommit=True) as watch,
        ):
            time.sleep(1.0)  # let both processes start
            total = int(rate * seconds)
            start = time.perf_counter()
            last_seen = 0
            n = 0
            while len(seen) < total and time.perf_counter() - start < seconds + 15:
                now = time.perf_counter()
                while n < total and now >= start + n / rate:
                    report_id = pod.execute(
                        "INSERT INTO reports (item_id, item_type, reviewed, text, created_at,"
                        " updated_at, user_id) VALUES (%s, 'Post', false, 'latency probe',"
                        " now(), now(), 1) RETURNING id",
                        (1 + n % posts,),
                    ).fetchone()[0]
                    inserted[report_id] = time.perf_counter()
                    n += 1
                for (report_id,) in watch.execute(
                    "SELECT report_id FROM podmod.signals WHERE kind = 'report'"
                    " AND report_id > %s ORDER BY report_id",
                    (last_seen,),
                ):
                    seen.setdefault(report_id, time.perf_counter())
                    last_seen = max(last_seen, report_id)
                time.sleep(0.01)
            ended = time.perf_counter()
    if not seen:
        raise RuntimeError("no report became visible; is the worker running?")
    latencies = sorted(seen.get(r, ended) - inserted[r] for r in inserted)
    return {
        "rate_per_second": rate,
        "reports": len(inserted),
        "visible": len(seen),
        "p50_seconds": round(statistics.median(latencies), 3),
        "p95_seconds": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
        "max_seconds": round(latencies[-1], 3),
    }
