"""The only code that touches diaspora*'s tables.

It reads reports, posts, comments, people and users, and (from the action path, later) writes
exactly two columns: `users.locked_at` and `reports.reviewed`. diaspora stores naive UTC
timestamps; every one read here is converted to timestamptz in SQL.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from podmod.errors import NotADiasporaDatabase

# What podmod reads, table by table; `podmod init` and `podmod check` refuse a database without it.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "reports": ("id", "item_id", "item_type", "reviewed", "text", "created_at", "user_id"),
    "posts": ("id", "author_id", "guid", "type", "text", "root_guid", "created_at", "public"),
    "comments": ("id", "author_id", "guid", "text", "commentable_id", "created_at"),
    "people": ("id", "guid", "diaspora_handle", "owner_id", "pod_id", "closed_account"),
    "users": ("id", "username", "locked_at", "encrypted_password"),
    "roles": ("person_id", "name"),
    "pods": ("id", "host", "port"),
}


def check_diaspora_schema(conn: psycopg.Connection) -> None:
    """Raise NotADiasporaDatabase unless every table and column podmod reads is there."""
    rows = conn.execute(
        "SELECT c.relname AS table_name, a.attname AS column_name"
        " FROM unnest(%s::text[]) AS wanted (name)"
        " JOIN pg_class c ON c.oid = to_regclass(wanted.name)"  # as unqualified queries find it
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped",
        (list(REQUIRED_COLUMNS),),
    ).fetchall()
    conn.rollback()
    present: dict[str, set[str]] = {}
    for row in rows:
        present.setdefault(row["table_name"], set()).add(row["column_name"])
    for table, columns in REQUIRED_COLUMNS.items():
        if table not in present:
            raise NotADiasporaDatabase(
                f"This database has no diaspora* table {table!r}; point database_url at the pod's "
                "database (usually diaspora_production)."
            )
        missing = [c for c in columns if c not in present[table]]
        if missing:
            raise NotADiasporaDatabase(
                f"Table {table!r} has no column {missing[0]!r}, so this does not look like a "
                "diaspora* 0.7 or newer database; check database_url."
            )


def report_ids_after(conn: psycopg.Connection, watermark: int, limit: int) -> list[int]:
    """Ids of reports above the watermark, lowest first, at most `limit`."""
    rows = conn.execute(
        "SELECT id FROM reports WHERE id > %s ORDER BY id LIMIT %s", (watermark, limit)
    ).fetchall()
    return [row["id"] for row in rows]


def existing_report_ids(conn: psycopg.Connection, ids: list[int]) -> list[int]:
    """Which of these report ids exist now."""
    if not ids:
        return []
    rows = conn.execute("SELECT id FROM reports WHERE id = ANY(%s) ORDER BY id", (ids,))
    return [row["id"] for row in rows]


def reviewed_report_ids(conn: psycopg.Connection, ids: list[int]) -> list[int]:
    """Which of these reports diaspora* now has as reviewed."""
    if not ids:
        return []
    rows = conn.execute(
        "SELECT id FROM reports WHERE id = ANY(%s) AND reviewed ORDER BY id", (ids,)
    )
    return [row["id"] for row in rows]


# One round trip for a whole batch: each report with its item (post or comment), the item's author,
# the reporter's person and, for a reshare, the root post and its author. Reports of comments go to
# the comment's author; a reshare is the resharer's (they put it in front of this pod's users).
LOAD_REPORTS_SQL = """
SELECT r.id AS report_id,
       r.item_type,
       r.item_id,
       coalesce(r.reviewed, false) AS reviewed,
       r.text AS reason,
       r.created_at AT TIME ZONE 'UTC' AS reported_at,
       r.user_id AS reporter_user_id,
       reporter.diaspora_handle AS reporter,
       item.author_id AS person_id,
       lower(author.diaspora_handle) AS account,
       author.owner_id IS NOT NULL AS local,
       item.guid AS item_guid,
       item.text AS item_text,
       item.created_at AT TIME ZONE 'UTC' AS item_created_at,
       item.post_type,
       item.root_guid,
       root.text AS root_text,
       lower(root_author.diaspora_handle) AS root_account,
       item.parent_post_id,
       item.author_id IS NULL AS item_missing
FROM reports r
LEFT JOIN LATERAL (
    SELECT p.author_id, p.guid, p.text, p.created_at, p.type AS post_type, p.root_guid,
           NULL::integer AS parent_post_id
    FROM posts p WHERE r.item_type = 'Post' AND p.id = r.item_id
    UNION ALL
    SELECT c.author_id, c.guid, c.text, c.created_at, NULL, NULL, c.commentable_id
    FROM comments c WHERE r.item_type = 'Comment' AND c.id = r.item_id
) item ON true
LEFT JOIN people author ON author.id = item.author_id
LEFT JOIN people reporter ON reporter.owner_id = r.user_id
LEFT JOIN LATERAL (
    SELECT root.text, root.author_id FROM posts root
    WHERE item.post_type = 'Reshare' AND root.guid = item.root_guid
    LIMIT 1  -- guid is unique; LIMIT also keeps the planner to one index probe per reshare
) root ON true
LEFT JOIN people root_author ON root_author.id = root.author_id
WHERE r.id = ANY(%s::integer[])
ORDER BY r.id
"""


def load_reports(conn: psycopg.Connection, ids: list[int]) -> list[dict[str, Any]]:
    """Everything intake needs about these reports, in one statement."""
    if not ids:
        return []
    return conn.execute(LOAD_REPORTS_SQL, (ids,)).fetchall()


def max_person_id(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) AS top FROM people").fetchone()["top"]


def copy_people(
    pod: psycopg.Connection, target: psycopg.Copy, *, above: int, up_to: int
) -> None:
    """Stream people with id in (above, up_to] into `target` (a COPY ... FROM STDIN on another
    connection) as (person_id, account, host, local): lower-cased handle, its host with any port."""
    statement = sql.SQL(
        "COPY (SELECT id, lower(diaspora_handle), split_part(lower(diaspora_handle), '@', 2),"
        " owner_id IS NOT NULL FROM people WHERE id > {} AND id <= {}) TO STDOUT"
    ).format(sql.Literal(above), sql.Literal(up_to))
    with pod.cursor().copy(statement) as source:
        for chunk in source:
            target.write(chunk)
