"""Content scanning end to end, against real PostgreSQL and Redis: list entries of kind hashtag,
phrase, url, pdq and sha256 matched against posts, comments, profiles and photos, as new content
appears and over what is already there; retraction, "not a match", allowlists, per-kind switches,
a backfill resumed after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from podmod import actions, scan
from podmod.config import load_config
from tests.diaspora_pod import DiasporaPod, Person, guid, now
from tests.helpers import cases_json, drain, intake_all, podmod, read_once
from tests.test_lists import ListFiles


@pytest.fixture
def lists(env, state, tmp_path) -> ListFiles:
    directory = tmp_path / "lists"
    directory.mkdir()
    return ListFiles(directory, Path(env["PODMOD_CONFIG"]))


def publish(lists: ListFiles, name: str, rows: list[str], **subscription) -> None:
    """Write, subscribe to and sync a list, as a podmin's cron would."""
    lists.write(name, rows)
    lists.subscribe(name, **subscription)
    result = podmod("lists", "sync", f"--name={name}")
    assert result.exit_code == 0, result.output


def settle() -> None:
    """A reader pass and every job it queued, twice (runs hand over to new content batches)."""
    intake_all(load_config())
    intake_all(load_config())


def content_signals(status: str = "all") -> list[dict]:
    return [s for case in cases_json(status) for s in case["signals"] if s["kind"] == "content"]


def active(signals: list[dict]) -> list[dict]:
    return [s for s in signals if not s["retracted"]]


def open_content_matches() -> list[tuple[str, str]]:
    """(account, entry) of every content match in force on an open case."""
    return sorted(
        (case["account"], signal["entry"])
        for case in cases_json("open")
        for signal in active(case["signals"])
        if signal["kind"] == "content"
    )


def entries_of(signals: list[dict]) -> list[tuple[str, str, str]]:
    return sorted((s["entry"], s["item_type"], s.get("field", "")) for s in active(signals))


def tag(pod: DiasporaPod, item_type: str, item_id: int, name: str) -> None:
    """A tagging as diaspora* stores it for a post, comment or profile."""
    tag_id = pod.conn.execute(
        "INSERT INTO tags (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = excluded.name"
        " RETURNING id",
        (name,),
    ).fetchone()["id"]
    pod.conn.execute(
        "INSERT INTO taggings (tag_id, taggable_id, taggable_type, context, created_at)"
        " VALUES (%s, %s, %s, 'tags', %s)",
        (tag_id, item_id, item_type, now()),
    )


def edit_profile(pod: DiasporaPod, person: Person, **fields: str) -> int:
    assignments = ", ".join(f"{name} = %s" for name in fields)
    return pod.conn.execute(
        f"UPDATE profiles SET {assignments}, updated_at = %s WHERE person_id = %s RETURNING id",
        (*fields.values(), now(), person.id),
    ).fetchone()["id"]


def photo(
    pod: DiasporaPod, author: Person, *, local_name: str | None = None, remote: str | None = None
) -> int:
    path, name = (
        (remote.rsplit("/", 1)[0] + "/", remote.rsplit("/", 1)[1]) if remote else (None, None)
    )
    return pod.conn.execute(
        "INSERT INTO photos (author_id, public, guid, pending, unprocessed_image,"
        " remote_photo_path, remote_photo_name, created_at, updated_at)"
        " VALUES (%s, true, %s, false, %s, %s, %s, %s, %s) RETURNING id",
        (author.id, guid(), local_name, path, name, now(), now()),
    ).fetchone()["id"]


# ---------------------------------------------------------------------------------------------
# New content as it appears


def test_a_new_post_with_a_listed_phrase_becomes_a_content_signal_on_its_authors_case(lists, pod):
    author = pod.person("author")
    publish(lists, "words", ["phrase,Placeholder Offer,spam,"])
    settle()  # the reader starts following the tables

    post_id = pod.post(author, "An ordinary line.\nGet the PLACEHOLDER OFFER today!")
    pod.post(author, "Nothing to see here.")
    settle()

    [case] = cases_json("open")
    assert case["account"] == "author@pod.example"
    assert case["content_matches"] == 1
    assert case["priority"] == 15 + 5  # one content match; a local account
    [signal] = case["signals"]
    assert (
        signal
        | {
            "kind": "content",
            "list": "words",
            "version": 1,
            "entry": "phrase:placeholder offer",
            "label": "spam",
            "item_type": "Post",
            "item_id": post_id,
            "field": "text",
            "retracted": False,
            "person_id": author.id,
        }
        == signal
    )
    assert "Get the PLACEHOLDER OFFER today!" in signal["excerpt"]  # as written, not folded
    assert signal["snapshot"].endswith("Get the PLACEHOLDER OFFER today!")
    assert signal["item_guid"]


def test_a_reshare_matches_its_roots_text_and_goes_to_the_resharer(lists, pod):
    author = pod.person("writer", "far.example")
    resharer = pod.person("resharer")
    publish(lists, "words", ["phrase,placeholder slogan,,"])
    settle()

    root = pod.post(author, "A placeholder slogan.")
    reshare = pod.reshare(resharer, root)
    settle()

    by_item = {s["item_id"]: s for s in active(content_signals())}
    assert set(by_item) == {root, reshare}
    assert by_item[reshare]["post_type"] == "Reshare" and by_item[reshare]["reshare_of"]
    accounts = {c["account"] for c in cases_json("open")}
    assert accounts == {"writer@far.example", "resharer@pod.example"}


def test_comments_and_profile_fields_are_scanned(lists, pod):
    commenter = pod.person("commenter")
    other = pod.person("other", "far.example")
    publish(
        lists,
        "words",
        ["phrase,placeholder slogan,,", "url,bad.example,,", "phrase,placeholder town,,"],
    )
    settle()

    post = pod.post(pod.person("poster"), "A quiet post.")
    comment = pod.comment(commenter, post, "Reply with the placeholder slogan")
    edit_profile(
        pod,
        other,
        bio="Visit [my page](https://www.bad.example/me)",
        location="Placeholder Town",
        first_name="Neutral",
    )
    newcomer = pod.person("newcomer", full_name="placeholder slogan")
    with pod.conn.cursor() as cur:
        cur.execute(
            "UPDATE profiles SET first_name = 'placeholder', last_name = 'slogan'"
            " WHERE person_id = %s",
            (newcomer.id,),
        )
    settle()
    # edited profiles are picked up by the periodic sweep
    with psycopg.connect(load_config().state_database_url) as conn:
        conn.execute(
            "UPDATE podmod.watermarks SET updated_at = now() - interval '1 hour'"
            " WHERE name = 'scan:profile_edits'"
        )
        conn.execute(
            "UPDATE podmod.watermarks SET value = value - 60000000"
            " WHERE name = 'scan:profile_edits'"
        )
    settle()

    found = entries_of(content_signals())
    assert ("phrase:placeholder slogan", "Comment", "text") in found
    assert ("url:https://bad.example/", "Profile", "bio") in found
    assert ("phrase:placeholder town", "Profile", "location") in found
    assert ("phrase:placeholder slogan", "Profile", "name") in found
    [comment_signal] = [s for s in content_signals() if s["item_type"] == "Comment"]
    assert comment_signal["item_id"] == comment and comment_signal["post_id"] == post


def test_hashtags_match_from_diasporas_taggings_and_from_text(lists, pod):
    author = pod.person("tagger")
    publish(lists, "tags", ["hashtag,#PlaceholderTag,,"])
    settle()

    in_text = pod.post(author, "Look: #placeholdertag")
    only_tagged = pod.post(author, "No tag in the text")
    tag(pod, "Post", only_tagged, "PlaceholderTag")
    untagged = pod.post(author, "#placeholdertags is another tag")
    settle()

    items = sorted(s["item_id"] for s in active(content_signals()))
    assert items == sorted([in_text, only_tagged])
    assert untagged not in items


def test_links_match_by_host_or_by_path_prefix(lists, pod):
    author = pod.person("linker", "far.example")
    publish(lists, "links", ["url,spam.example,,", "url,https://host.example/promo,,"])
    settle()

    bare = pod.post(author, "go to https://www.spam.example/x?y=1 now")
    markdown = pod.post(author, "[a page](https://host.example/promo/item)")
    pod.post(author, "https://host.example/promotion and https://host.example/")
    settle()

    found = {(s["item_id"], s["entry"]) for s in active(content_signals())}
    assert found == {
        (bare, "url:https://spam.example/"),
        (markdown, "url:https://host.example/promo"),
    }


# ---------------------------------------------------------------------------------------------
# Content already on the pod: list versions, backfill


def test_a_list_version_scans_what_is_already_on_the_pod_for_its_new_entries_only(
    lists, pod, monkeypatch
):
    author = pod.person("old", "far.example")
    first = pod.post(author, "An older placeholder alpha post.")
    second = pod.post(author, "An older placeholder beta post.")
    settle()
    compiled: list[list[str]] = []
    load = scan.entries.load_matcher

    def recording(config, state, **kwargs):
        matcher = load(config, state, **kwargs)
        if kwargs.get("list_id") is not None:
            compiled.append(sorted(e.value for e in matcher.entries))
        return matcher

    monkeypatch.setattr(scan.entries, "load_matcher", recording)

    publish(lists, "words", ["phrase,placeholder alpha,,"])
    settle()
    assert [s["item_id"] for s in active(content_signals())] == [first]

    publish(lists, "words", ["phrase,placeholder alpha,,", "phrase,placeholder beta,,"])
    settle()

    assert sorted(s["item_id"] for s in active(content_signals())) == [first, second]
    assert compiled == [["placeholder alpha"], ["placeholder beta"]]
    [version_two] = [s for s in content_signals() if s["item_id"] == second]
    assert version_two["version"] == 2


def test_an_entry_removed_from_the_list_retracts_its_matches_and_closes_the_case(lists, pod):
    author = pod.person("someone", "far.example")
    pod.post(author, "placeholder alpha")
    publish(lists, "words", ["phrase,placeholder alpha,,", "phrase,placeholder beta,,"])
    settle()
    assert cases_json("open")[0]["content_matches"] == 1

    publish(lists, "words", ["phrase,placeholder beta,,"])

    [signal] = content_signals()
    assert signal["retracted"] and signal["retracted_because"] == "removed from the list"
    assert cases_json("open") == []
    [case] = cases_json("resolved")
    assert case["resolution"] == "retracted" and case["content_matches"] == 0


def test_backfill_resumes_after_an_interruption_without_duplicates(lists, pod, monkeypatch):
    writers = [pod.person(f"writer{n}", "far.example") for n in range(3)]
    expected = set()
    for n in range(60):
        text = "placeholder gamma" if n % 7 == 0 else f"ordinary text {n}"
        post_id = pod.post(writers[n % 3], text)
        if n % 7 == 0:
            expected.add(post_id)
    lists.write("words", ["phrase,placeholder gamma,,"])
    lists.subscribe("words")
    monkeypatch.setenv("PODMOD_SCAN_CHUNK_SIZE", "5")
    # The list arrived while podmod's content scanning was not yet installed: no run for it.
    with psycopg.connect(load_config().state_database_url) as conn:
        assert podmod("lists", "sync").exit_code == 0
        conn.execute("UPDATE podmod.scan_runs SET done_at = now()")

    config = load_config()
    interrupted = scan.backfill(config, created_by="test", max_steps=4)
    assert interrupted is not None and not interrupted.done
    partial = len(content_signals())
    assert 0 < partial < len(expected)

    result = podmod("scan", "--backfill")
    assert result.exit_code == 0, result.output
    assert "done" in result.output

    assert sorted(s["item_id"] for s in content_signals()) == sorted(expected)
    again = podmod("scan", "--backfill", "--json")
    assert json.loads(again.output)[0]["matched"] == 0
    assert len(content_signals()) == len(expected)


def test_scanning_the_same_batch_twice_adds_nothing(lists, pod):
    author = pod.person("twice")
    publish(lists, "words", ["phrase,placeholder delta,,"])
    settle()
    pod.post(author, "placeholder delta")
    read_once(load_config())
    with psycopg.connect(load_config().state_database_url) as conn:
        [batch_id] = [row[0] for row in conn.execute("SELECT id FROM podmod.scan_batches")]

    assert scan.scan_batch(load_config(), batch_id) == 1
    with psycopg.connect(load_config().state_database_url) as conn:
        conn.execute("UPDATE podmod.scan_batches SET done_at = NULL")
    assert scan.scan_batch(load_config(), batch_id) == 0
    drain(load_config())
    assert len(content_signals()) == 1


# ---------------------------------------------------------------------------------------------
# Precision: not a match, allowlists, per-kind switches


def test_not_a_match_retracts_the_signal_and_it_does_not_come_back(lists, pod):
    author = pod.person("innocent", "far.example")
    post_id = pod.post(author, "A placeholder epsilon, meant well.")
    publish(lists, "words", ["phrase,placeholder epsilon,,"])
    settle()
    [signal] = content_signals()

    result = podmod("not-a-match", str(signal["id"]), "--reason", "a quotation")
    assert result.exit_code == 0, result.output

    [after] = content_signals()
    assert after["retracted"] and after["retracted_because"].startswith("not a match")
    assert cases_json("open") == []
    assert podmod("scan", "--backfill").exit_code == 0
    assert active(content_signals()) == []
    # the same words in another post are still a match (only that item was exempted)
    other = pod.post(author, "Another placeholder epsilon.")
    settle()
    assert [s["item_id"] for s in active(content_signals())] == [other]
    assert post_id != other


def test_not_a_match_for_the_whole_account_covers_its_other_items(lists, pod, config):
    author = pod.person("quoter", "far.example")
    pod.post(author, "placeholder zeta one")
    pod.post(author, "placeholder zeta two")
    publish(lists, "words", ["phrase,placeholder zeta,,"])
    settle()
    first, second = content_signals()

    outcome = actions.mark_not_a_match(
        load_config(), signal_id=first["id"], actor="test", source="cli", whole_account=True
    )
    pod.post(author, "placeholder zeta three")
    settle()

    assert outcome.changed and "2 match(es) retracted" in outcome.message
    assert active(content_signals()) == []
    again = actions.mark_not_a_match(
        load_config(), signal_id=first["id"], actor="test", source="cli", whole_account=True
    )
    assert not again.changed
    with psycopg.connect(load_config().state_database_url) as conn:
        [(_action, details)] = conn.execute(
            "SELECT action, details FROM podmod.audit WHERE action = 'not_a_match'"
        ).fetchall()
    assert details["entry"] == "phrase:placeholder zeta" and details["whole_account"]
    assert second["id"] in details["retracted"]


def test_only_content_signals_can_be_marked_not_a_match(lists, pod):
    pod.person("listed", "far.example")
    publish(lists, "accounts", ["account,listed@far.example,,"])
    [signal] = [s for c in cases_json() for s in c["signals"]]

    result = podmod("not-a-match", str(signal["id"]))

    assert result.exit_code == 5 and "not a content match" in result.output


def test_an_allowlisted_account_gets_no_content_signals(lists, pod):
    trusted = pod.person("trusted", "far.example")
    other = pod.person("other", "far.example")
    publish(lists, "ours", ["account,trusted@far.example,,"], policy="allow", signed=False)
    publish(lists, "words", ["phrase,placeholder eta,,"])
    settle()

    pod.post(trusted, "placeholder eta")
    pod.post(other, "placeholder eta")
    settle()

    assert [s["person_id"] for s in active(content_signals())] == [other.id]


def test_a_pod_on_an_allowlist_covers_its_subdomains_for_content_and_retracts_their_matches(
    lists, pod
):
    trusted = pod.person("trusted", "social.far.example")
    local = pod.person("local")  # a local account is never covered by a pod entry
    publish(lists, "words", ["phrase,placeholder iota,,"])
    pod.post(trusted, "placeholder iota")
    pod.post(local, "placeholder iota")
    settle()
    assert sorted(s["person_id"] for s in active(content_signals())) == sorted(
        [trusted.id, local.id]
    )

    publish(lists, "ours", ["pod,far.example,,"], policy="allow", signed=False)
    settle()
    assert [s["person_id"] for s in active(content_signals())] == [local.id]
    retracted = [s for s in content_signals() if s["retracted"]]
    assert [(s["person_id"], s["retracted_because"]) for s in retracted] == [
        (trusted.id, "the account is on an allowlist")
    ]

    pod.post(trusted, "placeholder iota again")
    settle()
    assert [s["person_id"] for s in active(content_signals())] == [local.id]


def test_an_allowlist_covers_accounts_on_an_internationalised_host_for_content(lists, pod):
    # diaspora* handles may carry a host in Unicode (`trusted@bücher.example`); an allowlist names
    # it as every list does, in punycode (podmod reads `bücher.example` so): its account and pod
    # entries cover those people for content too, before and after their matches.
    trusted = pod.person("trusted", "bücher.example")
    wiki = pod.person("wiki", "wiki.café.example")
    other = pod.person("other", "cafe.example")  # (a look-alike ASCII host: not covered)
    publish(lists, "words", ["phrase,placeholder kappa,,"])
    for person in (trusted, wiki, other):
        pod.post(person, "placeholder kappa")
    settle()
    assert sorted(s["person_id"] for s in active(content_signals())) == sorted(
        [trusted.id, wiki.id, other.id]
    )

    allow = ["account,trusted@bücher.example,,", "pod,café.example,,"]
    publish(lists, "ours", allow, policy="allow", signed=False)
    settle()
    assert [s["person_id"] for s in active(content_signals())] == [other.id]
    retracted = sorted(
        (s["person_id"], s["retracted_because"]) for s in content_signals() if s["retracted"]
    )
    because = "the account is on an allowlist"
    assert retracted == sorted([(trusted.id, because), (wiki.id, because)])

    for person in (trusted, wiki):
        pod.post(person, "placeholder kappa again")
    settle()
    assert [s["person_id"] for s in active(content_signals())] == [other.id]


def test_a_kind_switched_off_for_a_list_gives_no_matches_and_retracts_old_ones(lists, pod):
    author = pod.person("mixed", "far.example")
    pod.post(author, "placeholder theta at https://spam.example/")
    publish(lists, "mixed", ["phrase,placeholder theta,,", "url,spam.example,,"])
    settle()
    assert sorted(s["entry"].split(":")[0] for s in active(content_signals())) == ["phrase", "url"]

    publish(
        lists,
        "mixed",
        ["phrase,placeholder theta,,", "url,spam.example,,", "account,nobody@far.example,,"],
        kinds=["account", "url"],
    )
    pod.post(author, "placeholder theta again")
    settle()

    assert [s["entry"].split(":")[0] for s in active(content_signals())] == ["url"]
    [retracted] = [s for s in content_signals() if s["retracted"]]
    assert retracted["retracted_because"] == "the list's phrase entries are switched off"


def test_a_list_trusted_for_some_labels_matches_only_their_content_entries(lists, pod):
    author = pod.person("labelled", "far.example")
    pod.post(author, "placeholder kappa and placeholder lambda")
    rows = ["phrase,placeholder kappa,spam,", "phrase,placeholder lambda,other,"]
    publish(lists, "words", rows, labels=["spam"])
    settle()
    assert [s["entry"] for s in active(content_signals())] == ["phrase:placeholder kappa"]

    publish(lists, "words", rows, labels=["other"])
    settle()

    assert [s["entry"] for s in active(content_signals())] == ["phrase:placeholder lambda"]
    [retracted] = [s for s in content_signals() if s["retracted"]]
    assert retracted["retracted_because"] == "the list applies only the labels other"


@pytest.mark.parametrize(
    ("rows", "before", "after", "text", "first", "kept"),
    [
        (
            ["phrase,placeholder mu,spam,", "phrase,placeholder nu,other,"],
            {"labels": ["spam"]},
            {"labels": ["other"]},
            "placeholder mu and placeholder nu",
            ["phrase:placeholder mu"],
            "phrase:placeholder nu",
        ),
        (
            ["phrase,placeholder pi,,", "url,pi.example,,"],
            {},
            {"kinds": ["url"]},
            "placeholder pi at https://pi.example/",
            ["phrase:placeholder pi", "url:https://pi.example/"],
            "url:https://pi.example/",
        ),
    ],
    ids=["labels", "kinds"],
)
def test_content_written_after_a_settings_change_is_matched_with_the_new_settings(
    lists, pod, rows, before, after, text, first, kept
):
    # The entries compiled for scanning new content are kept while the lists stay as they were: a
    # change of the labels a list is trusted for, or of the kinds it applies (no new version),
    # must compile them again, or an entry switched off goes on matching new posts.
    publish(lists, "words", rows, **before)
    settle()
    author = pod.person("first", "far.example")
    pod.post(author, text)  # (new content: compiled for it now)
    settle()
    assert sorted(e for e, _, _ in entries_of(content_signals())) == first

    publish(lists, "words", rows, **after)
    settle()
    later = pod.person("later", "far.example")
    pod.post(later, text + ", written later")
    settle()

    matched = open_content_matches()
    assert matched == [("first@far.example", kept), ("later@far.example", kept)], matched


def test_a_list_added_after_the_reader_started_is_matched_against_new_content(lists, pod):
    # The reader keeps the configuration it started with. A content list added to podmod.toml
    # later (cron syncs it) applies as its sync stored it: the reader batches new content for it.
    author = pod.person("early", "far.example")
    publish(lists, "accounts", ["account,nobody@far.example,,"])
    started = load_config()  # (the reader's: no content list in it)
    intake_all(started)
    publish(lists, "words", ["phrase,placeholder xi,spam,"])
    intake_all(started)  # (the scan of what was on the pod when the list came, done)
    assert content_signals() == []

    post_id = pod.post(author, "placeholder xi, written after the list was added")
    intake_all(started)
    intake_all(started)

    matched = [(s["entry"], s["item_id"]) for s in active(content_signals())]
    assert matched == [("phrase:placeholder xi", post_id)], matched


def test_a_version_approved_with_an_older_configuration_keeps_other_lists_matches(lists, pod):
    # The web UI keeps the configuration it started with, and approving a held version there
    # retracts the content matches that no longer apply: the lists' kinds are those their last
    # sync stored, not the web UI's, which does not know a list added since.
    for n in range(4):
        pod.person(f"u{n}", "far.example")
    lists.write("core", [f"account,u{n}@far.example,," for n in range(4)])
    lists.subscribe("core")
    assert podmod("lists", "sync").exit_code == 0
    web_config = load_config()
    pod.post(pod.person("writer", "far.example"), "placeholder omicron")
    publish(lists, "words", ["phrase,placeholder omicron,spam,"])
    settle()
    assert entries_of(content_signals()) == [("phrase:placeholder omicron", "Post", "text")]
    lists.write("core", ["account,u0@far.example,,"])  # 3 of 4 removed: held for approval
    assert "held for approval" in podmod("lists", "sync", "--name=core").output

    from podmod.lists.sync import approve_version

    approve_version(web_config, "core", 2, approved_by="podmin@pod.example")

    assert entries_of(content_signals()) == [("phrase:placeholder omicron", "Post", "text")]
    assert [s for s in content_signals() if s["retracted"]] == []


def test_an_unknown_kind_in_the_config_is_refused_with_a_clear_error(lists):
    lists.write("words", ["phrase,placeholder,,"])
    lists.subscribe("words", kinds=["phrase", "video"])

    result = podmod("lists", "sync")

    assert result.exit_code == 2
    assert "kinds of list 'words'" in result.output and "'video'" in result.output


def test_an_ignored_list_matches_no_content(lists, pod):
    author = pod.person("any", "far.example")
    pod.post(author, "placeholder iota")
    publish(lists, "words", ["phrase,placeholder iota,,"], policy="ignore")
    settle()

    assert content_signals() == []
    # the podmin turns it on: the same version now scans what is there
    publish(lists, "words", ["phrase,placeholder iota,,"], policy="review")
    settle()
    [signal] = content_signals()
    assert signal["version"] == 1 and signal["policy"] == "review"
    # and off again: its matches are retracted
    publish(lists, "words", ["phrase,placeholder iota,,"], policy="ignore")
    [retracted] = content_signals()
    assert retracted["retracted_because"] == "the list no longer applies (policy ignore)"


def test_content_and_report_signals_share_one_case(lists, pod):
    author = pod.person("both")
    reporter = pod.person("reporter")
    publish(lists, "words", ["phrase,placeholder kappa,,"])
    settle()
    post_id = pod.post(author, "placeholder kappa")
    pod.report(reporter, "Post", post_id, "Placeholder reason.")
    settle()

    [case] = cases_json("open")
    assert sorted(s["kind"] for s in case["signals"]) == ["content", "report"]
    assert case["priority"] == 10 + 15 + 5
    # diaspora* marks the report reviewed: the content match keeps the case open
    pod.mark_reviewed("Post", post_id)
    settle()
    assert [c["id"] for c in cases_json("open")] == [case["id"]]


def test_a_post_committed_late_below_the_watermark_is_still_scanned(lists, pod):
    author = pod.person("late", "far.example")
    publish(lists, "words", ["phrase,placeholder nu,,"])
    settle()
    first = pod.post(author, "ordinary")
    # Another transaction took the next id but commits after a later post is read.
    late_id = pod.conn.execute("SELECT nextval('posts_id_seq') AS id").fetchone()["id"]
    pod.post(author, "ordinary again")
    settle()
    pod.conn.execute(
        "INSERT INTO posts (id, author_id, public, guid, type, text, created_at, updated_at)"
        " VALUES (%s, %s, true, %s, 'StatusMessage', 'placeholder nu', %s, %s)",
        (late_id, author.id, guid(), now(), now()),
    )
    settle()

    assert [s["item_id"] for s in content_signals()] == [late_id]
    assert late_id == first + 1


def test_podmod_scan_runs_what_list_versions_queued_and_scans_one_list_on_demand(lists, pod):
    author = pod.person("cli", "far.example")
    pod.post(author, "placeholder xi")
    publish(lists, "words", ["phrase,placeholder xi,,"])

    queued = podmod("scan")
    assert queued.exit_code == 0, queued.output
    assert "1 new matches; done" in queued.output
    assert "Nothing to scan" in podmod("scan").output

    again = podmod("scan", "--list", "words", "--json")
    assert json.loads(again.output)[0]["matched"] == 0
    status = json.loads(podmod("scan", "--status", "--json").output)
    shown = podmod("scan", "--status").output
    assert "0 new items waiting" in shown and "1 active content match" in shown
    assert status["active_matches"] == 1 and status["pending_batches"] == 0
    assert {run["reason"] for run in status["runs"]} == {"list_version", "list"}
    assert podmod("scan", "--list", "nothing").exit_code == 2
