"""Delivering the outbox exactly once: `deliver(config, outbox_id)` sends one row and records it,
`due(state, limit)` lists the rows due now, `deliver_pass` is what `podmod notify deliver` runs.

The outbox is a kind of durable work (`OUTBOX`, podmod.durable): the reader enqueues a job for
each row due and not done (podmod.notify.carry) and a worker delivers it
(worker.jobs.deliver_outbox); `podmod notify deliver` delivers in the foreground through the same
`deliver`. A deliverer holds the row's advisory lock while it sends (`durable.claim`), so two
deliverers of one row give one delivery, and a deliverer that dies lets go of it with its
connection. A delivered row is never sent again; a crash after the server accepted a mail and
before the row was marked may send it once more, with the same Message-ID. Failures are retried
with growing pauses for a day, then given up, visibly (last_error, the deliveries page, `podmod
check`, /metrics).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from podmod import durable, queue
from podmod.config import Config
from podmod.db import pod_connection, state_connection
from podmod.errors import DeliveryFailed, PodmodError
from podmod.notify import alerts, mail, reporters, smtp, webhooks

log = logging.getLogger(__name__)

# The outbox's rows as durable work. A row waiting for its next attempt is left alone until then;
# a job that finished with its row not done failed one attempt (the row says when the next is),
# so the row's time, not durable's back-off, decides when its next job goes. `attempts` counts the
# sends, so the enqueues are counted in `enqueues`.
OUTBOX = durable.Kind(
    table="outbox",
    lock_class=0x706F7574,  # "pout"
    queue="notify",
    job_function=queue.DELIVER_JOB,
    job_id_prefix="outbox",
    description="deliver outbox row {id}",
    pending_condition="next_attempt_at <= now()",
    hands_over=True,
    attempts_column="enqueues",
)
COLUMNS = (
    "id",
    "channel",
    "target",
    "event_type",
    "language",
    "payload",
    "message_id",
    "created_at",
    "attempts",
    "next_attempt_at",
    "retrying_since",
)
RETRY_FOR = timedelta(days=1)
FIRST_PAUSE = 30.0  # seconds before the second attempt; doubled each time, at most MAX_PAUSE
MAX_PAUSE = 3600.0


@dataclass
class Outcome:
    outbox_id: int
    status: str  # delivered, failed (retried later), gave_up, done (or missing), not_due
    detail: str = ""


def pause_after(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: 30 s, 1, 2, 4 ... min, hourly."""
    return min(FIRST_PAUSE * 2 ** (attempts - 1), MAX_PAUSE)


def due(state: psycopg.Connection, limit: int) -> list[int]:
    """Ids of outbox rows to deliver now (not delivered, not given up, their time come), oldest
    first."""
    rows = state.execute(
        "SELECT id FROM podmod.outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL"
        " AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT %s",
        (limit,),
    ).fetchall()
    return [row["id"] for row in rows]


def _send(config: Config, row: dict[str, Any]) -> int | None:
    """Send one row; the webhook's HTTP status, None for a mail."""
    if row["channel"] == "webhook":
        return webhooks.post(config, row["target"], row["payload"], delivery=row["id"])
    if not config["mail.smtp_url"]:
        raise DeliveryFailed(
            "mail.smtp_url is not set, so this mail waits; set it (and mail.from) to send it."
        )
    smtp.send(config, mail.compose(config, row))
    return None


def _record_failure(
    state: psycopg.Connection, row: dict[str, Any], failure: DeliveryFailed
) -> Outcome:
    attempts = row["attempts"] + 1
    expired = row["retrying_since"] + RETRY_FOR <= _now(state)
    what = f"{row['channel']} {row['id']} ({row['event_type']}) to {_target_name(row)}"
    if failure.permanent or expired:
        how = "for good" if failure.permanent else f"after {attempts} attempts over a day"
        state.execute(
            "UPDATE podmod.outbox SET gave_up_at = now(), done_at = now(), last_error = %s,"
            " last_error_at = now(), response_status = %s WHERE id = %s",
            (str(failure), failure.status, row["id"]),
        )
        log.error("notify: gave up %s %s: %s", what, how, failure)
        return Outcome(row["id"], "gave_up", str(failure))
    pause = pause_after(attempts)
    state.execute(
        "UPDATE podmod.outbox SET next_attempt_at = now() + make_interval(secs => %s),"
        " last_error = %s, last_error_at = now(), response_status = %s WHERE id = %s",
        (pause, str(failure), failure.status, row["id"]),
    )
    log.warning(
        "notify: %s failed (attempt %d, next in %.0f s): %s", what, attempts, pause, failure
    )
    return Outcome(row["id"], "failed", str(failure))


def _now(state: psycopg.Connection) -> Any:
    return state.execute("SELECT now() AS now").fetchone()["now"]


def _target_name(row: dict[str, Any]) -> str:
    if row["channel"] == "webhook":
        return webhooks.receiver_name(row["target"])
    return row["target"]


def deliver(config: Config, outbox_id: int) -> Outcome:
    """Deliver one outbox row if it is due and not done; idempotent. While another deliverer sends
    the row this waits for its lock, then finds the row done (or failed, and not due)."""
    with state_connection(config, autocommit=True) as state:
        row = durable.claim(state, OUTBOX, outbox_id, COLUMNS)
        if row is None:
            return Outcome(outbox_id, "done", "delivered or given up before, or no such row")
        if row["next_attempt_at"] > _now(state):
            return Outcome(outbox_id, "not_due", "its next attempt is later")
        state.execute(
            "UPDATE podmod.outbox SET attempts = attempts + 1, last_attempt_at = now()"
            " WHERE id = %s",
            (outbox_id,),
        )
        try:
            status = _send(config, row)
        except DeliveryFailed as failure:
            return _record_failure(state, row, failure)
        state.execute(
            "UPDATE podmod.outbox SET delivered_at = now(), done_at = now(), response_status = %s"
            " WHERE id = %s",
            (status, outbox_id),
        )
        return Outcome(outbox_id, "delivered")


@dataclass
class PassResult:
    cases_alerted: int = 0
    lists_failing: int = 0
    lists_stale: int = 0
    events_mailed: int = 0
    accounts_mailed: int = 0
    reporters_mailed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    waiting: int = 0  # rows left for a later attempt
    staff_mail_error: str | None = None

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    def as_json(self) -> dict[str, Any]:
        return {
            "cases_alerted": self.cases_alerted,
            "lists_failing": self.lists_failing,
            "lists_stale": self.lists_stale,
            "events_mailed": self.events_mailed,
            "accounts_mailed": self.accounts_mailed,
            "reporters_mailed": self.reporters_mailed,
            "delivered": self.count("delivered"),
            "failed": self.count("failed"),
            "gave_up": self.count("gave_up"),
            "waiting": self.waiting,
            "staff_mail_error": self.staff_mail_error,
            "outcomes": [asdict(outcome) for outcome in self.outcomes],
        }


def prepare(config: Config, state: psycopg.Connection, result: PassResult) -> None:
    """Turn what happened into outbox rows, each step in its own transaction: alert the cases due
    an alert and the lists failing or no longer tried, then write the staff's mail, the mails to
    local accounts and to reporters whose reports were decided."""
    result.cases_alerted = alerts.alert_cases(config, state)
    result.lists_failing = alerts.alert_failing_lists(config, state)
    result.lists_stale = alerts.alert_stale_lists(config, state)
    try:
        with pod_connection(config) as pod:
            result.events_mailed = alerts.mail_staff(config, state, pod)
            result.accounts_mailed = alerts.mail_accounts(config, state, pod)
            result.reporters_mailed = reporters.mail_reporters(config, state, pod)
    except PodmodError as error:
        result.staff_mail_error = str(error)
        log.error("notify: %s", error)


def deliver_pass(config: Config, *, limit: int = 1000) -> PassResult:
    """One pass: alert cases and failing lists, make the staff's mail of waiting events, then
    deliver up to `limit` due rows, in this process."""
    result = PassResult()
    with state_connection(config) as state:
        prepare(config, state, result)
        ids = due(state, limit)
        state.rollback()
    for outbox_id in ids:
        result.outcomes.append(deliver(config, outbox_id))
    with state_connection(config) as state:
        result.waiting = state.execute(
            "SELECT count(*) AS n FROM podmod.outbox WHERE delivered_at IS NULL"
            " AND gave_up_at IS NULL"
        ).fetchone()["n"]
    return result
