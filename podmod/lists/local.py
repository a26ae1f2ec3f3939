"""This pod's own list (`this-pod`): accounts and pods that the pod's moderators flag themselves,
from a case page or `podmod lists add`. It is kept in podmod's schema, unsigned (nobody else
publishes it, so nothing can tamper with it in transit), versioned like a subscription — each
change is a version — and applied like a review list. The actions that change it, with their
decision and audit rows, are `podmod.actions.add_to_pod_list` and `remove_from_pod_list`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg

from podmod.config import LOCAL_LIST
from podmod.errors import PodmodError
from podmod.lists.parse import _CONTROL, MAX_COMMENT, MAX_LABEL, label_keys_of, normalise
from podmod.lists.versions import RANGES_SUMMARY_SQL, READER
from podmod.redact import FORMAT

LOCAL_URL = "podmod:" + LOCAL_LIST  # (no file: the entries live in podmod.list_entries alone)


class LocalListError(PodmodError):
    exit_code = 2


@dataclass(frozen=True)
class LocalEntry:
    kind: str  # account or pod
    value: str

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.value}"


def entry_for(value: str) -> LocalEntry:
    """`user@pod.example` is an account, `pod.example` a pod (its every account, subdomains too);
    LocalListError with one sentence when it is neither."""
    text = value.strip()
    kind = "account" if "@" in text.lstrip("@") else "pod"
    try:
        return LocalEntry(kind, normalise(kind, text))
    except ValueError as error:
        raise LocalListError(
            f"{error}; give a handle such as user@pod.example or a host such as pod.example."
        ) from None


def check_label(label: str | None) -> str:
    """A label a moderator typed: one short line, kept as written (its normal form selects)."""
    text = _one_line(label, "label")
    if len(text) > MAX_LABEL:
        raise LocalListError(f"The label is longer than {MAX_LABEL} characters; shorten it.")
    return text


def check_reason(reason: str | None) -> str:
    text = _one_line(reason, "reason")
    if not text:
        raise LocalListError("Say why: the reason is kept with the entry and in the audit log.")
    if len(text) > MAX_COMMENT:
        raise LocalListError(f"The reason is longer than {MAX_COMMENT} characters; shorten it.")
    return text


def _one_line(typed: str | None, what: str) -> str:
    """What a moderator typed as one line (line breaks and runs of spaces made one space), with no
    other control character: an escape pasted in would act on the terminal of whoever reads it
    (`podmod lists diff`), and the list published with its reasons would refuse the row. Format
    characters (direction marks, zero-width spaces) are dropped, as a list's labels lose them
    when read: a right-to-left override would turn the audit log's line around, and a reason of
    a zero-width space alone says nothing."""
    text = " ".join(FORMAT.sub("", typed or "").split())
    control = _CONTROL.search(text)
    if control:
        raise LocalListError(
            f"The {what} holds a control character (U+{ord(control.group()):04X}); type it again"
            " without it."
        )
    return text


def local_list(state: psycopg.Connection) -> dict[str, Any]:
    """The list's row, created on first use and locked for this transaction: changes to it are
    one at a time, so two moderators adding at once make two versions, never one number twice."""
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, origin) VALUES (%s, %s, 'review', 'local')"
        " ON CONFLICT (name) DO NOTHING",
        (LOCAL_LIST, LOCAL_URL),
    )
    return state.execute(
        "SELECT * FROM podmod.lists WHERE name = %s FOR UPDATE", (LOCAL_LIST,)
    ).fetchone()


def entry_in_force(
    state: psycopg.Connection, list_id: int, entry: LocalEntry
) -> dict[str, Any] | None:
    return state.execute(
        "SELECT * FROM podmod.list_entries WHERE list_id = %s AND kind = %s AND value = %s"
        " AND removed_in IS NULL",
        (list_id, entry.kind, entry.value),
    ).fetchone()


def _new_version(
    state: psycopg.Connection, row: dict[str, Any], change: str, actor: str, *, added: int
) -> int:
    number = (row["current_version"] or 0) + 1
    entries = state.execute(
        "SELECT count(*) AS n FROM podmod.list_entries WHERE list_id = %s AND removed_in IS NULL",
        (row["id"],),
    ).fetchone()["n"]
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, reader, applied_at, approved_by) VALUES"
        " (%s, %s, %s, 'applied', %s, %s, %s, 'podmod', %s, now(), %s)",
        (
            row["id"],
            number,
            hashlib.sha256(f"{LOCAL_LIST}:{number}:{change}".encode()).hexdigest(),
            entries + (1 if added else -1),  # (the entries in force after this version)
            added,
            1 - added,
            READER,
            actor,
        ),
    )
    state.execute(
        "UPDATE podmod.lists SET current_version = %s, last_attempt_at = now(),"
        " last_success_at = now() WHERE id = %s",
        (number, row["id"]),
    )
    return number


def add(
    state: psycopg.Connection, entry: LocalEntry, *, label: str, reason: str, actor: str
) -> tuple[int | None, dict[str, Any] | None]:
    """Add the entry as a new version, inside the caller's transaction: (its version, None), or
    (None, the entry in force) when it is on the list already."""
    row = local_list(state)
    present = entry_in_force(state, row["id"], entry)
    if present is not None:
        return None, present
    number = _new_version(state, row, f"+{entry.text}", actor, added=1)
    state.execute(
        "INSERT INTO podmod.list_entries (list_id, kind, value, label, comment, labels, added_in)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (row["id"], entry.kind, entry.value, label, reason, list(label_keys_of(label)), number),
    )
    state.execute(RANGES_SUMMARY_SQL)  # (the page it went to: found by entries() at once)
    return number, None


def remove(state: psycopg.Connection, entry: LocalEntry, *, actor: str) -> int | None:
    """End the entry at a new version, inside the caller's transaction; None when it is not on
    the list."""
    row = local_list(state)
    if entry_in_force(state, row["id"], entry) is None:
        return None
    number = _new_version(state, row, f"-{entry.text}", actor, added=0)
    state.execute(
        "UPDATE podmod.list_entries SET removed_in = %s WHERE list_id = %s AND kind = %s"
        " AND value = %s AND removed_in IS NULL",
        (number, row["id"], entry.kind, entry.value),
    )
    return number


def entries(
    state: psycopg.Connection, limit: int | None = None, before: int | None = None
) -> list[dict[str, Any]]:
    """The entries in force, newest first: a page of at most `limit` (None: all) added before
    version `before` (for the lists page: each change is a version, so the version orders
    them)."""
    row = state.execute("SELECT id FROM podmod.lists WHERE name = %s", (LOCAL_LIST,)).fetchone()
    if row is None:
        return []
    # The list's id as a constant, so the entries' BRIN index (list and version first) finds the
    # pages of this list's entries: joined by its name, every entry of every list was read (a
    # million-entry subscription beside it: 0.1 s a page, 8 ms this way).
    return state.execute(
        "SELECT e.kind, e.value, e.label, e.comment, e.added_in, v.applied_at, v.approved_by"
        " FROM podmod.list_entries e"
        " LEFT JOIN podmod.list_versions v ON v.list_id = e.list_id AND v.number = e.added_in"
        " WHERE e.list_id = %s AND e.removed_in IS NULL AND e.added_in < %s"
        " ORDER BY e.added_in DESC, e.id DESC LIMIT %s",
        (row["id"], 2**31 - 1 if before is None else before, limit),
    ).fetchall()
