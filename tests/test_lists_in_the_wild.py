"""The fediverse's shared lists synced end to end, read as their authors mean them: every published
shape (the files of ../shared/lists-formats and generated ones in the same shapes), subdomains on
label boundaries and ports, severities and their weight, noop, obfuscated rows and digests,
canaries, labels and lock_labels, `kinds` for account and pod entries, this pod's own list, and
`podmod lists publish --format mastodon` — against real PostgreSQL, lists served from disk."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from podmod.lists.parse import parse_list
from tests import test_list_shapes
from tests.helpers import assert_cases_consistent, cases_json, podmod, read_once
from tests.test_lists import ListFiles, case_of, list_signals, sync

SHARED = Path(__file__).resolve().parents[2] / "shared" / "lists-formats"
MASTODON_HEADER = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"


@pytest.fixture
def lists(env, state, tmp_path) -> ListFiles:
    directory = tmp_path / "lists"
    directory.mkdir()
    return ListFiles(directory, Path(env["PODMOD_CONFIG"]))


def serve(lists: ListFiles, name: str, text: str, *, suffix: str = ".csv", **settings) -> None:
    """Write a list file of any shape (unsigned) and subscribe to it."""
    path = lists.directory / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8")
    lists.subscribe(name, signed=False, url=path.as_uri(), **settings)


def entries_of(state, name: str) -> set[tuple[str, str, str]]:
    state.rollback()
    rows = state.execute(
        "SELECT e.kind, e.value, e.severity FROM podmod.list_entries e"
        " JOIN podmod.lists l ON l.id = e.list_id WHERE l.name = %s AND e.removed_in IS NULL",
        (name,),
    ).fetchall()
    state.rollback()
    return {(row["kind"], row["value"], row["severity"]) for row in rows}


def shown(name: str) -> dict:
    [row] = [r for r in json.loads(podmod("lists", "show", "--json").output) if r["name"] == name]
    return row


def open_accounts() -> list[str]:
    return sorted(case["account"] for case in cases_json("open"))


def pods(*rows: tuple[str, str]) -> set[tuple[str, str, str]]:
    return {("pod", domain, severity) for domain, severity in rows}


# What each published file holds, as its author means it: entries (pod, domain, severity), the
# format podmod detects, and what it skips.
PUBLISHED = {
    "fediblockhole/data-mastodon.json": (
        "mastodon-json",
        pods(
            ("example.org", "suspend"),
            ("example2.org", "silence"),
            ("example3.org", "suspend"),
            ("example4.org", "noop"),
            ("example5.org", "suspend"),
            ("example6.org", "suspend"),
            ("example7.org", "suspend"),
            ("example8.org", "suspend"),
            ("example9.org", "silence"),
            ("example15.org", "suspend"),
        ),
        {},
    ),
    "fediblockhole/data-noop-01.csv": (
        "domain-csv",
        pods(
            ("public-comment.example.org", "noop"),
            ("private-comment.example.org", "noop"),
            ("diff-comment.example.org", "noop"),
            ("2diff-comment.example.org", "noop"),
        ),
        {},
    ),
    "fediblockhole/data-silences-01.csv": (
        "domain-csv",
        pods(
            ("public-comment.example.org", "silence"),
            ("private-comment.example.org", "silence"),
            ("diff-comment.example.org", "silence"),
            ("2diff-comment.example.org", "silence"),
        ),
        {},
    ),
    "fediblockhole/data-suspends-01.csv": (
        "domain-csv",
        pods(
            ("public-comment.example.org", "suspend"),
            ("private-comment.example.org", "suspend"),
            ("diff-comment.example.org", "suspend"),
            ("2diff-comment.example.org", "suspend"),
        ),
        {},
    ),
    "fediblockhole/demo-allowlist-02.csv": ("domain-csv", pods(("example.org", "suspend")), {}),
    "generated/allowlist.csv": (
        "domain-csv",
        pods(("canary.tier0.example", "suspend"), ("omicron.example", "suspend")),
        {},
    ),
    "generated/column-order.csv": (
        "domain-csv",
        pods(("000delete.this.line.example", "suspend"), ("delta.example", "suspend")),
        {},
    ),
    "generated/domains.txt": (
        "domains",
        pods(("lambda.example", "suspend"), ("mu.example", "suspend")),
        {},
    ),
    "generated/export-with-obfuscated-and-noop.csv": (
        "mastodon-csv",
        pods(("eta.example", "suspend"), ("kappa.example", "noop")),
        {"obfuscated_rows": 2},
    ),
    "generated/labelled-with-canary.csv": (
        "mastodon-csv",
        pods(("epsilon.example", "suspend"), ("zeta.example", "silence")),
        {"canaries": ["aud.invalid"]},
    ),
    "generated/rapidblock.json": (
        "rapidblock-json",
        pods(("nu.example", "suspend")),
        {"unblocked_rows": 1},
    ),
    "generated/unified-tier-mastodon.csv": (
        "mastodon-csv",
        pods(("alpha.example", "suspend"), ("beta.example", "silence")),
        {},
    ),
    "generated/unified-tier-plain.csv": (
        "domain-csv",
        pods(
            ("alpha.example", "suspend"),
            ("beta.example", "silence"),
            ("sub.gamma.example", "suspend"),
        ),
        {},
    ),
    "mastodon/domain_allows.csv": (
        "mastodon-csv",
        pods(("good.domain", "suspend"), ("better.domain", "suspend")),
        {},
    ),
    "mastodon/domain_blocks.csv": (
        "mastodon-csv",
        pods(
            ("bad.domain", "silence"),
            ("worse.domain", "suspend"),
            ("reject.media", "noop"),
            ("reject.follows", "silence"),
        ),
        {},
    ),
    "mastodon/domain_blocks_list.txt": (
        "domains",
        pods(("bad.domain", "suspend"), ("worse.domain", "suspend"), ("reject.media", "suspend")),
        {},
    ),
}


def test_the_shared_folder_holds_no_file_these_tests_do_not_know():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside the checkout")
    files = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file()}
    assert files - {"README.md"} == set(PUBLISHED)


@pytest.mark.parametrize("relative", sorted(PUBLISHED))
def test_every_published_list_file_syncs_with_the_entries_its_author_means(
    lists, pod, state, relative
):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside the checkout")
    expected_format, expected_entries, skipped = PUBLISHED[relative]
    source = SHARED / relative
    target = lists.directory / source.name
    shutil.copyfile(source, target)
    lists.subscribe("wild", signed=False, url=target.as_uri())

    code, output = sync()

    assert code == 0, output
    assert f"version 1 applied ({expected_format}" in output
    assert entries_of(state, "wild") == expected_entries
    row = shown("wild")
    assert row["format"] == expected_format
    assert {key: row[key] for key in skipped} == skipped


def test_a_pod_entry_covers_its_host_and_every_subdomain_on_label_boundaries_and_any_port(
    lists, pod
):
    for username, host in [
        ("apex", "alpha.example"),
        ("deep", "x.y.alpha.example"),
        ("ported", "x.alpha.example:8443"),
        ("lookalike", "notalpha.example"),
        ("suffixed", "alpha.example.other"),
        ("prefix", "alpha.examples"),
    ]:
        pod.person(username, host)
    pod.person("local")
    serve(lists, "dni", MASTODON_HEADER + "alpha.example,suspend,false,false,,false\n")

    assert sync()[0] == 0

    assert open_accounts() == [
        "apex@alpha.example",
        "deep@x.y.alpha.example",
        "ported@x.alpha.example:8443",
    ]


@pytest.mark.parametrize("lookup_cost", [0, 10**9], ids=["names-looked-up", "entries-hashed"])
def test_people_on_an_internationalised_host_are_matched_as_entries_name_it(
    lists, pod, monkeypatch, lookup_cost
):
    """diaspora* handles may carry a host in Unicode (`user@bücher.example`); lists name it in
    punycode (`xn--bcher-kva.example`, as podmod reads `bücher.example` too), and Mastodon's digest
    of a hidden domain is of that form. Each way of naming it matches the person: a domain, a
    parent domain, a digest and an account entry; a look-alike host does not."""
    from podmod.lists import apply

    monkeypatch.setattr(apply, "LOOKUP_COST", lookup_cost)
    for username, host in [
        ("plain", "bücher.example"),
        ("deep", "wiki.bücher.example"),
        ("ported", "bücher.example:8443"),
        ("puny", "xn--bcher-kva.example"),
        ("hidden", "mañana.example"),
        ("named", "café.example"),
        ("near", "cafe.example"),
        ("other", "café.example"),
    ]:
        pod.person(username, host)
    pod.person("local")
    digest = hashlib.sha256(b"xn--maana-pta.example").hexdigest()
    serve(lists, "dni", MASTODON_HEADER + "Bücher.example,suspend,false,false,,false\n")
    serve(
        lists,
        "api",
        json.dumps([{"domain": "xn--m***a-pta.example", "digest": digest, "severity": "suspend"}]),
        suffix=".json",
    )
    serve(lists, "blocks", "named@café.example\n")

    code, output = sync()

    assert code == 0, output
    assert open_accounts() == [
        "deep@wiki.bücher.example",
        "hidden@mañana.example",
        "named@café.example",
        "plain@bücher.example",
        "ported@bücher.example:8443",
        "puny@xn--bcher-kva.example",
    ]


@pytest.mark.parametrize("lookup_cost", [0, 10**9], ids=["names-looked-up", "entries-hashed"])
def test_the_entries_naming_a_host_are_the_same_looked_up_or_hashed(
    lists, pod, monkeypatch, lookup_cost
):
    # A pod whose host names are far fewer than the entries has each name looked up in the index
    # (a first sync of a big list); otherwise the entries are hashed against the names. Forced
    # here one way and the other, on every rule of a pod entry at once: both find the same.
    from podmod.lists import apply

    monkeypatch.setattr(apply, "LOOKUP_COST", lookup_cost)
    for username, host in [
        ("apex", "alpha.example"),
        ("deep", "x.y.alpha.example"),
        ("ported", "x.alpha.example:8443"),
        ("lookalike", "notalpha.example"),
        ("quiet", "ok.alpha.example"),
        ("hidden", "sub.hidden.example"),
        ("porthost", "beta.example:8443"),
        ("otherport", "beta.example:9000"),
        ("silenced", "gamma.example"),
        ("labelled", "delta.example"),
    ]:
        pod.person(username, host)
    pod.person("local")
    digest = hashlib.sha256(b"hidden.example").hexdigest()
    serve(
        lists,
        "big",
        json.dumps(
            [
                {"domain": "alpha.example", "severity": "suspend"},
                {"domain": "ok.alpha.example", "severity": "noop"},
                {"domain": "hid***.example", "digest": digest, "severity": "suspend"},
                {"domain": "beta.example:8443", "severity": "suspend"},
                {"domain": "gamma.example", "severity": "silence"},
                *({"domain": f"elsewhere{n}.example", "severity": "suspend"} for n in range(50)),
            ]
        ),
        suffix=".json",
    )
    serve(
        lists,
        "labelled",
        MASTODON_HEADER
        + "delta.example,suspend,false,false,iftas:spam,false\n"
        + "alpha.example,suspend,false,false,iftas:other,false\n",
        labels=["spam"],
    )

    code, output = sync()

    assert code == 0, output
    assert open_accounts() == [
        "apex@alpha.example",
        "deep@x.y.alpha.example",
        "hidden@sub.hidden.example",
        "labelled@delta.example",
        "ported@x.alpha.example:8443",
        "porthost@beta.example:8443",
        "silenced@gamma.example",
    ]
    entries = {(s["list"], s["entry"], s["severity"]) for s in list_signals()}
    assert ("labelled", "pod:alpha.example", "suspend") not in entries
    assert ("big", "pod:gamma.example", "silence") in entries
    # (an entry known by its digest is named as the list shows it)
    assert ("big", f"pod:hid***.example (SHA-256 {digest[:12]}…)", "suspend") in entries


def test_a_sync_that_adds_many_matches_leaves_the_cases_and_signals_analysed(lists, pod, state):
    # As after any bulk load: the next sync (and the queue page) must not plan on the few rows
    # the tables held when autovacuum last looked (see the retraction's test in test_lists).
    pod_id = pod._pod_id("many.example")
    pod.conn.execute(
        "INSERT INTO people (guid, diaspora_handle, serialized_public_key, created_at, updated_at,"
        " pod_id) SELECT md5('many' || n), 'p' || n || '@many.example', 'placeholder key', now(),"
        " now(), %s FROM generate_series(1, 1100) n",
        (pod_id,),
    )
    # (every person the pod knows: held, as reaching too far, unless the list allows it)
    serve(lists, "dni", "many.example\n", suffix=".txt", max_new_match_share=1.0)

    code, output = sync()

    assert code == 0 and "1,100 new matches" in output, output
    state.rollback()
    rows = {
        row["name"]: row["reltuples"]
        for row in state.execute(
            "SELECT relname AS name, reltuples FROM pg_class WHERE oid IN"
            " ('podmod.signals'::regclass, 'podmod.cases'::regclass)"
        )
    }
    assert rows == {"signals": 1100, "cases": 1100}, rows


def test_the_matching_names_a_host_as_the_database_function_does(state):
    # The many-people matching names the pod's hosts in Python; one-host probes (the allowlist
    # check of a case) ask podmod.host_names() in SQL: the two must agree on every host. (An
    # internationalised host is named in punycode, as list entries name it, which SQL cannot
    # write: the matching names `bücher.example` as the function names `xn--bcher-kva.example`.)
    from podmod.lists.apply import ascii_host, host_names

    hosts = [
        "pod.example",
        "x.y.alpha.example",
        "x.alpha.example:8443",
        "localhost",
        "localhost:3000",
        "a.example:",
        "a.example:1:2",
        "a..b.example",
        ".lead.example",
        "trail.example.",
        "",
        ":80",
        "xn--bcher-kva.example",
        "bücher.example",
        "s0.d0.example:8443",
        "a.b.c.d.e.f.g.h.i.j.example",
        "cf",
        "1.2.3.4",
        "1.2.3.4:8080",
        "1.2.3",
        "[2001:db8::2]",
        "[2001:db8::2]:8443",
        "[2001:db8::2]:1:2",
        "[2001:db8::2",
        "[2001:db8::2]x",
        "2001:db8::2",
    ]
    for host in hosts:
        asked = ascii_host(host) if not host.isascii() else host
        [row] = state.execute("SELECT podmod.host_names(%s) AS names", (asked,)).fetchall()
        assert [name for name, _ in host_names(host)] == row["names"], host
        depths = [depth for _, depth in host_names(host)]
        assert depths == sorted(depths) and depths[0] == 1, host


def test_a_whole_top_level_domain_covers_every_host_under_it(lists, pod, state):
    # Real lists block top-level domains, written `.tk` or `tk` (Oliphant's unified tiers,
    # Mastodon exports): each covers every host under it, as Mastodon's rule_for reads it.
    for username, host in [
        ("apex", "pod.test"),
        ("deep", "x.y.test:8443"),
        ("second", "test.example"),
        ("longer", "pod.testing"),
        ("other", "pod.example"),
    ]:
        pod.person(username, host)
    serve(
        lists,
        "tiers",
        "domain,severity,reject_media,reject_reports,public_comment,obfuscate\n"
        ".test,silence,False,False,,False\n"
        "invalid-looking-but-one-label,suspend,False,False,,False\n"
        "test,suspend,False,False,,False\n",
    )

    code, output = sync()

    assert code == 0, output
    # `.test` and `test` are one domain: the plain row counts (in Mastodon `.test` names no host).
    assert entries_of(state, "tiers") == pods(
        ("test", "suspend"), ("invalid-looking-but-one-label", "suspend")
    )
    assert open_accounts() == ["apex@pod.test", "deep@x.y.test:8443"]


def test_ip_addresses_are_read_as_addresses_and_cover_only_themselves(lists, pod, state):
    for username, host in [
        ("six", "[2001:db8::2]"),
        ("sixport", "[2001:db8::2]:8443"),
        ("four", "192.0.2.1"),
        ("fourport", "192.0.2.1:3000"),
        ("near", "198.51.100.1"),
    ]:
        pod.person(username, host)
    # A bare IP v6 address is not read as a host and a port (`2001:db8:0:0:0:0:0` and `2`); a
    # domain its last labels could spell (51.100.1) never covers an address.
    serve(
        lists,
        "addresses",
        MASTODON_HEADER + "2001:DB8:0:0:0:0:0:2,suspend,false,false,,false\n"
        "[2001:db8::3]:8443,suspend,false,false,,false\n"
        "192.0.2.1,suspend,false,false,,false\n"
        "51.100.1,suspend,false,false,,false\n",
    )

    code, output = sync()

    assert code == 0, output
    assert entries_of(state, "addresses") == pods(
        ("[2001:db8::2]", "suspend"),
        ("[2001:db8::3]:8443", "suspend"),
        ("192.0.2.1", "suspend"),
        ("51.100.1", "suspend"),
    )
    assert open_accounts() == [
        "four@192.0.2.1",
        "fourport@192.0.2.1:3000",
        "six@[2001:db8::2]",
        "sixport@[2001:db8::2]:8443",
    ]


def test_a_pod_entry_with_a_port_covers_that_port_only(lists, pod):
    pod.person("a", "beta.example:8443")
    pod.person("b", "x.beta.example:8443")
    pod.person("c", "beta.example")
    pod.person("d", "beta.example:9000")
    serve(lists, "ports", "beta.example:8443\n", suffix=".txt")

    assert sync()[0] == 0

    assert open_accounts() == ["a@beta.example:8443", "b@x.beta.example:8443"]


def test_the_most_specific_entry_decides_so_a_noop_subdomain_is_exempt(lists, pod, state):
    pod.person("main", "big.example")
    pod.person("quiet", "ok.big.example")
    pod.person("deeper", "a.ok.big.example")
    pod.person("other", "spam.big.example")
    serve(
        lists,
        "tiers",
        MASTODON_HEADER
        + "big.example,suspend,false,false,,false\n"
        + "ok.big.example,noop,false,false,a well-run subdomain,false\n",
    )

    assert sync()[0] == 0

    assert open_accounts() == ["main@big.example", "other@spam.big.example"]
    assert entries_of(state, "tiers") == pods(
        ("big.example", "suspend"), ("ok.big.example", "noop")
    )
    assert shown("tiers")["noop"] == 1


def test_suspend_weighs_more_than_silence_and_noop_flags_nobody(lists, pod, state):
    pod.person("s", "suspended.example")
    pod.person("l", "limited.example")
    pod.person("n", "recorded.example")
    serve(
        lists,
        "sev",
        "domain,severity\n"
        "suspended.example,suspend\n"
        "limited.example,Silence\n"
        "recorded.example,NOOP\n",
    )

    code, output = sync()

    assert code == 0, output
    priorities = {case["account"]: case["priority"] for case in cases_json("open")}
    assert priorities == {"s@suspended.example": 30, "l@limited.example": 15}
    [silenced] = [s for s in list_signals() if s["entry"] == "pod:limited.example"]
    assert silenced["severity"] == "silence"
    assert shown("sev")["noop"] == 1
    shown_text = podmod("lists", "show").output
    assert "3 entries (1 suspend, 1 silence, 1 noop)" in shown_text
    assert_cases_consistent(state)


def test_a_new_severity_reweighs_the_match_it_keeps(lists, pod, state):
    pod.person("l", "limited.example")
    serve(lists, "sev", "domain,severity\nlimited.example,suspend\nother.example,suspend\n")
    sync()
    assert [c["priority"] for c in cases_json("open")] == [30]

    serve(lists, "sev", "domain,severity\nlimited.example,silence\nother.example,suspend\n")
    code, output = sync()

    assert code == 0, output
    [case] = cases_json("open")
    assert case["priority"] == 15
    [signal] = [s for s in case["signals"] if not s["retracted"]]
    assert signal["severity"] == "silence" and signal["version"] == 2
    assert_cases_consistent(state)


def test_obfuscated_rows_never_refuse_a_list_and_a_digest_matches_the_real_domain(lists, pod):
    pod.person("hidden", "sub.hidden.example")
    pod.person("plain", "plain.example")
    pod.person("masked", "masked.example")
    digest = hashlib.sha256(b"hidden.example").hexdigest()
    serve(
        lists,
        "api",
        json.dumps(
            [
                {"domain": "hid***.example", "digest": digest, "severity": "suspend"},
                {"domain": "mas***.example", "severity": "suspend", "obfuscate": True},
                {"domain": "plain.example", "severity": "silence", "comment": "placeholder"},
            ]
        ),
        suffix=".json",
    )

    code, output = sync()

    assert code == 0, output
    assert "1 obfuscated row skipped" in output
    assert open_accounts() == ["hidden@sub.hidden.example", "plain@plain.example"]
    [by_digest] = [s for s in list_signals() if "SHA-256" in s["entry"]]
    assert by_digest["entry"] == f"pod:hid***.example (SHA-256 {digest[:12]}…)"
    diff = json.loads(podmod("lists", "diff", "api", "--json").output)
    assert f"pod:hid***.example (SHA-256 {digest[:12]}…)" in diff["added"]
    assert shown("api")["obfuscated_rows"] == 1


def test_canary_rows_never_match_and_a_required_canary_must_be_there(lists, pod, state):
    pod.person("canary", "aud.invalid")
    pod.person("bird", "canary.example")
    pod.person("real", "epsilon.example")
    with_canary = (
        MASTODON_HEADER
        + "epsilon.example,suspend,FALSE,FALSE,iftas:hate-speech,TRUE\n"
        + "canary.example,suspend,FALSE,FALSE,iftas:canary,TRUE\n"
        + "aud.invalid,suspend,FALSE,FALSE,iftas:canary,TRUE\n"
    )
    serve(lists, "aud", with_canary, require_canary="aud.invalid")

    code, output = sync()

    assert code == 0, output
    assert "canary canary.example, aud.invalid" in output
    assert open_accounts() == ["real@epsilon.example"]

    serve(
        lists,
        "aud",
        MASTODON_HEADER + "epsilon.example,suspend,FALSE,FALSE,iftas:hate-speech,TRUE\n"
        "zeta.example,suspend,FALSE,FALSE,,TRUE\n",
        require_canary="aud.invalid",
    )
    code, output = sync()

    assert code == 1
    assert "has no canary row aud.invalid" in output and "version in force stays" in output
    assert shown("aud")["version"] == 1
    assert entries_of(state, "aud") == pods(("epsilon.example", "suspend"))


PODMOD_HEADER = "kind,value,label,comment\n"


@pytest.mark.parametrize(
    "canary_row",
    ["pod,aud.invalid,,canary row", "account,aud@aud.invalid,,", "pod,aud.invalid:8443,,"],
    ids=["pod", "account", "on-a-port"],
)
def test_a_canary_row_of_podmods_own_format_is_a_canary(lists, pod, state, canary_row):
    # podmod's format is what `lists publish` writes and the README's require_canary example
    # uses: its canary row is a canary too, never an entry; on another port still `aud.invalid`.
    pod.person("real", "epsilon.example")
    serve(
        lists,
        "core",
        PODMOD_HEADER + canary_row + "\npod,epsilon.example,spam,\n",
        require_canary="aud.invalid",
    )

    code, output = sync()

    assert code == 0, output
    assert "canary aud.invalid" in output, output
    assert entries_of(state, "core") == {("pod", "epsilon.example", "")}
    assert open_accounts() == ["real@epsilon.example"]
    assert "canary" not in shown("core")["labels_in_use"], shown("core")
    serve(
        lists, "core", PODMOD_HEADER + "pod,epsilon.example,spam,\n", require_canary="aud.invalid"
    )
    code, output = sync()
    assert code == 1 and "has no canary row aud.invalid" in output, output


def test_a_label_canary_marks_a_canary_row_of_any_kind_in_podmods_format(lists, pod, state):
    pod.person("bird", "canary.example")
    pod.person("real", "epsilon.example")
    serve(
        lists,
        "core",
        PODMOD_HEADER
        + "phrase,placeholder canary text,canary,\n"
        + "pod,canary.example,iftas:canary,\n"
        + "pod,epsilon.example,,\n",
    )

    code, output = sync()

    assert code == 0, output
    assert "canary placeholder canary text, canary.example" in output, output
    assert entries_of(state, "core") == {("pod", "epsilon.example", "")}
    assert open_accounts() == ["real@epsilon.example"]


def test_a_lists_severity_setting_gives_podmods_rows_their_severity(lists, pod, state):
    # podmod's rows name no severity: `severity = "silence"` on the subscription makes them
    # silences (15 points, not a suspension's 30), as it does for every other shape.
    pod.person("loud", "loud.example")
    serve(lists, "quiet", PODMOD_HEADER + "pod,loud.example,spam,\n", severity="silence")

    code, output = sync()

    assert code == 0, output
    assert entries_of(state, "quiet") == {("pod", "loud.example", "silence")}
    [case] = cases_json("open")
    assert [s["severity"] for s in case["signals"] if s["kind"] == "list"] == ["silence"]
    assert case["priority"] == 15, case


def test_a_lists_severity_setting_gives_its_rows_that_name_none_a_severity(lists, pod, state):
    # Publishers split lists by severity into files (`…_silence.txt`): the file cannot say it.
    pod.person("loud", "loud.example")
    pod.person("bad", "bad.example")
    serve(lists, "quiet", "loud.example\nbad.example,suspend\n", suffix=".txt", severity="silence")

    code, output = sync()

    assert code == 0, output
    quiet = pods(("loud.example", "silence"), ("bad.example", "suspend"))
    assert entries_of(state, "quiet") == quiet
    assert {s["entry"]: s["severity"] for s in list_signals()}["pod:loud.example"] == "silence"
    assert "rows without a severity: silence" in podmod("lists", "show").output
    serve(lists, "quiet", "loud.example\nbad.example,suspend\n", suffix=".txt")  # (setting gone)

    code, output = sync()

    assert code == 0 and "version 2 applied (domains)" in output, output  # (the file read again)
    loud = pods(("loud.example", "suspend"), ("bad.example", "suspend"))
    assert entries_of(state, "quiet") == loud
    assert {s["entry"]: s["severity"] for s in list_signals()} == {
        "pod:loud.example": "suspend",  # (it was silence: the signal follows its entry)
        "pod:bad.example": "suspend",
    }


def test_labels_select_the_entries_a_list_is_trusted_for(lists, pod):
    pod.person("hate", "hate.example")
    pod.person("spam", "spam.example")
    pod.person("both", "both.example")
    serve(
        lists,
        "dni",
        MASTODON_HEADER
        + "hate.example,suspend,false,false,iftas:hate-speech,false\n"
        + "spam.example,suspend,false,false,iftas:spam,false\n"
        + "both.example,suspend,false,false,iftas:spam;hate-speech,false\n",
        labels=["iftas:Hate-Speech"],
    )

    assert sync()[0] == 0

    assert open_accounts() == ["both@both.example", "hate@hate.example"]

    serve(
        lists,
        "dni",
        MASTODON_HEADER
        + "hate.example,suspend,false,false,iftas:hate-speech,false\n"
        + "spam.example,suspend,false,false,iftas:spam,false\n"
        + "both.example,suspend,false,false,iftas:spam;hate-speech,false\n",
        labels=["spam"],
    )
    code, output = sync()

    assert code == 0 and "settings changed (labels [spam])" in output
    assert open_accounts() == ["both@both.example", "spam@spam.example"]


@pytest.mark.parametrize(
    ("label", "lock_label"),
    [("campaign", "campaign"), ("Spam campaign", "spam_campaign")],
    ids=["as-written", "words-joined-otherwise"],
)
def test_lock_labels_lock_on_a_review_list_only_what_they_name(lists, pod, label, lock_label):
    pod.person("campaigner")
    pod.person("spammer")
    lists.write(
        "core",
        [f"account,campaigner@pod.example,{label},", "account,spammer@pod.example,spam,"],
    )
    lists.subscribe("core", lock_labels=[lock_label])

    code, output = sync()

    assert code == 0, output
    assert "core: locked campaigner@pod.example (policy lock)" in output
    locked = pod.conn.execute("SELECT username FROM users WHERE locked_at IS NOT NULL").fetchall()
    assert [row["username"] for row in locked] == ["campaigner"]
    # The lock decided campaigner's case (closed as locked); spammer's waits for review.
    assert open_accounts() == ["spammer@pod.example"]


def test_a_label_is_one_label_however_each_publisher_joins_its_words(lists, pod, state):
    """IFTAS and Garden Fence write `hate-speech`, mastodon.social's comments `Hate speech`: a
    subscription's labels select both, written either way or with underscores; and as they show,
    a zero-width space copied after the words, or full-width letters, making no other label."""
    pod.person("tagged", "tagged.example")
    pod.person("spelled", "spelled.example")
    pod.person("copied", "copied.example")
    pod.person("bots", "bots.example")
    serve(
        lists,
        "dni",
        MASTODON_HEADER + "tagged.example,suspend,false,false,iftas:hate-speech,false\n",
        labels=["hate_speech"],
    )
    serve(
        lists,
        "flagship",
        "domain,severity,public_comment\n"
        "spelled.example,suspend,Hate speech\n"
        "copied.example,suspend,\uff28ate speech\u200b\n"
        "bots.example,silence,Third-party bots\n",
        labels=["HATE SPEECH"],
    )

    code, output = sync()

    assert code == 0, output
    assert open_accounts() == [
        "copied@copied.example",
        "spelled@spelled.example",
        "tagged@tagged.example",
    ]
    stored = state.execute(
        "SELECT e.value, e.label, e.labels FROM podmod.list_entries e ORDER BY e.value"
    ).fetchall()
    assert [(row["value"], row["label"], row["labels"]) for row in stored] == [
        ("bots.example", "third-party bots", ["third-party-bots"]),
        ("copied.example", "hate speech", ["hate-speech"]),
        ("spelled.example", "hate speech", ["hate-speech"]),
        ("tagged.example", "hate-speech", ["hate-speech"]),
    ]
    shown = podmod("lists", "show").output
    assert "only labels hate-speech" in shown
    assert "labels in use: hate-speech 2, third-party-bots 1\n" in shown
    [flagship] = [
        r for r in json.loads(podmod("lists", "show", "--json").output) if r["name"] == "flagship"
    ]
    assert flagship["labels_in_use"] == [
        {"label": "hate-speech", "entries": 2},
        {"label": "third-party-bots", "entries": 1},
    ]
    assert (flagship["labels_used"], flagship["entries"], flagship["silence"]) == (2, 3, 1)


def test_a_version_read_by_an_older_podmod_is_read_again_and_its_labels_take_their_form(
    lists, pod, state
):
    """A label with a zero-width space was a label of its own until podmod read labels as they
    show: a version stored by that podmod is read again at the next sync, same bytes or not, and
    its entry is then the `spam` a subscription's labels select."""
    pod.person("copied", "copied.example")
    body = "domain,severity,public_comment\ncopied.example,suspend,spam\u200b\n"
    serve(lists, "flagship", body, labels=["spam"])
    assert sync()[0] == 0
    # As podmod's reading 7 stored it: the label's key with its zero-width space.
    state.execute("UPDATE podmod.list_entries SET labels = ARRAY['spam\u200b']")
    state.execute("UPDATE podmod.list_versions SET reader = 7")
    state.commit()

    code, output = sync()

    assert code == 0 and "version 2 applied" in output, output
    stored = state.execute("SELECT labels FROM podmod.list_entries WHERE removed_in IS NULL")
    assert [row["labels"] for row in stored.fetchall()] == [["spam"]]
    assert open_accounts() == ["copied@copied.example"]


def test_lists_show_names_the_most_used_labels_and_how_many_more(lists, pod):
    rows = [f"account,u{n}@far.example,label{n % 12};common," for n in range(36)]
    lists.write("core", rows)
    lists.subscribe("core")

    assert sync()[0] == 0

    shown = podmod("lists", "show").output
    counts = ", ".join(f"label{n} 3" for n in sorted(range(12), key=str)[:9])
    assert f"labels in use: common 36, {counts} and 3 more\n" in shown


def test_kinds_switch_off_account_and_pod_entries_too(lists, pod):
    pod.person("named", "far.example")
    pod.person("onpod", "bad.example")
    lists.write("core", ["account,named@far.example,,", "pod,bad.example,,"])
    lists.subscribe("core", kinds=["pod"])

    assert sync()[0] == 0
    assert open_accounts() == ["onpod@bad.example"]

    lists.subscribe("core", kinds=["account"])
    code, output = sync()

    assert code == 0 and "settings changed (kinds [account])" in output
    assert open_accounts() == ["named@far.example"]


def test_rapidblock_unblocked_hosts_are_not_entries(lists, pod):
    pod.person("blocked", "nu.example")
    pod.person("unblocked", "xi.example")
    serve(
        lists,
        "rapid",
        json.dumps(
            {
                "@spec": "https://rapidblock.org/spec/v1/",
                "publishedAt": "2024-01-01T00:00:00Z",
                "blocks": {
                    "nu.example": {"isBlocked": True, "reason": "placeholder", "tags": ["spam"]},
                    "xi.example": {"isBlocked": False, "reason": "reviewed", "tags": []},
                },
            }
        ),
        suffix=".json",
    )

    code, output = sync()

    assert code == 0, output
    assert "1 not blocked (isBlocked false) row skipped" in output
    assert open_accounts() == ["blocked@nu.example"]
    [signal] = list_signals()
    assert signal["label"] == "spam"


def test_gotosocials_open_peers_are_not_entries(lists, pod, state):
    """A GoToSocial server's answer to /api/v1/instance/peers?filter=suspended,open names the
    servers it federates with beside those it suspended: only the suspended flag anyone."""
    pod.person("blocked", "omicron.example")
    pod.person("peer", "pi.example")
    pod.person("other", "rho.example")
    serve(
        lists,
        "gts",
        json.dumps(
            [
                {
                    "domain": "omicron.example",
                    "suspended_at": "2020-05-13T13:29:12.000Z",
                    "public_comment": "spam",
                },
                {"domain": "pi.example"},
                {"domain": "rho.example"},
            ]
        ),
        suffix=".json",
    )

    code, output = sync()

    assert code == 0, output
    assert "version 1 applied (mastodon-json, 2 not blocked (open peers) rows skipped)" in output
    assert open_accounts() == ["blocked@omicron.example"]
    row = state.execute("SELECT unblocked_rows FROM podmod.list_versions").fetchone()
    assert row["unblocked_rows"] == 2


def test_a_lemmy_servers_blocked_instances_flag_and_the_others_do_not(lists, pod):
    for username, host in [
        ("a", "blocked.example"),
        ("b", "sub.other.example"),
        ("c", "known.example"),
        ("d", "allowed.example"),
    ]:
        pod.person(username, host)
    serve(
        lists, "lemmy", json.dumps(test_list_shapes.LEMMY_ANSWER), suffix=".json", skip_invalid=True
    )

    code, output = sync()

    assert code == 0 and "version 1 applied (lemmy-json, 1 invalid row skipped)" in output, output
    assert open_accounts() == ["a@blocked.example", "b@sub.other.example"]


def test_a_mixed_export_is_read_row_by_row_as_meant(lists, pod, state):
    for username, host in [
        ("a", "one.example"),
        ("b", "sub.two.example"),
        ("c", "three.example"),
        ("d", "four.example"),
        ("e", "five.example"),
    ]:
        pod.person(username, host)
    serve(
        lists,
        "mixed",
        "\ufeff"
        + '"severity","domain","public_comment","obfuscate","reject_media",\r\n'
        + '"suspend","one.example","iftas:spam;cib","False","False",\r\n'
        + '"SILENCE","two.example","placeholder","TRUE","False",\r\n'
        + '"noop","three.example","","False","False",\r\n'
        + '"suspend","fo**.example","obfuscated","True","False",\r\n'
        + '"suspend","check.invalid","canary","False","False",\r\n'
        + "\r\n",
    )

    code, output = sync()

    assert code == 0, output
    assert (
        "version 1 applied (domain-csv, 1 obfuscated row skipped, canary check.invalid)" in output
    )
    assert open_accounts() == ["a@one.example", "b@sub.two.example"]
    labels = {s["entry"]: s["label"] for s in list_signals()}
    assert labels == {"pod:one.example": "spam; cib", "pod:two.example": "placeholder"}
    assert_cases_consistent(state)


def test_a_file_of_no_known_shape_is_refused_in_one_sentence_and_changes_nothing(lists, pod, state):
    pod.person("x", "far.example")
    serve(lists, "core", "domain\nfar.example\n")
    assert sync()[0] == 0
    serve(lists, "core", "hello world, this is not a list\nsecond line\n")

    code, output = sync()

    assert code == 1
    assert "Line 1 of the list is 'hello world, this is not a list'" in output
    assert shown("core")["version"] == 1
    assert entries_of(state, "core") == pods(("far.example", "suspend"))


WEB_PAGE = '<!DOCTYPE html>\n<html lang="en">\n<head><title>core.csv at main</title></head>\n'


def test_a_forge_page_of_a_signed_list_is_refused_naming_the_files_own_address(
    lists, pod, state, tmp_path
):
    """A podmin who copies the address of the page a forge shows for the list file (GitHub's
    /blob/, GitLab's /-/blob/, Codeberg's /src/branch/) gets that page, and no signature beside
    it: the sync says so and names the file's address, which then syncs."""
    from podmod.loopback import LoopbackServer

    pod.person("x", "far.example")
    lists.write("core", ["pod,far.example,spam,"])
    raw = lists.directory / "pub" / "lists" / "raw" / "main"
    page = lists.directory / "pub" / "lists" / "blob" / "main"
    raw.mkdir(parents=True)
    page.mkdir(parents=True)
    for name in ("core.csv", "core.csv.minisig"):
        (lists.directory / name).rename(raw / name)
    (page / "core.csv").write_text(WEB_PAGE)
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.list_sync = {"ca_bundle": str(server.cert_path)}
        lists.subscribe("core", url=server.url("pub/lists/blob/main/core.csv"))
        code, output = sync()
        failed = shown("core")
        lists.subscribe("core", url=server.url("pub/lists/raw/main/core.csv"))
        fixed = sync()

    said = (
        "core: FAILED: The list's address serves a web page (it begins '<!DOCTYPE html>'), not a"
        " list file; set url to the file's own address,"
        f" {server.url('pub/lists/raw/main/core.csv')}."
    )
    assert code == 1 and said in output, output
    assert failed["version"] is None and failed["last_error"] == said.removeprefix("core: FAILED: ")
    assert fixed[0] == 0 and "version 1 applied" in fixed[1], fixed[1]
    assert open_accounts() == ["x@far.example"]


def test_an_instances_list_of_peers_is_refused_as_not_its_blocks_and_changes_nothing(
    lists, pod, state
):
    pod.person("x", "far.example")
    serve(lists, "peers", '[{"domain": "far.example", "severity": "suspend"}]', suffix=".json")
    assert sync()[0] == 0
    serve(lists, "peers", '["far.example", "near.example", "other.example"]', suffix=".json")

    code, output = sync()

    assert code == 1
    assert "peers: FAILED: The list is a JSON array of names, not of domain blocks" in output
    assert "(its blocks are at /api/v1/instance/domain_blocks)" in output
    assert shown("peers")["version"] == 1
    assert entries_of(state, "peers") == pods(("far.example", "suspend"))


def test_a_forced_format_reads_the_file_as_that_shape(lists, pod):
    pod.person("x", "far.example")
    serve(lists, "forced", "far.example\n", suffix=".txt", format="mastodon-csv")

    code, output = sync()

    assert code == 1 and "FAILED" in output
    serve(lists, "forced", "far.example\n", suffix=".txt", format="domains")
    code, output = sync()
    assert code == 0 and "version 1 applied (domains" in output
    assert open_accounts() == ["x@far.example"]


def test_accounts_that_appear_later_on_a_subdomain_are_matched_by_the_reader(lists, pod, config):
    serve(lists, "dni", "alpha.example\n", suffix=".txt")
    assert sync()[0] == 0
    assert open_accounts() == []

    pod.person("late", "new.alpha.example")
    pod.person("elsewhere", "alpha.other")
    read_once(config)

    assert open_accounts() == ["late@new.alpha.example"]


def test_an_allowlisted_pod_exempts_its_subdomains(lists, pod):
    pod.person("news", "desk.press.example")
    pod.person("bad", "bad.example")
    serve(lists, "block", "press.example\nbad.example\n", suffix=".txt")
    serve(lists, "ours", "#domain\npress.example\n", policy="allow")

    assert sync()[0] == 0

    assert open_accounts() == ["bad@bad.example"]


def test_an_allowlist_written_with_noop_rows_still_allows(lists, pod):
    # FediBlockHole writes its allowlists with a severity column, "noop" on every row ("Only the
    # domain field matters for allowlists"): noop limits nothing in a blocklist, but on an
    # allowlist the entry allows.
    pod.person("news", "desk.press.example")
    pod.person("writer", "press.example")
    pod.person("bad", "bad.example")
    serve(lists, "block", "press.example\nbad.example\n", suffix=".txt")
    serve(lists, "block2", "kind,value,label,comment\naccount,writer@press.example,spam,\n")
    allow = '"domain","severity","public_comment"\n"press.example","noop","only the domain"\n'
    serve(lists, "ours", allow, policy="allow")

    assert sync()[0] == 0

    assert open_accounts() == ["bad@bad.example"]


def test_wildcard_rows_of_a_real_export_cover_their_pods(lists, pod, state):
    # A list imported from Pleroma or Firefish writes `*.pod.example`; the next version writes it
    # plainly: the same entry, kept, not removed and added again.
    pod.person("x", "sub.wild.example")
    pod.person("y", "wild.example")
    pod.person("z", "hidden.example")
    export = "#domain,#severity,#public_comment,#obfuscate\n"
    rows = "*.wild.example,suspend,,false\n*.hidden.example,suspend,,true\n*end.example,suspend,,\n"
    serve(lists, "wild", export + rows)
    code, output = sync()
    assert code == 0 and "(mastodon-csv, 1 obfuscated row skipped, 1 pattern row skipped)" in output
    assert open_accounts() == ["x@sub.wild.example", "y@wild.example"]
    assert "1 obfuscated row skipped; 1 pattern row skipped" in podmod("lists", "show").output

    serve(lists, "wild", export + "wild.example,suspend,,false\n")
    code, output = sync()

    assert code == 0 and "(+0 -0)" in output, output
    assert open_accounts() == ["x@sub.wild.example", "y@wild.example"]


def test_a_mastodon_export_of_blocked_accounts_flags_those_accounts(lists, pod):
    pod.person("spammer", "far.example")
    pod.person("neighbour", "far.example")
    serve(lists, "blocks", "spammer@far.example\n@elsewhere@other.example\n")

    code, output = sync()

    assert code == 0 and "version 1 applied (accounts): 2 entries (+2 -0)" in output, output
    assert open_accounts() == ["spammer@far.example"]


def test_a_pleroma_servers_nodeinfo_is_subscribed_to_as_its_blocks(lists, pod, state):
    """A Pleroma or Akkoma server publishes its federation policy in its nodeinfo: subscribed to,
    its rejects flag as suspensions, timeline removals as silences, and media removals flag
    nobody; its allowlist (accept) is no block. As Pleroma matches them, a plain domain covers
    that host alone (on any port), `*.pod.example` the domain and its subdomains."""
    for name, host in (
        ("x", "bad.example"),
        ("p", "bad.example:8443"),
        ("s", "sub.bad.example"),
        ("v", "deep.sub.wild.example"),
        ("y", "loud.example"),
        ("z", "pics.example"),
        ("w", "friend.example"),
    ):
        pod.person(name, host)
    federation = {
        "mrf_policies": ["SimplePolicy"],
        "mrf_simple": {
            "accept": ["friend.example"],
            "reject": ["bad.example", "*.wild.example", "hid*en.example"],
            "federated_timeline_removal": ["loud.example"],
            "media_removal": ["pics.example"],
        },
        "mrf_simple_info": {"reject": {"bad.example": {"reason": "spam"}}},
    }
    nodeinfo = {"version": "2.1", "software": {"name": "akkoma", "version": "3.13.2"}}
    nodeinfo["metadata"] = {"federation": federation}
    serve(lists, "akkoma", json.dumps(nodeinfo), suffix=".json")

    code, output = sync()

    assert code == 0, output
    assert "version 1 applied (pleroma-json, 1 obfuscated row skipped): 4 entries" in output
    flagged = ["p@bad.example:8443", "v@deep.sub.wild.example", "x@bad.example", "y@loud.example"]
    assert open_accounts() == flagged
    assert sorted(
        (case["account"], signal["severity"], signal["entry"])
        for case in cases_json("open")
        for signal in case["signals"]
    ) == [
        ("p@bad.example:8443", "suspend", "pod:bad.example (this host only)"),
        ("v@deep.sub.wild.example", "suspend", "pod:wild.example"),
        ("x@bad.example", "suspend", "pod:bad.example (this host only)"),
        ("y@loud.example", "silence", "pod:loud.example (this host only)"),
    ]
    assert entries_of(state, "akkoma") == pods(
        ("=bad.example", "suspend"),
        ("wild.example", "suspend"),
        ("=loud.example", "silence"),
        ("=pics.example", "noop"),
    )
    assert shown("akkoma")["format"] == "pleroma-json"
    diff = json.loads(podmod("lists", "diff", "akkoma", "--json").output)
    assert "pod:bad.example (this host only)" in diff["added"]

    # The rest of a nodeinfo changes with every post: the same blocks are no new version.
    nodeinfo["usage"] = {"localPosts": 3445, "users": {"total": 19}}
    serve(lists, "akkoma", json.dumps(nodeinfo, indent=1), suffix=".json")
    code, output = sync()
    assert code == 0 and "unchanged; version 1 stays in force" in output, output
    # Its subdomains too, now: the reject written as a wildcard.
    federation["mrf_simple"]["reject"][0] = "*.bad.example"
    serve(lists, "akkoma", json.dumps(nodeinfo), suffix=".json")
    code, output = sync()
    assert code == 0 and "version 2 applied (pleroma-json, " in output, output
    assert "(+1 -1)" in output
    assert open_accounts() == sorted([*flagged, "s@sub.bad.example"])

    # Transparency turned off: the nodeinfo names no blocks; the version in force stays.
    nodeinfo["metadata"] = {"federation": {"enabled": True}}
    serve(lists, "akkoma", json.dumps(nodeinfo), suffix=".json")
    code, output = sync()
    assert code != 0 and "which publishes no blocks" in output, output
    assert open_accounts() == sorted([*flagged, "s@sub.bad.example"])
    assert shown("akkoma")["version"] == 2


def test_a_pleroma_server_hiding_some_blocks_is_said_to(lists, pod):
    """Pleroma publishes `exclusions: true` when its admins keep some blocks out of the published
    policy: the podmin is told the list is not all the server blocks."""
    federation = {"exclusions": True, "mrf_simple": {"reject": ["bad.example"]}}
    serve(lists, "partial", json.dumps({"metadata": {"federation": federation}}), suffix=".json")

    code, output = sync()

    hidden = "the server keeps some of its blocks out of it (MRF transparency exclusions)"
    assert code == 0 and f"(pleroma-json, {hidden}): 1 entry" in output, output
    assert hidden in podmod("lists", "show").output
    federation["exclusions"] = False
    serve(lists, "partial", json.dumps({"metadata": {"federation": federation}}), suffix=".json")
    code, output = sync()
    assert code == 0 and "version 2 applied (pleroma-json): 1 entry (+0 -0)" in output, output
    assert hidden not in podmod("lists", "show").output


def test_a_pleroma_allowlist_allows_its_plain_hosts_alone(lists, pod, state):
    federation = {"mrf_simple": {"reject": ["trusted.example", "*.wide.example"]}}
    serve(lists, "friends", json.dumps(federation), suffix=".json", policy="allow")
    assert sync()[0] == 0
    state.rollback()

    allowed = {
        account: state.execute(
            "SELECT podmod.allowlisted(%s, false) AS yes", (account,)
        ).fetchone()["yes"]
        for account in (
            "a@trusted.example",
            "a@trusted.example:8443",
            "a@sub.trusted.example",
            "a@wide.example",
            "a@sub.wide.example",
        )
    }
    state.rollback()

    assert allowed == {
        "a@trusted.example": True,
        "a@trusted.example:8443": True,
        "a@sub.trusted.example": False,
        "a@wide.example": True,
        "a@sub.wide.example": True,
    }


def test_a_friendica_servers_published_blocklist_flags_with_its_reasons(lists, pod, state):
    pod.person("x", "sub.bad.example")
    pod.person("y", "worse.example")
    pod.person("z", "fine.example")
    blocklist = '*.bad.example,"spam, bots"\nworse.example,harassment\n'
    serve(lists, "friendica", blocklist, suffix=".csv")

    code, output = sync()

    assert code == 0 and "version 1 applied (domains): 2 entries (+2 -0)" in output, output
    assert open_accounts() == ["x@sub.bad.example", "y@worse.example"]
    assert case_of("x@sub.bad.example")["signals"][0]["label"] == "spam; bots"
    assert entries_of(state, "friendica") == pods(
        ("bad.example", "suspend"), ("worse.example", "suspend")
    )


def test_a_mastodon_export_of_muted_accounts_flags_them_with_the_lists_severity(lists, pod, state):
    """Moderators share their mutes as Mastodon exports them, under a header: its Account
    address column is read, the rest ignored, and the list's severity weighs the matches."""
    pod.person("spammer", "far.example")
    pod.person("neighbour", "far.example")
    mutes = "Account address,Hide notifications\r\nspammer@far.example,true\r\n"
    serve(lists, "mutes", mutes + "@Elsewhere@Other.Example,false\r\n", severity="silence")

    code, output = sync()

    assert code == 0 and "version 1 applied (accounts): 2 entries (+2 -0)" in output, output
    assert open_accounts() == ["spammer@far.example"]
    assert [s["severity"] for s in list_signals("open")] == ["silence"]
    assert entries_of(state, "mutes") == {
        ("account", "spammer@far.example", "silence"),
        ("account", "elsewhere@other.example", "silence"),
    }
    assert shown("mutes")["format"] == "accounts"


def test_a_lists_severity_setting_weighs_its_accounts_too(lists, pod, state):
    """A list of one account per line names no severity, like a list of one domain per line: its
    `severity` setting says how much its matches weigh, or (noop) that they flag nobody."""
    pod.person("spammer", "far.example")
    serve(lists, "blocks", "spammer@far.example\n", suffix=".txt")
    assert sync()[0] == 0
    weights = {"suspend": case_of("spammer@far.example")["priority"]}
    serve(lists, "blocks", "spammer@far.example\n", suffix=".txt", severity="silence")

    code, output = sync()

    assert code == 0 and "version 2 applied (accounts)" in output, output
    weights["silence"] = case_of("spammer@far.example")["priority"]
    assert weights == {"suspend": 30, "silence": 15}  # (README, "Priority")
    assert [s["severity"] for s in list_signals("open")] == ["silence"]
    serve(lists, "blocks", "spammer@far.example\n", suffix=".txt", severity="noop")
    assert sync()[0] == 0
    assert open_accounts() == []
    assert entries_of(state, "blocks") == {("account", "spammer@far.example", "noop")}


def test_lists_read_by_an_older_podmod_are_read_again(lists, pod, state):
    pod.person("x", "sub.far.example")
    serve(lists, "old", "domain\nfar.example\n")
    assert sync()[0] == 0
    # An older podmod read the file otherwise (here: as a silence): read again, it is a version.
    state.execute("UPDATE podmod.list_versions SET reader = 1")
    state.execute("UPDATE podmod.list_entries SET severity = 'silence'")
    state.commit()

    code, output = sync()

    assert code == 0 and "version 2 applied (domain-csv)" in output
    assert entries_of(state, "old") == {("pod", "far.example", "suspend")}
    assert (
        "old: unchanged (not modified since the last sync); version 2 stays in force" in sync()[1]
    )
    # Read alike, it is no version (tests/test_upgrade.py), and asked for only if changed after.
    state.execute("UPDATE podmod.list_versions SET reader = 1")
    state.commit()
    said = sync()[1]
    assert "old: unchanged (same entries, read as podmod reads files now)" in said, said
    assert "old: unchanged (not modified since the last sync)" in sync()[1]


def test_this_pods_own_list_from_the_command_line(lists, pod, state):
    pod.person("spammer", "far.example")
    pod.person("neighbour", "sub.wave.example")

    added = podmod("lists", "add", "Spammer@Far.Example", "--label", "spam", "--reason", "wave")
    pod_added = podmod("lists", "add", "wave.example", "--reason", "every account of it")
    again = podmod("lists", "add", "spammer@far.example", "--reason", "twice")
    bad = podmod("lists", "add", "not a host", "--reason", "x")
    escaped = [
        podmod("lists", "add", "x.example", "--label", "sp\x1b[8mam", "--reason", "x"),
        podmod("lists", "add", "x.example", "--reason", "pasted\x1b]0;title\x07 reason"),
    ]

    assert added.exit_code == 0, added.output
    assert "Added account:spammer@far.example to this pod's list (version 1): 1 new match" in (
        added.output
    )
    assert "version 2" in pod_added.output
    assert again.exit_code == 0 and "on this pod's list already (since version 1)" in again.output
    assert bad.exit_code == 2 and "give a handle such as user@pod.example" in bad.output
    assert [(r.exit_code, r.output.strip()) for r in escaped] == [
        (2, "podmod: The label holds a control character (U+001B); type it again without it."),
        (2, "podmod: The reason holds a control character (U+001B); type it again without it."),
    ]
    assert open_accounts() == ["neighbour@sub.wave.example", "spammer@far.example"]
    text = podmod("lists", "show").output
    assert "this pod's own list (review): version 2 (podmod; 2 entries)" in text
    # A sync keeps it: it is no subscription, so it is never retired.
    lists.write("core", ["account,other@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    assert open_accounts() == ["neighbour@sub.wave.example", "spammer@far.example"]

    removed = podmod("lists", "remove", "wave.example", "--reason", "resolved")

    assert removed.exit_code == 0, removed.output
    assert "1 match retracted" in removed.output
    assert open_accounts() == ["spammer@far.example"]
    audit = state.execute(
        "SELECT action, actor, reason, details FROM podmod.audit WHERE action LIKE 'list_add'"
        " OR action LIKE 'list_remove' ORDER BY id"
    ).fetchall()
    assert [(a["action"], a["reason"]) for a in audit] == [
        ("list_add", "wave"),
        ("list_add", "every account of it"),
        ("list_remove", "resolved"),
    ]
    assert all(a["actor"].startswith("cli:") for a in audit)
    assert audit[0]["details"]["entry"] == "account:spammer@far.example"
    assert_cases_consistent(state)


def test_this_pods_list_says_when_an_entry_is_a_whole_top_level_domain(lists, pod):
    pod.person("a", "pod.test")
    pod.person("b", "far.example")

    whole = podmod("lists", "add", ".TEST", "--reason", "a placeholder reason")
    apex = podmod("lists", "add", "far.example", "--reason", "a placeholder reason")

    assert whole.exit_code == 0, whole.output
    assert (
        "Added pod:test to this pod's list (version 1), a whole top-level domain: every pod under"
        " .test: 1 new match." in whole.output
    )
    assert "top-level" not in apex.output and "(version 2): 1 new match" in apex.output


def test_a_friendica_servers_blocklist_matches_as_friendica_matches_it(lists, pod, state):
    """format = "friendica": `pod.example` flags that host alone (on any port), `*pod.example` and
    `*.pod.example` the domain and its subdomains, never a name that only ends the same."""
    for name, host in (
        ("a", "plain.example"),
        ("b", "sub.plain.example"),
        ("c", "glob.example"),
        ("d", "deep.glob.example"),
        ("e", "otherglob.example"),
        ("f", "plain.example:8443"),
    ):
        pod.person(name, host)
    body = "plain.example,placeholder reason\n*glob.example,spam\nspam?.example,bots\n"
    serve(lists, "friendica", body, format="friendica")

    code, output = sync()

    assert code == 0, output
    assert "version 1 applied (friendica, 1 pattern row skipped): 2 entries" in output, output
    assert open_accounts() == [
        "a@plain.example",
        "c@glob.example",
        "d@deep.glob.example",
        "f@plain.example:8443",
    ]
    assert entries_of(state, "friendica") == pods(
        ("=plain.example", "suspend"), ("glob.example", "suspend")
    )
    assert shown("friendica")["format"] == "friendica"


def test_the_name_of_this_pods_list_is_not_a_subscription_name(lists):
    lists.subscribe("this-pod")
    result = podmod("lists", "sync")
    assert result.exit_code == 2 and "podmod's own list of this pod" in result.output


def publishing(source: Path, secret_key: Path) -> list[str]:
    """`podmod lists publish` of a list file, signed with this key (its output still to name)."""
    return ["lists", "publish", "--from-csv", str(source), "--secret-key", str(secret_key)]


def test_publish_writes_mastodon_format_that_podmod_and_mastodon_read(lists, pod, tmp_path):
    pod.person("x", "sub.bad.example")
    podmod("lists", "keygen", "--dir", str(tmp_path))
    source = tmp_path / "source.csv"
    source.write_text(
        "kind,value,label,comment\n"
        "pod,bad.example,campaign,placeholder\n"
        "account,someone@far.example,spam,\n"
        "pod,=ugly.example,,\n"
    )
    out = lists.directory / "mastodon.csv"
    args = publishing(source, tmp_path / "podmod.key")

    refused = podmod(*args, "--output", str(out), "--format", "mastodon")
    result = podmod(*args, "--output", str(out), "--format", "mastodon", "--skip-invalid")

    assert refused.exit_code != 0 and "line 4" in refused.output
    assert refused.output.rstrip().endswith("; fix the list or give --skip-invalid."), (
        refused.output
    )
    assert result.exit_code == 0, result.output
    assert "left out line 4" in result.output
    assert "1 entry, mastodon format; 1 left out" in result.output
    assert out.read_text().splitlines() == [
        MASTODON_HEADER.strip(),
        "bad.example,suspend,false,false,campaign,false",
    ]
    lists.subscribe("shared", signed=False, url=out.as_uri())
    assert sync()[0] == 0
    assert open_accounts() == ["x@sub.bad.example"]


def test_publish_warns_when_mastodons_admin_import_would_refuse_the_file(lists, tmp_path):
    # Mastodon's admin import refuses a whole domain-block CSV of more than 20,000 rows
    # (Admin::Import::ROWS_PROCESSING_LIMIT): the publisher hears it when writing one, and the
    # file is still written and signed (API importers and podmod read it whole). One row fewer,
    # and podmod's own format of any length, say nothing.
    podmod("lists", "keygen", "--dir", str(tmp_path))
    source = tmp_path / "many.csv"
    source.write_text(
        "kind,value,label,comment\n"
        + "".join(f"pod,h{n}.many.example,spam,\n" for n in range(20_001))
    )
    args = publishing(source, tmp_path / "podmod.key")
    out = lists.directory / "many.csv"
    warning = "Mastodon's admin import refuses a file of more than 20,000 rows"

    over = podmod(*args, "--output", str(out), "--format", "mastodon")
    written = out.read_text().splitlines()
    as_podmod = podmod(*args, "--output", str(tmp_path / "podmod.csv"))
    source.write_text("\n".join(source.read_text().splitlines()[:-1]) + "\n")
    at_limit = podmod(*args, "--output", str(out), "--format", "mastodon")

    assert over.exit_code == 0, over.output
    assert f"warning: {warning} and this one has 20,001" in over.output, over.output
    assert len(written) == 20_002 and written[-1].startswith("h20000.many.example,suspend")
    assert out.with_name("many.csv.minisig").exists()
    assert as_podmod.exit_code == 0 and warning not in as_podmod.output, as_podmod.output
    assert at_limit.exit_code == 0 and warning not in at_limit.output, at_limit.output
    assert "(20,000 entries, mastodon format)" in at_limit.output, at_limit.output


def test_publishing_silences_in_podmods_format_warns_that_they_read_as_suspensions(lists, tmp_path):
    podmod("lists", "keygen", "--dir", str(tmp_path))
    source = tmp_path / "mixed.csv"
    source.write_text(
        MASTODON_HEADER
        + "loud.example,suspend,false,false,,false\n"
        + "quiet.example,silence,false,false,,false\n"
    )
    args = publishing(source, tmp_path / "podmod.key")

    as_podmod = podmod(*args, "--output", str(lists.directory / "mixed.csv"))
    as_mastodon = podmod(*args, "--output", str(tmp_path / "m.csv"), "--format", "mastodon")

    assert as_podmod.exit_code == 0, as_podmod.output
    assert (
        "warning: 1 silence entry written without their severity, which podmod's format cannot"
        " hold: subscribers weigh them as suspensions; publish with --format mastodon"
        in as_podmod.output
    ), as_podmod.output
    assert as_mastodon.exit_code == 0 and "warning" not in as_mastodon.output, as_mastodon.output
    assert "quiet.example,silence," in (tmp_path / "m.csv").read_text()


@pytest.mark.parametrize("output_format", ["podmod", "mastodon"])
def test_publish_from_a_pleroma_policy_writes_its_hosts_alone_as_their_domains(
    lists, pod, tmp_path, output_format
):
    # A Pleroma server's plain domain names that host alone; neither podmod's format nor
    # Mastodon's can say so. Published, each is its domain (which subscribers apply to its
    # subdomains too, as Mastodon's importers of Pleroma lists do), once beside the same domain
    # with its subdomains, and the summary says how many were widened; never podmod's inner
    # marker for "this host alone", which no subscriber reads.
    pod.person("x", "plain.example")
    pod.person("y", "sub.plain.example")
    pod.person("z", "deep.wide.example")
    podmod("lists", "keygen", "--dir", str(tmp_path))
    federation = {
        "mrf_simple": {
            "reject": ["plain.example", "*.wide.example", "twice.example", "*.twice.example"],
        },
        "mrf_simple_info": {"reject": {"plain.example": {"reason": "spam"}}},
    }
    source = tmp_path / "policy.json"
    source.write_text(json.dumps(federation))
    out = lists.directory / "from-pleroma.csv"

    result = podmod(
        *publishing(source, tmp_path / "podmod.key"),
        "--output",
        str(out),
        "--format",
        output_format,
    )

    assert result.exit_code == 0, result.output
    assert (
        f"(3 entries, {output_format} format; 2 for one host alone written as their domain"
        in result.output
    ), result.output
    rows = out.read_text().splitlines()[1:]
    if output_format == "mastodon":
        assert rows == [
            "plain.example,suspend,false,false,spam,false",
            "wide.example,suspend,false,false,,false",
            "twice.example,suspend,false,false,,false",
        ]
    else:
        assert rows == ["pod,plain.example,spam,spam", "pod,wide.example,,", "pod,twice.example,,"]
    lists.subscribe("shared", signed=False, url=out.as_uri())
    code, output = sync()
    assert code == 0 and "3 entries (+3 -0)" in output, output
    assert open_accounts() == ["x@plain.example", "y@sub.plain.example", "z@deep.wide.example"]


@pytest.mark.parametrize(
    "first_list", [True, False], ids=["into-the-empty-store", "beside-another"]
)
def test_a_repeated_row_adds_its_labels_and_heavier_severity_to_its_entry(
    lists, pod, state, first_list
):
    # Real lists repeat a host with a second reason (two files put together by hand): the author
    # means both, so a subscription trusted for the second label applies the entry. Its first
    # version is stored two ways: streamed into podmod's empty store, or sorted beside another.
    pod.person("twice", "twice.example")
    pod.person("once", "once.example")
    if not first_list:
        serve(lists, "other", "#domain\nother.example\n")
        assert sync("other")[0] == 0
    rows = [
        "twice.example,silence,false,false,iftas:spam,false",
        "once.example,suspend,false,false,iftas:spam,false",
        "twice.example,suspend,false,false,iftas:hate-speech,false",
        "once.example,suspend,false,false,iftas:spam,false",
    ]
    serve(lists, "dni", MASTODON_HEADER + "\n".join(rows) + "\n", labels=["iftas:hate-speech"])

    code, output = sync("dni")

    assert code == 0, output
    assert "mastodon-csv, 2 repeated rows merged" in output
    assert open_accounts() == ["twice@twice.example"]
    assert entries_of(state, "dni") == pods(
        ("twice.example", "suspend"), ("once.example", "suspend")
    )
    state.rollback()
    stored = state.execute(
        "SELECT e.value, e.line, e.label, e.comment, e.labels FROM podmod.list_entries e"
        " JOIN podmod.lists l ON l.id = e.list_id WHERE l.name = 'dni' ORDER BY e.value"
    ).fetchall()
    state.rollback()
    assert [tuple(row.values()) for row in stored] == [
        ("once.example", 3, "spam", "iftas:spam", ["spam"]),
        (
            "twice.example",
            2,
            "spam; hate-speech",
            "iftas:spam; iftas:hate-speech",
            ["spam", "hate-speech"],
        ),
    ]
    assert shown("dni")["repeated_rows"] == 2
    assert "2 repeated rows merged" in podmod("lists", "show").output

    # The next version, staged and compared: the merged entry is unchanged, a new one added.
    serve(
        lists,
        "dni",
        MASTODON_HEADER + "\n".join([*rows, "new.example,suspend,false,false,,false"]) + "\n",
        labels=["iftas:hate-speech"],
    )
    code, output = sync("dni")
    assert code == 0 and "3 entries (+1 -0)" in output, output
    state.rollback()
    kept = state.execute(
        "SELECT e.added_in, e.severity, e.labels FROM podmod.list_entries e"
        " JOIN podmod.lists l ON l.id = e.list_id"
        " WHERE l.name = 'dni' AND e.value = 'twice.example' AND e.removed_in IS NULL"
    ).fetchall()
    state.rollback()
    assert [tuple(row.values()) for row in kept] == [(1, "suspend", ["spam", "hate-speech"])]
    assert open_accounts() == ["twice@twice.example"]

    # Without its repeat, the host is a silence for spam alone: the trusted label no longer names
    # it, and its match is retracted.
    serve(lists, "dni", MASTODON_HEADER + "\n".join(rows[:2]) + "\n", labels=["iftas:hate-speech"])
    code, output = sync("dni")
    assert code == 0 and "(+0 -1)" in output and "repeated" not in output, output
    assert entries_of(state, "dni") == pods(
        ("twice.example", "silence"), ("once.example", "suspend")
    )
    assert open_accounts() == []


def stored_entries(state, name: str) -> dict[tuple[str, str], tuple]:
    """A list's entries in force as podmod stored them: (kind, value) → what they say."""
    state.rollback()
    rows = state.execute(
        "SELECT e.kind, e.value, e.label, e.comment, e.severity, e.labels, e.published"
        " FROM podmod.list_entries e JOIN podmod.lists l ON l.id = e.list_id"
        " WHERE l.name = %s AND e.removed_in IS NULL",
        (name,),
    ).fetchall()
    state.rollback()
    return {
        (r["kind"], r["value"]): (
            r["label"],
            r["comment"],
            r["severity"],
            tuple(r["labels"]),
            r["published"],
        )
        for r in rows
    }


def read_entries(text: str) -> dict[tuple[str, str], tuple]:
    """The same, as podmod's reading gives them for the file."""
    return {
        (e.kind, e.value): (e.label, e.comment, e.severity, e.labels, e.published)
        for e in parse_list(text.encode()).entries
    }


def tricky_export(version: int) -> str:
    """A Mastodon export whose rows hold what COPY and array literals must escape (backslashes,
    quotes, braces, tabs, commas), repeated hosts with other reasons and severities, a wildcard,
    an obfuscated row, and a comment with commas nobody quoted."""
    comments = [
        "back\\slash",
        'say "hi"',
        "curly {braces}, and more",
        "tab\there",
        "iftas:hate-speech;spam",
        "",
    ]
    out = io.StringIO(MASTODON_HEADER)
    out.seek(0, io.SEEK_END)
    write = csv.writer(out, lineterminator="\n")
    for n in range(48):
        host = f"h{(n * 7 + version) % 30}.example"
        turn = n + n // 30  # (a host's second row says something else)
        severity = ("suspend", "silence", "noop")[(turn + version) % 3]
        write.writerow([host, severity, "false", "false", comments[turn % 6], "false"])
    write.writerow(["*.wild.example", "silence", "false", "false", "wild {one}", "false"])
    write.writerow(["hid***.example", "suspend", "false", "false", "obfuscated", "true"])
    return out.getvalue() + 'loose.example,suspend,false,false,one, two, "three",false\n'


@pytest.mark.parametrize(
    "first_list", [True, False], ids=["into-the-empty-store", "beside-another"]
)
def test_what_podmod_stores_of_a_list_is_what_its_reading_gives(lists, pod, state, first_list):
    # Every way a version is stored (streamed into the empty store, sorted beside another list,
    # staged and compared for the next versions), with the repeats merged over the stored rows:
    # the entries in force say exactly what the reading of the file says, escapes and all.
    if not first_list:
        serve(lists, "other", "#domain\nother.example\n")
        assert sync("other")[0] == 0
    for version in range(3):
        text = tricky_export(version)
        serve(lists, "tricky", text, max_removal_share=1.0)

        code, output = sync("tricky")

        assert code == 0 and f"version {version + 1} applied" in output, output
        assert "repeated rows merged" in output and "1 obfuscated row skipped" in output
        expected = read_entries(text)
        assert stored_entries(state, "tricky") == expected
        assert len(expected) == 32  # (30 hosts, the wildcard's, the loose comment's)
        assert sum(len(labels) > 1 for _, _, _, labels, _ in expected.values()) >= 18
