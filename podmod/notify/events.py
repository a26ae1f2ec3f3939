"""Recording what happened: one event row and its webhook deliveries, written in the caller's
transaction, so that a notification exists exactly when the decision causing it committed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID, uuid4

import psycopg

from podmod.config import EVENT_TYPES, Config

# Facts kept for podmod's own mail (a moderator's reason, for the locked account's notice) that a
# webhook never carries.
PRIVATE_FACTS = ("reason",)
# Events a local account may be told of by mail, and the setting that says whether.
ACCOUNT_MAIL = {
    "account.locked": "notify.locked_accounts",
    "appeal.decided": "notify.locked_accounts",
}


def mail_configured(config: Config) -> bool:
    return bool(config["mail.smtp_url"])


def for_staff(event_type: str, facts: dict[str, Any]) -> bool:
    """Whether the staff hear of this event by mail: alerts, held, failing and stale lists,
    appeals, and accounts a lock list locked (a moderator's own lock needs no mail to the
    moderators)."""
    if event_type == "account.locked":
        return str(facts.get("by", "")).startswith("list:")
    if event_type == "list.held" and facts.get("replaces"):
        # (a version taking the place of a held one of the same kind: the same hold, which the
        # staff were told of once; the lists page shows the version to approve)
        return False
    return event_type in (
        "case.alert",
        "list.held",
        "list.failing",
        "list.stale",
        "appeal.received",
    )


def case_url(config: Config, case_id: int) -> str:
    return f"{config['web.public_url']}cases/{case_id}"


def account_url(config: Config, handle: str) -> str:
    """The queue searched for the account (podmod has no page per account)."""
    return f"{config['web.public_url']}?{urlencode({'q': handle, 'status': 'all'})}"


def list_url(config: Config, name: str, version: int | None = None) -> str:
    if version is None:
        return f"{config['web.public_url']}lists"
    return f"{config['web.public_url']}lists/{quote(name)}/versions/{version}"


def locks_url(config: Config, name: str) -> str:
    """The page of the locks a list's policy holds back (more than list_sync.max_locks)."""
    return f"{config['web.public_url']}lists/{quote(name)}/locks"


def links(
    config: Config,
    *,
    case_id: int | None,
    account: str | None,
    list_name: str | None,
    version: int | None = None,
    locks: bool = False,
) -> dict[str, Any]:
    """What an event concerns, as links into podmod (never the reported content)."""
    concerned: dict[str, Any] = {}
    if case_id is not None:
        concerned["case"] = {"id": case_id, "url": case_url(config, case_id)}
    if account is not None:
        concerned["account"] = {"handle": account, "url": account_url(config, account)}
    if list_name is not None:
        url = locks_url(config, list_name) if locks else list_url(config, list_name, version)
        concerned["list"] = {"name": list_name, "url": url}
    return concerned


def webhook_body(
    config: Config,
    *,
    event_id: UUID,
    event_type: str,
    created_at: datetime,
    case_id: int | None,
    account: str | None,
    list_name: str | None,
    facts: dict[str, Any],
) -> dict[str, Any]:
    """The JSON a webhook receives: event id, type, time, links to what it concerns, and the
    event's facts without the private ones."""
    public = {name: value for name, value in facts.items() if name not in PRIVATE_FACTS}
    if event_type == "case.alert":
        public["cases"] = [
            {**case, "url": case_url(config, case["id"])} for case in public.get("cases", [])
        ]
        public["queue_url"] = config["web.public_url"]
    return {
        "id": str(event_id),
        "type": event_type,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        **links(
            config,
            case_id=case_id,
            account=account,
            list_name=list_name,
            version=facts.get("version") if event_type == "list.held" else None,
            locks=event_type == "list.held" and bool(facts.get("locks_held")),
        ),
        "details": public,
    }


def record(
    config: Config,
    state: psycopg.Connection,
    event_type: str,
    *,
    case_id: int | None = None,
    account: str | None = None,
    list_name: str | None = None,
    facts: dict[str, Any] | None = None,
    key: str | None = None,
    tell_user_id: int | None = None,
) -> UUID | None:
    """Write an event and one outbox row per webhook subscribed to it, inside the caller's
    transaction; the staff's mail is made from waiting events by `podmod notify deliver`.
    With `key`, an event recorded before under the same key is not recorded again (None).
    `tell_user_id`: the local account (users.id) the event concerns, mailed when its setting in
    ACCOUNT_MAIL is on."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    facts = facts or {}
    event_id, created_at = uuid4(), datetime.now(UTC)
    staff_mail = mail_configured(config) and for_staff(event_type, facts)
    setting = ACCOUNT_MAIL.get(event_type)
    if not (setting and config[setting] and mail_configured(config)):
        tell_user_id = None
    recorded = state.execute(
        "INSERT INTO podmod.events (id, type, key, case_id, account, list_name, facts,"
        " staff_mail, tell_user_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (key) DO NOTHING RETURNING id",
        (
            event_id,
            event_type,
            key,
            case_id,
            account,
            list_name,
            json.dumps(facts),
            staff_mail,
            tell_user_id,
            created_at,
        ),
    ).fetchone()
    if recorded is None:
        return None
    receivers = [hook.url for hook in config.webhooks if event_type in hook.events]
    if receivers:
        body = webhook_body(
            config,
            event_id=event_id,
            event_type=event_type,
            created_at=created_at,
            case_id=case_id,
            account=account,
            list_name=list_name,
            facts=facts,
        )
        state.execute(
            "INSERT INTO podmod.outbox (channel, target, event_type, event_id, payload)"
            " SELECT 'webhook', url, %s, %s, %s FROM unnest(%s::text[]) AS url",
            (event_type, event_id, json.dumps(body), receivers),
        )
    return event_id
