"""`podmod check` and /metrics on notifications: a wrong SMTP password, a failing receiver and the
outbox backlog each show, in one sentence."""

from __future__ import annotations

import json
import re

from podmod import metrics, queue
from podmod.config import load_config
from tests.helpers import podmod
from tests.test_notify import configure, run_deliver, staff


def notifications_check() -> dict:
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    return report["notifications"]


def test_check_fails_on_a_wrong_smtp_password_in_one_sentence(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url(password="wrong-password"))
    staff(pod)
    check = notifications_check()
    assert check["status"] == "fail"
    assert check["detail"] == (
        f"The SMTP server smtp://127.0.0.1:{smtp_server.port} refused the user name or password "
        "in mail.smtp_url (535 5.7.8 Authentication credentials invalid); correct them."
    )


def test_check_names_the_server_the_staff_and_the_backlog_when_all_is_well(
    env, state, pod, smtp_server
):
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    check = notifications_check()
    assert check["status"] == "ok", check
    assert check["detail"] == (
        f"mail: smtp://127.0.0.1:{smtp_server.port} answers, signed in as podmod; alerts to 1 "
        "address; 0 webhooks; 0 deliveries waiting"
    )


def test_check_fails_when_no_staff_member_can_be_mailed(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url())
    check = notifications_check()
    assert check["status"] == "fail"
    assert check["detail"].startswith("No local admin or moderator has a mail address")


def test_check_and_metrics_show_a_failing_receiver_and_the_backlog(env, state, pod, receiver):
    configure(env, hooks=[(receiver.url, ["account.locked"])])
    receiver.answers = [502]
    pod.person("author")
    podmod("lock", "author@pod.example", "--reason", "x")
    run_deliver()

    check = notifications_check()
    port = receiver.httpd.server_address[1]
    assert check["status"] == "warn"
    assert check["detail"] == (
        "no mail (mail.smtp_url is not set); 1 webhooks; 1 deliveries waiting; the last delivery "
        "failed (retrying; see the deliveries page): The webhook receiver "
        f"http://127.0.0.1:{port}/… answered HTTP 502: receiver says 502."
    )
    config = load_config()
    text = metrics.collect(config, state, queue.redis_connection(config))
    assert 'podmod_outbox_waiting{channel="webhook"} 1' in text
    assert 'podmod_outbox_waiting{channel="mail"} 0' in text
    assert "podmod_outbox_given_up 0" in text
    assert re.search(
        r'podmod_outbox_last_failure_timestamp_seconds\{channel="webhook"\} 1\d{9}', text
    )

    state.execute("UPDATE podmod.outbox SET next_attempt_at = now()")
    state.commit()
    run_deliver()
    assert notifications_check()["status"] == "ok"  # delivered since: the failure is history
    text = metrics.collect(config, state, queue.redis_connection(config))
    assert 'podmod_outbox_waiting{channel="webhook"} 0' in text


def test_check_warns_when_deliveries_wait_too_long(env, state, pod, receiver):
    configure(env, hooks=[(receiver.url, ["account.locked"])])
    pod.person("author")
    podmod("lock", "author@pod.example", "--reason", "x")
    state.execute("UPDATE podmod.outbox SET created_at = now() - interval '10 minutes'")
    state.commit()
    check = notifications_check()
    assert check["status"] == "warn"
    assert (
        "the oldest has waited 600 s: check that `podmod read` and `podmod worker` run"
        in check["detail"]
    )
