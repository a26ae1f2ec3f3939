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


def report_ids_between(conn: psycopg.Connection, above: int, up_to: int) -> list[int]:
    """Ids of reports with above < id <= up_to, lowest first."""
    rows = conn.execute(
        "SELECT id FROM reports WHERE id > %s AND id <= %s ORDER BY id", (above, up_to)
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


def people_count(conn: psycopg.Connection) -> int:
    """How many people the pod knows, local and remote (30 ms at a million)."""
    return conn.execute("SELECT count(*) AS n FROM people").fetchone()["n"]


RELAY_BYTES = 1 << 20  # rows relayed from one COPY to the other in blocks of about this size


def _relay(pod: psycopg.Connection, statement: sql.Composable, target: psycopg.Copy) -> None:
    """Stream a COPY ... TO STDOUT of the pod into `target`, a COPY ... FROM STDIN on another
    connection, in blocks of about RELAY_BYTES: libpq hands over one row at a time."""
    block = bytearray()
    with pod.cursor().copy(statement) as source:
        for row in source:
            block += row
            if len(block) >= RELAY_BYTES:
                target.write(block)
                block = bytearray()
    if block:
        target.write(block)


def copy_people(
    pod: psycopg.Connection,
    target: psycopg.Copy,
    *,
    above: int,
    up_to: int,
    remote_hosts: list[str] | None = None,
) -> None:
    """Stream people with id in (above, up_to] into `target` as (person_id, account, host, local):
    lower-cased handle, its host with any port. With `remote_hosts`, only remote people whose
    handle's host is written as one of those (as remote_hosts() gives them: the filter lowers
    nothing, a tenth of a second at a million people)."""
    where = sql.SQL("")
    if remote_hosts is not None:
        where = sql.SQL(
            " AND owner_id IS NULL AND split_part(diaspora_handle, '@', 2) = ANY({})"
        ).format(sql.Literal(remote_hosts))
    statement = sql.SQL(
        "COPY (SELECT id, lower(diaspora_handle), split_part(lower(diaspora_handle), '@', 2),"
        " owner_id IS NOT NULL FROM people WHERE id > {} AND id <= {}{}) TO STDOUT"
    ).format(sql.Literal(above), sql.Literal(up_to), where)
    _relay(pod, statement, target)


def remote_hosts(pod: psycopg.Connection, *, above: int, up_to: int) -> list[tuple[str, str]]:
    """The distinct hosts (with any port) of remote people with id in (above, up_to], each as
    (written, lower-cased): the handles' hosts are made distinct first and lowered after, at half
    the cost of lowering every handle (0.6 s instead of 1.1 s at a million people)."""
    return (
        pod.cursor(row_factory=psycopg.rows.tuple_row)
        .execute(
            "SELECT written, lower(written) FROM (SELECT DISTINCT"
            " split_part(diaspora_handle, '@', 2) AS written FROM people"
            " WHERE owner_id IS NULL AND id > %s AND id <= %s) h",
            (above, up_to),
        )
        .fetchall()
    )


# ---------------------------------------------------------------------------------------------
# The web UI: sign-in, the queue's account states, the case page; and the action path's one write
# to reports. Only columns deploy/grants.sql grants are read from `users`.

# password_salt: the bcrypt salt, as Devise's authenticatable_salt; it changes with the password.
STAFF_SQL = """
SELECT u.id AS user_id, u.username, u.encrypted_password,
       left(u.encrypted_password, 29) AS password_salt, u.locked_at IS NOT NULL AS locked,
       coalesce(u.otp_required_for_login, false) AS otp_required, u.plain_otp_secret,
       u.consumed_timestep, p.id AS person_id, lower(p.diaspora_handle) AS handle,
       coalesce(p.closed_account, false) AS closed,
       coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.name IS NOT NULL), '{{}}')
           AS roles
FROM users u
LEFT JOIN people p ON p.owner_id = u.id
LEFT JOIN roles r ON r.person_id = p.id AND r.name IN ('admin', 'moderator')
WHERE {where}
GROUP BY u.id, p.id
"""


def user_for_sign_in(conn: psycopg.Connection, username: str) -> dict[str, Any] | None:
    """A local user by username (as diaspora* signs in: lower-case), with its staff roles."""
    return conn.execute(
        STAFF_SQL.format(where="u.username = %s"), (username.strip().lower(),)
    ).fetchone()


def user_state(conn: psycopg.Connection, user_id: int) -> dict[str, Any] | None:
    """The same facts by users.id: checked on every signed-in request."""
    return conn.execute(STAFF_SQL.format(where="u.id = %s"), (user_id,)).fetchone()


def account_states(conn: psycopg.Connection, person_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Locked and closed state of these people, in one query: {person_id: {locked, closed}}."""
    if not person_ids:
        return {}
    rows = conn.execute(
        "SELECT p.id AS person_id, u.locked_at IS NOT NULL AS locked,"
        " coalesce(p.closed_account, false) AS closed"
        " FROM people p LEFT JOIN users u ON u.id = p.owner_id WHERE p.id = ANY(%s)",
        (person_ids,),
    ).fetchall()
    return {row["person_id"]: row for row in rows}


def staff_contacts(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Where the staff's alerts go: every local admin and moderator that is neither locked nor
    closed and has a mail address, as {email, language}; one row per address."""
    return conn.execute(
        "SELECT DISTINCT ON (lower(u.email)) u.email, u.language FROM users u"
        " JOIN people p ON p.owner_id = u.id"
        " JOIN roles r ON r.person_id = p.id AND r.name IN ('admin', 'moderator')"
        " WHERE u.locked_at IS NULL AND NOT coalesce(p.closed_account, false)"
        " AND coalesce(u.email, '') <> '' ORDER BY lower(u.email), u.id"
    ).fetchall()


def user_contacts(conn: psycopg.Connection, user_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Where to tell these local accounts: {users.id: {email, language, locked}}."""
    if not user_ids:
        return {}
    rows = conn.execute(
        "SELECT id, email, language, locked_at IS NOT NULL AS locked FROM users WHERE id = ANY(%s)",
        (user_ids,),
    ).fetchall()
    return {row["id"]: row for row in rows}


ACCOUNT_DETAILS_SQL = """
SELECT p.id AS person_id, p.guid, lower(p.diaspora_handle) AS handle,
       p.owner_id IS NOT NULL AS local, coalesce(p.closed_account, false) AS closed,
       p.created_at AT TIME ZONE 'UTC' AS created_at,
       u.id AS user_id, u.created_at AT TIME ZONE 'UTC' AS signed_up_at,
       u.last_seen AT TIME ZONE 'UTC' AS last_seen,
       u.locked_at AT TIME ZONE 'UTC' AS locked_at,
       pod.host AS pod_host, pod.port AS pod_port,
       nullif(coalesce(pr.full_name,
                       trim(coalesce(pr.first_name, '') || ' ' || coalesce(pr.last_name, ''))),
              '') AS name,
       (SELECT coalesce(array_agg(r.name ORDER BY r.name), '{}') FROM roles r
        WHERE r.person_id = p.id) AS roles,
       (SELECT count(DISTINCT c.user_id) FROM contacts c WHERE c.person_id = p.id)
           AS local_contacts
FROM people p
LEFT JOIN users u ON u.id = p.owner_id
LEFT JOIN pods pod ON pod.id = p.pod_id
LEFT JOIN LATERAL (
    SELECT full_name, first_name, last_name FROM profiles WHERE person_id = p.id
    ORDER BY id LIMIT 1
) pr ON true
WHERE p.id = %s
"""


def account_details(conn: psycopg.Connection, person_id: int) -> dict[str, Any] | None:
    """Who the account is, for the case page: handle, name, pod, dates, state, roles, and how many
    local users have it as a contact."""
    return conn.execute(ACCOUNT_DETAILS_SQL, (person_id,)).fetchone()


def recent_posts(conn: psycopg.Connection, person_id: int, limit: int) -> list[dict[str, Any]]:
    """The account's newest posts (a reshare with its root's text)."""
    return conn.execute(
        "SELECT p.id, p.guid, p.type, p.public, p.created_at AT TIME ZONE 'UTC' AS created_at,"
        " coalesce(p.text, root.text) AS text, p.root_guid"
        " FROM posts p LEFT JOIN LATERAL (SELECT text FROM posts r WHERE p.type = 'Reshare'"
        "  AND r.guid = p.root_guid LIMIT 1) root ON true"
        " WHERE p.author_id = %s ORDER BY p.created_at DESC, p.id DESC LIMIT %s",
        (person_id, limit),
    ).fetchall()


def recent_comments(conn: psycopg.Connection, person_id: int, limit: int) -> list[dict[str, Any]]:
    """The account's newest comments."""
    return conn.execute(
        "SELECT id, guid, commentable_id AS post_id, text,"
        " created_at AT TIME ZONE 'UTC' AS created_at"
        " FROM comments WHERE author_id = %s ORDER BY created_at DESC, id DESC LIMIT %s",
        (person_id, limit),
    ).fetchall()


def mark_reports_reviewed(conn: psycopg.Connection, items: list[tuple[str, int]]) -> list[int]:
    """What diaspora*'s own "review" does: every report of each (item_type, item_id) becomes
    reviewed. Writes `reports.reviewed` only; returns the report ids changed now."""
    if not items:
        return []
    rows = conn.execute(
        "UPDATE reports r SET reviewed = true"
        " FROM unnest(%s::text[], %s::integer[]) AS i (item_type, item_id)"
        " WHERE r.item_type = i.item_type AND r.item_id = i.item_id AND r.reviewed IS NOT TRUE"
        " RETURNING r.id",
        ([item_type for item_type, _ in items], [item_id for _, item_id in items]),
    ).fetchall()
    return sorted(row["id"] for row in rows)


# ---------------------------------------------------------------------------------------------
# Content matching (podmod.scan): the pod's posts, comments, profiles and photos, by id range or by
# ids, as plain tuples (the scan reads tens of thousands of rows a second). Tags come from
# diaspora*'s taggings. Timestamps are UTC.

CONTENT_TABLES = {"Post": "posts", "Comment": "comments", "Profile": "profiles", "Photo": "photos"}

# (id, guid, author_id, type, text (a reshare: its root's), root_guid, created_at)
CONTENT_POSTS_SQL = """
SELECT c.id, c.guid, c.author_id, c.type, coalesce(c.text, root.text), c.root_guid,
       c.created_at AT TIME ZONE 'UTC'
FROM posts c
LEFT JOIN LATERAL (  -- guid is unique; LIMIT keeps the planner to one index probe per reshare
    SELECT r.text FROM posts r WHERE c.type = 'Reshare' AND r.guid = c.root_guid LIMIT 1
) root ON true
WHERE {where}
"""
# (id, guid, author_id, text, post id, created_at)
CONTENT_COMMENTS_SQL = """
SELECT c.id, c.guid, c.author_id, c.text, c.commentable_id, c.created_at AT TIME ZONE 'UTC'
FROM comments c
WHERE {where}
"""
# (id, the person's guid, person_id, name, bio, location, updated_at)
CONTENT_PROFILES_SQL = """
SELECT c.id, pe.guid, c.person_id,
       coalesce(nullif(concat_ws(' ', c.first_name, c.last_name), ''), c.full_name),
       c.bio, c.location, coalesce(c.updated_at, c.created_at) AT TIME ZONE 'UTC'
FROM profiles c JOIN people pe ON pe.id = c.person_id
WHERE {where}
"""
# (id, guid, author_id, unprocessed_image, remote_photo_path, remote_photo_name,
#  status_message_guid, created_at)
CONTENT_PHOTOS_SQL = """
SELECT c.id, c.guid, c.author_id, c.unprocessed_image, c.remote_photo_path, c.remote_photo_name,
       c.status_message_guid, c.created_at AT TIME ZONE 'UTC'
FROM photos c
WHERE {where}
"""
CONTENT_SQL = {
    "Post": CONTENT_POSTS_SQL,
    "Comment": CONTENT_COMMENTS_SQL,
    "Profile": CONTENT_PROFILES_SQL,
    "Photo": CONTENT_PHOTOS_SQL,
}
TAGGABLE = {"Post": "Post", "Comment": "Comment", "Profile": "Profile"}


def content_top_ids(conn: psycopg.Connection) -> dict[str, int]:
    """The highest id of each content table (0 when empty), in one round trip."""
    row = conn.execute(
        'SELECT (SELECT coalesce(max(id), 0) FROM posts) AS "Post",'
        ' (SELECT coalesce(max(id), 0) FROM comments) AS "Comment",'
        ' (SELECT coalesce(max(id), 0) FROM profiles) AS "Profile",'
        ' (SELECT coalesce(max(id), 0) FROM photos) AS "Photo"'
    ).fetchone()
    return {
        item_type: int(_value(row, number, item_type))
        for number, item_type in enumerate(CONTENT_TABLES)
    }


def _value(row: Any, number: int, name: str) -> Any:
    return row[name] if isinstance(row, dict) else row[number]


def content_ids_after(
    conn: psycopg.Connection, item_type: str, watermark: int, limit: int
) -> list[int]:
    """Ids of one content table above the watermark, lowest first, at most `limit`."""
    statement = sql.SQL("SELECT id FROM {} WHERE id > %s ORDER BY id LIMIT %s").format(
        sql.Identifier(CONTENT_TABLES[item_type])
    )
    rows = (
        conn.cursor(row_factory=psycopg.rows.tuple_row)
        .execute(statement, (watermark, limit))
        .fetchall()
    )
    return [row[0] for row in rows]


def profiles_updated_since(
    conn: psycopg.Connection, since: Any, limit: int
) -> list[tuple[int, Any]]:
    """(id, updated_at) of profiles edited after `since` (UTC), oldest edit first."""
    return (
        conn.cursor(row_factory=psycopg.rows.tuple_row)
        .execute(
            "SELECT id, updated_at AT TIME ZONE 'UTC' FROM profiles"
            " WHERE updated_at > (%s::timestamptz AT TIME ZONE 'UTC')"
            " ORDER BY updated_at, id LIMIT %s",
            (since, limit),
        )
        .fetchall()
    )


def _content_where(
    ids: list[int] | None, above: int | None, up_to: int | None
) -> tuple[sql.Composable, tuple[Any, ...]]:
    if ids is not None:
        return sql.SQL("c.id = ANY(%s::integer[])"), (ids,)
    return sql.SQL("c.id > %s AND c.id <= %s"), (above, up_to)


def load_content(
    conn: psycopg.Connection,
    item_type: str,
    *,
    ids: list[int] | None = None,
    above: int | None = None,
    up_to: int | None = None,
) -> list[tuple[Any, ...]]:
    """Rows of one content table (see the CONTENT_*_SQL column lists), by ids or by the id range
    (above, up_to]."""
    where, params = _content_where(ids, above, up_to)
    statement = sql.SQL(CONTENT_SQL[item_type]).format(where=where)
    return conn.cursor(row_factory=psycopg.rows.tuple_row).execute(statement, params).fetchall()


def load_tags(
    conn: psycopg.Connection,
    item_type: str,
    *,
    ids: list[int] | None = None,
    above: int | None = None,
    up_to: int | None = None,
) -> dict[int, list[str]]:
    """The tags diaspora* stored for these items (taggings): {item id: [tag name, ...]}."""
    if item_type not in TAGGABLE:
        return {}
    if ids is not None:
        where, params = sql.SQL("tg.taggable_id = ANY(%s::integer[])"), (ids,)
    else:
        where, params = sql.SQL("tg.taggable_id > %s AND tg.taggable_id <= %s"), (above, up_to)
    statement = sql.SQL(
        "SELECT tg.taggable_id, t.name FROM taggings tg JOIN tags t ON t.id = tg.tag_id"
        " WHERE tg.taggable_type = %s AND {where}"
    ).format(where=where)
    tags: dict[int, list[str]] = {}
    for item_id, name in conn.cursor(row_factory=psycopg.rows.tuple_row).execute(
        statement, (TAGGABLE[item_type], *params)
    ):
        if name:
            tags.setdefault(item_id, []).append(name)
    return tags


def people_accounts(conn: psycopg.Connection, person_ids: list[int]) -> dict[int, tuple[str, bool]]:
    """{people.id: (lower-case handle, local)} for these people."""
    if not person_ids:
        return {}
    rows = (
        conn.cursor(row_factory=psycopg.rows.tuple_row)
        .execute(
            "SELECT id, lower(diaspora_handle), owner_id IS NOT NULL FROM people"
            " WHERE id = ANY(%s::integer[])",
            (person_ids,),
        )
        .fetchall()
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def existing_content_ids(conn: psycopg.Connection, item_type: str, ids: list[int]) -> list[int]:
    """Which of these ids of one content table exist now."""
    if not ids:
        return []
    statement = sql.SQL("SELECT id FROM {} WHERE id = ANY(%s::integer[]) ORDER BY id").format(
        sql.Identifier(CONTENT_TABLES[item_type])
    )
    return [
        row[0] for row in conn.cursor(row_factory=psycopg.rows.tuple_row).execute(statement, (ids,))
    ]
