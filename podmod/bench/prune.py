"""`podmod bench prune`: the first prune of a long list history (podmod.retention) while `podmod
lists sync` applies a version as a process: the prune's time, what it frees, and how long the sync
waited on a lock, beside the same sync with no prune running."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from podmod import retention, store
from podmod.bench.lists import settle
from podmod.bench.scratch import scratch
from podmod.config import load_config
from podmod.fixtures import diaspora_schema_sql
from podmod.lists.versions import READER

# Version 1: `entries` pod entries; each later one ends the `churn` oldest in force and adds as
# many new ones (a day apart, the newest today), as `podmod lists sync` stores them.
FIRST_SQL = """
INSERT INTO podmod.lists (name, url, policy, current_version, origin)
VALUES ('bench', %(url)s, 'review', 1, 'subscription');
INSERT INTO podmod.list_entries (list_id, kind, value, line, added_in)
SELECT 1, 'pod', 'h' || n || '.example', n, 1 FROM generate_series(1, %(entries)s::integer) n
"""
NEXT_SQL = """
UPDATE podmod.list_entries e SET removed_in = %(number)s
FROM generate_series(%(low)s::integer, %(high)s::integer) n
WHERE e.kind = 'pod' AND e.value = 'h' || n || '.example' AND e.list_id = 1
  AND e.removed_in IS NULL;

INSERT INTO podmod.list_entries (list_id, kind, value, line, added_in)
SELECT 1, 'pod', 'h' || n || '.example', n, %(number)s
FROM generate_series(%(low)s::integer + %(entries)s, %(high)s::integer + %(entries)s) n
"""
VERSION_SQL = """
INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added, removed, format,
                                  reader, fetched_at, applied_at)
SELECT 1, v, 'bench-' || v, 'applied', %(entries)s,
       CASE WHEN v = 1 THEN %(entries)s ELSE %(churn)s END,
       CASE WHEN v = 1 THEN 0 ELSE %(churn)s END, 'podmod', %(reader)s,
       now() - make_interval(days => %(versions)s - v),
       now() - make_interval(days => %(versions)s - v)
FROM generate_series(1, %(versions)s::integer) v;
UPDATE podmod.lists SET current_version = %(versions)s
"""


def _size(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_total_relation_size('podmod.list_entries') AS n").fetchone()["n"]


def build_history(url: str, *, entries: int, versions: int, churn: int, list_url: str) -> dict:
    """The list's history, written as the syncs would have (FIRST_SQL, NEXT_SQL); its size after
    the first version and after the last, vacuumed."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(diaspora_schema_sql())
        store.migrate(conn)
        params = {"entries": entries, "url": list_url}
        for statement in FIRST_SQL.split(";\n"):
            conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE podmod.list_entries")
        first = _size(conn)
        for number in range(2, versions + 1):
            low = (number - 2) * churn + 1
            for statement in NEXT_SQL.split(";\n\n"):
                conn.execute(
                    statement, params | {"number": number, "low": low, "high": low + churn - 1}
                )
        for statement in VERSION_SQL.split(";\n"):
            conn.execute(
                statement,
                {"entries": entries, "churn": churn, "versions": versions, "reader": READER},
            )
        # (the syncs run here are the bench's: the day's prune after them must not run)
        conn.execute(
            "INSERT INTO podmod.watermarks (name, value) VALUES (%s, %s)",
            (retention.LAST_PRUNE, int(time.time())),
        )
        conn.execute("VACUUM ANALYZE podmod.list_entries")
        last = _size(conn)
        rows = conn.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"]
    return {"rows": rows, "bytes_first": first, "bytes": last}


def write_next_file(url: str, path: Path, *, entries: int, number: int, churn: int) -> None:
    """The list's file of version `number` (after the last stored): the entries in force, the
    oldest `churn` ended and as many added."""
    low = (number - 2) * churn + 1
    with psycopg.connect(url) as conn, path.open("w", encoding="utf-8") as out:
        out.write("kind,value,label,comment\n")
        with conn.cursor().copy(
            "COPY (SELECT value FROM podmod.list_entries WHERE list_id = 1 AND removed_in IS NULL"
            " ORDER BY value) TO STDOUT"
        ) as copy:
            for row in copy.rows():
                n = int(row[0][1:].split(".")[0])
                if not low <= n < low + churn:
                    out.write(f"pod,{row[0]},,\n")
        for n in range(low + entries, low + entries + churn):
            out.write(f"pod,h{n}.example,,\n")


class LockWatch:
    """The longest a `podmod lists sync` backend was seen waiting on a lock (polled from
    pg_stat_activity every 5 ms while it runs)."""

    def __init__(self, url: str) -> None:
        self.url, self.longest, self.stop = url, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        waiting_since: dict[int, float] = {}
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                now = time.perf_counter()
                waiting = {
                    pid
                    for (pid,) in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND application_name <> 'podmod-bench-prune'"
                    )
                }
                for pid in waiting:
                    started = waiting_since.setdefault(pid, now)
                    self.longest = max(self.longest, now - started)
                waiting_since = {pid: at for pid, at in waiting_since.items() if pid in waiting}
                time.sleep(0.005)

    def done(self) -> float:
        self.stop.set()
        self.thread.join()
        return round(self.longest, 3)


def _sync(env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "podmod.cli", "lists", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"lists sync failed: {done.stdout} {done.stderr}")
    return round(time.perf_counter() - started, 2), done.stdout.strip()


def _reusable_bytes(conn: psycopg.Connection) -> int | None:
    """The space VACUUM left for new rows in podmod.list_entries (pg_freespacemap), or None where
    that extension is not installed (the embedded PostgreSQL of a bare machine ships without
    PostgreSQL's contrib modules)."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_freespacemap")
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile):
        return None
    return conn.execute(
        "SELECT coalesce(sum(avail), 0)::bigint AS n FROM pg_freespace('podmod.list_entries')"
    ).fetchone()["n"]


def bench_prune(
    server_url: str | None,
    redis_url: str | None,
    *,
    entries: int = 1_000_000,
    versions: int = 50,
    churn: float = 0.01,
    days: int = 10,
) -> dict[str, Any]:
    """Build `versions` daily versions of an `entries` list changing `churn` of it each, then
    prune with retention.list_history_days = `days` (keep_versions = 0) while a sync applies the
    next version; beside it, the same sync alone."""
    changed = max(int(entries * churn), 1)
    with scratch(server_url, redis_url) as db, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        config_path = Path(tmp) / "podmod.toml"
        config_path.write_text(
            f'[[lists]]\nname = "bench"\nurl = "{path.as_uri()}"\npolicy = "review"\n'
        )
        env = db.env(
            PODMOD_CONFIG=str(config_path),
            PODMOD_RETENTION_LIST_HISTORY_DAYS=str(days),
            PODMOD_RETENTION_KEEP_VERSIONS="0",
            PODMOD_RETENTION_NOTIFICATIONS_DAYS="0",
            PODMOD_RETENTION_WORK_DAYS="0",
        )
        started = time.perf_counter()
        built = build_history(
            db.database_url,
            entries=entries,
            versions=versions,
            churn=changed,
            list_url=path.as_uri(),
        )
        built_seconds = round(time.perf_counter() - started, 1)
        # the sync alone: version versions + 1
        write_next_file(db.database_url, path, entries=entries, number=versions + 1, churn=changed)
        settle(db.database_url)
        alone, said = _sync(env)
        if f"version {versions + 1} applied" not in said:
            raise RuntimeError(f"the sync alone stored no version: {said}")
        # the prune, with the sync of the next version started beside it
        write_next_file(db.database_url, path, entries=entries, number=versions + 2, churn=changed)
        settle(db.database_url)
        with psycopg.connect(db.database_url, autocommit=True, row_factory=dict_row) as conn:
            rows_before = conn.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()[
                "n"
            ]
        watch = LockWatch(db.database_url)
        outcome: dict[str, Any] = {}

        def sync_beside() -> None:
            outcome["sync"] = _sync(env)

        syncing = threading.Thread(target=sync_beside)
        config = load_config(environ=env)
        with psycopg.connect(
            db.database_url, row_factory=dict_row, application_name="podmod-bench-prune"
        ) as state:
            syncing.start()
            time.sleep(0.5)  # (the sync has started: it reads the file and stages it meanwhile)
            started = time.perf_counter()
            report = retention.prune(config, state, actor="bench", source="bench")
            pruned = round(time.perf_counter() - started, 2)
        syncing.join()
        waited = watch.done()
        beside, said = outcome["sync"]
        if f"version {versions + 2} applied" not in said:
            raise RuntimeError(f"the sync beside the prune stored no version: {said}")
        with psycopg.connect(db.database_url, autocommit=True, row_factory=dict_row) as conn:
            started = time.perf_counter()
            conn.execute("VACUUM podmod.list_entries")
            vacuumed = round(time.perf_counter() - started, 2)
            free = _reusable_bytes(conn)
            size_after = _size(conn)
    per_version = (built["bytes"] - built["bytes_first"]) / (versions - 1)
    if free is None:
        said = "(PostgreSQL's pg_freespacemap extension is not installed where the bench ran)"
    else:
        said = None
    return {
        "history": {
            "entries": entries,
            "versions": versions,
            "changed_per_version": changed,
            "rows": built["rows"],
            "bytes": built["bytes"],
            "bytes_per_version": round(per_version),
            "built_seconds": built_seconds,
        },
        "prune": {
            "list_history_days": days,
            "rows_before": rows_before,
            "rows_removed": report.removed["list_entries"],
            "versions_marked": len(report.versions.get("bench", [])),
            "seconds": pruned,
            "longest_transaction_seconds": round(report.longest_batch, 3),
            "vacuum_seconds": vacuumed,
            "bytes_after_vacuum": size_after,
            "bytes_reusable_after_vacuum": free,
            **({"bytes_reusable_unknown": said} if said else {}),
        },
        "sync": {
            "alone_seconds": alone,
            "beside_prune_seconds": beside,
            "longest_lock_wait_seconds": waited,
        },
    }
