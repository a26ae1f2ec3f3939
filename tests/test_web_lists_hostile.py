"""The lists pages and this pod's list under attack (audit A): a pasted address's password, a list
server's or publisher's direction marks and zero-width characters, a moderator's label written
right to left, a held version of many rows, an obfuscated entry's name, an internationalised host,
an invisible reason, a form sent after the session ended."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

import pytest

from podmod.lists.versions import entry_text
from podmod.redact import FORMAT, printable
from podmod.web.formatting import details_text
from tests import test_web
from tests.helpers import intake_all, podmod
from tests.test_web import audit_rows, case_id_of, csrf, html, login, post, report, signed_in

admin, make_app, moderator = test_web.admin, test_web.make_app, test_web.moderator  # fixtures

RLO, RLM, LRM, ALM, ZWSP = "\u202e", "\u200f", "\u200e", "\u061c", "\u200b"
ZWNJ, ZWJ = "\u200c", "\u200d"


def flashes(page: str) -> list[str]:
    return re.findall(r'class="flash[^"]*"[^>]*>(.*?)</', page, re.S)


def has_format_characters(text: str) -> bool:
    return any(unicodedata.category(c) == "Cf" for c in text)


# ---------------------------------------------------------------------------------------------
# printable() and the audit log's details


def test_printable_drops_direction_marks_and_every_format_character():
    assert printable(f"a{LRM}b{RLM}c{ALM}d{ZWSP}e\u200c\u200df\u2060g\ufeffh") == "abcdefgh"
    assert printable(f"x{RLO}y\u2066z\u2069") == "xyz"
    every = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]
    joiners = [ZWNJ, ZWJ]  # (dropped or kept by where they are: the test below)
    assert [c for c in every if not FORMAT.fullmatch(c)] == joiners
    assert printable("".join(every)) == ""
    # Text without them is as it was: words, right-to-left letters, emoji.
    assert printable("spam שלום 😀 plain") == "spam שלום 😀 plain"


@pytest.mark.parametrize(
    "text",
    [
        f"placeholder می{ZWNJ}خواهم",  # Persian: one word, its letters kept apart
        f"क्{ZWJ}ष and क्{ZWNJ}ष",  # Devanagari: after a virama
        f"placeholder 👩{ZWJ}💻 👨{ZWJ}👩{ZWJ}👧 ❤\ufe0f{ZWJ}🔥 👩🏽{ZWJ}💻",  # emoji sequences
    ],
)
def test_printable_keeps_the_joiners_a_script_or_an_emoji_needs(text):
    assert printable(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"sp{ZWJ}am sp{ZWNJ}am", "spam spam"),  # hiding a word from the eye
        (f"При{ZWJ}вет", "Привет"),  # letters that never join
        (f"{ZWNJ}بب{ZWNJ} ب{ZWNJ}a", "بب ب" + "a"),  # at an end, before a space or a Latin letter
        (f"😀{ZWJ}a 😀{ZWJ} x{ZWJ}😀", "😀a 😀 x😀"),  # an emoji beside no emoji
        (f"ب{RLO}{ZWNJ}ب", f"ب{ZWNJ}ب"),  # (what is left once the other marks are dropped)
    ],
)
def test_printable_drops_the_joiners_elsewhere(text, shown):
    assert printable(text) == shown


def test_the_audit_logs_details_isolate_each_value_so_none_turns_the_line_around():
    text = details_text({"list": "this-pod", "label": f"spam{RLO}", "version": 1, "ip": "x"})
    assert text == "list: \u2068this-pod\u2069; label: \u2068spam\u2069; version: 1"


# ---------------------------------------------------------------------------------------------
# This pod's list: what is typed and pasted


def test_a_pasted_address_with_a_password_or_a_token_is_shown_and_audited_masked(
    make_app, pod, admin, state
):
    client = signed_in(make_app().test_client(), "podmin")
    post(
        client, "/lists/this-pod/add", entry="https://bob:s3cretpw@far.example/u/newone", reason="r"
    )
    page = html(client.get("/lists"))
    assert "s3cretpw" not in page
    assert "https://bob:***@far.example/u/newone shows account:newone@far.example." in page
    [added] = audit_rows(state, "list_add")
    assert added["details"]["from"] == "https://bob:***@far.example/u/newone"
    # The command line takes the same path: what it prints and what it records are masked too.
    said = podmod(
        "lists", "remove", "https://far.example/u/newone?private_token=TOK999", "--reason", "r"
    )
    assert said.exit_code == 0, said.output
    assert "TOK999" not in said.output and "private_token=***" in said.output
    [removed] = audit_rows(state, "list_remove")
    assert removed["details"]["from"] == "https://far.example/u/newone?private_token=***"
    assert "s3cretpw" not in html(client.get("/audit")) and "TOK999" not in json.dumps(
        [row["details"] for row in audit_rows(state)]
    )


def test_a_refused_address_is_quoted_without_its_password(make_app, pod, admin):
    client = signed_in(make_app().test_client(), "podmin")
    post(client, "/lists/this-pod/add", entry="https://bob:s3cretpw@far.example/x/y", reason="r")
    page = html(client.get("/lists"))
    assert "s3cretpw" not in page and "https://bob:***@far.example/x/y is not the address" in page


def test_a_typed_label_or_reason_loses_its_format_characters_and_an_invisible_reason_says_why(
    make_app, pod, admin, state
):
    client = signed_in(make_app().test_client(), "podmin")
    post(client, "/lists/this-pod/add", entry="zw.example", label="x", reason=ZWSP)
    assert "Say why: the reason is kept with the entry and in the audit log." in html(
        client.get("/lists")
    )
    post(
        client, "/lists/this-pod/add", entry="spoof.example", label=f"spam{RLO}", reason=f"w{RLM}hy"
    )
    state.rollback()
    [entry] = state.execute("SELECT value, label, comment FROM podmod.list_entries").fetchall()
    assert entry == {"value": "spoof.example", "label": "spam", "comment": "why"}
    audit = html(client.get("/audit"))
    assert RLO not in audit and "label: \u2068spam\u2069" in audit


def test_a_reason_over_2000_characters_is_refused_on_the_web_as_by_the_command_line(
    make_app, pod, admin, state
):
    client = signed_in(make_app().test_client(), "podmin")
    post(client, "/lists/this-pod/add", entry="long.example", reason="y" * 2001)
    assert "The reason is longer than 2000 characters; shorten it." in html(client.get("/lists"))
    state.rollback()
    assert state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"] == 0


def test_a_removal_version_of_this_pods_list_counts_the_entries_left(make_app, pod, admin, state):
    client = signed_in(make_app().test_client(), "podmin")
    post(client, "/lists/this-pod/add", entry="one.example", reason="r")
    post(client, "/lists/this-pod/add", entry="two.example", reason="r")
    post(client, "/lists/this-pod/remove", entry="one.example", reason="r")
    state.rollback()
    versions = state.execute(
        "SELECT number, added, removed, entries FROM podmod.list_versions ORDER BY number"
    ).fetchall()
    assert [(v["added"], v["removed"], v["entries"]) for v in versions] == [
        (1, 0, 1),
        (1, 0, 2),
        (0, 1, 1),
    ]


def test_the_case_of_an_account_on_an_internationalised_host_shows_its_entry_once_added(
    make_app, pod, config, moderator, state
):
    remote = pod.person("bob", "pöd.example")
    report(pod, remote)
    intake_all(config)
    client = signed_in(make_app().test_client(), "moddy")
    case_id = case_id_of(state, "bob@pöd.example")
    post(client, f"/cases/{case_id}/pod-list", what="account", reason="r")
    page = html(client.get(f"/cases/{case_id}"))
    assert "<code>account:bob@pöd.example</code> is on it since version 1" in page, page
    post(client, f"/cases/{case_id}/pod-list", what="pod", reason="r")
    page = html(client.get(f"/cases/{case_id}"))
    assert "<code>pod:pöd.example</code> is on it since version 2" in page
    assert ">Add to this pod's list</button>" not in page
    post(client, f"/cases/{case_id}/pod-list/remove", what="account", reason="r")
    assert "Removed account:bob@xn--pd-fka.example" in html(client.get(f"/cases/{case_id}"))


# ---------------------------------------------------------------------------------------------
# What list servers and publishers write


def test_a_list_servers_last_error_and_held_reason_cannot_turn_podmods_words_around(
    make_app, admin, state
):
    hostile = f"for the file x{RLM}{ZWSP}<b>evil</b>{RLO}.csv, not core.csv"
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, last_error, last_error_at)"
        " VALUES ('core', 'https://lists.example/core.csv', 'review', %s, now())",
        (f"its signature is {hostile}",),
    )
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, held_reason, held_body) SELECT id, 1, 'x', 'held', 0, 0, 0, 'podmod',"
        " %s, 'kind,value,label,comment\n'::bytea FROM podmod.lists",
        (f"held {RLO}because{RLM}",),
    )
    state.commit()
    client = signed_in(make_app().test_client(), "podmin")
    page = html(client.get("/lists"))
    assert '<span class="error-text"><bdi>its signature is for the file x&lt;b&gt;evil' in page
    assert "<bdi>held because</bdi>" in page
    version = html(client.get("/lists/core/versions/1"))
    assert "Held since " in version and " UTC: <bdi>held because</bdi>" in version
    assert not has_format_characters(page) and not has_format_characters(version)


def test_a_command_a_sentence_names_is_set_as_code_and_a_servers_backticks_stay_escaped(
    make_app, admin, state
):
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, last_error, last_error_at)"
        " VALUES ('core', 'https://lists.example/core.csv', 'review', %s, now())",
        ("the server answered '`<img src=x onerror=alert(1)>`'; see `podmod lists show`.",),
    )
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, held_reason, held_body) SELECT id, 1, 'x', 'held', 0, 0, 0, 'podmod',"
        " %s, 'kind,value,label,comment\n'::bytea FROM podmod.lists",
        ("held: approve it with `podmod lists approve core 1`",),
    )
    state.commit()
    client = signed_in(make_app().test_client(), "podmin")
    page = html(client.get("/lists"))
    assert "see <code>podmod lists show</code>." in page, page
    assert "&#39;<code>&lt;img src=x onerror=alert(1)&gt;</code>&#39;" in page, page
    assert "<img src=x" not in page and "`" not in page.split("<main")[-1], page
    version = html(client.get("/lists/core/versions/1"))
    assert "approve it with <code>podmod lists approve core 1</code></bdi>" in version, version
    missing = html(client.get("/lists/nothere/versions/1"))
    assert "`" not in missing.split("<main")[-1], missing


def test_an_obfuscated_rows_text_is_isolated_and_its_match_named_as_the_list_shows_it(
    make_app, env, pod, config, admin, state, tmp_path
):
    hidden = pod.person("hid", "hidden.example")
    report(pod, hidden)
    intake_all(config)
    digest = hashlib.sha256(b"hidden.example").hexdigest()
    shown = f"hid*{RLM}{ZWSP}den.example"
    listed = tmp_path / "hostile.json"
    listed.write_text(json.dumps([{"domain": shown, "digest": digest, "severity": "suspend"}]))
    with open(env["PODMOD_CONFIG"], "a") as written:
        written.write(
            f'[[lists]]\nname = "hostile"\nurl = "{listed.as_uri()}"\npolicy = "review"\n'
            'format = "mastodon-json"\n'
        )
    synced = podmod("lists", "sync")
    assert synced.exit_code == 0, synced.output
    client = signed_in(make_app().test_client(), "podmin")
    version = html(client.get("/lists/hostile/versions/1"))
    assert f"+ pod:<bdi>hid*den.example</bdi> (SHA-256 {digest[:12]}…)" in version, version
    assert not has_format_characters(version)
    page = html(client.get(f"/cases/{case_id_of(state, 'hid@hidden.example')}"))
    assert f"pod:hid*den.example (SHA-256 {digest[:12]}…)" in page
    assert f"sha256:{digest}" not in page


def test_sql_names_an_entry_as_the_python_twin_does(state):
    digest = "3f2a" * 16
    for kind, value, published in (
        ("pod", f"sha256:{digest}", "exa**le.org"),
        ("pod", "=alpha.example", ""),
        ("account", "alice@alpha.example", ""),
    ):
        said = state.execute(
            "SELECT podmod.entry_text(%s, %s, %s) AS three, podmod.entry_text(%s, %s) AS two",
            (kind, value, published, kind, value),
        ).fetchone()
        assert said["three"] == entry_text(kind, value, published)
        assert said["two"] == entry_text(kind, value)
    # An entry in force is named with its published text (and one not in force without it).
    state.execute(
        "INSERT INTO podmod.lists (id, name, url, policy) VALUES (9, 'l', 'https://l.example', "
        "'review')"
    )
    state.execute(
        "INSERT INTO podmod.list_entries (list_id, kind, value, published, added_in)"
        " VALUES (9, 'pod', %s, 'exa**le.org', 1)",
        (f"sha256:{digest}",),
    )
    named = state.execute(
        "SELECT podmod.list_entry_text(9, 'pod', %s) AS here,"
        " podmod.list_entry_text(8, 'pod', %s) AS elsewhere",
        (f"sha256:{digest}", f"sha256:{digest}"),
    ).fetchone()
    assert named["here"] == f"pod:exa**le.org (SHA-256 {digest[:12]}…)"
    assert named["elsewhere"] == f"pod:sha256:{digest}"
    state.rollback()


# ---------------------------------------------------------------------------------------------
# A held version of many rows


@pytest.fixture
def held_many(env: dict[str, str], state: Any, tmp_path: Any) -> int:
    """List `core` with 30 entries in force (r0 … r29.example) and a held version 2 that keeps
    r0 … r9, removes the other 20 and adds 450 (h000 … h449.example)."""
    rows = 450
    listed = tmp_path / "core.csv"
    listed.write_bytes(b"kind,value,label,comment\n")
    with open(env["PODMOD_CONFIG"], "a") as written:
        written.write(f'[[lists]]\nname = "core"\nurl = "{listed.as_uri()}"\npolicy = "review"\n')
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, current_version) VALUES ('core', %s,"
        " 'review', 1)",
        (listed.as_uri(),),
    )
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format) SELECT id, 1, 'a', 'applied', 30, 30, 0, 'podmod' FROM podmod.lists"
    )
    state.execute(
        "INSERT INTO podmod.list_entries (list_id, kind, value, added_in)"
        " SELECT id, 'pod', 'r' || g || '.example', 1 FROM podmod.lists, generate_series(0, 29) g"
    )
    body = "kind,value,label,comment\n" + "".join(f"pod,r{n}.example,,\n" for n in range(10))
    body += "".join(f"pod,h{n:03}.example,spam,placeholder\n" for n in range(rows))
    state.execute(
        "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
        " removed, format, held_reason, held_body) SELECT id, 2, 'b', 'held', %s, %s, 20,"
        " 'podmod', 'placeholder', %s FROM podmod.lists",
        (rows + 10, rows, body.encode()),
    )
    state.commit()
    return rows


def shown_entries(page: str, sign: str) -> list[str]:
    return re.findall(rf"<li><code>{re.escape(sign)} pod:([^<]*)</code></li>", page)


def test_a_held_versions_changes_are_worked_out_once_and_paged(
    make_app, moderator, admin, state, held_many
):
    client = signed_in(make_app().test_client(), "moddy")
    first = html(client.get("/lists/core/versions/2"))
    added = shown_entries(first, "+")
    assert added == [f"h{n:03}.example" for n in range(200)]
    assert sorted(shown_entries(first, "-")) == sorted(f"r{n}.example" for n in range(10, 30))
    state.rollback()
    kept = state.execute(
        "SELECT change, count(*) AS n FROM podmod.held_changes GROUP BY change ORDER BY change"
    ).fetchall()
    assert [(row["change"], row["n"]) for row in kept] == [("added", 450), ("removed", 20)]
    # Its file is not read again: another view shows what was worked out, even from a file
    # that no longer reads.
    state.execute("UPDATE podmod.list_versions SET held_body = 'not a list' WHERE number = 2")
    state.commit()
    assert shown_entries(html(client.get("/lists/core/versions/2")), "+") == added
    # Every added entry can be reached, page by page.
    seen, url = [], "/lists/core/versions/2"
    while url:
        page = html(client.get(url))
        seen += shown_entries(page, "+")
        following = re.search(r'<section id="added">.*?href="([^"]*)#added">Next</a>', page, re.S)
        url = following[1].replace("&amp;", "&") if following else None
    assert seen == [f"h{n:03}.example" for n in range(450)]
    assert client.get("/lists/core/versions/2?added=damaged").status_code == 400
    # Approving it leaves no changes kept behind.
    state.execute(
        "UPDATE podmod.list_versions SET held_body = %s WHERE number = 2",
        (
            (
                "kind,value,label,comment\n"
                + "".join(f"pod,h{n:03}.example,spam,placeholder\n" for n in range(450))
            ).encode(),
        ),
    )
    state.commit()
    admin_client = signed_in(make_app().test_client(), "podmin")
    assert post(admin_client, "/lists/core/versions/2/approve").status_code == 302
    state.rollback()
    assert state.execute("SELECT count(*) AS n FROM podmod.held_changes").fetchone()["n"] == 0


# ---------------------------------------------------------------------------------------------
# A form sent after the session ended


def test_a_form_sent_after_the_session_ended_returns_to_its_page_with_what_was_typed(
    make_app, pod, admin, state
):
    client = signed_in(make_app().test_client(), "podmin")
    token = csrf(client)
    state.execute("DELETE FROM podmod.web_sessions")
    state.commit()
    sent = client.post(
        "/lists/this-pod/add",
        data={"csrf_token": token, "entry": "late.example", "reason": "a long reason typed"},
        headers={"Referer": "http://localhost/lists?before=5"},
    )
    assert sent.status_code == 302 and sent.location == "/login?next=/lists?before%3D5"
    assert "Nothing was done with the form you sent" in html(client.get(sent.location))
    signed = login(client, "podmin", next="/lists?before=5")
    assert signed.location == "/lists?before=5"
    page = html(client.get(signed.location))
    assert "Nothing was done with the form you sent" in page
    assert '<textarea class="kept" readonly rows="4">late.example\n\na long reason typed' in page
    state.rollback()
    assert state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"] == 0


def test_after_an_ended_session_a_form_from_another_site_returns_to_its_actions_own_page(
    make_app, pod, admin, state
):
    for referer, page in (
        ("https://evil.example/lists", "/login?next=/lists"),
        ("http://localhost//evil.example/x", "/login?next=/lists"),
        (None, "/login?next=/lists"),
    ):
        client = make_app().test_client()
        headers = {"Referer": referer} if referer else {}
        sent = client.post(
            "/lists/this-pod/remove",
            data={"csrf_token": csrf(client), "entry": "x.example", "reason": "r"},
            headers=headers,
        )
        assert sent.status_code == 302 and sent.location == page, (referer, sent.location)
    client = make_app().test_client()
    sent = client.post("/cases/12/note", data={"csrf_token": csrf(client), "note": "n"})
    assert sent.location == "/login?next=/cases/12"
    # A visitor who never signed in has nothing kept: strangers cannot fill Redis with forms.
    from podmod.web.auth import UNSENT_KEY

    app = make_app()
    client = app.test_client()
    client.post("/cases/12/note", data={"csrf_token": csrf(client), "note": "n" * 100_000})
    with app.app_context():
        from podmod.web.services import redis_conn

        assert list(redis_conn().scan_iter(UNSENT_KEY.format("*"))) == []
