"""podmod.durable, the one mechanism of durable work, seen from a new kind of work plugging in (as
the notification outbox will): a table and a descriptor, and nothing else to write. Intake and
scanning use it through tests/test_exactly_once.py, tests/test_faults.py and tests/test_scan*.py."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.rows import dict_row

from podmod import durable, queue, store
from tests.helpers import wait_for

OUTBOX = durable.Kind(
    table="test_outbox",
    lock_class=0x706D7F,
    queue="lists",
    job_function="worker.jobs.deliver_test_message",
    job_id_prefix="test-outbox",
    description="deliver test message {id}",
)


@pytest.fixture
def outbox(state):
    """A table of the shape the durable module asks for, with two messages waiting."""
    state.execute(
        "CREATE TABLE podmod.test_outbox (id bigserial PRIMARY KEY, message text NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(), enqueued_at timestamptz,"
        " attempts integer NOT NULL DEFAULT 0, done_at timestamptz, delivered_to text)"
    )
    ids = [
        row["id"]
        for row in state.execute(
            "INSERT INTO podmod.test_outbox (message) VALUES ('placeholder one'),"
            " ('placeholder two') RETURNING id"
        )
    ]
    state.commit()
    return ids


def queued_job_ids(config, rconn) -> list[str]:
    return [
        job_id.decode()
        for job_id in rconn.lrange(f"rq:queue:{queue.queue_name(config, 'lists')}", 0, -1)
    ]


def test_a_new_kind_of_work_is_enqueued_once_and_again_after_redis_loses_it(
    config, state, rconn, outbox
):
    first, second = outbox
    assert durable.enqueue_pending(config, state, rconn, OUTBOX) == [first, second]
    assert queued_job_ids(config, rconn) == [
        f"{config['queue_prefix']}-test-outbox-{first}",
        f"{config['queue_prefix']}-test-outbox-{second}",
    ]
    assert durable.enqueue_pending(config, state, rconn, OUTBOX) == []  # queued: left alone

    rconn.flushdb()  # Redis restarted empty: PostgreSQL still knows what is not done
    assert durable.enqueue_pending(config, state, rconn, OUTBOX) == [first, second]
    attempts = state.execute("SELECT attempts FROM podmod.test_outbox ORDER BY id").fetchall()
    state.commit()
    assert [row["attempts"] for row in attempts] == [2, 2]


def test_a_unit_is_claimed_by_one_worker_and_done_once(config, state, rconn, outbox):
    first, second = outbox
    with psycopg.connect(config.state_database_url, row_factory=dict_row) as worker:
        claimed = durable.claim(worker, OUTBOX, first, ("message",))
        assert claimed is not None and claimed["message"] == "placeholder one"
        assert durable.held_elsewhere(state, OUTBOX, first)  # the reader sees a worker on it
        assert not durable.held_elsewhere(state, OUTBOX, second)
        with worker.transaction():
            durable.mark_done(worker, OUTBOX, first, delivered_to="placeholder@pod.example")
    # The worker's connection is gone, and its lock with it (once the server has seen it close):
    # a second run finds the unit done.
    wait_for(
        lambda: not durable.held_elsewhere(state, OUTBOX, first),
        "the closed connection's lock to be let go",
    )
    with psycopg.connect(config.state_database_url, row_factory=dict_row) as again:
        assert durable.claim(again, OUTBOX, first, ("message",)) is None
    row = state.execute(
        "SELECT done_at, delivered_to FROM podmod.test_outbox WHERE id = %s", (first,)
    ).fetchone()
    state.commit()
    assert row["done_at"] is not None and row["delivered_to"] == "placeholder@pod.example"
    assert durable.enqueue_pending(config, state, rconn, OUTBOX) == [second]


def test_a_started_job_whose_worker_died_is_enqueued_again_but_not_one_still_working(
    config, state, rconn, outbox
):
    """RQ says "started" of a job whose work horse was killed; the unit's lock tells the truth."""
    first, second = outbox
    durable.enqueue_pending(config, state, rconn, OUTBOX)
    for unit_id in (first, second):
        job = queue.PodmodJob.fetch(OUTBOX.job_id(config, unit_id), connection=rconn)
        job.set_status("started")
        rconn.lrem(f"rq:queue:{queue.queue_name(config, 'lists')}", 0, job.id)
    time.sleep(config["reader.restart_grace"] + 0.1)
    with psycopg.connect(config.state_database_url, row_factory=dict_row) as worker:
        durable.lock(worker, OUTBOX, second)  # the second one's worker is alive
        assert durable.enqueue_pending(config, state, rconn, OUTBOX) == [first]


def test_ids_missing_below_a_watermark_are_watched_as_gaps_of_their_own_feed(state):
    assert durable.holes(10, [11, 14, 15, 2016]) == [12, 13]  # 16..2015: history, not in flight
    posts = durable.Feed("test:Post", "scan_gaps", "item_id", "item_type", "Post")
    comments = durable.Feed("test:Comment", "scan_gaps", "item_id", "item_type", "Comment")
    with state.transaction():
        durable.watch_gaps(state, posts, [12, 13])
        durable.watch_gaps(state, posts, [13])  # watched already: stays as it is
        durable.watch_gaps(state, comments, [7])
        durable.fill_gaps(state, posts, [12])
    assert durable.gaps(state, posts) == [13]
    assert durable.gaps(state, comments) == [7]
    with state.transaction():
        assert durable.expire_gaps(state, "scan_gaps", 3600) == 0
        assert durable.expire_gaps(state, "scan_gaps", 0) == 2
    assert durable.gaps(state, posts) == durable.gaps(state, comments) == []

    with state.transaction():
        store.set_watermark(state, posts.watermark, 20)
        store.set_watermark(state, posts.watermark, 5)  # never down
    assert store.watermark(state, posts.watermark) == 20
    assert store.watermark(state, comments.watermark) is None
