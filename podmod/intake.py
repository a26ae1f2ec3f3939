"""Report intake: the reader's pass (pod reports → durable batches → RQ jobs) and the ingest job
(batch → cases and signals), plus the sync of reports marked reviewed in diaspora*'s own page.

Exactly once, by construction (the mechanism is podmod.durable's, as for content scanning):
- a batch is written to `podmod.intake_batches` (with the watermark) before its job is enqueued,
  and marked done in the same transaction that stores its signals;
- each report is at most one signal (unique index), so a job that runs twice adds nothing;
- the reader enqueues again any undone batch whose job Redis has lost, that failed for good, or
  whose worker died (no session holds the batch's advisory lock any more);
- report ids missing below the watermark are watched as gaps until they commit or time out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import redis

from podmod import durable, pod_db, queue, scan, store
from podmod.config import CONNECTIONS, Config, FollowedConfig
from podmod.errors import PodmodError, ServiceUnavailable
from podmod.notify import carry
from podmod.store import INGEST_LOCK, require_current_schema, resolve_cases_without_pending

log = logging.getLogger("podmod.intake")

READER_LOCK = 0x706D7264  # one reader at a time (session advisory lock on the state database)
BATCH_LOCK_CLASS = 0x706D62  # (class, batch id): held by the worker that is ingesting that batch
WATERMARK = "reports"
BATCHES_PER_PASS = 100

# The durable work of intake: batches of report ids, each stored by one ingest job.
INTAKE_BATCHES = durable.Kind(
    table="intake_batches",
    lock_class=BATCH_LOCK_CLASS,
    queue="ingest",
    job_function=queue.INGEST_JOB,
    job_id_prefix="ingest-batch",
    description="ingest report batch {id}",
)
REPORTS = durable.Feed(WATERMARK, gap_table="intake_gaps", gap_column="report_id")


@dataclass
class PassResult:
    """What one reader pass did, for logs and tests."""

    new_batches: list[int] = field(default_factory=list)
    new_reports: int = 0
    enqueued: list[int] = field(default_factory=list)
    gaps_open: int = 0
    gaps_filled: int = 0
    reviewed_synced: int = 0
    cases_resolved: int = 0
    new_people_matched: int = 0
    reconciled: int = 0
    deliveries_enqueued: list[int] = field(default_factory=list)  # outbox rows


# ---------------------------------------------------------------------------------------------
# Reader side


def acquire_reader_lock(state: psycopg.Connection, *, wait: bool) -> bool:
    """Take the single-reader lock on this session; False if another reader holds it."""
    if wait:
        state.execute("SELECT pg_advisory_lock(%s)", (READER_LOCK,))
        state.commit()
        return True
    got = state.execute("SELECT pg_try_advisory_lock(%s) AS got", (READER_LOCK,)).fetchone()["got"]
    state.commit()
    return bool(got)


def _watermark(state: psycopg.Connection) -> int:
    return store.watermark(state, WATERMARK) or 0


def collect_new_reports(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection
) -> PassResult:
    """Write batches for new reports (and gaps that have since committed); advance the watermark."""
    result = PassResult()
    batch_size = config["reader.batch_size"]
    watermark = _watermark(state)
    new_ids = pod_db.report_ids_after(pod, watermark, batch_size * BATCHES_PER_PASS)
    filled = pod_db.existing_report_ids(pod, durable.gaps(state, REPORTS))
    pod.rollback()  # never hold a snapshot open on the pod's database between passes
    # The reads above opened a transaction: ended here, the block below is a transaction of its
    # own that commits at its end (inside one, it would be a savepoint, kept only by a later
    # commit and undone by any later rollback).
    state.commit()

    with state.transaction():
        durable.watch_gaps(state, REPORTS, durable.holes(watermark, new_ids))
        durable.fill_gaps(state, REPORTS, filled)
        expired = durable.expire_gaps(state, REPORTS.gap_table, config["reader.gap_timeout"])
        if expired:
            log.info("gave up waiting for %d missing report ids", expired)
        to_batch = filled + new_ids
        result.new_batches = durable.record_batches(
            state, INTAKE_BATCHES, "report_ids", to_batch, batch_size
        )
        if new_ids:
            store.set_watermark(state, WATERMARK, new_ids[-1])
        result.gaps_open = state.execute("SELECT count(*) AS n FROM podmod.intake_gaps").fetchone()[
            "n"
        ]
    result.new_reports = len(to_batch)
    result.gaps_filled = len(filled)
    return result


RECONCILE_CHUNK = 50_000


def reconcile(pod: psycopg.Connection, state: psycopg.Connection) -> int:
    """Watch as gaps the pod's reports below the watermark that podmod never batched, so the next
    pass ingests them: a report whose transaction committed after `reader.gap_timeout`, or inside a
    hole of ids wider than MAX_GAP. Returns how many were found. The caller holds the reader lock
    (the only writer of batches and gaps), so nothing is batched meanwhile."""
    watermark = _watermark(state)
    awaited = {
        row["report_id"]
        for row in state.execute(
            "SELECT unnest(report_ids) AS report_id FROM podmod.intake_batches"
            " WHERE done_at IS NULL UNION SELECT report_id FROM podmod.intake_gaps"
        )
    }
    state.commit()
    missing: list[int] = []
    above = 0
    while above < watermark:
        up_to = min(above + RECONCILE_CHUNK, watermark)
        on_pod = pod_db.report_ids_between(pod, above, up_to)
        pod.rollback()
        if on_pod:
            stored = {
                row["report_id"]
                for row in state.execute(
                    "SELECT report_id FROM podmod.signals WHERE kind = 'report'"
                    " AND report_id > %s AND report_id <= %s",
                    (above, up_to),
                )
            }
            state.commit()
            missing += [i for i in on_pod if i not in stored and i not in awaited]
        above = up_to
    if missing:
        with state.transaction():
            durable.watch_gaps(state, REPORTS, missing)
        log.warning(
            "reconcile: %d reports below the watermark had not reached podmod (late commits); "
            "ingesting them now",
            len(missing),
        )
    return len(missing)


def sync_reviewed(pod: psycopg.Connection, state: psycopg.Connection) -> tuple[int, int]:
    """Mark signals of reports that diaspora*'s own page has marked reviewed; close cases that have
    nothing pending left. Returns (signals marked, cases resolved)."""
    pending = [
        row["report_id"]
        for row in state.execute(
            "SELECT report_id FROM podmod.signals WHERE kind = 'report' AND NOT reviewed"
        )
    ]
    state.commit()
    reviewed: list[int] = []
    for start in range(0, len(pending), 50_000):
        reviewed += pod_db.reviewed_report_ids(pod, pending[start : start + 50_000])
    pod.rollback()
    if not reviewed:
        return 0, 0
    with state.transaction():
        state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
        rows = state.execute(
            "UPDATE podmod.signals SET reviewed = true, reviewed_at = now(), reviewed_by = 'pod'"
            " WHERE kind = 'report' AND report_id = ANY(%s) AND NOT reviewed RETURNING case_id",
            (reviewed,),
        ).fetchall()
        case_ids = sorted({row["case_id"] for row in rows})
        state.execute("SELECT podmod.refresh_cases(%s)", (case_ids,))
        resolved = resolve_cases_without_pending(state, case_ids)
    return len(rows), resolved


def read_pass(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    rconn: redis.Redis,
    *,
    sync_reviewed_now: bool = True,
    reconcile_now: bool = False,
) -> PassResult:
    """One pass of the reader. The caller holds the reader lock."""
    from podmod.lists.apply import match_people

    reconciled = reconcile(pod, state) if reconcile_now else 0
    result = collect_new_reports(config, pod, state)
    result.reconciled = reconciled
    result.enqueued = durable.enqueue_pending(config, state, rconn, INTAKE_BATCHES)
    with state.transaction():  # accounts new on the pod, checked against the lists in force
        result.new_people_matched = match_people(config, pod, state, full=False).added
    scan.reader_pass(config, pod, state, rconn)  # new posts, comments, profiles, photos
    if sync_reviewed_now:
        result.reviewed_synced, result.cases_resolved = sync_reviewed(pod, state)
    result.deliveries_enqueued = carry.reader_step(config, state, rconn)  # mails and webhooks
    return result


# What the reader takes when it starts and keeps while it runs: its connections, the queues it
# fills (the workers listen on those they started with), its log level.
READER_START_BOUND = (*CONNECTIONS, "queue_prefix")


class AnotherReaderRunning(PodmodError):
    exit_code = 4


def run_reader(
    config: Config,
    *,
    once: bool = False,
    wait: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> PassResult:
    """The reader (`podmod read`): a pass every reader.interval seconds until stopped.

    A lost database or Redis is not fatal: the reader reconnects with a growing pause (up to 5 s,
    so it is back within seconds of the outage's end) and carries on where the watermark says; with
    `once` it reports the error instead. Its configuration follows its file from pass to pass
    (but for READER_START_BOUND).
    """
    from podmod.db import pod_connection, state_connection

    followed = FollowedConfig(config, READER_START_BOUND, "the reader")
    backoff = 1.0
    while True:
        try:
            with state_connection(config) as state, pod_connection(config) as pod:
                rconn = queue.redis_connection(config)
                pod_db.check_diaspora_schema(pod)
                require_current_schema(state)
                if not acquire_reader_lock(state, wait=wait):
                    raise AnotherReaderRunning(
                        "another `podmod read` is already running; only one reader runs at a time."
                    )
                backoff = 1.0
                return _reader_loop(followed, pod, state, rconn, once=once, stop=stop)
        except (ServiceUnavailable, redis.RedisError, psycopg.OperationalError) as error:
            if once:
                raise ServiceUnavailable(f"The reader pass failed: {error}") from None
            log.warning("reader: %s; trying again in %.0f s", str(error).strip(), backoff)
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline:
                if stop():
                    return PassResult()
                time.sleep(0.1)
            backoff = min(backoff * 2, 5.0)


def _reader_loop(
    followed: FollowedConfig,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    rconn: redis.Redis,
    *,
    once: bool,
    stop: Callable[[], bool],
) -> PassResult:
    last_reviewed_sync = 0.0
    last_reconcile: float | None = None  # at start, then every reader.reconcile_interval
    while True:
        config = followed.current()
        now = time.monotonic()
        due = once or now - last_reviewed_sync >= config["reader.reviewed_sync_interval"]
        reconcile_due = (
            once
            or last_reconcile is None
            or now - last_reconcile >= config["reader.reconcile_interval"]
        )
        result = read_pass(
            config, pod, state, rconn, sync_reviewed_now=due, reconcile_now=reconcile_due
        )
        rconn.set(queue.READER_HEARTBEAT_KEY, time.time(), ex=60)
        if due:
            last_reviewed_sync = now
        if reconcile_due:
            last_reconcile = now
        if (
            result.new_reports
            or result.enqueued
            or result.reviewed_synced
            or result.deliveries_enqueued
        ):
            log.info(
                "reader pass: reports=%d batches=%d enqueued=%d deliveries=%d gaps=%d reviewed=%d"
                " resolved=%d",
                result.new_reports,
                len(result.new_batches),
                len(result.enqueued),
                len(result.deliveries_enqueued),
                result.gaps_open,
                result.reviewed_synced,
                result.cases_resolved,
            )
        if once or stop():
            return result
        # A full pass means a backlog: go again at once instead of sleeping.
        if result.new_reports < config["reader.batch_size"] * BATCHES_PER_PASS:
            deadline = time.monotonic() + config["reader.interval"]
            while time.monotonic() < deadline and not stop():
                time.sleep(min(0.1, config["reader.interval"]))


# ---------------------------------------------------------------------------------------------
# Worker side

INCOMING_COLUMNS = (
    "report_id",
    "item_type",
    "item_id",
    "reviewed",
    "reason",
    "reported_at",
    "reporter_user_id",
    "reporter",
    "person_id",
    "account",
    "local",
    "item_guid",
    "item_text",
    "item_created_at",
    "post_type",
    "root_guid",
    "root_text",
    "root_account",
    "parent_post_id",
    "item_missing",
)

STORE_BATCH_SQL = """
ANALYZE incoming;

-- Deleted items: if an earlier report of the same item told us its author, the case is theirs.
UPDATE incoming i SET person_id = known.person_id, account = known.account, local = known.local
FROM (
    SELECT DISTINCT ON (s.item_type, s.item_id) s.item_type, s.item_id,
           c.person_id, c.account, c.local
    FROM podmod.signals s JOIN podmod.cases c ON c.id = s.case_id
    WHERE s.kind = 'report' AND c.person_id IS NOT NULL
      AND (s.item_type, s.item_id) IN (
          SELECT item_type, item_id FROM incoming WHERE person_id IS NULL)
    ORDER BY s.item_type, s.item_id, s.id DESC
) known
WHERE i.person_id IS NULL AND i.item_type = known.item_type AND i.item_id = known.item_id;

UPDATE incoming SET subject = CASE WHEN person_id IS NOT NULL THEN 'person:' || person_id
                                   ELSE 'item:' || item_type || ':' || item_id END;

-- Where each subject's reports go: its open case; else, if every report is already reviewed in
-- diaspora*, its latest case (history, not new work); else a new case.
CREATE TEMP TABLE targets ON COMMIT DROP AS
SELECT i.subject,
       bool_or(NOT i.reviewed) AS any_pending,
       min(i.person_id) AS person_id,
       min(i.account) AS account,
       bool_or(i.local) AS local,
       (SELECT c.id FROM podmod.cases c WHERE c.subject = i.subject AND c.status = 'open')
           AS case_id,
       (SELECT c.id FROM podmod.cases c WHERE c.subject = i.subject ORDER BY c.id DESC LIMIT 1)
           AS latest_id
FROM incoming i GROUP BY i.subject;

UPDATE targets SET case_id = latest_id WHERE case_id IS NULL AND NOT any_pending;

WITH created AS (
    INSERT INTO podmod.cases (subject, person_id, account, local, status, resolution, closed_at)
    SELECT subject, person_id, account, local,
           CASE WHEN any_pending THEN 'open' ELSE 'resolved' END,
           CASE WHEN any_pending THEN NULL ELSE 'reviewed_in_pod' END,
           CASE WHEN any_pending THEN NULL ELSE now() END
    FROM targets WHERE case_id IS NULL
    RETURNING id, subject
)
UPDATE targets t SET case_id = created.id FROM created WHERE t.subject = created.subject;

INSERT INTO podmod.signals (
    case_id, kind, report_id, item_type, item_id, item_guid, item_missing, reporter_user_id,
    reporter, reason, snapshot, details, reviewed, reviewed_at, reviewed_by, occurred_at)
SELECT t.case_id, 'report', i.report_id, i.item_type, i.item_id, i.item_guid, i.item_missing,
       i.reporter_user_id, i.reporter, i.reason,
       CASE WHEN i.post_type = 'Reshare' THEN i.root_text ELSE i.item_text END,
       jsonb_strip_nulls(jsonb_build_object(
           'post_type', i.post_type,
           'reshare_of', i.root_guid,
           'reshare_of_account', i.root_account,
           'parent_post_id', i.parent_post_id,
           'item_created_at', i.item_created_at)),
       i.reviewed,
       CASE WHEN i.reviewed THEN now() END,
       CASE WHEN i.reviewed THEN 'pod' END,
       i.reported_at
FROM incoming i JOIN targets t USING (subject)
ON CONFLICT (report_id) WHERE kind = 'report' DO NOTHING
RETURNING case_id
"""


def ingest_batch(config: Config, batch_id: int) -> int:
    """The ingest job: store one batch's reports as signals on their accounts' cases.

    Safe to run twice or concurrently: the batch lock makes a second run wait, then find the batch
    done. Returns how many reports became signals now.
    """
    from podmod.db import pod_connection, state_connection

    with state_connection(config) as state, pod_connection(config) as pod:
        batch = durable.claim(state, INTAKE_BATCHES, batch_id, ("report_ids",))
        if batch is None:
            return 0
        rows = pod_db.load_reports(pod, batch["report_ids"])
        pod.rollback()
        with state.transaction():
            stored = store_reports(state, rows)
            durable.mark_done(state, INTAKE_BATCHES, batch_id, ingested=stored)
        log.info("ingested batch %d: %d reports, %d new signals", batch_id, len(rows), stored)
        return stored


def store_reports(state: psycopg.Connection, rows: list[dict]) -> int:
    """Store loaded report rows as signals and cases, inside the caller's transaction."""
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    # Running twice adds nothing: leave out reports that are signals already.
    already = {
        row["report_id"]
        for row in state.execute(
            "SELECT report_id FROM podmod.signals WHERE kind = 'report' AND report_id = ANY(%s)",
            ([row["report_id"] for row in rows],),
        )
    }
    rows = [row for row in rows if row["report_id"] not in already]
    if not rows:
        return 0
    state.execute(
        "CREATE TEMP TABLE incoming (report_id integer, item_type text, item_id integer,"
        " reviewed boolean, reason text, reported_at timestamptz, reporter_user_id integer,"
        " reporter text, person_id integer, account text, local boolean, item_guid text,"
        " item_text text, item_created_at timestamptz, post_type text, root_guid text,"
        " root_text text, root_account text, parent_post_id integer, item_missing boolean,"
        " subject text) ON COMMIT DROP"
    )
    with state.cursor().copy(f"COPY incoming ({', '.join(INCOMING_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[column] for column in INCOMING_COLUMNS])
    *prepare, insert_signals = STORE_BATCH_SQL.split(";\n\n")
    state.execute(";\n\n".join(prepare))
    inserted = state.execute(insert_signals).fetchall()
    touched = sorted({row["case_id"] for row in inserted})
    state.execute("SELECT podmod.refresh_cases(%s)", (touched,))
    return len(inserted)
