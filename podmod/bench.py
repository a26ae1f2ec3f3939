"""`podmod bench`: build a synthetic pod in a scratch database and measure podmod against it.

Everything runs for real: the diaspora* tables, `podmod read` and `podmod worker` as processes,
PostgreSQL and Redis (given by URL, or embedded ones started for the run). Figures are printed as a
table or JSON; nothing here is used by podmod at run time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from podmod import store
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
def scratch(server_url: str | None, redis_url: str | None) -> Iterator[Scratch]:
    """Create a scratch database (dropped afterwards) on the given or an embedded server."""
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
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


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


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "podmod.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bench_intake(
    server_url: str | None, redis_url: str | None, *, reports: int, posts: int, workers: int = 1
) -> dict[str, float]:
    """A backlog of `reports` on a pod with `posts` posts: time until every report is a signal."""
    people = max(posts // 10, 1000)
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=people, posts=posts, comments=posts // 4, reports=reports)
        env = sc.env()
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            started = time.perf_counter()
            reader = _spawn(["read"], env)
            pool = [_spawn(["worker"], env) for _ in range(workers)]
            try:
                done = _wait_for_signals(conn, reports, timeout=600, processes=[reader, *pool])
                elapsed = time.perf_counter() - started
            finally:
                for process in [reader, *pool]:
                    _stop(process)
            cases = conn.execute("SELECT count(*) FROM podmod.cases").fetchone()[0]
    return {
        "reports": reports,
        "posts": posts,
        "workers": workers,
        "ingested": done,
        "cases": cases,
        "seconds": round(elapsed, 2),
        "reports_per_second": round(done / elapsed, 1),
    }


def _wait_for_signals(
    conn: psycopg.Connection, expected: int, *, timeout: float, processes: list[subprocess.Popen]
) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = conn.execute(
            "SELECT count(*) FROM podmod.signals WHERE kind = 'report'"
        ).fetchone()[0]
        if count >= expected:
            return count
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"a podmod process exited early: {process.stderr.read().decode()[-2000:]}"
                )
        time.sleep(0.05)
    raise RuntimeError(f"only {count} of {expected} reports ingested within {timeout} s")


def bench_latency(
    server_url: str | None, redis_url: str | None, *, rate: float, seconds: float, posts: int
) -> dict[str, float]:
    """Reports inserted at `rate` per second while `podmod read` and one worker run: how long
    until each one is a signal in podmod's store (what `podmod cases` shows)."""
    people = max(posts // 10, 1000)
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=people, posts=posts, comments=posts // 4, reports=0)
        env = sc.env()
        reader = _spawn(["read"], env)
        worker = _spawn(["worker"], env)
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
                while len(seen) < total and time.perf_counter() - start < seconds + 30:
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
        finally:
            _stop(reader)
            _stop(worker)
    latencies = sorted(seen[r] - inserted[r] for r in inserted if r in seen)
    if not latencies:
        raise RuntimeError("no report became visible; is the worker running?")
    return {
        "rate_per_second": rate,
        "reports": len(inserted),
        "visible": len(latencies),
        "p50_seconds": round(statistics.median(latencies), 3),
        "p95_seconds": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
        "max_seconds": round(latencies[-1], 3),
    }


def _write_list(path: Path, *, entries: int, matches: int, local: int, pods: int = 300) -> None:
    """`matches` entries name remote people of the synthetic pod; the rest name nobody here."""
    with path.open("w", encoding="utf-8") as out:
        out.write("kind,value,label,comment\n")
        for n in range(entries):
            if n < matches:
                person = local + 1 + n
                out.write(f"account,remote{person}@pod{1 + person % pods}.example,bench,\n")
            else:
                out.write(f"account,absent{n}@nowhere{n % 1000}.example,bench,\n")


def bench_lists(
    server_url: str | None, redis_url: str | None, *, entries: int, people: int, matches: int
) -> dict[str, float]:
    """A signed list of `entries` accounts, served over loopback HTTPS, synced and applied on a
    pod with `people` people by `podmod lists sync` as a process; then re-synced unchanged."""
    import resource

    from podmod.lists import minisign
    from podmod.loopback import LoopbackServer

    with scratch(server_url, redis_url) as sc, tempfile.TemporaryDirectory() as tmp:
        build_pod(sc.database_url, people=people, posts=10_000, comments=1_000, reports=0)
        workdir = Path(tmp)
        served = workdir / "served"
        served.mkdir()
        list_path = served / "bench.csv"
        _write_list(list_path, entries=entries, matches=matches, local=max(people // 4, 1))
        secret = minisign.SecretKey.generate()
        body = list_path.read_bytes()
        (served / "bench.csv.minisig").write_text(minisign.sign(body, secret))
        with LoopbackServer(served, workdir) as server:
            config_path = workdir / "podmod.toml"
            config_path.write_text(
                f'[list_sync]\nca_bundle = "{server.cert_path}"\nmax_bytes = {len(body) + 1}\n'
                f'[[lists]]\nname = "bench"\nurl = "{server.url("bench.csv")}"\n'
                f'public_key = "{secret.public_key.to_string()}"\npolicy = "review"\n'
            )
            env = sc.env(PODMOD_CONFIG=str(config_path))
            timings = {}
            for run in ("first", "unchanged"):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "podmod.cli", "lists", "sync", "--json"],
                    env=env, capture_output=True, text=True, timeout=900,
                )
                timings[run] = time.perf_counter() - started
                if done.returncode != 0:
                    raise RuntimeError(f"lists sync failed: {done.stdout}{done.stderr}"[-2000:])
                if run == "first":
                    import json

                    outcome = json.loads(done.stdout)[0]
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        with psycopg.connect(sc.database_url) as conn:
            signals = conn.execute(
                "SELECT count(*) FROM podmod.signals WHERE kind = 'list'"
            ).fetchone()[0]
    return {
        "entries": entries, "people": people, "list_bytes": len(body),
        "matches": signals, "status": outcome["status"],
        "sync_and_apply_seconds": round(timings["first"], 2),
        "unchanged_resync_seconds": round(timings["unchanged"], 2),
        "peak_memory_mib": round(peak_kib / 1024, 1),
    }
