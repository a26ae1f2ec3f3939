"""podmod's own state in schema `podmod`: numbered migrations, and reading cases with their signals.

Writes that belong to one flow live beside that flow (intake.py for reports); this module owns the
schema and the queries every part shares.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import psycopg

from podmod.errors import MigrationFailed, PodmodError, SchemaOutOfDate, first_line

SCHEMA = "podmod"
MIGRATION_LOCK = 0x706F646D  # "podm": advisory lock key held while migrating
INGEST_LOCK = 0x706D696E  # case and signal writes are serialised: no duplicate cases, ever
CASE_STATUSES = ("open", "resolved", "dismissed")

# How a closed case ended (cases.resolution, written by the action that closed it), in the words
# the case page, the queue and `podmod case show` use.
OUTCOMES = {
    "locked": "locked",
    "reviewed": "reviewed, no action",
    "reviewed_in_pod": "reviewed in diaspora*, no action",
    "dismissed": "dismissed",
    "not_a_match": "not a match",
    "retracted": "its matches were retracted",
}


def outcome(status: str, resolution: str | None) -> str | None:
    """A closed case's outcome in words; None while it is open."""
    if status == "open":
        return None
    return OUTCOMES.get(resolution or "", resolution or status)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The numbered SQL files shipped in podmod/migrations, in order."""
    found = []
    for entry in resources.files("podmod.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def applied_versions(conn: psycopg.Connection) -> set[int]:
    exists = conn.execute(
        "SELECT to_regclass('podmod.schema_migrations') IS NOT NULL AS present"
    ).fetchone()
    if not exists["present"]:
        return set()
    return {row["version"] for row in conn.execute("SELECT version FROM podmod.schema_migrations")}


def migrate(conn: psycopg.Connection, *, up_to: int | None = None) -> list[Migration]:
    """Create or upgrade schema `podmod`; returns the migrations applied now (none if current).

    Runs in one transaction under an advisory lock, so two `podmod init` at once are safe. With
    `up_to`, only the migrations numbered up to it: the schema an older podmod left (for the
    upgrade tests).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        present = conn.execute(
            "SELECT to_regnamespace(%s) IS NOT NULL AS present", (SCHEMA,)
        ).fetchone()["present"]
        if not present:  # (CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even then)
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS podmod.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = applied_versions(conn)
        applied = []
        for migration in migrations():
            if migration.version in done or (up_to is not None and migration.version > up_to):
                continue
            try:
                conn.execute(migration.sql)
            except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction):
                raise  # (the connection lost, a standby: their own sentences)
            except psycopg.Error as error:
                before = f"{max(done):04d}" if done else "none"
                raise MigrationFailed(
                    f"Migration {migration.version:04d}_{migration.name} failed on this database "
                    f"({first_line(error)}); nothing was changed: podmod's schema stays at "
                    f"migration {before}. Reinstall the podmod you ran before, which runs on it, "
                    "and report this sentence to podmod's maintainers."
                ) from error
            conn.execute(
                "INSERT INTO podmod.schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration)
    return applied


def require_current_schema(conn: psycopg.Connection) -> None:
    """Raise SchemaOutOfDate unless every shipped migration has been applied."""
    missing = [m.version for m in migrations() if m.version not in applied_versions(conn)]
    conn.rollback()
    if missing:
        raise SchemaOutOfDate(
            "podmod's schema is missing or out of date (migration "
            f"{missing[0]:04d} not applied); run `podmod init`."
        )


def record_audit(
    conn: psycopg.Connection,
    *,
    actor: str,
    action: str,
    source: str,
    case_id: int | None = None,
    account: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row to the audit log, inside the caller's transaction."""
    conn.execute(
        "INSERT INTO podmod.audit (actor, action, source, case_id, account, reason, details)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (actor, action, source, case_id, account, reason, json.dumps(details or {})),
    )


def watermark(state: psycopg.Connection, name: str) -> int | None:
    """A watermark's value; None before it is first set."""
    row = state.execute("SELECT value FROM podmod.watermarks WHERE name = %s", (name,)).fetchone()
    return row["value"] if row else None


def set_watermark(state: psycopg.Connection, name: str, value: int) -> None:
    """Move a watermark up to `value` (never down), inside the caller's transaction."""
    state.execute(
        "INSERT INTO podmod.watermarks (name, value) VALUES (%s, %s) ON CONFLICT (name)"
        " DO UPDATE SET value = greatest(podmod.watermarks.value, excluded.value),"
        " updated_at = now()",
        (name, value),
    )


# The case `c`'s account was locked while the case was open and is not unlocked since: closing
# such a case, however it is closed, records the outcome `locked`, not "no action".
LOCKED_ON_CASE = (
    "coalesce((SELECT d.action = 'lock' FROM podmod.decisions d WHERE d.case_id = c.id"
    " AND d.action IN ('lock', 'unlock') ORDER BY d.id DESC LIMIT 1), false)"
)


def locked_on_case(state: psycopg.Connection, case_id: int) -> bool:
    """Whether the case's account was locked on this case and not unlocked since."""
    return state.execute(
        f"SELECT {LOCKED_ON_CASE} AS locked FROM podmod.cases c WHERE c.id = %s", (case_id,)
    ).fetchone()["locked"]


def resolve_cases_without_pending(
    state: psycopg.Connection,
    case_ids: list[int],
    *,
    resolution: str = "reviewed_in_pod",
    actor: str = "diaspora*",
    source: str = "reader",
    reason: str = "every report on the case was marked reviewed in diaspora*",
    deciding: int | None = None,
) -> int:
    """Close open cases among these that have no pending report and no active list or content
    match, as `resolution` (as `locked` where the account was locked on the case); each closure
    is audited. A case with an undecided appeal waits for a moderator's decision: it closes only
    when it is the case `deciding`, the one a moderator acts on. Runs inside the caller's
    transaction."""
    rows = state.execute(
        "UPDATE podmod.cases c SET status = 'resolved',"
        f" resolution = CASE WHEN {LOCKED_ON_CASE} THEN 'locked' ELSE %s END,"
        " closed_at = now(), updated_at = now()"
        " WHERE id = ANY(%s) AND status = 'open' AND pending_report_count = 0"
        " AND list_match_count = 0 AND content_match_count = 0"
        " AND (id = %s OR NOT EXISTS (SELECT 1 FROM podmod.appeals a"
        "  WHERE a.case_id = c.id AND a.outcome IS NULL)) RETURNING id, account",
        (resolution, case_ids, deciding),
    ).fetchall()
    for row in rows:
        record_audit(
            state,
            actor=actor,
            action="resolve",
            source=source,
            case_id=row["id"],
            account=row["account"],
            reason=reason,
        )
    return len(rows)


@dataclass
class Case:
    """One account's case in the queue, with its signals when loaded."""

    id: int
    account: str | None
    local: bool
    status: str
    priority: int
    report_count: int
    pending_report_count: int
    reporter_count: int
    list_match_count: int
    content_match_count: int
    person_id: int | None
    resolution: str | None
    created_at: datetime
    last_signal_at: datetime | None
    signals: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "local": self.local,
            "status": self.status,
            "resolution": self.resolution,
            "outcome": outcome(self.status, self.resolution),
            "priority": self.priority,
            "person_id": self.person_id,
            "reports": self.report_count,
            "pending_reports": self.pending_report_count,
            "reporters": self.reporter_count,
            "list_matches": self.list_match_count,
            "content_matches": self.content_match_count,
            "created_at": self.created_at.isoformat(),
            "last_signal_at": self.last_signal_at.isoformat() if self.last_signal_at else None,
            "signals": [signal_as_json(s) for s in self.signals],
        }


def signal_as_json(row: dict[str, Any]) -> dict[str, Any]:
    base = {"id": row["id"], "kind": row["kind"], "retracted": row["retracted_at"] is not None}
    if row["kind"] == "report":
        base.update(
            report_id=row["report_id"],
            reporter=row["reporter"],
            reporter_user_id=row["reporter_user_id"],
            text=row["reason"],
            item_type=row["item_type"],
            item_id=row["item_id"],
            item_guid=row["item_guid"],
            item_missing=row["item_missing"],
            snapshot=row["snapshot"],
            reviewed=row["reviewed"],
            reviewed_by=row["reviewed_by"],
            reported_at=row["occurred_at"].isoformat() if row["occurred_at"] else None,
        )
    elif row["kind"] == "appeal":
        base.update(
            statement=row["reason"],
            appealed_at=row["occurred_at"].isoformat() if row["occurred_at"] else None,
            decided=row["reviewed"],
        )
    elif row["kind"] == "content":  # details add list, version, entry, field, excerpt, distance
        base.update(
            person_id=row["person_id"],
            item_type=row["item_type"],
            item_id=row["item_id"],
            item_guid=row["item_guid"],
            snapshot=row["snapshot"],
            item_created_at=row["occurred_at"].isoformat() if row["occurred_at"] else None,
            matched_at=row["created_at"].isoformat(),
        )
    base.update(row["details"])
    return base


CASE_COLUMNS = (
    "id, account, local, status, priority, report_count, pending_report_count, reporter_count,"
    " list_match_count, content_match_count, person_id, resolution, created_at, last_signal_at"
)


def case_page(conn: psycopg.Connection, case_id: int, max_signals: int) -> dict[str, Any] | None:
    """What the case page and `podmod case show` show of podmod's own state: the case, its first
    `max_signals` signals (with their list's name) and their total, the decisions on the case or
    its account, and the account's other cases. None when there is no such case."""
    case = conn.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    if case is None:
        return None
    signals = conn.execute(
        "SELECT s.*, l.name AS list_name FROM podmod.signals s"
        " LEFT JOIN podmod.lists l ON l.id = s.list_id"
        " WHERE s.case_id = %s ORDER BY s.id LIMIT %s",
        (case_id, max_signals),
    ).fetchall()
    signal_total = len(signals)
    if signal_total == max_signals:
        signal_total = conn.execute(
            "SELECT count(*) AS n FROM podmod.signals WHERE case_id = %s", (case_id,)
        ).fetchone()["n"]
    decisions = conn.execute(
        "SELECT * FROM podmod.decisions WHERE case_id = %s"
        " OR (person_id = %s AND %s::integer IS NOT NULL) ORDER BY id DESC LIMIT 200",
        (case_id, case["person_id"], case["person_id"]),
    ).fetchall()
    other_cases = conn.execute(
        "SELECT id, status, resolution, created_at, closed_at FROM podmod.cases"
        " WHERE subject = %s AND id <> %s ORDER BY id DESC LIMIT 20",
        (case["subject"], case_id),
    ).fetchall()
    return {
        "case": case,
        "signals": signals,
        "signal_total": signal_total,
        "decisions": decisions,
        "other_cases": other_cases,
    }


def list_cases(
    conn: psycopg.Connection,
    *,
    status: str | None = "open",
    limit: int | None = None,
    with_signals: bool = True,
) -> list[Case]:
    """Cases in queue order (priority, then newest signal), optionally filtered by status."""
    if status is not None and status not in CASE_STATUSES:
        raise PodmodError(f"Unknown case status {status!r}; use one of {', '.join(CASE_STATUSES)}.")
    rows = conn.execute(
        f"SELECT {CASE_COLUMNS} FROM podmod.cases"
        " WHERE (%(status)s::text IS NULL OR status = %(status)s)"
        " ORDER BY priority DESC, last_signal_at DESC NULLS LAST, id DESC"
        " LIMIT %(limit)s",
        {"status": status, "limit": limit},
    ).fetchall()
    cases = [Case(**row) for row in rows]
    if with_signals and cases:
        by_id = {case.id: case for case in cases}
        for signal in conn.execute(
            "SELECT * FROM podmod.signals WHERE case_id = ANY(%s) ORDER BY case_id, id",
            ([case.id for case in cases],),
        ):
            by_id[signal["case_id"]].signals.append(signal)
    return cases


BACKLOG_SQL = """
SELECT 'intake' AS work, count(*) AS batches, coalesce(sum(cardinality(report_ids)), 0) AS items,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float AS oldest_seconds
FROM podmod.intake_batches WHERE done_at IS NULL
UNION ALL
SELECT 'scan', count(*), coalesce(sum(cardinality(item_ids)), 0),
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float
FROM podmod.scan_batches WHERE done_at IS NULL
UNION ALL
SELECT 'scan_runs', count(*), 0, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float
FROM podmod.scan_runs WHERE done_at IS NULL
"""


def backlog(conn: psycopg.Connection) -> dict[str, dict[str, float]]:
    """Work written down but not done yet: intake batches (items are reports), new-content scan
    batches (items are posts, comments, profiles, photos) and scans of existing content (runs),
    each with its count, items and the age in seconds of the oldest."""
    return {
        row["work"]: {
            "count": row["batches"],
            "items": row["items"],
            "oldest_seconds": row["oldest_seconds"],
        }
        for row in conn.execute(BACKLOG_SQL)
    }
