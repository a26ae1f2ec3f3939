"""Reporter feedback end to end, with a real SMTP server on loopback: a reporter whose reports on a
case are all decided gets one mail with the outcome (never the content, never the moderator),
once; opted-out reporters and decisions from before the setting was on get none; the opt-out
page and RFC 8058's one-click POST; the pass stays a few queries for ten thousand cases."""

from __future__ import annotations

import time

import psycopg
from psycopg.rows import dict_row

from podmod import actions
from podmod.config import load_config
from podmod.db import pod_connection
from podmod.notify import links, reporters
from tests import test_web, test_web_browser
from tests.helpers import intake_all, podmod, read_once
from tests.test_notify import PUBLIC_URL, configure, outbox, run_deliver
from tests.test_web import html

make_app = test_web.make_app
app = test_web.app
client = test_web.client
browser = test_web_browser.browser
live_server = test_web_browser.live_server

ON = "[notify]\nreporters = true\n"
MODERATOR = "moddy@pod.example"


def switch_on(env, smtp_server, extra: str = "") -> None:
    """notify.reporters on, and the first pass that runs with it (decisions count from here)."""
    configure(env, smtp_url=smtp_server.url(), extra=ON + extra)
    run_deliver()


def reported(pod, reporter, author, text: str = "Placeholder text of a reported post.") -> int:
    post_id = pod.post(author, text)
    pod.report(reporter, "Post", post_id, "Placeholder reason of the reporter.")
    return post_id


def open_case(state, author) -> int:
    state.rollback()
    row = state.execute(
        "SELECT id FROM podmod.cases WHERE person_id = %s AND status = 'open'", (author.id,)
    ).fetchone()
    state.rollback()
    assert row, f"no open case for {author.handle}"
    return row["id"]


def decide(how: str, case_id: int) -> None:
    """A moderator's decision on the case: dismiss, mark reviewed, or lock and close."""
    config = load_config()
    common = {"actor": MODERATOR, "source": "web", "reason": "Placeholder moderator's reason"}
    if how == "dismiss":
        actions.dismiss_case(config, case_id=case_id, **common)
    elif how == "review":
        actions.mark_reviewed(config, case_id=case_id, **common)
    else:
        actions.lock_and_close(config, case_id=case_id, **common)


def unsubscribe_url(message) -> str:
    """The URL of List-Unsubscribe (a long header is folded onto a second line)."""
    return message["List-Unsubscribe"].strip().removeprefix("<").removesuffix(">")


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def notices(state) -> list[dict]:
    state.rollback()
    rows = state.execute(
        "SELECT case_id, reporter_user_id, outcome, result, reports"
        " FROM podmod.reporter_notices ORDER BY id"
    ).fetchall()
    state.rollback()
    return rows


def test_a_report_decided_each_way_tells_the_reporter_the_outcome_once(
    env, state, pod, smtp_server
):
    switch_on(env, smtp_server)
    reporter = pod.person("reporter")
    locked, ignored = pod.person("locked"), pod.person("ignored")
    reported(pod, reporter, locked)
    reported(pod, reporter, ignored)
    intake_all(load_config())
    decide("lock", open_case(state, locked))
    decide("dismiss", open_case(state, ignored))

    run_deliver()
    run_deliver()  # nothing is told twice

    assert sorted(m["Subject"] for m in smtp_server.messages) == [
        "Your report about ignored@pod.example was reviewed",
        "Your report about locked@pod.example: the account was locked",
    ]
    by_subject = {m["Subject"]: m for m in smtp_server.messages}
    lock_mail = by_subject["Your report about locked@pod.example: the account was locked"]
    dismiss_mail = by_subject["Your report about ignored@pod.example was reviewed"]
    assert lock_mail["To"] == dismiss_mail["To"] == "reporter@mail.example"
    assert "locked the account" in text_of(lock_mail), text_of(lock_mail)
    assert "took no action" in text_of(dismiss_mail), text_of(dismiss_mail)
    for message in smtp_server.messages:
        whole = message.as_string()
        assert "Placeholder" not in whole and "placeholder" not in whole  # no content, no reason
        assert "moddy" not in whole  # never who decided
        url = unsubscribe_url(message)
        assert url.startswith(PUBLIC_URL + "opt-out/"), message["List-Unsubscribe"]
        assert url in text_of(message)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Auto-Submitted"] == "auto-generated"
    assert [n["outcome"] for n in notices(state)] == ["locked", "no_action"]
    assert all(row["delivered_at"] is not None for row in outbox(state))


def test_two_reports_by_one_reporter_on_a_case_are_one_mail_once_both_are_decided(
    env, state, pod, smtp_server
):
    switch_on(env, smtp_server)
    reporter, author = pod.person("reporter"), pod.person("author")
    first = reported(pod, reporter, author)
    reported(pod, reporter, author)
    intake_all(load_config())
    pod.mark_reviewed("Post", first)  # one report decided in diaspora*, the other pending
    read_once(load_config())
    run_deliver()
    assert smtp_server.messages == [], [m["Subject"] for m in smtp_server.messages]

    decide("review", open_case(state, author))
    run_deliver()
    run_deliver()
    [message] = smtp_server.messages
    assert "Thank you for your 2 reports about author@pod.example on pod.example." in text_of(
        message
    ), text_of(message)


def test_two_reporters_of_one_case_each_get_one_mail(env, state, pod, smtp_server):
    switch_on(env, smtp_server)
    author = pod.person("author")
    post_id = reported(pod, pod.person("first"), author)
    pod.report(pod.person("second"), "Post", post_id, "Placeholder reason.")
    intake_all(load_config())
    decide("dismiss", open_case(state, author))
    run_deliver()
    run_deliver()
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "first@mail.example",
        "second@mail.example",
    ]


def test_an_opted_out_reporter_or_one_without_an_address_gets_nothing_and_is_not_reconsidered(
    env, state, pod, smtp_server
):
    switch_on(env, smtp_server)
    author = pod.person("author")
    opted, silent, heard = pod.person("opted"), pod.person("silent"), pod.person("heard")
    post_id = reported(pod, opted, author)
    pod.report(silent, "Post", post_id)
    pod.report(heard, "Post", post_id)
    pod.conn.execute("UPDATE users SET email = '' WHERE id = %s", (silent.user_id,))
    state.execute("INSERT INTO podmod.reporter_opt_outs (user_id) VALUES (%s)", (opted.user_id,))
    state.commit()
    intake_all(load_config())
    decide("dismiss", open_case(state, author))
    run_deliver()
    run_deliver()
    assert [m["To"] for m in smtp_server.messages] == ["heard@mail.example"]
    results = {n["reporter_user_id"]: n["result"] for n in notices(state)}
    assert results == {
        opted.user_id: "opted_out",
        silent.user_id: "no_address",
        heard.user_id: "mailed",
    }
    state.rollback()
    untold = state.execute(
        "SELECT count(*) AS n FROM podmod.signals WHERE kind = 'report'"
        " AND reporter_notice_id IS NULL"
    ).fetchone()["n"]
    state.rollback()
    assert untold == 0


def test_a_reopened_case_decided_again_tells_only_of_new_reports(env, state, pod, smtp_server):
    switch_on(env, smtp_server)
    reporter, author = pod.person("reporter"), pod.person("author")
    reported(pod, reporter, author)
    intake_all(load_config())
    case_id = open_case(state, author)
    decide("dismiss", case_id)
    run_deliver()
    assert len(smtp_server.messages) == 1

    config = load_config()
    actions.reopen_case(config, case_id=case_id, actor=MODERATOR, source="web")
    decide("dismiss", case_id)  # decided again with no new report: no second mail
    run_deliver()
    assert len(smtp_server.messages) == 1, [m["Subject"] for m in smtp_server.messages]

    actions.reopen_case(config, case_id=case_id, actor=MODERATOR, source="web")
    reported(pod, reporter, author)  # a new report from the same reporter, on the reopened case
    intake_all(load_config())
    assert open_case(state, author) == case_id
    decide("lock", case_id)
    run_deliver()
    run_deliver()
    assert len(smtp_server.messages) == 2
    assert "locked the account" in text_of(smtp_server.messages[1])
    assert "Thank you for your report about" in text_of(smtp_server.messages[1])  # one: the new
    assert [(n["outcome"], n["reports"]) for n in notices(state)] == [
        ("no_action", 1),
        ("locked", 1),
    ]


def test_with_the_setting_off_nothing_is_told_and_earlier_decisions_never_are(
    env, state, pod, smtp_server
):
    configure(env, smtp_url=smtp_server.url())  # notify.reporters = false
    reporter = pod.person("reporter")
    before, after = pod.person("before"), pod.person("after")
    reported(pod, reporter, before)
    intake_all(load_config())
    decide("dismiss", open_case(state, before))
    run_deliver()
    assert smtp_server.messages == []
    assert notices(state) == []

    switch_on(env, smtp_server)  # the decision above is older than the switch: never mailed
    run_deliver()
    assert smtp_server.messages == []
    assert [n["result"] for n in notices(state)] == ["before"]

    reported(pod, reporter, after)
    intake_all(load_config())
    decide("dismiss", open_case(state, after))
    run_deliver()
    assert [m["Subject"] for m in smtp_server.messages] == [
        "Your report about after@pod.example was reviewed"
    ]


def test_switching_off_and_on_again_starts_afresh(env, state, pod, smtp_server):
    switch_on(env, smtp_server)
    reporter, author = pod.person("reporter"), pod.person("author")
    configure(env, smtp_url=smtp_server.url())  # off for a while
    run_deliver()
    reported(pod, reporter, author)
    intake_all(load_config())
    decide("dismiss", open_case(state, author))
    run_deliver()
    switch_on(env, smtp_server)
    run_deliver()
    assert smtp_server.messages == []
    assert [n["result"] for n in notices(state)] == ["before"]


def test_a_pods_history_reviewed_in_diaspora_is_not_mailed_but_a_new_review_there_is(
    env, state, pod, smtp_server
):
    reporter, old, new = pod.person("reporter"), pod.person("old"), pod.person("new")
    pod.mark_reviewed("Post", reported(pod, reporter, old))  # decided before podmod was there
    switch_on(env, smtp_server)
    intake_all(load_config())  # the import: a closed case, reviewed in diaspora*
    run_deliver()
    assert smtp_server.messages == []

    post_id = reported(pod, reporter, new)
    intake_all(load_config())
    pod.mark_reviewed("Post", post_id)  # a moderator's decision in diaspora*, after the switch
    read_once(load_config())
    run_deliver()
    assert [m["Subject"] for m in smtp_server.messages] == [
        "Your report about new@pod.example was reviewed"
    ]
    assert [n["result"] for n in notices(state)] == ["before", "mailed"]


def test_a_reporter_is_told_in_their_language(env, state, pod, smtp_server):
    switch_on(env, smtp_server)
    reporter, author = pod.person("reporter"), pod.person("author")
    pod.conn.execute("UPDATE users SET language = 'de' WHERE id = %s", (reporter.user_id,))
    reported(pod, reporter, author)
    intake_all(load_config())
    decide("lock", open_case(state, author))
    run_deliver()
    [message] = smtp_server.messages
    assert message["Subject"] == "Deine Meldung zu author@pod.example: Das Konto wurde gesperrt"
    assert message["Content-Language"] == "de"
    text = text_of(message)
    assert "Danke für deine Meldung zu author@pod.example auf pod.example." in text, text
    assert "haben sie geprüft und das Konto gesperrt" in text
    html_part = message.get_body(("html",)).get_content()
    assert "Keine mehr bekommen" in html_part and 'lang="de"' in html_part


# ---------------------------------------------------------------------------------------------
# The opt-out page


def token_for(state, user_id: int) -> str:
    token = links.sign(state, "opt-out", user_id)
    state.commit()
    return token


def opted_out(state) -> list[int]:
    state.rollback()
    rows = state.execute("SELECT user_id FROM podmod.reporter_opt_outs").fetchall()
    state.rollback()
    return [row["user_id"] for row in rows]


def opt_out_audit(state) -> list[dict]:
    state.rollback()
    rows = state.execute(
        "SELECT actor, action, source, details FROM podmod.audit WHERE action = 'opt_out'"
    ).fetchall()
    state.rollback()
    return rows


def test_the_opt_out_page_asks_then_records_once_and_audits_without_an_address(
    env, state, pod, client
):
    reporter = pod.person("reporter")
    token = token_for(state, reporter.user_id)
    page = client.get(f"/opt-out/{token}")
    assert page.status_code == 200
    assert "Send me no more of these mails" in html(page)
    assert opted_out(state) == []  # looking is not opting out

    done = client.post(f"/opt-out/{token}")  # the page's button: no session, no CSRF token
    assert done.status_code == 200, html(done)
    assert "send you no more mails" in html(done)
    client.post(f"/opt-out/{token}")  # again: changes nothing
    assert opted_out(state) == [reporter.user_id]
    [audit] = opt_out_audit(state)
    assert audit["actor"] == f"reporter:{reporter.user_id}" and audit["source"] == "web"
    assert "mail.example" not in str(audit)
    assert "send you no more mails" in html(client.get(f"/opt-out/{token}"))


def test_a_reporter_opts_out_in_chromium_on_a_phone_without_signing_in(
    browser, live_server, env, state, pod
):
    reporter = pod.person("reporter")
    page = browser.new_page(viewport=test_web_browser.PHONE)
    page.goto(f"{live_server}/opt-out/{token_for(state, reporter.user_id)}")
    widths = page.evaluate(test_web_browser.WIDEST)
    assert widths[0] <= widths[1], f"wider than the phone (scroll width, screen width): {widths}"
    page.get_by_role("button", name="Send me no more of these mails").click()
    page.get_by_text("this pod will send you no more mails").wait_for()
    assert opted_out(state) == [reporter.user_id]
    assert page.context.cookies() == []  # no session was needed, none was made


def test_a_one_click_post_from_a_mail_client_opts_out(env, state, pod, client):
    reporter = pod.person("reporter")
    response = client.post(
        f"/opt-out/{token_for(state, reporter.user_id)}",
        data={"List-Unsubscribe": "One-Click"},
        headers={"Origin": "https://mail-client.example"},
    )
    assert response.status_code == 200, html(response)
    assert opted_out(state) == [reporter.user_id]
    assert opt_out_audit(state)[0]["details"] == {"one_click": True}


def test_a_bad_or_cut_opt_out_link_is_one_sentence_and_changes_nothing(env, state, pod, client):
    reporter = pod.person("reporter")
    token = token_for(state, reporter.user_id)
    appeal = links.sign(state, "appeal", reporter.user_id)  # signed, but for another purpose
    state.commit()
    for bad in (token[:-6], "not-a-token", appeal):
        response = client.post(f"/opt-out/{bad}")
        assert response.status_code == 400, (bad, response.status_code)
        assert "This link is not one this pod sent, or it was cut short" in html(response)
    assert opted_out(state) == []
    assert opt_out_audit(state) == []


def test_opt_out_requests_are_rate_limited_per_network(env, state, pod, client):
    token = token_for(state, pod.person("reporter").user_id)
    answers = [client.get(f"/opt-out/{token}").status_code for _ in range(31)]
    assert answers[:30] == [200] * 30 and answers[30] == 429, answers
    assert "Too many requests from your network" in html(client.get(f"/opt-out/{token}"))


def test_the_link_in_the_mail_opts_out_and_the_next_decision_is_not_mailed(
    env, state, pod, smtp_server, client
):
    switch_on(env, smtp_server)
    reporter, first, second = pod.person("reporter"), pod.person("first"), pod.person("second")
    reported(pod, reporter, first)
    intake_all(load_config())
    decide("dismiss", open_case(state, first))
    run_deliver()
    [message] = smtp_server.messages
    path = unsubscribe_url(message).removeprefix(PUBLIC_URL.rstrip("/"))
    path = path.removeprefix("/podmod")  # the test client serves the app at /
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    reported(pod, reporter, second)
    intake_all(load_config())
    decide("dismiss", open_case(state, second))
    run_deliver()
    assert len(smtp_server.messages) == 1
    assert [n["result"] for n in notices(state)] == ["mailed", "opted_out"]


# ---------------------------------------------------------------------------------------------
# Scale


class CountingConnection(psycopg.Connection):
    """A connection that counts the statements it is asked to run."""

    statements = 0

    def execute(self, *args, **kwargs):
        type(self).statements += 1
        return super().execute(*args, **kwargs)


def test_ten_thousand_decided_cases_are_a_few_queries(env, state, pod, smtp_server):
    switch_on(env, smtp_server)
    people = [pod.person(f"reporter{n}") for n in range(50)]
    state.execute(
        "INSERT INTO podmod.cases (subject, account, status, resolution, closed_at)"
        " SELECT 'person:' || n, 'placeholder' || n || '@far.example', 'resolved',"
        " CASE WHEN n % 2 = 0 THEN 'locked' ELSE 'reviewed' END, clock_timestamp()"
        " FROM generate_series(1, 10000) AS n"
    )
    state.execute(  # two reporters per case, one report each
        "INSERT INTO podmod.signals (case_id, kind, report_id, reporter_user_id, reporter,"
        " reviewed, reviewed_at, occurred_at)"
        " SELECT c.id, 'report', c.id * 2 + r, (%s::int[])[1 + (c.id * 2 + r) %% 50],"
        " 'reporter@pod.example', true, clock_timestamp(), now()"
        " FROM podmod.cases c CROSS JOIN generate_series(0, 1) AS r",
        ([p.user_id for p in people],),
    )
    state.commit()
    config = load_config()

    with (
        CountingConnection.connect(config.state_database_url, row_factory=dict_row) as counted,
        pod_connection(config) as pod_conn,
    ):
        CountingConnection.statements = 0
        started = time.monotonic()
        written = reporters.mail_reporters(config, counted, pod_conn)
        seconds = time.monotonic() - started
        statements = CountingConnection.statements
        again = reporters.mail_reporters(config, counted, pod_conn)
    print(f"reporters pass: {written} mails, 10000 cases, {seconds:.2f} s, {statements} statements")
    assert written == 20000 and again == 0
    batches = -(-20000 // reporters.BATCH) + 1  # the last one finds nothing more
    assert statements <= 6 * batches, f"{statements} statements for {batches} batches"
    state.rollback()
    counts = state.execute(
        "SELECT (SELECT count(*) FROM podmod.outbox WHERE reporter_notice_id IS NOT NULL) AS mails,"
        " (SELECT count(*) FROM podmod.reporter_notices) AS notices,"
        " (SELECT count(*) FROM podmod.signals WHERE reporter_notice_id IS NULL) AS untold"
    ).fetchone()
    state.rollback()
    assert counts == {"mails": 20000, "notices": 20000, "untold": 0}


def test_the_cli_counts_the_reporters_told(env, state, pod, smtp_server):
    switch_on(env, smtp_server)
    author = pod.person("author")
    reported(pod, pod.person("reporter"), author)
    intake_all(load_config())
    decide("dismiss", open_case(state, author))
    result = podmod("notify", "deliver")
    assert result.exit_code == 0, result.output
    assert "1 reporters told" in result.output, result.output
