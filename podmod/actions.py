"""The one path for every moderation action: the web page, the CLI and list policies all call these.

Each action writes the pod row, the decision and the audit row in one transaction (one connection
when podmod's schema lives in the pod's database, the default), and refuses what it must: remote
accounts cannot be locked from this pod, and admins or moderators only with an explicit
confirmation. Two moderators acting at once give one lock and one "already locked".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from podmod.config import Config
from podmod.db import pod_connection, state_connection
from podmod.errors import PodmodError
from podmod.store import record_audit


class ActionRefused(PodmodError):
    """The action cannot or must not be done; the message says why and what to do instead."""

    exit_code = 5


class AccountNotFound(PodmodError):
    exit_code = 4


@dataclass
class Account:
    person_id: int
    handle: str
    user_id: int | None
    locked: bool
    closed: bool
    roles: list[str] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return self.user_id is not None

    @property
    def staff(self) -> bool:
        return bool({"admin", "moderator"} & set(self.roles))


@dataclass
class ActionResult:
    action: str
    account: str
    changed: bool  # False: it was so already ("already locked")
    message: str
    case_id: int | None = None


ACCOUNT_SQL = """
SELECT p.id AS person_id, lower(p.diaspora_handle) AS handle, u.id AS user_id,
       u.locked_at IS NOT NULL AS locked, coalesce(p.closed_account, false) AS closed,
       coalesce(array_agg(r.name) FILTER (WHERE r.name IS NOT NULL), '{{}}') AS roles
FROM people p
LEFT JOIN users u ON u.id = p.owner_id
LEFT JOIN roles r ON r.person_id = p.id
WHERE {where}
GROUP BY p.id, u.id
"""


def find_account(pod: psycopg.Connection, *, handle: str | None = None,
                 person_id: int | None = None) -> Account:
    """The pod's account by handle (user@host, or a bare local username) or people.id."""
    if person_id is not None:
        row = pod.execute(ACCOUNT_SQL.format(where="p.id = %s"), (person_id,)).fetchone()
    else:
        wanted = (handle or "").strip().lower().removeprefix("@")
        row = pod.execute(
            ACCOUNT_SQL.format(
                where="p.diaspora_handle = %s OR (p.owner_id IS NOT NULL AND u.username = %s)"
            ),
            (wanted, wanted),
        ).fetchone()
    if row is None:
        raise AccountNotFound(
            f"No account {handle or person_id!r} on this pod; give a handle such as "
            "alice@pod.example."
        )
    return Account(**row)


@contextmanager
def _connections(config: Config) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """(pod, state): the same connection, so one transaction, when both live in one database."""
    if config.state_database_url == config.database_url:
        with pod_connection(config) as conn:
            yield conn, conn
    else:
        with pod_connection(config) as pod, state_connection(config) as state:
            yield pod, state


def _open_case_id(state: psycopg.Connection, person_id: int) -> int | None:
    row = state.execute(
        "SELECT id FROM podmod.cases WHERE subject = %s AND status = 'open'",
        (f"person:{person_id}",),
    ).fetchone()
    return row["id"] if row else None


def _record(state: psycopg.Connection, account: Account, action: str, *, actor: str, source: str,
            reason: str | None, case_id: int | None, details: dict[str, Any]) -> None:
    state.execute(
        "INSERT INTO podmod.decisions (case_id, person_id, account, action, actor, source, reason,"
        " details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (case_id, account.person_id, account.handle, action, actor, source, reason,
         json.dumps(details)),
    )
    record_audit(state, actor=actor, action=action, source=source, case_id=case_id,
                 account=account.handle, reason=reason, details=details)


def _set_lock(
    config: Config, *, lock: bool, handle: str | None, person_id: int | None, actor: str,
    source: str, reason: str | None, case_id: int | None, details: dict[str, Any] | None,
    confirm_staff: bool, actor_person_id: int | None,
) -> ActionResult:
    action = "lock" if lock else "unlock"
    with _connections(config) as (pod, state):
        account = find_account(pod, handle=handle, person_id=person_id)
        if not account.local:
            raise ActionRefused(
                f"{account.handle} is a remote account: only its own pod can lock it. Ask the "
                f"admin of {account.handle.split('@', 1)[1]}, or add it to a local list so "
                "podmod keeps flagging it here."
            )
        if lock and (account.staff or account.person_id == actor_person_id) and not confirm_staff:
            who = "yourself" if account.person_id == actor_person_id else (
                f"{account.handle}, who holds the role {'/'.join(sorted(account.roles))}")
            raise ActionRefused(
                f"Locking {who} needs an explicit confirmation; repeat the action with it."
            )
        case_id = case_id or _open_case_id(state, account.person_id)
        if lock:
            changed = pod.execute(
                "UPDATE users SET locked_at = (now() AT TIME ZONE 'UTC')"
                " WHERE id = %s AND locked_at IS NULL RETURNING id",
                (account.user_id,),
            ).fetchone()
        else:
            changed = pod.execute(
                "UPDATE users SET locked_at = NULL WHERE id = %s AND locked_at IS NOT NULL"
                " RETURNING id",
                (account.user_id,),
            ).fetchone()
        if pod is not state:
            pod.commit()  # separate databases: the pod row first, then podmod's record of it
        if changed:
            _record(state, account, action, actor=actor, source=source, reason=reason,
                    case_id=case_id, details=details or {})
        state.commit()
    if changed:
        message = f"{account.handle} is now {'locked' if lock else 'unlocked'}."
    else:
        message = f"{account.handle} was already {'locked' if lock else 'unlocked'}."
    return ActionResult(action, account.handle, bool(changed), message, case_id)


def record_refusal(
    config: Config, *, person_id: int, case_id: int | None, action: str, actor: str,
    source: str, reason: str, details: dict[str, Any],
) -> None:
    """Record an automatic action that was refused (e.g. a list policy meeting an admin)."""
    with _connections(config) as (pod, state):
        account = find_account(pod, person_id=person_id)
        _record(state, account, action, actor=actor, source=source, reason=reason,
                case_id=case_id, details=details)
        state.commit()


def lock_account(
    config: Config, *, actor: str, source: str, reason: str | None = None,
    handle: str | None = None, person_id: int | None = None, case_id: int | None = None,
    details: dict[str, Any] | None = None, confirm_staff: bool = False,
    actor_person_id: int | None = None,
) -> ActionResult:
    """Lock a local account (diaspora* signs it out on its next request)."""
    return _set_lock(config, lock=True, handle=handle, person_id=person_id, actor=actor,
                     source=source, reason=reason, case_id=case_id, details=details,
                     confirm_staff=confirm_staff, actor_person_id=actor_person_id)


def unlock_account(
    config: Config, *, actor: str, source: str, reason: str | None = None,
    handle: str | None = None, person_id: int | None = None, case_id: int | None = None,
) -> ActionResult:
    """Unlock a local account."""
    return _set_lock(config, lock=False, handle=handle, person_id=person_id, actor=actor,
                     source=source, reason=reason, case_id=case_id, details=None,
                     confirm_staff=True, actor_person_id=None)
