"""Telling people what podmod did, exactly once: staff alerts by mail and signed webhooks.

`record` writes an event (and its deliveries) inside the transaction of the decision causing it;
`podmod notify deliver` turns waiting alerts into mail and delivers the outbox (README,
"Notifications").
"""

from __future__ import annotations

from podmod.notify.events import record

__all__ = ["record"]
