"""Reporter feedback (notify.reporters): a local reporter whose reports on a case are all decided
gets one mail saying what became of them: the account was locked, or the report was reviewed and
no action was taken. The mail names the reported account (the reporter knows whom they reported)
and never the reported content or the moderator; it carries a link to opt out, which podmod
honours (podmod.reporter_opt_outs, podmod.web.opt_out).

A set-based pass, run by `notify.deliver.prepare`: a few queries per batch of (case, reporter)
pairs, whatever the number of cases. Each pair becomes a notice in podmod.reporter_notices that
covers the reports it tells of (signals.reporter_notice_id), written with its outbox row in one
transaction, so a reporter is told once of each report: a case reopened and decided again tells
them only of reports they were not told of. Only decisions made since the setting was switched on
are mailed (podmod.reporter_feedback.since); earlier ones are covered by notices that mail nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import uuid4

import psycopg

from podmod import pod_db
from podmod.config import Config, mail_address
from podmod.errors import PodmodError
from podmod.notify import events, links
from podmod.notify.mail import domain_of

log = logging.getLogger(__name__)

REPORTERS_LOCK = 0x70726570  # "prep": one reporter pass at a time
BATCH = 5000  # (case, reporter) pairs per transaction
EVENT_TYPE = "report.decided"  # the outbox rows' event_type: their mail template

# (case, reporter) pairs of closed cases whose reports by that reporter are all reviewed and not
# yet covered by a notice. `before`: every one of those reports was decided before the setting was
# on; a report already reviewed in diaspora* when podmod read it (reviewed in the transaction that
# stored it) counts as decided when it was made, so importing a pod's history mails nothing.
DUE_SQL = """
SELECT s.case_id, s.reporter_user_id, c.account,
       CASE WHEN c.resolution = 'locked' THEN 'locked' ELSE 'no_action' END AS outcome,
       max(s.reporter) AS reporter,
       array_agg(s.id ORDER BY s.id) AS signal_ids,
       max(CASE WHEN s.reviewed_at = s.created_at THEN s.occurred_at ELSE c.closed_at END)
           < f.since AS before,
       o.user_id IS NOT NULL AS opted_out
FROM podmod.signals s
JOIN podmod.cases c ON c.id = s.case_id
CROSS JOIN podmod.reporter_feedback f
LEFT JOIN podmod.reporter_opt_outs o ON o.user_id = s.reporter_user_id
WHERE s.kind = 'report' AND s.reporter_notice_id IS NULL AND s.reporter_user_id IS NOT NULL
  AND c.status <> 'open'
GROUP BY s.case_id, s.reporter_user_id, c.account, c.resolution, f.since, o.user_id
HAVING bool_and(s.reviewed)
ORDER BY s.case_id, s.reporter_user_id
LIMIT %(batch)s
"""

# One notice per given pair, its reports marked as covered by it, and the outbox row of each
# notice that is a mail: one statement, so none of the three exists without the others.
WRITE_SQL = """
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(given)s::jsonb) AS g (
        case_id bigint, reporter_user_id integer, outcome text, result text,
        signal_ids bigint[], target text, language text, payload jsonb, message_id text)
), notices AS (
    INSERT INTO podmod.reporter_notices (case_id, reporter_user_id, outcome, result, reports)
    SELECT case_id, reporter_user_id, outcome, result, cardinality(signal_ids) FROM given
    RETURNING id, case_id, reporter_user_id
), covered AS (
    UPDATE podmod.signals s SET reporter_notice_id = c.notice_id
    FROM (SELECT n.id AS notice_id, unnest(g.signal_ids) AS signal_id
          FROM notices n JOIN given g USING (case_id, reporter_user_id)) c
    WHERE s.id = c.signal_id AND s.reporter_notice_id IS NULL
)
INSERT INTO podmod.outbox (channel, target, event_type, reporter_notice_id, language, payload,
                           message_id)
SELECT 'mail', g.target, %(event_type)s, n.id, g.language, g.payload, g.message_id
FROM notices n JOIN given g USING (case_id, reporter_user_id)
WHERE g.result = 'mailed'
"""


def enabled(config: Config) -> bool:
    """Whether reporters are told: notify.reporters is on and there is a mail server to tell by."""
    return bool(config["notify.reporters"]) and events.mail_configured(config)


def mail_reporters(config: Config, state: psycopg.Connection, pod: psycopg.Connection) -> int:
    """Write the mail of every reporter due one to the outbox, a batch per transaction; returns
    how many mails it wrote. With notify.reporters off (or no mail server) it writes nothing and
    forgets when the setting was on, so switching it on again starts afresh."""
    if not enabled(config):
        with state.transaction():
            state.execute("DELETE FROM podmod.reporter_feedback")
        return 0
    written = 0
    while True:
        with state.transaction():
            state.execute("SELECT pg_advisory_xact_lock(%s)", (REPORTERS_LOCK,))
            state.execute(
                "INSERT INTO podmod.reporter_feedback DEFAULT VALUES ON CONFLICT DO NOTHING"
            )
            due = state.execute(DUE_SQL, {"batch": BATCH}).fetchall()
            if not due:
                return written
            given = _notices(config, state, due, _contacts(pod, due))
            state.execute(WRITE_SQL, {"given": json.dumps(given), "event_type": EVENT_TYPE})
        written += sum(notice["result"] == "mailed" for notice in given)
        if len(due) < BATCH:
            return written


def _contacts(pod: psycopg.Connection, due: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The reporters' users.email and users.language, for the pairs that may be mailed."""
    wanted = sorted({p["reporter_user_id"] for p in due if not (p["before"] or p["opted_out"])})
    try:
        with pod.transaction():
            return pod_db.user_contacts(pod, wanted)
    except psycopg.errors.InsufficientPrivilege:
        raise PodmodError(
            "podmod may not read users.email and users.language in the pod's database, so it "
            "cannot tell reporters what became of their reports: run deploy/grants.sql again."
        ) from None


def _notices(
    config: Config,
    state: psycopg.Connection,
    due: list[dict[str, Any]],
    contacts: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """What to write for each due pair: its result and, for a mail, its address and payload."""
    sign = links.signer(state, "opt-out")
    tokens: dict[int, str] = {}
    domain = domain_of(config)
    notices = []
    for pair in due:
        contact = contacts.get(pair["reporter_user_id"])
        notice = {
            "case_id": pair["case_id"],
            "reporter_user_id": pair["reporter_user_id"],
            "outcome": pair["outcome"],
            "signal_ids": pair["signal_ids"],
            "result": _result(pair, contact),
        }
        if notice["result"] == "mailed":
            user_id = pair["reporter_user_id"]
            if user_id not in tokens:
                tokens[user_id] = sign(user_id)
            notice |= {
                "target": contact["email"],
                "language": contact["language"],
                "payload": payload(config, pair, tokens[user_id]),
                "message_id": f"<podmod.report.{uuid4().hex}@{domain}>",
            }
        notices.append(notice)
    return notices


def _result(pair: dict[str, Any], contact: dict[str, Any] | None) -> str:
    if pair["before"]:
        return "before"
    if pair["opted_out"]:
        return "opted_out"
    if not contact or not mail_address(contact["email"] or ""):
        return "no_address"
    return "mailed"


def opt_out_url(config: Config, token: str) -> str:
    return f"{config['web.public_url']}opt-out/{token}"


def payload(config: Config, pair: dict[str, Any], token: str) -> dict[str, Any]:
    """What a reporter's mail says: the account they reported (None when its author is unknown),
    the outcome and how many of their reports it answers, the pod and the opt-out link; never
    the reported content, never who decided."""
    pod = (pair["reporter"] or "").rpartition("@")[2]
    return {
        "account": pair["account"],
        "outcome": pair["outcome"],
        "reports": len(pair["signal_ids"]),
        "pod": pod,
        "pod_url": config["web.pod_url"] or f"https://{pod}",
        "opt_out_url": opt_out_url(config, token),
    }
