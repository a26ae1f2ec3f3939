"""A content entry that matches far too many authors (a list's `phrase,the`, a bare host every
link goes to, a common image) is held for approval instead of flooding the queue, against real
PostgreSQL and Redis: the threshold the lists use, each author counted once, the staff told once,
a held entry confirmed."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import psycopg

from podmod import scan
from podmod.config import load_config
from podmod.notify import alerts, events
from podmod.notify.mail import render
from tests import test_web
from tests.diaspora_pod import DiasporaPod, Person
from tests.helpers import cases_json, podmod, read_once
from tests.test_lists import ListFiles
from tests.test_scan import active, content_signals, lists, publish, settle

__all__ = ["lists"]
make_app, admin, moderator = test_web.make_app, test_web.admin, test_web.moderator  # fixtures

EVERY_POST = "phrase,placeholder note,,"  # what every post of the crowd says
NARROW = "phrase,placeholder rare,,"


def crowd(
    pod: DiasporaPod, size: int, *, saying: int | None = None, start: int = 0
) -> list[Person]:
    """`size` remote people with a post each; the first `saying` of them (all by default) write
    "placeholder note", the others other words."""
    saying = size if saying is None else saying
    people = []
    for n in range(start, start + size):
        text = f"A placeholder note number {n}." if n - start < saying else f"Other words {n}."
        people.append(pod.person(f"writer{n}", "far.example"))
        pod.post(people[-1], text)
    return people


def query(sql: str, *params) -> list[dict]:
    with psycopg.connect(load_config().state_database_url) as conn:
        conn.row_factory = psycopg.rows.dict_row
        return conn.execute(sql, params).fetchall()


def open_accounts() -> dict[str, int]:
    return {case["account"]: case["content_matches"] for case in cases_json("open")}


def entry_signals(entry: str) -> list[dict]:
    return [s for s in content_signals() if s["entry"] == entry]


def hold_events() -> list[dict]:
    return query("SELECT * FROM podmod.events WHERE type = 'list.held' ORDER BY created_at")


def flooded(lists: ListFiles, pod: DiasporaPod) -> tuple[dict[str, int], int]:
    """300 people writing "placeholder note", one of them also "placeholder spam offer" (listed
    first, an open case) and one "placeholder rare"; then a version adds the phrase every post
    holds and a narrow one. Returns the open cases before the version and the rare post's id."""
    people = crowd(pod, 300)
    pod.post(people[0], "A placeholder spam offer.")
    rare = pod.post(people[7], "Something placeholder rare.")
    publish(lists, "words", ["phrase,placeholder spam offer,,"])
    settle()
    before = open_accounts()
    assert before == {"writer0@far.example": 1}, before
    publish(lists, "words", ["phrase,placeholder spam offer,,", EVERY_POST, NARROW])
    settle()
    return before, rare


def test_a_version_adding_a_phrase_every_post_holds_it_and_leaves_the_queue_as_it_was(
    lists, pod, monkeypatch
):
    # Steps of 50 posts: the version's scan stores the matches of the first hundred authors
    # before the entry passes the floor.
    monkeypatch.setenv("PODMOD_SCAN_CHUNK_SIZE", "50")
    before, rare = flooded(lists, pod)

    # The queue as it was, but for the narrow entry's one match in the same version.
    assert open_accounts() == before | {"writer7@far.example": 1}
    [narrow] = active(entry_signals("phrase:placeholder rare"))
    assert narrow["item_id"] == rare
    # What the broad entry stored before it passed the threshold is retracted, saying why.
    broad = entry_signals("phrase:placeholder note")
    assert broad and not active(broad), f"{len(active(broad))} matches of the held entry in force"
    reasons = {s["retracted_because"] for s in broad}
    assert (
        len(broad) >= 100
        and len(reasons) == 1
        and next(iter(reasons)).startswith("the entry matches too many authors (")
    ), reasons
    assert next(iter(reasons)).endswith(" of 300): held for approval"), reasons

    # The staff are told once, as of a held version; the audit log says it.
    [event] = hold_events()
    assert event["list_name"] == "words" and event["facts"]["entry"] == "phrase:placeholder note"
    # A webhook gets the facts README lists for a held entry (the limit it passed: a share).
    body = events.webhook_body(
        load_config(),
        event_id=event["id"],
        event_type="list.held",
        created_at=event["created_at"],
        case_id=None,
        account=None,
        list_name="words",
        facts=event["facts"],
    )
    assert sorted(body["details"]) == sorted(
        [
            "entry",
            "held_reason",
            "authors",
            "known",
            "share",
            "confirm_command",
            "sampled",
            "cases_closed",
            "cases_alerted",
            "accounts_locked",
            "matches_kept",
        ]
    ), body["details"]
    assert body["details"]["known"] >= 300 and body["details"]["share"] == 0.05, body
    payload = alerts.digest_payload(load_config(), [event])
    assert payload["entries_held_count"] == 1 and payload["held_count"] == 0, payload
    assert (
        "podmod lists confirm-entry words 'phrase:placeholder note'"
        in (payload["entries_held"][0]["reason"])
    )
    for language, heading in (
        ("en", "1 list entry is held for matching too many authors:"),
        ("de", "1 Listeneintrag wird zurückgehalten, weil er zu viele Autoren trifft:"),
    ):
        mail = render(load_config(), "digest", language, {**payload, "language": language})
        assert heading in mail["text"] and heading in mail["html"], mail["text"]
        assert "phrase:placeholder note" in mail["text"]
    assert mail["subject"] == "podmod: 1 Listeneintrag zurückgehalten", mail["subject"]
    # Why, in German too: podmod's sentence translated, its command as it is.
    for part in ("text", "html"):
        assert re.search(
            r"Liste words, Eintrag phrase:placeholder note(</a>)?: er trifft \d+ Autoren, mehr"
            r" als die 5 % der \d+ diesem Pod bekannten Personen, die eine Liste treffen darf;"
            r" seine Treffer werden zurückgehalten: bestätige ihn auf der Listenseite oder mit",
            mail[part],
        ), mail[part]
        assert "podmod lists confirm-entry words " in mail[part], mail[part]
        assert "matches too many authors (" not in mail[part], mail[part]
        assert "of list words matches" not in mail[part], mail[part]
    [audit] = query("SELECT * FROM podmod.audit WHERE action = 'list_entry_hold'")
    assert audit["source"] == "list:words" and "phrase:placeholder note" in audit["reason"]

    # `podmod lists show`, `podmod check` and the lists page name it with the command to run.
    shown = podmod("lists", "show").output
    assert (
        "  entry held for approval: phrase:placeholder note, the entry matches too many authors"
        in shown
    ), shown
    assert "(`podmod lists confirm-entry words 'phrase:placeholder note'`)" in shown, shown
    [listed] = json.loads(podmod("lists", "show", "--json").output)
    assert [held["entry"] for held in listed["held_entries"]] == ["phrase:placeholder note"]
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert report["list words"]["status"] == "warn", report["list words"]
    assert "its entry phrase:placeholder note is held" in report["list words"]["detail"]

    # Another sync, another scan: nothing changes, nobody is told again.
    assert podmod("lists", "sync", "--name=words").exit_code == 0
    settle()
    assert open_accounts() == before | {"writer7@far.example": 1}
    assert len(hold_events()) == 1


def test_new_content_after_the_hold_stores_nothing_for_the_held_entry(lists, pod):
    flooded(lists, pod)
    newcomer = pod.person("newcomer", "far.example")
    pod.post(newcomer, "A placeholder note, and placeholder rare too.")
    settle()

    [case] = [c for c in cases_json("open") if c["account"] == "newcomer@far.example"]
    assert [s["entry"] for s in active(case["signals"])] == ["phrase:placeholder rare"]


def test_confirming_a_held_entry_stores_its_matches(lists, pod):
    flooded(lists, pod)

    confirmed = podmod("lists", "confirm-entry", "words", "phrase:placeholder note")
    assert confirmed.exit_code == 0, confirmed.output
    assert "words: phrase:placeholder note confirmed: its matches are stored" in confirmed.output
    settle()

    assert len(active(entry_signals("phrase:placeholder note"))) == 300
    assert len(open_accounts()) == 300
    [audit] = query("SELECT * FROM podmod.audit WHERE action = 'list_entry_confirm'")
    assert audit["source"] == "list:words" and audit["actor"]
    # (its sample of the pod's users' posts was for deciding: not kept once decided)
    assert query("SELECT sample FROM podmod.content_entry_holds") == [{"sample": []}]
    assert "held for approval" not in podmod("lists", "show").output
    again = podmod("lists", "confirm-entry", "words", "phrase:placeholder note")
    assert again.exit_code == 2, again.output
    assert "List 'words' holds no entry 'phrase:placeholder note' for approval;" in again.output
    # New content matching it is stored too.
    pod.post(pod.person("latecomer", "far.example"), "placeholder note")
    settle()
    assert len(active(entry_signals("phrase:placeholder note"))) == 301


def test_the_lists_page_names_a_held_entry_and_an_admin_confirms_it_there(
    lists, pod, make_app, admin, moderator
):
    flooded(lists, pod)
    app = make_app()
    moderating = test_web.signed_in(app.test_client(), "moddy")
    page = test_web.html(moderating.get("/lists"))
    assert (
        "The entry <code><bdi>phrase:placeholder note</bdi></code> of <strong>words</strong>"
        in (page)
    )
    assert "the entry matches too many authors (" in page and ">Confirm it</button>" not in page
    # (what it is held for is said once: "is held for approval: … authors (N of M); its …")
    assert re.search(r"too many authors \([\d,]+ of [\d,]+\); its matches are not stored", page)
    url = "/lists/words/entries/confirm"
    assert test_web.post(moderating, url, entry="phrase:placeholder note").status_code == 403
    podmin = test_web.signed_in(app.test_client(), "podmin")
    assert ">Confirm it</button>" in test_web.html(podmin.get("/lists"))
    forged = podmin.post(url, data={"entry": "phrase:placeholder note", "csrf_token": "x" * 43})
    assert forged.status_code == 400
    assert not active(entry_signals("phrase:placeholder note"))

    confirmed = test_web.post(podmin, url, entry="phrase:placeholder note")
    assert confirmed.status_code == 302
    page = test_web.html(podmin.get("/lists"))
    assert "words: phrase:placeholder note confirmed: its matches are stored" in page
    assert "The entry <code>" not in page
    settle()
    assert len(active(entry_signals("phrase:placeholder note"))) == 300
    [audit] = query("SELECT * FROM podmod.audit WHERE action = 'list_entry_confirm'")
    assert audit["actor"] == "podmin@pod.example", audit


def test_the_threshold_follows_max_new_match_share_and_the_floor(lists, pod):
    """300 people: 120 write "placeholder note", 90 of them "placeholder other" too."""
    for n in range(300):
        text = "placeholder note" if n < 120 else "other words"
        pod.post(pod.person(f"writer{n}", "far.example"), text + (", placeholder other" * (n < 90)))
    lists.list_sync = {"max_new_match_share": 0.5}
    publish(lists, "lenient", [EVERY_POST])  # 120 ≤ half of 300: not held
    # 120 > a fifth of 300 and > 100: held; 90 > a fifth, but not more than 100: not held.
    publish(lists, "strict", [EVERY_POST, "phrase,placeholder other,,"], max_new_match_share=0.2)
    settle()

    def in_force(list_name: str, entry: str) -> int:
        return sum(s["list"] == list_name for s in active(entry_signals(entry)))

    assert in_force("lenient", "phrase:placeholder note") == 120
    assert in_force("strict", "phrase:placeholder other") == 90
    assert in_force("strict", "phrase:placeholder note") == 0
    assert [(e["list_name"], e["facts"]["entry"]) for e in hold_events()] == [
        ("strict", "phrase:placeholder note")
    ]


def test_on_a_pod_that_knows_many_people_the_authors_cap_holds_before_the_share(lists, pod):
    """A share of the people a large pod knows is tens of thousands of authors: the cap
    (list_sync.max_content_authors) holds a content entry first, never below the floor."""
    for n in range(300):
        text = "placeholder note" if n < 120 else "other words"
        pod.post(pod.person(f"writer{n}", "far.example"), text + (", placeholder other" * (n < 90)))
    # Half of 300 would let 150 authors be matched; the cap, 80, holds the 120 (not the 90: the
    # floor, 100, stays).
    lists.list_sync = {"max_new_match_share": 0.5, "max_content_authors": 80}
    publish(lists, "words", [EVERY_POST, "phrase,placeholder other,,"])
    settle()

    assert len(active(entry_signals("phrase:placeholder note"))) == 0
    assert len(active(entry_signals("phrase:placeholder other"))) == 90
    assert [e["facts"]["entry"] for e in hold_events()] == ["phrase:placeholder note"]
    [audited] = query("SELECT reason FROM podmod.audit WHERE action = 'list_entry_hold'")
    assert audited["reason"].startswith("phrase:placeholder note of list words matches "), audited
    assert (
        " authors, more than the 80 authors a content entry may match"
        " (list_sync.max_content_authors); its matches are held" in audited["reason"]
    ), audited
    payload = alerts.digest_payload(load_config(), hold_events())
    german = render(load_config(), "digest", "de", {**payload, "language": "de"})["text"]
    assert (
        ": er trifft 120 Autoren, mehr als die 80, die ein Inhaltseintrag treffen darf"
        " (list_sync.max_content_authors)" in german
    ), german


def test_a_batch_stored_twice_counts_its_authors_once(lists, pod):
    publish(lists, "words", [EVERY_POST])
    settle()
    crowd(pod, 60)
    read_once(load_config())
    batches = [row["id"] for row in query("SELECT id FROM podmod.scan_batches ORDER BY id")]
    assert batches

    for _ in range(2):  # (a job run twice: the second finds the batch undone again)
        query("UPDATE podmod.scan_batches SET done_at = NULL RETURNING id")
        for batch_id in batches:
            scan.scan_batch(load_config(), batch_id)

    [counted] = query("SELECT count(*) AS authors FROM podmod.content_entry_authors")
    assert counted["authors"] == 60
    assert len(active(entry_signals("phrase:placeholder note"))) == 60 and not hold_events()
    # 50 more make 110 authors, past the floor and far past 5% of 110 people: held.
    crowd(pod, 50, start=60)
    settle()
    assert len(hold_events()) == 1
    assert not active(entry_signals("phrase:placeholder note"))


def test_workers_storing_batches_at_once_count_every_author_once(lists, pod, monkeypatch):
    publish(lists, "words", [EVERY_POST])
    settle()
    monkeypatch.setenv("PODMOD_SCAN_BATCH_SIZE", "30")
    crowd(pod, 120)
    read_once(load_config())
    batches = [row["id"] for row in query("SELECT id FROM podmod.scan_batches ORDER BY id")]
    assert len(batches) >= 4, batches  # (4 of posts, and their authors' profiles)

    with ThreadPoolExecutor(4) as workers:
        list(workers.map(lambda batch_id: scan.scan_batch(load_config(), batch_id), batches))

    # Whichever batch came last found 120 authors, past the floor: held once, nothing in force.
    [counted] = query("SELECT count(*) AS authors FROM podmod.content_entry_authors")
    assert counted["authors"] == 120
    [hold] = query("SELECT authors FROM podmod.content_entry_holds")
    assert hold["authors"] == 120 and len(hold_events()) == 1
    assert not active(entry_signals("phrase:placeholder note"))


# Post text is the pod's users' and hostile: markup, a script, a direction override, a zero-width
# space and a terminal's escape sequence around the words the entry matches.
HOSTILE = (
    "<script>window.__pwned = 1</script> placeholder note"
    " \u202eevil\u202c sp\u200bam \x1b]0;owned\x07<img src=x onerror=alert(1)>"
)


def note_guids(pod: DiasporaPod) -> dict[str, str]:
    """Each author's post guid of the one that says "placeholder note"."""
    rows = pod.conn.execute(
        "SELECT lower(pe.diaspora_handle) AS account, p.guid FROM posts p"
        " JOIN people pe ON pe.id = p.author_id WHERE p.text ILIKE '%placeholder note%'"
    ).fetchall()
    return {row["account"]: row["guid"] for row in rows}


def test_a_held_entry_keeps_a_few_of_its_matches_for_the_podmin_to_judge(lists, pod):
    flooded(lists, pod)
    guids = note_guids(pod)

    [hold] = query("SELECT * FROM podmod.content_entry_holds")
    sample = hold["sample"]
    # One match per author, five at most, each with where it is and the words around the match.
    assert len(sample) == 5 and len({match["account"] for match in sample}) == 5, sample
    for match in sample:
        assert match["item_type"] == "Post" and match["item_guid"] == guids[match["account"]]
        assert "placeholder note" in match["excerpt"].lower(), match
        assert match["occurred_at"], match
    moments = [match["occurred_at"] for match in sample]
    assert moments == sorted(moments, reverse=True)

    shown = podmod("lists", "show").output
    assert "    5 matches of it when held, one per author, the newest first:" in shown, shown
    first = sample[0]
    assert (
        f"      {first['account']}, post /posts/{first['item_guid']}, " in shown
        and f": «{first['excerpt']}»" in shown
    ), shown
    [listed] = json.loads(podmod("lists", "show", "--json").output)
    [held] = listed["held_entries"]
    assert [match["path"] for match in held["sample"]] == [
        f"/posts/{match['item_guid']}" for match in sample
    ]
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert (
        "`podmod lists show` and the lists page show 5 of its matches"
        in (report["list words"]["detail"])
    ), report["list words"]

    # The staff's mail counts them and links the lists page; no handle nor text of theirs.
    payload = alerts.digest_payload(load_config(), hold_events())
    for language, told in (
        ("en", "The lists page shows 5 of its matches (one per author) to decide on it."),
        (
            "de",
            "Die Listenseite zeigt 5 seiner Treffer (einen je Autor), um darüber zu entscheiden.",
        ),
    ):
        mail = render(load_config(), "digest", language, {**payload, "language": language})
        assert told in mail["text"] and told in mail["html"], mail["text"]
        for match in sample:
            assert match["account"] not in mail["text"] + mail["html"]
            assert match["excerpt"] not in mail["text"] + mail["html"]


def test_hostile_post_text_in_a_held_entrys_matches_shows_as_text(
    lists, pod, make_app, admin, moderator
):
    crowd(pod, 150, saying=0)
    for n in range(150):
        pod.post(pod.person(f"hostile{n}", "far.example"), HOSTILE)
    publish(lists, "words", [EVERY_POST])
    settle()
    [hold] = query("SELECT sample FROM podmod.content_entry_holds")
    assert len(hold["sample"]) == 5 and "<script>" in hold["sample"][0]["excerpt"]

    page = test_web.html(test_web.signed_in(make_app().test_client(), "podmin").get("/lists"))
    assert "5 of its matches when it was held, one per author, the newest first:" in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt; placeholder note" in page, page
    assert "<script>window.__pwned" not in page and "<img src=x" not in page
    for hidden in ("\u202e", "\u202c", "\u200b", "\x1b", "\x07"):
        assert hidden not in page, repr(hidden)
    shown = podmod("lists", "show").output
    assert "«<script>window.__pwned = 1</script> placeholder note evil spam" in shown, shown
    for hidden in ("\u202e", "\u202c", "\u200b", "\x1b", "\x07"):
        assert hidden not in shown, repr(hidden)


def test_confirming_a_held_entry_scans_that_entry_alone(lists, pod):
    """The list's other entries matched the pod's content before: the run after a confirmation
    matches the confirmed entry alone (a phrase: not the photos its list's image hash needs)."""
    flooded(lists, pod)
    publish(
        lists,
        "words",
        ["phrase,placeholder spam offer,,", EVERY_POST, NARROW, f"pdq,{'ab' * 32},,"],
    )
    settle()
    before = {s["id"] for s in active(content_signals())}

    assert podmod("lists", "confirm-entry", "words", "phrase:placeholder note").exit_code == 0
    [run] = json.loads(podmod("scan", "--status", "--json").output)["runs"][:1]
    assert sorted(run["tables"]) == ["Comment", "Post", "Profile"], run["tables"]
    assert run["entry"] == "phrase:placeholder note" and run["list"] == "words", run
    assert "entry phrase:placeholder note" in podmod("scan", "--status").output
    settle()
    now = active(content_signals())
    assert {s["id"] for s in now} >= before
    assert len([s for s in now if s["entry"] == "phrase:placeholder note"]) == 300


def test_the_cases_a_held_entry_opened_close_and_its_hold_tells_what_they_did(
    lists, pod, monkeypatch, make_app, admin, moderator
):
    """On a `lock` list: the cases a too-broad phrase opened before it was held alerted the staff
    and a moderator locked one of their accounts; the hold closes them, locks nobody, and tells
    the staff what those cases did, so that they check the lock."""
    from podmod import actions
    from podmod.db import pod_connection, state_connection

    monkeypatch.setenv("PODMOD_SCAN_CHUNK_SIZE", "50")
    monkeypatch.setenv("PODMOD_ALERTS_MIN_PRIORITY", "15")  # (one content match alerts)
    for n in range(3):
        pod.post(pod.person(f"local{n}"), "A placeholder note from here.")
    crowd(pod, 300)
    publish(lists, "words", [EVERY_POST], policy="lock")
    config = load_config()
    with state_connection(config) as state, pod_connection(config) as pod_conn:
        [run_id] = scan.runs.pending_runs(state)
        scan.process_run(config, pod_conn, state, run_id, max_steps=2)  # (100 posts, 100 cases)
        assert alerts.alert_cases(config, state) == 100
    [local0] = [case for case in cases_json("open") if case["account"] == "local0@pod.example"]
    locked = actions.lock_account(
        config,
        actor="moddy@pod.example",
        source="web",
        handle="local0@pod.example",
        case_id=local0["id"],
    )
    assert locked.changed, locked
    settle()

    [hold] = query("SELECT * FROM podmod.content_entry_holds")
    assert (hold["matches_retracted"], hold["cases_closed"]) == (100, 100), hold
    assert (hold["cases_alerted"], hold["accounts_locked"]) == (100, 1), hold
    assert open_accounts() == {}
    # Nobody locked by the list; the one lock is the moderator's, and only it tells an account.
    users = pod.conn.execute("SELECT username FROM users WHERE locked_at IS NOT NULL").fetchall()
    assert [row["username"] for row in users] == ["local0"]
    told = query("SELECT account, facts FROM podmod.events WHERE type = 'account.locked'")
    assert [(row["account"], row["facts"].get("by")) for row in told] == [
        ("local0@pod.example", "staff")
    ], told
    outcomes = {case["resolution"] for case in cases_json("all")}
    assert outcomes == {"retracted", "locked"}, outcomes

    undone = (
        "100 matches retracted, 100 cases closed (100 had alerted the staff; a moderator had"
        " locked 1 account on them: check it)"
    )
    [audit] = query("SELECT reason FROM podmod.audit WHERE action = 'list_entry_hold'")
    assert audit["reason"].endswith(f"; {undone}"), audit
    page = test_web.html(test_web.signed_in(make_app().test_client(), "podmin").get("/lists"))
    assert f"Holding it undid what it had done: {undone}." in page, page
    assert f"holding it undid: {undone}" in podmod("lists", "show").output
    payload = alerts.digest_payload(load_config(), hold_events())
    for language, told_lines in (
        (
            "en",
            "100 cases it had opened were closed. 100 of them had alerted you. A moderator had"
            " locked 1 account on them: check it.",
        ),
        (
            "de",
            "100 Fälle, die er eröffnet hatte, wurden geschlossen. 100 davon hatten dich"
            " alarmiert. Ein Moderator hatte in diesen Fällen 1 Konto gesperrt: prüfe es.",
        ),
    ):
        mail = render(load_config(), "digest", language, {**payload, "language": language})
        assert told_lines in mail["text"], mail["text"]


def test_a_flood_of_throwaway_authors_holds_the_entry_but_keeps_the_cases_it_had_before(
    lists, pod, make_app, admin, moderator
):
    """A list names a campaign's slogan, and its three accounts' posts have been in the queue for
    a day when the campaign floods the pod with it from 150 throwaway accounts to get the entry
    held. The hold stops new matches and retracts the flood's; the campaign's cases stay open,
    and the staff hear what it kept."""
    publish(lists, "words", [EVERY_POST])
    accounts = [pod.person(f"campaign{n}", "far.example") for n in range(3)]
    for person in accounts:
        pod.post(person, "A placeholder note, again.")
    settle()
    campaign = {f"campaign{n}@far.example": 1 for n in range(3)}
    assert open_accounts() == campaign
    query(  # (a day and an hour pass)
        "UPDATE podmod.signals SET created_at = created_at - interval '25 hours'"
        " WHERE kind = 'content' RETURNING id"
    )

    crowd(pod, 150)
    settle()

    assert len(hold_events()) == 1 and open_accounts() == campaign
    [hold] = query("SELECT * FROM podmod.content_entry_holds")
    assert hold["authors"] > 100 and hold["matches_kept"] == 3, hold
    assert len(active(entry_signals("phrase:placeholder note"))) == 3
    kept = "3 matches stored a day or more before the hold stay in force"
    [audit] = query("SELECT reason, details FROM podmod.audit WHERE action = 'list_entry_hold'")
    assert audit["reason"].endswith(kept) and audit["details"]["matches_kept"] == 3, audit
    assert f"holding it kept: {kept}" in podmod("lists", "show").output
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert f"; {kept}" in report["list words"]["detail"], report["list words"]
    page = test_web.html(test_web.signed_in(make_app().test_client(), "podmin").get("/lists"))
    assert f" {kept}." in page, page
    payload = alerts.digest_payload(load_config(), hold_events())
    for language, told in (
        ("en", "3 matches it had stored a day or more before stay in force."),
        (
            "de",
            "3 Treffer, die er einen Tag oder länger vorher gespeichert hatte, bleiben in Kraft.",
        ),
    ):
        mail = render(load_config(), "digest", language, {**payload, "language": language})
        assert told in mail["text"] and told in mail["html"], mail["text"]

    # The campaign's new posts, like the flood's, wait for the podmin's confirmation.
    pod.post(accounts[0], "Another placeholder note.")
    settle()
    assert open_accounts() == campaign


def test_a_confirmed_entry_is_not_held_again_by_a_second_flood(lists, pod):
    flooded(lists, pod)
    assert podmod("lists", "confirm-entry", "words", "phrase:placeholder note").exit_code == 0
    settle()

    crowd(pod, 150, start=300)
    settle()

    assert len(active(entry_signals("phrase:placeholder note"))) == 450
    assert len(hold_events()) == 1
