"""What every benchmark of `podmod bench` stands on: the PostgreSQL server and Redis (given, or
embedded for the run), scratch databases holding a synthetic diaspora* pod, podmod's processes
started and stopped, and their time and peak memory measured."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
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


def spawn(args: list[str], env: dict[str, str], module: str = "podmod.cli") -> subprocess.Popen:
    """A process whose stderr goes to a file (a pipe nobody reads could fill and stall it)."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the process, in stop)
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args], env=env, stdout=subprocess.DEVNULL, stderr=log
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def stderr_tail(process: subprocess.Popen) -> str:
    """The last of what a process wrote on stderr."""
    process.log.seek(0)  # type: ignore[attr-defined]
    return process.log.read().decode(errors="replace")[-2000:]  # type: ignore[attr-defined]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.log.close()  # type: ignore[attr-defined]


@contextmanager
def stopping(processes: list[subprocess.Popen]) -> Iterator[list[subprocess.Popen]]:
    """Stop these processes when the block ends, however it ends."""
    try:
        yield processes
    finally:
        for process in processes:
            stop(process)


def run_measured(
    args: list[str], env: dict[str, str], timeout: float = 900
) -> tuple[int, str, str, float, int]:
    """Run a command: (exit code, stdout, stderr, seconds, its own peak resident KiB), measured by
    podmod.bench.measure, whose small process starts it: started by this one, the command would
    be reported at least at this process's size."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = Path(tmp) / "measured.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "podmod.bench.measure", str(report), *args],
            env=env,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,  # (a group: a command past its time is killed with it)
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.seek(0)
        err.seek(0)
        if not report.exists():
            return process.returncode or 1, out.read(), err.read(), float(timeout), 0
        measured = json.loads(report.read_text())
        return measured["code"], out.read(), err.read(), measured["seconds"], measured["peak_kib"]


class MemoryWatch:
    """The peak resident memory of a process and its children (RQ's work horses), polled from
    /proc while it runs."""

    def __init__(self, process: subprocess.Popen) -> None:
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


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95 and the largest of timings in seconds, in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }
