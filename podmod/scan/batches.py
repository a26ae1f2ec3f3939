"""New content: each reader pass writes the new ids of each table as a batch (durable work, as
report intake's) before enqueueing its job; the job marks the batch done in the transaction that
stores its matches. Ids missing below a table's watermark are watched as gaps."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import redis

from podmod import durable, pod_db, queue, store
from podmod.config import Config
from podmod.kinds import ITEM_TYPES, tables_for
from podmod.scan.changes import kinds_present
from podmod.scan.entries import matcher_for
from podmod.scan.items import scan_items, watermark_name
from podmod.scan.runs import SCAN_RUNS
from podmod.scan.signals import store_scanned

log = logging.getLogger("podmod.scan")

BATCH_LOCK_CLASS = 0x706D73  # (class, batch id): held by the worker scanning that batch
BATCHES_PER_PASS = 100
PROFILE_EDITS = "scan:profile_edits"  # watermark: microseconds since 1970 of the last edit seen

SCAN_BATCHES = durable.Kind(
    table="scan_batches",
    lock_class=BATCH_LOCK_CLASS,
    queue="scan",
    job_function=queue.SCAN_BATCH_JOB,
    job_id_prefix="scan-batch",
    description="scan new content batch {id}",
)


def feed(item_type: str) -> durable.Feed:
    """A content table's ids above its watermark, with its gaps in podmod.scan_gaps."""
    return durable.Feed(
        watermark_name(item_type),
        gap_table="scan_gaps",
        gap_column="item_id",
        scope_column="item_type",
        scope=item_type,
    )


@dataclass
class ScanPass:
    """What the reader's share of content scanning did in one pass, for logs and tests."""

    new_batches: list[int] = field(default_factory=list)
    new_items: int = 0
    enqueued_batches: list[int] = field(default_factory=list)
    enqueued_runs: list[int] = field(default_factory=list)


def _watermarks(state: psycopg.Connection) -> dict[str, int]:
    return {
        row["name"]: row["value"]
        for row in state.execute(
            "SELECT name, value FROM podmod.watermarks WHERE name LIKE 'scan:%%'"
        )
    }


def _record_batches(
    state: psycopg.Connection, item_type: str, ids: list[int], size: int, result: ScanPass
) -> None:
    result.new_batches += durable.record_batches(
        state, SCAN_BATCHES, "item_ids", ids, size, item_type=item_type
    )
    result.new_items += len(ids)


def collect_new_content(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection
) -> ScanPass:
    """Write batches for content new since the last pass and advance the watermarks; ids missing
    below a watermark are watched as gaps, as report intake does.

    On the first pass the watermarks start at the newest ids (content already there is the
    backfill's and the list versions' to scan). While no content entry applies to a table, its
    watermark only moves: a run for entries that arrive later covers everything up to it.
    """
    result = ScanPass()
    size = config["scan.batch_size"]
    tops = pod_db.content_top_ids(pod)
    pod.rollback()
    with state.transaction():
        marks = _watermarks(state)
        wanted = set(tables_for(kinds_present(state)))
        expired = durable.expire_gaps(state, "scan_gaps", config["reader.gap_timeout"])
        if expired:
            log.debug("gave up waiting for %d missing content ids", expired)
        for item_type in ITEM_TYPES:
            ids_feed = feed(item_type)
            mark, top = marks.get(ids_feed.watermark), tops[item_type]
            filled = pod_db.existing_content_ids(pod, item_type, durable.gaps(state, ids_feed))
            durable.fill_gaps(state, ids_feed, filled)
            if mark is None or top <= mark or item_type not in wanted:
                if mark is None or top > mark:
                    store.set_watermark(state, ids_feed.watermark, top)
                if filled and item_type in wanted:
                    _record_batches(state, item_type, filled, size, result)
                continue
            ids = pod_db.content_ids_after(pod, item_type, mark, size * BATCHES_PER_PASS)
            if ids:
                durable.watch_gaps(state, ids_feed, durable.holes(mark, ids))
                store.set_watermark(state, ids_feed.watermark, ids[-1])
            if filled or ids:
                _record_batches(state, item_type, filled + ids, size, result)
        if "Profile" in wanted:
            _sweep_profile_edits(config, pod, state, marks, result)
    pod.rollback()
    return result


def _sweep_profile_edits(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    marks: dict[str, int],
    result: ScanPass,
) -> None:
    """Profiles edited since the last sweep (every scan.profile_sweep_interval seconds)."""
    now = datetime.now(UTC)
    last = state.execute(
        "SELECT value, updated_at FROM podmod.watermarks WHERE name = %s", (PROFILE_EDITS,)
    ).fetchone()
    if last is None:
        store.set_watermark(state, PROFILE_EDITS, int(now.timestamp() * 1_000_000))
        return
    if (now - last["updated_at"]).total_seconds() < config["scan.profile_sweep_interval"]:
        return
    since = datetime.fromtimestamp(last["value"] / 1_000_000, UTC)
    edited = pod_db.profiles_updated_since(pod, since, config["scan.batch_size"] * BATCHES_PER_PASS)
    new_profiles_above = marks.get(watermark_name("Profile"), 0)
    ids = [row[0] for row in edited if row[0] <= new_profiles_above]  # new ones are batched anyway
    if ids:
        _record_batches(state, "Profile", ids, config["scan.batch_size"], result)
    newest = max((row[1] for row in edited), default=since)
    store.set_watermark(state, PROFILE_EDITS, int(newest.timestamp() * 1_000_000))


def enqueue_pending(config: Config, state: psycopg.Connection, rconn: redis.Redis) -> ScanPass:
    """Enqueue every undone batch and every undone list run whose job is missing, done with its
    share, failed for good, or whose worker died. Backfills run in `podmod scan --backfill`."""
    return ScanPass(
        enqueued_batches=durable.enqueue_pending(config, state, rconn, SCAN_BATCHES),
        enqueued_runs=durable.enqueue_pending(config, state, rconn, SCAN_RUNS),
    )


def reader_pass(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection, rconn: redis.Redis
) -> ScanPass:
    """The reader's share of content scanning, once per pass: new content into batches, and the
    jobs of undone batches and runs onto the scan queue."""
    result = collect_new_content(config, pod, state)
    enqueued = enqueue_pending(config, state, rconn)
    result.enqueued_batches = enqueued.enqueued_batches
    result.enqueued_runs = enqueued.enqueued_runs
    if result.new_items or result.enqueued_batches or result.enqueued_runs:
        log.info(
            "content: %d new items in %d batches; enqueued %d batches and %d runs",
            result.new_items,
            len(result.new_batches),
            len(result.enqueued_batches),
            len(result.enqueued_runs),
        )
    return result


def scan_batch(config: Config, batch_id: int) -> int:
    """The batch job: match one batch of new content and store its matches; the batch is marked
    done in the same transaction. Safe to run twice. Returns the new signals."""
    from podmod.db import pod_connection, state_connection

    with state_connection(config) as state, pod_connection(config) as pod:
        batch = durable.claim(state, SCAN_BATCHES, batch_id, ("item_type", "item_ids"))
        if batch is None:
            return 0
        matcher = matcher_for(config, state)
        scanned = scan_items(config, pod, state, matcher, batch["item_type"], ids=batch["item_ids"])
        with state.transaction():
            stored = store_scanned(config, pod, state, scanned)
            durable.mark_done(state, SCAN_BATCHES, batch_id, matched=stored)
        log.info(
            "scanned batch %d: %d %s items, %d new matches",
            batch_id,
            scanned.items,
            batch["item_type"].lower(),
            stored,
        )
        return stored
