"""Appeals, the notify side: the signed appeal link in a locked account's notice, and the decision
on an undecided appeal (upheld or unlocked), recorded once with its one mail to the account.

The decision is written by the action that makes it (podmod.actions: unlock, or closing the case
while the account stays locked), inside that action's transaction; a second decision on the same
appeal finds it decided and sends nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from podmod.config import Config
from podmod.notify import events, links
from podmod.store import record_audit

LINK_DAYS = 30
LINK_MAX_AGE = timedelta(days=LINK_DAYS)
OUTCOMES = ("upheld", "unlocked")


def appeal_url(config: Config, state: psycopg.Connection, user_id: int) -> str:
    """The link a locked account appeals with: signed for its users.id, good for LINK_DAYS."""
    return f"{config['web.public_url']}appeal/{links.sign(state, 'appeal', user_id)}"


def mail_facts(config: Config, state: psycopg.Connection, event: dict[str, Any]) -> dict[str, Any]:
    """What an account's mail adds for appeals: the notice of a lock gets its appeal link (made
    now, as the mail row is written), a decision its outcome."""
    if event["type"] == "account.locked":
        return {
            "appeal_url": appeal_url(config, state, event["tell_user_id"]),
            "appeal_days": LINK_DAYS,
        }
    if event["type"] == "appeal.decided":
        return {"outcome": event["facts"]["outcome"]}
    return {}


def decide(
    config: Config,
    state: psycopg.Connection,
    *,
    outcome: str,
    actor: str,
    source: str,
    person_id: int | None = None,
    case_id: int | None = None,
) -> int:
    """Decide the undecided appeal of this account (`person_id`) or on this case (`case_id`), in
    the caller's transaction: the outcome, the appeal's signal reviewed (the case's priority falls
    back), an `appeal.decided` event that mails the account, an audit row. Returns how many
    appeals it decided (0 when none waited: a second decision sends nothing)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown appeal outcome {outcome!r}")
    decided = state.execute(
        "UPDATE podmod.appeals SET outcome = %s, decided_at = now(), decided_by = %s"
        " WHERE outcome IS NULL AND (person_id = %s OR case_id = %s)"
        " RETURNING id, case_id, signal_id, user_id, account",
        (outcome, actor, person_id, case_id),
    ).fetchall()
    for appeal in decided:
        state.execute(
            "UPDATE podmod.signals SET reviewed = true, reviewed_at = now(), reviewed_by = %s"
            " WHERE id = %s",
            (actor, appeal["signal_id"]),
        )
        event_id = events.record(
            config,
            state,
            "appeal.decided",
            case_id=appeal["case_id"],
            account=appeal["account"],
            facts={"outcome": outcome},
            tell_user_id=appeal["user_id"],
        )
        state.execute(
            "UPDATE podmod.appeals SET decision_event_id = %s WHERE id = %s",
            (event_id, appeal["id"]),
        )
        record_audit(
            state,
            actor=actor,
            action="appeal_decided",
            source=source,
            case_id=appeal["case_id"],
            account=appeal["account"],
            reason=f"the appeal is {outcome}",
            details={"appeal": appeal["id"], "outcome": outcome},
        )
    if decided:
        state.execute("SELECT podmod.refresh_cases(%s)", (sorted({a["case_id"] for a in decided}),))
    return len(decided)
