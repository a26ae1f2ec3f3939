"""The one path for every moderation action: the web page, the CLI and list policies all call these.

Each action writes the pod row, the decision and the audit row in one transaction (one connection
when podmod's schema lives in the pod's database, the default), and refuses what it must: remote
accounts cannot be locked from this pod, and admins or moderators only with an explicit
confirmation. Two moderators acting at once give one lock and one "already locked". Lock and
close finishes a case in one step: the lock, its reports reviewed and the case resolved as locked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from podmod import notify, pod_db, references
from podmod.config import Config
from podmod.db import pod_connection, state_connection
from podmod.errors import PodmodError
from podmod.notify import appeals
from podmod.redact import masked_url
from podmod.store import (
    INGEST_LOCK,
    locked_on_case,
    outcome,
    record_audit,
    resolve_cases_without_pending,
)

if TYPE_CHECKING:
    from podmod.lists.local import LocalEntry


class ActionRefused(PodmodError):
    """The action cannot or must not be done; the message says why and what to do instead."""

    exit_code = 5


class ConfirmationNeeded(ActionRefused):
    """Locking staff or oneself: done only when asked again with a confirmation."""

    def __init__(self, who: str, how: str = "repeat the action with it") -> None:
        super().__init__(f"Locking {who} needs an explicit confirmation; {how}.")
        self.who = who


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


def find_account(
    pod: psycopg.Connection, *, handle: str | None = None, person_id: int | None = None
) -> Account:
    """The pod's account by handle (user@host, or a bare local username) or people.id."""
    if person_id is not None:
        row = pod.execute(ACCOUNT_SQL.format(where="p.id = %s"), (person_id,)).fetchone()
    else:
        wanted = references.account_text(pod, handle or "").lower().removeprefix("@")
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


def find_accounts(pod: psycopg.Connection, person_ids: list[int]) -> dict[int, Account]:
    """The pod's accounts with these people.id, in one query, by id (those gone: left out)."""
    rows = pod.execute(ACCOUNT_SQL.format(where="p.id = ANY(%s)"), (person_ids,)).fetchall()
    return {row["person_id"]: Account(**row) for row in rows}


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


def _record(
    state: psycopg.Connection,
    account: Account,
    action: str,
    *,
    actor: str,
    source: str,
    reason: str | None,
    case_id: int | None,
    details: dict[str, Any],
) -> None:
    state.execute(
        "INSERT INTO podmod.decisions (case_id, person_id, account, action, actor, source, reason,"
        " details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            case_id,
            account.person_id,
            account.handle,
            action,
            actor,
            source,
            reason,
            json.dumps(details),
        ),
    )
    record_audit(
        state,
        actor=actor,
        action=action,
        source=source,
        case_id=case_id,
        account=account.handle,
        reason=reason,
        details=details,
    )


def _refuse_unless_lockable(
    account: Account, *, lock: bool, confirm_staff: bool, actor_person_id: int | None
) -> None:
    """Remote accounts are never (un)locked here; staff and oneself only with a confirmation."""
    if not account.local:
        raise ActionRefused(
            f"{account.handle} is a remote account: only its own pod can lock it. Ask the "
            f"admin of {account.handle.split('@', 1)[1]}, or add it to a local list so "
            "podmod keeps flagging it here."
        )
    if lock and (account.staff or account.person_id == actor_person_id) and not confirm_staff:
        who = (
            "yourself"
            if account.person_id == actor_person_id
            else (f"{account.handle}, who holds the role {'/'.join(sorted(account.roles))},")
        )
        raise ConfirmationNeeded(who)


def _write_lock(pod: psycopg.Connection, account: Account, *, lock: bool) -> bool:
    """Set or clear users.locked_at; False when it was so already (the row decides, not a read
    before it, so two moderators at once give one change)."""
    if lock:
        sql = (
            "UPDATE users SET locked_at = (now() AT TIME ZONE 'UTC')"
            " WHERE id = %s AND locked_at IS NULL RETURNING id"
        )
    else:
        sql = (
            "UPDATE users SET locked_at = NULL WHERE id = %s AND locked_at IS NOT NULL RETURNING id"
        )
    return pod.execute(sql, (account.user_id,)).fetchone() is not None


def _lock_event(
    account: Account,
    case_id: int | None,
    *,
    actor: str,
    source: str,
    reason: str | None,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    """What an account.locked or account.unlocked event says: who (a list, or the staff: a
    webhook never names the moderator), from where and why (for a list, the labels of the entry
    that locked)."""
    by = actor if actor.startswith("list:") else "staff"
    facts = {"by": by, "source": source, "reason": reason}
    if by != "staff" and (details or {}).get("labels"):
        facts["labels"] = details["labels"]
    return {
        "case_id": case_id,
        "account": account.handle,
        "facts": facts,
        "tell_user_id": account.user_id,
    }


def _set_lock(
    config: Config,
    *,
    lock: bool,
    handle: str | None,
    person_id: int | None,
    actor: str,
    source: str,
    reason: str | None,
    case_id: int | None,
    details: dict[str, Any] | None,
    confirm_staff: bool,
    actor_person_id: int | None,
) -> ActionResult:
    action = "lock" if lock else "unlock"
    with _connections(config) as (pod, state):
        account = find_account(pod, handle=handle, person_id=person_id)
        _refuse_unless_lockable(
            account, lock=lock, confirm_staff=confirm_staff, actor_person_id=actor_person_id
        )
        case_id = case_id or _open_case_id(state, account.person_id)
        changed = _write_lock(pod, account, lock=lock)
        if pod is not state:
            pod.commit()  # separate databases: the pod row first, then podmod's record of it
        if changed:
            _record(
                state,
                account,
                action,
                actor=actor,
                source=source,
                reason=reason,
                case_id=case_id,
                details=details or {},
            )
            notify.record(
                config,
                state,
                "account.locked" if lock else "account.unlocked",
                **_lock_event(
                    account, case_id, actor=actor, source=source, details=details, reason=reason
                ),
            )
            if not lock:
                appeals.decide(
                    config,
                    state,
                    outcome="unlocked",
                    actor=actor,
                    source=source,
                    person_id=account.person_id,
                )
        state.commit()
    if changed:
        message = f"{account.handle} is now {'locked' if lock else 'unlocked'}."
    else:
        message = f"{account.handle} was already {'locked' if lock else 'unlocked'}."
    return ActionResult(action, account.handle, changed, message, case_id)


def record_refusal(
    config: Config,
    *,
    person_id: int,
    case_id: int | None,
    action: str,
    actor: str,
    source: str,
    reason: str,
    details: dict[str, Any],
) -> None:
    """Record an automatic action that was refused (e.g. a list policy meeting an admin)."""
    with _connections(config) as (pod, state):
        account = find_account(pod, person_id=person_id)
        _record(
            state,
            account,
            action,
            actor=actor,
            source=source,
            reason=reason,
            case_id=case_id,
            details=details,
        )
        state.commit()


def lock_account(
    config: Config,
    *,
    actor: str,
    source: str,
    reason: str | None = None,
    handle: str | None = None,
    person_id: int | None = None,
    case_id: int | None = None,
    details: dict[str, Any] | None = None,
    confirm_staff: bool = False,
    actor_person_id: int | None = None,
) -> ActionResult:
    """Lock a local account (diaspora* signs it out on its next request)."""
    return _set_lock(
        config,
        lock=True,
        handle=handle,
        person_id=person_id,
        actor=actor,
        source=source,
        reason=reason,
        case_id=case_id,
        details=details,
        confirm_staff=confirm_staff,
        actor_person_id=actor_person_id,
    )


def unlock_account(
    config: Config,
    *,
    actor: str,
    source: str,
    reason: str | None = None,
    handle: str | None = None,
    person_id: int | None = None,
    case_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Unlock a local account."""
    return _set_lock(
        config,
        lock=False,
        handle=handle,
        person_id=person_id,
        actor=actor,
        source=source,
        reason=reason,
        case_id=case_id,
        details=details,
        confirm_staff=True,
        actor_person_id=None,
    )


# ---------------------------------------------------------------------------------------------
# Case actions: mark reviewed, dismiss, reopen, note. Like locking, each writes the pod row (if
# any), the case, the decision and the audit row in one transaction; case and signal writes take
# the ingest lock, as intake does.


class CaseNotFound(PodmodError):
    exit_code = 4


def _case_for_update(state: psycopg.Connection, case_id: int) -> dict[str, Any]:
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    row = state.execute(
        "SELECT id, subject, person_id, account, local, status, resolution FROM podmod.cases"
        " WHERE id = %s FOR UPDATE",
        (case_id,),
    ).fetchone()
    if row is None:
        raise CaseNotFound(f"There is no case {case_id}; see `podmod cases`.")
    return row


def _record_on_case(
    state: psycopg.Connection,
    case: dict[str, Any],
    action: str,
    *,
    actor: str,
    source: str,
    reason: str | None,
    details: dict[str, Any],
) -> None:
    """_record for a case: the case's account (which may be unknown) stands for the account."""
    _record(
        state,
        Account(
            person_id=case["person_id"],
            handle=case["account"],
            user_id=None,
            locked=False,
            closed=False,
        ),
        action,
        actor=actor,
        source=source,
        reason=reason,
        case_id=case["id"],
        details=details,
    )


def _review_reports(
    pod: psycopg.Connection, state: psycopg.Connection, case_id: int, actor: str
) -> tuple[list[int], list[int]]:
    """Every report of the case's pending items becomes reviewed, in the pod (all reports of the
    same items, as diaspora*'s page does) and here. Returns (pod report ids, touched case ids)."""
    items = [
        (row["item_type"], row["item_id"])
        for row in state.execute(
            "SELECT DISTINCT item_type, item_id FROM podmod.signals WHERE case_id = %s"
            " AND kind = 'report' AND NOT reviewed AND item_id IS NOT NULL ORDER BY 1, 2",
            (case_id,),
        )
    ]
    if not items:
        return [], []
    report_ids = pod_db.mark_reports_reviewed(pod, items)
    rows = state.execute(
        "UPDATE podmod.signals s SET reviewed = true, reviewed_at = now(), reviewed_by = %s"
        " FROM unnest(%s::text[], %s::integer[]) AS i (item_type, item_id)"
        " WHERE s.kind = 'report' AND NOT s.reviewed AND s.item_type = i.item_type"
        " AND s.item_id = i.item_id RETURNING s.case_id",
        (actor, [t for t, _ in items], [i for _, i in items]),
    ).fetchall()
    touched = sorted({row["case_id"] for row in rows} | {case_id})
    state.execute("SELECT podmod.refresh_cases(%s)", (touched,))
    return report_ids, touched


def _who(case: dict[str, Any]) -> str:
    return case["account"] or f"case {case['id']}"


def _reports(report_ids: list[int]) -> str:
    return f"{len(report_ids)} report{'' if len(report_ids) == 1 else 's'}"


def _already_closed(action: str, case: dict[str, Any]) -> ActionResult:
    return ActionResult(
        action,
        _who(case),
        False,
        f"Case {case['id']} ({_who(case)}) was already closed: "
        f"{outcome(case['status'], case['resolution'])}.",
        case["id"],
    )


def _decide_appeal_on_close(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    case: dict[str, Any],
    *,
    actor: str,
    source: str,
) -> None:
    """Decide the case's undecided appeal, if any, as the case closes without a lock: upheld
    while the account stays locked, unlocked when it was unlocked in diaspora* itself meanwhile
    (so that the account's mail says what is true)."""
    waiting = state.execute(
        "SELECT 1 FROM podmod.appeals WHERE case_id = %s AND outcome IS NULL", (case["id"],)
    ).fetchone()
    if not waiting:
        return
    outcome = "upheld"
    if case["person_id"] is not None:
        try:
            if not find_account(pod, person_id=case["person_id"]).locked:
                outcome = "unlocked"
        except AccountNotFound:
            pass  # gone from the pod: nothing to unlock, the decision stands
    appeals.decide(config, state, outcome=outcome, actor=actor, source=source, case_id=case["id"])


def mark_reviewed(
    config: Config,
    *,
    case_id: int,
    actor: str,
    source: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Mark the case's reports reviewed (in the pod too); the case leaves the queue when nothing
    is pending and no list matches it."""
    with _connections(config) as (pod, state):
        case = _case_for_update(state, case_id)
        report_ids, touched = _review_reports(pod, state, case_id, actor)
        if not touched:
            state.rollback()
            return ActionResult(
                "mark_reviewed",
                _who(case),
                False,
                f"{_who(case)}: no pending report to mark reviewed.",
                case_id,
            )
        if pod is not state:
            pod.commit()
        resolve_cases_without_pending(
            state,
            touched,
            resolution="reviewed",
            actor=actor,
            source=source,
            reason="every report on the case was marked reviewed",
            deciding=case_id,
        )
        closed = state.execute(
            "SELECT status, resolution FROM podmod.cases WHERE id = %s", (case_id,)
        ).fetchone()
        status = closed["status"]
        _record_on_case(
            state,
            case,
            "mark_reviewed",
            actor=actor,
            source=source,
            reason=reason,
            details={**(details or {}), "reports": report_ids},
        )
        if status != "open":
            _decide_appeal_on_close(config, pod, state, case, actor=actor, source=source)
        state.commit()
    message = f"{_who(case)}: {_reports(report_ids)} marked reviewed in diaspora*"
    if status == "open":
        message += (
            f"; case {case_id} stays open for its list or content matches (Dismiss closes it)."
        )
    else:
        message += f"; case {case_id} is closed: {outcome(status, closed['resolution'])}."
    return ActionResult("mark_reviewed", _who(case), True, message, case_id)


def dismiss_case(
    config: Config,
    *,
    case_id: int,
    actor: str,
    source: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Close the case with no action taken; its pending reports are marked reviewed (in the pod
    too), so neither queue shows them again."""
    with _connections(config) as (pod, state):
        case = _case_for_update(state, case_id)
        if case["status"] != "open":
            state.rollback()
            return _already_closed("dismiss", case)
        report_ids, _ = _review_reports(pod, state, case_id, actor)
        if pod is not state:
            pod.commit()
        # An account locked on this case (and not unlocked) was acted on: the case closes as
        # locked, recorded as a close, never as "no action needed".
        locked = locked_on_case(state, case_id)
        status, resolution = ("resolved", "locked") if locked else ("dismissed", "dismissed")
        state.execute(
            "UPDATE podmod.cases SET status = %s, resolution = %s,"
            " closed_at = now(), updated_at = now() WHERE id = %s",
            (status, resolution, case_id),
        )
        _record_on_case(
            state,
            case,
            "close" if locked else "dismiss",
            actor=actor,
            source=source,
            reason=reason,
            details={**(details or {}), "reports": report_ids}
            | ({"outcome": "locked"} if locked else {}),
        )
        _decide_appeal_on_close(config, pod, state, case, actor=actor, source=source)
        state.commit()
    if locked:
        message = f"Case {case_id} ({_who(case)}) is closed: locked (its account was locked on it)."
    else:
        message = f"Case {case_id} ({_who(case)}) is dismissed."
    return ActionResult("dismiss", _who(case), True, message, case_id)


def lock_and_close(
    config: Config,
    *,
    actor: str,
    source: str,
    case_id: int | None = None,
    handle: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    confirm_staff: bool = False,
    actor_person_id: int | None = None,
) -> ActionResult:
    """Finish a case of a local account in one step: lock the account, mark the case's reports
    reviewed (in the pod too) and resolve the case as `locked`, in one transaction with one
    decision, audited as a lock. The case is `case_id`, or the open case of `handle`. When the
    account was locked already, the decision is `close`, so one lock is never two. Two people at
    once give one lock; the others hear that the case is closed."""
    with _connections(config) as (pod, state):
        if case_id is None:
            account = find_account(pod, handle=handle)
            case_id = _open_case_id(state, account.person_id)
            if case_id is None:
                raise ActionRefused(
                    f"{account.handle} has no open case to close; lock it without --close."
                )
        case = _case_for_update(state, case_id)
        if case["status"] != "open":
            state.rollback()
            return _already_closed("lock", case)
        if case["person_id"] is None:
            raise ActionRefused(
                f"The author of case {case_id} is unknown (the item was deleted), so there is "
                "nothing to lock; dismiss the case instead."
            )
        account = find_account(pod, person_id=case["person_id"])
        _refuse_unless_lockable(
            account, lock=True, confirm_staff=confirm_staff, actor_person_id=actor_person_id
        )
        locked_now = _write_lock(pod, account, lock=True)
        report_ids, touched = _review_reports(pod, state, case_id, actor)
        if pod is not state:
            pod.commit()  # separate databases: the pod rows first, then podmod's record of them
        state.execute(
            "UPDATE podmod.cases SET status = 'resolved', resolution = 'locked',"
            " closed_at = now(), updated_at = now() WHERE id = %s",
            (case_id,),
        )
        resolve_cases_without_pending(  # other cases of the same items, if any
            state,
            [other for other in touched if other != case_id],
            resolution="reviewed",
            actor=actor,
            source=source,
            reason="every report on the case was marked reviewed",
        )
        _record(
            state,
            account,
            "lock" if locked_now else "close",
            actor=actor,
            source=source,
            reason=reason,
            case_id=case_id,
            details={**(details or {}), "outcome": "locked", "reports": report_ids},
        )
        if locked_now:
            notify.record(
                config,
                state,
                "account.locked",
                **_lock_event(
                    account, case_id, actor=actor, source=source, reason=reason, details=details
                ),
            )
        appeals.decide(config, state, outcome="upheld", actor=actor, source=source, case_id=case_id)
        state.commit()
    closed = (
        f"case {case_id} is closed: locked ({_reports(report_ids)} marked reviewed in diaspora*)."
    )
    if locked_now:
        message = f"{account.handle} is now locked and {closed}"
    else:
        message = f"{account.handle} was already locked; {closed}"
    return ActionResult("lock" if locked_now else "close", account.handle, True, message, case_id)


def reopen_case(
    config: Config,
    *,
    case_id: int,
    actor: str,
    source: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Put a resolved or dismissed case back in the queue (unless the account has an open one)."""
    with _connections(config) as (_pod, state):
        case = _case_for_update(state, case_id)
        if case["status"] == "open":
            state.rollback()
            return ActionResult(
                "reopen", _who(case), False, f"Case {case_id} is already open.", case_id
            )
        other = state.execute(
            "SELECT id FROM podmod.cases WHERE subject = %s AND status = 'open'",
            (case["subject"],),
        ).fetchone()
        if other:
            state.rollback()
            raise ActionRefused(
                f"{_who(case)} already has an open case ({other['id']}); work on that one."
            )
        reopen_in(state, case, actor=actor, source=source, reason=reason, details=details or {})
        state.commit()
    return ActionResult("reopen", _who(case), True, f"Case {case_id} is open again.", case_id)


def reopen_in(
    state: psycopg.Connection,
    case: dict[str, Any],
    *,
    actor: str,
    source: str,
    reason: str | None,
    details: dict[str, Any],
) -> None:
    """Put a closed case (locked by _case_for_update, its account without an open case) back in
    the queue, with its decision and audit row, inside the caller's transaction."""
    state.execute(
        "UPDATE podmod.cases SET status = 'open', resolution = NULL, closed_at = NULL,"
        " updated_at = now() WHERE id = %s",
        (case["id"],),
    )
    _record_on_case(
        state, case, "reopen", actor=actor, source=source, reason=reason, details=details
    )


def add_note(
    config: Config,
    *,
    case_id: int,
    actor: str,
    source: str,
    text: str,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """A free-text note on the case, kept with its decisions and in the audit log."""
    text = text.strip()
    if not text:
        raise ActionRefused("The note is empty; write something first.")
    with _connections(config) as (_pod, state):
        case = _case_for_update(state, case_id)
        _record_on_case(
            state, case, "note", actor=actor, source=source, reason=text, details=details or {}
        )
        state.commit()
    return ActionResult("note", _who(case), True, "Note added.", case_id)


# ---------------------------------------------------------------------------------------------
# Content matches: "not a match". The false positive is recorded (for the item, and optionally for
# every item of the account), the signal retracted, and later scans leave the pair out.


class SignalNotFound(PodmodError):
    exit_code = 4


def mark_not_a_match(
    config: Config,
    *,
    signal_id: int,
    actor: str,
    source: str,
    reason: str | None = None,
    whole_account: bool = False,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Mark a content match as a false positive: the entry does not match this item (or, with
    `whole_account`, anything of this account). Its signal is retracted, the case closes if nothing
    else keeps it open, and no scan brings the match back; decision and audit in one transaction."""
    with _connections(config) as (_pod, state):
        state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
        signal = state.execute(
            "SELECT id, case_id, kind, list_id, entry_kind, entry_value, item_type, item_id,"
            " person_id, retracted_at FROM podmod.signals WHERE id = %s",
            (signal_id,),
        ).fetchone()
        if signal is None:
            raise SignalNotFound(f"There is no signal {signal_id}; see `podmod cases --json`.")
        if signal["kind"] != "content":
            raise ActionRefused(
                f"Signal {signal_id} is a {signal['kind']} signal, not a content match; only "
                "content matches can be marked not a match."
            )
        case = _case_for_update(state, signal["case_id"])
        entry = (signal["entry_kind"], signal["entry_value"])
        recorded = state.execute(
            "INSERT INTO podmod.content_false_positives (entry_kind, entry_value, list_id,"
            " item_type, item_id, signal_id, actor, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING id",
            (
                *entry,
                signal["list_id"],
                signal["item_type"],
                signal["item_id"],
                signal_id,
                actor,
                reason,
            ),
        ).fetchone()
        if whole_account and signal["person_id"] is not None:
            recorded = (
                state.execute(
                    "INSERT INTO podmod.content_false_positives (entry_kind, entry_value, list_id,"
                    " person_id, signal_id, actor, reason) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING id",
                    (*entry, signal["list_id"], signal["person_id"], signal_id, actor, reason),
                ).fetchone()
                or recorded
            )
        because = f"not a match ({'every item of the account' if whole_account else 'this item'})"
        retracted = state.execute(
            "UPDATE podmod.signals SET retracted_at = now(), details = details"
            " || jsonb_build_object('retracted_because', %s::text, 'retracted_by', %s::text)"
            " WHERE kind = 'content' AND retracted_at IS NULL AND entry_kind = %s"
            " AND entry_value = %s AND ((item_type = %s AND item_id = %s)"
            "  OR (%s AND person_id = %s)) RETURNING id, case_id",
            (
                because,
                actor,
                *entry,
                signal["item_type"],
                signal["item_id"],
                whole_account,
                signal["person_id"],
            ),
        ).fetchall()
        if not recorded and not retracted:
            state.rollback()
            return ActionResult(
                "not_a_match",
                _who(case),
                False,
                f"Signal {signal_id} was already marked not a match.",
                case["id"],
            )
        touched = sorted({row["case_id"] for row in retracted} | {case["id"]})
        state.execute("SELECT podmod.refresh_cases(%s)", (touched,))
        resolve_cases_without_pending(
            state,
            touched,
            resolution="not_a_match",
            actor=actor,
            source=source,
            reason="its content matches were marked not a match and nothing else is pending",
        )
        _record_on_case(
            state,
            case,
            "not_a_match",
            actor=actor,
            source=source,
            reason=reason,
            details={
                **(details or {}),
                "signal": signal_id,
                "entry": f"{entry[0]}:{entry[1]}",
                "item": f"{signal['item_type']}:{signal['item_id']}",
                "whole_account": whole_account,
                "retracted": [row["id"] for row in retracted],
            },
        )
        state.commit()
    scope = "any item of this account" if whole_account else "this item"
    return ActionResult(
        "not_a_match",
        _who(case),
        True,
        f"{_who(case)}: {entry[0]}:{entry[1]} marked not a match for {scope}; "
        f"{len(retracted)} match(es) retracted.",
        case["id"],
    )


def _pod_list_change(
    config: Config,
    value: str,
    *,
    adding: bool,
    label: str | None,
    reason: str | None,
    actor: str,
    source: str,
    case_id: int | None,
    details: dict[str, Any] | None,
) -> ActionResult:
    from podmod.lists import apply, local

    reason_text = local.check_reason(reason)
    label_text = local.check_label(label) if adding else ""
    with pod_connection(config) as pod, state_connection(config) as state:
        entry, address = _pod_list_entry(pod, value)
        own = references.this_pod(pod) if entry.kind == "pod" else None
        # Matching takes this lock too: take it first, so two changes never wait on each other.
        state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
        case = _case_for_update(state, case_id) if case_id is not None else None
        if adding:
            number, present = local.add(
                state, entry, label=label_text, reason=reason_text, actor=actor
            )
        else:
            number, present = local.remove(state, entry, actor=actor), None
        action = "list_add" if adding else "list_remove"
        if number is None:
            state.rollback()
            message = (
                f"{entry.text} is on this pod's list already (since version {present['added_in']})."
                if adding
                else f"{entry.text} is not on this pod's list."
            )
            return ActionResult(action, entry.text, False, message)
        matched = apply.match_people(config, pod, state, full=True)
        facts = {
            **(details or {}),
            "list": "this-pod",
            "entry": entry.text,
            **({"from": address} if address else {}),
            "version": number,
            "matches_added": matched.added,
            "matches_retracted": matched.retracted,
        }
        if label_text:
            facts["label"] = label_text
        if case is not None:
            _record_on_case(
                state, case, action, actor=actor, source=source, reason=reason_text, details=facts
            )
        else:
            record_audit(
                state,
                actor=actor,
                action=action,
                source=source,
                account=entry.value if entry.kind == "account" else None,
                reason=reason_text,
                details=facts,
            )
        state.commit()
    shown = f"{references.shown(address)} shows {entry.text}. " if address else ""
    if adding:
        whole = entry.kind == "pod" and "." not in entry.value and ":" not in entry.value
        message = shown + (
            f"Added {entry.text} to this pod's list (version {number})"
            f"{f', a whole top-level domain: every pod under .{entry.value}' if whole else ''}: "
            f"{matched.added} new {'match' if matched.added == 1 else 'matches'}"
            f"{_own_pod_note(entry.value, own)}."
        )
    else:
        message = shown + (
            f"Removed {entry.text} from this pod's list (version {number}): "
            f"{matched.retracted} {'match' if matched.retracted == 1 else 'matches'} retracted."
        )
    return ActionResult(action, entry.text, True, message, case_id)


def _pod_list_entry(pod: psycopg.Connection, value: str) -> tuple[LocalEntry, str | None]:
    """The entry `value` names, and the address it was read from (None when it was a handle or a
    host), that address's password or token masked: it is shown and kept in the audit log. A
    refusal quotes it masked too."""
    from podmod.lists import local

    try:
        written = references.account_text(pod, value)
        entry = local.entry_for(written)
    except PodmodError as error:
        said = masked_url(str(error))
        if said == str(error):
            raise
        raise type(error)(said) from None
    address = masked_url(value.strip()) if written != value.strip() else None
    return entry, address


def _own_pod_note(value: str, own: str | None) -> str:
    """What a pod entry covering this pod's own host does not do (pod entries never match local
    accounts), said so that `0 new matches` on this pod's own name is not a puzzle."""
    host = (own or "").partition(":")[0]
    if not host or not (host == value or host.endswith("." + value)):
        return ""
    return f" ({host} is this pod: a pod entry never flags this pod's own accounts)"


def add_to_pod_list(
    config: Config,
    value: str,
    *,
    reason: str | None,
    actor: str,
    source: str,
    label: str | None = None,
    case_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Put an account (`user@pod.example`) or a pod (`pod.example`: every account on it and its
    subdomains) on this pod's own list, a review list: its matches become cases at once; the
    version, the decision (on the case, when acted from one) and the audit row in one
    transaction."""
    return _pod_list_change(
        config,
        value,
        adding=True,
        label=label,
        reason=reason,
        actor=actor,
        source=source,
        case_id=case_id,
        details=details,
    )


def remove_from_pod_list(
    config: Config,
    value: str,
    *,
    reason: str | None,
    actor: str,
    source: str,
    case_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Take an entry off this pod's own list: its matches are retracted (cases left with nothing
    pending close), in one transaction with the version and the audit row."""
    return _pod_list_change(
        config,
        value,
        adding=False,
        label=None,
        reason=reason,
        actor=actor,
        source=source,
        case_id=case_id,
        details=details,
    )
