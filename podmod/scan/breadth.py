"""Content entries that match far too broadly (a list's `phrase,the`, a bare host every link goes
to, a common image): held for approval when the distinct authors an entry has matched pass the
threshold the lists use (list_sync.max_new_match_share of the people the pod knows), or
list_sync.max_content_authors if fewer, and NEW_MATCHES_FLOOR; their matches retracted and no
longer stored until a podmin confirms them. The matches it had stored a day or more before
(SETTLED_AFTER) stay in force: a surge of new authors, which a campaign can make on purpose with
throwaway accounts, holds the entry but does not take back what the queue had before it."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from podmod import notify, pod_db
from podmod.config import NEW_MATCHES_FLOOR, Config
from podmod.errors import PodmodError
from podmod.scan.changes import create_run, settle_retracted
from podmod.store import INGEST_LOCK, LOCKED_ON_CASE, record_audit
from podmod.words import counted

SAMPLE_SIZE = 5  # matches kept of a held entry, one per author, for the podmin deciding on it
EXCERPT_CHARS = 300  # of each (the matcher's excerpts are shorter; a link may be long)
# A held entry's matches stored this long before the hold stay in force. A publisher's mistake
# (`phrase,the`) passes the threshold within the scan of the version adding it, in minutes; an
# entry that had matched for a day or more before a surge had its cases in the queue all along,
# and keeping them is no flood (fewer than the threshold), while retracting them would let a
# campaign take its own accounts' cases back by flooding the pod with its slogan.
SETTLED_AFTER = timedelta(days=1)

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
  AND s.created_at > now() - %s::interval
RETURNING s.case_id
"""

# The matches the hold leaves in force: those stored SETTLED_AFTER or longer before it.
KEPT_SQL = """
SELECT count(*) AS kept FROM podmod.signals s
WHERE s.kind = 'content' AND s.retracted_at IS NULL
  AND s.list_id = %s AND s.entry_kind = %s AND s.entry_value = %s
"""

# A few of a held entry's matches, kept with the hold: those stored (before they are retracted)
# and those of the batch that passed the threshold (content_hits, before they are dropped), one per
# author, the newest first. Only what a case page shows of the item already: the account, where
# the item is, the field (of a profile: a post's is its text) and the excerpt around the match,
# when it was written.
SAMPLE_SQL = """
WITH matched AS (
    SELECT s.person_id, c.account, s.item_type, s.item_id, s.item_guid,
           s.details ->> 'post_id' AS post_id,
           s.details ->> 'status_message_guid' AS status_message_guid,
           s.details ->> 'field' AS field, s.details ->> 'excerpt' AS excerpt, s.occurred_at
    FROM podmod.signals s JOIN podmod.cases c ON c.id = s.case_id
    WHERE s.kind = 'content' AND s.retracted_at IS NULL
      AND s.list_id = %(list_id)s AND s.entry_kind = %(kind)s AND s.entry_value = %(value)s
    UNION ALL
    SELECT h.person_id, h.account, h.item_type, h.item_id, h.item_guid, h.extra ->> 'post_id',
           h.extra ->> 'status_message_guid', h.field, h.excerpt, h.occurred_at
    FROM content_hits h
    WHERE h.list_id = %(list_id)s AND h.entry_kind = %(kind)s AND h.entry_value = %(value)s
), one_each AS (
    SELECT DISTINCT ON (person_id) * FROM matched
    ORDER BY person_id, occurred_at DESC NULLS LAST, item_type, item_id
), newest AS (
    SELECT * FROM one_each ORDER BY occurred_at DESC NULLS LAST, person_id LIMIT %(size)s
)
SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
           'account', account, 'item_type', item_type, 'item_id', item_id, 'item_guid', item_guid,
           'post_id', post_id, 'status_message_guid', status_message_guid,
           'field', nullif(field, 'text'),
           'excerpt', left(excerpt, %(chars)s), 'occurred_at', occurred_at))
       ORDER BY occurred_at DESC NULLS LAST, person_id), '[]') AS sample
FROM newest
"""

# The held entries still in force, for `podmod lists show`, `podmod check` and the lists page.
HELD_SQL = """
SELECT l.name AS list, b.entry_kind || ':' || b.entry_value AS entry, b.authors, b.known,
       b.held_reason, b.held_at, b.sample, b.matches_retracted, b.cases_closed, b.cases_alerted,
       b.accounts_locked, b.matches_kept
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
    where = {"list_id": key[0], "kind": key[1], "value": key[2]}
    sample = state.execute(
        SAMPLE_SQL, where | {"size": SAMPLE_SIZE, "chars": EXCERPT_CHARS}
    ).fetchone()["sample"]
    state.execute(
        "DELETE FROM content_hits WHERE list_id = %s AND entry_kind = %s AND entry_value = %s",
        key,
    )
    undone = _retract(state, key, reason)
    state.execute(
        "INSERT INTO podmod.content_entry_holds (list_id, entry_kind, entry_value, authors,"
        " known, held_reason, sample, matches_retracted, cases_closed, cases_alerted,"
        " accounts_locked, matches_kept) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (*key, row["authors"], known, reason, Jsonb(sample), *undone),
    )
    by_share = share * known < cap  # (the threshold it passed: the share, or the cap if fewer)
    limit = (
        f"the {share_text(share)} of the {known:,} people this pod knows that a list may match"
        if by_share
        else f"the {cap:,} authors a content entry may match (list_sync.max_content_authors)"
    )
    told = (
        f"{entry} of list {row['name']} matches {row['authors']:,} authors, more than {limit};"
        f" its matches are held: confirm it with `{confirm_command(row['name'], entry)}`"
    )
    retracted, closed, alerted, locked, kept = undone
    aftermath = "; ".join(filter(None, (undone_text(*undone[:4]), kept_text(kept))))
    record_audit(
        state,
        actor="podmod",
        action="list_entry_hold",
        source=f"list:{row['name']}",
        reason=told + (f"; {aftermath}" if aftermath else ""),
        details={
            "list": row["name"],
            "entry": entry,
            "authors": row["authors"],
            "known": known,
            "matches_retracted": retracted,
            "cases_closed": closed,
            "cases_alerted": alerted,
            "accounts_locked": locked,
            "matches_kept": kept,
        },
    )
    # (the staff's mail: counts and a link to the lists page, never the sample's handles or text,
    # which stay on podmod's pages behind the sign-in)
    notify.record(
        config,
        state,
        "list.held",
        list_name=row["name"],
        facts={
            "entry": entry,
            "held_reason": told,
            "authors": row["authors"],
            # (what `held_reason` says, for the staff's mail to say in their language)
            "known": known,
            **({"share": share} if by_share else {"cap": cap}),
            "confirm_command": confirm_command(row["name"], entry),
            "sampled": len(sample),
            "cases_closed": closed,
            "cases_alerted": alerted,
            "accounts_locked": locked,
            "matches_kept": kept,
        },
        key=f"entry-held:{row['list_id']}:{entry}",
    )
    return entry


def _retract(
    state: psycopg.Connection, key: tuple[int, str, str], reason: str
) -> tuple[int, int, int, int, int]:
    """The entry's matches stored since SETTLED_AFTER before retracted and their cases settled:
    (matches retracted, cases closed, cases among them that had alerted the staff, accounts a
    moderator locked on them, older matches kept in force)."""
    rows = state.execute(RETRACT_SQL, (reason, *key, SETTLED_AFTER)).fetchall()
    kept = state.execute(KEPT_SQL, key).fetchone()["kept"]
    touched = sorted({row["case_id"] for row in rows})
    closed = settle_retracted(state, set(touched))
    if not touched:
        return 0, 0, 0, 0, kept
    seen = state.execute(
        "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM podmod.case_alerts a"
        f"  WHERE a.case_id = c.id)) AS alerted, count(*) FILTER (WHERE {LOCKED_ON_CASE}) AS locked"
        " FROM podmod.cases c WHERE c.id = ANY(%s)",
        (touched,),
    ).fetchone()
    return len(rows), closed, seen["alerted"], seen["locked"], kept


def undone_text(retracted: int, closed: int, alerted: int, locked: int) -> str:
    """What holding an entry undid, as the audit log, the staff's mail and the lists page say
    it: '120 matches retracted, 100 cases closed (3 had alerted the staff; a moderator had locked
    1 account on them: check it)'; empty when it undid nothing."""
    if not retracted:
        return ""
    said = f"{counted(retracted, 'match', 'matches')} retracted"
    if closed:
        said += f", {counted(closed, 'case')} closed"
    notes = []
    if alerted:
        notes.append(f"{alerted:,} had alerted the staff")
    if locked:
        notes.append(
            f"a moderator had locked {counted(locked, 'account')} on them:"
            f" check {'it' if locked == 1 else 'them'}"
        )
    return said + (f" ({'; '.join(notes)})" if notes else "")


def kept_text(kept: int) -> str:
    """What a held entry left in force (SETTLED_AFTER): '4 matches stored a day or more before
    the hold stay in force'; empty when none."""
    if not kept:
        return ""
    stay = "stays" if kept == 1 else "stay"
    return (
        f"{counted(kept, 'match', 'matches')} stored a day or more before the hold {stay} in force"
    )


def held_entries(state: psycopg.Connection) -> list[dict]:
    """The content entries held for matching too many authors, still in their lists, each with
    why (why_held), a few of its matches (`sample`, each with the path of its item on the pod)
    what holding it undid (`undone`, undone_text) and what it left in force (`kept`, kept_text)."""
    rows = state.execute(HELD_SQL).fetchall()
    return [
        row
        | {
            "why": why_held(row["authors"], row["known"]),
            "sample": [
                each | {"path": pod_path(each), "occurred_at": _moment(each.get("occurred_at"))}
                for each in row["sample"]
            ],
            "undone": undone_text(
                row["matches_retracted"],
                row["cases_closed"],
                row["cases_alerted"],
                row["accounts_locked"],
            ),
            "kept": kept_text(row["matches_kept"]),
        }
        for row in rows
    ]


def held_entry_lines(config: Config, held: dict) -> list[str]:
    """What `podmod lists show` says under a held entry (held_entries): what holding it undid,
    and its sampled matches, each with a link to its item on the pod (to print through
    printable(): the excerpts are the pod's users' text)."""
    lines = [f"holding it undid: {held['undone']}"] if held["undone"] else []
    if held["kept"]:
        lines.append(f"holding it kept: {held['kept']}")
    if held["sample"]:
        lines.append(
            f"{counted(len(held['sample']), 'match', 'matches')} of it when held, one per"
            " author, the newest first:"
        )
    base = config["web.pod_url"].rstrip("/")
    for match in held["sample"]:
        where = (match.get("item_type") or "item").lower()
        if match.get("field"):
            where += f" ({match['field']})"
        if match["path"]:
            where += f" {base}{match['path']}"
        moment = match["occurred_at"]
        when = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"
        excerpt = f": «{match['excerpt']}»" if match.get("excerpt") else ""
        lines.append(f"  {match.get('account') or 'unknown account'}, {where}, {when}{excerpt}")
    return lines


def _moment(stored: str | None) -> datetime | None:
    return None if stored is None else datetime.fromisoformat(stored)


def pod_path(match: dict) -> str | None:
    """Where a sampled match's item is on the pod (a path under web.pod_url), as the case page
    links it: a post, the post of a comment or a photo, a profile's person; None if unknown."""
    guid = match.get("item_guid")
    item_type = match.get("item_type")
    if item_type == "Post" and guid:
        return f"/posts/{guid}"
    if item_type == "Comment" and match.get("post_id"):
        return f"/posts/{match['post_id']}"
    if item_type == "Photo" and match.get("status_message_guid"):
        return f"/posts/{match['status_message_guid']}"
    if item_type == "Profile" and guid:
        return f"/people/{guid}"
    return None


def confirm_entry(config: Config, list_name: str, entry: str, *, by: str) -> str:
    """A podmin confirms a held entry: its matches are stored from now on, and a scan of that
    entry alone over the content already there is recorded (the workers take it up): the list's
    other entries matched it all before."""
    from podmod.db import state_connection

    kind, _, value = entry.partition(":")
    with state_connection(config) as state, state.transaction():
        state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
        row = state.execute(
            # (the sample was for deciding: the matches themselves are stored from now on)
            "UPDATE podmod.content_entry_holds b SET confirmed_at = now(), confirmed_by = %s,"
            " sample = '[]'"
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
        run_id = create_run(
            state, reason="list", created_by=by, list_id=row["list_id"], entry=(kind, value)
        )
    scanned = f"; scan run {run_id} stores its matches" if run_id else ""
    return f"{entry} confirmed: its matches are stored from now on{scanned}."
