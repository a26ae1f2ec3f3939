"""Scan runs: the content already on the pod, scanned table by table in id ranges, each step
committed with its cursor; for a list version's new entries (worked by the workers, as durable
work), one list's entries, or every entry in force (`podmod scan --backfill`, in the foreground)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from podmod import durable, pod_db, queue
from podmod.config import Config
from podmod.errors import PodmodError
from podmod.kinds import IMAGE_ITEM_TYPES, ITEM_TYPES
from podmod.matching import Matcher
from podmod.scan.changes import create_run, retract_stale
from podmod.scan.entries import matcher_for
from podmod.scan.items import Scanned, scan_items, watermark_name
from podmod.scan.signals import store_scanned

log = logging.getLogger("podmod.scan")

RUN_LOCK_CLASS = 0x706D75  # (class, run id): held by whoever works on that run
PHOTOS_PER_STEP = 100  # a run step over photos: each may need a download and a hash

# A run's job works for up to half the job timeout, then hands over to the next one; backfills
# are worked in the foreground by `podmod scan --backfill`.
SCAN_RUNS = durable.Kind(
    table="scan_runs",
    lock_class=RUN_LOCK_CLASS,
    queue="scan",
    job_function=queue.SCAN_RUN_JOB,
    job_id_prefix="scan-run",
    description="scan content for list entries (run {id})",
    pending_condition="reason <> 'backfill'",
    hands_over=True,
)


class ScanError(PodmodError):
    exit_code = 2


@dataclass
class RunProgress:
    """Where a run stands, and what this call did."""

    run_id: int
    done: bool = False
    items: int = 0  # scanned by this call
    matched: int = 0  # new signals from this call
    steps: int = 0
    seconds: float = 0.0
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    table_seconds: dict[str, float] = field(default_factory=dict)  # spent by this call

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _start_run(pod: psycopg.Connection, state: psycopg.Connection, run_id: int) -> None:
    """Fix each table's highest id at the start: the run covers every id up to it, the reader
    everything above its own watermark, which is never higher (it is set here if missing)."""
    tops = pod_db.content_top_ids(pod)
    pod.rollback()
    with state.transaction():
        for row in state.execute(
            "SELECT item_type FROM podmod.scan_run_tables WHERE run_id = %s AND top IS NULL"
            " FOR UPDATE",
            (run_id,),
        ).fetchall():
            item_type = row["item_type"]
            state.execute(
                "INSERT INTO podmod.watermarks (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (watermark_name(item_type), tops[item_type]),
            )
            reader = state.execute(
                "SELECT value FROM podmod.watermarks WHERE name = %s",
                (watermark_name(item_type),),
            ).fetchone()["value"]
            state.execute(
                "UPDATE podmod.scan_run_tables SET top = %s WHERE run_id = %s AND item_type = %s",
                (max(tops[item_type], reader), run_id, item_type),
            )


def run_tables(state: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    rows = state.execute(
        "SELECT item_type, cursor, top, items, matched, done_at FROM podmod.scan_run_tables"
        " WHERE run_id = %s ORDER BY array_position(%s::text[], item_type)",
        (run_id, list(ITEM_TYPES)),
    ).fetchall()
    state.rollback()
    return rows


def process_run(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    run_id: int,
    *,
    budget: float | None = None,
    max_steps: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunProgress:
    """Work through a run step by step (each step: read an id range, match, store the signals and
    move the cursor, in one transaction) until it is done, `budget` seconds have passed or
    `max_steps` steps are made. Safe to run in several processes at once."""
    started = time.perf_counter()
    result = RunProgress(run_id)
    run = state.execute(
        "SELECT list_id, version, entry_kind, entry_value, done_at FROM podmod.scan_runs"
        " WHERE id = %s",
        (run_id,),
    ).fetchone()
    state.rollback()
    if run is None:
        raise ScanError(f"There is no scan run {run_id}.")
    if run["done_at"] is None:
        _start_run(pod, state, run_id)
        entry = (run["entry_kind"], run["entry_value"]) if run["entry_kind"] else None
        matcher = matcher_for(
            config, state, list_id=run["list_id"], version=run["version"], entry=entry
        )
        chunk = config["scan.chunk_size"]
        for table in run_tables(state, run_id):
            item_type = table["item_type"]
            step = min(chunk, PHOTOS_PER_STEP) if item_type in IMAGE_ITEM_TYPES else chunk
            table_started = time.perf_counter()
            while True:
                if (budget is not None and time.perf_counter() - started >= budget) or (
                    max_steps is not None and result.steps >= max_steps
                ):
                    break
                moved = _run_step(config, pod, state, matcher, run_id, item_type, step, result)
                if moved is None:
                    break
                if progress is not None:
                    progress(moved)
            result.table_seconds[item_type] = round(time.perf_counter() - table_started, 3)
        with state.transaction():
            finished = state.execute(
                "UPDATE podmod.scan_runs SET done_at = now() WHERE id = %s AND done_at IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM podmod.scan_run_tables WHERE run_id = %s"
                " AND done_at IS NULL) RETURNING id",
                (run_id, run_id),
            ).fetchone()
        if finished:
            log.debug("scan run %d done", run_id)
    result.tables = {
        row["item_type"]: {k: v for k, v in row.items() if k != "item_type"}
        for row in run_tables(state, run_id)
    }
    result.done = all(row["done_at"] is not None for row in result.tables.values())
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _run_step(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    matcher: Matcher,
    run_id: int,
    item_type: str,
    step: int,
    result: RunProgress,
) -> int | None:
    """One step of a run over one table; the number of ids it moved past, None when the table is
    done. The work is done outside any transaction, then stored only if nobody else stored that
    range meanwhile."""
    where = state.execute(
        "SELECT cursor, top, done_at FROM podmod.scan_run_tables"
        " WHERE run_id = %s AND item_type = %s",
        (run_id, item_type),
    ).fetchone()
    state.rollback()
    if where["done_at"] is not None:
        return None
    above, top = where["cursor"], where["top"]
    up_to = min(above + step, top)
    scanned = (
        scan_items(config, pod, state, matcher, item_type, above=above, up_to=up_to)
        if up_to > above
        else Scanned()
    )
    with state.transaction():
        now = state.execute(
            "SELECT cursor FROM podmod.scan_run_tables WHERE run_id = %s AND item_type = %s"
            " FOR UPDATE",
            (run_id, item_type),
        ).fetchone()
        if now["cursor"] != above:
            return 0  # another process did this step: go on from where it is
        matched = store_scanned(config, pod, state, scanned)
        state.execute(
            "UPDATE podmod.scan_run_tables SET cursor = %s, items = items + %s,"
            " matched = matched + %s, done_at = CASE WHEN %s >= top THEN now() END"
            " WHERE run_id = %s AND item_type = %s",
            (up_to, scanned.items, matched, up_to, run_id, item_type),
        )
    result.items += scanned.items
    result.matched += matched
    result.steps += 1
    return up_to - above


def pending_runs(
    state: psycopg.Connection, *, reason: str | None = None, exclude_backfill: bool = False
) -> list[int]:
    rows = state.execute(
        "SELECT id FROM podmod.scan_runs WHERE done_at IS NULL"
        " AND (%(reason)s::text IS NULL OR reason = %(reason)s)"
        " AND NOT (%(exclude)s AND reason = 'backfill') ORDER BY id",
        {"reason": reason, "exclude": exclude_backfill},
    ).fetchall()
    state.rollback()
    return [row["id"] for row in rows]


def remaining(state: psycopg.Connection, run_id: int) -> int:
    """Ids still to scan in a started run (an estimate before it starts: 0)."""
    return sum(
        max((row["top"] or 0) - row["cursor"], 0)
        for row in run_tables(state, run_id)
        if row["done_at"] is None
    )


def backfill(
    config: Config,
    *,
    created_by: str,
    max_steps: int | None = None,
    on_start: Callable[[int, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunProgress | None:
    """`podmod scan --backfill`: every content entry in force against everything on the pod,
    resuming an interrupted backfill. None when no content entry applies."""
    from podmod.db import pod_connection, state_connection

    with state_connection(config) as state, pod_connection(config) as pod:
        with state.transaction():
            retract_stale(state)
        runs = pending_runs(state, reason="backfill")
        if runs:
            run_id = runs[0]
        else:
            with state.transaction():
                run_id = create_run(state, reason="backfill", created_by=created_by)
            if run_id is None:
                return None
        _start_run(pod, state, run_id)
        if on_start is not None:
            on_start(run_id, remaining(state, run_id))
        return process_run(config, pod, state, run_id, max_steps=max_steps, progress=progress)


def process_pending_runs(
    config: Config,
    *,
    on_start: Callable[[int, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[RunProgress]:
    """Work through every undone run that list versions queued (not a backfill), here and now."""
    from podmod.db import pod_connection, state_connection

    results = []
    with state_connection(config) as state, pod_connection(config) as pod:
        for run_id in pending_runs(state, exclude_backfill=True):
            _start_run(pod, state, run_id)
            if on_start is not None:
                on_start(run_id, remaining(state, run_id))
            results.append(process_run(config, pod, state, run_id, progress=progress))
    return results


def scan_list(config: Config, name: str, *, created_by: str) -> int | None:
    """A run over the content already on the pod for every entry of one list (after its `kinds`
    changed, say); returns the run's id, None when the list has no content entry that applies."""
    from podmod.db import state_connection

    with state_connection(config) as state, state.transaction():
        row = state.execute("SELECT id FROM podmod.lists WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise ScanError(f"There is no list named {name!r}; see `podmod lists show`.")
        retract_stale(state)
        return create_run(state, reason="list", created_by=created_by, list_id=row["id"])


def scan_run(config: Config, run_id: int) -> bool:
    """The run job: work on a run for up to half the job timeout; the reader enqueues the next
    share while it is not done. Returns whether the run is done."""
    from podmod.db import pod_connection, state_connection

    with state_connection(config) as state, pod_connection(config) as pod:
        durable.lock(state, SCAN_RUNS, run_id)
        progress = process_run(config, pod, state, run_id, budget=config["worker.job_timeout"] / 2)
        log.info(
            "scan run %d: %d items, %d new matches, done: %s",
            run_id,
            progress.items,
            progress.matched,
            progress.done,
        )
        return progress.done
