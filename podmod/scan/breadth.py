"""Content entries that match far too broadly (a list's `phrase,the`, a bare host every link goes
to, a common image): held for approval when the distinct authors an entry has matched pass the
threshold the lists use (list_sync.max_new_match_share of the people the pod knows), or
list_sync.max_content_authors if fewer, and NEW_MATCHES_FLOOR; their matches retracted and no
longer stored until a podmin confirms them."""

from __future__ import annotations

import shlex

import psycopg

from podmod import notify, pod_db
from podmod.config import NEW_MATCHES_FLOOR, Config
from podmod.errors import PodmodError
from podmod.scan.changes import create_run, settle_retracted
from podmod.store import INGEST_LOCK, record_audit

# Run by store_found on its content_hits (the matches of a batch, in force), under INGEST_LOCK: a
# held entry's matches dropped, then each author an entry not confirmed matched counted once (a
# batch stored twice counts nobody twice), and the entries this batch touched past the floor.
COUNT_SQL = """
DELETE FROM content_hits h USING podmod.content_entry_holds b
WHERE b.list_id = h.list_id AND b.entry_kind = h.entry_kind AND b.entry_value = h.entry_value
  AND b.confirmed_at IS NULL;

INSERT INTO podmod.content_entry_authors (list_id, entry_kind, entry_value, person_id)
SELECT DISTINCT h.list_id, h.entry_kind, h.entry_value, h.person_id FROM content_hits h
WHERE NOT EXISTS (
    SELECT 1 FROM podmod.content_entry_holds b
    WHERE b.list_id = h.list_id AND b.entry_kind = h.entry_kind AND b.entry_value = h.entry_value)
ON CONFLICT DO NOTHING;

SELECT a.list_id, l.name, a.entry_kind, a.entry_value, count(*) AS authors
FROM podmod.content_entry_authors a JOIN podmod.lists l ON l.id = a.list_id
WHERE (a.list_id, a.entry_kind, a.entry_value) IN (
    SELECT list_id, entry_kind, entry_value FROM content_hits)
  AND NOT EXISTS (
    SELECT 1 FROM podmod.content_entry_holds b
    WHERE b.list_id = a.list_id AND b.entry_kind = a.entry_kind
      AND b.entry_value = a.entry_value)
GROUP BY a.list_id, l.name, a.entry_kind, a.entry_value
HAVING count(*) > %(floor)s
"""

RETRACT_SQL = """
UPDATE podmod.signals s
SET retracted_at = now(), details = s.details || jsonb_build_object('retracted_because', %s::text)
WHERE s.kind = 'content' AND s.retracted_at IS NULL
  AND s.list_id = %s AND s.entry_kind = %s AND s.entry_value = %s
RETURNING s.case_id
"""

# The held entries still in force, for `podmod lists show`, `podmod check` and the lists page.
HELD_SQL = """
SELECT l.name AS list, b.entry_kind || ':' || b.entry_value AS entry, b.authors, b.known,
       b.held_reason, b.held_at
FROM podmod.content_entry_holds b JOIN podmod.lists l ON l.id = b.list_id
WHERE b.confirmed_at IS NULL AND podmod.entry_listed(b.list_id, b.entry_kind, b.entry_value)
ORDER BY l.name, b.entry_kind, b.entry_value
"""


class EntryError(PodmodError):
    exit_code = 2


def confirm_command(list_name: str, entry: str) -> str:
    return f"podmod lists confirm-entry {shlex.quote(list_name)} {shlex.quote(entry)}"


def why_held(authors: int, known: int) -> str:
    """Why an entry is held, as `lists show`, `podmod check` and the lists page say it."""
    return f"the entry matches too many authors ({authors:,} of {known:,})"


def hold_reason(authors: int, known: int) -> str:
    """The same, as its retracted matches say it."""
    return f"{why_held(authors, known)}: held for approval"


def hold_too_broad(config: Config, pod: psycopg.Connection, state: psycopg.Connection) -> list[str]:
    """Inside store_found's transaction, on its content_hits: count the authors each entry
    matched, and hold the entries that now match too many (their hits dropped, their stored
    matches retracted, the staff told once). Costs a count of the pod's people only when an entry
    not held nor confirmed is past NEW_MATCHES_FLOOR. Returns the entries held (kind:value)."""
    *prepare, candidates_sql = COUNT_SQL.split(";\n\n")
    state.execute(";\n\n".join(prepare))
    candidates = state.execute(candidates_sql, {"floor": NEW_MATCHES_FLOOR}).fetchall()
    if not candidates:
        return []
    known = pod_db.people_count(pod)
    pod.rollback()
    shares = {s.name: s.max_new_match_share for s in config.lists}
    cap = config["list_sync.max_content_authors"]
    held = []
    for row in candidates:
        share = shares.get(row["name"]) or config["list_sync.max_new_match_share"]
        if row["authors"] <= min(share * known, cap):
            continue
        held.append(_hold(config, state, row, known, share, cap))
    return held


def _hold(
    config: Config, state: psycopg.Connection, row: dict, known: int, share: float, cap: int
) -> str:
    from podmod.lists.versions import share_text

    key = (row["list_id"], row["entry_kind"], row["entry_value"])
    entry = f"{row['entry_kind']}:{row['entry_value']}"
    reason = hold_reason(row["authors"], known)
    state.execute(
        "INSERT INTO podmod.content_entry_holds (list_id, entry_kind, entry_value, authors,"
        " known, held_reason) VALUES (%s, %s, %s, %s, %s, %s)",
        (*key, row["authors"], known, reason),
    )
    state.execute(
        "DELETE FROM content_hits WHERE list_id = %s AND entry_kind = %s AND entry_value = %s",
        key,
    )
    _retract(state, key, reason)
    limit = (
        f"the {share_text(share)} of the {known:,} people this pod knows that a list may match"
        if share * known < cap
        else f"the {cap:,} authors a content entry may match (list_sync.max_content_authors)"
    )
    told = (
        f"{entry} of list {row['name']} matches {row['authors']:,} authors, more than {limit};"
        f" its matches are held: confirm it with `{confirm_command(row['name'], entry)}`"
    )
    record_audit(
        state,
        actor="podmod",
        action="list_entry_hold",
        source=f"list:{row['name']}",
        reason=told,
        details={"list": row["name"], "entry": entry, "authors": row["authors"], "known": known},
    )
    notify.record(
        config,
        state,
        "list.held",
        list_name=row["name"],
        facts={"entry": entry, "held_reason": told},
        key=f"entry-held:{row['list_id']}:{entry}",
    )
    return entry


def _retract(state: psycopg.Connection, key: tuple[int, str, str], reason: str) -> None:
    rows = state.execute(RETRACT_SQL, (reason, *key)).fetchall()
    settle_retracted(state, {row["case_id"] for row in rows})


def held_entries(state: psycopg.Connection) -> list[dict]:
    """The content entries held for matching too many authors, still in their lists, each with
    why (why_held)."""
    rows = state.execute(HELD_SQL).fetchall()
    return [row | {"why": why_held(row["authors"], row["known"])} for row in rows]


def confirm_entry(config: Config, list_name: str, entry: str, *, by: str) -> str:
    """A podmin confirms a held entry: its matches are stored from now on, and a scan of the
    list's entries over the content already there is recorded (the workers take it up)."""
    from podmod.db import state_connection

    kind, _, value = entry.partition(":")
    with state_connection(config) as state, state.transaction():
        state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
        row = state.execute(
            "UPDATE podmod.content_entry_holds b SET confirmed_at = now(), confirmed_by = %s"
            " FROM podmod.lists l WHERE l.id = b.list_id AND l.name = %s"
            " AND b.entry_kind = %s AND b.entry_value = %s AND b.confirmed_at IS NULL"
            " RETURNING b.list_id, b.authors, b.known",
            (by, list_name, kind, value),
        ).fetchone()
        if row is None:
            held = [each["entry"] for each in held_entries(state) if each["list"] == list_name]
            raise EntryError(
                f"List {list_name!r} holds no entry {entry!r} for approval"
                + (f" (it holds {', '.join(held)})" if held else "")
                + "; `podmod lists show` names the held entries as kind:value."
            )
        record_audit(
            state,
            actor=by,
            action="list_entry_confirm",
            source=f"list:{list_name}",
            reason=f"{entry} confirmed: its matches ({row['authors']:,} authors of"
            f" {row['known']:,} when held) are stored",
            details={"list": list_name, "entry": entry},
        )
        run_id = create_run(state, reason="list", created_by=by, list_id=row["list_id"])
    scanned = f"; scan run {run_id} stores its matches" if run_id else ""
    return f"{entry} confirmed: its matches are stored from now on{scanned}."
