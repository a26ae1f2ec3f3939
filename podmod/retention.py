"""Retention: how long podmod keeps what it needs only for a while, and the prune that removes the
rest (`podmod prune`, and once a day after `podmod lists sync`). README, "Disk use and retention".

The record of what was decided is never pruned: the audit log, decisions, cases and their
signals, appeals, reporter notices. What is pruned, in short transactions of its own batches so
that the first prune of a long history holds no lock a live sync or worker waits on:

- list history (retention.list_history_days, retention.keep_versions): the entries that ended
  before the oldest version kept (the version in force, a held one, every version in force at some
  time within the days, the newest applied ones); the versions they were added or removed in keep
  their row, marked with when and by which setting (`lists diff` and the version's page say so);
- notifications (retention.notifications_days): mails and webhooks delivered or given up, events
  told and delivered, staff mails (digests) older than the days, but never an event that keeps a
  failure or a stall from being told twice, one an appeal's decision names, nor a list.held one
  a withdrawal of its held version would be told beside;
- finished work (retention.work_days): intake batches, content scan batches and scan runs done
  longer ago (the signals, not the batches, are what makes a report or a match count once; the
  watermarks and gaps that keep reports from being read twice are never pruned).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from podmod import store
from podmod.config import Config
from podmod.errors import PodmodError

PRUNE_LOCK = 0x7072756E  # "prun": one prune at a time
LAST_PRUNE = "retention:pruned_at"  # watermark: when the last prune ended (Unix seconds)
DUE_EVERY = 24 * 3600  # seconds between the prunes `lists sync` runs
ENTRY_PAGES = 1000  # podmod.list_entries pages (8 kB each) looked at per batch
ID_STEP = 5000  # ids per batch of the other tables

# The oldest version of each list whose entries are all kept: the version in force, any held
# version, the newest keep_versions applied, and every version in force at some time since the
# cutoff (those applied after it, and the one in force at it). Entries that ended before it
# (removed_in below it) belong only to versions older than all of those.
KEEP_FROM_SQL = """
WITH applied AS (
    SELECT list_id, number, coalesce(applied_at, fetched_at) AS at,
           row_number() OVER (PARTITION BY list_id ORDER BY number DESC) AS newest
    FROM podmod.list_versions WHERE status = 'applied'
)
SELECT l.id, l.name, least(
    l.current_version,
    (SELECT min(h.number) FROM podmod.list_versions h WHERE h.list_id = l.id AND h.status = 'held'),
    (SELECT min(a.number) FROM applied a WHERE a.list_id = l.id
     AND (a.at > now() - make_interval(days => %(days)s) OR a.newest <= %(keep)s)),
    (SELECT max(a.number) FROM applied a WHERE a.list_id = l.id
     AND a.at <= now() - make_interval(days => %(days)s))
) AS keep_from
FROM podmod.lists l WHERE l.current_version IS NOT NULL ORDER BY l.id
"""

# One batch of the list history: the ended entries of a range of pages (a TID range scan: each
# batch reads its own pages once, however many rows earlier batches removed), and the versions
# they were added and removed in marked in the same transaction.
PRUNE_ENTRIES_SQL = """
WITH keep (list_id, keep_from) AS (SELECT * FROM unnest(%(lists)s::integer[], %(from)s::integer[])),
gone AS (
    DELETE FROM podmod.list_entries e USING keep k
    WHERE e.ctid >= %(low)s::tid AND e.ctid < %(high)s::tid
      AND e.list_id = k.list_id AND e.removed_in < k.keep_from
    RETURNING e.list_id, e.added_in, e.removed_in
), versions AS (
    SELECT list_id, added_in AS number FROM gone UNION SELECT list_id, removed_in FROM gone
), marked AS (
    UPDATE podmod.list_versions v SET entries_pruned_at = now(), entries_pruned_by = %(by)s
    FROM versions g
    WHERE v.list_id = g.list_id AND v.number = g.number AND v.entries_pruned_at IS NULL
)
SELECT (SELECT count(*) FROM gone) AS removed,
       (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(list_id, number)), '[]')
        FROM versions) AS versions
"""
# Whether any entry ended before its list's oldest version kept and is still stored: an applied
# version older than it removed entries and was not pruned yet. Without one, the prune does not
# read the table's pages at all (a sync's daily prune of a new million-entry list read 150 MB).
ANY_ENDED_SQL = """
SELECT EXISTS (
    SELECT 1 FROM podmod.list_versions v
    JOIN unnest(%(lists)s::integer[], %(from)s::integer[]) AS k (list_id, keep_from)
      ON k.list_id = v.list_id
    WHERE v.number < k.keep_from AND v.status = 'applied' AND v.removed > 0
      AND v.entries_pruned_at IS NULL
) AS any
"""
ENDED_ENTRIES_SQL = """
WITH keep (list_id, keep_from) AS (SELECT * FROM unnest(%(lists)s::integer[], %(from)s::integer[])),
gone AS (
    SELECT e.list_id, e.added_in, e.removed_in FROM podmod.list_entries e
    JOIN keep k ON e.list_id = k.list_id AND e.removed_in < k.keep_from
), versions AS (
    SELECT list_id, added_in AS number FROM gone UNION SELECT list_id, removed_in FROM gone
)
SELECT (SELECT count(*) FROM gone) AS removed,
       (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(list_id, number)), '[]')
        FROM versions) AS versions
"""

# Notifications done with: a delivery delivered or given up; an event whose staff mail and
# account mail are written (or due to nobody), all of whose deliveries go too, that no appeal
# names, whose key the lists' state would not make again (%(live)s), and that is not the
# list.held of a version after the one in force (a withdrawal of it is told where it was told:
# podmod.lists.sync._withdraw_held); a staff mail all of whose deliveries go too (an event names
# its staff mail only to tell that it was mailed).
DONE_DELIVERIES = "done_at < %(cutoff)s AND created_at < %(cutoff)s"
DONE_EVENTS = """
created_at < %(cutoff)s
AND (NOT staff_mail OR digest_id IS NOT NULL) AND (tell_user_id IS NULL OR told_at IS NOT NULL)
AND NOT EXISTS (SELECT 1 FROM podmod.outbox o WHERE o.event_id = events.id
                AND NOT coalesce(o.done_at < %(cutoff)s AND o.created_at < %(cutoff)s, false))
AND NOT EXISTS (SELECT 1 FROM podmod.appeals a WHERE a.decision_event_id = events.id)
AND (key IS NULL OR NOT key = ANY (%(live)s::text[]))
AND NOT (type = 'list.held' AND EXISTS (
    SELECT 1 FROM podmod.lists l WHERE l.name = events.list_name
    AND (events.facts ->> 'version')::integer > coalesce(l.current_version, 0)))
"""
DONE_DIGESTS = """
created_at < %(cutoff)s
AND NOT EXISTS (SELECT 1 FROM podmod.outbox o WHERE o.digest_id = digests.id
                AND NOT coalesce(o.done_at < %(cutoff)s AND o.created_at < %(cutoff)s, false))
"""
DONE_WORK = "done_at < %(cutoff)s"
# A scan run's tables (scan_run_tables), which go before the runs of the same batch of ids.
RUN_TABLES_OF = (
    "DELETE FROM podmod.scan_run_tables WHERE run_id >= %(low)s AND run_id < %(high)s"
    " AND run_id IN (SELECT id FROM podmod.scan_runs WHERE done_at < %(cutoff)s)"
)

# (table, the rows that go, what goes with each batch of them first)
WORK_TABLES = (
    ("intake_batches", DONE_WORK, None),
    ("scan_batches", DONE_WORK, None),
    ("scan_runs", DONE_WORK, RUN_TABLES_OF),
)


class PruneBusy(PodmodError):
    """Another prune holds the lock."""

    exit_code = 1


@dataclass
class PruneReport:
    """What a prune removed (or, a dry run, would remove): rows by table, and the versions whose
    entries were pruned, by list."""

    dry_run: bool
    settings: dict[str, int]
    removed: dict[str, int] = field(default_factory=dict)
    versions: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    longest_batch: float = 0.0  # seconds: the longest any of its transactions held its rows
    entry_pages: int = 0  # of podmod.list_entries read to find the ended entries (none to find: 0)

    def timed(self, started: float) -> None:
        self.longest_batch = max(self.longest_batch, time.perf_counter() - started)

    @property
    def total(self) -> int:
        return sum(self.removed.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": self.removed,
            "versions_pruned": self.versions,
            "settings": self.settings,
            "seconds": round(self.seconds, 3),
            "longest_batch_seconds": round(self.longest_batch, 3),
            "entry_pages_read": self.entry_pages,
        }

    def text(self) -> str:
        """One line: "removed 52,000 list_entries (versions 1-38 of mastodon), 120 outbox, …"."""
        verb = "would remove" if self.dry_run else "removed"
        parts = []
        for table, count in self.removed.items():
            if not count:
                continue
            part = f"{count:,} {table}"
            if table == "list_entries" and self.versions:
                part += (
                    " ("
                    + "; ".join(
                        f"versions {numbers_text(numbers)} of {name}"
                        for name, numbers in self.versions.items()
                    )
                    + ")"
                )
            parts.append(part)
        if not parts:
            return "nothing to prune: " + kept_text(self.settings)
        return f"{verb} " + ", ".join(parts) + "; " + kept_text(self.settings)


def settings_of(config: Config) -> dict[str, int]:
    names = ("list_history_days", "keep_versions", "notifications_days", "work_days")
    return {name: config[f"retention.{name}"] for name in names}


def kept_text(settings: dict[str, int]) -> str:
    """What the settings keep, in words."""

    def days(value: int) -> str:
        return f"{value:,} days" if value else "forever"

    return (
        f"list history {days(settings['list_history_days'])} (and the newest"
        f" {settings['keep_versions']:,} versions), notifications"
        f" {days(settings['notifications_days'])}, finished work {days(settings['work_days'])}"
    )


def numbers_text(numbers: list[int]) -> str:
    """Version numbers as runs: "1-38, 40"."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def pruned_by(settings: dict[str, int]) -> str:
    """The setting named on a pruned version (list_versions.entries_pruned_by)."""
    return (
        f"retention.list_history_days = {settings['list_history_days']},"
        f" retention.keep_versions = {settings['keep_versions']}"
    )


def prune(
    config: Config,
    state: psycopg.Connection,
    *,
    dry_run: bool = False,
    actor: str = "podmod",
    source: str = "cli",
) -> PruneReport:
    """Prune what the retention settings no longer keep (with `dry_run`, count it and keep
    everything), batch by batch, and audit-log it: a prune by hand (`source` "cli") always, the
    day's prune when it removed anything, a dry run never. Raises PruneBusy when another prune
    runs."""
    settings = settings_of(config)
    report = PruneReport(dry_run, settings)
    started = time.perf_counter()
    state.rollback()
    if not state.execute("SELECT pg_try_advisory_lock(%s) AS got", (PRUNE_LOCK,)).fetchone()["got"]:
        state.rollback()
        raise PruneBusy("Another prune is running; this one does nothing.")
    try:
        state.commit()
        if settings["list_history_days"]:
            _prune_list_history(state, settings, report)
        if settings["notifications_days"]:
            cutoff = _cutoff(state, settings["notifications_days"])
            from podmod.notify.alerts import live_keys

            live = live_keys(config, state)
            state.rollback()
            params = {"cutoff": cutoff, "live": live}
            _prune_by_id(state, "outbox", DONE_DELIVERIES, params, report)
            _prune_events(state, params, report)
            _prune_by_id(state, "digests", DONE_DIGESTS, params, report)
        if settings["work_days"]:
            params = {"cutoff": _cutoff(state, settings["work_days"])}
            for table, condition, first in WORK_TABLES:
                _prune_by_id(state, table, condition, params, report, first=first)
        report.seconds = time.perf_counter() - started
        if not dry_run:
            with state.transaction():
                store.set_watermark(state, LAST_PRUNE, int(time.time()))
            if report.total or source == "cli":  # (the day's prune that found nothing: silent)
                store.record_audit(
                    state,
                    actor=actor,
                    action="prune",
                    source=source,
                    reason=report.text(),
                    details=report.as_json(),
                )
                state.commit()
    finally:
        state.rollback()
        state.execute("SELECT pg_advisory_unlock(%s)", (PRUNE_LOCK,))
        state.commit()
    return report


def prune_if_due(config: Config, state: psycopg.Connection, *, source: str) -> PruneReport | None:
    """Prune when the last prune ended DUE_EVERY or longer ago (None: not due, or another prune
    runs): what `lists sync` runs after its lists."""
    last = store.watermark(state, LAST_PRUNE)
    state.rollback()
    if last is not None and time.time() - last < DUE_EVERY:
        return None
    try:
        return prune(config, state, source=source)
    except PruneBusy:
        return None


def _cutoff(state: psycopg.Connection, days: int) -> Any:
    cutoff = state.execute(
        "SELECT now() - make_interval(days => %s) AS cutoff", (days,)
    ).fetchone()["cutoff"]
    state.rollback()
    return cutoff


def _prune_list_history(
    state: psycopg.Connection, settings: dict[str, int], report: PruneReport
) -> None:
    rows = state.execute(
        KEEP_FROM_SQL, {"days": settings["list_history_days"], "keep": settings["keep_versions"]}
    ).fetchall()
    names = {row["id"]: row["name"] for row in rows}
    params: dict[str, Any] = {
        "lists": [row["id"] for row in rows],
        "from": [row["keep_from"] for row in rows],
        "by": pruned_by(settings),
    }
    versions: set[tuple[int, int]] = set()
    removed = 0
    anything = state.execute(ANY_ENDED_SQL, params).fetchone()["any"]
    if anything and report.dry_run:
        found = state.execute(ENDED_ENTRIES_SQL, params).fetchone()
        removed, versions = found["removed"], {tuple(pair) for pair in found["versions"]}
    elif anything:
        pages = state.execute(
            "SELECT pg_relation_size('podmod.list_entries')"
            " / current_setting('block_size')::bigint AS pages"
        ).fetchone()["pages"]
        state.rollback()
        for low in range(0, pages, ENTRY_PAGES):
            started = time.perf_counter()
            with state.transaction():
                done = state.execute(
                    PRUNE_ENTRIES_SQL,
                    params | {"low": f"({low},0)", "high": f"({low + ENTRY_PAGES},0)"},
                ).fetchone()
            report.timed(started)
            report.entry_pages += min(ENTRY_PAGES, pages - low)
            removed += done["removed"]
            versions |= {tuple(pair) for pair in done["versions"]}
    state.rollback()
    report.removed["list_entries"] = removed
    for list_id, number in sorted(versions):
        report.versions.setdefault(names[list_id], []).append(number)


def _prune_by_id(
    state: psycopg.Connection,
    table: str,
    condition: str,
    params: dict[str, Any],
    report: PruneReport,
    *,
    first: str | None = None,
) -> None:
    """Delete a table's rows meeting `condition` (a constant of this module), ID_STEP ids a
    transaction, in id order (what is oldest goes first); `first`, a statement of this module
    run before each batch in its transaction (the rows that name them, by %(low)s and
    %(high)s)."""
    name = sql.Identifier("podmod", table)
    where = sql.SQL(condition)
    bounds = state.execute(
        sql.SQL("SELECT min(id) AS low, max(id) AS high, count(*) AS n FROM {} WHERE {}").format(
            name, where
        ),
        params,
    ).fetchone()
    state.rollback()
    removed = 0
    if report.dry_run or not bounds["n"]:
        removed = bounds["n"]
    else:
        for low in range(bounds["low"], bounds["high"] + 1, ID_STEP):
            started = time.perf_counter()
            batch = params | {"low": low, "high": low + ID_STEP}
            with state.transaction():
                if first is not None:
                    state.execute(first, batch)
                removed += state.execute(
                    sql.SQL("DELETE FROM {} WHERE id >= %(low)s AND id < %(high)s AND {}").format(
                        name, where
                    ),
                    batch,
                ).rowcount
            report.timed(started)
    report.removed[table] = removed


def _prune_events(state: psycopg.Connection, params: dict[str, Any], report: PruneReport) -> None:
    """Events done with (DONE_EVENTS), oldest first, ID_STEP a transaction (their ids are
    UUIDs: the batches go by time)."""
    where = sql.SQL(DONE_EVENTS)
    if report.dry_run:
        count = state.execute(
            sql.SQL("SELECT count(*) AS n FROM podmod.events WHERE {}").format(where), params
        ).fetchone()["n"]
        state.rollback()
        report.removed["events"] = count
        return
    removed = 0
    while True:
        with state.transaction():
            gone = state.execute(
                sql.SQL(
                    "DELETE FROM podmod.events WHERE id IN (SELECT id FROM podmod.events"
                    " WHERE {} ORDER BY created_at LIMIT %(step)s)"
                ).format(where),
                params | {"step": ID_STEP},
            ).rowcount
        removed += gone
        if gone < ID_STEP:
            break
    report.removed["events"] = removed
