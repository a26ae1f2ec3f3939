"""List versions in podmod's schema: store a parsed list as a new version (or hold it), approve a
held version, and tell what a version added and removed.

Entries are kept as ranges over versions (`added_in`, `removed_in`), so a version costs only its
changes and any version's content can be read back. A version that would remove more than the
allowed share of the entries in force is held, with its file, until a podmin approves it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import sql

from podmod.config import Config, ListConfig
from podmod.errors import PodmodError
from podmod.lists.minisign import SignatureError, TrustedComment
from podmod.lists.parse import (
    EXACT_HOST,
    FEDERATION_BLOCKS,
    Details,
    ListReader,
    collector_paused,
    federation,
    text_blocks,
)
from podmod.redact import masked_url

# The version of podmod's reading of list files: a version read by an older podmod is fetched and
# read again at the next sync (2: every published shape, subdomains, severities, labels, canaries;
# 3: whole top-level domains, `.cf`, IP v6 addresses, `domain,severity` lines without a header;
# 4: `*.pod.example` wildcards, patterns counted apart, defanged `pod[.]example`, a repeated
# header, `null` comments, header-less exports' cells after the severity, accounts per line;
# 5: a repeated row's labels, comment and heavier severity merged into its entry, a comment with
# commas nobody quoted read whole, labels without the double quotes around them; 6: a header's
# `block_type` read as the severity and `comment` as the public comment, labels without the
# single or typographic quotes around them, a list of accounts' entries with the list's severity;
# 7: Mastodon's CSV of accounts, its `Account address` column read wherever it stands; a domain
# per line with its reason after it, Friendica's, and quoted cells in such a list; 8: a byte order
# mark starting a line, a second file's, and podmod's header again, labels as they show (format
# characters dropped, NFKC), an obfuscated row's shown text without controls, Friendica's `?` and
# `[ab]` patterns counted apart; 9: a host written with port 443 is the host, `pod.example:443`
# and `user@pod.example:443` as handles write them; 10: podmod's format's canary rows (a host
# under .invalid, the label canary) and a canary's host on another port are canaries, not
# entries, and its rows take the list's `severity` setting; 11: a line of hosts separated by
# commas, Fediseer's `csv`, an entry for each, an empty cell under a severity column noop in
# FediBlockHole's CSV and in Mastodon's, kmyblue's `severity_ex` over `severity`).
READER = 11

# How the reason of a version held for removing too much starts (what tells it from one held for
# matching too many people, podmod.lists.sync._hold_kind).
REMOVES_TOO_MUCH = "it removes "

# (in the order of the COPY rows: the columns after `line` repeat from row to row)
ENTRY_COLUMNS = ("kind", "value", "line", "label", "comment", "severity", "labels", "published")

STAGE_SQL = """
CREATE TEMP TABLE incoming_entries (kind text, value text COLLATE "C", label text, comment text,
                                    line integer, severity text, labels text[], published text)
    ON COMMIT DROP
"""

# The entries in force beside the incoming rows of the same kind and value, in one pass over both
# (a full join): kept only where they differ. An entry with no incoming row is removed; an incoming
# row with no entry is added; one whose label, comment, severity, labels or published text changed
# ends its entry and starts a new one. (Counted and applied by four anti-joins over both, a version
# changing 1% of a million entries took 4.7 s; this, about a second.)
CHANGES_SQL = """
CREATE TEMP TABLE entry_changes ON COMMIT DROP AS
SELECT e.kind AS current_kind, e.value AS current_value, i.*
FROM (SELECT kind, value, label, comment, severity, labels, published
      FROM podmod.list_entries WHERE list_id = %(list)s AND removed_in IS NULL) e
FULL JOIN incoming_entries i ON i.kind = e.kind AND i.value = e.value
WHERE e.value IS NULL OR i.value IS NULL
   OR (i.label, i.comment, i.severity, i.labels, i.published)
      IS DISTINCT FROM (e.label, e.comment, e.severity, e.labels, e.published)
"""
CHANGE_COUNTS_SQL = """
SELECT count(*) FILTER (WHERE value IS NULL) AS removed,
       count(*) FILTER (WHERE current_value IS NULL) AS added
FROM entry_changes
"""

# The entries ended and started by this version (an entry in force is found by its key:
# list_entries_active).
APPLY_ENTRIES_SQL = """
UPDATE podmod.list_entries e SET removed_in = %(number)s
FROM entry_changes c
WHERE e.list_id = %(list)s AND e.removed_in IS NULL AND e.value = c.current_value
  AND e.kind = c.current_kind;

INSERT INTO podmod.list_entries (list_id, kind, value, label, comment, line, severity, labels,
                                 published, added_in)
SELECT %(list)s, kind, value, label, comment, line, severity, labels, published, %(number)s
FROM entry_changes WHERE value IS NOT NULL ORDER BY value, kind
"""


@dataclass
class VersionOutcome:
    number: int
    status: str  # applied or held
    entries: int
    added: int
    removed: int
    held_reason: str | None = None
    # how long storing it took, by phase (Phases): record, rows, changes, indexes
    seconds: dict[str, float] = field(default_factory=dict)
    # what its list_versions row says of it, for hold() when it is held after all (sync's breadth)
    record: dict[str, Any] = field(default_factory=dict)


# A sync's phases, in the order a sync goes through them (each may be timed in several parts):
# fetch (the download and the signature check), open (the file hashed, checked against a replay,
# its shape told), rows (the file read and its rows stored as they are read), changes (a next
# version compared with the one in force and the difference applied), indexes (the entries'
# indexes dropped for a first version's COPY and built again, or summarised; their statistics
# taken), match (the pod's people matched, cases and signals written), record (the attempt, the
# version and the outcome written in the list's rows and the audit log, and committed) and locks
# (the lock policies carried out).
PHASES = ("fetch", "open", "rows", "changes", "indexes", "match", "record", "locks")


class Phases(dict[str, float]):
    """Seconds spent in each of a sync's PHASES, for the sync log and its JSON (where a slow sync
    spends its time, on the podmin's own machine): `with phases.timed("fetch"):`."""

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)

    def add(self, phase: str, seconds: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"no phase {phase!r} in a sync")
        self[phase] = self.get(phase, 0.0) + seconds

    def given(self, started: float) -> dict[str, float]:
        """Each phase's seconds in PHASES' order, rounded to 1 ms, and the `total` since
        `started` (a perf_counter() reading): what a sync's outcome gives."""
        seconds = {phase: round(self[phase], 3) for phase in PHASES if phase in self}
        return seconds | {"total": round(time.perf_counter() - started, 3)}

    def text(self) -> str:
        """The phases in PHASES' order: "fetch 0.41 s, rows 1.58 s, …"."""
        return ", ".join(f"{phase} {self[phase]:.2f} s" for phase in PHASES if phase in self)


class ListStateError(PodmodError):
    exit_code = 2


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# Words only a Pleroma or Akkoma server's published federation policy holds (podmod.lists.parse
# .federation): a file without any of them is not parsed to find one.
_FEDERATION_MARKERS = tuple(f'"{name}"'.encode() for name in FEDERATION_BLOCKS)
_JSON_OBJECT = re.compile(rb"\s*{")  # (a list's file is searched for them only if it is one)


def content_digest(body: bytes) -> str:
    """What tells a list's file from the one before (a version's sha256): the SHA-256 of the file;
    of a Pleroma or Akkoma server's nodeinfo (or /api/v1/instance), that of its federation policy
    alone, as the rest (its counts of users and posts) changes with every post, and each fetch
    would otherwise be a new version of the same blocks."""
    if _JSON_OBJECT.match(body) and any(marker in body for marker in _FEDERATION_MARKERS):
        try:
            policy = federation(json.loads(body))
        except ValueError:
            policy = None
        if policy is not None:
            return sha256(json.dumps(policy, sort_keys=True, ensure_ascii=False).encode())
    return sha256(body)


SETTINGS = ("policy", "kinds", "labels", "lock_labels", "format", "require_canary", "severity")
# Settings whose change means the file must be read again, not only its entries applied again.
READ_SETTINGS = ("format", "require_canary", "severity")


def list_settings(subscription: ListConfig) -> dict[str, Any]:
    """A subscription's settings as podmod.lists keeps them."""
    return {
        "policy": subscription.policy,
        "kinds": list(subscription.kinds),
        "labels": list(subscription.labels),
        "lock_labels": list(subscription.lock_labels),
        "format": subscription.format or "",
        "require_canary": subscription.require_canary or "",
        "severity": subscription.severity or "",
        # (kept in applied_settings only: a new key means the file is fetched whole and verified
        # with it, not asked for "if changed", and a version held before can't be approved)
        "public_key": subscription.public_key or "",
    }


def list_state(
    state: psycopg.Connection, subscription: ListConfig
) -> tuple[dict[str, Any] | None, list[str]]:
    """The list's row as the last sync left it (None for a new list) and the names of the
    settings the config has changed since its entries were last applied (none for a new list);
    nothing is written."""
    before = state.execute(
        "SELECT * FROM podmod.lists WHERE name = %s", (subscription.name,)
    ).fetchone()
    if before is None:
        return None, []
    settings = list_settings(subscription)
    applied = before["applied_settings"] or {name: before[name] for name in SETTINGS}
    changed = [name for name in SETTINGS if applied.get(name) != settings[name]]
    if "public_key" in applied and applied["public_key"] != settings["public_key"]:
        changed.append("public_key")  # (not there: applied before podmod kept the key)
    return before, changed


def ensure_list(
    state: psycopg.Connection, subscription: ListConfig
) -> tuple[dict[str, Any], list[str]]:
    """The list's row, created or brought in line with the config, and the names of the settings
    that changed since the last sync (none for a new list). A list that moved to another URL
    forgets the old server's ETag and Last-Modified: sent to the new one, they could have it answer
    "not modified" for a file it never served (a mirror whose copy is older, say); and when the old
    server asked to be left alone until (its Retry-After)."""
    _, changed = list_state(state, subscription)
    settings = list_settings(subscription)
    row = state.execute(
        "INSERT INTO podmod.lists (name, url, policy, kinds, labels, lock_labels, format,"
        " require_canary, severity) VALUES (%(name)s, %(url)s, %(policy)s, %(kinds)s, %(labels)s,"
        " %(lock_labels)s, %(format)s, %(require_canary)s, %(severity)s) ON CONFLICT (name) DO"
        " UPDATE SET etag = CASE WHEN podmod.lists.url = excluded.url THEN podmod.lists.etag END,"
        " last_modified = CASE WHEN podmod.lists.url = excluded.url"
        " THEN podmod.lists.last_modified END,"
        " retry_after = CASE WHEN podmod.lists.url = excluded.url"
        " THEN podmod.lists.retry_after END,"
        " url = excluded.url, policy = excluded.policy, kinds = excluded.kinds,"
        " labels = excluded.labels, lock_labels = excluded.lock_labels, format = excluded.format,"
        " require_canary = excluded.require_canary, severity = excluded.severity RETURNING *",
        {"name": subscription.name, "url": masked_url(subscription.url)} | settings,
    ).fetchone()
    return row, changed


def latest_version(state: psycopg.Connection, list_id: int) -> dict[str, Any] | None:
    return state.execute(
        "SELECT * FROM podmod.list_versions WHERE list_id = %s ORDER BY number DESC LIMIT 1",
        (list_id,),
    ).fetchone()


def latest_version_named(state: psycopg.Connection, name: str) -> dict[str, Any] | None:
    """The latest stored version of the list of that name (None: none yet)."""
    return state.execute(
        "SELECT v.* FROM podmod.list_versions v JOIN podmod.lists l ON l.id = v.list_id"
        " WHERE l.name = %s ORDER BY v.number DESC LIMIT 1",
        (name,),
    ).fetchone()


# The newest signed time among a list's stored versions, in force, held or gone before.
NEWEST_SIGNED_SQL = """
SELECT number, status, signed_at, sha256 FROM podmod.list_versions
WHERE list_id = %s AND signed_at IS NOT NULL
ORDER BY signed_at DESC, number DESC LIMIT 1
"""


def refuse_replay(
    state: psycopg.Connection, list_row: dict[str, Any], signed: TrustedComment, digest: str
) -> None:
    """Refuse a file signed before the newest version this pod has stored of the list, in
    force or held for approval: an old version with its own valid signature, served again, would
    undo what came since (unlocks included), or push a held version aside. A file signed in the
    same second with other content (`digest`: the file's content_digest()) is refused too: which
    one is newer cannot be told. Once a version came signed with a time, a signature without
    one is refused: an older file so signed, served again, could not be told from a new one."""
    newest = state.execute(NEWEST_SIGNED_SQL, (list_row["id"],)).fetchone()
    if newest is None:
        return
    current, number = list_row["current_version"], newest["number"]
    name, before = list_row["name"], signed_time(newest["signed_at"])
    if number == current:
        which = f"version {number} (signed at {before}) in force"
    elif newest["status"] == "held":
        which = f"version {number} (signed at {before}), held for approval"
    else:
        which = f"version {number} (signed at {before}), stored before"
    stays = f"version {current} stays" if current is not None else "no version is in force yet"
    if signed.signed_at is None:
        raise SignatureError(
            f"List {name!r} was refused: its signature has no timestamp, while {which} has "
            f"one, so an older file signed so, served again, could not be told from a new one; "
            f"ask the list's maintainers to sign with minisign, which writes one; {stays}."
        )
    when = signed_time(signed.signed_at)
    if signed.signed_at < newest["signed_at"]:
        raise SignatureError(
            f"List {name!r} was refused: it was signed at {when}, older than {which}: a "
            f"possible replay, or a mirror or cache still serving the older file; {stays}."
        )
    if signed.signed_at == newest["signed_at"] and newest["sha256"] != digest:
        raise SignatureError(
            f"List {name!r} was refused: it was signed at {when}, the same second as {which}, "
            f"yet its content differs, so which is newer cannot be told (a possible replay); "
            f"{stays}."
        )


def signed_time(moment: datetime) -> str:
    """A signed time to the second, as minisign writes it: '2023-11-14 22:13:20 UTC'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# A list whose signature has no `timestamp:` (the words `podmod check`, `lists show` and the lists
# page give after WARN).
UNTIMED = (
    "signed without a timestamp: an older version served again would pass as new; ask the "
    "list's maintainers to sign with minisign, which writes one"
)


def describe_signature(row: dict[str, Any]) -> str:
    """When a version was signed, in words: "signed 2023-11-14 22:13:20 UTC"; the warning when
    its signature has no time; "" when it is not signed."""
    if row.get("signed_at"):
        return f"signed {signed_time(row['signed_at'])}"
    return f"WARN: {UNTIMED}" if row.get("signed_comment") is not None else ""


# What repeated rows added to the entries COPY stored (ListReader.merged), written over them.
MERGE_REPEATS_SQL = """
UPDATE {table} e SET label = m.label, comment = m.comment, severity = m.severity,
                     labels = m.labels::text[]
FROM unnest(%(kinds)s::text[], %(values)s::text[], %(label)s::text[], %(comment)s::text[],
            %(severity)s::text[], %(labels)s::text[]) AS m(kind, value, label, comment, severity,
                                                           labels)
WHERE e.kind = m.kind AND e.value = m.value {condition}
"""


def _stage(state: psycopg.Connection, reading: ListReader) -> int:
    """COPY the rows into `incoming_entries` as they are read (it has no index to grow); how
    many."""
    state.execute(STAGE_SQL)
    with state.cursor().copy(
        f"COPY incoming_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN"
    ) as copy:
        count = _write_text(copy, reading.text(CopyRows()))
    _merge_repeats(state, reading)
    _analyze(state, "ANALYZE incoming_entries")
    return count


def _merge_repeats(
    state: psycopg.Connection, reading: ListReader, version: tuple[int, int] | None = None
) -> None:
    """Once the rows are stored: what repeated rows said beyond their entry's first row, written
    over the rows staged in incoming_entries, or over version (list id, number)'s rows in
    podmod.list_entries."""
    if not reading.merged:
        return
    table, condition = "incoming_entries", ""
    if version is not None:
        table = "podmod.list_entries"
        condition = "AND e.list_id = %(list)s AND e.added_in = %(number)s"
    keys, details = zip(*reading.merged.items(), strict=True)
    state.execute(
        sql.SQL(MERGE_REPEATS_SQL).format(table=sql.SQL(table), condition=sql.SQL(condition)),
        {
            "kinds": [kind for kind, _ in keys],
            "values": [value for _, value in keys],
            "label": [d.label for d in details],
            "comment": [d.comment for d in details],
            "severity": [d.severity for d in details],
            "labels": [_array_literal(d.labels) for d in details],
            "list": version and version[0],
            "number": version and version[1],
        },
    )


def _compare(state: psycopg.Connection, list_id: int, incoming: int) -> dict[str, int]:
    """What the staged rows change in the list's entries in force (entry_changes), counted as
    store_version reports them: every incoming row is kept, changed or added, every entry in
    force kept, changed or removed."""
    state.execute(CHANGES_SQL, {"list": list_id})
    _analyze(state, "ANALYZE entry_changes")  # (a few changes: their entries ended by key)
    changes = state.execute(CHANGE_COUNTS_SQL).fetchone()
    return {
        "current": incoming - changes["added"] + changes["removed"],
        "removed": changes["removed"],
        "added": changes["added"],
        "total": incoming,
    }


_COPY_SPECIAL = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(text: str) -> str:
    """A text field of COPY's text format (labels and comments may hold a backslash or a tab)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_SPECIAL)
    return text


def _array_literal(labels: tuple[str, ...]) -> str:
    """A text[] literal."""
    quoted = ('"' + label.replace("\\", "\\\\").replace('"', '\\"') + '"' for label in labels)
    return "{" + ",".join(quoted) + "}"


def _array_text(labels: tuple[str, ...]) -> str:
    """A text[] literal as a COPY text field."""
    return copy_text(_array_literal(labels))


# Kinds whose normalised values hold only [a-z0-9._@:-] (podmod.lists.parse.normalise): written
# into COPY as they are.
_PLAIN_KINDS = frozenset(("account", "pod", "pdq", "sha256"))
_TAILS_KEPT = 10_000  # distinct details whose COPY text a writing remembers
_IN_INDEX_ORDER = itemgetter(1, 0)  # (value, kind): list_entries_active's order


class CopyRows:
    """Rows as COPY text rows of ENTRY_COLUMNS, between `prefix` and `suffix` (a RowText: the
    readers write their rows so as they read them). Rows share a few Details: each one's columns
    are formatted once."""

    def __init__(self, *, prefix: str = "", suffix: str = "\n") -> None:
        self.prefix = prefix
        self.suffix = suffix
        self._tails: dict[int, tuple[Details, str]] = {}  # by id(), the Details kept alive

    def _tail(self, details: Details) -> str:
        """The text after a row's line number."""
        known = self._tails.get(id(details))
        if known is None or known[0] is not details:
            label, comment, severity, labels, published = details
            known = (
                details,
                f"\t{copy_text(label)}\t{copy_text(comment)}\t{severity}\t"
                f"{_array_text(labels)}\t{copy_text(published)}{self.suffix}",
            )
            if len(self._tails) < _TAILS_KEPT:
                self._tails[id(details)] = known
        return known[1]

    def row(self, kind: str, value: str, line: int, details: Details) -> str:
        if kind not in _PLAIN_KINDS:
            value = copy_text(value)
        return f"{self.prefix}{kind}\t{value}\t{line}{self._tail(details)}"

    def plain(self, kind: str, details: Details) -> tuple[str, str]:
        return f"{self.prefix}{kind}\t", self._tail(details)


def _write_text(copy: psycopg.Copy, blocks: Iterable[str]) -> int:
    """Send blocks of COPY text rows as they come, so that the server stores them while the file
    is still being read; how many rows (each ends with the one newline a row has: copy_text()
    escapes those in values)."""
    count = 0
    for block in blocks:
        copy.write(block)
        count += block.count("\n")
    return count


# podmod.list_entries' indexes over every row (the unique index of the entries in force, none
# backing a constraint; the BRIN of its ranges), as the catalog defines them: dropped and built
# again around a first version's COPY into the empty table. A BRIN kept as the rows come
# summarises none of the pages they fill (a range is summarised by RANGES_SUMMARY_SQL) and costs
# the COPY 0.3-0.6 s at a million rows, on the server's core that stores them; built afterwards it
# reads the table once, as the summary would. The digests' partial index stays: it holds only the
# few entries known by a digest.
ENTRY_INDEXES_SQL = """
SELECT i.relname AS name, pg_get_indexdef(i.oid) AS index_definition
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = 'podmod.list_entries'::regclass
  AND i.relname <> 'list_entries_digests'
ORDER BY i.relname
"""
# A BRIN index leaves the pages added since it was built unsummarised, and every question about
# kinds, versions or ids would read them all: the pages a version added are summarised before it
# commits.
RANGES_SUMMARY_SQL = "SELECT brin_summarize_new_values('podmod.list_entries_ranges'::regclass)"
# Memory for building them: a million entries sort in memory rather than in merged runs on disk
# (for the rest of the sync's transaction only; it sizes index builds alone).
INDEX_BUILD_MEMORY = "256MB"

# The columns the matching's and the versions' plans filter and join on: ANALYZE reads only these
# (the comments, the longest texts, are never a condition; nor the lines and labels).
ANALYZE_ENTRIES_SQL = (
    "ANALYZE podmod.list_entries (list_id, kind, value, removed_in, severity, published)"
)
# The plans of a sync need the table's size and the rough shape of those columns (a few lists,
# kinds and severities; values all distinct): a sample of 3,000 rows tells them as well as the
# server's default of 30,000, in a tenth of the time (0.014 s instead of 0.12 s at 900,000
# entries). Autovacuum's analyses, later, keep the server's setting.
SYNC_STATISTICS_TARGET = "10"


def _analyze(state: psycopg.Connection, statement: str = ANALYZE_ENTRIES_SQL) -> None:
    """ANALYZE (the entries' columns the plans use), on a small sample (SYNC_STATISTICS_TARGET)."""
    previous = state.execute(
        "SELECT current_setting('default_statistics_target') AS target"
    ).fetchone()["target"]
    state.execute(
        "SELECT set_config('default_statistics_target', %s, true)", (SYNC_STATISTICS_TARGET,)
    )
    state.execute(statement)
    state.execute("SELECT set_config('default_statistics_target', %s, true)", (previous,))


def _store_is_empty(state: psycopg.Connection) -> bool:
    return not state.execute("SELECT EXISTS (SELECT 1 FROM podmod.list_entries) AS any").fetchone()[
        "any"
    ]


def _lock_empty_store(state: psycopg.Connection) -> bool:
    """Whether podmod.list_entries is empty and now this transaction's alone until it ends. The
    lock is taken only if nobody else has the table open (NOWAIT): a sync never waits on a reader,
    however long its transaction stays open; it stores the entries the ordinary way instead."""
    if not _store_is_empty(state):
        return False
    try:
        with state.transaction():
            state.execute("LOCK TABLE podmod.list_entries IN ACCESS EXCLUSIVE MODE NOWAIT")
    except psycopg.errors.LockNotAvailable:
        return False
    return _store_is_empty(state)  # (still: nobody wrote to it before the lock)


def _copy_entries(
    state: psycopg.Connection, list_id: int, number: int, reading: ListReader, phases: Phases
) -> int:
    """COPY the rows straight into podmod.list_entries as version `number`. Into the empty table
    (podmod's first list) they stream as they are read, with its indexes dropped, and the indexes
    are built afterwards in bulk, in about half the time a million rows take to maintain them
    (readers of the table wait until the sync commits, which only a first sync asks of them).
    Into a table that holds other lists they go sorted, so that its indexes grow at their end.
    Timed in `phases`: rows (reading the file and storing its rows), indexes."""
    with phases.timed("indexes"):
        empty = _lock_empty_store(state)
    text = CopyRows(prefix=f"{list_id}\t", suffix=f"\t{number}\n")
    if empty:
        blocks = reading.text(text)
    else:
        with phases.timed("rows"):  # (the whole file read, to be sorted)
            blocks = text_blocks(sorted(reading.rows(), key=_IN_INDEX_ORDER), text)
    with phases.timed("indexes"):
        indexes = state.execute(ENTRY_INDEXES_SQL).fetchall() if empty else []
        if indexes:
            state.execute(
                "SELECT set_config('maintenance_work_mem', %s, true)", (INDEX_BUILD_MEMORY,)
            )
        for index in indexes:
            state.execute(sql.SQL("DROP INDEX podmod.{}").format(sql.Identifier(index["name"])))
    columns = ", ".join(("list_id", *ENTRY_COLUMNS, "added_in"))
    with (
        phases.timed("rows"),
        state.cursor().copy(f"COPY podmod.list_entries ({columns}) FROM STDIN") as copy,
    ):
        count = _write_text(copy, blocks)
    with phases.timed("indexes"):
        for index in indexes:
            state.execute(index["index_definition"])
    with phases.timed("rows"):
        _merge_repeats(state, reading, (list_id, number))
    return count


def store_version(
    config: Config,
    state: psycopg.Connection,
    list_row: dict[str, Any],
    subscription: ListConfig,
    reading: ListReader,
    body: bytes,
    *,
    signed: TrustedComment | None,
    approved_by: str | None = None,
    number: int | None = None,
    digest: str | None = None,
    approved_before: bool = False,
) -> VersionOutcome:
    """Store the list file `reading` reads (not read yet: its rows stream into the database as
    they are read) as the list's next version inside the caller's transaction: applied (entries
    updated), or held when it removes too much and nobody approved it. A file refused for its
    rows (ListFormatError, by the subscription's skip_invalid and require_canary) is refused once
    read; the caller rolls the transaction back. `digest`: the file's content_digest(), when the
    caller has it (a million rows' file is hashed once per sync). `approved_before`: a podmin
    approved a version of this very file before, which is not held again."""
    list_id = list_row["id"]
    phases = Phases()
    with phases.timed("record"):
        if number is None:
            latest = latest_version(state, list_id)
            number = (latest["number"] if latest else 0) + 1
        in_force = state.execute(
            "SELECT EXISTS (SELECT 1 FROM podmod.list_entries WHERE list_id = %s"
            " AND removed_in IS NULL) AS any",
            (list_id,),
        ).fetchone()["any"]
    with collector_paused():
        if not in_force:
            # A first version (or one after an empty one) removes nothing and cannot be held:
            # its entries go straight into the table, with no staging and no anti-join.
            total = _copy_entries(state, list_id, number, reading, phases)
            counts = {"current": 0, "removed": 0, "added": total, "total": total}
        else:
            with phases.timed("changes"):
                _analyze(state)  # plans below must see its real size
            with phases.timed("rows"):
                incoming = _stage(state, reading)
    reading.check(
        skip_invalid=subscription.skip_invalid, require_canary=subscription.require_canary
    )
    if in_force:
        with phases.timed("changes"):
            counts = _compare(state, list_id, incoming)
    share = subscription.max_removal_share or config["list_sync.max_removal_share"]
    removal = counts["removed"] / counts["current"] if counts["current"] else 0.0
    common = {
        "list": list_id,
        "number": number,
        "sha": digest or content_digest(body),
        "entries": counts["total"],
        "added": counts["added"],
        "removed": counts["removed"],
        "skipped": len(reading.errors),
        "format": reading.format,
        "comment": signed.text if signed else None,
        "signed_at": signed.signed_at if signed else None,
        "signed_file": signed.file if signed else None,
        "obfuscated": reading.obfuscated,
        "patterns": reading.patterns,
        "repeated": reading.duplicates,
        "unblocked": reading.unblocked,
        "hides_blocks": reading.hides_blocks,
        "canaries": reading.canaries,
        "reader": READER,
    }
    if removal > share and approved_by is None and not approved_before:
        reason = (
            f"{REMOVES_TOO_MUCH}{counts['removed']:,} of {counts['current']:,} entries"
            f" ({share_text(removal)}), more than the {share_text(share)} allowed"
        )
        with phases.timed("record"):
            held = hold(state, common, reason, body, phases)
        with phases.timed("changes"):
            # (worked out already: kept now, its page's first view waits for nothing)
            for statement in _KEEP_STAGED_CHANGES_SQL.split(";\n\n"):
                state.execute(statement, {"list": list_id, "number": number})
        return held
    with phases.timed("record"):
        _supersede_held(state, list_id, number)
    if in_force:
        with phases.timed("changes"):
            for statement in APPLY_ENTRIES_SQL.split(";\n\n"):
                state.execute(statement, {"list": list_id, "number": number})
    with phases.timed("indexes"):
        state.execute(RANGES_SUMMARY_SQL)
    with phases.timed("record"):
        state.execute(
            "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
            " removed, skipped_rows, format, signed_comment, signed_at, signed_file,"
            " obfuscated_rows, pattern_rows, repeated_rows, unblocked_rows, canaries, reader,"
            " hides_blocks, applied_at, approved_by) VALUES"
            " (%(list)s, %(number)s, %(sha)s, 'applied', %(entries)s, %(added)s, %(removed)s,"
            " %(skipped)s, %(format)s, %(comment)s, %(signed_at)s, %(signed_file)s,"
            " %(obfuscated)s, %(patterns)s, %(repeated)s, %(unblocked)s, %(canaries)s,"
            " %(reader)s, %(hides_blocks)s, now(), %(approved_by)s)"
            " ON CONFLICT (list_id, number) DO UPDATE SET status = 'applied', held_body = NULL,"
            " applied_at = now(), approved_by = excluded.approved_by",
            common | {"approved_by": approved_by},
        )
        state.execute(
            "UPDATE podmod.lists SET current_version = %s WHERE id = %s", (number, list_id)
        )
    with phases.timed("indexes"):
        _analyze(state)  # a version may bring a million rows at once
    return VersionOutcome(
        number, "applied", counts["total"], counts["added"], counts["removed"], None, phases, common
    )


def share_text(share: float) -> str:
    """A share as a podmin reads it: "12%", and below 1% to two places ("0.05%"), never "0%"."""
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.2%}"


def _supersede_held(state: psycopg.Connection, list_id: int, number: int) -> None:
    """Older held versions give way to version `number`, whatever becomes of it; what the list's
    held versions would have changed (held_changes) goes, as `number`, held or applied, is
    compared with the entries in force anew."""
    state.execute(
        "UPDATE podmod.list_versions SET status = 'superseded', held_body = NULL, ended_at = now()"
        " WHERE list_id = %s AND status = 'held' AND number <> %s",
        (list_id, number),
    )
    state.execute("DELETE FROM podmod.held_changes WHERE list_id = %s", (list_id,))


def hold(
    state: psycopg.Connection,
    record: dict[str, Any],
    reason: str,
    body: bytes,
    phases: Phases | None = None,
) -> VersionOutcome:
    """Keep a version, with its file, held for approval for `reason`, inside the caller's
    transaction: `record`, what store_version() would write of it (VersionOutcome.record). Its
    entries are not stored: approving it reads the file again (podmod.lists.sync.approve_version).
    """
    _supersede_held(state, record["list"], record["number"])
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, skipped_rows, format, signed_comment, signed_at, signed_file,"
        " obfuscated_rows, pattern_rows, repeated_rows, unblocked_rows, canaries, reader,"
        " hides_blocks, held_reason, held_body, last_served_at) VALUES"
        " (%(list)s, %(number)s, %(sha)s, 'held', %(entries)s, %(added)s, %(removed)s,"
        " %(skipped)s, %(format)s, %(comment)s, %(signed_at)s, %(signed_file)s,"
        " %(obfuscated)s, %(patterns)s, %(repeated)s, %(unblocked)s, %(canaries)s,"
        " %(reader)s, %(hides_blocks)s, %(reason)s, %(body)s, now())",
        record | {"reason": reason, "body": body},
    )
    return VersionOutcome(
        record["number"],
        "held",
        record["entries"],
        record["added"],
        record["removed"],
        reason,
        phases if phases is not None else Phases(),
        record,
    )


# How long a held version that flapped (withdrawn, then its file served again) stays held while
# its server serves the version in force's file: once only that file is served for this long, the
# publisher took the change back, and the held version is withdrawn.
FLAP_SETTLES = timedelta(days=1)


def held_version(state: psycopg.Connection, list_id: int) -> dict[str, Any] | None:
    """The list's version held for approval now, if one is (not always its latest: a version
    held again after a later one took its place)."""
    return state.execute(
        "SELECT * FROM podmod.list_versions WHERE list_id = %s AND status = 'held'"
        " ORDER BY number DESC LIMIT 1",
        (list_id,),
    ).fetchone()


def versions_of_file(
    state: psycopg.Connection, list_id: int, digest: str, in_force: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The newest of a list's versions whose file had this content digest (None: no version
    had it), and the newest of them a podmin approved over a version of the same content as the
    one in force now, `in_force` (None: none): what it changes now is what they approved."""
    rows = state.execute(
        "SELECT v.*, (SELECT b.sha256 FROM podmod.list_versions b WHERE b.list_id = v.list_id"
        " AND b.number < v.number AND b.status = 'applied' ORDER BY b.number DESC LIMIT 1)"
        " AS approved_over FROM podmod.list_versions v WHERE v.list_id = %s AND v.sha256 = %s"
        " ORDER BY v.number DESC",
        (list_id, digest),
    ).fetchall()
    over = in_force["sha256"] if in_force is not None else None
    approved = next(
        (row for row in rows if row["approved_by"] is not None and row["approved_over"] == over),
        None,
    )
    return (rows[0] if rows else None), approved


def hold_again(
    state: psycopg.Connection,
    list_id: int,
    number: int,
    body: bytes,
    signed: TrustedComment | None,
    *,
    told: bool,
) -> None:
    """Hold version `number` again (withdrawn or superseded: its file is served again), with the
    file and signature as served now, inside the caller's transaction; any other held version
    gives way to it. `told`: the staff are told (no version was held: it flapped, withdrawn and
    back), else it is counted as a quiet repeat. What it would change is worked out anew when
    asked (held_changes)."""
    _supersede_held(state, list_id, number)
    state.execute(
        "UPDATE podmod.list_versions SET status = 'held', held_body = %(body)s, ended_at = NULL,"
        " changes_kept = false, signed_comment = %(comment)s, signed_at = %(signed_at)s,"
        " signed_file = %(file)s, last_served_at = now(),"
        " held_again_at = CASE WHEN %(told)s THEN now() ELSE held_again_at END,"
        " served_again = served_again + CASE WHEN %(told)s THEN 0 ELSE 1 END"
        " WHERE list_id = %(list)s AND number = %(number)s",
        {
            "body": body,
            "comment": signed.text if signed else None,
            "signed_at": signed.signed_at if signed else None,
            "file": signed.file if signed else None,
            "told": told,
            "list": list_id,
            "number": number,
        },
    )


def still_served(state: psycopg.Connection, list_id: int, number: int) -> None:
    """Held version `number`'s file is served again, as when it was held."""
    state.execute(
        "UPDATE podmod.list_versions SET last_served_at = now()"
        " WHERE list_id = %s AND number = %s AND status = 'held'",
        (list_id, number),
    )


def stays_held(state: psycopg.Connection, list_id: int, number: int) -> int | None:
    """Whether held version `number` stays held while its server serves the version in force's
    file again: it flapped (withdrawn once, then its own file served again), and its own file was
    served within FLAP_SETTLES. How many times the version in force's came back since (counted,
    not logged); None: it does not stay (it is withdrawn)."""
    row = state.execute(
        "UPDATE podmod.list_versions SET served_again = served_again + 1"
        " WHERE list_id = %s AND number = %s AND status = 'held' AND held_again_at IS NOT NULL"
        " AND last_served_at > now() - %s RETURNING served_again",
        (list_id, number, FLAP_SETTLES),
    ).fetchone()
    return row["served_again"] if row else None


def served_again(state: psycopg.Connection, list_id: int, number: int) -> int:
    """Version `number`'s file is served again, and nothing is told (a rejected file): counted;
    how many times in all."""
    return state.execute(
        "UPDATE podmod.list_versions SET served_again = served_again + 1,"
        " last_served_at = now() WHERE list_id = %s AND number = %s RETURNING served_again",
        (list_id, number),
    ).fetchone()["served_again"]


def version_diff(
    state: psycopg.Connection, name: str, number: int | None = None, *, limit: int = 50
) -> dict[str, Any]:
    """What a version (default: the newest) added and removed, with the first `limit` of each
    as moderators read them (entry_text)."""
    out = version_changes(state, name, number, limit=limit)
    for key in ("added", "removed"):
        out[key] = [entry_text(**row) for row in out[key]]
        del out[f"more_{key}"]
    return out


# A version's page of changes: its added or removed entries, in (kind, value) order after a
# cursor's, at most LIMIT (+1, to tell that there are more). Held versions' changes are kept in
# held_changes (held_changes_kept()), an applied version's are its entries.
_APPLIED_PAGE_SQL = """
SELECT kind, value, published FROM podmod.list_entries
WHERE list_id = %(list)s AND {column} = %(number)s AND (kind, value) > (%(kind)s, %(value)s)
ORDER BY kind, value LIMIT %(limit)s
"""
_HELD_PAGE_SQL = """
SELECT kind, value, published FROM podmod.held_changes
WHERE list_id = %(list)s AND number = %(number)s AND change = %(change)s
  AND (kind, value) > (%(kind)s, %(value)s)
ORDER BY kind, value LIMIT %(limit)s
"""
# What a held version staged in incoming_entries adds and removes, by kind and value: kept, in
# the order of held_changes' key (written in order, its index grows at its end; the staged rows
# are one per kind and value, as the entries in force are).
_KEEP_HELD_CHANGES_SQL = """
INSERT INTO podmod.held_changes (list_id, number, change, kind, value, published)
SELECT %(list)s, %(number)s, 'added', i.kind, i.value, i.published FROM incoming_entries i
WHERE NOT EXISTS (SELECT 1 FROM podmod.list_entries e WHERE e.list_id = %(list)s
                  AND e.removed_in IS NULL AND e.kind = i.kind AND e.value = i.value)
ORDER BY i.kind COLLATE "C", i.value;

INSERT INTO podmod.held_changes (list_id, number, change, kind, value, published)
SELECT %(list)s, %(number)s, 'removed', e.kind, e.value, e.published FROM podmod.list_entries e
WHERE e.list_id = %(list)s AND e.removed_in IS NULL
  AND NOT EXISTS (SELECT 1 FROM incoming_entries i WHERE i.kind = e.kind AND i.value = e.value)
ORDER BY e.kind COLLATE "C", e.value;

UPDATE podmod.list_versions SET changes_kept = true
WHERE list_id = %(list)s AND number = %(number)s
"""


def version_changes(
    state: psycopg.Connection,
    name: str,
    number: int | None = None,
    *,
    limit: int = 50,
    added_after: tuple[str, str] | None = None,
    removed_after: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """What a version (default: the newest) added and removed: a page of each, at most `limit`
    entries ({kind, value, published}) in (kind, value) order after the (kind, value) given,
    and whether more follow (`more_added`, `more_removed`). A held version's changes are worked
    out from its file once, at the first call, and kept (held_changes_kept)."""
    list_row = state.execute(
        "SELECT id, severity FROM podmod.lists WHERE name = %s", (name,)
    ).fetchone()
    if list_row is None:
        raise ListStateError(f"There is no list named {name!r}; see `podmod lists show`.")
    # A number past PostgreSQL's integer (a typo) names no version; the query would fail on it.
    # (Its file, held_body, is read only to work out a held version's changes, once.)
    version = (
        state.execute(
            "SELECT number, status, held_reason, approved_by, rejected_by, rejected_reason, format,"
            " signed_at, signed_comment, added, removed, changes_kept, fetched_at, applied_at,"
            " ended_at, held_again_at, served_again, entries_pruned_at, entries_pruned_by"
            " FROM podmod.list_versions"
            " WHERE list_id = %s"
            " AND (%s::integer IS NULL OR number = %s) ORDER BY number DESC LIMIT 1",
            (list_row["id"], number, number),
        ).fetchone()
        if number is None or -(2**31) <= number < 2**31
        else None
    )
    if version is None:
        which = "yet" if number is None else str(number)
        raise ListStateError(f"List {name!r} has no version {which}; see `podmod lists show`.")
    out: dict[str, Any] = {
        "list": name,
        "version": version["number"],
        "status": version["status"],
        "held_reason": version["held_reason"],
        "approved_by": version["approved_by"],
        "rejected_by": version["rejected_by"],
        "rejected_reason": version["rejected_reason"],
        # (when it was fetched, applied, and stopped waiting: rejected, withdrawn, superseded)
        **{
            key: version[key].isoformat() if version[key] else None
            for key in (
                "fetched_at",
                "applied_at",
                "ended_at",
                "held_again_at",
                "entries_pruned_at",
            )
        },
        # (the setting its ended entries were pruned by: podmod.retention; None: all kept)
        "entries_pruned_by": version["entries_pruned_by"],
        # (its file served again since: counted while its server flaps, or after its rejection)
        "served_again": version["served_again"],
        "format": version["format"],
        "signed": describe_signature(version),
        "signed_at": version["signed_at"].isoformat() if version["signed_at"] else None,
        "added_count": version["added"],
        "removed_count": version["removed"],
    }
    held = version["status"] == "held" and (
        version["changes_kept"] or held_changes_kept(state, list_row, version["number"])
    )
    for key, column, after in (
        ("added", "added_in", added_after),
        ("removed", "removed_in", removed_after),
    ):
        if (version["status"] == "applied" and not version["entries_pruned_at"]) or held:
            statement = _HELD_PAGE_SQL if held else _APPLIED_PAGE_SQL.format(column=column)
            kind, value = after or ("", "")
            rows = state.execute(
                statement,
                {
                    "list": list_row["id"],
                    "number": version["number"],
                    "change": key,
                    "kind": kind,
                    "value": value,
                    "limit": limit + 1,
                },
            ).fetchall()
        else:
            rows = []
        out[key], out[f"more_{key}"] = rows[:limit], len(rows) > limit
    state.rollback()  # (read alone: no transaction stays open on the caller's connection)
    return out


# Why a version that was never applied lists no entries beside its counts (`lists diff`, its page).
UNKEPT_CHANGES = {
    "superseded": "a later version took its place; entries are not kept for it",
    "rejected": "never applied: what it would have changed is not kept",
    "withdrawn": "never applied: what it would have changed is not kept",
}


# A story's parts: its text, and whether the text is another's (a list server's reason for a
# hold, a podmin's for a rejection), which a page isolates (<bdi>) and a terminal shows printable.
StoryPart = tuple[str, bool]


def version_story_parts(diff: dict[str, Any]) -> list[StoryPart]:
    """What became of a version (version_changes()), in the words `lists diff` and its page use:
    "held since 2026-12-07 10:40 UTC: why", "it was held (why), then rejected by
    podmin@pod.example on 2026-12-07 10:42 UTC: why"; [] for a version applied as it came."""
    from podmod.lists.fetch import utc_minute

    if diff["status"] == "held":
        held = utc_minute(datetime.fromisoformat(diff["fetched_at"]))
        return [
            (f"held since {held}: ", False),
            (diff["held_reason"] or "", True),
            (flapping_text(diff), False),
        ]
    if not diff["held_reason"]:
        return []
    fate = fate_facts(diff)
    return [("it was held (", False), (diff["held_reason"], True), ("), then ", False)] + (
        fate_parts(fate) if fate else [("", False)]
    )


def version_story(diff: dict[str, Any]) -> str:
    """The same as one line of text."""
    return "".join(text for text, _ in version_story_parts(diff))


def pruned_text(diff: dict[str, Any]) -> str:
    """What `lists diff` and a version's page say of a version whose ended entries were pruned
    (podmod.retention), instead of a list of its changes that is no longer whole; "" for another."""
    from podmod.lists.fetch import utc_minute

    if not diff["entries_pruned_at"]:
        return ""
    return (
        f"The entries this version added and removed that later versions ended were pruned on"
        f" {utc_minute(datetime.fromisoformat(diff['entries_pruned_at']))}"
        f" ({diff['entries_pruned_by']}): only its counts are kept."
    )


def fate_facts(version: dict[str, Any]) -> dict[str, Any] | None:
    """What became of a version that was held (a version_changes() or a list_versions row, its
    times as text or datetimes), as facts: status, who ("by"), when ("at": "2026-12-07 10:42
    UTC"), the rejection's reason as its podmin wrote it, and how often a rejected version's file
    was served again; None while it waits. The staff's mail says them in its recipient's
    language; fate_parts in podmod's own words."""
    from podmod.lists.fetch import utc_minute

    status = version["status"]
    if status not in ("applied", "rejected", "withdrawn", "superseded"):
        return None
    moment = version.get("applied_at" if status == "applied" else "ended_at")
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return {
        "status": status,
        "by": version["approved_by"] if status == "applied" else version.get("rejected_by"),
        "at": utc_minute(moment) if moment else None,
        "reason": version.get("rejected_reason") or "" if status == "rejected" else None,
        "served_again": version.get("served_again") or 0,
    }


def fate_parts(fate: dict[str, Any]) -> list[StoryPart]:
    """Those facts (fate_facts) in the words the version's page, `lists diff` and the staff's
    English mail use: "approved by podmin@pod.example on 2026-12-07 10:42 UTC", "rejected by … on
    …: why", "withdrawn on …: its server served the version in force again", "a later version
    took its place on …"."""
    on = f" on {fate['at']}" if fate["at"] else ""
    status = fate["status"]
    if status == "applied":
        return [(f"approved by {fate['by']}{on}", False)]
    if status == "rejected":
        served = fate["served_again"]
        return [
            (f"rejected by {fate['by']}{on}: ", False),
            (fate["reason"], True),
            (f"; its file was served again {times_text(served)} since, never taken", False)
            if served
            else ("", False),
        ]
    if status == "withdrawn":
        return [(f"withdrawn{on}: its server served the version in force again", False)]
    return [(f"a later version took its place{on}", False)]


def times_text(count: int) -> str:
    """ "once", "twice", "5 times"."""
    return {1: "once", 2: "twice"}.get(count, f"{count:,} times")


def flapping_text(diff: dict[str, Any]) -> str:
    """What a held version's page and `lists diff` say of a source flapping between its file and
    the version in force's (versions held again: hold_again, stays_held); "" for another."""
    from podmod.lists.fetch import utc_minute

    if not diff["held_again_at"]:
        return ""
    text = (
        f"; held again on {utc_minute(datetime.fromisoformat(diff['held_again_at']))}, its file"
        " served again after it was withdrawn"
    )
    if diff["served_again"]:
        text += (
            f", and the version in force's {times_text(diff['served_again'])} since: a source"
            " flapping between the two (a cache or load balancer serving both)"
        )
    return text


# The same, kept by the sync that holds the version for the entries it removes, from the changes it
# worked out (entry_changes, CHANGES_SQL): an added entry is one with none in force, a removed one
# an entry in force with no row. A version held later (for the people it matches, or flapping)
# has them worked out at its page's first view: a million rows' file read again took 10-13 s.
_KEEP_STAGED_CHANGES_SQL = """
INSERT INTO podmod.held_changes (list_id, number, change, kind, value, published)
SELECT %(list)s, %(number)s, 'added', kind, value, published FROM entry_changes
WHERE current_value IS NULL
ORDER BY kind COLLATE "C", value;

INSERT INTO podmod.held_changes (list_id, number, change, kind, value, published)
SELECT %(list)s, %(number)s, 'removed', e.kind, e.value, e.published
FROM entry_changes c
JOIN podmod.list_entries e ON e.value = c.current_value AND e.kind = c.current_kind
                          AND e.list_id = %(list)s AND e.removed_in IS NULL
WHERE c.value IS NULL
ORDER BY e.kind COLLATE "C", e.value;

UPDATE podmod.list_versions SET changes_kept = true
WHERE list_id = %(list)s AND number = %(number)s
"""


def held_changes_kept(state: psycopg.Connection, list_row: dict[str, Any], number: int) -> bool:
    """Work out what held version `number` of a list adds and removes (its file read and
    staged, beside the entries in force) and keep it in held_changes, once: the first caller
    does it, those who come at the same time wait for it and find it done. False when the
    version is no longer held (approved or superseded meanwhile)."""
    state.rollback()
    version = state.execute(
        "SELECT format, held_body, changes_kept FROM podmod.list_versions"
        " WHERE list_id = %s AND number = %s AND status = 'held' FOR UPDATE",
        (list_row["id"], number),
    ).fetchone()
    if version is not None and not version["changes_kept"]:
        try:
            reading = ListReader(
                bytes(version["held_body"]),
                format=version["format"],
                severity=list_row["severity"],
            )
        except PodmodError as error:
            state.rollback()
            raise ListStateError(
                f"Held version {number} cannot be read again ({error}); the next sync fetches"
                " the list anew."
            ) from None
        _stage(state, reading)
        for statement in _KEEP_HELD_CHANGES_SQL.split(";\n\n"):
            state.execute(statement, {"list": list_row["id"], "number": number})
    state.commit()
    return version is not None


LABELS_SHOWN = 10  # (of a list's labels in use, shown by lists_overview())


def never_synced(config: Config, rows: list[dict[str, Any]]) -> list[ListConfig]:
    """The subscriptions no sync has read yet: in the configuration, not among lists_overview()'s
    `rows` (the lists page and `lists show` name them)."""
    synced = {row["name"] for row in rows}
    return [subscription for subscription in config.lists if subscription.name not in synced]


def lists_overview(state: psycopg.Connection, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Every list's state: version in force and how its file was read (format, obfuscated rows
    skipped, canaries), entries by severity, the labels they carry (the LABELS_SHOWN most used,
    with how many entries each, and how many labels in all), settings, last success, last error,
    held versions (and why the latest is held)."""
    return _overview(state, limit).fetchall()


def _overview(state: psycopg.Connection, limit: int | None) -> psycopg.Cursor[Any]:
    return state.execute(
        """
        SELECT l.name, l.url, l.policy, l.origin, l.current_version AS version, l.kinds, l.labels,
               l.lock_labels, l.format AS format_setting, l.require_canary,
               l.severity AS severity_setting,
               v.format, v.obfuscated_rows, v.pattern_rows, v.repeated_rows, v.unblocked_rows,
               v.hides_blocks,
               v.canaries,
               v.skipped_rows,
               v.signed_comment, v.signed_at, v.signed_file,
               coalesce(e.entries, 0) AS entries, coalesce(e.suspend, 0) AS suspend,
               coalesce(e.silence, 0) AS silence, coalesce(e.noop, 0) AS noop,
               e.labels_in_use, e.labels_used,
               l.last_success_at, l.last_attempt_at, l.last_error, l.last_error_at, l.moved_to,
               CASE WHEN l.retry_after > now() THEN l.retry_after END AS retry_after,
               coalesce((SELECT array_agg(h.number ORDER BY h.number)
                         FROM podmod.list_versions h
                         WHERE h.list_id = l.id AND h.status = 'held'), '{}') AS held,
               (SELECT h.held_reason FROM podmod.list_versions h
                WHERE h.list_id = l.id AND h.status = 'held'
                ORDER BY h.number DESC LIMIT 1) AS held_reason,
               (SELECT count(*) FROM podmod.signals s
                WHERE s.list_id = l.id AND s.retracted_at IS NULL) AS matches
        FROM podmod.lists l
        LEFT JOIN podmod.list_versions v ON v.list_id = l.id AND v.number = l.current_version
        LEFT JOIN LATERAL (
            -- (one pass over the entries in force, grouped by severity and labels: the counts
            -- of each severity, then of each label, come from those groups)
            WITH kept AS (SELECT severity, labels, count(*) AS n
                          FROM podmod.list_entries WHERE list_id = l.id AND removed_in IS NULL
                          GROUP BY severity, labels),
                 used AS (SELECT label, sum(n)::bigint AS n
                          FROM kept, unnest(kept.labels) AS label GROUP BY label)
            SELECT severities.*, in_use.*
            FROM (SELECT sum(n)::bigint AS entries,
                         sum(n) FILTER (WHERE severity = 'suspend')::bigint AS suspend,
                         sum(n) FILTER (WHERE severity = 'silence')::bigint AS silence,
                         sum(n) FILTER (WHERE severity = 'noop')::bigint AS noop
                  FROM kept) severities,
                 (SELECT coalesce(jsonb_agg(jsonb_build_object('label', label, 'entries', n)
                                            ORDER BY n DESC, label)
                                  FILTER (WHERE rank <= %(shown)s), '[]') AS labels_in_use,
                         count(*) AS labels_used
                  FROM (SELECT label, n, row_number() OVER (ORDER BY n DESC, label) AS rank
                        FROM used) ranked) in_use) e ON true
        ORDER BY l.origin = 'local', l.name
        LIMIT %(limit)s
        """,
        {"shown": LABELS_SHOWN, "limit": limit},
    )


def overview_keys(state: psycopg.Connection) -> list[str]:
    """The keys of a lists_overview() row, for a list no sync has read yet to have them too."""
    return [column.name for column in _overview(state, 0).description or []]


# What podmod says of a list its server moved for good (every redirect to `url` permanent): the
# sync, `podmod check`, `podmod lists show` and the lists page.
MOVED = (
    "its server says it moved for good to {url}: set its url to that address before the old one"
    " stops redirecting"
)


def retry_after_text(name: str, retry_after: datetime) -> str:
    """What `lists show` and the lists page say of a list whose server asked to be left alone
    until `retry_after` (as the sync and `podmod check` say it)."""
    from podmod.lists.fetch import utc_minute

    return (
        f"its server asked not to be asked before {utc_minute(retry_after)} (Retry-After): the"
        f" syncs leave it alone until then (`podmod lists sync --now --name {name}` asks it"
        " anyway)"
    )


def labels_in_use_text(row: dict[str, Any]) -> str:
    """The labels a list's entries in force carry, the most used first, for `lists show` and the
    lists page (what a subscription's `labels` and `lock_labels` can name): "hate-speech 102,
    racism 66 and 12 more"; "" when none has one."""
    shown = ", ".join(f"{used['label']} {used['entries']:,}" for used in row["labels_in_use"])
    more = row["labels_used"] - len(row["labels_in_use"])
    return f"{shown} and {more:,} more" if more > 0 else shown


def entries_text(count: int) -> str:
    """ "1 entry", "900,000 entries"."""
    return f"{count:,} {'entry' if count == 1 else 'entries'}"


def describe_reading(row: dict[str, Any]) -> str:
    """How a list's version in force was read, in words: "mastodon-csv; 1,200 entries (1,100
    suspend, 80 silence, 20 noop); 130 obfuscated rows skipped; canary aud.invalid"."""
    parts = [row["format"]] if row.get("format") else []
    severities = [
        f"{row[name]:,} {name}" for name in ("suspend", "silence", "noop") if row.get(name)
    ]
    entries = entries_text(row["entries"])
    parts.append(f"{entries} ({', '.join(severities)})" if severities else entries)
    parts += skipped_notes(
        obfuscated=row.get("obfuscated_rows") or 0,
        patterns=row.get("pattern_rows") or 0,
        repeated=row.get("repeated_rows") or 0,
        unblocked=row.get("unblocked_rows") or 0,
        hides_blocks=bool(row.get("hides_blocks")),
        invalid=row.get("skipped_rows") or 0,
        canaries=row.get("canaries") or [],
        format=row.get("format") or "",
    )
    return "; ".join(parts)


def skipped_notes(
    *,
    obfuscated: int,
    unblocked: int,
    invalid: int,
    canaries: list[str],
    patterns: int = 0,
    repeated: int = 0,
    hides_blocks: bool = False,
    format: str = "",
) -> list[str]:
    """What a file (of this `format`) held besides its entries, for the sync log and `lists
    show`: "130 obfuscated rows skipped", "4 repeated rows merged", "canary aud.invalid", and that
    its publisher keeps some blocks out of it."""
    # (rows that block nothing: RapidBlock's isBlocked false; the open peers in GoToSocial's
    # answer of its peers, read as mastodon-json)
    why = "open peers" if format == "mastodon-json" else "isBlocked false"
    notes = [
        f"{count:,} {what} {'row' if count == 1 else 'rows'} skipped"
        for count, what in (
            (obfuscated, "obfuscated"),
            (patterns, "pattern"),
            (unblocked, f"not blocked ({why})"),
            (invalid, "invalid"),
        )
        if count
    ]
    if repeated:
        notes.append(f"{repeated:,} repeated {'row' if repeated == 1 else 'rows'} merged")
    if canaries:
        notes.append("canary " + ", ".join(canaries))
    if hides_blocks:
        notes.append("the server keeps some of its blocks out of it (MRF transparency exclusions)")
    return notes


def entry_text(kind: str, value: str, published: str = "") -> str:
    """An entry as moderators read it: `pod:alpha.example`, for an obfuscated domain matched by
    its digest `pod:exa**le.org (SHA-256 3f2a…)`, for one host alone `pod:alpha.example (this host
    only)` (as podmod.entry_text() in SQL, migration 0030)."""
    return "".join(entry_parts(kind, value, published))


def entry_parts(kind: str, value: str, published: str = "") -> tuple[str, str, str]:
    """entry_text() in three parts: podmod's words before the text a list shows, that text (an
    obfuscated row's is its publisher's, for a page to isolate), podmod's words after it."""
    if published:
        return f"{kind}:", published, f" (SHA-256 {value.removeprefix('sha256:')[:12]}…)"
    if kind == "pod" and value.startswith(EXACT_HOST):
        return f"{kind}:", value.removeprefix(EXACT_HOST), " (this host only)"
    return f"{kind}:", value, ""


# A held version ends without being applied: its publisher withdrew it (its server serves the
# version in force's file, or its entries, again) or a podmin rejected it (`podmod lists reject`).
# Either way its file and the changes worked out from it go, and it can no longer be approved.
_END_HELD_SQL = """
UPDATE podmod.list_versions SET status = %(status)s, held_body = NULL, rejected_by = %(by)s,
       rejected_reason = %(reason)s, ended_at = now()
WHERE list_id = %(list)s AND number = %(number)s AND status = 'held'
"""


def end_held(
    state: psycopg.Connection,
    list_id: int,
    number: int,
    status: str,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> bool:
    """End held version `number` as `withdrawn` or `rejected` (`by`, `reason`: the podmin's),
    inside the caller's transaction; False when it was not held."""
    ended = state.execute(
        _END_HELD_SQL,
        {"status": status, "by": by, "reason": reason, "list": list_id, "number": number},
    ).rowcount
    state.execute(
        "DELETE FROM podmod.held_changes WHERE list_id = %s AND number = %s", (list_id, number)
    )
    return bool(ended)


def version_row(state: psycopg.Connection, list_id: int, number: int | None) -> dict | None:
    """A version's row (None: no such version, or no number)."""
    if number is None:
        return None
    return state.execute(
        "SELECT * FROM podmod.list_versions WHERE list_id = %s AND number = %s", (list_id, number)
    ).fetchone()


def keep_file_of(
    state: psycopg.Connection, list_id: int, number: int, digest: str, signed: TrustedComment | None
) -> None:
    """The version in force takes the digest and signature of a file whose entries are its own
    (a "generated at" line, rows in another order, or the same file read again after an upgrade,
    by this podmod's READER): the next sync of the same bytes finds them unchanged at once, and a
    file signed before this one, the version's first file included, is refused as a replay, as
    the newest signed time stored is now this file's."""
    state.execute(
        "UPDATE podmod.list_versions SET sha256 = %s, signed_comment = %s, signed_at = %s,"
        " signed_file = %s, reader = %s WHERE list_id = %s AND number = %s",
        (
            digest,
            signed.text if signed else None,
            signed.signed_at if signed else None,
            signed.file if signed else None,
            READER,
            list_id,
            number,
        ),
    )


def ended_holds(state: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Each list's latest version where it is a held version that ended unapplied (rejected or
    withdrawn), by list name: number, status, rejected_by, rejected_reason, ended_at (`lists
    show` and the lists page)."""
    rows = state.execute(
        "SELECT DISTINCT ON (l.name) l.name, v.number, v.status, v.rejected_by,"
        " v.rejected_reason, v.ended_at FROM podmod.lists l"
        " JOIN podmod.list_versions v ON v.list_id = l.id ORDER BY l.name, v.number DESC"
    ).fetchall()
    return {row["name"]: row for row in rows if row["status"] in ("rejected", "withdrawn")}


def ended_hold_json(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A held version that ended unapplied (ended_holds) as `lists show --json` gives it."""
    if row is None:
        return None
    return {
        "version": row["number"],
        "status": row["status"],
        "by": row["rejected_by"],
        "reason": row["rejected_reason"],
        "at": row["ended_at"].isoformat() if row["ended_at"] else None,
    }


def ended_hold_text(row: dict[str, Any]) -> str:
    """What `lists show` and the lists page say of a held version that ended unapplied
    (ended_holds)."""
    from podmod.lists.fetch import utc_minute

    at = f" on {utc_minute(row['ended_at'])}" if row["ended_at"] else ""
    if row["status"] == "rejected":
        return (
            f"version {row['number']} rejected by {row['rejected_by']}{at}: "
            f"{row['rejected_reason']} (the same file is not taken again)"
        )
    return (
        f"version {row['number']} withdrawn by its publisher{at} (its server serves the version"
        " in force again)"
    )
