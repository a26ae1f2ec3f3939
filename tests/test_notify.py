"""Notifications end to end, with a real SMTP server and a real webhook receiver on loopback:
every event wired, staff alerts and digests, retries, exactly-once delivery."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from podmod import actions
from podmod.config import load_config
from podmod.notify import deliver
from tests.helpers import intake_all, podmod, wait_for
from tests.notify_servers import WEBHOOK_SECRET

PUBLIC_URL = "https://pod.example/podmod/"


def configure(env, *, smtp_url: str | None = None, hooks=(), extra: str = "") -> None:
    """Write the test's podmod.toml: mail to `smtp_url`, these webhook receivers."""
    text = f'[web]\npublic_url = "{PUBLIC_URL}"\n'
    if smtp_url:
        text += f'[mail]\nsmtp_url = "{smtp_url}"\nfrom = "podmod@pod.example"\n'
    text += extra
    for url, events in hooks:
        listed = ", ".join(f'"{event}"' for event in events)
        text += f'[[webhooks]]\nurl = "{url}"\nsecret = "{WEBHOOK_SECRET}"\nevents = [{listed}]\n'
    Path(env["PODMOD_CONFIG"]).write_text(text)


def run_deliver(*args: str) -> str:
    result = podmod("notify", "deliver", *args)
    assert result.exit_code == 0, result.output
    return result.output


def outbox(state) -> list[dict]:
    state.rollback()
    rows = state.execute("SELECT * FROM podmod.outbox ORDER BY id").fetchall()
    state.rollback()
    return rows


def staff(pod, name: str = "admin", *, language: str | None = None):
    person = pod.person(name, roles=("admin",))
    if language:
        pod.conn.execute("UPDATE users SET language = %s WHERE id = %s", (language, person.user_id))
    return person


def test_locking_and_unlocking_post_one_signed_webhook_each(env, state, pod, receiver):
    configure(env, hooks=[(receiver.url, ["account.locked", "account.unlocked"])])
    author = pod.person("author")
    post = pod.post(author, "Placeholder text that must never leave podmod.")
    pod.report(pod.person("reporter"), "Post", post, "Placeholder reason.")
    intake_all(load_config())
    assert podmod("lock", "author@pod.example", "--reason", "placeholder").exit_code == 0
    assert podmod("lock", "author@pod.example", "--reason", "again").exit_code == 0  # no change
    assert podmod("unlock", "author@pod.example", "--reason", "placeholder").exit_code == 0

    run_deliver()
    run_deliver()  # nothing is sent twice

    assert [d.json["type"] for d in receiver.deliveries] == ["account.locked", "account.unlocked"]
    assert all(d.signed for d in receiver.deliveries), [d.headers for d in receiver.deliveries]
    locked = receiver.deliveries[0].json
    assert locked["account"] == {
        "handle": "author@pod.example",
        "url": PUBLIC_URL + "?q=author%40pod.example&status=all",
    }
    assert locked["case"]["url"] == PUBLIC_URL + f"cases/{locked['case']['id']}"
    assert locked["details"] == {"by": "staff", "source": "cli"}
    assert locked["created_at"].endswith("Z") and len(locked["id"]) == 36
    body = b"".join(d.body for d in receiver.deliveries)
    assert b"Placeholder" not in body and b"placeholder" not in body  # no content, no reason
    assert [row["delivered_at"] is not None for row in outbox(state)] == [True, True]


def test_a_webhook_receiver_only_gets_the_events_it_subscribed_to(env, state, pod, receiver):
    configure(env, hooks=[(receiver.url, ["account.unlocked"])])
    pod.person("author")
    podmod("lock", "author@pod.example", "--reason", "x")
    run_deliver()
    assert receiver.deliveries == []
    podmod("unlock", "author@pod.example", "--reason", "x")
    run_deliver()
    assert [d.json["type"] for d in receiver.deliveries] == ["account.unlocked"]


def test_a_refused_lock_records_no_event(env, state, pod, receiver):
    configure(env, hooks=[(receiver.url, ["account.locked"])])
    pod.person("remote", "far.example")
    result = podmod("lock", "remote@far.example", "--reason", "x")
    assert result.exit_code != 0
    state.rollback()
    assert state.execute("SELECT count(*) AS n FROM podmod.events").fetchone()["n"] == 0


def test_a_case_reaching_min_priority_mails_the_staff_once_and_again_when_it_rises(
    env, state, pod, smtp_server
):
    configure(env, smtp_url=smtp_server.url(), extra="[alerts]\nmin_priority = 20\n")
    staff(pod)
    author = pod.person("author")
    post = pod.post(author)
    reporters = [pod.person(f"reporter{n}") for n in range(4)]
    pod.report(reporters[0], "Post", post)  # priority 10 + 5 (local): below 20
    intake_all(load_config())
    run_deliver()
    assert smtp_server.messages == []

    pod.report(reporters[1], "Post", post)  # 25: alerts
    intake_all(load_config())
    run_deliver()
    run_deliver()
    assert len(smtp_server.messages) == 1, [m["Subject"] for m in smtp_server.messages]
    first = smtp_server.messages[0]
    assert first["To"] == "admin@mail.example"
    assert "reached priority 25" in first["Subject"], first["Subject"]

    pod.report(reporters[2], "Post", post)  # 35: rose further, alerts again
    intake_all(load_config())
    run_deliver()
    assert len(smtp_server.messages) == 2
    text = smtp_server.messages[1].get_body(("plain",)).get_content()
    assert "priority 35 (was 25)" in text, text


def test_ten_thousand_new_cases_are_one_digest_mail(env, state, pod, smtp_server, receiver):
    configure(
        env,
        smtp_url=smtp_server.url(),
        hooks=[(receiver.url, ["case.alert"])],
        extra="[alerts]\nmin_priority = 30\n",
    )
    staff(pod)
    moderator = pod.person("moderator", roles=("moderator",))
    pod.conn.execute("UPDATE users SET language = 'de' WHERE id = %s", (moderator.user_id,))
    state.execute(
        "INSERT INTO podmod.cases (subject, person_id, account, priority, status)"
        " SELECT 'person:' || n, n, 'placeholder' || n || '@far.example', 30 + n % 50, 'open'"
        " FROM generate_series(1, 10000) AS n"
    )
    state.commit()

    output = run_deliver()
    run_deliver()

    assert "10000 cases alerted" in output, output
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "admin@mail.example",
        "moderator@mail.example",
    ]
    by_address = {m["To"]: m for m in smtp_server.messages}
    message = by_address["admin@mail.example"]
    # (counts grouped as the recipient's language writes them)
    assert message["Subject"] == "podmod: 10,000 cases to look at"
    text = message.get_body(("plain",)).get_content()
    assert "10,000 cases reached priority 30 or more" in text
    assert "… and 9,950 more in the queue:" in text
    german = by_address["moderator@mail.example"]
    assert german["Subject"] == "podmod: 10.000 Fälle zu prüfen"
    text = german.get_body(("plain",)).get_content()
    assert "10.000 Fälle haben Priorität 30 oder mehr erreicht" in text
    assert "… und 9.950 weitere in der Warteschlange:" in german.get_body(("html",)).get_content()
    assert len(receiver.deliveries) == 1
    alert = receiver.deliveries[0].json
    assert alert["details"]["count"] == 10000 and len(alert["details"]["cases"]) == 50
    assert alert["details"]["cases"][0]["priority"] == 79


def test_digest_minutes_gather_what_is_new_into_one_mail_per_interval(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url(), extra="[alerts]\ndigest_minutes = 5\n")
    staff(pod)

    def new_cases(first: int, count: int) -> None:
        state.execute(
            "INSERT INTO podmod.cases (subject, account, priority)"
            " SELECT 'person:' || n, 'p' || n || '@far.example', 40"
            " FROM generate_series(%s::int, %s::int) n",
            (first, first + count - 1),
        )
        state.commit()

    new_cases(1, 3)
    run_deliver()
    new_cases(4, 5000)
    run_deliver()
    run_deliver()
    assert len(smtp_server.messages) == 1  # the next waits for five minutes after the first
    state.execute("UPDATE podmod.digests SET created_at = created_at - interval '5 minutes'")
    state.commit()
    run_deliver()
    run_deliver()
    assert [m["Subject"] for m in smtp_server.messages] == [
        "podmod: 3 cases to look at",
        "podmod: 5,000 cases to look at",
    ]


def test_smtp_down_then_up_loses_nothing_and_sends_one_mail(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    state.execute("INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a@b.c', 50)")
    state.commit()
    smtp_server.stop()

    result = podmod("notify", "deliver")
    assert result.exit_code == 0, result.output
    [row] = outbox(state)
    assert row["delivered_at"] is None and row["attempts"] == 1
    assert row["last_error"].startswith(
        f"Cannot reach the SMTP server smtp://127.0.0.1:{smtp_server.port} (Connection refused)"
    ), row["last_error"]
    assert "right-password" not in result.output + row["last_error"]
    wait = (row["next_attempt_at"] - row["last_attempt_at"]).total_seconds()
    assert 29 <= wait <= 31, wait  # the first pause: 30 s
    run_deliver()  # not due yet: no second attempt
    assert outbox(state)[0]["attempts"] == 1

    smtp_server.start()
    state.execute("UPDATE podmod.outbox SET next_attempt_at = now()")  # the 30 s have passed
    state.commit()
    run_deliver()
    run_deliver()
    assert len(smtp_server.messages) == 1
    [row] = outbox(state)
    assert row["delivered_at"] is not None and row["attempts"] == 2


def test_a_wrong_smtp_password_is_one_sentence(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url(password="wrong-password"))
    staff(pod)
    state.execute("INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a@b.c', 50)")
    state.commit()
    result = podmod("notify", "deliver")
    [row] = outbox(state)
    assert row["last_error"] == (
        f"The SMTP server smtp://127.0.0.1:{smtp_server.port} refused the user name or password "
        "in mail.smtp_url (535 5.7.8 Authentication credentials invalid); correct them."
    )
    assert row["last_error"] in result.output
    assert "wrong-password" not in result.output
    assert smtp_server.messages == []


def test_a_receiver_answering_500_then_200_is_delivered_once_after_a_pause(
    env, state, pod, receiver
):
    configure(env, hooks=[(receiver.url, ["account.locked"])])
    receiver.answers = [500]
    pod.person("author")
    podmod("lock", "author@pod.example", "--reason", "x")
    run_deliver()
    [row] = outbox(state)
    assert row["delivered_at"] is None and row["response_status"] == 500
    assert row["last_error"] == (
        f"The webhook receiver http://127.0.0.1:{receiver.httpd.server_address[1]}/… answered "
        "HTTP 500: receiver says 500."
    )
    assert 29 <= (row["next_attempt_at"] - row["last_attempt_at"]).total_seconds() <= 31
    run_deliver()
    assert len(receiver.deliveries) == 1  # not yet due

    state.execute("UPDATE podmod.outbox SET next_attempt_at = now()")
    state.commit()
    run_deliver()
    run_deliver()
    assert len(receiver.deliveries) == 2
    assert receiver.deliveries[0].body == receiver.deliveries[1].body  # the same event, re-sent
    [row] = outbox(state)
    assert row["delivered_at"] is not None and row["response_status"] == 200
    assert row["attempts"] == 2


def test_an_unreachable_receiver_is_one_sentence_that_hides_the_token_in_its_path(env, state, pod):
    from tests.notify_servers import free_port

    port = free_port()  # nothing listens there
    configure(env, hooks=[(f"http://127.0.0.1:{port}/hook/placeholdertoken42", ["account.locked"])])
    pod.person("author")
    podmod("lock", "author@pod.example", "--reason", "x")

    run_deliver()

    [row] = outbox(state)
    assert row["delivered_at"] is None
    said = row["last_error"]
    assert said.startswith(f"Cannot reach the webhook receiver http://127.0.0.1:{port}/… ("), said
    assert said.endswith("check that it is running and its url in [[webhooks]]."), said
    assert "placeholdertoken42" not in said, said


def test_a_delivery_failing_for_a_day_is_given_up_visibly(env, state, pod, receiver):
    configure(env, hooks=[(receiver.url, ["account.locked"])])
    receiver.answers = [503, 503]
    pod.person("author")
    podmod("lock", "author@pod.example", "--reason", "x")
    run_deliver()
    state.execute(
        "UPDATE podmod.outbox SET created_at = now() - interval '1 day',"
        " retrying_since = now() - interval '1 day', next_attempt_at = now()"
    )
    state.commit()
    run_deliver()
    [row] = outbox(state)
    assert row["gave_up_at"] is not None and row["attempts"] == 2
    assert "answered HTTP 503" in row["last_error"]
    run_deliver()
    assert len(receiver.deliveries) == 2


def lock_waiters(state) -> int:
    """Sessions waiting for an advisory lock (a deliverer waiting for a row another one sends)."""
    waiting = state.execute(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()["n"]
    state.rollback()
    return waiting


def test_two_deliverers_of_one_row_at_once_send_one_mail(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    state.execute("INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a@b.c', 50)")
    state.commit()
    config = load_config()
    deliver.deliver_pass(config, limit=0)  # the alert and its mail row, nothing sent yet
    [row] = outbox(state)
    smtp_server.hold = threading.Event()  # the first deliverer waits inside DATA
    outcomes: list[deliver.Outcome] = []
    first = threading.Thread(target=lambda: outcomes.append(deliver.deliver(config, row["id"])))
    first.start()
    wait_for(smtp_server.arrived.is_set, "the first deliverer to reach DATA")
    waiting: list[deliver.Outcome] = []
    second = threading.Thread(target=lambda: waiting.append(deliver.deliver(config, row["id"])))
    second.start()
    wait_for(lambda: lock_waiters(state), "the second deliverer to wait for the row's lock")
    smtp_server.hold.set()
    first.join(30)
    second.join(30)
    third = deliver.deliver(config, row["id"])

    assert [o.status for o in outcomes] == ["delivered"]
    assert [o.status for o in waiting] == ["done"], waiting
    assert third.status == "done", third
    assert len(smtp_server.messages) == 1


def test_the_staff_mail_has_both_parts_and_the_headers(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    state.execute(
        "INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a<b>@far.example', 50)"
    )
    state.commit()
    run_deliver()
    [message] = smtp_server.messages
    [row] = outbox(state)
    assert message["Message-ID"] == row["message_id"]
    assert message["Message-ID"].endswith("@pod.example>")
    assert message["From"] == "podmod@pod.example"
    assert message["To"] == "admin@mail.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None and message["Content-Language"] == "en"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    case_id = state.execute("SELECT id FROM podmod.cases").fetchone()["id"]
    state.rollback()
    assert f"{PUBLIC_URL}cases/{case_id}" in text
    assert f'<a href="{PUBLIC_URL}cases/{case_id}">Case {case_id}</a>' in html
    assert "a&lt;b&gt;@far.example" in html and "a<b>" not in html  # escaped


def test_the_staff_mail_is_written_in_each_recipients_language(env, state, pod, smtp_server):
    configure(env, smtp_url=smtp_server.url())
    staff(pod, "admin", language="de")
    staff(pod, "other", language="fr")  # no French catalog: English
    state.execute(
        "INSERT INTO podmod.cases (subject, account, priority) VALUES"
        " ('x', 'a@far.example', 50), ('y', 'b@far.example', 40)"
    )
    state.commit()
    run_deliver()
    by_address = {m["To"]: m for m in smtp_server.messages}
    german = by_address["admin@mail.example"]
    assert german["Subject"] == "podmod: 2 Fälle zu prüfen"
    assert german["Content-Language"] == "de"
    text = german.get_body(("plain",)).get_content()
    assert "2 Fälle haben Priorität 30 oder mehr erreicht:" in text
    assert "Priorität 50" in text
    assert by_address["other@mail.example"]["Subject"] == "podmod: 2 cases to look at"


def test_a_podmin_template_and_catalog_override_the_built_in_ones(
    env, state, pod, smtp_server, tmp_path
):
    own = tmp_path / "mail"
    (own / "catalogs").mkdir(parents=True)
    (own / "digest.subject.txt").write_text("[{{ _('Our pod') }}] {{ case_count }} new")
    (own / "catalogs" / "nl.toml").write_text('"Our pod" = "Onze pod"\n')
    configure(env, smtp_url=smtp_server.url(), extra=f'templates_dir = "{own}"\n')
    staff(pod, language="nl")
    state.execute("INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a@b.c', 50)")
    state.commit()
    run_deliver()
    [message] = smtp_server.messages
    assert message["Subject"] == "[Onze pod] 1 new"
    assert "Case" in message.get_body(("plain",)).get_content()  # the built-in body stays


def test_alerts_to_replaces_the_staff_addresses(env, state, pod, smtp_server):
    configure(
        env,
        smtp_url=smtp_server.url(),
        extra='[alerts]\nto = ["team@pod.example", "Second <second@pod.example>"]\n',
    )
    staff(pod)
    state.execute("INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a@b.c', 50)")
    state.commit()
    run_deliver()
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "Second <second@pod.example>",
        "team@pod.example",
    ]


def test_a_lock_list_locking_accounts_mails_the_staff_and_a_held_version_too(
    env, state, pod, smtp_server, receiver, tmp_path
):
    staff(pod)
    targets = [pod.person(f"campaign{n}") for n in range(3)]
    listed = tmp_path / "core.csv"
    rows = "".join(f"account,{p.handle},spam,\n" for p in targets)
    listed.write_text("kind,value,label,comment\n" + rows)
    hooks = [(receiver.url, ["account.locked", "list.held"])]
    lists = f'[[lists]]\nname = "core"\nurl = "{listed.as_uri()}"\npolicy = "lock"\n'
    configure(env, smtp_url=smtp_server.url(), hooks=hooks, extra=lists)
    assert podmod("lists", "sync").exit_code == 0
    run_deliver()

    [message] = smtp_server.messages
    # The lock list decided their cases (closed as locked): the staff hear of the locks, with
    # no case left to look at.
    assert message["Subject"] == "podmod: 3 accounts locked by lists"
    text = message.get_body(("plain",)).get_content()
    assert "campaign0@pod.example (List core)" in text
    assert sorted(d.json["account"]["handle"] for d in receiver.deliveries) == sorted(
        p.handle for p in targets
    )
    assert {d.json["details"]["by"] for d in receiver.deliveries} == {"list:core"}

    listed.write_text("kind,value,label,comment\n" + rows.splitlines(keepends=True)[0])
    assert podmod("lists", "sync").exit_code == 4  # held: removes 2 of 3
    run_deliver()
    assert len(smtp_server.messages) == 2
    held = smtp_server.messages[1]
    assert held["Subject"] == "podmod: 1 list version held"
    # (the lists page, which shows the version to approve, should a later one take its place)
    assert f"  {PUBLIC_URL}lists" in held.get_body(("plain",)).get_content().splitlines()
    [event] = [d.json for d in receiver.deliveries if d.json["type"] == "list.held"]
    assert event["list"] == {"name": "core", "url": f"{PUBLIC_URL}lists/core/versions/2"}
    assert event["details"]["version"] == 2


def test_a_lock_list_holding_back_its_locks_mails_the_staff_a_link_to_check_them(
    env, state, pod, smtp_server, receiver, tmp_path
):
    staff(pod)
    targets = [pod.person(f"campaign{n}") for n in range(3)]
    listed = tmp_path / "core.csv"
    listed.write_text(
        "kind,value,label,comment\n" + "".join(f"account,{p.handle},spam,\n" for p in targets)
    )
    lists = (
        f'[list_sync]\nmax_locks = 2\n[[lists]]\nname = "core"\nurl = "{listed.as_uri()}"\n'
        'policy = "lock"\n'
    )
    configure(env, smtp_url=smtp_server.url(), hooks=[(receiver.url, ["list.held"])], extra=lists)
    staff(pod, "moderator", language="de")

    assert podmod("lists", "sync").exit_code == 4
    run_deliver()

    message, german = sorted(smtp_server.messages, key=lambda m: m["To"])
    # Not "a list version held": the version is in force; its locks wait for a podmin, and the
    # accounts as open cases.
    assert message["Subject"] == "podmod: 3 cases to look at, 1 list holding back locks"
    text = message.get_body(("plain",)).get_content()
    assert "1 list holds back its locks:" in text and "held for approval" not in text
    assert "List core: 3 accounts match its lock policy, more than list_sync.max_locks (2)" in text
    assert f"{PUBLIC_URL}lists/core/locks" in text
    html_part = message.get_body(("html",)).get_content()
    assert f'<a href="{PUBLIC_URL}lists/core/locks">' in html_part
    [event] = [d.json for d in receiver.deliveries]
    assert event["type"] == "list.held" and event["details"]["locks_held"] == 3
    assert event["list"] == {"name": "core", "url": f"{PUBLIC_URL}lists/core/locks"}
    # In German, all of it: podmod's own sentence is translated, not its English words.
    assert german["Subject"] == "podmod: 3 Fälle zu prüfen, 1 Liste hält Sperren zurück"
    for part in ("plain", "html"):
        text = german.get_body((part,)).get_content()
        assert (
            "3 Konten fallen unter ihre Sperrregel, mehr als list_sync.max_locks (2) auf einmal:"
            " keins wurde gesperrt" in text
        ), text
        assert "accounts match" not in text and "none was locked" not in text, text


def test_a_list_failing_for_over_an_hour_alerts_once(env, state, pod, smtp_server, tmp_path):
    missing = tmp_path / "gone.csv"
    lists = f'[[lists]]\nname = "core"\nurl = "{missing.as_uri()}"\n'
    configure(env, smtp_url=smtp_server.url(), extra=lists)
    staff(pod)
    assert podmod("lists", "sync").exit_code == 1
    run_deliver()
    assert smtp_server.messages == []  # failing, but not for an hour yet
    state.execute("UPDATE podmod.lists SET created_at = now() - interval '2 hours'")
    state.commit()
    assert podmod("lists", "sync").exit_code == 1
    run_deliver()
    run_deliver()
    [message] = smtp_server.messages
    assert message["Subject"] == "podmod: 1 list failing"


def _tried_hours_ago(state, hours: float, name: str | None = None) -> None:
    """Move the lists' (or one list's) last sync attempt, and their creation, into the past."""
    state.execute(
        "UPDATE podmod.lists SET last_attempt_at = now() - make_interval(secs => %(s)s),"
        " created_at = now() - make_interval(secs => %(s)s)"
        " WHERE %(name)s::text IS NULL OR name = %(name)s",
        {"s": hours * 3600, "name": name},
    )
    state.commit()


def test_a_list_no_sync_has_tried_for_hours_alerts_once_per_stall(
    env, state, pod, smtp_server, receiver, tmp_path
):
    """`podmod lists sync` stopped running (its cron job gone, cron stopped, a sync hung): the
    lists page and podmod check say nothing went wrong, since nothing was tried. After
    alerts.lists_stale_hours the staff hear of it once, and again only after a sync tried the
    list and then stopped once more."""
    listed = tmp_path / "core.csv"
    listed.write_text("kind,value,label,comment\naccount,someone@far.example,spam,\n")
    lists = f'[[lists]]\nname = "core"\nurl = "{listed.as_uri()}"\n'
    configure(env, smtp_url=smtp_server.url(), hooks=[(receiver.url, ["list.stale"])], extra=lists)
    staff(pod)
    assert podmod("lists", "sync").exit_code == 0
    _tried_hours_ago(state, 2.9)
    run_deliver()
    assert smtp_server.messages == [] and receiver.deliveries == []  # under 3 hours

    _tried_hours_ago(state, 4.2)
    run_deliver()
    run_deliver()
    [message] = smtp_server.messages
    assert message["Subject"] == "podmod: 1 list no longer synced"
    text = message.get_body(("plain",)).get_content()
    assert "1 list is no longer synced:" in text
    assert "- List core: no sync has tried it for 4 hours" in text, text
    assert "cron job (deploy/podmod.cron)" in text and "/var/log/podmod/lists.log" in text
    html_part = message.get_body(("html",)).get_content()
    assert f'<a href="{PUBLIC_URL}lists">List core</a>' in html_part
    [hook] = [d.json for d in receiver.deliveries]
    assert hook["type"] == "list.stale" and hook["list"] == {
        "name": "core",
        "url": PUBLIC_URL + "lists",
    }
    assert hook["details"]["stale_hours"] == 3 and hook["details"]["last_attempt"] is not None

    # The cron job runs again: the list is tried, the stall is over; it stops again: one more.
    assert podmod("lists", "sync").exit_code == 0
    run_deliver()
    assert len(smtp_server.messages) == 1
    _tried_hours_ago(state, 5)
    run_deliver()
    run_deliver()
    assert len(smtp_server.messages) == 2 and len(receiver.deliveries) == 2
    assert (
        "no sync has tried it for 5 hours"
        in smtp_server.messages[1].get_body(("plain",)).get_content()
    )


def test_a_list_never_synced_counts_from_the_newest_sync_or_from_the_install(
    env, state, pod, smtp_server, tmp_path
):
    """A list in the configuration that no sync ever tried has no row: a working cron job tries
    it at its next run, so it is stale only once every list went untried that long, or, with no
    sync ever, that long after podmod was installed. A list no longer subscribed never alerts,
    and alerts.lists_stale_hours = 0 turns the alert off."""
    listed = tmp_path / "core.csv"
    listed.write_text("kind,value,label,comment\naccount,someone@far.example,spam,\n")
    core = f'[[lists]]\nname = "core"\nurl = "{listed.as_uri()}"\n'
    other = tmp_path / "added.csv"
    other.write_text(listed.read_text())
    added = f'[[lists]]\nname = "added"\nurl = "{other.as_uri()}"\n'
    staff(pod)
    # Installed long ago, no sync ever: the cron job was never installed.
    configure(env, smtp_url=smtp_server.url(), extra="[alerts]\nlists_stale_hours = 0\n" + core)
    run_deliver()
    state.execute("UPDATE podmod.schema_migrations SET applied_at = now() - interval '1 day'")
    state.commit()
    run_deliver()
    assert smtp_server.messages == []  # switched off
    configure(env, smtp_url=smtp_server.url(), extra=core)
    run_deliver()
    [message] = smtp_server.messages
    assert message["Subject"] == "podmod: 1 list no longer synced"
    assert "- List core: never synced" in message.get_body(("plain",)).get_content()

    # Synced since; a list added to the configuration an hour after the last sync waits for the
    # cron job's next run: nothing to say until every list went untried for 3 hours.
    assert podmod("lists", "sync").exit_code == 0
    configure(env, smtp_url=smtp_server.url(), extra=core + added)
    _tried_hours_ago(state, 2)
    run_deliver()
    assert len(smtp_server.messages) == 1
    _tried_hours_ago(state, 3.5)
    run_deliver()
    second = smtp_server.messages[1]
    assert second["Subject"] == "podmod: 2 lists no longer synced"
    text = second.get_body(("plain",)).get_content()
    assert (
        "- List added: never synced" in text
        and "- List core: no sync has tried it for 3 hours" in text
    )

    # Unsubscribed: its row stays, untried for ever, and is never an alert.
    configure(env, smtp_url=smtp_server.url(), extra=added)
    _tried_hours_ago(state, 30, "core")
    run_deliver()
    assert len(smtp_server.messages) == 2


def test_a_crash_after_the_server_took_the_mail_resends_it_once_with_the_same_message_id(
    env, state, pod, smtp_server
):
    """The deliverer's connection dies inside DATA (as when its process is killed): the server
    has the mail, the row is not marked; the next pass sends it again, with the same
    Message-ID, and never a third time."""
    configure(env, smtp_url=smtp_server.url())
    staff(pod)
    state.execute("INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a@b.c', 50)")
    state.commit()
    config = load_config()
    deliver.deliver_pass(config, limit=0)
    [row] = outbox(state)
    smtp_server.hold = threading.Event()
    crashed: list[BaseException] = []

    def deliverer() -> None:
        try:
            deliver.deliver(config, row["id"])
        except BaseException as error:  # the killed connection
            crashed.append(error)

    thread = threading.Thread(target=deliverer)
    thread.start()
    wait_for(smtp_server.arrived.is_set, "the deliverer to reach DATA")
    with psycopg.connect(config.state_database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'podmod-state' AND datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    smtp_server.hold.set()
    thread.join(30)
    assert crashed, "the deliverer should have lost its database connection"
    state.rollback()
    assert outbox(state)[0]["delivered_at"] is None

    smtp_server.hold = None
    run_deliver()
    run_deliver()
    assert len(smtp_server.messages) == 2
    assert smtp_server.messages[0]["Message-ID"] == smtp_server.messages[1]["Message-ID"]
    assert outbox(state)[0]["delivered_at"] is not None


def test_nothing_is_recorded_for_mail_when_no_smtp_server_is_configured(env, state, pod):
    configure(env)
    staff(pod)
    state.execute("INSERT INTO podmod.cases (subject, account, priority) VALUES ('x', 'a@b.c', 50)")
    state.commit()
    output = run_deliver("--json")
    assert json.loads(output)["cases_alerted"] == 1
    assert outbox(state) == []
    with pytest.raises(AssertionError):
        assert outbox(state)


def test_a_locked_account_is_told_why_once_in_its_language(env, state, pod, smtp_server):
    configure(
        env,
        smtp_url=smtp_server.url(),
        extra='[notify]\nlocked_accounts = true\n[alerts]\nto = ["team@pod.example"]\n',
    )
    author = pod.person("author")
    pod.conn.execute("UPDATE users SET language = 'de' WHERE id = %s", (author.user_id,))
    assert (
        podmod("lock", "author@pod.example", "--reason", "Placeholder: spam links").exit_code == 0
    )
    run_deliver()
    run_deliver()
    [message] = smtp_server.messages
    assert message["To"] == "author@mail.example"
    assert message["Subject"] == "Dein Konto author@pod.example wurde gesperrt"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Ihre Begründung:\n  Placeholder: spam links" in text, text
    assert "schreib an team@pod.example" in text
    assert "cli:" not in text and "staff" not in text  # never who the moderator was
    assert message["Auto-Submitted"] == "auto-generated"


def test_a_reason_of_several_lines_stays_one_quote_in_the_locked_accounts_mail(
    env, state, pod, smtp_server
):
    # A reason pasted with line breaks, one of them a signature mark ("-- "): every line stays
    # indented as the quote it is, and no mail client takes the appeal link for a signature.
    configure(env, smtp_url=smtp_server.url(), extra="[notify]\nlocked_accounts = true\n")
    pod.person("author")
    reason = "Placeholder first line\n-- \nPlaceholder third line"
    assert podmod("lock", "author@pod.example", "--reason", reason).exit_code == 0
    run_deliver()
    [message] = smtp_server.messages
    lines = message.get_body(("plain",)).get_content().replace("\r\n", "\n").split("\n")
    start = lines.index("  Placeholder first line")
    assert lines[start : start + 3] == [
        "  Placeholder first line",
        "  -- ",
        "  Placeholder third line",
    ], lines
    assert lines.index("-- ") > lines.index("  " + message_appeal_url(message)), lines


def message_appeal_url(message) -> str:
    text = message.get_body(("plain",)).get_content()
    return next(line.strip() for line in text.splitlines() if "/appeal/" in line)


def test_an_account_locked_by_a_list_is_told_the_list(env, state, pod, smtp_server, tmp_path):
    target = pod.person("campaign")
    listed = tmp_path / "core.csv"
    listed.write_text(f"kind,value,label,comment\naccount,{target.handle},spam,\n")
    lists = f'[[lists]]\nname = "core"\nurl = "{listed.as_uri()}"\npolicy = "lock"\n'
    configure(env, smtp_url=smtp_server.url(), extra="[notify]\nlocked_accounts = true\n" + lists)
    assert podmod("lists", "sync").exit_code == 0
    run_deliver()
    [message] = [m for m in smtp_server.messages if m["To"] == "campaign@mail.example"]
    text = message.get_body(("plain",)).get_content()
    assert "It is on the shared blocklist core, which this pod follows." in text
    assert "write to the pod's admins" in text


def test_an_account_unlocked_before_delivery_or_with_the_setting_off_is_told_nothing(
    env, state, pod, smtp_server
):
    configure(env, smtp_url=smtp_server.url(), extra="[notify]\nlocked_accounts = true\n")
    pod.person("author")
    podmod("lock", "author@pod.example", "--reason", "x")
    podmod("unlock", "author@pod.example", "--reason", "a mistake")
    run_deliver()
    configure(env, smtp_url=smtp_server.url())  # locked_accounts = false
    podmod("lock", "author@pod.example", "--reason", "x")
    run_deliver()
    assert smtp_server.messages == []


def test_the_german_catalog_translates_every_string_of_the_built_in_templates():
    from importlib import resources

    from podmod.notify.mail import catalog, environment

    env = environment(None, "en")
    german = catalog(None, "de")
    assert german is not None
    folder = resources.files("podmod.notify").joinpath("templates")
    wanted = {
        message if isinstance(message, str) else message[0]
        for template in folder.iterdir()
        for _line, _function, message in env.extract_translations(template.read_text())
    }
    assert len(wanted) > 20
    assert sorted(wanted - set(german.messages)) == []


def test_lock_and_close_posts_one_account_locked_and_a_refused_one_nothing(
    env, state, pod, receiver
):
    configure(env, hooks=[(receiver.url, ["account.locked"])])
    author = pod.person("author")
    pod.report(pod.person("reporter"), "Post", pod.post(author))
    intake_all(load_config())
    assert podmod("lock", "author@pod.example", "--close", "--reason", "x").exit_code == 0
    with pytest.raises(actions.ActionRefused):  # no open case left: refused, nothing told
        actions.lock_and_close(load_config(), handle="author@pod.example", actor="t", source="t")
    run_deliver()
    assert [d.json["type"] for d in receiver.deliveries] == ["account.locked"]
    state.rollback()
    assert state.execute("SELECT count(*) AS n FROM podmod.events").fetchone()["n"] == 1


def test_a_staff_mail_an_older_podmod_queued_still_renders_its_reasons_as_written(env):
    # An outbox row written before the held facts were kept (settled, withdrawn, entry and
    # lock holds with their English reason alone) is still sent, its reasons as they were.
    from podmod.notify.alerts import digest_payload
    from podmod.notify.mail import render

    configure(env, smtp_url="smtp://127.0.0.1:1")
    config = load_config()
    item = {"list": "core", "version": 2, "url": f"{PUBLIC_URL}lists"}
    old = {
        **digest_payload(config, []),
        "settled_count": 1,
        "settled": [{**item, "reason": "approved by placeholder on 2026-01-02 03:04 UTC"}],
        "withdrawn_count": 1,
        "withdrawn": [{**item, "reason": "version 2, held, was withdrawn: placeholder"}],
        "entries_held_count": 1,
        "entries_held": [
            {
                **item,
                "entry": "phrase:x",
                "reason": "phrase:x of list core matches placeholder",
                "sampled": 0,
                "cases_closed": 0,
                "cases_alerted": 0,
                "accounts_locked": 0,
            }
        ],
        "locks_held_count": 1,
        "locks_held": [{**item, "count": 3, "reason": "3 accounts match placeholder"}],
        "locked_count": 1,
        "locked": [{"account": "a@pod.example", "by": "list:core", "case_url": None}],
    }
    for language in ("en", "de"):
        mail = render(config, "digest", language, {**old, "language": language})
        for part in ("text", "html"):
            for said in (
                "approved by placeholder on 2026-01-02 03:04 UTC",
                "version 2, held, was withdrawn: placeholder",
                "phrase:x of list core matches placeholder",
                "3 accounts match placeholder",
                "a@pod.example",
            ):
                assert said in mail[part], (language, part, mail[part])
