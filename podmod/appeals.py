"""Appeals: a locked local account, following the signed link in its notice, sends a statement
that becomes an `appeal` signal on its case (the case its lock was on, reopened), lifting the case
to the top of the queue, with an `appeal.received` event (the staff's mail, webhooks) and an audit
row, in one transaction. One undecided appeal per account; the decision (podmod.notify.appeals)
mails the account once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg

from podmod import actions, notify
from podmod.config import Config
from podmod.errors import PodmodError
from podmod.notify import links
from podmod.notify.appeals import LINK_MAX_AGE
from podmod.store import INGEST_LOCK, record_audit

MAX_STATEMENT = 5000  # characters
ACTOR = "appeal"  # who reopens the case and adds the signal, in decisions and the audit log
NOT_LOCKED = "This account is no longer locked, so there is nothing to appeal: sign in as usual."
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every control character but tab, newline


class AppealRefused(PodmodError):
    """The appeal cannot be taken; the message says why, in words for the account's owner."""


class NotLocked(AppealRefused):
    """The account is not locked (any more): there is nothing to appeal."""


@dataclass(frozen=True)
class Appellant:
    """The account a valid appeal link names, as the pod has it now."""

    user_id: int
    person_id: int
    handle: str
    locked: bool


@dataclass(frozen=True)
class Received:
    appeal_id: int
    case_id: int
    created_at: datetime
    new: bool  # False: an undecided appeal was there already; nothing was added


def clean_statement(text: str) -> str:
    """The statement as kept: control characters gone, line ends as newlines, trimmed; refused
    when empty or longer than MAX_STATEMENT."""
    cleaned = CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not cleaned:
        raise AppealRefused("The statement is empty; write what the moderators should know.")
    if len(cleaned) > MAX_STATEMENT:
        raise AppealRefused(
            f"The statement is {len(cleaned)} characters long; shorten it to {MAX_STATEMENT}."
        )
    return cleaned


def appellant(state: psycopg.Connection, pod: psycopg.Connection, token: str) -> Appellant:
    """The account the appeal link `token` names; raises LinkExpired or LinkInvalid (with a
    sentence for the reader) for a link that is too old, changed or not podmod's."""
    user_id = links.check(state, "appeal", token, max_age=LINK_MAX_AGE)
    if not isinstance(user_id, int):
        raise links.LinkInvalid("This link is not one this pod sent; open it again from the mail.")
    row = pod.execute("SELECT id FROM people WHERE owner_id = %s", (user_id,)).fetchone()
    if row is None:
        raise links.LinkInvalid("The account this link was made for no longer exists on the pod.")
    account = actions.find_account(pod, person_id=row["id"])
    return Appellant(user_id, account.person_id, account.handle, account.locked)


def open_appeal(state: psycopg.Connection, user_id: int) -> Received | None:
    """The account's undecided appeal, if it has one."""
    row = state.execute(
        "SELECT id, case_id, created_at FROM podmod.appeals WHERE user_id = %s AND outcome IS NULL",
        (user_id,),
    ).fetchone()
    return Received(row["id"], row["case_id"], row["created_at"], new=False) if row else None


def _appeal_case(state: psycopg.Connection, account: Appellant) -> int:
    """The case the appeal goes on: the account's open case; else the case its lock was on (or
    its newest), reopened; else a new case. Inside the caller's transaction and ingest lock."""
    subject = f"person:{account.person_id}"
    row = state.execute(
        "SELECT id FROM podmod.cases WHERE subject = %s AND status = 'open'", (subject,)
    ).fetchone()
    if row:
        return row["id"]
    row = state.execute(
        "SELECT coalesce((SELECT case_id FROM podmod.decisions WHERE person_id = %s"
        "  AND action = 'lock' AND case_id IS NOT NULL ORDER BY id DESC LIMIT 1),"
        " (SELECT id FROM podmod.cases WHERE subject = %s ORDER BY id DESC LIMIT 1)) AS id",
        (account.person_id, subject),
    ).fetchone()
    if row["id"] is None:
        return state.execute(
            "INSERT INTO podmod.cases (subject, person_id, account, local)"
            " VALUES (%s, %s, %s, true) RETURNING id",
            (subject, account.person_id, account.handle),
        ).fetchone()["id"]
    case = actions._case_for_update(state, row["id"])
    actions.reopen_in(
        state,
        case,
        actor=ACTOR,
        source="web",
        reason="the account appealed its lock",
        details={},
    )
    return row["id"]


def submit(config: Config, token: str, statement: str, *, ip: str) -> Received:
    """Take the appeal of the account `token` names, in one transaction: the signal on its case
    (reopened if need be), the case's priority, the appeal row, the `appeal.received` event and
    the audit row. An account with an undecided appeal gets that one back, and nothing changes."""
    text = clean_statement(statement)
    with actions._connections(config) as (pod, state):
        account = appellant(state, pod, token)
        if not account.locked:
            raise NotLocked(NOT_LOCKED)
        state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
        waiting = open_appeal(state, account.user_id)
        if waiting:
            state.rollback()
            return waiting
        case_id = _appeal_case(state, account)
        signal_id = state.execute(
            "INSERT INTO podmod.signals (case_id, kind, person_id, reason, occurred_at)"
            " VALUES (%s, 'appeal', %s, %s, now()) RETURNING id",
            (case_id, account.person_id, text),
        ).fetchone()["id"]
        appeal = state.execute(
            "INSERT INTO podmod.appeals (case_id, signal_id, person_id, user_id, account)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id, created_at",
            (case_id, signal_id, account.person_id, account.user_id, account.handle),
        ).fetchone()
        state.execute("SELECT podmod.refresh_cases(%s)", ([case_id],))
        notify.record(config, state, "appeal.received", case_id=case_id, account=account.handle)
        record_audit(
            state,
            actor=ACTOR,
            action="appeal",
            source="web",
            case_id=case_id,
            account=account.handle,
            reason="the account appealed its lock",
            details={"appeal": appeal["id"], "signal": signal_id, "ip": ip},
        )
        state.commit()
    return Received(appeal["id"], case_id, appeal["created_at"], new=True)
