"""Staff alerts: cases reaching alerts.min_priority (once per case, again only above the priority
it last alerted at), lists failing for over an hour or no longer tried by any sync, and the staff's
mail carrying every waiting event, at most one per alerts.digest_minutes. Set-based passes, run by
`podmod notify deliver`."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg

from podmod import pod_db
from podmod.config import Config, mail_address
from podmod.errors import PodmodError
from podmod.notify import appeals, events
from podmod.notify.mail import domain_of

log = logging.getLogger(__name__)

NOTIFY_LOCK = 0x706E6F74  # "pnot": one alert pass and one staff mail at a time
LISTED = 50  # cases (and locks) named in one mail or webhook; the rest are counted
# How long a list fails before the staff are told, and cron mails it once (`lists sync --cron`,
# podmod.lists.sync.failing_for_an_hour): a list's server between updates fails for minutes.
# (In SQL, `interval '1:00:00'`.)
FAILING_AFTER = timedelta(hours=1)

# Open cases at or above the threshold that never alerted or rose above the priority they last
# alerted at: marked at their priority now, and returned.
ALERT_CASES_SQL = """
WITH due AS (
    SELECT c.id, c.account, c.priority, a.priority AS previous
    FROM podmod.cases c
    LEFT JOIN podmod.case_alerts a ON a.case_id = c.id
    WHERE c.status = 'open' AND c.priority >= %(min)s
      AND (a.priority IS NULL OR c.priority > a.priority)
), marked AS (
    INSERT INTO podmod.case_alerts (case_id, priority)
    SELECT id, priority FROM due
    ON CONFLICT (case_id) DO UPDATE SET priority = excluded.priority, alerted_at = now()
)
SELECT id, account, priority, previous FROM due ORDER BY priority DESC, id
"""

# Subscribed lists whose last success (or creation) is over an hour old and whose newest attempt
# failed: one event per list and failure (the key names the last success it follows).
FAILING_LISTS_SQL = f"""
SELECT name, last_error, last_error_at, last_success_at,
       coalesce(last_success_at, created_at) AS since
FROM podmod.lists
WHERE origin = 'subscription' AND last_error_at IS NOT NULL
  AND (last_success_at IS NULL OR last_error_at > last_success_at)
  AND coalesce(last_success_at, created_at) < now() - interval '{FAILING_AFTER}'
ORDER BY name
"""

# Subscribed lists (those in the configuration) that no sync has tried for alerts.lists_stale_hours:
# `podmod lists sync` stopped running. A list configured but never synced has no row; it counts
# from the newest attempt of any list (a working cron job tries a new list at its next run), or,
# with none ever, from podmod's install. One event per list and stall (the key names its last
# attempt): a sync trying it again ends the stall.
STALE_LISTS_SQL = """
WITH configured AS (SELECT unnest(%(names)s::text[]) AS name),
     newest AS (SELECT max(last_attempt_at) AS at FROM podmod.lists WHERE origin = 'subscription'),
     installed AS (SELECT min(applied_at) AS at FROM podmod.schema_migrations),
     tried AS (
         SELECT c.name, l.last_attempt_at,
                coalesce(l.last_attempt_at, l.created_at, (SELECT at FROM newest),
                         (SELECT at FROM installed)) AS since
         FROM configured c LEFT JOIN podmod.lists l ON l.name = c.name
     )
SELECT name, last_attempt_at, since FROM tried
WHERE since < now() - make_interval(hours => %(hours)s)
ORDER BY name
"""


def stale_lists(
    config: Config, state: psycopg.Connection, name: str | None = None
) -> list[dict[str, Any]]:
    """The subscribed lists (or the one of that name) no sync has tried for
    alerts.lists_stale_hours (none when it is 0): name, last_attempt_at (None: never tried) and
    since."""
    hours = config["alerts.lists_stale_hours"]
    names = [s.name for s in config.lists if name is None or s.name == name]
    if not hours or not names:
        return []
    return state.execute(STALE_LISTS_SQL, {"names": names, "hours": hours}).fetchall()


STALE_ADVICE = (
    "`podmod lists sync` no longer runs: see that its cron job (deploy/podmod.cron) is installed"
    " and cron is running, and read its log (/var/log/podmod/lists.log); in a container, that the"
    " `podmod-lists` service (`podmod lists sync --every 900`) is up, and read its log"
    " (`docker compose logs podmod-lists`)"
)


def stale_text(row: dict[str, Any]) -> str:
    """What a stale list's row (stale_lists) says: since when no sync tried it, and what to do."""
    from podmod.lists.fetch import utc_minute

    since = utc_minute(row["since"])
    if row["last_attempt_at"] is None:
        return f"never synced, and no sync has run since {since}; {STALE_ADVICE}"
    return f"no sync has tried it since {since}; {STALE_ADVICE}"


def failing_key(name: str, last_success_at: datetime | None) -> str:
    """What makes a list's list.failing event happen once per failure: the list and the last
    success the failure follows (a key that recurs while the list has not succeeded since)."""
    return f"list.failing:{name}:{last_success_at or 'never'}"


def stale_key(name: str, last_attempt_at: datetime | None) -> str:
    """What makes a list's list.stale event happen once per stall: the list and its last
    attempt (a key that recurs while no sync has tried it since)."""
    return f"list.stale:{name}:{last_attempt_at.isoformat() if last_attempt_at else 'never'}"


def live_keys(config: Config, state: psycopg.Connection) -> list[str]:
    """The event keys the lists' state now would make again: an event under one of them is what
    keeps that failure or stall from being told twice (podmod.retention keeps it)."""
    rows = state.execute(
        "SELECT name, last_success_at, last_attempt_at FROM podmod.lists"
    ).fetchall()
    keys = [failing_key(row["name"], row["last_success_at"]) for row in rows]
    keys += [stale_key(row["name"], row["last_attempt_at"]) for row in rows]
    known = {row["name"] for row in rows}
    return keys + [stale_key(s.name, None) for s in config.lists if s.name not in known]


def alert_cases(config: Config, state: psycopg.Connection) -> int:
    """Record one case.alert event for every case due an alert now, in one transaction; returns
    how many cases it names."""
    with state.transaction():
        state.execute("SELECT pg_advisory_xact_lock(%s)", (NOTIFY_LOCK,))
        due = state.execute(ALERT_CASES_SQL, {"min": config["alerts.min_priority"]}).fetchall()
        if due:
            events.record(
                config,
                state,
                "case.alert",
                case_id=due[0]["id"] if len(due) == 1 else None,
                account=due[0]["account"] if len(due) == 1 else None,
                facts={
                    "count": len(due),
                    "min_priority": config["alerts.min_priority"],
                    "cases": [dict(row) for row in due[:LISTED]],
                },
            )
    return len(due)


def alert_failing_lists(config: Config, state: psycopg.Connection) -> int:
    """Record list.failing once for each list failing for over an hour; returns how many now."""
    recorded = 0
    with state.transaction():
        state.execute("SELECT pg_advisory_xact_lock(%s)", (NOTIFY_LOCK,))
        for row in state.execute(FAILING_LISTS_SQL).fetchall():
            since = row["since"].isoformat()
            recorded += (
                events.record(
                    config,
                    state,
                    "list.failing",
                    list_name=row["name"],
                    facts={"since": since, "error": row["last_error"]},
                    key=failing_key(row["name"], row["last_success_at"]),
                )
                is not None
            )
    return recorded


def alert_stale_lists(config: Config, state: psycopg.Connection) -> int:
    """Record list.stale once for each subscribed list no sync has tried for
    alerts.lists_stale_hours; returns how many now."""
    recorded = 0
    with state.transaction():
        state.execute("SELECT pg_advisory_xact_lock(%s)", (NOTIFY_LOCK,))
        for row in stale_lists(config, state):
            tried = row["last_attempt_at"]
            recorded += (
                events.record(
                    config,
                    state,
                    "list.stale",
                    list_name=row["name"],
                    facts={
                        "since": row["since"].isoformat(),
                        "last_attempt": tried.isoformat() if tried else None,
                        "stale_hours": config["alerts.lists_stale_hours"],
                    },
                    key=stale_key(row["name"], tried),
                )
                is not None
            )
    return recorded


def staff_recipients(config: Config, pod: psycopg.Connection) -> list[dict[str, Any]]:
    """alerts.to, else every local admin and moderator at users.email (with users.language)."""
    if config["alerts.to"]:
        return [{"email": address, "language": None} for address in config["alerts.to"]]
    try:
        with pod.transaction():
            rows = pod_db.staff_contacts(pod)
    except psycopg.errors.InsufficientPrivilege:
        raise PodmodError(
            "podmod may not read users.email and users.language in the pod's database, so it "
            "cannot mail the staff: run deploy/grants.sql again, or set alerts.to."
        ) from None
    wrong = [row["email"] for row in rows if not mail_address(row["email"])]
    for address in wrong:
        log.warning("staff mail: %r is not a mail address; it gets no alert", address)
    return [row for row in rows if row["email"] not in wrong]


# What became of the held versions a staff mail is about to tell of, by list and number: their
# status now, who approved or rejected them and why, and whether their list holds a version still
# (a hold another version took the place of goes on as that one).
HOLDS_NOW_SQL = """
SELECT l.name, v.number, v.status, v.approved_by, v.applied_at, v.rejected_by,
       v.rejected_reason, v.ended_at, v.served_again,
       EXISTS (SELECT 1 FROM podmod.list_versions h
               WHERE h.list_id = l.id AND h.status = 'held') AS list_holds
FROM podmod.list_versions v JOIN podmod.lists l ON l.id = v.list_id
WHERE (l.name, v.number) IN (SELECT * FROM unnest(%s::text[], %s::integer[]))
"""


def holds_ended(state: psycopg.Connection, waiting: list[dict[str, Any]]) -> dict[Any, dict]:
    """The versions these list.held events told held that no longer wait, by (list, number):
    what became of each as its page says it (versions.fate_parts: "rejected by … on …: why",
    "approved by … on …", "withdrawn on …: …", "a later version took its place on …"), as
    `reason`, and as facts (`fate`, versions.fate_facts) the staff's mail says in its
    recipient's language (digest_payload)."""
    told = [
        (event["list_name"], event["facts"].get("version"))
        for event in waiting
        if event["type"] == "list.held"
        and not event["facts"].get("locks_held")
        and event["facts"].get("version") is not None
    ]
    if not told:
        return {}
    rows = state.execute(
        HOLDS_NOW_SQL, ([name for name, _ in told], [number for _, number in told])
    ).fetchall()
    from podmod.lists.versions import fate_facts, fate_parts  # (loaded when used)

    ended = {}
    for row in rows:
        if row["status"] == "superseded" and row["list_holds"]:
            continue  # (the version that took its place waits, and the mail says so)
        fate = fate_facts(row)
        if fate:
            ended[row["name"], row["number"]] = {
                "reason": "".join(text for text, _ in fate_parts(fate)),
                "fate": fate,
            }
    return ended


def digest_payload(
    config: Config, waiting: list[dict[str, Any]], ended: dict[Any, dict] | None = None
) -> dict[str, Any]:
    """What the staff's mail says of these events: the cases by priority (the first LISTED named),
    accounts locked by lists, held versions, failing and stale lists, appeals, each with links.
    `ended` (holds_ended): the held versions that no longer wait, told apart from those that do
    (and not at all when the mail tells of their withdrawal)."""
    ended = ended or {}
    cases: dict[int, dict[str, Any]] = {}  # the named ones; a case that rose twice is one
    counted = named_twice = 0
    locked, held, locks_held, failing, stale, appealed = [], [], [], [], [], []
    withdrawn, settled, entries_held = [], [], []
    withdrawals = {
        (event["list_name"], event["facts"].get("version"))
        for event in waiting
        if event["type"] == "list.held" and event["facts"].get("withdrawn")
    }
    for event in waiting:
        facts = event["facts"]
        if event["type"] == "case.alert":
            counted += facts["count"]
            for case in facts["cases"]:
                named_twice += case["id"] in cases
                cases[case["id"]] = {**case, "url": events.case_url(config, case["id"])}
        elif event["type"] == "account.locked":
            locked.append(
                {
                    "account": event["account"],
                    "by": facts.get("by", ""),
                    "list": str(facts.get("by", "")).removeprefix("list:"),
                    "case_url": events.case_url(config, event["case_id"])
                    if event["case_id"]
                    else None,
                }
            )
        elif event["type"] == "list.held" and facts.get("locks_held"):
            locks_held.append(
                {
                    "list": event["list_name"],
                    "count": facts["locks_held"],
                    "reason": facts.get("held_reason", ""),
                    # (the facts its reason says, for the recipient's language; an event of an
                    # older podmod has the reason alone)
                    "max_locks": facts.get("max_locks"),
                    "command": facts.get("lock_command"),
                    "url": events.locks_url(config, event["list_name"]),
                }
            )
        elif event["type"] == "list.held" and facts.get("entry"):
            entries_held.append(
                {
                    "list": event["list_name"],
                    "entry": facts["entry"],
                    "reason": facts.get("held_reason", ""),
                    # (the facts its reason says, for the recipient's language; an event of an
                    # older podmod has the reason alone)
                    "authors": facts.get("authors"),
                    "known": facts.get("known"),
                    "share": facts.get("share"),
                    "cap": facts.get("cap"),
                    "command": facts.get("confirm_command"),
                    "url": events.list_url(config, event["list_name"]),
                    # (counts only: the sample's handles and text stay on the lists page)
                    "sampled": facts.get("sampled", 0),
                    "cases_closed": facts.get("cases_closed", 0),
                    "cases_alerted": facts.get("cases_alerted", 0),
                    "accounts_locked": facts.get("accounts_locked", 0),
                    "matches_kept": facts.get("matches_kept", 0),
                }
            )
        elif event["type"] == "list.held" and facts.get("withdrawn"):
            withdrawn.append(
                {
                    "list": event["list_name"],
                    "version": facts.get("version"),
                    "reason": facts.get("held_reason", ""),
                    "in_force": facts.get("in_force"),
                    "url": events.list_url(config, event["list_name"]),
                }
            )
        elif event["type"] == "list.held" and (
            (event["list_name"], facts.get("version")) in withdrawals
        ):
            continue  # (its withdrawal, told below, says it was held)
        elif event["type"] == "list.held" and (event["list_name"], facts.get("version")) in ended:
            settled.append(
                {
                    "list": event["list_name"],
                    "version": facts.get("version"),
                    **ended[event["list_name"], facts.get("version")],
                    "url": events.list_url(config, event["list_name"], facts.get("version")),
                }
            )
        elif event["type"] == "list.held":
            # (the lists page, not the version's: a later version of the same change may take
            # its place before anyone reads the mail, and the lists page shows the one to approve)
            held.append(
                {
                    "list": event["list_name"],
                    "version": facts.get("version"),
                    "reason": facts.get("held_reason", ""),
                    "url": events.list_url(config, event["list_name"]),
                }
            )
        elif event["type"] == "appeal.received":
            appealed.append(
                {"account": event["account"], "case_url": events.case_url(config, event["case_id"])}
            )
        elif event["type"] == "list.failing":
            failing.append(
                {
                    "list": event["list_name"],
                    "since": facts.get("since"),
                    "error": facts.get("error", ""),
                    "url": events.list_url(config, event["list_name"]),
                }
            )
        elif event["type"] == "list.stale":
            stale.append(
                {
                    "list": event["list_name"],
                    "never": facts.get("last_attempt") is None,
                    "hours": _hours_since(facts.get("since"), event["created_at"]),
                    "url": events.list_url(config, event["list_name"]),
                }
            )
    named = sorted(cases.values(), key=lambda c: (-c["priority"], c["id"]))
    return {
        "case_count": counted - named_twice,
        "cases": named[:LISTED],
        "min_priority": config["alerts.min_priority"],
        "locked_count": len(locked),
        "locked": locked[:LISTED],
        "held_count": len(held),
        "held": held,
        "withdrawn_count": len(withdrawn),
        "withdrawn": withdrawn,
        "settled_count": len(settled),
        "settled": settled,
        "entries_held_count": len(entries_held),
        "entries_held": entries_held,
        "locks_held_count": len(locks_held),
        "locks_held": locks_held,
        "failing_count": len(failing),
        "failing": failing,
        "stale_count": len(stale),
        "stale": stale,
        "appeal_count": len(appealed),
        "appeals": appealed[:LISTED],
        "queue_url": config["web.public_url"],
        "lists_url": events.list_url(config, ""),
    }


def _hours_since(since: str | None, moment: datetime) -> int:
    """Whole hours from an ISO time to a moment (how long a stale list waited, at its event)."""
    if since is None:
        return 0
    return int((moment - datetime.fromisoformat(since)).total_seconds() // 3600)


def mail_staff(config: Config, state: psycopg.Connection, pod: psycopg.Connection) -> int:
    """Put every event waiting for the staff's mail into one mail to each recipient (outbox rows
    of one digest), unless alerts.digest_minutes have not passed since the last one; returns how
    many events it carried. The events, the digest and its rows commit together."""
    if not events.mail_configured(config):
        return 0
    with state.transaction():
        state.execute("SELECT pg_advisory_xact_lock(%s)", (NOTIFY_LOCK,))
        waiting = state.execute(
            "SELECT id, type, case_id, account, list_name, facts, created_at FROM podmod.events"
            " WHERE staff_mail AND digest_id IS NULL ORDER BY created_at, id"
        ).fetchall()
        if not waiting:
            return 0
        minutes = config["alerts.digest_minutes"]
        if minutes:
            recent = state.execute(
                "SELECT 1 FROM podmod.digests WHERE created_at > now() - make_interval(mins => %s)"
                " LIMIT 1",
                (minutes,),
            ).fetchone()
            if recent:
                return 0
        recipients = staff_recipients(config, pod)
        if not recipients:
            log.warning(
                "staff mail: no local admin or moderator has a mail address, and alerts.to is "
                "empty; %d events go unmailed",
                len(waiting),
            )
        digest_id = state.execute(
            "INSERT INTO podmod.digests (events, recipients) VALUES (%s, %s) RETURNING id",
            (len(waiting), len(recipients)),
        ).fetchone()["id"]
        state.execute(
            "UPDATE podmod.events SET digest_id = %s WHERE id = ANY(%s)",
            (digest_id, [event["id"] for event in waiting]),
        )
        payload = json.dumps(digest_payload(config, waiting, holds_ended(state, waiting)))
        domain = domain_of(config)
        state.cursor().executemany(
            "INSERT INTO podmod.outbox (channel, target, event_type, digest_id, language, payload,"
            " message_id) VALUES ('mail', %s, 'digest', %s, %s, %s, %s)",
            [
                (
                    row["email"],
                    digest_id,
                    row["language"],
                    payload,
                    f"<podmod.{digest_id}.{uuid4().hex}@{domain}>",
                )
                for row in recipients
            ],
        )
    return len(waiting)


def mail_accounts(config: Config, state: psycopg.Connection, pod: psycopg.Connection) -> int:
    """Write the mail of each event waiting to be told to its local account (a locked account:
    why, whom to ask and its appeal link; an appeal's decision) to the outbox, in its
    users.language; an account unlocked since its lock, or without an address, is told nothing of
    the lock. Returns how many mails it wrote."""
    if not events.mail_configured(config):
        return 0
    with state.transaction():
        waiting = state.execute(
            "SELECT id, type, account, case_id, facts, tell_user_id FROM podmod.events"
            " WHERE tell_user_id IS NOT NULL AND told_at IS NULL ORDER BY created_at, id"
            " LIMIT 500 FOR UPDATE SKIP LOCKED"
        ).fetchall()
        if not waiting:
            return 0
        try:
            with pod.transaction():
                contacts = pod_db.user_contacts(pod, [e["tell_user_id"] for e in waiting])
        except psycopg.errors.InsufficientPrivilege:
            raise PodmodError(
                "podmod may not read users.email and users.language in the pod's database, so "
                "it cannot tell locked accounts: run deploy/grants.sql again."
            ) from None
        written = 0
        domain = domain_of(config)
        for event in waiting:
            contact = contacts.get(event["tell_user_id"])
            if not contact or not mail_address(contact["email"] or ""):
                continue  # gone, or no address: nothing to tell
            if event["type"] == "account.locked" and not contact["locked"]:
                continue  # unlocked since: the lock is no news (an appeal's decision still is)
            state.execute(
                "INSERT INTO podmod.outbox (channel, target, event_type, event_id, language,"
                " payload, message_id) VALUES ('mail', %s, %s, %s, %s, %s, %s)",
                (
                    contact["email"],
                    event["type"],
                    event["id"],
                    contact["language"],
                    json.dumps(
                        account_payload(config, event) | appeals.mail_facts(config, state, event)
                    ),
                    f"<podmod.{event['id'].hex}@{domain}>",
                ),
            )
            written += 1
        state.execute(
            "UPDATE podmod.events SET told_at = now() WHERE id = ANY(%s)",
            ([event["id"] for event in waiting],),
        )
    return written


def account_payload(config: Config, event: dict[str, Any]) -> dict[str, Any]:
    """What a locked account's mail says: the account, the moderator's reason or the list that
    locked it, the pod and whom to write to (never who the moderator was)."""
    facts = event["facts"]
    by = str(facts.get("by", ""))
    return {
        "account": event["account"],
        "reason": facts.get("reason") if not by.startswith("list:") else None,
        "list": by.removeprefix("list:") if by.startswith("list:") else None,
        "labels": facts.get("labels", []),
        "pod": event["account"].rpartition("@")[2],
        "pod_url": config["web.pod_url"] or "https://" + event["account"].rpartition("@")[2],
        "contact": config["alerts.to"][0] if config["alerts.to"] else None,
    }
