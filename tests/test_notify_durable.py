"""The outbox delivered by the reader and the workers (podmod.notify.carry, worker.jobs.
deliver_outbox), with no `podmod notify deliver` running: through SMTP and receiver outages, an
emptied Redis and a worker killed in the middle of a send, each row delivered exactly once (a
mail at most once more, with the same Message-ID)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from podmod.config import load_config
from tests.helpers import drain, read_once, wait_for
from tests.test_exactly_once import kill_hard, spawn_worker
from tests.test_notify import configure, lock_waiters, outbox, staff


def new_case(state, account: str = "a@remote.example") -> None:
    """A case high enough for an alert, as intake would leave it."""
    state.execute(
        "INSERT INTO podmod.cases (subject, account, priority) VALUES (%s, %s, 50)",
        (f"person:{account}", account),
    )
    state.commit()


def pass_and_drain(config):
    """One reader pass, then every job it enqueued run in this process; the pass's result."""
    result = read_once(config)
    drain(config)
    return result


def delivered(state) -> list[dict]:
    return [row for row in outbox(state) if row["delivered_at"] is not None]


def make_due(state) -> None:
    """The pause before the next attempt is over (as it would be after 30 s)."""
    state.execute("UPDATE podmod.outbox SET next_attempt_at = now() WHERE done_at IS NULL")
    state.commit()


def test_reader_and_worker_deliver_a_mail_and_a_webhook(env, state, pod, smtp_server, receiver):
    configure(env, smtp_url=smtp_server.url(), hooks=[(receiver.url, ["case.alert"])])
    staff(pod)
    new_case(state)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", command],
            env=os.environ.copy(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command in ("read", "worker")
    ]
    try:
        wait_for(lambda: len(delivered(state)) == 2, "the alert's mail and webhook delivered", 90)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    assert len(smtp_server.messages) == 1
    assert [d.json["type"] for d in receiver.deliveries] == ["case.alert"]
    rows = outbox(state)
    assert {row["channel"] for row in rows} == {"mail", "webhook"}
    assert all(row["attempts"] == 1 and row["done_at"] is not None for row in rows), rows


def test_smtp_down_the_row_waits_then_is_delivered_once(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    new_case(state)
    smtp_server.stop()
    config = load_config()

    pass_and_drain(config)
    [row] = outbox(state)
    assert row["delivered_at"] is None and row["attempts"] == 1 and row["last_error"]
    again = pass_and_drain(config)  # its next attempt is 30 s away: the reader leaves it alone
    assert again.deliveries_enqueued == []
    assert outbox(state)[0]["attempts"] == 1

    smtp_server.start()
    make_due(state)
    pass_and_drain(config)
    pass_and_drain(config)
    [row] = outbox(state)
    assert row["delivered_at"] is not None and row["attempts"] == 2, row
    assert len(smtp_server.messages) == 1


def test_a_receiver_answering_500_then_200_gets_the_webhook_delivered_once(env, state, receiver):
    configure(env, hooks=[(receiver.url, ["case.alert"])])
    receiver.answers = [500]
    new_case(state)
    config = load_config()

    pass_and_drain(config)
    [row] = outbox(state)
    assert row["delivered_at"] is None and row["response_status"] == 500, row
    make_due(state)
    pass_and_drain(config)
    pass_and_drain(config)
    [row] = outbox(state)
    assert row["delivered_at"] is not None and row["response_status"] == 200, row
    assert len(receiver.deliveries) == 2  # the 500, then the 200


def test_redis_emptied_with_rows_pending_still_delivers_each_once(
    env, state, pod, smtp_server, receiver, rconn
):
    configure(env, smtp_url=smtp_server.url(), hooks=[(receiver.url, ["case.alert"])])
    staff(pod)
    new_case(state)
    config = load_config()

    first = read_once(config)
    assert len(first.deliveries_enqueued) == 2
    rconn.flushdb()  # Redis restarted empty: the delivery jobs are gone
    second = read_once(config)
    drain(config)
    pass_and_drain(config)

    assert sorted(second.deliveries_enqueued) == sorted(first.deliveries_enqueued)
    assert len(delivered(state)) == 2
    assert len(smtp_server.messages) == 1 and len(receiver.deliveries) == 1


def kill_a_worker_inside_the_send(state, server) -> dict:
    """Start a worker, SIGKILL it while `server` (the SMTP server or the webhook receiver) holds
    what it was sent, let the server take it, then let a second worker deliver the row; returns
    the row as it was after the kill (not delivered)."""
    config = load_config()
    server.hold = threading.Event()  # the server has the mail or POST and is slow to answer
    worker = spawn_worker()
    try:
        read_once(config)
        wait_for(server.arrived.is_set, "the worker to be inside the send", 60)
        kill_hard(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    server.hold.set()  # the server accepts what it was sent: the crash came after that
    [row] = outbox(state)
    assert row["delivered_at"] is None

    second = spawn_worker()
    try:
        wait_for(
            lambda: read_once(config) and delivered(state),
            "the row delivered by the second worker",
            90,
        )
    finally:
        second.terminate()
        second.wait(30)
    pass_and_drain(config)
    return row


def test_a_worker_killed_inside_the_send_leaves_one_more_mail_with_the_same_message_id(
    env, state, pod, smtp_server
):
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    new_case(state)
    row = kill_a_worker_inside_the_send(state, smtp_server)
    # The server had the mail when the worker died, so it is sent once more: no more, and with the
    # same Message-ID (a mail client shows one).
    ids = {message["Message-ID"] for message in smtp_server.messages}
    assert len(smtp_server.messages) == 2 and ids == {row["message_id"]}, ids
    assert outbox(state)[0]["delivered_at"] is not None


def test_a_worker_killed_while_the_receiver_answers_leaves_one_more_post_of_the_row(
    env, state, receiver
):
    configure(env, hooks=[(receiver.url, ["case.alert"])])
    new_case(state)
    row = kill_a_worker_inside_the_send(state, receiver)
    # Once more, no more, with the same X-Podmod-Delivery (a receiver can tell it has it).
    ids = {d.headers["X-Podmod-Delivery"] for d in receiver.deliveries}
    assert len(receiver.deliveries) == 2 and ids == {str(row["id"])}, ids


def test_a_worker_and_the_foreground_deliverer_at_once_send_one_mail(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    new_case(state)
    config = load_config()
    smtp_server.hold = threading.Event()
    worker = spawn_worker()
    try:
        read_once(config)
        wait_for(smtp_server.arrived.is_set, "the worker to be inside the send", 60)
        foreground = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "notify", "deliver", "--json"],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: lock_waiters(state), "the foreground deliverer to wait for the row", 60)
        smtp_server.hold.set()
        output, _ = foreground.communicate(timeout=60)
    finally:
        worker.terminate()
        worker.wait(30)
    assert foreground.returncode == 0, output
    assert '"delivered": 0' in output, output
    assert len(smtp_server.messages) == 1
    assert outbox(state)[0]["delivered_at"] is not None


def test_a_failing_prepare_is_logged_and_intake_goes_on(env, state, pod, caplog):
    configure(env)
    state.execute("ALTER TABLE podmod.case_alerts RENAME TO case_alerts_gone")
    state.commit()
    pod.report(pod.person("reporter"), "Post", pod.post(pod.person("author")))
    config = load_config()

    with caplog.at_level(logging.ERROR, logger="podmod.notify.carry"):
        result = read_once(config)
    assert result.new_reports == 1 and result.enqueued == result.new_batches
    [record] = caplog.records
    assert record.getMessage().startswith("notify: preparing the outbox failed (")
    assert "case_alerts" in record.getMessage()
