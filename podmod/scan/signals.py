"""Content signals: matches stored on their authors' cases (what a moderator marked "not a match"
and allowlisted accounts left out), and retracted when their entries no longer apply."""

from __future__ import annotations

import json

import psycopg

from podmod import pod_db
from podmod.config import Config
from podmod.kinds import ascii_account
from podmod.scan.breadth import hold_too_broad
from podmod.scan.items import Found, Scanned
from podmod.scan.photos import store_photo_hashes
from podmod.store import INGEST_LOCK

HIT_COLUMNS = (
    "list_id",
    "entry_kind",
    "entry_value",
    "version",
    "label",
    "person_id",
    "item_type",
    "item_id",
    "item_guid",
    "occurred_at",
    "field",
    "excerpt",
    "distance",
    "orientation",
    "snapshot",
    "extra",
    "account",
    "local",
    "allow_as",
)

STORE_HITS_SQL = """
ANALYZE content_hits;

-- What a moderator marked "not a match", for this item or for every item of this account.
DELETE FROM content_hits h USING podmod.content_false_positives f
WHERE f.entry_kind = h.entry_kind AND f.entry_value = h.entry_value
  AND f.item_type = h.item_type AND f.item_id = h.item_id;

DELETE FROM content_hits h USING podmod.content_false_positives f
WHERE f.entry_kind = h.entry_kind AND f.entry_value = h.entry_value
  AND f.person_id = h.person_id;

-- Accounts gone from the pod, and accounts on an allowlist (by the names its entries give them).
DELETE FROM content_hits h
WHERE h.account IS NULL OR podmod.allowlisted(coalesce(h.allow_as, h.account), h.local);

-- The entry must still be in force: a version may have removed it since the matcher was built.
DELETE FROM content_hits h WHERE NOT EXISTS (
    SELECT 1 FROM podmod.list_entries e
    JOIN podmod.lists l ON l.id = e.list_id AND l.policy IN ('review', 'lock')
    WHERE e.list_id = h.list_id AND e.kind = h.entry_kind AND e.value = h.entry_value
      AND e.removed_in IS NULL AND (cardinality(l.labels) = 0 OR e.labels && l.labels));

-- (here breadth.hold_too_broad: a held entry's matches dropped, the authors counted)

-- Matched before (the signal may sit on a closed case): nothing to add, no case to open.
DELETE FROM content_hits h WHERE EXISTS (
    SELECT 1 FROM podmod.signals s
    WHERE s.kind = 'content' AND s.retracted_at IS NULL AND s.list_id = h.list_id
      AND s.entry_kind = h.entry_kind AND s.entry_value = h.entry_value
      AND s.item_type = h.item_type AND s.item_id = h.item_id);

INSERT INTO podmod.cases (subject, person_id, account, local)
SELECT DISTINCT ON (person_id) 'person:' || person_id, person_id, account, local
FROM content_hits ORDER BY person_id
ON CONFLICT (subject) WHERE status = 'open' DO NOTHING;

INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind, entry_value, item_type,
                            item_id, item_guid, snapshot, details, occurred_at)
SELECT c.id, 'content', h.person_id, h.list_id, h.entry_kind, h.entry_value, h.item_type,
       h.item_id, h.item_guid, h.snapshot,
       jsonb_strip_nulls(jsonb_build_object(
           'list', l.name, 'version', h.version, 'entry', h.entry_kind || ':' || h.entry_value,
           'label', h.label, 'policy', l.policy, 'field', h.field, 'excerpt', h.excerpt,
           'distance', h.distance, 'orientation', h.orientation)) || h.extra,
       h.occurred_at
FROM content_hits h
JOIN podmod.lists l ON l.id = h.list_id
JOIN podmod.cases c ON c.subject = 'person:' || h.person_id AND c.status = 'open'
ON CONFLICT DO NOTHING
RETURNING case_id
"""


def store_found(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection, found: list[Found]
) -> int:
    """Store matches as content signals on their authors' cases, inside the caller's transaction;
    an entry matching too many authors is held instead (breadth). Returns how many signals are
    new."""
    if not found:
        return 0
    accounts = pod_db.people_accounts(pod, sorted({f.person_id for f in found}))
    pod.rollback()
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    state.execute(
        "CREATE TEMP TABLE content_hits (list_id integer, entry_kind text, entry_value text,"
        " version integer, label text, person_id integer, item_type text, item_id integer,"
        " item_guid text, occurred_at timestamptz, field text, excerpt text, distance integer,"
        " orientation text, snapshot text, extra jsonb, account text, local boolean,"
        " allow_as text)"
        " ON COMMIT DROP"
    )
    with state.cursor().copy(f"COPY content_hits ({', '.join(HIT_COLUMNS)}) FROM STDIN") as copy:
        for f in found:
            entry = f.hit.entry
            account, local = accounts.get(f.person_id, (None, False))
            copy.write_row(
                (
                    entry.list_id,
                    entry.kind,
                    entry.value,
                    entry.version,
                    entry.label,
                    f.person_id,
                    f.item_type,
                    f.item_id,
                    f.item_guid,
                    f.occurred_at,
                    f.hit.field,
                    f.hit.excerpt,
                    f.hit.distance,
                    f.hit.orientation,
                    f.snapshot,
                    json.dumps(f.extra),
                    account,
                    local,
                    # (None for an ASCII handle, nearly every one: named as it is)
                    None if account is None or account.isascii() else ascii_account(account),
                )
            )
    *prepare, matched_before, insert = STORE_HITS_SQL.split(";\n\n")
    state.execute(";\n\n".join(prepare))
    hold_too_broad(config, pod, state)
    state.execute(matched_before)
    inserted = state.execute(insert).fetchall()
    state.execute("DROP TABLE content_hits")
    touched = sorted({row["case_id"] for row in inserted})
    if touched:
        state.execute("SELECT podmod.refresh_cases(%s)", (touched,))
    return len(inserted)


def store_scanned(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection, scanned: Scanned
) -> int:
    store_photo_hashes(state, scanned.photo_hashes)
    return store_found(config, pod, state, scanned.found)
