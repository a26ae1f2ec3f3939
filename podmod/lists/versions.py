"""List versions in podmod's schema: store a parsed list as a new version (or hold it), approve a
held version, and tell what a version added and removed.

Entries are kept as ranges over versions (`added_in`, `removed_in`), so a version costs only its
changes and any version's content can be read back. A version that would remove more than the
allowed share of the entries in force is held, with its file, until a podmin approves it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg

from podmod.config import Config, ListConfig
from podmod.errors import PodmodError
from podmod.lists.parse import ParsedList

STAGE_SQL = """
CREATE TEMP TABLE incoming_entries (kind text, value text, label text, comment text, line integer)
    ON COMMIT DROP
"""

COUNT_SQL = """
SELECT
  (SELECT count(*) FROM podmod.list_entries WHERE list_id = %(list)s AND removed_in IS NULL)
      AS current,
  (SELECT count(*) FROM podmod.list_entries e WHERE e.list_id = %(list)s AND e.removed_in IS NULL
      AND NOT EXISTS (SELECT 1 FROM incoming_entries i WHERE i.kind = e.kind
                      AND i.value = e.value)) AS removed,
  (SELECT count(*) FROM incoming_entries i WHERE NOT EXISTS (
      SELECT 1 FROM podmod.list_entries e WHERE e.list_id = %(list)s AND e.removed_in IS NULL
      AND e.kind = i.kind AND e.value = i.value)) AS added,
  (SELECT count(*) FROM incoming_entries) AS total
"""

# Entries gone, or whose label or comment changed, end at this version; new ones start at it.
APPLY_ENTRIES_SQL = """
UPDATE podmod.list_entries e SET removed_in = %(number)s
WHERE e.list_id = %(list)s AND e.removed_in IS NULL
  AND NOT EXISTS (SELECT 1 FROM incoming_entries i WHERE i.kind = e.kind AND i.value = e.value
                  AND i.label = e.label AND i.comment = e.comment);

-- Chosen first, inserted second: an anti-join against the table the same statement inserts into
-- rescans the new pages for every row when the planner picks a nested loop.
CREATE TEMP TABLE new_entries ON COMMIT DROP AS
SELECT i.kind, i.value, i.label, i.comment, i.line
FROM incoming_entries i
WHERE NOT EXISTS (SELECT 1 FROM podmod.list_entries e WHERE e.list_id = %(list)s
                  AND e.removed_in IS NULL AND e.kind = i.kind AND e.value = i.value);

INSERT INTO podmod.list_entries (list_id, kind, value, label, comment, line, added_in)
SELECT %(list)s, kind, value, label, comment, line, %(number)s FROM new_entries
"""


@dataclass
class VersionOutcome:
    number: int
    status: str  # applied or held
    entries: int
    added: int
    removed: int
    held_reason: str | None = None


class ListStateError(PodmodError):
    exit_code = 2


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def ensure_list(state: psycopg.Connection, subscription: ListConfig) -> tuple[dict[str, Any], bool]:
    """The list's row, created or brought in line with the config; True if its policy changed."""
    before = state.execute(
        "SELECT policy FROM podmod.lists WHERE name = %s", (subscription.name,)
    ).fetchone()
    row = state.execute(
        "INSERT INTO podmod.lists (name, url, policy) VALUES (%s, %s, %s) ON CONFLICT (name)"
        " DO UPDATE SET url = excluded.url, policy = excluded.policy RETURNING *",
        (subscription.name, subscription.url, subscription.policy),
    ).fetchone()
    return row, before is not None and before["policy"] != subscription.policy


def latest_version(state: psycopg.Connection, list_id: int) -> dict[str, Any] | None:
    return state.execute(
        "SELECT * FROM podmod.list_versions WHERE list_id = %s ORDER BY number DESC LIMIT 1",
        (list_id,),
    ).fetchone()


def _stage(state: psycopg.Connection, parsed: ParsedList) -> None:
    state.execute(STAGE_SQL)
    with state.cursor().copy(
        "COPY incoming_entries (kind, value, label, comment, line) FROM STDIN"
    ) as copy:
        for entry in parsed.entries:
            copy.write_row((entry.kind, entry.value, entry.label, entry.comment, entry.line))
    state.execute("ANALYZE incoming_entries")


def store_version(
    config: Config,
    state: psycopg.Connection,
    list_row: dict[str, Any],
    subscription: ListConfig,
    parsed: ParsedList,
    body: bytes,
    *,
    signed_comment: str | None,
    approved_by: str | None = None,
    number: int | None = None,
) -> VersionOutcome:
    """Store `parsed` as the list's next version inside the caller's transaction: applied (entries
    updated), or held when it removes too much and nobody approved it."""
    list_id = list_row["id"]
    state.execute("ANALYZE podmod.list_entries")  # plans below must see its real size
    _stage(state, parsed)
    counts = state.execute(COUNT_SQL, {"list": list_id}).fetchone()
    if number is None:
        latest = latest_version(state, list_id)
        number = (latest["number"] if latest else 0) + 1
    share = subscription.max_removal_share or config["list_sync.max_removal_share"]
    removal = counts["removed"] / counts["current"] if counts["current"] else 0.0
    # Older held versions give way to this one, whatever becomes of it.
    state.execute(
        "UPDATE podmod.list_versions SET status = 'superseded', held_body = NULL"
        " WHERE list_id = %s AND status = 'held' AND number <> %s",
        (list_id, number),
    )
    common = {
        "list": list_id,
        "number": number,
        "sha": sha256(body),
        "entries": counts["total"],
        "added": counts["added"],
        "removed": counts["removed"],
        "skipped": len(parsed.errors),
        "format": parsed.format,
        "comment": signed_comment,
    }
    if removal > share and approved_by is None:
        reason = (
            f"it removes {counts['removed']} of {counts['current']} entries ({removal:.0%}), "
            f"more than the {share:.0%} allowed"
        )
        state.execute(
            "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
            " removed, skipped_rows, format, signed_comment, held_reason, held_body) VALUES"
            " (%(list)s, %(number)s, %(sha)s, 'held', %(entries)s, %(added)s, %(removed)s,"
            " %(skipped)s, %(format)s, %(comment)s, %(reason)s, %(body)s)",
            common | {"reason": reason, "body": body},
        )
        return VersionOutcome(
            number, "held", counts["total"], counts["added"], counts["removed"], reason
        )
    for statement in APPLY_ENTRIES_SQL.split(";\n\n"):
        state.execute(statement, {"list": list_id, "number": number})
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, skipped_rows, format, signed_comment, applied_at, approved_by) VALUES"
        " (%(list)s, %(number)s, %(sha)s, 'applied', %(entries)s, %(added)s, %(removed)s,"
        " %(skipped)s, %(format)s, %(comment)s, now(), %(approved_by)s)"
        " ON CONFLICT (list_id, number) DO UPDATE SET status = 'applied', held_body = NULL,"
        " applied_at = now(), approved_by = excluded.approved_by",
        common | {"approved_by": approved_by},
    )
    state.execute("UPDATE podmod.lists SET current_version = %s WHERE id = %s", (number, list_id))
    return VersionOutcome(number, "applied", counts["total"], counts["added"], counts["removed"])


def version_diff(
    state: psycopg.Connection, name: str, number: int | None = None, *, limit: int = 50
) -> dict[str, Any]:
    """What a version (default: the newest) added and removed, with the first `limit` of each."""
    list_row = state.execute("SELECT * FROM podmod.lists WHERE name = %s", (name,)).fetchone()
    if list_row is None:
        raise ListStateError(f"There is no list named {name!r}; see `podmod lists show`.")
    version = state.execute(
        "SELECT * FROM podmod.list_versions WHERE list_id = %s"
        " AND (%s::integer IS NULL OR number = %s) ORDER BY number DESC LIMIT 1",
        (list_row["id"], number, number),
    ).fetchone()
    if version is None:
        raise ListStateError(
            f"List {name!r} has no version {number or ''}; see `podmod lists show`."
        )
    out: dict[str, Any] = {
        "list": name,
        "version": version["number"],
        "status": version["status"],
        "held_reason": version["held_reason"],
        "added_count": version["added"],
        "removed_count": version["removed"],
    }
    if version["status"] == "applied":
        for key, column in (("added", "added_in"), ("removed", "removed_in")):
            out[key] = [
                f"{row['kind']}:{row['value']}"
                for row in state.execute(
                    f"SELECT kind, value FROM podmod.list_entries WHERE list_id = %s"
                    f" AND {column} = %s ORDER BY kind, value LIMIT %s",
                    (list_row["id"], version["number"], limit),
                )
            ]
    elif version["status"] == "held":
        from podmod.lists.parse import parse_list

        _stage(state, parse_list(bytes(version["held_body"]), skip_invalid=True))
        out["added"] = [
            f"{r['kind']}:{r['value']}"
            for r in state.execute(
                "SELECT kind, value FROM incoming_entries i WHERE NOT EXISTS (SELECT 1 FROM"
                " podmod.list_entries e WHERE e.list_id = %s AND e.removed_in IS NULL"
                " AND e.kind = i.kind AND e.value = i.value) ORDER BY kind, value LIMIT %s",
                (list_row["id"], limit),
            )
        ]
        out["removed"] = [
            f"{r['kind']}:{r['value']}"
            for r in state.execute(
                "SELECT kind, value FROM podmod.list_entries e WHERE e.list_id = %s"
                " AND e.removed_in IS NULL AND NOT EXISTS (SELECT 1 FROM incoming_entries i"
                " WHERE i.kind = e.kind AND i.value = e.value) ORDER BY kind, value LIMIT %s",
                (list_row["id"], limit),
            )
        ]
        state.rollback()
    else:
        out["added"] = out["removed"] = []
    return out


def lists_overview(state: psycopg.Connection) -> list[dict[str, Any]]:
    """Every list's state: version in force, entries, last success, last error, held versions."""
    return state.execute(
        """
        SELECT l.name, l.url, l.policy, l.current_version AS version,
               (SELECT count(*) FROM podmod.list_entries e
                WHERE e.list_id = l.id AND e.removed_in IS NULL) AS entries,
               l.last_success_at, l.last_attempt_at, l.last_error, l.last_error_at,
               coalesce((SELECT array_agg(v.number ORDER BY v.number)
                         FROM podmod.list_versions v
                         WHERE v.list_id = l.id AND v.status = 'held'), '{}') AS held,
               (SELECT count(*) FROM podmod.signals s
                WHERE s.list_id = l.id AND s.retracted_at IS NULL) AS matches
        FROM podmod.lists l ORDER BY l.name
        """
    ).fetchall()
