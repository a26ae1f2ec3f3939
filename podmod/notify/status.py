"""How the outbox is doing, for the deliveries page, `podmod check` and /metrics: what waits, the
oldest waiting, what was given up, and the last failure."""

from __future__ import annotations

from typing import Any

import psycopg

GIVEN_UP_WINDOW = "7 days"  # given-up rows counted on the page and in `podmod check`

STATUS_SQL = f"""
SELECT
    (SELECT count(*) FROM podmod.outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL)
        AS waiting,
    (SELECT count(*) FROM podmod.outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL
     AND last_error_at IS NOT NULL) AS retrying,
    (SELECT extract(epoch FROM now() - min(created_at))::float FROM podmod.outbox
     WHERE delivered_at IS NULL AND gave_up_at IS NULL) AS oldest_seconds,
    (SELECT count(*) FROM podmod.outbox WHERE created_at > now() - interval '{GIVEN_UP_WINDOW}'
     AND gave_up_at IS NOT NULL) AS given_up,
    (SELECT count(*) FROM podmod.outbox WHERE created_at > now() - interval '1 day'
     AND delivered_at IS NOT NULL) AS delivered_today
"""


def outbox_status(state: psycopg.Connection) -> dict[str, Any]:
    """{waiting, retrying, oldest_seconds, given_up, delivered_today, last_failure}; the last
    failure is the newest failed attempt's row (channel, target, last_error, last_error_at,
    delivered_at, gave_up_at), or None."""
    status = dict(state.execute(STATUS_SQL).fetchone())
    status["last_failure"] = state.execute(
        "SELECT id, channel, target, event_type, last_error, last_error_at, delivered_at,"
        " gave_up_at FROM podmod.outbox WHERE last_error_at IS NOT NULL"
        " ORDER BY last_error_at DESC LIMIT 1"
    ).fetchone()
    return status


def waiting_by_channel(state: psycopg.Connection) -> dict[str, int]:
    rows = state.execute(
        "SELECT channel, count(*) AS n FROM podmod.outbox WHERE delivered_at IS NULL"
        " AND gave_up_at IS NULL GROUP BY channel"
    ).fetchall()
    return {row["channel"]: row["n"] for row in rows}


def last_failure_by_channel(state: psycopg.Connection) -> dict[str, float]:
    """The time (Unix seconds) of each channel's last failed attempt."""
    rows = state.execute(
        "SELECT channel, extract(epoch FROM max(last_error_at))::float AS at FROM podmod.outbox"
        " WHERE last_error_at IS NOT NULL GROUP BY channel"
    ).fetchall()
    return {row["channel"]: row["at"] for row in rows}
