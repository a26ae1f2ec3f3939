"""The admin web UI through Flask's test client: sign-in with pod accounts, the queue, the case page
and its actions (through the one action path), the lists, audit and dashboard pages, and the
defences (CSRF, Origin, CSP, cookies, escaping, redirects, rate limits)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from podmod import queue, store
from podmod.config import Config, load_config
from podmod.web import create_app
from podmod.web.queue import Cursor
from tests.diaspora_pod import DiasporaPod, Person, devise_hash
from tests.helpers import cases_json, intake_all, podmod

PASSWORD = "placeholder password 1"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture
def make_app(
    env: dict[str, str], state: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Flask]]:
    """Build the app from the test's configuration, with PODMOD_* overrides."""
    apps: list[Flask] = []

    def build(**overrides: str) -> Flask:
        for name, value in overrides.items():
            monkeypatch.setenv(f"PODMOD_{name.upper()}", value)
        app = create_app(load_config())
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["podmod"].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin(pod: DiasporaPod) -> Person:
    return pod.person("podmin", password=PASSWORD, roles=("admin",))


@pytest.fixture
def moderator(pod: DiasporaPod) -> Person:
    return pod.person("moddy", password=PASSWORD, roles=("moderator",))


def csrf(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        token = session.get("csrf")
    if token is None:
        client.get("/login")
        with client.session_transaction() as session:
            token = session["csrf"]
    return token


def login(client: FlaskClient, username: str, password: str = PASSWORD, **extra: str) -> Any:
    token = csrf(client)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token, **extra}
    )


def signed_in(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    response = login(client, username, password)
    assert response.status_code == 302, response.text
    return client


def post(client: FlaskClient, url: str, **data: str) -> Any:
    return client.post(url, data={"csrf_token": csrf(client), **data})


def html(response: Any) -> str:
    return response.get_data(as_text=True)


def report(
    pod: DiasporaPod,
    author: Person,
    text: str = "A placeholder post.",
    reason: str = "Placeholder reason.",
    reporters: int = 1,
) -> int:
    post_id = pod.post(author, text)
    for n in range(reporters):
        reporter = pod.person(f"reporter{author.id}x{n}")
        pod.report(reporter, "Post", post_id, reason)
    return post_id


def case_id_of(state: psycopg.Connection, handle: str) -> int:
    state.rollback()
    return state.execute(
        "SELECT id FROM podmod.cases WHERE account = %s ORDER BY id DESC LIMIT 1", (handle,)
    ).fetchone()["id"]


def locked_at(pod: DiasporaPod, person: Person) -> Any:
    return pod.conn.execute(
        "SELECT locked_at FROM users WHERE id = %s", (person.user_id,)
    ).fetchone()["locked_at"]


def audit_rows(state: psycopg.Connection, action: str | None = None) -> list[dict[str, Any]]:
    state.rollback()
    return state.execute(
        "SELECT * FROM podmod.audit WHERE %s::text IS NULL OR action = %s ORDER BY id",
        (action, action),
    ).fetchall()


def decisions(state: psycopg.Connection) -> list[dict[str, Any]]:
    state.rollback()
    return state.execute("SELECT * FROM podmod.decisions ORDER BY id").fetchall()


# ---------------------------------------------------------------------------------------------
# Sign-in


def test_the_login_form_has_username_password_and_sign_in(client):
    page = html(client.get("/login"))
    assert re.search(r'<label for="username">Username</label>', page)
    assert re.search(r'<label for="password">Password</label>', page)
    assert re.search(r'<button type="submit">Sign in</button>', page)


def test_pages_need_sign_in_and_come_back_after_it(client, admin):
    response = client.get("/audit?action=lock")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    after = login(client, "podmin", next="/audit?action=lock")
    assert after.status_code == 302 and after.location == "/audit?action=lock"


def test_an_admin_signs_in_with_the_pod_password_and_it_is_audited(client, admin, state):
    response = login(client, "PodMin")  # usernames are compared lower-case, as diaspora* does
    assert response.status_code == 302 and response.location == "/"
    page = html(client.get("/"))
    assert "podmin@pod.example (admin)" in page
    [row] = audit_rows(state, "sign_in")
    assert row["actor"] == "podmin@pod.example" and row["source"] == "web"
    assert row["details"]["ip"] == "127.0.0.1"


def test_a_wrong_password_is_refused_and_audited(client, admin, state):
    response = login(client, "podmin", "not the password")
    assert response.status_code == 401
    assert "Wrong username or password." in html(response)
    assert client.get("/").status_code == 302
    [row] = audit_rows(state, "sign_in_failed")
    assert row["actor"] == 'typed: "podmin"' and row["reason"] == "wrong password"
    assert row["details"]["ip"] == "127.0.0.1"


def test_an_unknown_username_gets_the_same_answer(client, state):
    response = login(client, "nobody")
    assert response.status_code == 401 and "Wrong username or password." in html(response)
    assert audit_rows(state, "sign_in_failed")[0]["reason"] == "no such account"


def test_an_account_without_admin_or_moderator_role_cannot_sign_in(client, pod, state):
    pod.person("ordinary", password=PASSWORD)
    pod.person("spotlit", password=PASSWORD, roles=("spotlight",))
    for username in ("ordinary", "spotlit"):
        response = login(client, username)
        assert response.status_code == 401 and "Wrong username or password." in html(response)
    assert client.get("/").status_code == 302
    assert [row["reason"] for row in audit_rows(state, "sign_in_failed")] == [
        "Only the pod's admins and moderators can sign in here."
    ] * 2


def test_a_locked_staff_account_cannot_sign_in_and_is_not_told_its_password_was_right(
    client, pod, admin, state
):
    pod.conn.execute("UPDATE users SET locked_at = now() WHERE id = %s", (admin.user_id,))
    right = login(client, "podmin")
    wrong = login(client, "podmin", "not the password")
    assert right.status_code == wrong.status_code == 401
    assert "Wrong username or password." in html(right)
    assert "locked" not in html(right)
    assert client.get("/").status_code == 302
    reasons = [row["reason"] for row in audit_rows(state, "sign_in_failed")]
    assert reasons == ["This account is locked.", "wrong password"]  # the log keeps the truth


def test_a_closed_staff_account_cannot_sign_in(client, pod, admin, state):
    pod.conn.execute("UPDATE people SET closed_account = true WHERE id = %s", (admin.id,))
    response = login(client, "podmin")
    assert response.status_code == 401 and "Wrong username or password." in html(response)
    assert audit_rows(state, "sign_in_failed")[0]["reason"] == "This account is closed."


def test_a_moderator_signs_in(client, moderator):
    signed_in(client, "moddy")
    assert "moddy@pod.example (moderator)" in html(client.get("/"))


def test_only_the_first_72_bytes_of_password_and_pepper_count_as_in_devise(client, pod):
    long_password = "p" * 70 + "-tail-that-bcrypt-never-reads"
    pod.person("longpw", password=long_password, roles=("admin",))
    assert login(client, "longpw", "p" * 70 + "-t").status_code == 302  # 72 bytes alike
    client.post("/logout", data={"csrf_token": csrf(client)})
    assert login(client, "longpw", "p" * 70 + "-x").status_code == 401  # byte 72 differs
    assert login(client, "longpw", "p" * 70).status_code == 401  # pepper's first bytes differ
    assert login(client, "longpw", long_password).status_code == 302


def test_a_password_with_multibyte_characters_is_cut_by_bytes(client, pod):
    password = "é" * 40  # 80 bytes in UTF-8
    pod.person("accents", password=password, roles=("admin",))
    assert login(client, "accents", "é" * 36 + "x").status_code == 302


def test_a_password_with_a_nul_byte_is_just_wrong(client, admin):
    assert login(client, "podmin", "bad\x00password").status_code == 401


def totp_user(pod: DiasporaPod, username: str = "twofactor") -> tuple[Person, pyotp.TOTP]:
    person = pod.person(username, password=PASSWORD, roles=("admin",))
    secret = pyotp.random_base32()
    pod.conn.execute(
        "UPDATE users SET otp_required_for_login = true, plain_otp_secret = %s WHERE id = %s",
        (secret, person.user_id),
    )
    return person, pyotp.TOTP(secret)


def test_two_factor_accounts_are_asked_for_the_code(client, pod, state):
    _, totp = totp_user(pod)
    first = login(client, "twofactor")
    assert first.status_code == 302 and first.location == "/login/code"
    assert client.get("/").status_code == 302  # not signed in after the password alone
    page = html(client.get("/login/code"))
    assert '<label for="code">Code</label>' in page and ">Sign in</button>" in page

    wrong = post(client, "/login/code", code="000000" if totp.now() != "000000" else "111111")
    assert wrong.status_code == 401 and "Wrong code." in html(wrong)
    right = post(client, "/login/code", code=totp.now())
    assert right.status_code == 302 and right.location == "/"
    assert client.get("/").status_code == 200
    assert [r["reason"] for r in audit_rows(state) if r["action"].startswith("sign_in")] == [
        "wrong code",
        "signed in",
    ]


def test_a_replayed_code_is_refused(app, pod):
    _, totp = totp_user(pod)
    code = totp.now()
    first = app.test_client()
    login(first, "twofactor")
    assert post(first, "/login/code", code=code).status_code == 302
    second = app.test_client()  # someone who saw the code, within the same 30 s
    login(second, "twofactor")
    replay = post(second, "/login/code", code=code)
    assert replay.status_code == 401 and "used already" in html(replay)
    assert second.get("/").status_code == 302


def test_a_code_diaspora_already_consumed_is_refused(client, pod):
    person, totp = totp_user(pod)
    step = int(time.time() // 30)
    pod.conn.execute(
        "UPDATE users SET consumed_timestep = %s WHERE id = %s", (step + 1, person.user_id)
    )
    login(client, "twofactor")
    assert post(client, "/login/code", code=totp.now()).status_code == 401


def test_the_code_step_needs_the_password_first(client, pod):
    totp_user(pod)
    response = client.get("/login/code")
    assert response.status_code == 302 and response.location == "/login"


def test_failed_sign_ins_are_rate_limited_per_account(client, admin, state):
    for _ in range(5):
        assert login(client, "podmin", "wrong").status_code == 401
    limited = login(client, "podmin")  # even the right password, now
    assert limited.status_code == 429 and "Too many failed sign-ins" in html(limited)
    assert audit_rows(state, "sign_in_failed")[-1]["reason"] == "too many failed sign-ins"


def test_failed_sign_ins_are_rate_limited_per_ip(make_app, admin):
    client = make_app(web_login_max_failures_per_ip="3").test_client()
    for n in range(3):
        assert login(client, f"guess{n}", "wrong").status_code == 401
    assert login(client, "podmin").status_code == 429


def test_a_strangers_failures_do_not_lock_out_a_browser_that_signed_in_before(app, admin, state):
    browser = signed_in(app.test_client(), "podmin")
    assert browser.get_cookie("podmod_device") is not None
    post(browser, "/logout")
    stranger = app.test_client()
    for _ in range(10):
        login(stranger, "podmin", "a guess")
    assert login(stranger, "podmin").status_code == 429  # unknown browsers are locked out
    assert login(browser, "podmin").status_code == 302  # the podmin's own is not


def test_a_device_cookie_counts_its_own_failures_and_at_the_limit_is_trusted_no_more(
    app, admin, moderator
):
    browser = signed_in(app.test_client(), "podmin")
    post(browser, "/logout")
    for _ in range(5):
        assert login(browser, "podmin", "mistyped").status_code == 401
    other = app.test_client()
    assert login(other, "podmin").status_code == 302  # the account is not locked by them
    post(other, "/logout")
    for _ in range(5):
        assert login(browser, "podmin", "mistyped").status_code == 401  # now as unknown
    assert login(browser, "podmin").status_code == 429
    moddy = signed_in(app.test_client(), "moddy")  # a device cookie for another account
    post(moddy, "/logout")
    assert login(moddy, "podmin").status_code == 429


def test_a_forged_device_cookie_is_an_unknown_browser(app, admin):
    for _ in range(5):
        login(app.test_client(), "podmin", "a guess")
    forger = app.test_client()
    forger.set_cookie("podmod_device", '["podmin","nonce"].forged.signature')
    assert login(forger, "podmin").status_code == 429


def test_parallel_wrong_guesses_get_no_more_password_checks_than_the_limit(app, pod, state):
    pod.conn.execute(
        "UPDATE users SET encrypted_password = %s WHERE id = %s",
        (devise_hash(PASSWORD, cost=11), pod.person("podmin", roles=("admin",)).user_id),
    )  # a slow hash, as on a real pod: many guesses would be checked at once if they could
    guessers = 40
    clients = [app.test_client() for _ in range(guessers)]
    tokens = [csrf(c) for c in clients]
    barrier = threading.Barrier(guessers)
    statuses: list[int] = []

    def guess(n: int) -> None:
        barrier.wait(timeout=60)
        form = {"username": "podmin", "password": f"guess {n}", "csrf_token": tokens[n]}
        statuses.append(clients[n].post("/login", data=form).status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guessers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    checked = [r for r in audit_rows(state, "sign_in_failed") if r["reason"] == "wrong password"]
    assert len(statuses) == guessers, statuses
    assert len(checked) <= 5 and statuses.count(401) == len(checked), sorted(statuses)
    assert statuses.count(429) == guessers - len(checked)


def test_ipv6_addresses_are_counted_per_64(make_app, admin):
    client = make_app(web_login_max_failures_per_ip="3").test_client()

    def attempt(ip: str, username: str, password: str) -> int:
        form = {"username": username, "password": password, "csrf_token": csrf(client)}
        return client.post("/login", data=form, environ_base={"REMOTE_ADDR": ip}).status_code

    for n, ip in enumerate(["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]):
        assert attempt(ip, f"guess{n}", "wrong") == 401
    assert attempt("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "podmin", PASSWORD) == 429
    assert attempt("2001:db8:1:3::1", "podmin", PASSWORD) == 302  # the next /64 is another


def test_a_rate_limited_name_is_audited_once_per_window_as_typed(app, admin, moderator, state):
    client = app.test_client()
    for _ in range(5):
        login(client, "PodMin ", "wrong")
    for _ in range(30):
        assert login(client, "PodMin ", "wrong").status_code == 429
    limited = [r for r in audit_rows(state, "sign_in_failed") if r["reason"].startswith("too")]
    assert [r["actor"] for r in limited] == ['typed: "PodMin "']
    page = html(signed_in(app.test_client(), "moddy").get("/audit?action=sign_in_failed"))
    assert page.count("<td>typed: &#34;PodMin &#34;</td>") == 6
    assert "<td>podmin@pod.example</td>" not in page


def test_a_success_resets_the_account_counter(client, admin):
    for _ in range(4):
        login(client, "podmin", "wrong")
    signed_in(client, "podmin")
    client.post("/logout", data={"csrf_token": csrf(client)})
    for _ in range(4):
        assert login(client, "podmin", "wrong").status_code == 401
    assert login(client, "podmin").status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/login",
        "/%0a//evil.example",
    ],
)
def test_sign_in_never_redirects_off_the_app(client, admin, target):
    response = login(client, "podmin", next=target)
    assert response.status_code == 302
    assert response.location in ("/", "/%0a//evil.example")
    assert "evil.example" not in response.location or response.location.startswith("/%0a")


def test_sign_in_starts_a_new_session(client, admin):
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
        before = session["csrf"]
    signed_in(client, "podmin")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["csrf"] != before
        assert session["sid"]


def test_sign_out_ends_the_session_for_good(client, admin):
    signed_in(client, "podmin")
    cookie = client.get_cookie("podmod_session").value
    assert post(client, "/logout").status_code == 302
    assert client.get("/").status_code == 302
    client.set_cookie("podmod_session", cookie)  # the old cookie, replayed
    assert client.get("/").status_code == 302


def test_sessions_expire(client, admin, state):
    signed_in(client, "podmin")
    state.execute("UPDATE podmod.web_sessions SET created_at = now() - interval '9 hours'")
    state.commit()  # web.session_minutes is 480
    response = client.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_a_cookie_re_signed_with_another_uid_is_still_its_own_users(app, admin, moderator):
    client = signed_in(app.test_client(), "moddy")
    serializer = app.session_interface.get_signing_serializer(app)
    forged = serializer.loads(client.get_cookie("podmod_session").value)
    forged["uid"] = admin.user_id  # the app's own secret, another user's id
    client.set_cookie("podmod_session", serializer.dumps(forged))
    page = html(client.get("/"))
    assert "moddy@pod.example (moderator)" in page and "podmin@pod.example" not in page


def test_a_password_changed_in_diaspora_ends_the_session(client, pod, admin):
    signed_in(client, "podmin")
    assert client.get("/").status_code == 200
    pod.conn.execute(
        "UPDATE users SET encrypted_password = %s WHERE id = %s",
        (devise_hash("placeholder password 2"), admin.user_id),
    )
    assert client.get("/").status_code == 302
    assert "The password of this account was changed." in html(client.get("/login"))


def test_emptying_redis_signs_nobody_out(client, admin, config):
    signed_in(client, "podmin")
    queue.redis_connection(config).flushdb()
    assert client.get("/").status_code == 200


def test_a_staff_member_locked_meanwhile_is_signed_out_on_the_next_click(client, pod, admin):
    signed_in(client, "podmin")
    pod.conn.execute("UPDATE users SET locked_at = now() WHERE id = %s", (admin.user_id,))
    assert client.get("/").status_code == 302
    assert "You were signed out: This account is locked." in html(client.get("/login"))


# ---------------------------------------------------------------------------------------------
# The queue


def test_the_queue_lists_open_cases_in_priority_order_with_their_facts(
    client, pod, config, admin, state
):
    busy = pod.person("busy")
    quiet = pod.person("quiet", "far.example")
    report(pod, busy, reporters=3)
    report(pod, quiet)
    intake_all(config)
    pod.conn.execute("UPDATE users SET locked_at = now() WHERE id = %s", (busy.user_id,))
    signed_in(client, "podmin")

    page = html(client.get("/"))

    assert page.index("busy@pod.example") < page.index("quiet@far.example")
    assert "2 open cases" in page
    busy_row = page[page.index("busy@pod.example") : page.index("quiet@far.example")]
    assert "local" in busy_row and "locked" in busy_row
    quiet_row = page[page.index("quiet@far.example") :]
    assert "remote" in quiet_row and "far.example" in quiet_row


def test_queue_filters_and_search(client, pod, config, admin, state):
    for name, host in (
        ("alpha", "pod.example"),
        ("alpine", "far.example"),
        ("beta", "far.example"),
    ):
        report(pod, pod.person(name, host))
    intake_all(config)
    signed_in(client, "podmin")

    def accounts(query: str) -> list[str]:
        return re.findall(r'/cases/\d+">([^<]+)</a>', html(client.get("/?" + query)))

    assert sorted(accounts("where=local")) == ["alpha@pod.example"]
    assert sorted(accounts("where=remote")) == ["alpine@far.example", "beta@far.example"]
    assert sorted(accounts("q=alp")) == ["alpha@pod.example", "alpine@far.example"]
    assert accounts("q=%40alpine%40far") == ["alpine@far.example"]
    assert accounts("q=a%25") == []  # a LIKE wildcard is a plain character
    assert accounts("listed=1") == []
    assert accounts("status=resolved") == []
    assert client.get("/?status=bogus").status_code == 400


def make_cases(state: psycopg.Connection, count: int) -> None:
    """Cases straight in the store, with ties in priority and in time, and some without signals."""
    state.rollback()
    state.execute(
        "INSERT INTO podmod.cases (subject, person_id, account, local, priority, last_signal_at,"
        " status)"
        " SELECT 'person:' || n, n, 'acct' || n || '@far.example', n %% 3 = 0, n %% 4,"
        " CASE WHEN n %% 5 = 0 THEN NULL ELSE now() - (n %% 3) * interval '1 hour' END,"
        " CASE WHEN n %% 7 = 0 THEN 'resolved' ELSE 'open' END"
        " FROM generate_series(1, %s) n",
        (count,),
    )
    state.commit()


@pytest.mark.parametrize("query", ["", "where=local", "status=all", "where=remote&status=all"])
def test_keyset_pages_give_every_case_exactly_once_in_queue_order(make_app, admin, state, query):
    make_cases(state, 47)
    client = signed_in(make_app(web_page_size="5").test_client(), "podmin")
    seen: list[int] = []
    url: str | None = "/?" + query
    pages = 0
    while url:
        page = html(client.get(url))
        seen += [int(n) for n in re.findall(r'href="/cases/(\d+)"', page)]
        found = re.search(r'href="([^"]+)" rel="next"', page)
        url = found[1].replace("&amp;", "&") if found else None
        pages += 1
        assert pages < 30
    status = "all" if "status=all" in query else "open"
    expected = [
        c
        for c in store.list_cases(
            state, status=None if status == "all" else status, with_signals=False
        )
    ]
    if "where=local" in query:
        expected = [c for c in expected if c.local]
    if "where=remote" in query:
        expected = [c for c in expected if not c.local]
    assert seen == [c.id for c in expected]
    assert len(set(seen)) == len(seen)


def test_previous_page_links_walk_back_through_the_same_pages_with_the_count_on_each(
    make_app, admin, state
):
    make_cases(state, 23)
    client = signed_in(make_app(web_page_size="5").test_client(), "podmin")
    open_cases = state.execute(
        "SELECT count(*) AS n FROM podmod.cases WHERE status = 'open'"
    ).fetchone()["n"]

    def walk(url: str, rel: str) -> list[list[int]]:
        pages = []
        while url:
            page = html(client.get(url))
            assert f"{open_cases} open cases" in page, url
            pages.append([int(n) for n in re.findall(r'href="/cases/(\d+)"', page)])
            found = re.search(rf'href="([^"]+)" rel="{rel}"', page)
            url = found[1].replace("&amp;", "&") if found else None
            assert len(pages) < 20
        return pages

    forward = walk("/", "next")
    assert len(forward) == 4 and sum(map(len, forward)) == open_cases
    url = "/"
    for _ in range(len(forward) - 1):  # to the last page, then back from there
        next_link = re.search(r'href="([^"]+)" rel="next"', html(client.get(url)))
        url = next_link[1].replace("&amp;", "&")
    assert walk(url, "prev") == list(reversed(forward))
    assert 'rel="prev"' not in html(client.get("/"))


def test_handle_search_finds_any_part_of_a_handle_and_a_whole_pod(client, pod, config, admin):
    for name, host in (
        ("alpha", "pod.example"),
        ("alpine", "far.example"),
        ("beta", "far.example"),
    ):
        report(pod, pod.person(name, host))
    intake_all(config)
    signed_in(client, "podmin")

    def accounts(query: str) -> list[str]:
        return sorted(re.findall(r'/cases/\d+">([^<]+)</a>', html(client.get("/?" + query))))

    assert accounts("q=pine") == ["alpine@far.example"]
    assert accounts("q=%40far.example") == ["alpine@far.example", "beta@far.example"]
    assert accounts("q=ETA%40FAR") == ["beta@far.example"]
    assert accounts("q=_") == [] and accounts("q=%5C") == []
    assert "2 open cases that match" in html(client.get("/?q=%40far.example"))


def test_a_search_for_a_profiles_or_posts_address_finds_the_account_it_shows(
    client, pod, config, admin
):
    beta = pod.person("beta", "far.example")
    report(pod, beta)
    report(pod, pod.person("alphabeta", "far.example.other"))
    intake_all(config)
    signed_in(client, "podmin")
    guid = pod.conn.execute("SELECT guid FROM people WHERE id = %s", (beta.id,)).fetchone()["guid"]
    post_guid = pod.conn.execute(
        "SELECT guid FROM posts WHERE id = %s", (pod.post(beta),)
    ).fetchone()["guid"]

    def accounts(query: str) -> list[str]:
        return sorted(re.findall(r'/cases/\d+">([^<]+)</a>', html(client.get("/?q=" + query))))

    for address in (
        f"https://pod.example/people/{guid}",
        f"https://pod.example/posts/{post_guid}",
        "https://far.example/u/beta",
        "acct:beta@far.example",
    ):
        assert accounts(quote(address, safe="")) == ["beta@far.example"], address
    page = html(client.get("/?q=" + quote("https://pod.example/people/unknown", safe="")))
    assert "This pod knows no account whose guid is unknown" in page
    assert "No cases whose handle holds" in page


def test_a_damaged_page_link_is_a_400_page(client, admin):
    signed_in(client, "podmin")
    for after in ("x", "1.2", "1.99999999999999999999.3", "1.n.99999999999999999999"):
        response = client.get(f"/?after={after}")
        assert response.status_code == 400 and "damaged" in html(response)
    assert Cursor.decode(Cursor(3, None, 9).encode()) == Cursor(3, None, 9)


def test_the_queue_uses_the_keyset_index(state):
    make_cases(state, 5000)
    state.execute("ANALYZE podmod.cases")
    plan = "\n".join(
        row["QUERY PLAN"]
        for row in state.execute(
            "EXPLAIN SELECT id FROM podmod.cases WHERE status = 'open' AND"
            " (priority, coalesce(last_signal_at, '-infinity'::timestamptz), id) < (2, now(), 9)"
            " ORDER BY priority DESC, coalesce(last_signal_at, '-infinity'::timestamptz) DESC,"
            " id DESC LIMIT 51"
        )
    )
    state.rollback()
    assert "Index Scan Backward using cases_keyset on cases" in plan, plan
    assert "Index Cond: ((status = 'open'::text) AND (ROW(" in plan and "Sort" not in plan, plan


# ---------------------------------------------------------------------------------------------
# The case page and its actions


@pytest.fixture
def local_case(pod: DiasporaPod, config: Config, state: psycopg.Connection) -> tuple[Person, int]:
    author = pod.person("spammer", full_name="Placeholder Name")
    other = pod.person("friend1")
    pod.conn.execute(
        "INSERT INTO contacts (user_id, person_id, created_at, updated_at, sharing, receiving)"
        " VALUES (%s, %s, now(), now(), true, true)",
        (other.user_id, author.id),
    )
    report(pod, author, "A placeholder post about widgets.", "Placeholder: spam", reporters=2)
    pod.comment(author, pod.post(other), "A placeholder comment.")
    intake_all(config)
    return author, case_id_of(state, "spammer@pod.example")


def test_the_case_page_shows_account_signals_content_and_history(client, admin, local_case):
    _, case_id = local_case
    signed_in(client, "podmin")
    page = html(client.get(f"/cases/{case_id}"))
    assert "spammer@pod.example" in page and "Placeholder Name" in page
    assert "1 local users have this account as a contact" in page
    assert page.count("Placeholder: spam") == 2  # both reports, with their reasons
    assert "A placeholder post about widgets." in page
    # (the reporter is named as such: "of a post by reporter…" would read as the post's author)
    reporter = r"<strong>Report</strong> by <strong><bdi>reporter\w+@pod\.example</bdi></strong>"
    assert re.search(reporter + r"\s+of a post, ", page), page
    assert "A placeholder comment." in page  # recent comments from the pod
    assert ">Lock account</button>" in page and ">Mark reviewed</button>" in page
    assert ">Dismiss</button>" in page and "No decision yet." in page


def test_locking_from_the_case_page_sets_locked_at_and_logs_it(
    client, pod, admin, local_case, state
):
    author, case_id = local_case
    signed_in(client, "podmin")
    response = post(client, f"/cases/{case_id}/lock", reason="placeholder spam")
    assert response.status_code == 302 and response.location == f"/cases/{case_id}"
    assert locked_at(pod, author) is not None
    [decision] = decisions(state)
    assert decision["action"] == "lock" and decision["actor"] == "podmin@pod.example"
    assert decision["source"] == "web" and decision["case_id"] == case_id
    assert decision["reason"] == "placeholder spam"
    [audit] = audit_rows(state, "lock")
    assert audit["details"]["ip"] == "127.0.0.1" and audit["account"] == "spammer@pod.example"
    page = html(client.get(f"/cases/{case_id}"))
    assert "spammer@pod.example is now locked." in page
    assert ">Unlock account</button>" in page and ">Lock account</button>" not in page


def test_a_second_lock_click_says_already_locked(client, pod, admin, local_case, state):
    _, case_id = local_case
    signed_in(client, "podmin")
    post(client, f"/cases/{case_id}/lock")
    post(client, f"/cases/{case_id}/lock")
    assert "spammer@pod.example was already locked." in html(client.get(f"/cases/{case_id}"))
    assert len(decisions(state)) == 1


def test_two_admins_clicking_lock_at_once_give_one_lock(app, pod, local_case, state):
    _, case_id = local_case
    clients = []
    for name in ("admin1", "admin2", "admin3"):
        pod.person(name, password=PASSWORD, roles=("admin",))
        clients.append(signed_in(app.test_client(), name))
    barrier = threading.Barrier(len(clients))
    messages: list[str] = []

    def click(client: FlaskClient) -> None:
        token = csrf(client)
        barrier.wait()
        client.post(f"/cases/{case_id}/lock", data={"csrf_token": token})
        messages.append(
            re.search(
                r'class="flash \w+" role="status">([^<]+)<', html(client.get(f"/cases/{case_id}"))
            )[1]
        )

    threads = [threading.Thread(target=click, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (
        sorted(messages)
        == ["spammer@pod.example is now locked."] + ["spammer@pod.example was already locked."] * 2
    )
    assert [d["action"] for d in decisions(state)] == ["lock"]


def test_unlock_from_the_case_page(client, pod, admin, local_case, state):
    author, case_id = local_case
    signed_in(client, "podmin")
    post(client, f"/cases/{case_id}/lock")
    post(client, f"/cases/{case_id}/unlock", reason="placeholder: appeal accepted")
    assert locked_at(pod, author) is None
    assert [d["action"] for d in decisions(state)] == ["lock", "unlock"]
    assert audit_rows(state, "unlock")[0]["details"]["ip"] == "127.0.0.1"


def test_a_moderator_cannot_lock_but_can_mark_reviewed(client, pod, moderator, local_case, state):
    author, case_id = local_case
    signed_in(client, "moddy")
    page = html(client.get(f"/cases/{case_id}"))
    assert ">Lock account</button>" not in page and "Only a pod admin can lock" in page
    assert "<strong>Unlock account</strong> here" not in page and "by a pod admin here" in page
    refused = post(client, f"/cases/{case_id}/lock")
    assert refused.status_code == 403 and "web.lock_roles" in html(refused)
    assert post(client, f"/cases/{case_id}/unlock").status_code == 403
    assert locked_at(pod, author) is None and decisions(state) == []

    assert post(client, f"/cases/{case_id}/review").status_code == 302
    reviewed = pod.conn.execute("SELECT bool_and(reviewed) AS all FROM reports").fetchone()
    assert reviewed["all"] is True


def test_moderators_lock_when_lock_roles_says_so(make_app, pod, moderator, local_case):
    author, case_id = local_case
    client = signed_in(make_app(web_lock_roles="admin,moderator").test_client(), "moddy")
    assert post(client, f"/cases/{case_id}/lock").status_code == 302
    assert locked_at(pod, author) is not None


def test_mark_reviewed_marks_every_report_of_the_items_in_the_pod_and_resolves(
    client, pod, config, admin, local_case, state
):
    _, case_id = local_case
    [post_id] = [r["item_id"] for r in pod.conn.execute("SELECT DISTINCT item_id FROM reports")]
    late = pod.person("latecomer")
    pod.report(late, "Post", post_id, "Placeholder: read by podmod later")  # not ingested yet
    signed_in(client, "podmin")

    response = post(client, f"/cases/{case_id}/review")

    assert response.status_code == 302
    rows = pod.conn.execute("SELECT reviewed FROM reports").fetchall()
    assert len(rows) == 3 and all(row["reviewed"] for row in rows)
    state.rollback()
    case = state.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert case["status"] == "resolved" and case["pending_report_count"] == 0
    signals = state.execute(
        "SELECT reviewed, reviewed_by FROM podmod.signals WHERE case_id = %s", (case_id,)
    ).fetchall()
    assert all(s["reviewed"] and s["reviewed_by"] == "podmin@pod.example" for s in signals)
    assert [d["action"] for d in decisions(state)] == ["mark_reviewed"]
    assert {r["action"] for r in audit_rows(state)} >= {"mark_reviewed", "resolve"}
    intake_all(config)  # the late report arrives already reviewed: history, not new work
    assert (
        state.execute("SELECT count(*) AS n FROM podmod.cases WHERE status = 'open'").fetchone()[
            "n"
        ]
        == 0
    )


def test_dismiss_closes_the_case_and_clears_its_reports(client, pod, admin, local_case, state):
    _, case_id = local_case
    signed_in(client, "podmin")
    post(client, f"/cases/{case_id}/dismiss", reason="placeholder: not spam")
    state.rollback()
    case = state.execute("SELECT status FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert case["status"] == "dismissed"
    assert pod.conn.execute("SELECT bool_and(reviewed) AS b FROM reports").fetchone()["b"]
    [decision] = decisions(state)
    assert decision["action"] == "dismiss" and decision["reason"] == "placeholder: not spam"
    page = html(client.get(f"/cases/{case_id}"))
    assert ">Reopen</button>" in page and ">Dismiss</button>" not in page
    post(client, f"/cases/{case_id}/reopen")
    state.rollback()
    assert (
        state.execute("SELECT status FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()[
            "status"
        ]
        == "open"
    )


def test_a_note_is_kept_with_the_decisions(client, admin, local_case, state):
    _, case_id = local_case
    signed_in(client, "podmin")
    post(client, f"/cases/{case_id}/note", note="Placeholder: asked the author to stop.")
    [decision] = decisions(state)
    assert decision["action"] == "note"
    assert "Placeholder: asked the author to stop." in html(client.get(f"/cases/{case_id}"))
    empty = post(client, f"/cases/{case_id}/note", note="   ")
    assert empty.status_code == 302 and len(decisions(state)) == 1


def test_locking_an_admin_or_yourself_needs_a_confirmation(client, pod, config, admin, state):
    other = pod.person("othermod", roles=("moderator",))
    report(pod, other)
    report(pod, admin)
    intake_all(config)
    signed_in(client, "podmin")
    for person, handle in ((other, "othermod@pod.example"), (admin, "podmin@pod.example")):
        case_id = case_id_of(state, handle)
        page = html(post(client, f"/cases/{case_id}/lock"))
        assert 'name="confirm" value="yes" required' in page and ">Lock account</button>" in page
        assert locked_at(pod, person) is None
    case_id = case_id_of(state, "othermod@pod.example")
    assert post(client, f"/cases/{case_id}/lock", confirm="yes").status_code == 302
    assert locked_at(pod, other) is not None


def test_a_remote_account_page_explains_what_can_be_done_and_has_no_lock(
    client, pod, config, admin, state
):
    remote = pod.person("faraway", "remote.example")
    report(pod, remote)
    intake_all(config)
    case_id = case_id_of(state, "faraway@remote.example")
    signed_in(client, "podmin")
    page = html(client.get(f"/cases/{case_id}"))
    assert "Only its own pod can lock it" in page and "remote.example" in page
    assert ">Lock account</button>" not in page
    assert "/admins/user_search" in page and 'href="/report"' in page
    assert ">Add to this pod's list</button>" in page
    response = post(client, f"/cases/{case_id}/lock")
    assert response.status_code == 302
    assert "only its own pod can lock it" in html(client.get(f"/cases/{case_id}"))
    assert decisions(state) == []


def test_add_to_this_pods_list_flags_the_remote_pod_and_every_account_on_it(
    client, pod, config, moderator, state
):
    remote = pod.person("faraway", "remote.example")
    neighbour = pod.person("neighbour", "sub.remote.example")
    pod.person("elsewhere", "other.example")
    report(pod, remote)
    intake_all(config)
    case_id = case_id_of(state, "faraway@remote.example")
    signed_in(client, "moddy")  # a moderator may flag for review: nothing is locked

    refused = post(client, f"/cases/{case_id}/pod-list", what="pod", label="spam", reason="")
    assert refused.status_code == 302
    assert "Say why" in html(client.get(f"/cases/{case_id}"))
    response = post(
        client, f"/cases/{case_id}/pod-list", what="pod", label="Spam", reason="placeholder wave"
    )

    assert response.status_code == 302
    page = html(client.get(f"/cases/{case_id}"))
    assert "Added pod:remote.example to this pod&#39;s list (version 1)" in page
    assert "<code>pod:remote.example</code> is on it since version 1" in page
    state.rollback()
    neighbour_case = state.execute(
        "SELECT c.priority, s.details FROM podmod.cases c JOIN podmod.signals s ON s.case_id = c.id"
        " WHERE c.person_id = %s AND s.kind = 'list'",
        (neighbour.id,),
    ).fetchone()
    assert neighbour_case["details"]["entry"] == "pod:remote.example"
    assert neighbour_case["details"]["list"] == "this-pod"
    assert neighbour_case["details"]["label"] == "Spam"
    [decision] = decisions(state)
    assert decision["action"] == "list_add" and decision["actor"] == "moddy@pod.example"
    assert decision["reason"] == "placeholder wave"
    assert decision["details"]["entry"] == "pod:remote.example"
    lists_page = html(client.get("/lists"))
    assert "<code>pod:remote.example</code>" in lists_page and "placeholder wave" in lists_page

    removed = post(client, "/lists/this-pod/remove", entry="remote.example", reason="resolved")
    assert removed.status_code == 302
    assert "Removed pod:remote.example from this pod&#39;s list (version 2)" in html(
        client.get("/lists")
    )
    state.rollback()
    active = state.execute(
        "SELECT count(*) AS n FROM podmod.signals WHERE kind = 'list' AND retracted_at IS NULL"
    ).fetchone()["n"]
    assert active == 0
    actions = [
        row["action"]
        for row in state.execute(
            "SELECT action FROM podmod.audit WHERE action LIKE 'list_%' ORDER BY id"
        )
    ]
    assert actions == ["list_add", "list_remove"]


def test_an_admin_adds_any_account_to_this_pods_list_from_the_lists_page(
    client, pod, config, admin, moderator, state
):
    remote = pod.person("faraway", "far.example")
    guid = pod.conn.execute("SELECT guid FROM people WHERE id = %s", (remote.id,)).fetchone()
    address = f"https://pod.example/people/{guid['guid']}"
    signed_in(client, "moddy")
    assert 'action="/lists/this-pod/add"' not in html(client.get("/lists"))
    assert post(client, "/lists/this-pod/add", entry=address, reason="x").status_code == 403
    post(client, "/logout")
    signed_in(client, "podmin")
    assert 'action="/lists/this-pod/add"' in html(client.get("/lists"))
    without_token = client.post("/lists/this-pod/add", data={"entry": address, "reason": "x"})
    assert without_token.status_code == 400
    refused = post(client, "/lists/this-pod/add", entry="https://far.example/about", reason="x")
    assert refused.status_code == 302
    assert "is not the address of a profile, a post or a comment" in html(client.get("/lists"))
    assert state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"] == 0

    added = post(client, "/lists/this-pod/add", entry=address, label="Spam", reason="placeholder")

    assert added.status_code == 302
    page = html(client.get("/lists"))
    assert "shows account:faraway@far.example. Added account:faraway@far.example" in page
    assert "<code>account:faraway@far.example</code>" in page
    state.rollback()
    [decision] = state.execute(
        "SELECT actor, action, details FROM podmod.audit WHERE action = 'list_add'"
    ).fetchall()
    assert decision["actor"] == "podmin@pod.example" and decision["details"]["from"] == address
    case = state.execute(
        "SELECT c.status FROM podmod.cases c WHERE c.person_id = %s", (remote.id,)
    ).fetchone()
    assert case["status"] == "open"


def test_this_pods_list_is_shown_a_page_at_a_time_newest_first(make_app, admin, state):
    hosts = [f"pod{n}.example" for n in range(12)]
    for host in hosts:
        assert podmod("lists", "add", host, "--reason", "placeholder").exit_code == 0
    client = signed_in(make_app(web_page_size="5").test_client(), "podmin")
    seen: list[str] = []
    url: str | None = "/lists"
    while url:
        page = html(client.get(url))
        shown = re.findall(r"<code>pod:(pod\d+\.example)</code>", page)
        assert 0 < len(shown) <= 5, (url, shown)
        assert f"{len(shown)} of its 12 entries, newest first" in page
        assert ("Newest</a>" in page) == (url != "/lists")
        seen += shown
        found = re.search(r'<a href="([^"]+)#pod-list-pages">Older entries</a>', page)
        url = found[1] if found else None
        assert len(seen) <= 12
    assert seen == hosts[::-1]
    assert client.get("/lists?before=%C2%B2").status_code == 400
    assert client.get("/lists?before=99999999999").status_code == 400


def test_the_pod_list_form_flags_only_what_its_case_shows(client, pod, config, admin, state):
    local = pod.person("localperson")
    report(pod, local)
    intake_all(config)
    case_id = case_id_of(state, "localperson@pod.example")
    signed_in(client, "podmin")
    page = html(client.get(f"/cases/{case_id}"))
    assert "Add to this pod" not in page
    response = post(client, f"/cases/{case_id}/pod-list", what="account", reason="placeholder")
    assert response.status_code == 400
    assert state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"] == 0


def test_unknown_cases_are_404_pages(client, admin):
    signed_in(client, "podmin")
    for url in ("/cases/999999", "/cases/99999999999999999999", "/cases/abc", "/nowhere"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "<h1>404" in html(response) and "Traceback" not in html(response)
    assert post(client, "/cases/999999/review").status_code == 404
    assert post(client, "/cases/999999/lock").status_code == 404


def test_wrong_methods_are_405_pages(client, admin):
    signed_in(client, "podmin")
    response = client.get("/logout")
    assert response.status_code == 405 and "<h1>405" in html(response)


# ---------------------------------------------------------------------------------------------
# Defences


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    client, pod, admin, local_case, state
):
    author, case_id = local_case
    signed_in(client, "podmin")
    missing = client.post(f"/cases/{case_id}/lock")
    wrong = client.post(f"/cases/{case_id}/lock", data={"csrf_token": "x" * 43})
    assert missing.status_code == 400 and wrong.status_code == 400
    assert "security token" in html(missing)
    assert locked_at(pod, author) is None and decisions(state) == []
    assert (
        client.post("/login", data={"username": "podmin", "password": PASSWORD}).status_code == 400
    )


def test_the_case_page_shows_a_reported_text_once_and_its_priority_in_words(
    client, pod, config, admin, state
):
    author = pod.person("repeated")
    text = "A placeholder post reported by three people."
    report(pod, author, text, "Placeholder: spam", reporters=3)
    pod.post(author, "An unreported placeholder post.")
    intake_all(config)
    signed_in(client, "podmin")

    page = html(client.get(f"/cases/{case_id_of(state, author.handle)}"))
    assert page.count(text) == 1, page.count(text)
    assert page.count("the report above") == 2
    assert "An unreported placeholder post." in page
    assert "Reported: its text is under Signals above." in page
    summary = page[page.index('<p class="summary">') :]
    summary = summary[: summary.index("</p>")]
    assert "3 reporters · local" in summary and "3 reports" in summary
    assert summary.count("reporter") == 1, summary  # said once, in the priority's terms
    assert "0 list matches" in summary and "0 content matches" in summary


def test_a_note_sent_with_an_out_of_date_token_is_shown_back_not_lost(
    client, admin, local_case, state
):
    _, case_id = local_case
    signed_in(client, "podmin")
    note = "Placeholder: checked <b>three</b> posts,\nall spam."
    refused = client.post(f"/cases/{case_id}/note", data={"csrf_token": "stale", "note": note})
    assert refused.status_code == 400 and "security token" in html(refused)
    assert "Placeholder: checked &lt;b&gt;three&lt;/b&gt; posts,\nall spam.</textarea>" in html(
        refused
    )
    assert decisions(state) == []


def test_a_failed_sign_in_keeps_the_typed_username(client, admin):
    page = html(login(client, "PodMin", "not the password"))
    assert 'value="PodMin"' in page
    assert re.search(r'id="password"[^>]*autofocus', page)


def test_a_post_from_another_origin_is_refused(client, pod, admin, local_case, state):
    author, case_id = local_case
    signed_in(client, "podmin")
    token = csrf(client)
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        response = client.post(
            f"/cases/{case_id}/lock", data={"csrf_token": token}, headers=headers
        )
        assert response.status_code == 403
    assert locked_at(pod, author) is None and decisions(state) == []
    same = client.post(
        f"/cases/{case_id}/lock", data={"csrf_token": token}, headers={"Origin": "http://localhost"}
    )
    assert same.status_code == 302 and locked_at(pod, author) is not None


def test_every_page_has_a_strict_content_security_policy(client, admin):
    expected = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    pages = [client.get("/login"), client.get("/nowhere")]
    signed_in(client, "podmin")
    pages += [client.get(url) for url in ("/", "/dashboard", "/lists", "/audit")]
    for response in pages:
        assert response.headers["Content-Security-Policy"] == expected
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "style=" not in html(response) and "<script" not in html(response)


def test_session_cookie_is_httponly_lax_and_secure_only_over_https(make_app, admin):
    plain = make_app().test_client()
    login(plain, "podmin")
    cookie = plain.get_cookie("podmod_session")
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    secure = make_app().test_client()
    secure.get("/login", base_url="https://localhost")
    token = csrf(secure)
    secure.post(
        "/login",
        base_url="https://localhost",
        data={"username": "podmin", "password": PASSWORD, "csrf_token": token},
    )
    assert secure.get_cookie("podmod_session", domain="localhost").secure


def test_behind_the_pods_nginx_the_prefix_and_https_are_honoured_when_trusted(make_app, admin):
    headers = {
        "X-Forwarded-Prefix": "/podmod",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pod.example",
        "X-Forwarded-For": "203.0.113.9",
    }
    trusting = make_app(web_trusted_proxies="1").test_client()
    response = trusting.get("/", headers=headers)
    assert response.location == "/podmod/login?next=/"
    page = html(trusting.get("/login", headers=headers))
    assert 'action="/podmod/login"' in page and 'href="/podmod/static/style.css"' in page
    cookie = (
        response.headers.get("Set-Cookie")
        or trusting.get("/login", headers=headers).headers["Set-Cookie"]
    )
    assert "Path=/podmod/" in cookie and "Secure" in cookie


def test_a_proxy_prefix_that_podmod_does_not_believe_is_explained_on_the_page_and_in_check(
    make_app, admin, rconn
):
    """Without web.trusted_proxies, podmod behind the shipped nginx block would redirect into
    diaspora*'s URL space and load no CSS: the page says so instead, and so does `podmod check`."""
    from tests.helpers import podmod

    ignoring = make_app(web_trusted_proxies="0").test_client()
    for path in ("/", "/login"):
        response = ignoring.get(path, headers={"X-Forwarded-Prefix": "/podmod"})
        assert response.status_code == 500 and response.location is None
        assert "web.trusted_proxies" in html(response) and "/podmod" in html(response)
    assert ignoring.get("/login").status_code == 200  # no proxy header: served as before
    report = podmod("check", "--json").output
    [proxy] = [c for c in json.loads(report)["checks"] if c["check"] == "web proxy"]
    assert proxy["status"] == "warn" and "trusted_proxies = 1" in proxy["detail"]


def test_the_ip_from_a_trusted_proxy_is_what_the_audit_log_records(make_app, admin, state):
    client = make_app(web_trusted_proxies="1").test_client()
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http"}
    client.get("/login", headers=headers)
    client.post(
        "/login",
        headers=headers,
        data={"username": "podmin", "password": "wrong", "csrf_token": csrf(client)},
    )
    assert audit_rows(state, "sign_in_failed")[0]["details"]["ip"] == "203.0.113.9"


def test_hostile_text_is_escaped_in_queue_case_and_audit_pages(client, pod, config, state):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    author = pod.person("writer")
    hostile_remote = pod.person('x"><img src=x onerror=alert(1)>', "evil.example")
    report(pod, author, HOSTILE, reason=HOSTILE)
    report(pod, hostile_remote, HOSTILE)
    intake_all(config)
    login(client, HOSTILE, "wrong")  # the typed username lands in the audit log
    signed_in(client, "podmin")
    case_id = case_id_of(state, "writer@pod.example")
    post(client, f"/cases/{case_id}/note", note=HOSTILE)

    pages = {
        "queue": html(client.get("/")),
        "case": html(client.get(f"/cases/{case_id}")),
        "remote case": html(client.get(f"/cases/{case_id_of(state, hostile_remote.handle)}")),
        "audit": html(client.get("/audit")),
    }
    for name, page in pages.items():
        assert "<script>window" not in page, name
        assert "<img src=x" not in page, name
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in pages["case"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["queue"]
    assert "&lt;script&gt;" in pages["audit"]


# ---------------------------------------------------------------------------------------------
# Lists, audit, dashboard, health


def test_the_audit_page_shows_who_what_when_why_and_where_in_pages(make_app, admin, state):
    for n in range(12):
        store.record_audit(
            state,
            actor=f"placeholder{n}",
            action="note",
            source="cli",
            reason=f"placeholder reason {n}",
            details={"ip": "192.0.2.1"},
        )
    state.commit()
    client = signed_in(make_app(web_page_size="5").test_client(), "podmin")
    seen: list[str] = []
    url: str | None = "/audit"
    while url:
        page = html(client.get(url))
        seen += re.findall(r"placeholder reason (\d+)", page)
        found = re.search(r'href="([^"]+)" rel="next"', page)
        url = found[1].replace("&amp;", "&") if found else None
    assert seen == [str(n) for n in range(11, -1, -1)]
    assert "192.0.2.1" in html(client.get("/audit"))
    filtered = html(client.get("/audit?actor=placeholder3"))
    assert re.findall(r"placeholder reason (\d+)", filtered) == ["3"]
    assert client.get("/audit?case=abc").status_code == 400


def test_the_audit_filters_offer_the_recorded_actions_and_match_any_case_of_actor(
    client, admin, state
):
    for actor, action in (("Moddy@Pod.Example", "note"), ("other@pod.example", "lock")):
        store.record_audit(
            state,
            actor=actor,
            action=action,
            source="web",
            reason=f"placeholder {action}",
            details={"ip": "192.0.2.1", "user_id": 77, "entries_added": 3},
        )
    state.commit()
    signed_in(client, "podmin")

    page = html(client.get("/audit"))
    menu = page[
        page.index('<select id="a-action"') : page.index("</select>", page.index('id="a-action"'))
    ]
    offered = re.findall(r'<option value="([a-z_]+)"', menu)
    assert offered == sorted({"note", "lock", "sign_in"}), offered  # sign_in: podmin's own
    # (the table only: the page's random CSRF token may hold "77")
    table = page[page.index('<table class="audit">') : page.index("</table>")]
    assert "user_id" not in table and "77" not in table and "entries added: 3" in table
    found = html(client.get("/audit?actor=moddy%40pod.example"))
    assert re.findall(r"placeholder (note|lock)", found) == ["note"]
    by_action = html(client.get("/audit?action=lock"))
    assert re.findall(r"placeholder (note|lock)", by_action) == ["lock"]
    assert 'value="lock" selected' in by_action


def test_the_dashboard_draws_reports_per_day_as_inline_svg(client, pod, config, admin):
    report(pod, pod.person("someone"), reporters=3)
    intake_all(config)
    signed_in(client, "podmin")
    page = html(client.get("/dashboard"))
    assert page.count("<svg") == 4 and "<script" not in page
    assert "Reports received per day" in page
    assert re.search(r"<title>\w{3} \d\d \w{3}: 3</title>", page)
    assert re.search(r"<strong>1</strong> open cases", page)


def test_the_lists_page_shows_subscriptions_and_held_versions(client, admin, state):
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, current_version, last_error, last_error_at)"
        " VALUES ('core', 'https://lists.example/core.csv', 'review', 1,"
        " 'placeholder: signature did not verify', now()) RETURNING id"
    )
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, held_reason, held_body)"
        " SELECT id, 2, 'x', 'held', 0, 0, 3, 'podmod', 'placeholder: removes too much',"
        " 'kind,value,label,comment\npod,a.example,,\n'::bytea FROM podmod.lists"
    )
    # The labels its entries in force carry, the most used first (what `labels` can name).
    state.execute(
        "INSERT INTO podmod.list_entries (list_id, kind, value, labels, added_in, removed_in)"
        " SELECT id, 'pod', v, l::text[], 1, r FROM podmod.lists, (VALUES"
        " ('a.example', '{spam,hate-speech}', NULL), ('b.example', '{spam}', NULL),"
        " ('c.example', '{}', NULL), ('d.example', '{gone}', 1)) AS e (v, l, r)"
    )
    state.commit()
    signed_in(client, "podmin")
    page = html(client.get("/lists"))
    assert "core" in page and "placeholder: signature did not verify" in page
    assert "labels in use: <bdi>spam 2, hate-speech 1</bdi>" in page
    assert "held for approval</strong>: <bdi>placeholder: removes too much</bdi>." in page
    # (not in this configuration: approving it would be refused, so no button offers it)
    assert ">Approve</button>" not in page
    assert "no longer in the configuration: put it back to approve this version" in page
    version = html(client.get("/lists/core/versions/2"))
    assert ">Approve</button>" not in version and ">Reject</button>" in version
    assert "no longer in the configuration: put it back to approve this version" in version
    post(client, "/lists/core/versions/2/approve")  # (a form kept open from before: refused)
    assert "No list named &#39;core&#39; in the configuration." in html(client.get("/lists"))
    assert client.get("/lists/core/versions/7").status_code == 404
    assert client.get("/lists/nothere/versions/1").status_code == 404


def test_the_lists_page_says_until_when_a_lists_server_asked_to_be_left_alone(client, admin, state):
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, last_error, last_error_at, retry_after)"
        " VALUES ('core', 'https://lists.example/core.csv', 'review', 'placeholder: 429', now(),"
        " now() + interval '2 hours'), ('past', 'https://lists.example/past.csv', 'review',"
        " 'placeholder: 503', now(), now() - interval '1 minute') RETURNING retry_after"
    )
    until = state.execute("SELECT retry_after FROM podmod.lists WHERE name = 'core'").fetchone()
    state.commit()
    signed_in(client, "podmin")

    page = html(client.get("/lists"))

    said = f"Its server asked not to be asked before {until['retry_after']:%Y-%m-%d %H:%M} UTC"
    assert page.count(said) == 1 and page.count("(Retry-After)") == 1, page  # (not `past`)
    # (the command as the terminal names it, set as code)
    assert "(<code>podmod lists sync --now --name core</code> asks it anyway)." in page


def test_the_lists_page_says_when_no_sync_has_tried_a_list_for_hours(
    make_app, env, admin, state, tmp_path
):
    """The cron job stopped: every row looks as it did at the last sync, so the page says above
    them which subscribed lists no sync has tried for alerts.lists_stale_hours, and why."""
    listed, fresh = (tmp_path / "core.csv").as_uri(), (tmp_path / "fresh.csv").as_uri()
    Path(env["PODMOD_CONFIG"]).write_text(
        f'[[lists]]\nname = "core"\nurl = "{listed}"\n[[lists]]\nname = "fresh"\nurl = "{fresh}"\n'
    )
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, last_attempt_at, last_success_at) VALUES"
        " ('core', 'file:///core.csv', 'review', now() - interval '2 hours', now() - interval"
        " '2 hours'), ('fresh', 'file:///core.csv', 'review', now(), now()),"
        " ('gone', 'file:///gone.csv', 'review', now() - interval '9 days', NULL)"
    )
    state.commit()
    client = make_app().test_client()
    signed_in(client, "podmin")
    assert 'role="alert"' not in html(client.get("/lists"))
    state.execute("UPDATE podmod.lists SET last_attempt_at = last_attempt_at - interval '2 hours'")
    state.commit()
    page = html(client.get("/lists"))
    [banner] = re.findall(r'<p class="flash error" role="alert">(.*?)</p>', page, re.S)
    assert "List <strong>core</strong>: no sync has tried it since " in banner, banner
    assert "cron job (deploy/podmod.cron) is installed" in banner
    assert "fresh" not in banner and "gone" not in banner  # tried lately; not subscribed


def test_a_moderator_sees_held_versions_but_cannot_approve(client, moderator, state):
    signed_in(client, "moddy")
    assert post(client, "/lists/core/versions/2/approve").status_code == 403


def test_healthz_reports_each_service(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {
        "ok": True,
        "checks": {"pod_database": "ok", "state_database": "ok", "redis": "ok"},
    }


def test_healthz_is_503_when_redis_is_down(make_app):
    client = make_app(redis_url="redis://127.0.0.1:1/0").test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["ok"] is False and response.json["checks"]["redis"] != "ok"
    assert response.json["checks"]["pod_database"] == "ok"


def test_an_out_of_date_schema_is_a_503_page(make_app, admin, state):
    client = make_app().test_client()
    state.execute("DELETE FROM podmod.schema_migrations WHERE version = 3")
    state.commit()
    response = client.get("/login")
    assert response.status_code == 200  # the sign-in page needs no state
    response = login(client, "podmin")
    assert response.status_code == 503 and "podmod init" in html(response)


def test_the_web_ui_runs_as_the_least_privilege_role(
    make_app, pod, pod_url, config, state, monkeypatch
):
    from tests.test_least_privilege import GRANTS, as_role

    with psycopg.connect(pod_url, autocommit=True) as owner:
        owner.execute(GRANTS.read_text())
        owner.execute(
            "GRANT USAGE ON SCHEMA podmod TO podmod;"
            " GRANT ALL ON ALL TABLES IN SCHEMA podmod TO podmod;"
            " GRANT ALL ON ALL SEQUENCES IN SCHEMA podmod TO podmod"
        )
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    author = pod.person("author")
    report(pod, author)
    intake_all(config)
    client = signed_in(make_app(database_url=as_role(pod_url, "podmod")).test_client(), "podmin")
    case_id = case_id_of(state, "author@pod.example")
    assert client.get(f"/cases/{case_id}").status_code == 200
    assert client.get("/").status_code == 200
    assert post(client, f"/cases/{case_id}/lock").status_code == 302
    assert post(client, f"/cases/{case_id}/review").status_code == 302
    assert locked_at(pod, author) is not None
    assert client.get("/dashboard").status_code == 200 and client.get("/audit").status_code == 200


def test_devise_hashes_from_the_pod_fixture_verify(pod):
    from podmod.web.signin import password_matches

    hashed = devise_hash("placeholder")
    assert password_matches("placeholder", hashed, load_config_pepper())
    assert not password_matches("placeholder", hashed, "another pepper")


def load_config_pepper() -> str:
    from podmod.config import DIASPORA_PEPPER

    return DIASPORA_PEPPER


def test_serve_refuses_to_start_before_podmod_init(env, pod):
    from tests.helpers import podmod

    result = podmod("serve", "--port", "8799")
    assert result.exit_code == 2 and "run `podmod init`" in result.output


@pytest.fixture
def held_version(env, pod, state, tmp_path) -> Person:
    """List `core` with version 1 held for approval; the account its entry names."""
    listed = pod.person("listed", "far.example")
    list_file = tmp_path / "core.csv"
    list_file.write_text("kind,value,label,comment\n")
    with open(env["PODMOD_CONFIG"], "a") as config_file:
        config_file.write(
            f'[[lists]]\nname = "core"\nurl = "{list_file.as_uri()}"\npolicy = "review"\n'
        )
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy) VALUES ('core', %s, 'review')",
        (list_file.as_uri(),),
    )
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, held_reason, held_body) SELECT id, 1, 'x', 'held', 1, 1, 0, 'podmod',"
        " 'placeholder: held for the test', %s FROM podmod.lists",
        (b"kind,value,label,comment\naccount,listed@far.example,placeholder,\n",),
    )
    state.commit()
    return listed


def test_an_admin_approves_a_held_list_version_from_the_lists_page(
    make_app, admin, state, held_version
):
    client = signed_in(make_app().test_client(), "podmin")
    diff = html(client.get("/lists/core/versions/1"))
    assert "+ account:listed@far.example" in diff and "placeholder: held for the test" in diff

    response = post(client, "/lists/core/versions/1/approve")

    assert response.status_code == 302
    assert "approved by podmin@pod.example and applied" in html(client.get("/lists"))
    state.rollback()
    case = state.execute(
        "SELECT list_match_count FROM podmod.cases WHERE person_id = %s", (held_version.id,)
    ).fetchone()
    assert case["list_match_count"] == 1
    # The case's list match links the version it came from (what it changed, who approved it).
    [case_id] = [c["id"] for c in cases_json("open") if c["account"] == "listed@far.example"]
    case_page = html(client.get(f"/cases/{case_id}"))
    assert 'list <strong>core</strong>,\n      <a href="/lists/core/versions/1">version 1</a>' in (
        case_page
    ), case_page
    [approved] = audit_rows(state, "list_approve")
    assert approved["actor"] == "podmin@pod.example"
    assert approved["details"]["ip"] == "127.0.0.1" and approved["details"]["user_id"], approved
    # The version page no longer says it is held, only that it was; counts agree with numbers.
    after = html(client.get("/lists/core/versions/1"))
    assert "Held:" not in after
    assert "It was held (<bdi>placeholder: held for the test</bdi>)" in after
    assert "1 entry added, 0 removed." in after, after
    # The case page's list match reads as a sentence: "entry <code>…</code>, label …".
    page = html(client.get(f"/cases/{case_id_of(state, 'listed@far.example')}"))
    assert "</code>, label “<bdi>placeholder</bdi>”" in page, page
    assert "This pod's own list" in html(client.get("/lists"))


def test_an_admin_rejects_a_held_list_version_from_its_page_saying_why(
    make_app, admin, moderator, state, held_version
):
    moderators = signed_in(make_app().test_client(), "moddy")
    assert ">Reject</button>" not in html(moderators.get("/lists/core/versions/1"))
    refused = post(moderators, "/lists/core/versions/1/reject", reason="placeholder")
    assert refused.status_code == 403
    client = signed_in(make_app().test_client(), "podmin")
    assert ">Reject</button>" in html(client.get("/lists/core/versions/1"))
    post(client, "/lists/core/versions/1/reject", reason="   ")
    assert "Say why the version is rejected" in html(client.get("/lists/core/versions/1"))
    post(client, "/lists/core/versions/1/reject", reason="x" * 2001)
    assert "The reason is longer than 2,000 characters" in html(
        client.get("/lists/core/versions/1")
    )

    response = post(client, "/lists/core/versions/1/reject", reason="placeholder: not meant")

    assert response.status_code == 302
    assert "version 1 rejected by podmin@pod.example: placeholder: not meant" in html(
        client.get("/lists")
    )
    state.rollback()
    assert state.execute("SELECT status FROM podmod.list_versions").fetchone()["status"] == (
        "rejected"
    )
    [rejected] = audit_rows(state, "list_reject")
    assert rejected["actor"] == "podmin@pod.example" and rejected["details"]["ip"] == "127.0.0.1"
    page = html(client.get("/lists/core/versions/1"))
    ended = state.execute("SELECT ended_at FROM podmod.list_versions").fetchone()["ended_at"]
    state.rollback()
    assert (
        f"then rejected by podmin@pod.example on {ended:%Y-%m-%d %H:%M} UTC: "
        "<bdi>placeholder: not meant</bdi>" in page
    ), page
    # The lists page says it too, as `podmod lists show` does, with the way to the version.
    listed = html(client.get("/lists"))
    assert (
        f"version 1 rejected by podmin@pod.example on {ended:%Y-%m-%d %H:%M} UTC: placeholder:"
        " not meant (the same file is not taken again)</bdi>" in listed
    ), listed
    assert 'href="/lists/core/versions/1">See it</a>' in listed
    assert (
        "1 entry added, 0 removed (never applied: what it would have changed is not kept)" in page
    )
    assert ">Approve</button>" not in page and ">Reject</button>" not in page
    # (no columns of added and removed entries saying "None." beside "1 entry added")
    assert "<h2>Added</h2>" not in page and "None." not in page, page
    assert state.execute("SELECT count(*) AS n FROM podmod.cases").fetchone()["n"] == 0


def test_a_moderator_who_may_lock_still_may_not_approve_a_held_version(
    make_app, moderator, state, held_version
):
    client = signed_in(make_app(web_lock_roles="admin,moderator").test_client(), "moddy")
    page = html(client.get("/lists"))
    assert "held for approval" in page and ">Approve</button>" not in page
    assert "A pod admin can approve it" in page
    assert ">Approve</button>" not in html(client.get("/lists/core/versions/1"))

    refused = post(client, "/lists/core/versions/1/approve")

    assert refused.status_code == 403 and "web.approve_roles" in html(refused)
    state.rollback()
    status = state.execute("SELECT status FROM podmod.list_versions").fetchone()["status"]
    assert status == "held"
    assert audit_rows(state, "list_approve") == [] and decisions(state) == []
    assert state.execute("SELECT count(*) AS n FROM podmod.cases").fetchone()["n"] == 0


def test_moderators_approve_when_approve_roles_says_so(make_app, moderator, state, held_version):
    client = signed_in(make_app(web_approve_roles="admin,moderator").test_client(), "moddy")
    assert ">Approve</button>" in html(client.get("/lists"))

    assert post(client, "/lists/core/versions/1/approve").status_code == 302

    assert audit_rows(state, "list_approve")[0]["actor"] == "moddy@pod.example"


def test_the_lists_page_shows_when_a_version_was_signed_and_warns_without_a_time(
    client, admin, state
):
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, current_version) VALUES"
        " ('core', 'https://lists.example/core.csv', 'review', 1),"
        " ('bare', 'https://lists.example/bare.csv', 'review', 1)"
    )
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, signed_comment, signed_at, signed_file)"
        " SELECT id, 1, 'x', 'applied', 0, 0, 0, 'podmod', %s, %s, %s FROM podmod.lists"
        " WHERE name = 'core'",
        ("timestamp:1700000000\tfile:core.csv\thashed", "2023-11-14 22:13:20+00", "core.csv"),
    )
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, signed_comment) SELECT id, 1, 'x', 'applied', 0, 0, 0, 'podmod',"
        " 'release 1' FROM podmod.lists WHERE name = 'bare'"
    )
    state.commit()
    signed_in(client, "podmin")

    page = html(client.get("/lists"))

    bare_row = page.split("<strong>bare</strong>")[1].split("<strong>core</strong>")[0]
    core_row = page.split("<strong>core</strong>")[1]
    assert "signed 2023-11-14 22:13:20 UTC" in core_row and "WARN" not in core_row
    assert "WARN: signed without a timestamp" in bare_row
    assert "signed 2023-11-14 22:13:20 UTC" in html(client.get("/lists/core/versions/1"))


def test_metrics_are_served_to_this_host_only(make_app, pod, config):
    report(pod, pod.person("someone"))
    intake_all(config)
    local = make_app().test_client().get("/metrics")
    assert local.status_code == 200 and 'podmod_cases{status="open"} 1' in html(local)
    remote = (
        make_app(web_trusted_proxies="1")
        .test_client()
        .get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    )
    assert remote.status_code == 403


# ---------------------------------------------------------------------------------------------
# Hostile input that once reached PostgreSQL or a page: NUL characters and digits that are not
# ASCII give a 400 and a sentence; what /healthz and the 503 page say about a service that is
# down (hosts, databases) only from this host.

REMOTE = {"REMOTE_ADDR": "203.0.113.9"}
NUL_REFUSED = "NUL character"


def test_a_nul_in_the_sign_in_username_is_a_400_not_a_traceback(client, state):
    response = login(client, "pod\x00min")
    assert response.status_code == 400 and NUL_REFUSED in html(response)
    assert state.execute("SELECT count(*) AS n FROM podmod.audit").fetchone()["n"] == 0


@pytest.mark.parametrize(
    ("what", "field"), [("note", "note"), ("lock", "reason"), ("review", "reason")]
)
def test_a_nul_in_a_note_or_reason_is_a_400_and_changes_nothing(
    client, admin, local_case, state, what, field
):
    _, case_id = local_case
    signed_in(client, "podmin")
    before = state.execute("SELECT count(*) AS n FROM podmod.decisions").fetchone()["n"]
    response = post(client, f"/cases/{case_id}/{what}", **{field: "spam\x00 here"})
    assert response.status_code == 400 and NUL_REFUSED in html(response)
    after = state.execute("SELECT count(*) AS n FROM podmod.decisions").fetchone()["n"]
    assert after == before


@pytest.mark.parametrize(
    "url", ["/?q=%00", "/?q=a%00b", "/audit?actor=%00", "/audit?action=x%00", "/?local=%00"]
)
def test_a_nul_in_a_filter_or_search_is_a_400(client, admin, url):
    signed_in(client, "podmin")
    response = client.get(url)
    assert response.status_code == 400 and NUL_REFUSED in html(response), response.status_code


@pytest.mark.parametrize("case", ["²", "٣", "1²", "-1", "1.0", "99999999999999999999"])
def test_a_case_filter_that_is_not_an_ascii_number_is_a_400(client, admin, case):
    signed_in(client, "podmin")
    response = client.get("/audit", query_string={"case": case})
    assert response.status_code == 400 and "case number" in html(response)


def test_healthz_names_only_the_failing_service_to_other_hosts(make_app):
    app = make_app(
        redis_url="redis://127.0.0.1:1/0", database_url="postgresql://u:pw@127.0.0.1:1/x"
    )
    remote = app.test_client().get("/healthz", environ_base=REMOTE)
    assert remote.status_code == 503
    assert remote.json["checks"] == {
        "pod_database": "unavailable",
        "state_database": "unavailable",
        "redis": "unavailable",
    }
    local = app.test_client().get("/healthz")
    assert "127.0.0.1:1" in local.json["checks"]["pod_database"], local.json
    assert "pw" not in local.text


def test_the_503_page_names_hosts_only_to_this_host(make_app):
    app = make_app(database_url="postgresql://u:pw@127.0.0.1:1/secretdb")
    remote = app.test_client()
    token = csrf(remote)
    response = remote.post(
        "/login",
        data={"username": "podmin", "password": "x", "csrf_token": token},
        environ_base=REMOTE,
    )
    assert response.status_code == 503
    assert "secretdb" not in html(response) and "127.0.0.1" not in html(response)
    assert "does not answer" in html(response)
    local = login(app.test_client(), "podmin")
    assert local.status_code == 503 and "secretdb" in html(local)


# Finishing a case: lock and close, the next case, outcomes


def flash_of(page: str) -> str:
    return re.search(r'<p class="flash \w+" role="status">(.*?)</p>', page, re.S)[1]


def three_cases(pod: DiasporaPod, config: Config, state: psycopg.Connection) -> dict[str, int]:
    """Three local cases in queue order: top (3 reporters), spammer (2), next (1)."""
    for name, reporters in (("top", 3), ("spammer", 2), ("next", 1)):
        report(pod, pod.person(name), f"A placeholder post by {name}.", reporters=reporters)
    intake_all(config)
    return {name: case_id_of(state, f"{name}@pod.example") for name in ("top", "spammer", "next")}


def test_lock_and_close_locks_closes_and_goes_to_the_next_case_with_a_link_back(
    client, pod, config, admin, state
):
    cases = three_cases(pod, config, state)
    signed_in(client, "podmin")
    page = html(client.get(f"/cases/{cases['spammer']}"))
    assert ">Lock and close</button>" in page

    response = post(client, f"/cases/{cases['spammer']}/lock-and-close", reason="spam")

    assert response.status_code == 302 and response.location == f"/cases/{cases['next']}"
    flash = flash_of(html(client.get(response.location)))
    assert f"spammer@pod.example is now locked and case {cases['spammer']} is closed" in flash
    assert f'<a href="/cases/{cases["spammer"]}">Back to case {cases["spammer"]}</a>' in flash
    assert [(d["action"], d["case_id"]) for d in decisions(state)] == [("lock", cases["spammer"])]
    assert [a["action"] for a in audit_rows(state) if a["action"] != "sign_in"] == ["lock"]
    closed = html(client.get(f"/cases/{cases['spammer']}"))
    assert "closed: locked" in closed and "2 reporters" in closed
    assert ">Reopen</button>" in closed and ">Lock and close</button>" not in closed


def test_a_case_whose_account_is_locked_already_closes_as_locked_in_one_click(
    client, pod, config, admin, state
):
    cases = three_cases(pod, config, state)
    podmod("lock", "spammer@pod.example", "--reason", "placeholder spam")
    signed_in(client, "podmin")
    page = html(client.get(f"/cases/{cases['spammer']}"))
    assert ">Close as locked</button>" in page and ">Lock and close</button>" not in page
    assert ">Dismiss</button>" not in page  # "no action needed" would not be true of it

    response = post(client, f"/cases/{cases['spammer']}/lock-and-close")

    assert response.status_code == 302 and response.location == f"/cases/{cases['next']}"
    assert "spammer@pod.example was already locked" in flash_of(html(client.get(response.location)))
    assert [d["action"] for d in decisions(state)] == ["lock", "close"]
    assert "closed: locked" in html(client.get(f"/cases/{cases['spammer']}"))


def test_the_last_case_closed_goes_back_to_the_queue(client, pod, config, admin, state):
    cases = three_cases(pod, config, state)
    signed_in(client, "podmin")
    response = post(client, f"/cases/{cases['next']}/dismiss")
    assert response.status_code == 302 and response.location == "/"
    assert f"Case {cases['next']} (next@pod.example) is dismissed." in flash_of(
        html(client.get("/"))
    )


@pytest.mark.parametrize("action", ["review", "dismiss"])
def test_every_closing_action_offers_the_next_case(client, pod, config, admin, state, action):
    cases = three_cases(pod, config, state)
    signed_in(client, "podmin")
    response = post(client, f"/cases/{cases['top']}/{action}")
    assert response.status_code == 302 and response.location == f"/cases/{cases['spammer']}"
    assert f"Back to case {cases['top']}" in flash_of(html(client.get(response.location)))


def test_two_admins_clicking_lock_and_close_at_once_give_one_lock(app, pod, config, state):
    cases = three_cases(pod, config, state)
    clients = []
    for name in ("admin1", "admin2", "admin3"):
        pod.person(name, password=PASSWORD, roles=("admin",))
        clients.append(signed_in(app.test_client(), name))
    barrier = threading.Barrier(len(clients))
    messages: list[str] = []

    def click(client: FlaskClient) -> None:
        token = csrf(client)
        barrier.wait()
        response = client.post(
            f"/cases/{cases['spammer']}/lock-and-close", data={"csrf_token": token}
        )
        messages.append(flash_of(html(client.get(response.location))).split(" <a")[0])

    threads = [threading.Thread(target=click, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    closed = f"Case {cases['spammer']} (spammer@pod.example) was already closed: locked."
    assert sorted(messages) == [
        closed,
        closed,
        f"spammer@pod.example is now locked and case {cases['spammer']} is closed: locked"
        " (2 reports marked reviewed in diaspora*).",
    ]
    assert [d["action"] for d in decisions(state)] == ["lock"]


def test_lock_and_close_of_an_admin_asks_for_the_confirmation_first(
    client, pod, config, admin, state
):
    other = pod.person("othermod", roles=("moderator",))
    report(pod, other)
    intake_all(config)
    case_id = case_id_of(state, "othermod@pod.example")
    signed_in(client, "podmin")
    page = html(post(client, f"/cases/{case_id}/lock-and-close"))
    assert f'action="/cases/{case_id}/lock-and-close"' in page
    assert 'name="confirm" value="yes" required' in page and locked_at(pod, other) is None
    assert post(client, f"/cases/{case_id}/lock-and-close", confirm="yes").status_code == 302
    assert locked_at(pod, other) is not None
    state.rollback()
    row = state.execute("SELECT resolution FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    assert row["resolution"] == "locked"


def test_a_closed_case_names_its_outcome_once_and_keeps_its_reporters(
    client, pod, admin, local_case, state
):
    _, case_id = local_case
    signed_in(client, "podmin")
    post(client, f"/cases/{case_id}/dismiss")
    page = html(client.get(f"/cases/{case_id}"))
    assert "closed: dismissed" in page and "dismissed (dismissed)" not in page
    summary = " ".join(page.split())
    assert re.search(r"Priority \d+: 2 reporters · local · 0 pending of 2 reports", summary)
    queue = html(client.get("/?status=all"))
    row = queue[queue.index("spammer@pod.example") :]
    assert "<th>Outcome</th>" in queue and "dismissed" in row.split("</tr>")[0]


def test_mark_reviewed_is_offered_only_when_a_report_is_pending(client, pod, config, admin, state):
    listed = pod.person("listed")
    report(pod, listed)
    intake_all(config)
    case_id = case_id_of(state, "listed@pod.example")
    signed_in(client, "podmin")
    page = html(client.get(f"/cases/{case_id}"))
    assert ">Mark reviewed</button>" in page
    assert "content match" in page[page.index(">Mark reviewed</button>") :].split("</form>")[0]
    pod.conn.execute("UPDATE reports SET reviewed = true")
    state.execute("UPDATE podmod.signals SET reviewed = true WHERE case_id = %s", (case_id,))
    state.execute("SELECT podmod.refresh_cases(ARRAY[%s]::bigint[])", (case_id,))
    state.commit()  # (a reopened case with nothing pending)
    page = html(client.get(f"/cases/{case_id}"))
    assert ">Mark reviewed</button>" not in page
    # Its priority no longer counts the reviewed report, nor does what lifts it name its reporter.
    summary = " ".join(page[page.index('class="summary"') :].split("</p>")[0].split())
    assert summary.startswith('class="summary">Priority 5: local · 0 pending of 1 report'), summary


def test_the_case_page_says_what_lock_does_and_how_to_undo_it(client, admin, local_case):
    _, case_id = local_case
    signed_in(client, "podmin")
    page = html(client.get(f"/cases/{case_id}"))
    text = page[page.index('class="lock-help"') :].split("</p>")[0]
    assert "signs the account out on its next request" in text
    assert "API" in text and "keep working" in text  # diaspora* does not check locks on tokens
    assert "Unlock account" in text and "podmod unlock" in text


def test_the_dashboard_counts_accounts_locked_not_lock_actions(client, pod, config, admin):
    from podmod import actions

    pod.person("spammer")
    for action in (actions.lock_account, actions.unlock_account, actions.lock_account):
        action(config, handle="spammer", actor="mod", source="cli", reason="x")
    signed_in(client, "podmin")
    page = html(client.get("/dashboard"))
    assert re.search(r"<strong>1</strong> accounts locked in 30 days", page)


def test_the_web_app_and_the_reader_load_neither_cryptography_nor_requests(env, state):
    """Each costs every process that loads it 5-7 MiB (the web app's peak grew from 62 to 75 MiB
    with them): only a list's sync and `podmod lists` sign or verify, and only the worker sends a
    webhook. A configuration with a signed list and a webhook is read, as every process reads it."""
    import os
    import subprocess
    import sys

    from podmod.lists import minisign

    key = minisign.SecretKey.generate().public_key.to_string()
    Path(env["PODMOD_CONFIG"]).write_text(
        '[web]\npublic_url = "https://pod.example/podmod/"\n'
        f'[[lists]]\nname = "core"\nurl = "https://lists.example/core.csv"\npublic_key = "{key}"\n'
        '[[webhooks]]\nurl = "https://chat.example/hook"\nsecret = "placeholder secret"\n'
        'events = ["list.held"]\n'
    )
    script = (
        "import sys\n"
        "from podmod.web import create_app\n"
        "app = create_app()\n"
        "from podmod import intake\n"
        "from podmod.notify import webhooks\n"
        # (redis imports the small cryptography package to see that it is there: its compiled
        # part is what costs)
        "heavy = ('cryptography.hazmat.bindings._rust', 'requests')\n"
        "print('loaded:', *sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "loaded:", done.stdout
