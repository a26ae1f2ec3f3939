"""Carrying the outbox to the workers: the reader's pass turns what happened into outbox rows
(`deliver.prepare`) and enqueues a delivery job for each row due (`durable.enqueue_pending`), so
`podmod read` and `podmod worker` deliver every mail and webhook with no third process. The rows
are the truth; a job only carries one to a worker, and a lost job is enqueued again next pass."""

from __future__ import annotations

import logging

import psycopg
import redis

from podmod import durable
from podmod.config import Config
from podmod.db import connection_lost
from podmod.errors import first_line
from podmod.notify import deliver

log = logging.getLogger(__name__)


def reader_step(config: Config, state: psycopg.Connection, rconn: redis.Redis) -> list[int]:
    """Prepare the outbox and enqueue the rows due; returns the ids enqueued. A failing prepare
    (a podmod table it cannot read, say) is logged and leaves intake running; the next pass
    tries again. A lost database is the reader's to handle, like every other step's."""
    try:
        deliver.prepare(config, state, deliver.PassResult())
    except Exception as error:
        if connection_lost(error):
            raise
        state.rollback()
        log.error(
            "notify: preparing the outbox failed (%s); intake goes on, the next pass tries again.",
            first_line(error),
        )
    return durable.enqueue_pending(config, state, rconn, deliver.OUTBOX)
