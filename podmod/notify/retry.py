"""Retry now: an admin makes a failed delivery due at once (the deliveries page's button), and a
given-up one live again for another day of retries; the reader's next pass enqueues it."""

from __future__ import annotations

from typing import Any

import psycopg

from podmod.errors import PodmodError
from podmod.store import record_audit


def retry_now(
    state: psycopg.Connection, outbox_id: int, *, actor: str, source: str, details: dict[str, Any]
) -> str:
    """Make a failed or given-up outbox row due now and audit it, in one transaction; returns what
    was done, in one sentence. A row delivered, never failed or unknown is one sentence too, and
    changes nothing."""
    with state.transaction():
        row = state.execute(
            "SELECT delivered_at, gave_up_at, last_error_at FROM podmod.outbox"
            " WHERE id = %s FOR UPDATE",
            (outbox_id,),
        ).fetchone()
        if row is None:
            raise PodmodError(f"There is no delivery {outbox_id}.")
        if row["delivered_at"] is not None:
            raise PodmodError(f"Delivery {outbox_id} was delivered already; nothing to retry.")
        if row["last_error_at"] is None:
            raise PodmodError(f"Delivery {outbox_id} has not failed; it goes out when it is due.")
        given_up = row["gave_up_at"] is not None
        # The job counters start afresh, so the reader enqueues it at once, without back-off.
        state.execute(
            "UPDATE podmod.outbox SET next_attempt_at = now(), gave_up_at = NULL, done_at = NULL,"
            " retrying_since = CASE WHEN gave_up_at IS NULL THEN retrying_since ELSE now() END,"
            " enqueued_at = NULL, enqueues = 0 WHERE id = %s",
            (outbox_id,),
        )
        record_audit(
            state,
            actor=actor,
            action="delivery_retry",
            source=source,
            details={**details, "outbox_id": outbox_id, "given_up": given_up},
        )
    if given_up:
        return f"Delivery {outbox_id} is retried now, and for another day if it fails again."
    return f"Delivery {outbox_id} is retried now."
