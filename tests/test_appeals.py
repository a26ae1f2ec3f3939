"""Appeals (issue #15) end to end, with a real SMTP server on loopback: the lock notice's signed
link, the appeal page without sign-in (CSRF, rate limits, one open appeal, bad links), the reopened
case at the top of the queue, the decision mailed once each way; and the whole path in Chromium."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import psycopg
import pytest

from podmod import store
from podmod.config import load_config
from podmod.notify import links
from podmod.notify.appeals import LINK_MAX_AGE
from tests.diaspora_pod import DiasporaPod, Person
from tests.helpers import intake_all, podmod
from tests.test_notify import PUBLIC_URL, configure, run_deliver
from tests.test_web import (  # noqa: F401  (make_app is a fixture)
    HOSTILE,
    PASSWORD,
    audit_rows,
    csrf,
    html,
    make_app,
    signed_in,
)
from tests.test_web_browser import browser, live_server  # noqa: F401  (fixtures)

NOTIFY = '[notify]\nlocked_accounts = true\n[alerts]\nto = ["team@pod.example"]\n'
STATEMENT = "Placeholder statement: the posts were mine and not spam."
LINK = re.compile(re.escape(PUBLIC_URL) + r"appeal/([A-Za-z0-9._-]+)")


@pytest.fixture(autouse=True)
def notify_config(env, smtp_server) -> None:
    """Mail to the test's SMTP server, locked accounts told, staff mail to team@pod.example;
    written before any app or command of the test reads the configuration."""
    configure(env, smtp_url=smtp_server.url(), extra=NOTIFY)


@pytest.fixture
def visitor(make_app):  # noqa: F811
    """A browser of the app that never signed in (Flask's test client)."""
    return make_app().test_client()


def locked_with_case(pod: DiasporaPod, name: str = "author") -> tuple[Person, int]:
    """A local account reported once and locked with Lock and close: its case is closed."""
    author = pod.person(name)
    post = pod.post(author, "Placeholder text of a reported post.")
    pod.report(pod.person(f"reporter-of-{name}"), "Post", post, "Placeholder reason.")
    intake_all(load_config())
    result = podmod("lock", author.handle, "--close", "--reason", "Placeholder: spam links")
    assert result.exit_code == 0, result.output
    return author, case_of(pod, author)


def case_of(pod: DiasporaPod, person: Person) -> int:
    row = pod.conn.execute(
        "SELECT id FROM podmod.cases WHERE person_id = %s ORDER BY id DESC LIMIT 1", (person.id,)
    ).fetchone()
    return row["id"]


def loud_case(pod: DiasporaPod) -> None:
    """Another open case, lifted by three reporters: an appeal must still come before it."""
    loud = pod.person("loud")
    post = pod.post(loud, "Placeholder text reported three times.")
    for n in range(3):
        pod.report(pod.person(f"loud-reporter{n}"), "Post", post, "Placeholder reason.")
    intake_all(load_config())


def mails_to(smtp_server, person: Person) -> list:
    address = person.handle.replace("@pod.example", "@mail.example")
    return [m for m in smtp_server.messages if m["To"] == address]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def mailed_token(smtp_server, person: Person) -> str:
    """The appeal link's token from the account's lock notice (delivered now)."""
    run_deliver()
    [link] = [LINK.search(text_of(m)) for m in mails_to(smtp_server, person)]
    return link[1]


def appeal(visitor, token: str, statement: str = STATEMENT, **environ: str):
    """Open the appeal page as its visitor would, then send the statement with the form's token."""
    page = visitor.get(f"/appeal/{token}", environ_base=environ)
    assert page.status_code == 200, html(page)
    return visitor.post(
        f"/appeal/{token}",
        data={"csrf_token": csrf(visitor), "statement": statement},
        environ_base=environ,
    )


def appeals(state: psycopg.Connection) -> list[dict]:
    state.rollback()
    rows = state.execute("SELECT * FROM podmod.appeals ORDER BY id").fetchall()
    state.rollback()
    return rows


def appeal_signals(state: psycopg.Connection) -> list[dict]:
    state.rollback()
    rows = state.execute(
        "SELECT * FROM podmod.signals WHERE kind = 'appeal' ORDER BY id"
    ).fetchall()
    state.rollback()
    return rows


def decision_mails(smtp_server, person: Person) -> list:
    """The account's mails but its lock notices (which carry the appeal link)."""
    return [m for m in mails_to(smtp_server, person) if not LINK.search(text_of(m))]


# ---------------------------------------------------------------------------------------------
# The notice


def test_the_lock_notice_carries_a_link_for_that_account_good_for_30_days(state, pod, smtp_server):
    author, _ = locked_with_case(pod)
    token = mailed_token(smtp_server, author)
    [notice] = mails_to(smtp_server, author)
    text = text_of(notice)
    assert "tell the moderators why; it works for 30 days:" in text, text
    assert f"{PUBLIC_URL}appeal/{token}" in notice.get_body(("html",)).get_content()
    assert links.check(state, "appeal", token, max_age=LINK_MAX_AGE) == author.user_id


def test_a_lock_lists_notice_names_the_label_of_the_entry_that_locked(
    env, state, pod, smtp_server, tmp_path
):
    target = pod.person("campaign")
    listed = tmp_path / "core.csv"
    listed.write_text(f"kind,value,label,comment\naccount,{target.handle},Spam,\n")
    lists = f'[[lists]]\nname = "core"\nurl = "{listed.as_uri()}"\npolicy = "lock"\n'
    configure(env, smtp_url=smtp_server.url(), extra=NOTIFY + lists)
    synced = podmod("lists", "sync")
    assert synced.exit_code == 0, synced.output
    run_deliver()
    [notice] = mails_to(smtp_server, target)
    text = text_of(notice)
    assert "It is on the shared blocklist core, which this pod follows." in text
    assert "The list's label for it: spam" in text, text
    assert LINK.search(text)


# ---------------------------------------------------------------------------------------------
# The appeal page


def test_an_appeal_reopens_the_lock_case_at_the_top_of_the_queue(visitor, state, pod, smtp_server):
    author, case_id = locked_with_case(pod)
    loud_case(pod)
    token = mailed_token(smtp_server, author)

    page = visitor.get(f"/appeal/{token}")
    assert page.status_code == 200 and "author@pod.example</strong> is locked" in html(page)
    sent = appeal(visitor, token)
    assert sent.status_code == 302 and sent.location.endswith(f"/appeal/{token}")
    after = html(visitor.get(f"/appeal/{token}"))
    assert "Your appeal was received." in after and "waits for the moderators" in after

    state.rollback()
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert case["status"] == "open" and case["priority"] >= 1000, case
    assert store.list_cases(state, limit=1)[0].id == case_id
    [signal] = appeal_signals(state)
    assert signal["case_id"] == case_id and signal["reason"] == STATEMENT
    [row] = appeals(state)
    assert row["outcome"] is None and row["user_id"] == author.user_id
    shown = podmod("case", "show", str(case_id)).output
    assert "waiting for a decision" in shown and f"statement: {STATEMENT}" in shown, shown
    assert [(a["actor"], a["case_id"]) for a in audit_rows(state, "reopen")] == [
        ("appeal", case_id)
    ]
    assert [a["details"]["appeal"] for a in audit_rows(state, "appeal")] == [row["id"]]
    [event] = state.execute("SELECT * FROM podmod.events WHERE type = 'appeal.received'").fetchall()
    assert event["staff_mail"] and event["case_id"] == case_id

    run_deliver()
    [staff] = [m for m in smtp_server.messages if "appeal" in m["Subject"]]
    assert staff["To"] == "team@pod.example" and "1 appeal" in staff["Subject"]
    staff_text = text_of(staff)
    assert f"{PUBLIC_URL}cases/{case_id}" in staff_text and STATEMENT not in staff_text


def test_a_second_appeal_while_one_waits_adds_nothing(visitor, state, pod, smtp_server):
    author, _ = locked_with_case(pod)
    token = mailed_token(smtp_server, author)
    assert appeal(visitor, token).status_code == 302
    again = appeal(visitor, token, "Placeholder: a second statement.")
    assert again.status_code == 302
    assert "received before and waits" in html(visitor.get(f"/appeal/{token}"))
    assert len(appeals(state)) == 1 and len(appeal_signals(state)) == 1


def test_expired_changed_and_foreign_links_are_refused_and_change_nothing(
    visitor, state, pod, smtp_server, monkeypatch
):
    author, _ = locked_with_case(pod)
    other, _ = locked_with_case(pod, "other")
    token = mailed_token(smtp_server, author)
    with monkeypatch.context() as past:  # a token dated 31 days ago
        then = time.time() - 31 * 86400
        past.setattr("itsdangerous.timed.time", SimpleNamespace(time=lambda: then))
        expired = links.sign(state, "appeal", author.user_id)
    state.commit()
    signature = token.partition(".")[2]  # its date and signature
    others = links.sign(state, "appeal", other.user_id).partition(".")[0]
    changed = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    refused = {
        expired: (410, "more than 30 days old"),
        changed: (404, "not one this pod sent"),
        f"{others}.{signature}": (404, "not one this pod sent"),  # another account's id
        links.sign(state, "opt-out", author.user_id): (404, "not one this pod sent"),
        "x" * 1000: (404, "not one this pod sent"),
    }
    state.commit()
    for bad, (status, words) in refused.items():
        page = visitor.get(f"/appeal/{bad}")
        assert (page.status_code, words in html(page)) == (status, True), html(page)
        sent = visitor.post(
            f"/appeal/{bad}", data={"csrf_token": csrf(visitor), "statement": STATEMENT}
        )
        assert sent.status_code == status
    assert appeals(state) == [] and appeal_signals(state) == []


def test_an_unlocked_accounts_link_says_so_and_takes_no_appeal(visitor, state, pod, smtp_server):
    author, _ = locked_with_case(pod)
    token = mailed_token(smtp_server, author)
    assert podmod("unlock", author.handle, "--reason", "placeholder").exit_code == 0
    page = visitor.get(f"/appeal/{token}")
    assert page.status_code == 200 and "no longer locked" in html(page)
    sent = visitor.post(
        f"/appeal/{token}", data={"csrf_token": csrf(visitor), "statement": STATEMENT}
    )
    assert sent.status_code == 409 and "no longer locked" in html(sent)
    assert appeals(state) == [] and appeal_signals(state) == []


def test_an_appeal_without_the_forms_token_is_refused(visitor, state, pod, smtp_server):
    author, _ = locked_with_case(pod)
    token = mailed_token(smtp_server, author)
    visitor.get(f"/appeal/{token}")
    for form in ({"statement": STATEMENT}, {"statement": STATEMENT, "csrf_token": "forged"}):
        refused = visitor.post(f"/appeal/{token}", data=form)
        assert refused.status_code == 400 and "security token" in html(refused)
        assert STATEMENT in html(refused)  # kept for the visitor to copy
    assert appeals(state) == [] and appeal_signals(state) == []


def test_the_statement_is_required_bounded_stripped_and_shown_escaped(
    visitor, state, pod, smtp_server
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    author, case_id = locked_with_case(pod)
    token = mailed_token(smtp_server, author)
    empty = appeal(visitor, token, " \x07 \n ")
    assert empty.status_code == 400 and "The statement is empty" in html(empty)
    long = appeal(visitor, token, "x" * 5001)
    assert long.status_code == 400 and "shorten it to 5000" in html(long)
    assert appeals(state) == []
    assert appeal(visitor, token, f"{HOSTILE}\x1b[31m Placeholder").status_code == 302
    [signal] = appeal_signals(state)
    assert signal["reason"] == f"{HOSTILE}[31m Placeholder"  # ESC gone, the rest kept as text
    page = html(signed_in(visitor, "podmin").get(f"/cases/{case_id}"))
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "<script>window.__pwned" not in page


def test_appeals_are_rate_limited_per_address_and_per_account(visitor, state, pod, smtp_server):
    author, _ = locked_with_case(pod)
    token = mailed_token(smtp_server, author)
    guesser = {"REMOTE_ADDR": "198.51.100.7"}
    for n in range(10):
        visitor.post(f"/appeal/{n}", data={"csrf_token": csrf(visitor)}, environ_base=guesser)
    limited = appeal(visitor, token, **guesser)
    assert limited.status_code == 429 and "Too many appeals" in html(limited)
    assert appeals(state) == []
    for n in range(5):  # one appeal, then four answered "waits": five for this account
        assert appeal(visitor, token, REMOTE_ADDR=f"203.0.113.{n}").status_code == 302
    limited = appeal(visitor, token, REMOTE_ADDR="192.0.2.1")
    assert limited.status_code == 429
    assert len(appeals(state)) == 1


def test_the_appeal_and_opt_out_pages_are_the_only_ones_open_without_sign_in(visitor):
    """Every GET route of the app but sign-in, health, static files and the two pages mailed links
    open (an appeal, a reporter's opt-out) sends a visitor to sign in; a new route that forgets
    @login_required fails here."""
    public = {"auth.login", "auth.code", "static", "health.healthz", "health.prometheus"}
    app = visitor.application
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in public:
            continue
        url = rule.build({name: 1 for name in rule.arguments}, append_unknown=False)[1]
        answer = visitor.get(url)
        if rule.endpoint.startswith(("appeal.", "opt_out.")):
            assert answer.status_code in (400, 404), (rule.endpoint, answer.status_code)
            assert "not one this pod sent" in html(answer), (rule.endpoint, html(answer))
        else:
            assert answer.status_code == 302, (rule.endpoint, answer.status_code)
            assert answer.location.startswith("/login"), (rule.endpoint, answer.location)


def test_webhooks_hear_of_the_appeal_and_its_decision_never_its_statement(
    env,
    make_app,  # noqa: F811
    state,
    pod,
    smtp_server,
    receiver,
):
    hooks = [(receiver.url, ["appeal.received", "appeal.decided"])]
    configure(env, smtp_url=smtp_server.url(), hooks=hooks, extra=NOTIFY)
    author, case_id = locked_with_case(pod)
    assert appeal(make_app().test_client(), mailed_token(smtp_server, author)).status_code == 302
    assert podmod("unlock", author.handle, "--reason", "placeholder").exit_code == 0
    run_deliver()
    bodies = [delivery.json for delivery in receiver.deliveries]
    assert [(b["type"], b["case"]["id"], b["details"]) for b in bodies] == [
        ("appeal.received", case_id, {}),
        ("appeal.decided", case_id, {"outcome": "unlocked"}),
    ]
    assert all(delivery.signed for delivery in receiver.deliveries)
    assert not any(STATEMENT.encode() in delivery.body for delivery in receiver.deliveries)


# ---------------------------------------------------------------------------------------------
# The decision


def test_an_upheld_appeal_is_mailed_once(visitor, state, pod, smtp_server):
    author, case_id = locked_with_case(pod)
    assert appeal(visitor, mailed_token(smtp_server, author)).status_code == 302
    close = ("lock", author.handle, "--close", "--reason", "placeholder")  # close as locked
    assert podmod(*close).exit_code == 0
    state.rollback()
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert case["status"] == "resolved" and case["priority"] < 1000
    assert podmod("case", "reopen", str(case_id), "--reason", "placeholder").exit_code == 0
    assert podmod(*close).exit_code == 0  # a second decision on the same appeal
    run_deliver()
    run_deliver()
    [decision] = decision_mails(smtp_server, author)
    assert "stays locked" in decision["Subject"]
    assert "decided that your account author@pod.example on pod.example stays locked" in (
        text_of(decision)
    )
    [row] = appeals(state)
    assert row["outcome"] == "upheld" and row["decision_event_id"] is not None
    assert len(audit_rows(state, "appeal_decided")) == 1


def test_an_unlocked_appeal_is_mailed_once_though_the_account_is_no_longer_locked(
    visitor, state, pod, smtp_server
):
    author, _ = locked_with_case(pod)
    pod.conn.execute("UPDATE users SET language = 'de' WHERE id = %s", (author.user_id,))
    assert appeal(visitor, mailed_token(smtp_server, author)).status_code == 302
    assert podmod("unlock", author.handle, "--reason", "placeholder").exit_code == 0
    assert podmod("lock", author.handle, "--reason", "placeholder").exit_code == 0
    assert podmod("unlock", author.handle, "--reason", "placeholder").exit_code == 0
    run_deliver()
    [decision] = decision_mails(smtp_server, author)
    assert decision["Subject"] == "Dein Konto author@pod.example ist entsperrt"
    assert "Du kannst dich wieder anmelden." in text_of(decision)
    assert [row["outcome"] for row in appeals(state)] == ["unlocked"]


def test_an_appeal_of_an_account_unlocked_in_diaspora_meanwhile_is_decided_unlocked(
    visitor, state, pod, smtp_server
):
    author, case_id = locked_with_case(pod)
    assert appeal(visitor, mailed_token(smtp_server, author)).status_code == 302
    # A podmin unlocks the account in diaspora*'s own admin pages, then a moderator closes the
    # case in podmod: the mail must not say that the account stays locked.
    pod.conn.execute("UPDATE users SET locked_at = NULL WHERE id = %s", (author.user_id,))
    assert podmod("case", "dismiss", str(case_id), "--reason", "placeholder").exit_code == 0
    run_deliver()
    [decision] = decision_mails(smtp_server, author)
    assert "unlocked" in decision["Subject"], decision["Subject"]
    assert [row["outcome"] for row in appeals(state)] == ["unlocked"]


def test_an_appealed_case_waits_for_a_moderator_when_nothing_else_is_pending(
    visitor, state, pod, smtp_server
):
    author, case_id = locked_with_case(pod)
    assert appeal(visitor, mailed_token(smtp_server, author)).status_code == 302
    state.rollback()
    assert store.resolve_cases_without_pending(state, [case_id]) == 0
    state.rollback()


# ---------------------------------------------------------------------------------------------
# In Chromium


def test_an_appeal_in_chromium_from_the_mailed_link_to_the_reopened_case(
    browser,  # noqa: F811
    live_server,  # noqa: F811
    pod,
    state,
    smtp_server,
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    author, case_id = locked_with_case(pod)
    loud_case(pod)
    run_deliver()
    [notice] = mails_to(smtp_server, author)
    link = LINK.search(text_of(notice))[0].replace(PUBLIC_URL, live_server + "/")

    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone, where mail is read
    page.goto(link)
    assert page.url == link  # no sign-in asked
    label = page.locator("label[for=statement]").bounding_box()
    box = page.locator("#statement").bounding_box()
    form = page.locator(".appeal-page form").bounding_box()
    assert label["y"] + label["height"] <= box["y"], (label, box)  # the label stands above the box
    assert box["width"] >= 0.95 * form["width"], (box, form)  # and the box takes the whole width
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Your statement").fill(STATEMENT)
    page.get_by_role("button", name="Send appeal").click()
    page.wait_for_url(link)
    assert "Your appeal was received." in page.locator(".flash").inner_text()

    page.goto(live_server + "/login")
    page.get_by_label("Username", exact=True).fill("podmin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/")
    top = page.locator("table.queue tbody tr").first
    assert top.locator("a").inner_text() == "author@pod.example"
    assert top.locator(".badge.appealed").inner_text() == "appealed"
    top.locator("a").click()
    page.wait_for_url(f"{live_server}/cases/{case_id}")
    assert page.locator("section.appeal .statement").inner_text() == STATEMENT
    assert "waiting for a decision" in page.locator("section.appeal h2").inner_text()

    page.get_by_role("button", name="Close as locked").click()
    page.wait_for_load_state()
    assert "is closed: locked" in page.locator(".flash").first.inner_text()
    run_deliver()
    [decision] = decision_mails(smtp_server, author)
    assert "stays locked" in decision["Subject"]
