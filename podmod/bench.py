"""`podmod bench`: build a synthetic pod in a scratch database and measure podmod against it.

Everything runs for real: the diaspora* tables, `podmod read` and `podmod worker` as processes,
PostgreSQL and Redis (given by URL, or embedded ones started for the run). Figures are printed as a
table or JSON; nothing here is used by podmod at run time.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from podmod import store
from podmod.bench_sizes import Sizes
from podmod.db import connect
from podmod.fixtures import diaspora_schema_sql

POPULATE_SQL = """
INSERT INTO pods (host, ssl, created_at, updated_at, port, status)
SELECT 'pod' || n || '.example', true, now(), now(), -1, 1 FROM generate_series(1, %(pods)s) n;

-- Local people own a user; remote people belong to a pod.
INSERT INTO users (id, username, email, created_at, updated_at, getting_started)
SELECT n, 'user' || n, 'user' || n || '@mail.example', now(), now(), false
FROM generate_series(1, %(local)s) n;
INSERT INTO people (id, guid, diaspora_handle, serialized_public_key, owner_id, pod_id,
                    created_at, updated_at)
SELECT n, md5('person' || n),
       CASE WHEN n <= %(local)s THEN 'user' || n || '@bench.example'
            ELSE 'remote' || n || '@pod' || (1 + n %% %(pods)s) || '.example' END,
       'placeholder key',
       CASE WHEN n <= %(local)s THEN n END,
       CASE WHEN n > %(local)s THEN 1 + n %% %(pods)s END,
       now(), now()
FROM generate_series(1, %(people)s) n;
SELECT setval('users_id_seq', %(local)s);
SELECT setval('people_id_seq', %(people)s);

INSERT INTO posts (author_id, public, guid, type, text, created_at, updated_at)
SELECT 1 + (n::bigint * 7919) %% %(people)s, true, md5('post' || n), 'StatusMessage',
       'Placeholder post number ' || n || ' with some ordinary words in it.',
       now() - (n || ' seconds')::interval, now()
FROM generate_series(1, %(posts)s) n;
INSERT INTO comments (text, commentable_id, author_id, guid, created_at, updated_at)
SELECT 'Placeholder comment ' || n, 1 + n %% %(posts)s, 1 + (n::bigint * 104729) %% %(people)s,
       md5('comment' || n), now(), now()
FROM generate_series(1, %(comments)s) n;
"""

# Reports concentrate on a few thousand items (as real reports do), a fifth of them on comments;
# every reporter is a local user.
REPORTS_SQL = """
INSERT INTO reports (item_id, item_type, reviewed, text, created_at, updated_at, user_id)
SELECT CASE WHEN n %% 5 = 0 THEN 1 + (n::bigint * 31) %% %(hot_comments)s
            ELSE 1 + (n::bigint * 17) %% %(hot_posts)s END,
       CASE WHEN n %% 5 = 0 THEN 'Comment' ELSE 'Post' END,
       false, 'Placeholder reason ' || n, now(), now(), 1 + n %% %(local)s
FROM generate_series(1, %(reports)s) n;
"""


@dataclass
class Scratch:
    """A scratch diaspora* database and a Redis database for one benchmark run."""

    database_url: str
    redis_url: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODMOD_")}
        env.update(
            PODMOD_CONFIG=os.devnull,
            PODMOD_DATABASE_URL=self.database_url,
            PODMOD_REDIS_URL=self.redis_url,
            PODMOD_LOG_LEVEL="WARNING",
        )
        env.update(extra)
        return env


def _database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


@contextmanager
def servers(server_url: str | None, redis_url: str | None) -> Iterator[tuple[str, str]]:
    """The given PostgreSQL server and Redis database, or embedded ones for the run."""
    started = []
    workdir = Path(tempfile.mkdtemp(prefix="podmod-bench-"))
    try:
        if server_url is None:
            from podmod.embedded import start_postgres

            postgres = start_postgres(workdir / "pg")
            started.append(postgres)
            server_url = postgres.url()
        if redis_url is None:
            from podmod.embedded import start_redis

            server = start_redis(workdir / "redis")
            started.append(server)
            redis_url = server.url(db=1)
        yield server_url, redis_url
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def scratch(server_url: str | None, redis_url: str | None) -> Iterator[Scratch]:
    """Create a scratch database (dropped afterwards) on the given or an embedded server."""
    with servers(server_url, redis_url) as (server_url, redis_url):
        name = f"podmod_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        redis.Redis.from_url(redis_url).flushdb()
        try:
            yield Scratch(_database_url(server_url, name), redis_url)
        finally:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            redis.Redis.from_url(redis_url).flushdb()


def build_pod(url: str, *, people: int, posts: int, comments: int, reports: int) -> None:
    local = max(people // 4, 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(diaspora_schema_sql())
        psycopg.ClientCursor(conn).execute(  # client-side binding: several statements at once
            POPULATE_SQL,
            {"pods": 300, "local": local, "people": people, "posts": posts, "comments": comments},
        )
        if reports:
            add_reports(conn, reports, local=local, posts=posts, comments=comments)
        conn.execute("VACUUM ANALYZE")
        with connect(url, purpose="state") as state:
            store.migrate(state)


def add_reports(conn: psycopg.Connection, count: int, *, local: int, posts: int, comments: int):
    psycopg.ClientCursor(conn).execute(
        REPORTS_SQL,
        {
            "reports": count,
            "local": local,
            "hot_posts": min(posts, 20_000),
            "hot_comments": min(comments, 5_000),
        },
    )


def _spawn(args: list[str], env: dict[str, str], module: str = "podmod.cli") -> subprocess.Popen:
    """A process whose stderr goes to a file (a pipe nobody reads could fill and stall it)."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the process, in _stop)
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args], env=env, stdout=subprocess.DEVNULL, stderr=log
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def _stderr(process: subprocess.Popen) -> str:
    """The last of what a process wrote on stderr."""
    process.log.seek(0)  # type: ignore[attr-defined]
    return process.log.read().decode(errors="replace")[-2000:]  # type: ignore[attr-defined]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.log.close()  # type: ignore[attr-defined]


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
            reader = _spawn(["read"], env)
            pool = [_spawn(["worker"], env) for _ in range(workers)]
            reader_memory = MemoryWatch(reader)
            worker_memory = [MemoryWatch(worker) for worker in pool]
            try:
                done = _wait_for_signals(conn, reports, timeout=600, processes=[reader, *pool])
                elapsed = time.perf_counter() - started
            finally:
                for process in [reader, *pool]:
                    _stop(process)
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


def _naive_processes(sc: Scratch) -> list[subprocess.Popen]:
    """The naive baseline's reader and worker (podmod.bench_naive) as processes."""
    env = sc.env()
    interval = "0.5"  # podmod's default reader.interval
    return [
        _spawn(["reader", sc.database_url, sc.redis_url, interval], env, "podmod.bench_naive"),
        _spawn(["worker", sc.redis_url], env, "podmod.bench_naive"),
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
            reader, worker = processes = _naive_processes(sc)
            reader_memory, worker_memory = MemoryWatch(reader), MemoryWatch(worker)
            try:
                done = _wait_for_signals(conn, measured, timeout=900, processes=processes)
                elapsed = time.perf_counter() - started
            finally:
                for process in processes:
                    _stop(process)
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
    that leave a lost connection to RQ's retries (podmod.bench_naive)."""
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=2000, posts=20_000, comments=5000, reports=reports)
        env = sc.env(PODMOD_READER_BATCH_SIZE=str(max(reports // 40, 10)))  # 40 jobs
        if naive:
            worker = _spawn(["podmod-worker"], env, "podmod.bench_naive")
        else:
            worker = _spawn(["worker"], env)
        reader = _spawn(["read"], env)
        processes = [reader, worker]
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            try:
                deadline = time.monotonic() + 120
                while not conn.execute(
                    "SELECT EXISTS (SELECT FROM podmod.intake_batches)"
                ).fetchone()[0]:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the reader recorded no batch: {_stderr(reader)}")
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
            finally:
                for process in processes:
                    _stop(process)
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
                raise RuntimeError(f"a podmod process exited early: {_stderr(process)}")
        time.sleep(0.05)
    raise RuntimeError(f"only {count} of {expected} reports ingested within {timeout} s")


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
        processes = (
            _naive_processes(sc) if naive else [_spawn(["read"], env), _spawn(["worker"], env)]
        )
        inserted: dict[int, float] = {}
        seen: dict[int, float] = {}
        try:
            with (
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
        finally:
            for process in processes:
                _stop(process)
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


# The list benchmarks' pod: people only (a quarter local), the remote ones on `hosts` pods that are
# subdomains of an apex of their own (`s1.d7.example`; one host in fifty on port 8443), as many
# diaspora* pods are (`social.example.org`).
LIST_POD_SQL = """
INSERT INTO users (id, username, email, created_at, updated_at, getting_started)
SELECT n, 'user' || n, 'user' || n || '@mail.example', now(), now(), false
FROM generate_series(1, %(local)s) n;
INSERT INTO people (id, guid, diaspora_handle, serialized_public_key, owner_id, created_at,
                    updated_at)
SELECT n, md5('person' || n),
       CASE WHEN n <= %(local)s THEN 'user' || n || '@bench.example'
            ELSE 'remote' || n || '@' || podmod_bench_host(n %% %(hosts)s) END,
       'placeholder key', CASE WHEN n <= %(local)s THEN n END, now(), now()
FROM generate_series(1, %(people)s) n;
SELECT setval('users_id_seq', %(local)s);
SELECT setval('people_id_seq', %(people)s);
"""
LIST_HOST_SQL = """
CREATE FUNCTION podmod_bench_host(h integer) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 's' || (h % 3) || '.d' || h || '.example' || CASE WHEN h % 50 = 0 THEN ':8443' ELSE ''
    END
$$
"""


def bench_host(h: int) -> str:
    """The host of the list pod's remote people with `n % hosts == h` (as podmod_bench_host)."""
    return f"s{h % 3}.d{h}.example" + (":8443" if h % 50 == 0 else "")


@dataclass
class ListPod:
    people: int
    local: int
    hosts: int

    def remote_person(self, n: int) -> tuple[int, str]:
        """The id and handle of the n-th remote person (0-based)."""
        person = self.local + 1 + n
        return person, f"remote{person}@{bench_host(person % self.hosts)}"


def build_list_pod(url: str, *, people: int) -> ListPod:
    pod = ListPod(people=people, local=max(people // 4, 1), hosts=max(people // 30, 10))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(diaspora_schema_sql())
        conn.execute(LIST_HOST_SQL)
        psycopg.ClientCursor(conn).execute(
            LIST_POD_SQL, {"local": pod.local, "people": people, "hosts": pod.hosts}
        )
        conn.execute("DROP FUNCTION podmod_bench_host(integer)")
        conn.execute("VACUUM ANALYZE")
        with connect(url, purpose="state") as state:
            store.migrate(state)
    return pod


FloorRows = list[tuple[str, str, str]]


def write_account_list(path: Path, pod: ListPod, *, entries: int, matches: int) -> FloorRows:
    """podmod's format: `matches` entries name remote people of the pod, the rest nobody here.
    Returns the entry rows (value, label, comment) for the floor."""
    rows: FloorRows = []
    with path.open("w", encoding="utf-8") as out:
        out.write("kind,value,label,comment\n")
        for n in range(entries):
            handle = (
                pod.remote_person(n)[1] if n < matches else f"absent{n}@nowhere{n % 1000}.example"
            )
            out.write(f"account,{handle},bench,\n")
            rows.append((handle, "bench", ""))
    return rows


SEVERITIES = ("suspend",) * 7 + ("silence",) * 2 + ("noop",)
COMMENTS = ("", "spam", "iftas:hate-speech;spam", "placeholder reason, harassment")


def write_mastodon_list(path: Path, pod: ListPod, *, entries: int, matches: int) -> FloorRows:
    """Mastodon's domain-block export of `entries` rows: severities suspend, silence and noop
    7:2:1; one row in ten obfuscated (`d12**.ex**ple`, skipped); a third of the rows apex domains
    whose subdomains are pods (`d7.example` over `s1.d7.example`): the first of them the apexes of
    this pod's hosts, enough to cover about `matches` people, the others of pods elsewhere; the
    rest hosts named exactly. Returns the entry rows (value, severity, comment) for the floor."""
    remote = pod.people - pod.local
    per_host = max(remote // pod.hosts, 1)
    covered = min(max(matches // per_host, 1), pod.hosts)
    rows: FloorRows = []
    apexes = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n")
        for n in range(entries):
            severity = SEVERITIES[(n * 3) % 10]
            comment = COMMENTS[n % 4]
            if n % 10 == 9:
                out.write(f'd{n}**.ex**ple,{severity},false,false,"{comment}",true\n')
                continue
            if n % 3 == 0:
                h = apexes if apexes < covered else pod.hosts + apexes
                apexes += 1
                domain = f"d{h}.example"
            else:
                domain = f"e{n}.other{n % 1000}.example"
            out.write(f'{domain},{severity},false,false,"{comment}",false\n')
            rows.append((domain, severity, comment))
    return rows


def measure_floor(database_url: str, rows: FloorRows, *, join_on: str) -> dict[str, float]:
    """What any store of these entry rows costs at least, on the same server in the same run: the
    COPY of the rows (formatted by the client) into a table, an index on the value, and the join
    against the pod's people (`join_on`: the people's expression equal to the value)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE bench_floor (value text, second text, third text)")
        conn.commit()
        try:
            started = time.perf_counter()
            with conn.cursor().copy("COPY bench_floor (value, second, third) FROM STDIN") as copy:
                block: list[str] = []
                for value, second, third in rows:
                    block.append(f"{value}\t{second}\t{third}\n")
                    if len(block) == 20_000:
                        copy.write("".join(block))
                        block = []
                copy.write("".join(block))
            copied = time.perf_counter()
            conn.execute("CREATE INDEX ON bench_floor (value)")
            indexed = time.perf_counter()
            conn.execute("ANALYZE bench_floor")
            joined_rows = conn.execute(
                f"SELECT count(*) FROM bench_floor f JOIN people p ON {join_on} = f.value"
            ).fetchone()[0]
            joined = time.perf_counter()
            conn.commit()
        finally:
            conn.rollback()
            conn.execute("DROP TABLE bench_floor")
            conn.commit()
    return {
        "floor_seconds": round(joined - started, 3),
        "floor_copy_seconds": round(copied - started, 3),
        "floor_index_seconds": round(indexed - copied, 3),
        "floor_join_seconds": round(joined - indexed, 3),
        "floor_join_rows": joined_rows,
    }


SHAPES = {
    # shape: (file name, writer, the people's expression the floor joins on)
    "podmod": ("accounts.csv", write_account_list, "lower(p.diaspora_handle)"),
    "mastodon": (
        "domains.csv",
        write_mastodon_list,
        "split_part(lower(p.diaspora_handle), '@', 2)",
    ),
}


def run_measured(
    args: list[str], env: dict[str, str], timeout: float = 900
) -> tuple[int, str, str, float, int]:
    """Run a command: (exit code, stdout, stderr, seconds, its own peak resident KiB), the peak
    from wait4() of that one child, not the largest of every child this process ever had."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, env=env, stdout=out, stderr=err, text=True)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read(), err.read(), seconds, usage.ru_maxrss


def bench_list_sync(
    server_url: str | None,
    redis_url: str | None,
    *,
    shape: str,
    entries: int,
    people: int,
    matches: int,
) -> dict[str, Any]:
    """A signed list of `entries` rows in `shape`, served over loopback HTTPS, synced and applied
    on a pod of `people` people by `podmod lists sync` as a process, then re-synced unchanged;
    beside it the floor, and the apply again by podmod and by the naive baseline."""
    from podmod.lists import minisign
    from podmod.loopback import LoopbackServer

    file_name, write, join_on = SHAPES[shape]
    with scratch(server_url, redis_url) as sc, tempfile.TemporaryDirectory() as tmp:
        pod = build_list_pod(sc.database_url, people=people)
        workdir = Path(tmp)
        served = workdir / "served"
        served.mkdir()
        list_path = served / file_name
        floor_rows = write(list_path, pod, entries=entries, matches=matches)
        secret = minisign.SecretKey.generate()
        body = list_path.read_bytes()
        (served / f"{file_name}.minisig").write_text(minisign.sign(body, secret))
        with LoopbackServer(served, workdir) as server:
            config_path = workdir / "podmod.toml"
            config_path.write_text(
                f'[list_sync]\nca_bundle = "{server.cert_path}"\nmax_bytes = {len(body) + 1}\n'
                f'[[lists]]\nname = "bench"\nurl = "{server.url(file_name)}"\n'
                f'public_key = "{secret.public_key.to_string()}"\npolicy = "review"\n'
            )
            env = sc.env(PODMOD_CONFIG=str(config_path))
            timings, peaks = {}, {}
            for run in ("first", "unchanged"):
                code, out, err, timings[run], peaks[run] = run_measured(
                    [sys.executable, "-m", "podmod.cli", "lists", "sync", "--json"], env
                )
                if code != 0:
                    raise RuntimeError(f"lists sync failed: {out}{err}"[-2000:])
                if run == "first":
                    outcome = json.loads(out)[0]
        with psycopg.connect(sc.database_url) as conn:
            signals = conn.execute(
                "SELECT count(*) FROM podmod.signals WHERE kind = 'list'"
            ).fetchone()[0]
        floor = measure_floor(sc.database_url, floor_rows, join_on=join_on)
        apply = compare_apply(sc.database_url, config_path, env, exact=shape == "mastodon")
    sync_seconds = round(timings["first"], 2)
    return {
        "shape": shape,
        "entries": len(floor_rows),
        "rows": entries,
        "people": people,
        "hosts": pod.hosts,
        "list_bytes": len(body),
        "matches": signals,
        "status": outcome["status"],
        "format": outcome["format"],
        "sync_and_apply_seconds": sync_seconds,
        "unchanged_resync_seconds": round(timings["unchanged"], 2),
        "peak_memory_mib": round(peaks["first"] / 1024, 1),
        **floor,
        "times_the_floor": round(sync_seconds / floor["floor_seconds"], 2),
        **apply,
    }


def bench_lists(
    server_url: str | None,
    redis_url: str | None,
    *,
    entries: int,
    people: int,
    matches: int,
    shapes: tuple[str, ...] = tuple(SHAPES),
) -> dict[str, Any]:
    """The list sync benchmark in podmod's own format and as a Mastodon domain-block export."""
    return {
        shape: bench_list_sync(
            server_url, redis_url, shape=shape, entries=entries, people=people, matches=matches
        )
        for shape in shapes
    }


# Exact-host matching, for the cost of subdomain matching on the same data: each host answers only
# to its own name (with and without its port), as podmod matched before it covered subdomains.
EXACT_HOST_NAMES_SQL = """
CREATE TEMP TABLE host_names ON COMMIT DROP AS
SELECT h.host, split_part(h.host, ':', 1) AS name, 1 AS depth FROM pod_hosts h
UNION ALL
SELECT h.host, h.host, 1 FROM pod_hosts h WHERE strpos(h.host, ':') > 0
"""


def _timed_apply(config: Any, database_url: str, forget: str) -> tuple[int, float, float]:
    """(matches added, seconds for the whole apply, seconds until the pod entries' matches were
    found: the hosts streamed, their names made, the entries joined)."""
    from podmod.lists import apply

    found_at: list[float] = []
    execute_all = apply._execute_all

    def noting(state: Any, script: str, params: Any = None) -> None:
        execute_all(state, script, params)
        if script is apply.HOST_MATCHES_SQL:
            found_at.append(time.perf_counter())

    with (
        connect(database_url, purpose="state") as state,
        connect(database_url, purpose="pod") as pod,
    ):
        state.execute(forget)
        apply._execute_all = noting
        try:
            started = time.perf_counter()
            added = apply.match_people(config, pod, state, full=True).added
            seconds = time.perf_counter() - started
        finally:
            apply._execute_all = execute_all
        state.rollback()
        pod.rollback()
    return added, seconds, (found_at[0] - started) if found_at else seconds


def compare_apply(
    database_url: str, config_path: Path, env: dict[str, str], *, exact: bool = False
) -> dict[str, float]:
    """Apply the version in force again from scratch (its list signals deleted, in a transaction
    rolled back afterwards): podmod's set-based match_people against a Python loop over people;
    with `exact`, also podmod with exact-host matching instead of subdomains."""
    from podmod import bench_naive
    from podmod.config import load_config
    from podmod.lists import apply

    config = load_config(config_path, environ=env)
    forget = "DELETE FROM podmod.signals WHERE kind = 'list'"
    podmod_added, podmod_seconds, podmod_finding = _timed_apply(config, database_url, forget)
    result: dict[str, float] = {}
    if exact:
        subdomains = apply.HOST_NAMES_SQL
        apply.HOST_NAMES_SQL = EXACT_HOST_NAMES_SQL
        try:
            exact_added, exact_seconds, exact_finding = _timed_apply(config, database_url, forget)
        finally:
            apply.HOST_NAMES_SQL = subdomains
        result = {
            "exact_host_apply_matches": exact_added,
            "exact_host_apply_seconds": round(exact_seconds, 3),
            # the whole apply: subdomain matching also stores the matches only it finds
            "subdomain_cost": round(podmod_seconds / exact_seconds, 2),
            # finding the matches (hosts, their names, the join with the entries)
            "subdomain_finding_seconds": round(podmod_finding, 3),
            "exact_host_finding_seconds": round(exact_finding, 3),
            "subdomain_finding_cost": round(podmod_finding / exact_finding, 2),
        }
    with psycopg.connect(database_url) as state, psycopg.connect(database_url) as pod:
        state.execute(forget)
        started = time.perf_counter()
        naive_added = bench_naive.apply_by_python_loop(pod, state)
        naive_seconds = time.perf_counter() - started
        state.rollback()
        pod.rollback()
    if naive_added != podmod_added:
        raise RuntimeError(
            f"the baseline found {naive_added} list matches and podmod {podmod_added}: "
            "they must do the same work to be compared"
        )
    return {
        "apply_matches": podmod_added,
        "apply_seconds": round(podmod_seconds, 3),
        "naive_apply_seconds": round(naive_seconds, 3),
        **result,
    }


# Cases and signals straight into podmod's store, set-based: cases for the first `cases` people
# (half of them local), `signals` reports spread evenly over them in the last 30 days (three in ten
# already reviewed), and a list match on one case in twenty.
WEB_STORE_SQL = """
INSERT INTO podmod.cases (subject, person_id, account, local, status, created_at)
SELECT 'person:' || p.id, p.id, lower(p.diaspora_handle), p.owner_id IS NOT NULL, 'open',
       now() - interval '30 days'
FROM people p WHERE p.id <= %(cases)s ORDER BY p.id;

INSERT INTO podmod.signals (case_id, kind, report_id, item_type, item_id, item_guid,
                            reporter_user_id, reporter, reason, snapshot, reviewed, reviewed_at,
                            reviewed_by, occurred_at)
SELECT 1 + (n::bigint * 7919) %% %(cases)s, 'report', n, 'Post', 1 + n %% %(posts)s,
       md5('post' || (1 + n %% %(posts)s)), 1 + n %% %(local)s,
       'user' || (1 + n %% %(local)s) || '@bench.example', 'Placeholder reason ' || n,
       'Placeholder reported text number ' || n || ' with some ordinary words in it.',
       n %% 10 < 3, CASE WHEN n %% 10 < 3 THEN now() END, CASE WHEN n %% 10 < 3 THEN 'pod' END,
       now() - ((n::bigint * 104729) %% 2592000) * interval '1 second'
FROM generate_series(1, %(signals)s) n;

INSERT INTO podmod.lists (name, url, policy, current_version)
VALUES ('bench', 'file:///dev/null', 'review', 1);
INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind, entry_value, details,
                            occurred_at)
SELECT c.id, 'list', c.person_id, l.id, 'account', c.account,
       jsonb_build_object('list', 'bench', 'version', 1, 'entry', 'account:' || c.account,
                          'label', 'bench', 'policy', 'review'),
       now() - (c.id %% 2592000) * interval '1 second'
FROM podmod.cases c, podmod.lists l WHERE c.id %% 20 = 0;

SELECT podmod.refresh_cases(array(SELECT id FROM podmod.cases));
"""


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def _timed_gets(client, urls: list[str]) -> dict[str, float]:
    """Server time of GET requests through a Flask test client, after a few to warm up."""
    for url in urls[:5]:  # warm the pool and the plans
        client.get(url)
    samples = []
    for url in urls:
        begin = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - begin)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    return _percentiles(samples)


def _timed_locks(
    client, database_url: str, to_lock: list[tuple[int, int]], form: Callable[[int], dict]
) -> dict[str, float]:
    """Time each POST /cases/<id>/lock until the account's users.locked_at is committed."""
    samples = []
    with psycopg.connect(database_url, autocommit=True) as watch:
        for case_id, person_id in to_lock:
            begin = time.perf_counter()
            response = client.post(f"/cases/{case_id}/lock", data=form(person_id))
            locked = watch.execute(
                "SELECT u.locked_at IS NOT NULL FROM users u JOIN people p"
                " ON p.owner_id = u.id WHERE p.id = %s",
                (person_id,),
            ).fetchone()[0]
            samples.append(time.perf_counter() - begin)
            if response.status_code != 302 or not locked:
                raise RuntimeError(f"lock of case {case_id}: {response.status_code}")
    return _percentiles(samples)


def _timed_sign_ins(app, username: str, password: str, times: int) -> dict[str, float]:
    """Server time of POST /login with the right password until its redirect, each from a new
    browser (its own cookie jar), so every one is a whole sign-in."""
    samples = []
    for _ in range(times):
        client = app.test_client()
        client.get("/login")
        with client.session_transaction() as session:
            token = session["csrf"]
        form = {"username": username, "password": password, "csrf_token": token}
        begin = time.perf_counter()
        response = client.post("/login", data=form)
        samples.append(time.perf_counter() - begin)
        if response.status_code != 302:
            raise RuntimeError(f"bench sign-in failed ({response.status_code})")
    return _percentiles(samples)


def bench_web(
    server_url: str | None,
    redis_url: str | None,
    *,
    cases: int = 100_000,
    signals: int = 1_000_000,
    requests: int = 200,
) -> dict[str, object]:
    """Server time of the queue page (first and a deep keyset page), a case page, the lock click
    (until users.locked_at is committed) and a sign-in (bcrypt cost 10, as diaspora*), with `cases`
    open cases and `signals` signals in the store; requests go through the Flask app in this
    process (no network in the figures)."""
    import bcrypt

    from podmod.config import DIASPORA_PEPPER, load_config
    from podmod.web import create_app
    from podmod.web.queue import Cursor
    from podmod.web.signin import _devise_input

    people = max(cases * 2, 1000)
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=people, posts=people, comments=people // 4, reports=0)
        started = time.perf_counter()
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            psycopg.ClientCursor(conn).execute(
                WEB_STORE_SQL,
                {"cases": cases, "signals": signals, "posts": people, "local": people // 4},
            )
            password = uuid.uuid4().hex
            hashed = bcrypt.hashpw(
                _devise_input(password, DIASPORA_PEPPER), bcrypt.gensalt(10, b"2a")
            ).decode()
            conn.execute(
                "UPDATE users SET encrypted_password = %s WHERE id = %s", (hashed, people // 4)
            )
            conn.execute(
                "INSERT INTO roles (person_id, name, created_at, updated_at)"
                " VALUES (%s, 'admin', now(), now())",
                (people // 4,),
            )
            conn.execute("VACUUM ANALYZE")
            store_seconds = time.perf_counter() - started
            order = "priority DESC, last_signal_at DESC NULLS LAST, id DESC"
            deep = conn.execute(
                "SELECT id, priority, last_signal_at FROM podmod.cases WHERE status = 'open'"
                f" ORDER BY {order} OFFSET %s LIMIT 1",
                (int(cases * 0.9),),
            ).fetchone()
            top_cases = [
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM podmod.cases WHERE status = 'open' ORDER BY {order} LIMIT %s",
                    (requests,),
                )
            ]
            to_lock = conn.execute(
                "SELECT id, person_id FROM podmod.cases WHERE status = 'open' AND local"
                f" AND person_id <> %s ORDER BY {order} LIMIT %s",
                (people // 4, 2 * requests),
            ).fetchall()
            to_lock, to_lock_naive = to_lock[:requests], to_lock[requests:]
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM podmod.cases WHERE status = 'open'),"
                " (SELECT count(*) FROM podmod.signals)"
            ).fetchone()

        config = load_config(
            os.devnull,
            environ={
                "PODMOD_DATABASE_URL": sc.database_url,
                "PODMOD_REDIS_URL": sc.redis_url,
                "PODMOD_SECRET_KEY": uuid.uuid4().hex,
                "PODMOD_LOG_LEVEL": "WARNING",
            },
        )
        app = create_app(config)
        try:
            client = app.test_client()
            client.get("/login")
            with client.session_transaction() as session:
                token = session["csrf"]
            signed_in = client.post(
                "/login",
                data={"username": f"user{people // 4}", "password": password, "csrf_token": token},
            )
            if signed_in.status_code != 302:
                raise RuntimeError(f"bench sign-in failed ({signed_in.status_code})")
            with client.session_transaction() as session:
                token = session["csrf"]

            deep_cursor = Cursor.of(
                {"priority": deep[1], "last_signal_at": deep[2], "id": deep[0]}
            ).encode()
            figures: dict[str, object] = {
                "open_cases": counts[0],
                "signals": counts[1],
                "store_build_seconds": round(store_seconds, 1),
                "requests_each": requests,
                "queue_first_page": _timed_gets(client, ["/"] * requests),
                "queue_deep_keyset_page": _timed_gets(
                    client, [f"/?after={deep_cursor}"] * requests
                ),
                "queue_local_with_list_match": _timed_gets(
                    client, ["/?where=local&listed=1"] * requests
                ),
                "queue_search_by_handle": _timed_gets(
                    client, [f"/?q=remote{cases - n}" for n in range(requests)]
                ),
                "queue_search_by_part_of_a_handle": _timed_gets(
                    client, [f"/?q=ote{cases - n}%40" for n in range(requests)]
                ),
                "queue_search_by_pod": _timed_gets(
                    client, [f"/?q=%40pod{1 + n % 50}.example" for n in range(requests)]
                ),
                "case_page": _timed_gets(client, [f"/cases/{case_id}" for case_id in top_cases]),
            }
            figures["lock_click_to_locked_at_committed"] = _timed_locks(
                client, sc.database_url, to_lock, lambda _person_id: {"csrf_token": token}
            )
            figures["sign_in"] = _timed_sign_ins(
                app, f"user{people // 4}", password, max(requests // 4, 5)
            )
        finally:
            app.extensions["podmod"].close()
        figures["naive"] = naive_web(
            sc.database_url, deep_offset=int(cases * 0.9), cases=top_cases, to_lock=to_lock_naive
        )
        figures["memory"] = web_memory(
            sc,
            username=f"user{people // 4}",
            password=password,
            urls=["/", f"/?after={deep_cursor}", *(f"/cases/{case_id}" for case_id in top_cases)],
        )
    return figures


def naive_web(
    database_url: str, *, deep_offset: int, cases: list[int], to_lock: list[tuple[int, int]]
) -> dict[str, object]:
    """The same pages and clicks through the naive baseline's Flask app (podmod.bench_naive),
    timed the same way, in this process; the lock is timed until locked_at is committed."""
    from podmod import bench_naive

    client = bench_naive.create_app(database_url).test_client()
    n = max(len(cases) // 4, 5)  # the baseline's queue page is slow: fewer samples suffice
    return {
        "queue_first_page": _timed_gets(client, ["/"] * n),
        "queue_deep_page": _timed_gets(client, [f"/?offset={deep_offset}"] * n),
        "case_page": _timed_gets(client, [f"/cases/{case_id}" for case_id in cases]),
        "lock": _timed_locks(
            client, database_url, to_lock, lambda person_id: {"person_id": person_id}
        ),
    }


def web_memory(sc: Scratch, *, username: str, password: str, urls: list[str]) -> dict[str, float]:
    """Peak memory of `podmod serve` (waitress, 4 threads) while a signed-in admin loads these
    pages over HTTP, beside a bare Flask app under waitress serving the same number of requests."""
    import re

    import requests

    from podmod.embedded import free_port

    def serve_and_load(args: list[str], module: str, port: int, sign_in: bool) -> float:
        process = _spawn(args, sc.env(PODMOD_SECRET_KEY=uuid.uuid4().hex), module)
        watch = MemoryWatch(process)
        base = f"http://127.0.0.1:{port}"
        try:
            with requests.Session() as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        page = http.get(base + ("/login" if sign_in else "/"), timeout=5)
                        break
                    except requests.ConnectionError:
                        if time.monotonic() > deadline or process.poll() is not None:
                            raise RuntimeError(
                                f"{module} {args} did not start: {_stderr(process)}"
                            ) from None
                        time.sleep(0.1)
                if sign_in:
                    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
                    signed_in = http.post(
                        base + "/login",
                        data={"username": username, "password": password, "csrf_token": token},
                        headers={"Origin": base},
                        allow_redirects=False,
                    )
                    if signed_in.status_code != 302:
                        raise RuntimeError(f"web memory: sign-in failed ({signed_in.status_code})")
                for url in urls:
                    response = http.get(base + (url if sign_in else "/"), timeout=30)
                    if response.status_code != 200:
                        raise RuntimeError(f"web memory: GET {url}: {response.status_code}")
        finally:
            _stop(process)
        return watch.peak_mib

    port = free_port()
    podmod_mib = serve_and_load(
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--threads", "4"],
        "podmod.cli",
        port,
        sign_in=True,
    )
    port = free_port()
    bare_mib = serve_and_load(["flask", str(port)], "podmod.bench_naive", port, sign_in=False)
    return {"requests": len(urls), "web_peak_memory_mib": podmod_mib, "bare_flask_mib": bare_mib}


# ---------------------------------------------------------------------------------------------
# Content matching: `podmod bench scan` and `podmod bench pdq`.

BENCH_WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
)

# Ordinary text with what real posts carry (links, hashtags, accents, markdown), and planted
# matches: one post in a thousand holds a listed phrase, one a listed link, one a listed hashtag.
SCAN_TEXT_SQL = """
UPDATE posts SET text = text || CASE id %% 10
    WHEN 0 THEN ' More at https://site' || (id %% 1000) || '.example/page/' || id
                || ' #topic' || (id %% 500)
    WHEN 1 THEN ' Café crème numéro ' || id || ' — déjà vu, ÉTÉ'
    WHEN 2 THEN ' [a link](https://www.host' || (id %% 300) || '.example/a?b=' || id || ')'
    WHEN 3 THEN ' placeholder phrase without a number, and placeholder words'
    ELSE '' END
  || CASE id %% 1000
    WHEN 0 THEN ' then placeholder phrase ' || (id %% %(phrases)s) || ' '
                || (%(words)s::text[])[1 + (id %% %(phrases)s) %% 26]
    WHEN 500 THEN ' see https://listed' || (id %% %(urls)s) || '.example/offer'
    WHEN 250 THEN ' #benchtag' || (id %% %(hashtags)s)
    ELSE '' END;
UPDATE comments SET text = text || CASE id %% 4
    WHEN 0 THEN ' https://site' || (id %% 1000) || '.example/ #topic' || (id %% 500)
    WHEN 1 THEN ' Ça va, naïve café?'
    ELSE '' END;
INSERT INTO profiles (diaspora_handle, first_name, last_name, bio, location, person_id,
                      created_at, updated_at)
SELECT diaspora_handle, 'Person', 'Number ' || id,
       'Placeholder bio of person ' || id || ', likes #topic' || (id %% 500)
           || ' and https://home' || id || '.example/',
       'Placeholder Town ' || (id %% 100), id, now(), now()
FROM people;
"""

PLANTED_SQL = "SELECT count(*) FILTER (WHERE id % 1000 IN (0, 250, 500)) FROM posts"


def _write_content_list(path: Path, *, phrases: int, hashtags: int, urls: int, pdq: int) -> int:
    """The benchmark's list: placeholder phrases, hashtags, links and random PDQ hashes."""
    import random

    rng = random.Random(7)  # noqa: S311 (benchmark data, not a secret)
    with path.open("w", encoding="utf-8") as out:
        out.write("kind,value,label,comment\n")
        for n in range(phrases):
            out.write(f"phrase,placeholder phrase {n} {BENCH_WORDS[n % 26]},bench,\n")
        for n in range(hashtags):
            out.write(f"hashtag,#benchtag{n},bench,\n")
        for n in range(urls):
            out.write(f"url,https://listed{n}.example/{'offer' if n % 2 else ''},bench,\n")
        for _ in range(pdq):
            out.write(f"pdq,{rng.getrandbits(256):064x},bench,\n")
    return phrases + hashtags + urls + pdq


class MemoryWatch:
    """The peak resident memory of a process and its children (RQ's work horses), polled from
    /proc while it runs."""

    def __init__(self, process: subprocess.Popen) -> None:
        import threading

        self.process = process
        self.peak_kib = 0
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    @staticmethod
    def _rss_kib(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _watch(self) -> None:
        pid = self.process.pid
        while self.process.poll() is None:
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            for each in [pid, *map(int, children)]:
                self.peak_kib = max(self.peak_kib, self._rss_kib(each))
            time.sleep(0.02)

    @property
    def peak_mib(self) -> float:
        self.thread.join()
        return round(self.peak_kib / 1024, 1)


def bench_scan(
    server_url: str | None,
    redis_url: str | None,
    *,
    posts: int,
    phrases: int,
    hashtags: int,
    urls: int,
    pdq: int,
) -> dict[str, object]:
    """`podmod scan --backfill` as a process on a pod with `posts` posts (and comments and
    profiles), with `phrases` phrases, `hashtags` hashtags, `urls` links and `pdq` PDQ hashes in
    force; then a worker scanning new posts with the same lists loaded, for its memory."""
    import json

    people = max(posts // 10, 1000)
    comments = posts // 4
    with scratch(server_url, redis_url) as sc, tempfile.TemporaryDirectory() as tmp:
        build_pod(sc.database_url, people=people, posts=posts, comments=comments, reports=0)
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            psycopg.ClientCursor(conn).execute(
                SCAN_TEXT_SQL,
                {
                    "phrases": phrases,
                    "hashtags": hashtags,
                    "urls": urls,
                    "words": list(BENCH_WORDS),
                },
            )
            conn.execute("VACUUM ANALYZE posts, comments, profiles")  # not podmod's own tables
            planted = conn.execute(PLANTED_SQL).fetchone()[0]
        list_path = Path(tmp) / "content.csv"
        entries = _write_content_list(
            list_path, phrases=phrases, hashtags=hashtags, urls=urls, pdq=pdq
        )
        config_path = Path(tmp) / "podmod.toml"
        config_path.write_text(
            f"[list_sync]\nmax_bytes = {list_path.stat().st_size + 1}\n"
            f'[[lists]]\nname = "bench"\nurl = "{list_path.as_uri()}"\npolicy = "review"\n'
        )
        env = sc.env(PODMOD_CONFIG=str(config_path))

        def podmod_cli(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
            done = subprocess.run(
                [sys.executable, "-m", "podmod.cli", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"podmod {' '.join(args)} failed: {(done.stdout + done.stderr)[-2000:]}"
                )
            return done

        started = time.perf_counter()
        podmod_cli("lists", "sync")
        sync_seconds = time.perf_counter() - started

        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "scan", "--backfill", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        backfill_memory = MemoryWatch(process)
        stdout, stderr = process.communicate(timeout=3600)
        backfill_seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"podmod scan --backfill failed: {stderr[-2000:]}")
        [run] = json.loads(stdout)
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            signals = conn.execute(
                "SELECT count(*) FROM podmod.signals WHERE kind = 'content'"
            ).fetchone()[0]
            post_signals = conn.execute(
                "SELECT count(DISTINCT item_id) FROM podmod.signals WHERE kind = 'content'"
                " AND item_type = 'Post'"
            ).fetchone()[0]
            # New posts for a worker: its memory with every list loaded.
            podmod_cli("read", "--once")
            conn.execute(
                "INSERT INTO posts (author_id, public, guid, type, text, created_at, updated_at)"
                " SELECT 1 + n %% 100, true, md5('new' || n), 'StatusMessage',"
                " 'New placeholder phrase 7 ' || %s || ' post ' || n, now(), now()"
                " FROM generate_series(1, 2000) n",
                (BENCH_WORDS[7],),
            )
            podmod_cli("read", "--once")
            worker = _spawn(["worker", "--burst"], env)
            worker_memory = MemoryWatch(worker)
            worker.wait(timeout=900)
            _stop(worker)
            new_signals = conn.execute(
                "SELECT count(*) FROM podmod.signals WHERE kind = 'content'"
                " AND item_id > %s AND item_type = 'Post'",
                (posts,),
            ).fetchone()[0]
    post_seconds = run["table_seconds"].get("Post") or backfill_seconds
    post_items = run["tables"]["Post"]["items"]
    return {
        "posts": posts,
        "comments": comments,
        "profiles": people,
        "entries": {
            "phrase": phrases,
            "hashtag": hashtags,
            "url": urls,
            "pdq": pdq,
            "total": entries,
        },
        "list_sync_seconds": round(sync_seconds, 1),
        "backfill_seconds": round(backfill_seconds, 2),
        "backfill_seconds_by_table": run["table_seconds"],
        "posts_per_second": round(post_items / post_seconds),
        "items_per_second_overall": round(run["items"] / backfill_seconds),
        "planted_post_matches": planted,
        "posts_matched": post_signals,
        "content_signals": signals,
        "backfill_peak_memory_mib": backfill_memory.peak_mib,
        "worker_new_post_matches": new_signals,
        "worker_peak_memory_mib": worker_memory.peak_mib,
    }


def bench_pdq(*, hashes: int, lookups: int, images: int) -> dict[str, object]:
    """PDQ: a lookup of one hash (and of one photo's 8 orientations) among `hashes` list hashes,
    and hashing a 1-megapixel JPEG (decode, 8 orientations, SHA-256)."""
    import io
    import random

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    from podmod.matching.images import hash_image
    from podmod.matching.matcher import MatcherBuilder

    rng = random.Random(11)  # noqa: S311 (benchmark data, not a secret)
    started = time.perf_counter()
    builder = MatcherBuilder()
    values = [f"{rng.getrandbits(256):064x}" for _ in range(hashes)]
    for value in values:
        builder.add(1, "bench", "pdq", value, "bench", 1)
    matcher = builder.build()
    build_seconds = time.perf_counter() - started

    def near(value: str, flips: int) -> np.ndarray:
        number = int(value, 16)
        for bit in rng.sample(range(256), flips):
            number ^= 1 << bit
        return np.frombuffer(bytes.fromhex(f"{number:064x}"), dtype=">u8").astype(np.uint64)

    queries = [
        near(values[rng.randrange(hashes)], rng.randrange(0, 40))
        if n % 2
        else np.frombuffer(rng.randbytes(32), dtype=">u8").astype(np.uint64)
        for n in range(lookups)
    ]
    single, found = [], 0
    for query in queries:
        begin = time.perf_counter()
        rows, _ = matcher.pdq.search(query, 31)
        single.append(time.perf_counter() - begin)
        found += len(rows)
    photo = []
    for n in range(0, lookups, 8):
        block = np.stack(queries[n : n + 8])
        begin = time.perf_counter()
        matcher.pdq.search_any(block, 31)
        photo.append(time.perf_counter() - begin)

    image = Image.new("RGB", (1000, 1000), (90, 120, 150))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(1000), rng.randrange(1000)
        draw.ellipse(
            [x - 80, y - 60, x + 80, y + 60],
            fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)),
        )
    out = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(2)).save(out, "JPEG", quality=90)
    data = out.getvalue()
    hash_image(data)
    hashing = []
    for _ in range(images):
        begin = time.perf_counter()
        hash_image(data)
        hashing.append(time.perf_counter() - begin)
    return {
        "list_hashes": hashes,
        "index_build_seconds": round(build_seconds, 2),
        "index_mib": round(matcher.pdq.nbytes() / 2**20, 1),
        "lookups": lookups,
        "matches_found": found,
        "lookup_one_hash": _percentiles(single),
        "lookup_one_photo_8_orientations": _percentiles(photo),
        "hash_1_megapixel_jpeg": _percentiles(hashing) | {"bytes": len(data)},
        "hash_49_megapixel_png": large_photo_cost("PNG"),
        "hash_49_megapixel_jpeg": large_photo_cost("JPEG"),
    }


_HASH_ONE = """
import re, sys, time
import numpy, pdqhash, PIL.Image, PIL.JpegImagePlugin, PIL.PngImagePlugin
from podmod.matching.images import hash_image
def peak():  # VmHWM: this process's own peak (ru_maxrss carries the parent's over exec)
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1]) / 1024
data = open(sys.argv[1], "rb").read()
before = peak()
started = time.perf_counter()
hash_image(data)
print(time.perf_counter() - started, peak() - before)
"""


def large_photo_cost(fmt: str, side: int = 7000) -> dict[str, float]:
    """Seconds and memory (MiB the process grew by) to hash one square photo of one colour, `side`
    pixels wide: a file of a few hundred kB at the pixel limit, in a fresh process so the peak is
    its own."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"large.{fmt.lower()}"
        Image.new("RGB", (side, side), (120, 30, 200)).save(path, fmt)
        done = subprocess.run(
            [sys.executable, "-c", _HASH_ONE, str(path)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        seconds, mib = (float(value) for value in done.stdout.split())
        return {"seconds": round(seconds, 2), "grew_mib": round(mib), "bytes": path.stat().st_size}


# ---------------------------------------------------------------------------------------------
# `podmod bench` on its own: every figure beside its naive baseline, in one run.


@dataclass
class Figure:
    """One measured figure of podmod beside the naive baseline measured in the same run."""

    name: str
    unit: str
    podmod: float
    baseline: float | None
    baseline_name: str
    higher_is_better: bool = False
    target: str = ""
    relation: str = ""  # set: the baseline is a bound, and the table says "1.8 times the floor"

    @property
    def ratio(self) -> float | None:
        """How many times better podmod is (above 1) or worse (below 1) than the baseline."""
        if self.baseline is None or not self.podmod or not self.baseline:
            return None
        if self.higher_is_better:
            return self.podmod / self.baseline
        return self.baseline / self.podmod

    def as_json(self) -> dict[str, object]:
        ratio = self.ratio
        return {
            "name": self.name,
            "unit": self.unit,
            "podmod": self.podmod,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "higher_is_better": self.higher_is_better,
            "ratio": None if ratio is None else round(ratio, 2),
            "target": self.target,
            "relation": self.relation,
        }


def run_all(server_url: str | None, redis_url: str | None, sizes: Sizes, progress=print) -> dict:
    """Every benchmark with its baseline; returns {"sizes", "figures", "details", "seconds"}."""
    began = time.perf_counter()
    details: dict[str, object] = {}
    with servers(server_url, redis_url) as (server_url, redis_url):
        progress(f"intake: {sizes.reports:,} reports, podmod")
        details["intake"] = bench_intake(
            server_url, redis_url, reports=sizes.reports, posts=sizes.posts
        )
        progress(f"intake: naive baseline, first {sizes.baseline_reports:,} reports")
        details["intake_naive"] = bench_intake_naive(
            server_url,
            redis_url,
            reports=sizes.reports,
            posts=sizes.posts,
            measured=sizes.baseline_reports,
        )
        progress(f"latency: {sizes.rate:g} reports/s for {sizes.seconds:g} s, podmod and naive")
        details["latency"] = bench_latency(
            server_url, redis_url, rate=sizes.rate, seconds=sizes.seconds, posts=sizes.posts
        )
        details["latency_naive"] = bench_latency(
            server_url,
            redis_url,
            rate=sizes.rate,
            seconds=sizes.seconds,
            posts=sizes.posts,
            naive=True,
        )
        progress(f"lists: {sizes.entries:,} entries on {sizes.people:,} people")
        details["lists"] = bench_lists(
            server_url,
            redis_url,
            entries=sizes.entries,
            people=sizes.people,
            matches=sizes.matches,
        )
        progress(f"web: {sizes.cases:,} open cases, {sizes.signals:,} signals")
        details["web"] = bench_web(
            server_url,
            redis_url,
            cases=sizes.cases,
            signals=sizes.signals,
            requests=sizes.requests,
        )
    return {
        "sizes": sizes.__dict__,
        "figures": [figure.as_json() for figure in figures_of(details, sizes)],
        "details": details,
        "seconds": round(time.perf_counter() - began, 1),
    }


def figures_of(details: dict, sizes: Sizes) -> list[Figure]:
    """The table: podmod's figure, the baseline's, and what the baseline is."""
    intake, naive = details["intake"], details["intake_naive"]
    latency, latency_naive = details["latency"], details["latency_naive"]
    lists, web = details["lists"], details["web"]
    per_report = "one RQ job per report, row-by-row inserts"
    return [
        Figure(
            f"intake throughput, backlog of {sizes.reports:,} reports",
            "reports/s",
            intake["reports_per_second"],
            naive["reports_per_second"],
            per_report + f" (first {naive['measured']:,} reports)",
            higher_is_better=True,
            target="100,000 in < 30 s",
        ),
        Figure(
            f"report → case latency p50 at {sizes.rate:g} reports/s",
            "s",
            latency["p50_seconds"],
            latency_naive["p50_seconds"],
            per_report,
        ),
        Figure(
            f"report → case latency p95 at {sizes.rate:g} reports/s",
            "s",
            latency["p95_seconds"],
            latency_naive["p95_seconds"],
            per_report + f" ({latency_naive['visible']} of {latency_naive['reports']} in time)",
            target="< 2 s",
        ),
        *list_figures(lists, sizes),
        Figure(
            f"queue page p95, {web['open_cases']:,} open cases",
            "ms",
            web["queue_first_page"]["p95_ms"],
            web["naive"]["queue_first_page"]["p95_ms"],
            "priority aggregated per request, OFFSET",
            target="< 50 ms",
        ),
        Figure(
            "queue page 90% deep p95",
            "ms",
            web["queue_deep_keyset_page"]["p95_ms"],
            web["naive"]["queue_deep_page"]["p95_ms"],
            "the same, OFFSET 90%",
            target="< 50 ms",
        ),
        Figure(
            "case page p95",
            "ms",
            web["case_page"]["p95_ms"],
            web["naive"]["case_page"]["p95_ms"],
            "a query per signal and item",
            target="< 50 ms",
        ),
        Figure(
            "lock click → locked_at committed p95",
            "ms",
            web["lock_click_to_locked_at_committed"]["p95_ms"],
            web["naive"]["lock"]["p95_ms"],
            "3 autocommitted writes",
            target="< 100 ms",
        ),
        Figure(
            "reader peak memory",
            "MiB",
            intake["reader_peak_memory_mib"],
            naive["reader_peak_memory_mib"],
            "naive reader (whole rows, one enqueue each)",
        ),
        Figure(
            "worker peak memory (worker and its work horse)",
            "MiB",
            intake["worker_peak_memory_mib"],
            naive["worker_peak_memory_mib"],
            "plain RQ worker running the naive job",
        ),
        Figure(
            "web peak memory (podmod serve, signed-in pages)",
            "MiB",
            web["memory"]["web_peak_memory_mib"],
            web["memory"]["bare_flask_mib"],
            "a bare Flask app under waitress",
        ),
    ]


def list_figures(lists: dict, sizes: Sizes) -> list[Figure]:
    """The list rows: apply beside the naive loop, sync + apply beside the floor (the COPY, index
    and join the same rows cost at least), subdomain matching beside exact-host matching."""
    own, mastodon = lists["podmod"], lists["mastodon"]
    size = f"{sizes.entries:,} × {sizes.people:,} people"
    floor = "floor: COPY of the entry rows, index on the value, join against the people"
    return [
        Figure(
            f"list apply, podmod format, {size}",
            "s",
            own["apply_seconds"],
            own["naive_apply_seconds"],
            "Python loop over people, a query each",
        ),
        Figure(
            f"list apply, Mastodon export (subdomains), {size}",
            "s",
            mastodon["apply_seconds"],
            mastodon["naive_apply_seconds"],
            "Python loop over people, a query each",
        ),
        Figure(
            f"list sync + apply as a process, podmod format, {size}",
            "s",
            own["sync_and_apply_seconds"],
            own["floor_seconds"],
            floor,
            relation="the floor",
        ),
        Figure(
            f"list sync + apply as a process, Mastodon export, {size}",
            "s",
            mastodon["sync_and_apply_seconds"],
            mastodon["floor_seconds"],
            floor,
            relation="the floor",
            target="< 2× the floor",
        ),
        Figure(
            "subdomain matching: finding the matches, Mastodon export",
            "s",
            mastodon["subdomain_finding_seconds"],
            mastodon["exact_host_finding_seconds"],
            "the same, matching exact hosts only",
            relation="exact-host",
            target="< 2× exact-host",
        ),
        Figure(
            "subdomain matching: the whole apply (storing the matches it finds)",
            "s",
            mastodon["apply_seconds"],
            mastodon["exact_host_apply_seconds"],
            "the same, matching exact hosts only (which finds none of them)",
            relation="exact-host",
        ),
    ]


def format_table(result: dict) -> str:
    """The figures as a plain-text table, ratios as "N times better" or "worse"."""

    def number(value: float | None) -> str:
        if value is None:
            return "—"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"

    rows = [("figure", "podmod", "naive baseline", "vs baseline", "target", "baseline is")]
    for figure in result["figures"]:
        ratio = figure["ratio"]
        if ratio is None:
            versus = "—"
        elif figure.get("relation"):
            versus = f"{figure['podmod'] / figure['baseline']:,.2f}× {figure['relation']}"
        elif ratio >= 1:
            versus = f"{ratio:,.1f}× better"
        else:
            versus = f"{1 / ratio:,.1f}× worse"
        rows.append(
            (
                figure["name"],
                f"{number(figure['podmod'])} {figure['unit']}",
                "—"
                if figure["baseline"] is None
                else f"{number(figure['baseline'])} {figure['unit']}",
                versus,
                figure["target"] or "",
                figure["baseline_name"],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"({result['seconds']} s in all)")
    return "\n".join(lines)
