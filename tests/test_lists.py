"""Shared blocklists end to end: sync a signed list, match it against the pod, retract, hold, allow,
lock by policy — against real PostgreSQL, with list files served from disk or loopback HTTPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podmod.config import load_config
from podmod.lists import minisign
from podmod.lists.parse import label_keys
from podmod.loopback import LoopbackServer
from tests import test_list_fetch, test_web
from tests.helpers import assert_cases_consistent, cases_json, drain, podmod, read_once, wait_for
from tests.test_actions import reported_case
from tests.test_web import audit_rows, html, signed_in

https, tls_files = test_list_fetch.https, test_list_fetch.tls_files  # fixtures
proxy = test_list_fetch.proxy  # fixture
make_app, admin, moderator = test_web.make_app, test_web.admin, test_web.moderator  # fixtures

HEADER = "kind,value,label,comment\n"


class ListFiles:
    """Lists written to disk (file:// URLs) and signed with a test key; the config names them."""

    def __init__(self, directory: Path, config_path: Path) -> None:
        self.directory = directory
        self.config_path = config_path
        self.secret = minisign.SecretKey.generate()
        self.lists: list[dict] = []
        self.list_sync: dict = {}
        self.signed_at = int(time.time())

    def write(
        self, name: str, rows: list[str], *, sign: bool = True, trusted_comment: str | None = None
    ) -> Path:
        """The list file and its signature, whose trusted comment is minisign's: each file signed
        a second after the one before (as a publisher signs versions), named as it is served."""
        path = self.directory / f"{name}.csv"
        body = (HEADER + "".join(row + "\n" for row in rows)).encode()
        path.write_bytes(body)
        signature = path.with_name(path.name + ".minisig")
        if sign:
            self.signed_at += 1
            comment = trusted_comment or f"timestamp:{self.signed_at}\tfile:{path.name}\thashed"
            signature.write_text(minisign.sign(body, self.secret, trusted_comment=comment))
        return path

    def subscribe(self, name: str, *, policy: str = "review", signed: bool = True, **extra):
        entry = {"name": name, "url": (self.directory / f"{name}.csv").as_uri(), "policy": policy}
        if signed:
            entry["public_key"] = self.secret.public_key.to_string()
        entry.update(extra)
        self.lists = [item for item in self.lists if item["name"] != name] + [entry]
        self.save()

    def save(self) -> None:
        lines = []
        if self.list_sync:
            lines.append("[list_sync]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in self.list_sync.items()]
        for item in self.lists:
            lines.append("[[lists]]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in item.items()]
        self.config_path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def lists(env, state, tmp_path) -> ListFiles:
    directory = tmp_path / "lists"
    directory.mkdir()
    return ListFiles(directory, Path(env["PODMOD_CONFIG"]))


def sync(*names: str) -> tuple[int, str]:
    args = ["lists", "sync"] + [f"--name={name}" for name in names]
    result = podmod(*args)
    return result.exit_code, result.output


def list_signals(status: str = "all") -> list[dict]:
    return [s for case in cases_json(status) for s in case["signals"] if s["kind"] == "list"]


def case_of(account: str, status: str = "open") -> dict:
    [case] = [c for c in cases_json(status) if c["account"] == account]
    return case


def test_a_version_keeps_ends_changes_and_adds_entries_as_ranges_over_versions(lists, pod, state):
    pod.person("kept", "far.example")
    pod.person("relabelled", "far.example")
    lists.write(
        "core",
        [
            "account,kept@far.example,spam,",
            "account,relabelled@far.example,spam,",
            "account,gone@far.example,spam,",
        ],
    )
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write(
        "core",
        [
            "account,kept@far.example,spam,",
            "account,relabelled@far.example,harassment,",
            "account,new@far.example,spam,",
        ],
    )

    code, output = sync()

    # the relabelled entry is neither added nor removed: its row ends and a new one starts
    assert code == 0 and "version 2 applied (podmod): 3 entries (+1 -1)" in output, output
    state.rollback()
    rows = state.execute(
        "SELECT value, label, added_in, removed_in FROM podmod.list_entries ORDER BY value, id"
    ).fetchall()
    assert [tuple(row.values()) for row in rows] == [
        ("gone@far.example", "spam", 1, 2),
        ("kept@far.example", "spam", 1, None),
        ("new@far.example", "spam", 2, None),
        ("relabelled@far.example", "spam", 1, 2),
        ("relabelled@far.example", "harassment", 2, None),
    ]
    labels = {s["entry"]: s["label"] for s in list_signals("open")}
    assert labels == {
        "account:kept@far.example": "spam",
        "account:relabelled@far.example": "harassment",
    }


def test_account_entries_open_cases_for_local_and_remote_accounts(lists, pod):
    pod.person("spammer")
    pod.person("Remote_One", "far.example")
    pod.person("bystander")
    lists.write(
        "core",
        [
            "account,spammer@pod.example,spam,",
            "account,remote_one@far.example,,",
            "account,absent@nowhere.example,spam,not on this pod",
        ],
    )
    lists.subscribe("core")

    code, output = sync()

    assert code == 0, output
    assert "core: version 1 applied (podmod): 3 entries (+3 -0); 2 new matches" in output
    assert sorted(c["account"] for c in cases_json("open")) == [
        "remote_one@far.example",
        "spammer@pod.example",
    ]
    signal = case_of("spammer@pod.example")["signals"][0]
    assert (
        signal
        | {
            "kind": "list",
            "list": "core",
            "version": 1,
            "entry": "account:spammer@pod.example",
            "label": "spam",
            "retracted": False,
        }
        == signal
    )


def test_pod_entries_match_remote_accounts_with_or_without_port_never_local_ones(lists, pod):
    pod.person("a", "bad.example")
    pod.person("b", "bad.example:8443")
    pod.person("c", "good.example")
    pod.person("local")  # this pod: a list naming it must not flag every local account
    lists.write("pods", ["pod,bad.example,,", "pod,pod.example,,", "pod,other.example:9000,,"])
    lists.subscribe("pods")

    assert sync()[0] == 0

    assert sorted(c["account"] for c in cases_json("open")) == [
        "a@bad.example",
        "b@bad.example:8443",
    ]


def test_mastodon_domain_block_export_is_read_as_pod_entries(lists, pod):
    pod.person("x", "blocked.example")
    path = lists.directory / "masto.csv"
    path.write_text(
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        "blocked.example,suspend,false,false,placeholder reason,false\n"
    )
    lists.subscribe("masto", signed=False)

    assert sync()[0] == 0

    [signal] = list_signals()
    assert signal["entry"] == "pod:blocked.example"


def test_a_removed_entry_retracts_its_signal_visibly_and_closes_the_case(lists, pod):
    pod.person("one", "far.example")
    pod.person("two", "far.example")
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    lists.subscribe("core")
    sync()

    lists.write("core", ["account,two@far.example,,"])
    code, output = sync()

    assert code == 0 and "version 2 applied" in output and "1 retracted" in output
    [retracted] = [s for s in list_signals() if s["retracted"]]
    assert retracted["entry"] == "account:one@far.example"
    assert retracted["retracted_because"] == "removed from the list"
    assert case_of("one@far.example", "resolved")["status"] == "resolved"
    assert [c["account"] for c in cases_json("open")] == ["two@far.example"]


def entry_indexes(state) -> list[dict]:
    """podmod.list_entries' indexes and constraints as the catalog defines them."""
    state.rollback()
    found = (
        state.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'podmod'"
            " AND tablename = 'list_entries' ORDER BY indexname"
        ).fetchall()
        + state.execute(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
            " WHERE conrelid = 'podmod.list_entries'::regclass ORDER BY conname"
        ).fetchall()
    )
    state.rollback()
    return found


def test_a_first_list_into_the_empty_store_keeps_every_index_of_its_entries(lists, pod, state):
    pod.person("one", "far.example")
    migrated = entry_indexes(state)
    lists.write("core", ["account,one@far.example,,", "pod,far.example,,", "pod,near.example,,"])
    lists.subscribe("core")

    assert sync()[0] == 0

    assert entry_indexes(state) == migrated
    state.rollback()
    assert (
        state.execute(
            "SELECT count(*) AS n FROM podmod.list_entries WHERE removed_in IS NULL"
        ).fetchone()["n"]
        == 3
    )
    assert sorted(s["entry"] for s in list_signals()) == [
        "account:one@far.example",
        "pod:far.example",
    ]
    lists.write("other", ["account,one@far.example,,"])  # into the store that is not empty now
    lists.subscribe("other")
    assert sync("other")[0] == 0 and entry_indexes(state) == migrated


def stored_entries(state) -> int:
    state.rollback()
    return state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"]


def test_a_first_list_refused_once_read_stores_nothing_and_keeps_the_indexes(lists, pod, state):
    # The rows of a first version stream into the empty store while the file is read, with its
    # indexes dropped: a file refused only at its end (a bad row, CSV past repair, no canary)
    # must leave the store as it was.
    pod.person("one", "far.example")
    migrated = entry_indexes(state)
    good = [f"account,user{n}@far.example,," for n in range(50)]
    refused = {
        "a bad last row": ([*good, "bogus,thing,,"], {}, "1 invalid row: line 52"),
        "CSV past repair": (
            [*good, 'phrase,"' + "x" * 200_000 + '",,'],
            {"skip_invalid": True},
            "Line 52 of the list cannot be read as CSV",
        ),
        "no canary": (good, {"require_canary": "core.invalid"}, "has no canary row core.invalid"),
    }
    for why, (rows, settings, message) in refused.items():
        lists.write("core", rows)
        lists.subscribe("core", **settings)

        code, output = sync()

        assert code == 1 and message in output, (why, output)
        assert stored_entries(state) == 0, why
        assert entry_indexes(state) == migrated, why
        assert json.loads(podmod("lists", "show", "--json").output)[0]["version"] is None, why

    lists.write("core", ["account,one@far.example,,", "pod,near.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    assert stored_entries(state) == 2 and entry_indexes(state) == migrated
    assert [s["entry"] for s in list_signals()] == ["account:one@far.example"]


def _plan_nodes(plan: dict) -> list[dict]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


def test_the_retraction_never_scans_the_matches_once_per_signal_whatever_the_statistics(state):
    # Signals added since the table was last analysed (a first sync's thousands, the next
    # version's sync minutes later, before autovacuum) are guessed at a row: a NOT EXISTS over
    # `matched` then ran as a nested loop reading every match for each signal (6 s at 8,875
    # matches, quadratic). The retraction's plan must not hinge on that guess.
    from podmod.lists.apply import RETRACT_SQL

    state.execute(
        "INSERT INTO podmod.lists (name, url, policy) VALUES ('core', 'file:///core.csv', 'review')"
    )
    state.execute(
        "INSERT INTO podmod.cases (subject, person_id, account)"
        " SELECT 'person:' || n, n, 'p' || n || '@far.example' FROM generate_series(1, 3000) n"
    )
    state.execute(
        "INSERT INTO podmod.signals (case_id, kind, report_id) SELECT id, 'report', id"
        " FROM podmod.cases WHERE person_id <= 50"
    )
    state.execute("ANALYZE podmod.signals")  # as it was: a few report signals, no list signal
    state.execute(
        "INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind, entry_value)"
        " SELECT c.id, 'list', c.person_id, l.id, 'pod', 'far.example'"
        " FROM podmod.cases c, podmod.lists l"
    )
    state.execute(
        "CREATE TEMP TABLE matched AS SELECT list_id, entry_kind AS kind, entry_value AS value,"
        " person_id FROM podmod.signals WHERE kind = 'list' AND person_id > 10"
    )
    state.execute("ANALYZE matched")

    [row] = state.execute("EXPLAIN (FORMAT JSON) " + RETRACT_SQL).fetchall()
    nodes = _plan_nodes(row["QUERY PLAN"][0]["Plan"])
    loops_over_matches = [
        node
        for node in nodes
        if node["Node Type"] == "Nested Loop"
        and any(child.get("Relation Name") == "matched" for child in node.get("Plans", []))
    ]
    assert not loops_over_matches, row["QUERY PLAN"]
    assert len(state.execute(RETRACT_SQL).fetchall()) == 10
    state.rollback()


def test_a_pod_entry_matches_handles_the_pod_wrote_in_capitals(lists, pod, state):
    # The people on a listed host are found by their handles' hosts as the pod wrote them: one in
    # capitals is still that host.
    person = pod.person("someone", "sub.far.example")
    pod.conn.execute(
        "UPDATE people SET diaspora_handle = 'Someone@Sub.FAR.example' WHERE id = %s",
        (person.id,),
    )
    pod.person("other", "near.example")
    lists.write("core", ["pod,far.example,,"])
    lists.subscribe("core")

    assert sync()[0] == 0

    assert [c["account"] for c in cases_json("open")] == ["someone@sub.far.example"]


def test_a_first_list_neither_waits_for_nor_stops_a_reader_of_the_empty_store(lists, pod, state):
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    # A reader's transaction open on the entries (a web page's, a scan's): the sync must not wait
    # on it to rebuild the store's indexes, however long it stays open.
    state.execute("SELECT count(*) FROM podmod.list_entries")
    try:
        synced = subprocess.run(
            [sys.executable, "-m", "podmod.cli", "lists", "sync"],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        synced = None
    finally:
        state.rollback()

    assert synced is not None, "the sync still waited after 60 s"
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert [s["entry"] for s in list_signals()] == ["account:one@far.example"]


def test_unchanged_list_costs_no_work(lists, pod):
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    sync()
    before = cases_json()

    code, output = sync()

    assert code == 0 and "core: unchanged" in output
    assert "unchanged: unchanged" not in output
    assert cases_json() == before
    shown = json.loads(podmod("lists", "show", "--json").output)
    assert shown[0]["version"] == 1


def _synced_json() -> dict:
    result = podmod("lists", "sync", "--json")
    assert result.exit_code == 0, result.output
    [outcome] = json.loads(result.output[result.output.index("[") :])  # (after the progress bar)
    return outcome


def test_a_sync_says_where_its_time_went_phase_by_phase(lists, pod):
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")

    first = _synced_json()
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    then = _synced_json()
    unchanged = _synced_json()

    # (in the order a sync goes through them; a first version builds the indexes, a next one
    # applies its changes)
    assert [*first["seconds"]] == [
        *("fetch", "open", "rows", "indexes", "match", "record", "locks", "total")
    ]
    assert [*then["seconds"]] == [
        *("fetch", "open", "rows", "changes", "indexes", "match", "record", "locks", "total")
    ]
    assert [*unchanged["seconds"]] == ["fetch", "open", "record", "total"]
    for outcome in (first, then, unchanged):
        seconds = dict(outcome["seconds"])
        total = seconds.pop("total")
        assert all(value >= 0 for value in seconds.values()), outcome
        assert sum(seconds.values()) <= total + 0.01, outcome  # (each rounded to 1 ms)


def test_phases_are_given_in_a_syncs_order_whatever_order_they_were_timed_in():
    from podmod.lists.versions import Phases

    phases = Phases()
    phases.add("record", 0.0004)
    phases.add("rows", 1.2)
    phases.add("record", 0.0004)  # (parts of one phase add up before they are rounded)
    phases.add("fetch", 0.25)
    given = phases.given(time.perf_counter())
    assert [*given] == ["fetch", "rows", "record", "total"]
    assert given["record"] == 0.001 and given["rows"] == 1.2
    assert phases.text() == "fetch 0.25 s, rows 1.20 s, record 0.00 s"
    with pytest.raises(ValueError, match="no phase 'parse'"):
        phases.add("parse", 1.0)


def flagged() -> list[str]:
    """The accounts with a list match in force."""
    return sorted(
        case["account"]
        for case in cases_json("all")
        if any(s["kind"] == "list" and not s["retracted"] for s in case["signals"])
    )


@pytest.mark.parametrize("how", ["labels narrowed", "put back after retiring"])
def test_settings_changed_in_the_sync_that_holds_a_version_apply_to_the_version_in_force(
    lists, pod, how
):
    # The podmin's change and the publisher's next version arrive in the same sync: the version
    # is held, the settings are recorded as applied, so they must be applied then (to the
    # version in force), not wait for the held version's approval.
    for n in range(4):
        pod.person(f"u{n}", "far.example")
    rows = [f"account,u{n}@far.example,{'spam' if n < 2 else 'hate'}," for n in range(4)]
    lists.write("core", rows)
    lists.subscribe("core")
    assert sync()[0] == 0
    if how == "labels narrowed":
        lists.subscribe("core", labels=["hate"])
        kept = ["u2@far.example", "u3@far.example"]
    else:
        lists.write("other", [])  # (a configuration keeps a list: retiring core is a change)
        lists.subscribe("other")
        retired = lists.lists
        lists.lists = retired[1:]
        lists.save()
        assert "its 4 matches are retracted" in sync()[1]
        lists.lists = retired
        lists.save()
        kept = [f"u{n}@far.example" for n in range(4)]
    lists.write("core", rows[3:])  # 3 of 4 removed: held

    code, output = sync()

    assert code == 4 and "version 2 (podmod) held for approval" in output, output
    assert flagged() == kept
    assert "applied to version 1" in output, output
    code, output = sync()
    assert code == 0 and "unchanged" in output and "settings changed" not in output, output
    assert flagged() == kept


def test_a_version_removing_too_much_is_held_until_approved(lists, pod, state):
    for n in range(4):
        pod.person(f"u{n}", "far.example")
    lists.write("core", [f"account,u{n}@far.example,," for n in range(4)])
    lists.subscribe("core")
    sync()
    lists.write("core", ["account,u0@far.example,,"])  # 3 of 4 removed: 75% > 50%

    code, output = sync()

    assert code == 4, "a held list must reach the podmin through cron's mail"
    assert "version 2 (podmod) held for approval: it removes 3 of 4 entries (75%)" in output
    assert len([s for s in list_signals() if not s["retracted"]]) == 4  # version 1 still in force
    diff = json.loads(podmod("lists", "diff", "core", "--json").output)
    assert diff["status"] == "held" and sorted(diff["removed"]) == [
        "account:u1@far.example",
        "account:u2@far.example",
        "account:u3@far.example",
    ]
    shown = podmod("lists", "show").output
    assert "held for approval: version 2" in shown

    approved = podmod("lists", "approve", "core", "2")

    assert approved.exit_code == 0, approved.output
    assert "version 2 approved by cli:" in approved.output
    assert len([s for s in list_signals() if not s["retracted"]]) == 1
    audit = state.execute(
        "SELECT action FROM podmod.audit WHERE action LIKE 'list_%' ORDER BY id"
    ).fetchall()
    assert [row["action"] for row in audit] == ["list_apply", "list_hold", "list_approve"]


def _wide_pod(pod, hosts: int = 15, each: int = 10) -> None:
    """A pod knowing `each` people on each of `hosts` subdomains of wide.example, and ten on
    far.example."""
    for h in range(hosts):
        for n in range(each):
            pod.person(f"p{n}", f"h{h}.wide.example")
    for n in range(10):
        pod.person(f"f{n}", "far.example")


def test_a_version_newly_matching_too_many_people_is_held_until_approved(lists, pod, state):
    # A list's entry that names a whole domain, a TLD (`com`) or one of the largest pods reaches
    # every account under it: the queue would fill with cases that outrank single reports.
    _wide_pod(pod)
    lists.write("core", ["pod,far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["pod,far.example,,", "pod,wide.example,,", "pod,h3.wide.example,,"])

    code, output = sync()

    assert code == 4, output
    assert (
        "version 2 (podmod) held for approval: it newly matches 150 people, 94% of the 160 this"
        " pod knows; most by pod:wide.example (140), pod:h3.wide.example (10); more than the 5%"
        " allowed (list_sync.max_new_match_share); version 1 stays in force" in output
    ), output
    assert len(list_signals()) == 10, "nothing of the held version may apply"
    assert len(cases_json("open")) == 10
    held = state.execute(
        "SELECT status, entries, added, removed FROM podmod.list_versions WHERE number = 2"
    ).fetchone()
    assert held == {"status": "held", "entries": 3, "added": 2, "removed": 0}
    notified = state.execute(
        "SELECT count(*) AS n FROM podmod.events WHERE type = 'list.held'"
    ).fetchone()
    assert notified["n"] == 1
    code, output = sync()
    assert code == 0, "the held version was told once (list.held); cron's next runs stay quiet"
    assert "unchanged" in output and "version 2 waits for approval" in output, output

    approved = podmod("lists", "approve", "core", "2")

    assert approved.exit_code == 0, approved.output
    assert "160 new matches" not in approved.output and "150 new matches" in approved.output
    assert len([s for s in list_signals() if not s["retracted"]]) == 160
    audit = state.execute(
        "SELECT action FROM podmod.audit WHERE action LIKE 'list_%' ORDER BY id"
    ).fetchall()
    assert [row["action"] for row in audit] == ["list_apply", "list_hold", "list_approve"]


def test_a_first_version_reaching_too_far_is_held_with_nothing_in_force(lists, pod, state):
    _wide_pod(pod)
    lists.write("wide", ["pod,example,,"])  # (the whole top-level domain)
    lists.subscribe("wide")

    preview = podmod("lists", "sync", "--dry-run")
    assert "held for approval: it newly matches 160 people, 100%" in preview.output, preview.output
    code, output = sync()

    assert code == 4, output
    assert "no version of it is in force" in output and "most by pod:example (160)" in output
    assert state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"] == 0
    assert cases_json("open") == []
    shown = json.loads(podmod("lists", "show", "--json").output)
    assert (shown[0]["version"], shown[0]["held"]) == (None, [1]), shown
    diff = json.loads(podmod("lists", "diff", "wide", "--json").output)
    assert diff["status"] == "held" and diff["added"] == ["pod:example"], diff
    assert podmod("lists", "approve", "wide", "1").exit_code == 0
    assert len(cases_json("open")) == 160


def test_the_share_of_new_matches_a_version_may_reach_is_set_per_list_and_small_pods_never_hold(
    lists, pod
):
    _wide_pod(pod)
    lists.write("wide", ["pod,wide.example,,"])
    lists.subscribe("wide", max_new_match_share=0.95)  # (150 of 160: 94%)
    code, output = sync()
    assert code == 0 and "150 new matches" in output, output

    lists.write("small", [f"pod,h{h}.wide.example,," for h in range(10)])  # 100 people: not held
    lists.subscribe("small")
    code, output = sync("small")
    assert code == 0 and "100 new matches" in output, output

    lists.write("tight", ["pod,far.example,,", "pod,wide.example,,"])
    lists.subscribe("tight", max_new_match_share=0.001)
    code, output = sync("tight")
    assert code == 4, output
    assert "more than the 0.10% allowed (its max_new_match_share)" in output, output


def test_approving_a_version_that_is_not_held_is_refused(lists, pod):
    lists.write("core", ["account,x@far.example,,"])
    lists.subscribe("core")
    sync()
    result = podmod("lists", "approve", "core", "1")
    assert result.exit_code == 2
    assert "is not held for approval (it is applied)" in result.output


def test_the_allowlist_overrides_every_other_list(lists, pod):
    pod.person("news", "press.example")
    pod.person("bad", "press.example")
    lists.write("core", ["pod,press.example,,"])
    lists.write("ours", ["account,news@press.example,,quotes the campaign to report on it"])
    lists.subscribe("core")
    lists.subscribe("ours", policy="allow", signed=False)

    assert sync()[0] == 0

    assert [c["account"] for c in cases_json("open")] == ["bad@press.example"]


def test_threshold_needs_entries_in_several_lists(lists, pod):
    pod.person("both", "far.example")
    pod.person("once", "far.example")
    lists.write("a", ["account,both@far.example,,", "account,once@far.example,,"])
    lists.write("b", ["account,both@far.example,,"])
    lists.subscribe("a")
    lists.subscribe("b")
    lists.list_sync = {"threshold": 2}
    lists.save()

    assert sync()[0] == 0

    [case] = cases_json("open")
    assert case["account"] == "both@far.example"
    assert case["list_matches"] == 2


def test_lock_policy_locks_local_matches_never_staff_never_remote(lists, pod, state):
    pod.person("spammer")
    pod.person("boss", roles=("admin",))
    pod.person("mod", roles=("moderator",))
    pod.person("remote", "far.example")
    lists.write(
        "lockme",
        [
            "account,spammer@pod.example,spam,",
            "account,boss@pod.example,,",
            "account,mod@pod.example,,",
            "account,remote@far.example,,",
        ],
    )
    lists.subscribe("lockme", policy="lock")

    code, output = sync()

    assert code == 0, output
    assert "lockme: locked spammer@pod.example (policy lock)" in output
    locked = pod.conn.execute(
        "SELECT u.username FROM users u WHERE u.locked_at IS NOT NULL"
    ).fetchall()
    assert [row["username"] for row in locked] == ["spammer"]
    audit = state.execute(
        "SELECT actor, action, account, reason, details FROM podmod.audit"
        " WHERE action LIKE 'lock%' ORDER BY account"
    ).fetchall()
    assert [(a["action"], a["account"]) for a in audit] == [
        ("lock_refused", "boss@pod.example"),
        ("lock_refused", "mod@pod.example"),
        ("lock", "spammer@pod.example"),
    ]
    # (not the action path's "repeat the action with a confirmation", which no list gives)
    assert "no list locks an admin or a moderator; a person may" in audit[1]["reason"], audit[1]
    assert "confirmation" not in audit[1]["reason"]
    lock_row = audit[-1]
    assert lock_row["actor"] == "list:lockme"
    assert lock_row["details"] == {
        "list": "lockme",
        "version": "1",
        "entry": "account:spammer@pod.example",
        "labels": ["spam"],
        "outcome": "locked",
        "reports": [],
    }
    # The list's policy decided the case: it is closed as locked, not left in the queue.
    assert sorted((c["account"], c["status"]) for c in cases_json("all")) == [
        ("boss@pod.example", "open"),
        ("mod@pod.example", "open"),
        ("remote@far.example", "open"),
        ("spammer@pod.example", "resolved"),
    ]
    # Another sync neither locks again nor repeats the refusals.
    assert "locked" not in sync()[1]
    assert (
        state.execute(
            "SELECT count(*) AS n FROM podmod.audit WHERE action LIKE 'lock%'"
        ).fetchone()["n"]
        == 3
    )


def test_lock_policy_closes_the_open_case_as_locked_and_marks_its_reports_reviewed(
    lists, pod, state
):
    reported_case(load_config(), pod)
    lists.write("lockme", ["account,spammer@pod.example,spam,"])
    lists.subscribe("lockme", policy="lock")

    assert "locked spammer@pod.example" in sync()[1]

    [case] = state.execute("SELECT status, resolution FROM podmod.cases").fetchall()
    assert (case["status"], case["resolution"]) == ("resolved", "locked")
    assert pod.conn.execute("SELECT bool_and(reviewed) AS b FROM reports").fetchone()["b"]
    assert [r["action"] for r in state.execute("SELECT action FROM podmod.decisions")] == ["lock"]


def test_lock_policy_locks_an_account_whose_case_was_dismissed_and_leaves_the_case_closed(
    lists, pod, state
):
    case_id = reported_case(load_config(), pod)
    assert podmod("case", "dismiss", str(case_id), "--reason", "fine").exit_code == 0
    lists.write("lockme", ["account,spammer@pod.example,spam,"])
    lists.subscribe("lockme", policy="lock")

    assert "locked spammer@pod.example" in sync()[1]

    assert is_locked(pod, "spammer")
    assert "locked" not in sync()[1]  # once
    decisions = [r["action"] for r in state.execute("SELECT action FROM podmod.decisions")]
    assert decisions == ["dismiss", "lock"]


def test_a_sync_loads_neither_the_matcher_nor_numpy_nor_the_queue(lists, pod):
    """They cost a quarter of a second of a sync's start; a sync needs only podmod.scan.changes."""
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    script = (
        "import sys\n"
        "from podmod.cli import main\n"
        "try:\n"
        "    main(['lists', 'sync'], standalone_mode=False)\n"
        "finally:\n"  # the command may end by SystemExit
        "    heavy = ('podmod.matching', 'podmod.scan.entries', 'numpy', 'rq')\n"
        "    print('loaded:', *sorted(m for m in heavy if m in sys.modules))\n"
    )

    def sync_in_a_process() -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        *said, loaded = done.stdout.splitlines()
        return "\n".join(said), loaded

    said, loaded = sync_in_a_process()
    assert "core: unchanged" in said, said
    assert loaded == "loaded:", f"an unchanged re-sync {loaded}"

    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    said, loaded = sync_in_a_process()
    assert "version 2 applied" in said, said
    assert loaded == "loaded:", f"a sync that applies a version {loaded}"


def test_lock_policy_respects_a_moderator_who_unlocked_the_account(lists, pod):
    pod.person("spammer")
    lists.write("lockme", ["account,spammer@pod.example,,"])
    lists.subscribe("lockme", policy="lock")
    sync()
    assert podmod("unlock", "spammer@pod.example", "--reason", "false positive").exit_code == 0
    lists.write("lockme", ["account,spammer@pod.example,,", "account,other@far.example,,"])

    sync()

    row = pod.conn.execute("SELECT locked_at FROM users WHERE username = 'spammer'").fetchone()
    assert row["locked_at"] is None


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("body", "does not verify"),
        ("key", "another key"),
        ("missing", "no signature"),
    ],
)
def test_a_bad_signature_refuses_the_list_and_keeps_the_previous_version(
    lists, pod, tamper, message
):
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    sync()
    path = lists.write("core", ["account,two@far.example,,"])
    signature = path.with_name(path.name + ".minisig")
    if tamper == "body":
        path.write_bytes(path.read_bytes() + b"account,three@far.example,,\n")
    elif tamper == "key":
        signature.write_text(minisign.sign(path.read_bytes(), minisign.SecretKey.generate()))
    else:
        signature.unlink()

    code, output = sync()

    assert code == 1
    assert "core: FAILED" in output and message in output
    assert [s["entry"] for s in list_signals() if not s["retracted"]] == ["account:one@far.example"]
    [shown] = json.loads(podmod("lists", "show", "--json").output)
    assert shown["version"] == 1 and message in shown["last_error"]


def signature_of(path: Path) -> Path:
    return path.with_name(path.name + ".minisig")


@pytest.mark.parametrize("stale", ["signature", "file"])
def test_a_file_beside_the_signature_of_its_version_before_or_after_is_refused_in_words_that_say_so(
    lists, pod, state, stale
):
    # A publisher uploads a new file and its signature one after the other, and a cache
    # (raw.githubusercontent.com keeps each file five minutes) serves them apart: for a while the
    # new file comes with the old signature, or the old file with the new one. The key made both,
    # so the words say what the server serves, not only "tampered with"; the version in force
    # stays, and once both are the new ones the next sync takes them.
    pod.person("one", "far.example")
    pod.person("two", "far.example")
    path = lists.write("core", ["account,one@far.example,,"])
    first_body, first_signature = path.read_bytes(), signature_of(path).read_text()
    first_signed = utc(lists.signed_at)
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    second_body, second_signature = path.read_bytes(), signature_of(path).read_text()
    if stale == "signature":
        signature_of(path).write_text(first_signature)
        expected = (
            "core: FAILED: List 'core' was refused: its file changed, but its signature is still "
            f"the one of version 1 (signed {first_signed}). Either its server is between updates"
        )
    else:
        path.write_bytes(first_body)
        expected = (
            f"core: FAILED: List 'core' was refused: its signature is newer (signed "
            f"{utc(lists.signed_at)}) than its file, which is still version 1's. Its server is "
            "between updates"
        )

    code, output = sync()

    assert code == 1, output
    assert expected in output, output
    assert "The version in force stays" in output, output
    assert versions_of(state, "core") == [(1, "applied")]
    [shown] = json.loads(podmod("lists", "show", "--json").output)
    assert shown["version"] == 1 and expected.removeprefix("core: FAILED: ") in shown["last_error"]
    check = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert check["list core"]["status"] == "fail", check["list core"]
    assert expected.removeprefix("core: FAILED: ") in check["list core"]["detail"], check

    path.write_bytes(second_body)
    signature_of(path).write_text(second_signature)
    code, output = sync()
    assert code == 0 and "version 2 applied" in output, output
    assert versions_of(state, "core") == [(1, "applied"), (2, "applied")]


def test_a_file_changed_beside_a_signature_of_the_key_for_no_stored_version_is_refused_as_tampered(
    lists, pod, state
):
    # The key's own signature, its trusted comment intact, of bytes that are neither this file
    # nor the version in force: nothing says the server is between updates.
    pod.person("one", "far.example")
    path = lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,two@far.example,,"])
    other = path.read_bytes() + b"account,three@far.example,,\n"
    path.write_bytes(other)

    code, output = sync()

    assert code == 1, output
    assert "does not verify with the pinned public key; the list may have been tampered" in output
    assert "between updates" not in output, output
    assert versions_of(state, "core") == [(1, "applied")]


def versions_of(state, name: str) -> list[tuple[int, str]]:
    state.rollback()
    rows = state.execute(
        "SELECT v.number, v.status FROM podmod.list_versions v JOIN podmod.lists l"
        " ON l.id = v.list_id WHERE l.name = %s ORDER BY v.number",
        (name,),
    ).fetchall()
    state.rollback()
    return [(row["number"], row["status"]) for row in rows]


@pytest.mark.parametrize(
    ("seconds", "said"), [(365 * 86400, "365 days"), (20 * 3600, "20 hours")], ids=["year", "hours"]
)
def test_a_file_signed_ahead_of_the_clock_is_refused_and_the_corrected_next_version_is_taken(
    lists, pod, state, seconds, said
):
    # A publisher's clock set wrong (a year ahead; 20 hours fast, local time taken for UTC):
    # taken in force, its file would refuse every version signed at the right time until then,
    # as a possible replay.
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    ahead = int(time.time()) + seconds
    lists.write(
        "core",
        ["account,one@far.example,,", "account,two@far.example,,"],
        trusted_comment=f"timestamp:{ahead}\tfile:core.csv\thashed",
    )

    code, output = sync()

    assert code == 1, output
    assert f"it was signed at {utc(ahead)}, {said} ahead of this server's clock" in output, output
    assert "the version in force stays" in output
    assert versions_of(state, "core") == [(1, "applied")]
    # The publisher corrects their clock and signs again: taken at once.
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    code, output = sync()
    assert code == 0 and "version 2 applied" in output, output
    # Minutes of drift pass.
    minutes = int(time.time()) + 10 * 60
    lists.write(
        "core",
        ["account,one@far.example,,", "account,three@far.example,,"],
        trusted_comment=f"timestamp:{minutes}\tfile:core.csv\thashed",
    )
    code, output = sync()
    assert code == 0 and "version 3 applied" in output, output


def is_locked(pod, username: str) -> bool:
    row = pod.conn.execute("SELECT locked_at FROM users WHERE username = %s", (username,))
    return row.fetchone()["locked_at"] is not None


def test_an_older_signed_version_served_again_is_refused_and_the_unlocked_account_stays_unlocked(
    lists, pod, state
):
    pod.person("spammer")
    kept = ["account,a@far.example,,", "account,b@far.example,,"]
    first = lists.write("lockme", ["account,spammer@pod.example,,", *kept])
    old_body, old_signature = first.read_bytes(), signature_of(first).read_text()
    lists.subscribe("lockme", policy="lock")
    assert "locked spammer@pod.example" in sync()[1]
    assert podmod("unlock", "spammer@pod.example", "--reason", "false positive").exit_code == 0
    lists.write("lockme", [*kept, "account,other@far.example,,"])  # spammer taken off
    assert "version 2 applied" in sync()[1]
    first.write_bytes(old_body)  # version 1 with its own valid signature, served again
    signature_of(first).write_text(old_signature)

    code, output = sync()

    assert code == 1, output
    signed = lists.signed_at
    assert (
        f"lockme: FAILED: List 'lockme' was refused: it was signed at {utc(signed - 1)}, older "
        f"than version 2 (signed at {utc(signed)}) in force: a possible replay, or a mirror or "
        "cache still serving the older file; version 2 stays."
    ) in output
    assert not is_locked(pod, "spammer")
    assert versions_of(state, "lockme") == [(1, "applied"), (2, "applied")]
    assert not [s for s in list_signals() if not s["retracted"]]
    [shown] = json.loads(podmod("lists", "show", "--json").output)
    assert shown["version"] == 2 and "a possible replay" in shown["last_error"]


def test_an_entry_taken_off_and_put_back_never_locks_an_account_a_moderator_unlocked(
    lists, pod, state
):
    # README: a lock list locks "never again after a moderator unlocked the account". The entry
    # put back is a new match; it opens the account's case for the moderators, and locks nothing.
    pod.person("spammer")
    pod.person("other")
    kept = ["account,a@far.example,,"]
    lists.write("lockme", ["account,spammer@pod.example,,", *kept])
    lists.subscribe("lockme", policy="lock")
    assert "locked spammer@pod.example" in sync()[1]
    assert podmod("unlock", "spammer@pod.example", "--reason", "false positive").exit_code == 0
    lists.write("lockme", kept)
    assert "1 retracted" in sync()[1]
    lists.write("lockme", ["account,spammer@pod.example,,", "account,other@pod.example,,", *kept])

    code, output = sync()

    assert code == 0, output
    assert "locked other@pod.example" in output and "spammer" not in output, output
    assert not is_locked(pod, "spammer") and is_locked(pod, "other")
    assert case_of("spammer@pod.example")["status"] == "open"


def test_a_new_public_key_verifies_the_file_again_and_holds_back_approval(lists, pod, state):
    # The podmin replaces a list's key (the old one was stolen, say): the next sync fetches the
    # file whole and verifies it with the new key, not "not modified since the last sync"; a
    # version held before cannot be approved until a sync has verified it with the new key.
    rows = [f"account,u{n}@far.example,," for n in range(4)]
    lists.write("core", rows)
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", rows[:1])  # held: removes 3 of 4
    assert sync()[0] == 4
    old_secret, lists.secret = lists.secret, minisign.SecretKey.generate()
    lists.subscribe("core")  # (the new public key)

    approve = podmod("lists", "approve", "core", "2")
    code, output = sync()
    again = sync()
    lists.write("core", rows[:1])  # the same file, signed with the new key
    code_after, after = sync()
    approved = podmod("lists", "approve", "core", "2")

    assert approve.exit_code != 0, approve.output
    assert (
        "Version 2 of list 'core' was verified with the list's earlier public_key, not with the "
        "one configured now; sync the list first" in approve.output
    ), approve.output
    assert code == 1 and "signature" in output and "unchanged" not in output, output
    assert again[0] == 1, again[1]
    assert code_after == 0 and "core: settings changed (public_key 'RW" in after, after
    assert approved.exit_code == 0, approved.output
    assert versions_of(state, "core") == [(1, "applied"), (2, "applied")]
    assert old_secret.public_key.to_string() != lists.secret.public_key.to_string()


def test_an_entry_put_back_never_reopens_a_case_a_moderator_dismissed(lists, pod, state):
    # A publisher's entry that flips off and on: each return was a new match, a new open case
    # and a new alert, and the moderator's Dismiss was forgotten. Now the match is active again in
    # the dismissed case; a lock list does not lock what the moderator dismissed either.
    pod.person("flip", "far.example")
    pod.person("local")
    pod.person("other")
    kept = ["account,kept@far.example,,", "account,other@pod.example,,"]
    flipping = ["account,flip@far.example,,", "account,local@pod.example,,"]
    lists.list_sync["max_locks"] = 1  # (the lock list's locks wait: the moderator dismisses)
    lists.write("core", [*flipping, *kept])
    lists.write("lockme", [*flipping, *kept])
    lists.subscribe("core")
    lists.subscribe("lockme", policy="lock")
    assert sync()[0] == 4
    for account in ("flip@far.example", "local@pod.example"):
        case_id = case_of(account)["id"]
        dismissed = podmod("case", "dismiss", str(case_id), "--reason", "placeholder: fine")
        assert dismissed.exit_code == 0, dismissed.output
    lists.write("core", kept)
    lists.write("lockme", kept)
    removed = sync()
    assert removed[0] == 0, removed[1]
    lists.list_sync["max_locks"] = 20
    lists.save()
    lists.write("core", [*flipping, *kept])
    lists.write("lockme", [*flipping, *kept])

    code, output = sync()

    assert code == 0, output
    assert "core: version 3 applied (podmod): 4 entries (+2 -0); 2 new matches" in output, output
    assert "locked local" not in output, output
    assert not is_locked(pod, "local")
    assert cases_json("open") == []
    cases = {c["account"]: c for c in cases_json("all")}
    for account in ("flip@far.example", "local@pod.example"):
        assert cases[account]["status"] == "dismissed", cases[account]
        active = [
            s for s in cases[account]["signals"] if s["kind"] == "list" and not s["retracted"]
        ]
        assert sorted(s["list"] for s in active) == ["core", "lockme"], cases[account]
    assert len([c for c in cases_json("all") if c["account"] == "flip@far.example"]) == 1
    assert_cases_consistent(state)


def utc(timestamp: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_another_file_signed_in_the_same_second_is_refused(lists, pod, state):
    comment = "timestamp:1700000000\tfile:core.csv\thashed"
    lists.write("core", ["account,one@far.example,,"], trusted_comment=comment)
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,two@far.example,,"], trusted_comment=comment)

    code, output = sync()

    assert code == 1
    assert (
        "it was signed at 2023-11-14 22:13:20 UTC, the same second as version 1 (signed at "
        "2023-11-14 22:13:20 UTC) in force, yet its content differs, so which is newer cannot be "
        "told (a possible replay); version 1 stays."
    ) in output
    assert versions_of(state, "core") == [(1, "applied")]


def test_a_signature_without_a_time_after_one_with_a_time_is_refused(lists, pod, state):
    # Without the check, one untimed signature made every older timed file acceptable again:
    # each was compared with the version in force only, which then had no time.
    pod.person("one", "far.example")
    first = lists.write("core", ["account,one@far.example,,"])
    old_body, old_signature = first.read_bytes(), signature_of(first).read_text()
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,two@far.example,,"], trusted_comment="weekly release")

    code, output = sync()
    first.write_bytes(old_body)
    signature_of(first).write_text(old_signature)
    replayed = sync()

    assert code == 1, output
    assert (
        f"List 'core' was refused: its signature has no timestamp, while version 1 (signed at "
        f"{utc(lists.signed_at - 1)}) in force has one, so an older file signed so, served again, "
        "could not be told from a new one; ask the list's maintainers to sign with minisign, "
        "which writes one; version 1 stays." in output
    ), output
    assert replayed[0] == 0 and "unchanged" in replayed[1], replayed[1]
    assert versions_of(state, "core") == [(1, "applied")]


def test_an_older_file_never_pushes_a_held_version_aside(lists, pod, state):
    # Version 3 waits for approval; version 1's own file and signature, served again (a replay, or
    # a cache), is older than it and than version 2 in force: refused, and version 3 stays held and
    # can be approved. (Version 2's own file again is its publisher taking version 3 back:
    # tests/test_list_operation.py.)
    rows = [f"account,u{n}@far.example,," for n in range(4)]
    first = lists.write("core", rows)
    old_body, old_signature = first.read_bytes(), signature_of(first).read_text()
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", [*rows, "account,u4@far.example,,"])
    assert sync()[0] == 0
    lists.write("core", rows[:2])  # removes 3 of 5 entries: held
    held = sync()
    first.write_bytes(old_body)
    signature_of(first).write_text(old_signature)

    code, output = sync()
    again = sync()

    assert held[0] == 4 and "version 3" in held[1] and "held for approval" in held[1], held[1]
    assert code == 1, output
    assert (
        f"older than version 3 (signed at {utc(lists.signed_at)}), held for approval: a possible "
        "replay, or a mirror or cache still serving the older file; version 2 stays." in output
    ), output
    assert again[0] == 1, again[1]
    assert versions_of(state, "core") == [(1, "applied"), (2, "applied"), (3, "held")]
    approved = podmod("lists", "approve", "core", "3")
    assert approved.exit_code == 0, approved.output
    assert versions_of(state, "core") == [(1, "applied"), (2, "applied"), (3, "applied")]
    diff = podmod("lists", "diff", "core", "--version", "3").output
    assert "\nit was held (it removes 3 of 5 entries" in diff and "then approved by cli:" in diff
    assert "\nheld: " not in diff, diff


def test_a_version_signed_with_a_time_is_taken_after_one_signed_without(lists, pod):
    lists.write("core", ["account,one@far.example,,"], trusted_comment="release 1")
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])

    code, output = sync()

    assert code == 0 and "version 2 applied" in output


def test_a_file_signed_for_another_list_is_refused_at_a_lock_lists_url(lists, pod, state):
    pod.person("spammer")
    core = lists.write("core", ["account,spammer@pod.example,,"])  # signed as file:core.csv
    lockme = lists.directory / "lockme.csv"
    lockme.write_bytes(core.read_bytes())
    signature_of(lockme).write_text(signature_of(core).read_text())
    lists.subscribe("lockme", policy="lock")

    code, output = sync()

    assert code == 1
    assert (
        "List 'lockme' was refused: its signature is for the file core.csv, not lockme.csv (the "
        "last part of its URL): this may be another list's file, signed with the same key and "
        'served in this one\'s place; set signed_file = "core.csv" for this list only once its '
        "publisher confirms that this list is served under that name."
    ) in output
    assert not is_locked(pod, "spammer")
    assert versions_of(state, "lockme") == [] and cases_json() == []


def test_a_publishers_file_name_with_direction_marks_is_quoted_escaped_and_stored_clean(
    lists, pod, state
):
    # A trusted comment's `file:` is the publisher's text, quoted in podmod's own sentence: with
    # a right-to-left override in it, a page would show the rest of that sentence mirrored, and
    # the signed_file it suggests would carry the invisible characters.
    path = lists.write(
        "core",
        ["account,one@far.example,,"],
        trusted_comment=f"timestamp:{int(time.time())}\tfile:x\u200f\u200b<b>evil</b>\u202e.csv",
    )
    assert path.name == "core.csv"
    lists.subscribe("core")

    code, output = sync()

    assert code == 1
    escaped = r"'x\u200f\u200b<b>evil</b>\u202e.csv'"
    assert f"its signature is for the file {escaped}, not core.csv: a name with control" in output
    assert "signed_file" not in output, output
    [row] = state.execute("SELECT last_error FROM podmod.lists WHERE name = 'core'").fetchall()
    state.rollback()
    stored = row["last_error"]
    assert escaped in stored, stored
    assert not any(mark in stored for mark in "\u200f\u200b\u202e"), stored


def test_signed_file_names_the_file_a_list_is_signed_as(lists, pod):
    pod.person("spammer")
    core = lists.write("core", ["account,spammer@pod.example,,"])
    lockme = lists.directory / "lockme.csv"
    lockme.write_bytes(core.read_bytes())
    signature_of(lockme).write_text(signature_of(core).read_text())
    lists.subscribe("lockme", policy="lock", signed_file="core.csv")

    code, output = sync()

    assert code == 0, output
    assert is_locked(pod, "spammer")
    lists.subscribe("lockme", policy="lock", signed_file="other.csv")
    lists.write("core", ["account,spammer@pod.example,,", "account,x@far.example,,"])
    lockme.write_bytes(core.read_bytes())
    signature_of(lockme).write_text(signature_of(core).read_text())
    code, output = sync()
    assert code == 1 and "for the file core.csv, not other.csv (signed_file)" in output


def test_lists_show_tells_when_each_version_was_signed_and_warns_without_a_time(lists, pod):
    lists.write(
        "core", ["account,one@far.example,,"], trusted_comment="timestamp:1700000000\thashed"
    )
    lists.write("bare", ["account,two@far.example,,"], trusted_comment="release 1")
    lists.write("plain", ["account,three@far.example,,"], sign=False)
    lists.subscribe("core")
    lists.subscribe("bare")
    lists.subscribe("plain", signed=False)
    assert sync()[0] == 0

    shown = podmod("lists", "show").output

    core, bare, plain = (shown_block(shown, name) for name in ("core", "bare", "plain"))
    assert "signed 2023-11-14 22:13:20 UTC" in core and "WARN" not in core
    assert "WARN: signed without a timestamp" in bare
    assert "signed" not in plain
    rows = {row["name"]: row for row in json.loads(podmod("lists", "show", "--json").output)}
    assert rows["core"]["signed_at"].startswith("2023-11-14 22:13:20")
    assert rows["bare"]["signed_at"] is None and rows["bare"]["signed_comment"] == "release 1"


def shown_block(output: str, name: str) -> str:
    """The lines `podmod lists show` prints for one list."""
    lines = output.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(f"{name} ("))
    end = next((n for n in range(start + 1, len(lines)) if not lines[n].startswith(" ")), None)
    return "\n".join(lines[start:end])


def test_check_warns_of_a_list_signed_without_a_time_and_fails_one_signed_for_another_file(
    lists, pod
):
    lists.write("core", ["account,one@far.example,,"])
    lists.write("bare", ["account,two@far.example,,"], trusted_comment="release 1")
    other = lists.write("other", ["account,three@far.example,,"])
    other.rename(lists.directory / "moved.csv")
    signature_of(other).rename(lists.directory / "moved.csv.minisig")
    lists.subscribe("core")
    lists.subscribe("bare")
    lists.subscribe("moved")

    result = podmod("check", "--json")

    report = {c["check"]: c for c in json.loads(result.output)["checks"]}
    assert report["list core"]["status"] == "ok"
    assert ", podmod, 1 entry; signature valid, signed" in report["list core"]["detail"]
    assert report["list bare"]["status"] == "warn"
    assert "signed without a timestamp" in report["list bare"]["detail"]
    assert report["list moved"]["status"] == "fail"
    assert "for the file other.csv, not moved.csv" in report["list moved"]["detail"]


def test_check_warns_of_a_list_no_sync_has_tried_for_hours(lists, pod, state):
    """The cron job stopped: `podmod check` still reaches and reads the list, and warns that no
    sync has tried it since, saying what to look at. A list not synced yet is only said to be."""
    lists.write("core", ["account,one@far.example,,"])
    lists.write("added", ["account,two@far.example,,"])
    lists.subscribe("core")
    assert sync("core")[0] == 0
    lists.subscribe("added")

    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert report["list core"]["status"] == "ok", report["list core"]
    assert report["list added"]["status"] == "ok", report["list added"]
    assert report["list added"]["detail"].endswith(
        "; not synced yet (deploy/podmod.cron syncs every 15 minutes)"
    )

    state.execute("UPDATE podmod.lists SET last_attempt_at = now() - interval '5 hours'")
    state.commit()
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    for name in ("core", "added"):
        assert report[f"list {name}"]["status"] == "warn", report[f"list {name}"]
        assert "signature valid, signed" in report[f"list {name}"]["detail"]
        assert "cron job (deploy/podmod.cron) is installed" in report[f"list {name}"]["detail"]
    assert "; no sync has tried it since " in report["list core"]["detail"]
    assert "; never synced, and no sync has run since " in report["list added"]["detail"]
    shown = podmod("lists", "show").output
    assert "\n  no sync has tried it since " in shown and "/var/log/podmod/lists.log" in shown
    # (the list never synced is told stale too, and has every key a synced one has)
    assert "added (review): subscribed, not synced yet (`podmod lists sync --name added`)\n" in (
        shown
    )
    assert "\n  never synced, and no sync has run since " in shown, shown
    [shown, added] = json.loads(podmod("lists", "show", "--json").output)
    assert shown["stale"].startswith("no sync has tried it since "), shown
    assert added["name"] == "added" and added["version"] is None  # (subscribed, not synced)
    assert added["stale"].startswith("never synced, and no sync has run since "), added
    assert sorted(added) == sorted(shown), sorted(set(shown) ^ set(added))
    assert (added["held"], added["entries"], added["last_error"]) == ([], 0, None)


def test_check_reads_each_list_as_a_sync_would_and_says_how_or_why_not(lists, pod, state):
    """`podmod check` tells a podmin before the first nightly sync whether each list reads: its
    shape and entries, or the sentence the sync would fail with."""
    lists.write("core", ["account,one@far.example,,", "pod,far.example,spam,", "pod,*.x.example,,"])
    lists.write("broken", ["account,one@far.example,,", "bogus,thing,,"])
    lists.write("skipping", ["account,one@far.example,,", "bogus,thing,,"])
    (lists.directory / "page.csv").write_text("<!DOCTYPE html>\n<html><head></head></html>\n")
    lists.subscribe("core")
    lists.subscribe("broken")
    lists.subscribe("skipping", skip_invalid=True)
    lists.subscribe("page", signed=False)

    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}

    assert report["list core"]["status"] == "ok"
    assert ", podmod, 3 entries; signature valid, signed" in report["list core"]["detail"]
    assert report["list skipping"]["status"] == "ok"
    assert (
        ", podmod, 1 entry, 1 invalid row skipped; signature" in report["list skipping"]["detail"]
    )
    assert report["list broken"]["status"] == "fail"
    assert "line 3: " in report["list broken"]["detail"]
    assert report["list page"]["status"] == "fail"
    assert report["list page"]["detail"].startswith("The list's address serves a web page")
    stored = state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"]
    assert stored == 0 and cases_json() == []


def test_a_malformed_list_is_refused_with_line_numbers_unless_told_to_skip(lists, pod):
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,", "bogus,thing,,", "account,not a handle,,"])
    lists.subscribe("core", signed=False)

    code, output = sync()

    assert code == 1 and "line 3" in output and "line 4" in output
    assert cases_json() == []

    lists.subscribe("core", signed=False, skip_invalid=True)
    code, output = sync()
    assert code == 0 and "2 invalid rows skipped" in output
    # which ones, for the podmin to tell the publisher: by line, in the sync's line
    assert "1 new match, 0 retracted; skipped line 3: 'bogus' is not a known kind" in output
    assert "; line 4: " in output, output
    assert [c["account"] for c in cases_json("open")] == ["one@far.example"]


def test_one_failing_list_does_not_stop_the_others(lists, pod):
    pod.person("one", "far.example")
    lists.write("good", ["account,one@far.example,,"])
    lists.subscribe("broken", signed=False)  # its file does not exist
    lists.subscribe("good", signed=False)

    code, output = sync()

    assert code == 1
    assert "broken: FAILED" in output and "good: version 1 applied" in output
    assert [c["account"] for c in cases_json("open")] == ["one@far.example"]
    # (a list that never had a version has no previous one to keep in force; a dry run neither)
    dry_run = podmod("lists", "sync", "--dry-run", "--name=broken").output
    for said in (output, dry_run):
        assert "; no version of it is in force yet and the next sync tries again." in said, said
        assert "previous version" not in said


def test_an_account_discovered_later_is_matched_by_the_reader(lists, pod, env):
    lists.write("core", ["account,late@far.example,,", "pod,bad.example,,"])
    lists.subscribe("core")
    sync()
    assert cases_json() == []

    pod.person("late", "far.example")  # federation brings a new remote person
    pod.person("someone", "bad.example")
    result = read_once(load_config())
    drain(load_config())

    assert result.new_people_matched == 2
    assert sorted(c["account"] for c in cases_json("open")) == [
        "late@far.example",
        "someone@bad.example",
    ]


def test_list_matches_and_reports_share_one_case(lists, pod):
    reporter = pod.person("reporter")
    author = pod.person("author", "far.example")
    pod.report(reporter, "Post", pod.post(author, "text"))
    config = load_config()
    read_once(config)
    drain(config)
    lists.write("core", ["account,author@far.example,spam,"])
    lists.subscribe("core")

    sync()

    [case] = cases_json("open")
    assert [s["kind"] for s in case["signals"]] == ["report", "list"]
    assert case["priority"] == 10 + 30


CASE_COUNTS = (
    "SELECT id, account, priority, list_match_count, report_count, first_signal_at,"
    " last_signal_at FROM podmod.cases ORDER BY id"
)


def test_cases_a_sync_opens_carry_the_counts_and_priority_their_signals_give(lists, pod, state):
    """A sync writes the cases it opens with their counts at once; podmod.refresh_cases() must
    find nothing to change in them (suspend 30, silence 15, local +5: README, Priority)."""
    local = pod.person("here")
    pod.person("two", "s1.muted.example")  # suspended (its host's own entry, the nearest)
    pod.person("one", "muted.example")  # silenced
    (lists.directory / "masto.csv").write_text(
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        "muted.example,silence,false,false,,false\n"
        "s1.muted.example,suspend,false,false,,false\n"
    )
    lists.subscribe("masto", signed=False)
    lists.write("core", [f"account,{local.handle},spam,"])
    lists.subscribe("core")

    assert sync()[0] == 0

    written = state.execute(CASE_COUNTS).fetchall()
    by_account = {row["account"]: (row["list_match_count"], row["priority"]) for row in written}
    assert by_account == {
        local.handle: (1, 30 + 5),
        "two@s1.muted.example": (1, 30),
        "one@muted.example": (1, 15),
    }, written
    state.execute("SELECT podmod.refresh_cases(%s)", ([row["id"] for row in written],))
    assert state.execute(CASE_COUNTS).fetchall() == written
    state.rollback()


def test_a_list_removed_from_the_config_stops_applying_and_the_sync_says_so(lists, pod, state):
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.write("other", [])
    lists.subscribe("core")
    lists.subscribe("other")
    sync()
    lists.lists = [item for item in lists.lists if item["name"] != "core"]
    lists.save()

    dry_run = podmod("lists", "sync", "--dry-run")
    assert cases_json("open") != []
    code, output = sync()
    again = sync()

    said = "no longer in the configuration: it applies no more, and its 1 match is retracted"
    assert (
        "core: (dry run) no longer in the configuration: a sync would stop applying it and"
        " retract its 1 match" in dry_run.output
    ), dry_run.output
    assert code == 0 and f"core: {said} (its versions are kept)" in output, output
    assert "core" not in again[1]  # (told once)
    assert cases_json("open") == []
    assert all(s["retracted"] for s in list_signals())
    [retired] = [
        o for o in json.loads(podmod("lists", "show", "--json").output) if o["name"] == "core"
    ]
    assert retired["policy"] == "ignore" and retired["version"] == 1
    assert retired["subscribed"] is False
    lists.subscribe("fresh")  # (configured, never synced: shown too)
    shown = podmod("lists", "show").output
    assert "core (no longer subscribed: it applies no more; its versions are kept) (ignore)" in (
        shown
    ), shown
    assert "fresh (review): subscribed, not synced yet (`podmod lists sync --name fresh`)" in shown
    as_json = {o["name"]: o for o in json.loads(podmod("lists", "show", "--json").output)}
    assert as_json["fresh"]["version"] is None and as_json["other"]["subscribed"] is True
    state.rollback()
    audit = state.execute("SELECT source FROM podmod.audit WHERE action = 'list_retire'")
    assert [row["source"] for row in audit] == ["list:core"]
    state.rollback()


def test_the_last_list_removed_is_retired_and_a_pod_with_no_lists_syncs_quietly(lists, pod, state):
    # The install's cron line runs on a pod with no [[lists]] yet too: every 15 minutes a non-zero
    # exit would be a mail. And a podmin who unsubscribes from their only list has it retired by
    # the next sync, as from any other (README, "A list taken out of the configuration").
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0 and cases_json("open") != []
    lists.lists = []
    lists.save()

    retired = podmod("lists", "sync", "--cron")
    quiet = podmod("lists", "sync", "--cron")

    assert retired.exit_code == 0, retired.output
    assert "core: no longer in the configuration: it applies no more" in retired.output
    assert cases_json("open") == [] and all(s["retracted"] for s in list_signals())
    assert quiet.exit_code == 0, quiet.output
    assert "No [[lists]] in the configuration" in quiet.output and "core" not in quiet.output
    state.rollback()


def test_a_list_renamed_in_the_config_keeps_its_versions_matches_and_dismissals(lists, pod, state):
    # A podmin renames a [[lists]] table, its url the same: the list it was carries on under the
    # new name (not retired, every match retracted and its cases resolved, then subscribed anew
    # over a moderator's dismissal).
    for n in range(3):
        pod.person(f"u{n}", "far.example")
    lists.write("sub", [f"account,u{n}@far.example,spam," for n in range(3)])
    lists.subscribe("sub")
    assert sync()[0] == 0
    cases = {case["account"]: case["id"] for case in cases_json("open")}
    dismissed = podmod("case", "dismiss", str(cases["u0@far.example"]), "--reason", "fine")
    assert dismissed.exit_code == 0, dismissed.output
    [entry] = lists.lists
    lists.lists = [entry | {"name": "renamed"}]
    lists.save()

    preview = podmod("lists", "sync", "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert "renamed: (dry run) would be renamed from 'sub' in the configuration" in preview.output
    assert "retract" not in preview.output, preview.output
    code, output = sync()

    assert code == 0, output
    assert "renamed: renamed from 'sub' in the configuration: its versions, matches" in output
    assert "unchanged" in output and "retract" not in output, output
    assert {case["account"]: case["id"] for case in cases_json("open")} == {
        account: case_id for account, case_id in cases.items() if account != "u0@far.example"
    }
    active = [s for s in list_signals() if not s["retracted"]]
    assert len(active) == 3 and {s["list"] for s in active} == {"renamed"}, active
    [row] = state.execute(
        "SELECT reason, details FROM podmod.audit WHERE action = 'list_rename'"
    ).fetchall()
    state.rollback()
    assert row["details"] == {"from": "sub", "to": "renamed"}
    # Its next version applies as the list's own; the dismissed account stays dismissed.
    lists.write("sub", [f"account,u{n}@far.example,spam," for n in range(4)])
    pod.person("u3", "far.example")
    code, output = sync()
    assert code == 0 and "renamed: version 2 applied" in output, output
    assert sorted(case["account"] for case in cases_json("open")) == [
        "u1@far.example",
        "u2@far.example",
        "u3@far.example",
    ]


def test_a_list_put_back_in_the_config_applies_again_and_each_sync_counts_its_own(lists, pod):
    # README: a list removed from the config is retired; "put back, it applies again from the
    # version it had", though its file has not changed. Another list's sync in between neither
    # applies it nor counts its matches as its own.
    pod.person("one", "far.example")
    pod.person("two", "far.example")
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    lists.write("other", [])
    lists.subscribe("core")
    lists.subscribe("other")
    sync()
    kept = lists.lists
    lists.lists = [item for item in kept if item["name"] != "core"]
    lists.save()
    sync()
    lists.lists = kept
    lists.save()
    lists.write("other", ["account,nobody@else.example,,"])

    other = sync("other")
    open_after_other = cases_json("open")
    code, output = sync("core")

    assert other[0] == 0 and "other: version 2 applied" in other[1], other[1]
    assert "0 new matches, 0 retracted" in other[1] and "other lists'" not in other[1], other[1]
    assert open_after_other == [], open_after_other
    assert code == 0, output
    assert (
        "core: settings changed (policy 'review'); matches re-applied: 2 new matches, 0 retracted\n"
        in output
    )
    assert sorted(case["account"] for case in cases_json("open")) == [
        "one@far.example",
        "two@far.example",
    ]
    [core] = [
        o for o in json.loads(podmod("lists", "show", "--json").output) if o["name"] == "core"
    ]
    assert core["policy"] == "review" and core["version"] == 1, core
    again = sync("core")
    assert again[0] == 0 and "core: unchanged" in again[1], again[1]


def test_a_sync_tells_its_own_matches_from_those_of_other_lists(lists, pod):
    # A sync applies every list again (people came since the last matching): the matches the
    # other lists gain are said apart, not counted as this list's.
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    lists.write("other", [])
    lists.subscribe("core")
    lists.subscribe("other")
    sync()
    pod.person("two", "far.example")
    pod.person("three", "near.example")
    lists.write("other", ["account,three@near.example,,"])

    code, output = sync("other")

    assert code == 0, output
    assert (
        "other: version 2 applied (podmod): 1 entry (+1 -0); 1 new match, 0 retracted;"
        " other lists' matches: 1 new\n" in output
    ), output
    assert sorted(case["account"] for case in cases_json("open")) == [
        "one@far.example",
        "three@near.example",
        "two@far.example",
    ]


def test_a_defect_met_on_one_list_fails_that_list_alone(lists, pod, state, monkeypatch):
    # An unexpected error (a defect of podmod's, met on one list's file or server) must not
    # stop the other lists' sync: that list fails in one sentence, recorded as its last error,
    # and the log keeps the traceback to report.
    from podmod.lists import sync as list_sync

    pod.person("one", "far.example")
    lists.write("broken", ["account,one@far.example,,"])
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("broken")
    lists.subscribe("core")
    read = list_sync.list_reader

    def reader(subscription, body):
        if subscription.name == "broken":
            raise ValueError("Invalid IPv6 URL")
        return read(subscription, body)

    monkeypatch.setattr(list_sync, "list_reader", reader)

    code, output = sync()

    assert code == 1, output
    assert (
        "broken: FAILED: List 'broken' could not be synced: podmod met an unexpected error "
        "(ValueError: Invalid IPv6 URL); no version of it is in force yet; the log has the "
        "details, please report them." in output
    ), output
    assert "core: version 1 applied" in output, output
    assert "ERROR podmod.lists list broken: unexpected error\n  | Traceback" in output, output
    shown = {row["name"]: row for row in json.loads(podmod("lists", "show", "--json").output)}
    assert "unexpected error" in shown["broken"]["last_error"]
    assert [s["list"] for s in case_of("one@far.example")["signals"] if s["kind"] == "list"] == [
        "core"
    ]


def test_publish_then_sync_then_match_with_podmod_alone(lists, pod, tmp_path):
    pod.person("spammer", "far.example")
    keys = podmod("lists", "keygen", "--dir", str(tmp_path / "keys"))
    assert keys.exit_code == 0, keys.output
    public_key = keys.output.split("public_key): ")[1].split()[0]
    source = tmp_path / "source.csv"
    source.write_text(HEADER + "account,Spammer@Far.Example,spam,placeholder\n")
    publish = (
        "lists",
        "publish",
        "--from-csv",
        str(source),
        "--secret-key",
        str(tmp_path / "keys" / "podmod.key"),
        "--output",
        str(lists.directory / "shared.csv"),
    )
    published = podmod(*publish)
    assert published.exit_code == 0, published.output
    lists.subscribe("shared", signed=False, public_key=public_key)

    assert sync()[0] == 0

    [signal] = list_signals()
    assert signal["entry"] == "account:spammer@far.example"
    comment = (lists.directory / "shared.csv.minisig").read_text().splitlines()[2]
    assert comment.startswith("trusted comment: timestamp:")
    assert comment.endswith("\tfile:shared.csv\thashed")
    # Published again at once (within the same second): still a newer version for subscribers.
    source.write_text(HEADER + "account,spammer@far.example,spam,\naccount,other@far.example,,\n")
    assert podmod(*publish).exit_code == 0
    code, output = sync()
    assert code == 0 and "version 2 applied" in output, output


def test_publish_from_decisions_lists_accounts_still_locked(lists, pod, tmp_path, state):
    pod.person("kept")
    pod.person("released")
    podmod("lock", "kept@pod.example", "--reason", "spam")
    podmod("lock", "released@pod.example", "--reason", "spam")
    podmod("unlock", "released@pod.example", "--reason", "appeal accepted")
    podmod("lists", "keygen", "--dir", str(tmp_path))

    result = podmod(
        "lists",
        "publish",
        "--from-decisions",
        "--secret-key",
        str(tmp_path / "podmod.key"),
        "--output",
        str(tmp_path / "ours.csv"),
    )

    assert result.exit_code == 0, result.output
    rows = (tmp_path / "ours.csv").read_text().splitlines()
    assert rows[0] == "kind,value,label,comment"
    assert [row.split(",")[1] for row in rows[1:]] == ["kept@pod.example"]


def test_publish_from_this_pods_list_shares_its_entries_and_keeps_its_reasons(
    lists, pod, tmp_path, state
):
    pod.person("spammer", "far.example")
    pod.person("someone", "sub.wave.example")
    flagged = [
        ("spammer@far.example", "Spam (really)!", "reported by a member, see case 12"),
        ("wave.example", "spam wave", "placeholder internal note"),
        ("gone.example", "", "placeholder"),
        ("ported.example:8443", "", "placeholder"),
        ("twice.example", "spam, scam", "placeholder"),
    ]
    for entry, label, reason in flagged:
        added = podmod("lists", "add", entry, "--label", label, "--reason", reason)
        assert added.exit_code == 0, added.output
    podmod("lists", "remove", "gone.example", "--reason", "placeholder")
    keys = podmod("lists", "keygen", "--dir", str(tmp_path))
    public_key = keys.output.split("public_key): ")[1].split()[0]
    key = ("--secret-key", str(tmp_path / "podmod.key"))

    def publish(name: str, *options: str) -> str:
        output = lists.directory / name
        result = podmod(
            "lists", "publish", "--from-pod-list", *key, "--output", str(output), *options
        )
        assert result.exit_code == 0, result.output
        return output.read_text()

    assert publish("neighbour.csv").splitlines() == [
        "kind,value,label,comment",
        "account,spammer@far.example,Spam really,",
        "pod,wave.example,spam wave,",
        "pod,ported.example:8443,,",
        "pod,twice.example,spam; scam,",  # (two labels as typed, still two when read back)
    ]
    with_reasons = publish("ours-with-reasons.csv", "--with-reasons")
    assert "reported by a member, see case 12" in with_reasons
    assert publish("ours-mastodon.csv", "--format", "mastodon").splitlines()[1:] == [
        "wave.example,suspend,false,false,spam wave,false",
        "twice.example,suspend,false,false,spam; scam,false",
    ]
    refused = [
        podmod("lists", "publish", "--from-decisions", "--with-reasons", *key, "--output", "x"),
        podmod("lists", "publish", "--from-pod-list", "--from-decisions", *key, "--output", "x"),
    ]
    assert [r.exit_code for r in refused] == [2, 2]
    assert "--with-reasons goes with --from-pod-list" in refused[0].output
    assert "exactly one of --from-csv FILE, --from-decisions or --from-pod-list" in (
        refused[1].output
    )

    # A neighbour subscribing to it flags what this pod flags.
    lists.subscribe("neighbour", signed=False, public_key=public_key)
    code, output = sync()
    assert code == 0 and "neighbour: version 1 applied" in output, output
    entries = {s["entry"] for s in list_signals() if s["list"] == "neighbour"}
    assert entries == {"account:spammer@far.example", "pod:wave.example"}
    labels = state.execute(
        "SELECT e.labels FROM podmod.list_entries e JOIN podmod.lists l ON l.id = e.list_id"
        " WHERE l.name = 'neighbour' AND e.value = 'twice.example'"
    ).fetchone()["labels"]
    state.rollback()
    assert labels == ["spam", "scam"], labels


def test_over_https_an_unchanged_list_is_a_304_and_costs_no_work(lists, pod, tmp_path, state):
    from podmod.loopback import LoopbackServer

    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.list_sync = {"ca_bundle": str(server.cert_path)}
        lists.subscribe("core", url=server.url("core.csv"))
        first = sync()
        versions_before = state.execute("SELECT count(*) AS n FROM podmod.list_versions").fetchone()
        second = sync()

    assert first[0] == 0 and "version 1 applied" in first[1]
    assert second[0] == 0 and "core: unchanged (not modified since the last sync)" in second[1]
    after = state.execute("SELECT count(*) AS n FROM podmod.list_versions").fetchone()
    assert after == versions_before
    [shown] = json.loads(podmod("lists", "show", "--json").output)
    assert shown["last_error"] is None and shown["version"] == 1


def test_a_list_moved_to_another_url_is_fetched_whole_there(lists, pod, https, tls_files):
    # A podmin moves a subscription to a mirror whose copy is older: the first server's
    # Last-Modified, sent along, had the mirror answer "not modified", and the list stayed at the
    # first server's version (a dry run said the same) until the mirror's copy changed again.
    pod.person("one", "far.example")
    pod.person("two", "far.example")
    lists.list_sync = {"ca_bundle": str(tls_files[0])}
    base = f"https://127.0.0.1:{https.server_address[1]}"
    lists.subscribe("core", signed=False, url=f"{base}/first.csv")
    first = sync()
    lists.subscribe("core", signed=False, url=f"{base}/mirror.csv")

    dry_run = podmod("lists", "sync", "--dry-run")
    moved = sync()

    assert first[0] == 0 and "version 1 applied" in first[1]
    assert "core: (dry run) version 2 applied" in dry_run.output, dry_run.output
    assert moved[0] == 0 and "version 2 applied (podmod): 2 entries (+1 -0)" in moved[1], moved[1]
    asked = [headers for path, headers in https.requests if path == "/mirror.csv"]
    assert [h.get("If-Modified-Since") for h in asked] == [None, None]
    matched = [c["account"] for c in cases_json("open") if c["list_matches"]]
    assert sorted(matched) == ["one@far.example", "two@far.example"]


def test_a_list_its_server_moved_for_good_says_where_in_the_sync_check_show_and_page(
    lists, pod, https, tls_files, make_app, admin
):
    # Redirected permanently (a renamed repository, a publisher's new host), a list is still
    # fetched, but the old address redirects only as long as its server keeps it up: the sync
    # and `podmod check` tell the podmin the new address while it does.
    lists.list_sync = {"ca_bundle": str(tls_files[0])}
    base = f"https://127.0.0.1:{https.server_address[1]}"
    lists.subscribe("core", signed=False, url=f"{base}/moved.csv")
    said = f"its server says it moved for good to {base}/list.csv: set its url to that address"

    code, output = sync()
    check = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    again = sync()

    assert code == 0 and "core: version 1 applied" in output and said in output, output
    assert check["list core"]["status"] == "warn" and said in check["list core"]["detail"], check
    assert again[0] == 0 and "core: unchanged" in again[1] and said in again[1], again[1]
    # (cron mails only a failed sync: `lists show` and the lists page keep telling)
    [shown] = json.loads(podmod("lists", "show", "--json").output)
    assert shown["moved_to"] == f"{base}/list.csv", shown
    assert f"  {said} before the old one stops redirecting\n" in podmod("lists", "show").output
    page = html(signed_in(make_app().test_client(), "podmin").get("/lists"))
    assert f"Its server says it moved for good to {base}/list.csv: set its url" in page, page
    lists.subscribe("core", signed=False, url=f"{base}/list.csv")
    code, output = sync()
    assert code == 0 and "moved" not in output, output
    [shown] = json.loads(podmod("lists", "show", "--json").output)
    assert shown["moved_to"] is None, shown
    assert "moved for good" not in html(signed_in(make_app().test_client(), "podmin").get("/lists"))


def test_a_signed_list_renamed_by_its_server_is_refused_saying_where_it_moved(
    lists, pod, state, https, tls_files
):
    # The signature binds the file to its name, so a server's redirect for good to another file
    # of the same key is refused (the podmin, not the server, moves a subscription); when the
    # signature names the file moved to, the refusal says where, and setting that url syncs it.
    lists.list_sync = {"ca_bundle": str(tls_files[0])}
    base = f"https://127.0.0.1:{https.server_address[1]}"
    key = test_list_fetch.RENAMED_KEY.public_key.to_string()
    lists.subscribe("core", url=f"{base}/before-rename.csv", public_key=key)

    code, output = sync()

    assert code == 1, output
    assert (
        "its signature is for the file renamed.csv, not before-rename.csv, and its server says "
        f"it moved for good to {base}/renamed.csv: if the list's maintainers moved it, set its "
        "url to that address."
    ) in output, output
    assert versions_of(state, "core") == []
    lists.subscribe("core", url=f"{base}/renamed.csv", public_key=key)
    code, output = sync()
    assert code == 0 and "core: version 1 applied" in output, output


def test_over_https_a_server_that_is_not_trusted_fails_cleanly(lists, pod, tmp_path):
    from podmod.loopback import LoopbackServer

    lists.write("core", ["account,one@far.example,,"])
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.subscribe("core", url=server.url("core.csv"))  # no ca_bundle: self-signed refused
        code, output = sync()

    assert code == 1
    assert "core: FAILED" in output
    assert cases_json() == []


def test_upgrading_reads_the_signed_time_and_file_of_versions_stored_before(state):
    """Migration 0006 reads each stored trusted comment as minisign.TrustedComment does, so the
    version in force guards against replays from the first sync after the upgrade on."""
    from podmod import store

    comments = [
        "timestamp:1700000000\tfile:core.csv\thashed",
        "timestamp:1700000000\tfile:core.csv",
        "release 42\ttimestamp:1700000001\tnote:x:y",
        "file:core.csv\tv42",
        "timestamp:soon\ttimestamp:1700000002",
        "timestamp:99999999999999999999",
        "timestamp:253402300800",
        "timestamp:\u0661\u0667",
        "file:\tfile:other.csv",
        "v42",
        "",
    ]
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy) VALUES ('core', 'file:///x', 'review')"
    )
    for number, comment in enumerate(comments, start=1):
        state.execute(
            "INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added,"
            " removed, format, signed_comment) SELECT id, %s, 'x', 'superseded', 0, 0, 0,"
            " 'podmod', %s FROM podmod.lists",
            (number, comment),
        )
    state.execute(
        "ALTER TABLE podmod.list_versions DROP COLUMN signed_at, DROP COLUMN signed_file;"
        " DELETE FROM podmod.schema_migrations WHERE version = 6"
    )
    state.commit()

    assert [m.version for m in store.migrate(state)] == [6]

    rows = state.execute(
        "SELECT signed_comment, signed_at, signed_file FROM podmod.list_versions ORDER BY number"
    ).fetchall()
    expected = [minisign.TrustedComment.parse(comment) for comment in comments]
    assert [(r["signed_at"], r["signed_file"]) for r in rows] == [
        (parsed.signed_at, parsed.file) for parsed in expected
    ]
    assert rows[0]["signed_at"] is not None and rows[0]["signed_file"] == "core.csv"


def test_upgrading_makes_stored_labels_keys_in_place(state):
    """Migration 0026 rewrites the labels stored before labels became keys as label_keys() gives
    them, the entries' own and the subscriptions' labels and lock_labels, and nothing else."""
    from podmod import store

    stored = [
        ["hate speech"],
        ["hate-speech", "hate speech", "spam"],
        ["third party bots", "hate_speech", "-x-", "a--b", "_"],
        ["spam", "harassment"],
        ["lack of moderation|trolls", "no-moderation"],
        [],
    ]
    state.execute(
        "INSERT INTO podmod.lists (name, url, policy, labels, lock_labels) VALUES"
        " ('core', 'file:///x', 'review', '{hate speech,spam}', '{\"free speech zone\"}')"
    )
    for number, labels in enumerate(stored, start=1):
        state.execute(
            "INSERT INTO podmod.list_entries (list_id, kind, value, label, labels, added_in)"
            " SELECT id, 'pod', %s, %s, %s, 1 FROM podmod.lists",
            (f"p{number}.example", "; ".join(labels), labels),
        )
    state.execute("DELETE FROM podmod.schema_migrations WHERE version = 26")
    state.commit()

    assert [m.version for m in store.migrate(state)] == [26]

    rows = state.execute(
        "SELECT value, label, labels FROM podmod.list_entries ORDER BY value"
    ).fetchall()
    assert (
        [row["labels"] for row in rows]
        == [list(label_keys(labels)) for labels in stored]
        == [
            ["hate-speech"],
            ["hate-speech", "spam"],
            ["third-party-bots", "hate-speech", "x", "a-b"],
            ["spam", "harassment"],
            ["lack-of-moderation|trolls", "no-moderation"],
            [],
        ]
    )
    assert [row["label"] for row in rows] == ["; ".join(labels) for labels in stored]
    subscription = state.execute("SELECT labels, lock_labels FROM podmod.lists").fetchone()
    assert subscription == {"labels": ["hate-speech", "spam"], "lock_labels": ["free-speech-zone"]}


# What a list server sends back, and a list URL's password


def control_characters(text: str) -> list[str]:
    """Characters a terminal acts on (ESC, BEL, DEL, CSI ...), line ends and tabs aside."""
    return [c for c in text if (ord(c) < 32 and c not in "\n\r\t") or 0x7F <= ord(c) <= 0x9F]


def test_a_list_servers_control_characters_reach_neither_the_sync_log_nor_the_lists_page(
    lists, pod, https, tls_files, make_app, admin
):
    lists.list_sync = {"ca_bundle": str(tls_files[0])}
    url = f"https://127.0.0.1:{https.server_address[1]}/escape-reason"
    lists.subscribe("core", signed=False, url=url)

    code, output = sync()
    shown = podmod("lists", "show").output
    client = signed_in(make_app().test_client(), "podmin")
    page = html(client.get("/lists"))

    assert code == 1 and "HTTP 500 Oops; no version of it is in force yet" in output, output
    for text in (output, shown, page):
        assert "Oops" in text and control_characters(text) == [], text
        assert "[2J" not in text and "]0;owned" not in text, text


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (("https://", "https://alice:placeholder-secret@"), ("alice:***@127.0.0.1", "alice:***@")),
        # A private list's token, as Gitea, Forgejo and GitLab take it: its signature is asked for
        # with the same query (core.csv.minisig?…), and the token is never shown either.
        (("core.csv", "core.csv?ref=main&private_token=placeholder-secret"), ("token=***",) * 2),
    ],
)
def test_a_list_urls_password_is_never_shown_logged_or_stored(
    lists, pod, tmp_path, state, make_app, admin, monkeypatch, secret, shown
):
    monkeypatch.setenv("PODMOD_LOG_LEVEL", "DEBUG")
    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.list_sync = {"ca_bundle": str(server.cert_path)}
        url = server.url("core.csv").replace(*secret)
        lists.subscribe("core", url=url)
        code, output = sync()
        lists.subscribe("core", url=url.replace("core.csv", "gone.csv"))
        failed_code, failed_output = sync()

    texts = {
        "sync output": output + failed_output,
        "lists show": podmod("lists", "show").output + podmod("lists", "show", "--json").output,
        "lists page": html(signed_in(make_app().test_client(), "podmin").get("/lists")),
        "audit details": json.dumps([row["details"] for row in audit_rows(state)]),
        "stored lists": json.dumps(
            state.execute("SELECT * FROM podmod.lists").fetchall(), default=str
        ),
    }
    assert (code, failed_code) == (0, 1), output + failed_output
    assert shown[0] in texts["lists page"] and shown[1] in texts["audit details"]
    assert [where for where, text in texts.items() if "placeholder-secret" in text] == []


def test_a_signature_published_elsewhere_is_read_from_signature_url(lists, pod, state):
    """A publisher keeping its signatures apart from its files (another directory, a release's
    assets) names the place with signature_url: it is read there, and checked as any other."""
    pod.person("one", "far.example")
    path = lists.write("core", ["account,one@far.example,,"])
    elsewhere = lists.directory / "signatures" / "core.sig"
    elsewhere.parent.mkdir()
    path.with_name(path.name + ".minisig").rename(elsewhere)
    lists.subscribe("core")
    refused_code, refused = sync()

    lists.subscribe("core", signature_url=elsewhere.as_uri())
    code, output = sync()
    elsewhere.write_text(elsewhere.read_text().replace("file:core.csv", "file:other.csv"))
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"], sign=False)
    tampered_code, tampered = sync()

    assert refused_code == 1 and "has no signature at file://" in refused, refused
    assert code == 0 and "core: version 1 applied" in output, output
    assert tampered_code == 1 and "was refused" in tampered, tampered
    assert [case["account"] for case in cases_json("open")] == ["one@far.example"]


def _one_held_one_refused(lists, pod) -> None:
    """Lists `core` and `other` synced; then core's next version would be held (it removes 75%)
    and other's refused (its signature no longer fits)."""
    for n in range(4):
        pod.person(f"u{n}", "far.example")
    lists.write("core", [f"account,u{n}@far.example,," for n in range(4)])
    lists.write("other", ["account,x@far.example,,"])
    lists.subscribe("core")
    lists.subscribe("other")
    assert sync()[0] == 0
    lists.write("core", ["account,u0@far.example,,"])
    lists.write("other", ["account,y@far.example,,"], sign=False)


def test_a_held_version_is_kept_when_a_later_list_fails_in_the_same_sync(lists, pod, state):
    # Each list is a transaction of its own: the failure of the next never rolls back what the
    # one before stored (a held version and its notification were lost so, every night).
    _one_held_one_refused(lists, pod)

    code, output = sync()

    assert code == 1, output
    assert "core: version 2 (podmod) held for approval" in output
    assert "other: FAILED: List 'other' was refused" in output
    state.rollback()
    held = state.execute(
        "SELECT v.number FROM podmod.list_versions v JOIN podmod.lists l ON l.id = v.list_id"
        " WHERE l.name = 'core' AND v.status = 'held'"
    ).fetchall()
    assert [row["number"] for row in held] == [2]
    events = state.execute("SELECT type FROM podmod.events WHERE type = 'list.held'").fetchall()
    assert len(events) == 1
    success = state.execute(
        "SELECT name, last_success_at > now() - interval '1 minute' AS recent, last_error"
        " FROM podmod.lists ORDER BY name"
    ).fetchall()
    assert [(row["name"], row["recent"], row["last_error"] is None) for row in success] == [
        ("core", True, True),
        ("other", True, False),
    ]


def _podmod_state(state) -> dict[str, list]:
    """Everything a sync may write in podmod's schema, and the pod's locks."""
    state.rollback()
    tables = ["lists", "list_versions", "list_entries", "signals", "cases", "audit", "events"]
    tables += ["outbox", "decisions", "scan_runs", "watermarks"]
    found = {
        table: [tuple(row.values()) for row in state.execute(f"SELECT * FROM podmod.{table}")]
        for table in tables
    }
    state.rollback()
    return found


def test_a_dry_run_tells_what_a_sync_would_do_and_keeps_nothing(lists, pod, state):
    pod.person("spammer")
    pod.person("boss", roles=("admin",))
    pod.person("remote", "far.example")
    lists.write("core", ["account,remote@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,remote@far.example,,", "account,other@far.example,,"])
    lists.write("lockme", ["account,spammer@pod.example,,", "account,boss@pod.example,,"])
    lists.subscribe("lockme", policy="lock")
    before = _podmod_state(state)

    result = podmod("lists", "sync", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "core: (dry run) version 2 applied (podmod): 2 entries (+1 -0)" in result.output
    assert "lockme: (dry run) version 1 applied (podmod): 2 entries (+2 -0); 2 new matches" in (
        result.output
    )
    assert "would not lock boss@pod.example (an admin or a moderator" in result.output
    assert "lockme: (dry run) would lock spammer@pod.example (policy lock)" in result.output
    assert "Dry run: nothing above was kept" in result.output
    assert _podmod_state(state) == before
    assert (
        pod.conn.execute("SELECT count(*) FROM users WHERE locked_at IS NOT NULL").fetchone()[
            "count"
        ]
        == 0
    )

    # What it foretold is what the sync then does.
    code, output = sync()

    assert code == 0, output
    assert "lockme: locked spammer@pod.example (policy lock)" in output
    assert "core: version 2 applied (podmod): 2 entries (+1 -0)" in output


def test_a_dry_run_of_a_version_that_would_be_held_or_refused_keeps_nothing(lists, pod, state):
    _one_held_one_refused(lists, pod)
    before = _podmod_state(state)

    result = podmod("lists", "sync", "--dry-run", "--json")

    assert result.exit_code == 1, result.output  # (a list that would fail: cron hears of it)
    printed = result.output[result.output.index("[") :]  # (after the progress bar)
    outcomes = {o["name"]: o for o in json.loads(printed)}
    assert outcomes["core"]["status"] == "held" and outcomes["core"]["dry_run"]
    assert "held for approval: it removes 3 of 4 entries (75%)" in outcomes["core"]["message"]
    # (nothing was stored: no version to approve yet)
    assert outcomes["core"]["message"].endswith(
        "(a sync would keep it for `podmod lists diff core` and `podmod lists approve`)"
    )
    assert outcomes["other"]["status"] == "failed"
    assert _podmod_state(state) == before  # not even the error or the time of the attempt


def _locked(pod) -> list[str]:
    rows = pod.conn.execute("SELECT username FROM users WHERE locked_at IS NOT NULL").fetchall()
    return sorted(row["username"] for row in rows)


def test_a_lock_list_locking_more_than_max_locks_at_once_waits_for_a_podmin(lists, pod, state):
    # A signed list that suddenly names many of this pod's accounts (a publisher's mistake, a
    # stolen key) locks none of them on its own: they wait as open cases until a podmin confirms.
    for n in range(3):
        pod.person(f"spam{n}")
    pod.person("boss", roles=("admin",))
    lists.list_sync["max_locks"] = 2
    rows = [f"account,spam{n}@pod.example,," for n in range(3)] + ["account,boss@pod.example,,"]
    lists.write("lockme", rows)
    lists.subscribe("lockme", policy="lock")

    code, output = sync()

    assert code == 4, output  # (cron mails the podmin)
    assert (
        "3 accounts match its lock policy, more than list_sync.max_locks (2) at once: none was"
        " locked, they wait as open cases; check them, then lock them all on podmod's lists page"
        " or with `podmod lists lock lockme`" in output
    )
    assert _locked(pod) == []
    assert len(cases_json("open")) == 4
    code, output = sync()  # said again each sync, recorded and told once
    assert code == 4 and "none was locked" in output
    state.rollback()
    audit = state.execute("SELECT count(*) AS n FROM podmod.audit WHERE action = 'list_locks_held'")
    assert audit.fetchone()["n"] == 1
    told = state.execute("SELECT facts FROM podmod.events WHERE type = 'list.held'").fetchall()
    assert [row["facts"]["locks_held"] for row in told] == [3]
    state.rollback()
    preview = podmod("lists", "sync", "--dry-run")
    assert "none was locked" in preview.output and "would lock" not in preview.output

    confirmed = podmod("lists", "lock", "lockme")

    assert confirmed.exit_code == 0, confirmed.output
    assert "lockme: locked spam0@pod.example (policy lock, confirmed)" in confirmed.output
    assert "lockme: 3 accounts locked." in confirmed.output
    assert _locked(pod) == ["spam0", "spam1", "spam2"]
    locks = state.execute(
        "SELECT action, account, details FROM podmod.audit WHERE action LIKE 'lock%'"
        " ORDER BY account"
    ).fetchall()
    assert [(row["action"], row["account"]) for row in locks] == [
        ("lock_refused", "boss@pod.example"),
        ("lock", "spam0@pod.example"),
        ("lock", "spam1@pod.example"),
        ("lock", "spam2@pod.example"),
    ]
    assert all(row["details"]["confirmed_by"].startswith("cli:") for row in locks[1:])
    assert sync()[0] == 0


def test_a_lock_list_locks_up_to_max_locks_at_once_on_its_own(lists, pod, state):
    for n in range(2):
        pod.person(f"spam{n}")
    lists.list_sync["max_locks"] = 2
    lists.write("lockme", [f"account,spam{n}@pod.example,," for n in range(2)])
    lists.subscribe("lockme", policy="lock")

    code, output = sync()

    assert code == 0, output
    assert _locked(pod) == ["spam0", "spam1"]
    review = podmod("lists", "lock", "other")
    assert review.exit_code == 2 and "No list named 'other'" in review.output
    # Nothing was held back: nothing to confirm, and no confirmation recorded.
    nothing = podmod("lists", "lock", "lockme")
    assert nothing.exit_code == 0 and "lockme: no locks held back, nothing to confirm" in (
        nothing.output
    ), nothing.output
    state.rollback()
    confirmations = "SELECT count(*) AS n FROM podmod.audit WHERE action = 'list_locks_confirm'"
    assert state.execute(confirmations).fetchone()["n"] == 0
    state.rollback()


def test_held_locks_skip_an_account_gone_from_the_pod_since_it_matched(lists, pod):
    gone = pod.person("spam0")
    pod.person("spam1")
    lists.list_sync["max_locks"] = 1
    lists.write("lockme", ["account,spam0@pod.example,,", "account,spam1@pod.example,,"])
    lists.subscribe("lockme", policy="lock")
    assert sync()[0] == 4
    pod.conn.execute("DELETE FROM profiles WHERE person_id = %s", (gone.id,))
    pod.conn.execute("DELETE FROM people WHERE id = %s", (gone.id,))

    confirmed = podmod("lists", "lock", "lockme")

    assert confirmed.exit_code == 0, confirmed.output
    assert "lockme: 1 account locked." in confirmed.output
    assert _locked(pod) == ["spam1"]


def _held_lock_list(lists, pod, accounts: int = 3, cap: int = 2) -> None:
    """List `lockme` (policy lock) naming `accounts` local accounts spam0…, over a cap of `cap`,
    synced: its locks are held back."""
    for n in range(accounts):
        pod.person(f"spam{n}")
    lists.list_sync["max_locks"] = cap
    lists.write("lockme", [f"account,spam{n}@pod.example,placeholder,," for n in range(accounts)])
    lists.subscribe("lockme", policy="lock")
    code, output = sync()
    assert code == 4, output


def _seen(page: str) -> str:
    import re

    found = re.search(r'name="seen" value="([0-9a-f]+)"', page)
    assert found, f"no confirmation form on the page: {page[-1500:]}"
    return found.group(1)


def test_an_admin_checks_a_lists_held_locks_on_the_web_and_locks_them_all(
    lists, pod, state, make_app, admin
):
    _held_lock_list(lists, pod)
    lists.write(
        "lockme",
        [f"account,spam{n}@pod.example,placeholder,," for n in range(3)]
        + ["account,podmin@pod.example,placeholder,,"],
    )
    assert sync()[0] == 4
    client = signed_in(make_app().test_client(), "podmin")

    overview = html(client.get("/lists"))
    said = "<strong>3 accounts</strong> match the lock policy of <strong>lockme</strong>"
    assert said in overview
    assert 'href="/lists/lockme/locks">Check them and lock them</a>' in overview
    page = html(client.get("/lists/lockme/locks"))
    assert "more than <code>list_sync.max_locks</code> (2) at once, so none was locked" in page
    state.rollback()
    cases = {
        row["account"]: row["id"]
        for row in state.execute("SELECT id, account FROM podmod.cases WHERE status = 'open'")
    }
    for n in range(3):
        handle = f"spam{n}@pod.example"
        assert f'<a href="/cases/{cases[handle]}">{handle}</a>' in page
    assert "(a pod admin or moderator): podmin@pod.example." in page
    assert ">Lock them all</button>" in page

    forged = client.post("/lists/lockme/locks", data={"seen": _seen(page), "confirm": "yes"})
    assert forged.status_code == 400 and _locked(pod) == []  # (no CSRF token)
    unticked = test_web.post(client, "/lists/lockme/locks", seen=_seen(page))
    assert unticked.status_code == 302 and _locked(pod) == []
    assert "tick the box" in html(client.get("/lists/lockme/locks"))

    confirmed = test_web.post(client, "/lists/lockme/locks", seen=_seen(page), confirm="yes")

    assert confirmed.status_code == 302 and confirmed.location.endswith("/lists")
    after = html(client.get("/lists"))
    assert "lockme: 3 accounts locked." in after and "Check them and lock them" not in after
    assert _locked(pod) == ["spam0", "spam1", "spam2"]
    locks = audit_rows(state, "lock")
    assert sorted(row["account"] for row in locks) == [f"spam{n}@pod.example" for n in range(3)]
    assert {row["details"]["confirmed_by"] for row in locks} == {"podmin@pod.example"}
    [confirmation] = audit_rows(state, "list_locks_confirm")
    assert confirmation["actor"] == "podmin@pod.example"
    assert confirmation["details"]["locked"] == 3 and confirmation["details"]["ip"]
    assert [row["account"] for row in audit_rows(state, "lock_refused")] == ["podmin@pod.example"]
    assert sync()[0] == 0  # nothing waits now


def test_the_case_of_an_account_whose_lock_is_held_says_so_and_links_the_held_locks(
    lists, pod, state, make_app, admin
):
    _held_lock_list(lists, pod)
    pod.person("other")
    lists.write("review", ["account,other@pod.example,placeholder,,"])
    lists.subscribe("review")
    assert sync()[0] == 4
    client = signed_in(make_app().test_client(), "podmin")
    state.rollback()
    cases = {
        row["account"]: row["id"]
        for row in state.execute("SELECT id, account FROM podmod.cases WHERE status = 'open'")
    }
    state.rollback()
    said = (
        "List <strong>lockme</strong> would lock this account, but its policy matches more"
        " accounts at once than list_sync.max_locks (2): it locked none of them and waits for a"
        ' podmin to <a href="/lists/lockme/locks">check its held locks and lock them</a>.'
    )

    assert said in html(client.get(f"/cases/{cases['spam1@pod.example']}"))
    assert "would lock this account" not in html(client.get(f"/cases/{cases['other@pod.example']}"))

    assert podmod("lists", "lock", "lockme").exit_code == 0
    locked = html(client.get(f"/cases/{cases['spam1@pod.example']}"))
    assert "List match" in locked and "would lock this account" not in locked


def test_a_review_list_holding_back_its_lock_labels_locks_says_so_on_the_case_too(
    lists, pod, state, make_app, admin
):
    for n in range(3):
        pod.person(f"campaigner{n}")
    lists.list_sync["max_locks"] = 2
    lists.write("core", [f"account,campaigner{n}@pod.example,campaign,," for n in range(3)])
    lists.subscribe("core", lock_labels=["campaign"])
    assert sync()[0] == 4
    client = signed_in(make_app().test_client(), "podmin")
    state.rollback()
    [case_id] = [
        row["id"]
        for row in state.execute(
            "SELECT id FROM podmod.cases WHERE account = 'campaigner0@pod.example'"
        )
    ]
    state.rollback()

    page = html(client.get(f"/cases/{case_id}"))

    assert "List <strong>core</strong> would lock this account" in page
    assert 'href="/lists/core/locks">check its held locks and lock them</a>' in page


def test_held_locks_confirmed_on_the_web_lock_nothing_once_the_accounts_changed(
    lists, pod, state, make_app, admin
):
    # The podmin checked three accounts; meanwhile the list's next version names a fourth. Their
    # confirmation must not lock one they never saw.
    _held_lock_list(lists, pod)
    client = signed_in(make_app().test_client(), "podmin")
    seen = _seen(html(client.get("/lists/lockme/locks")))
    pod.person("spam3")
    lists.write("lockme", [f"account,spam{n}@pod.example,placeholder,," for n in range(4)])
    assert sync()[0] == 4

    refused = test_web.post(client, "/lists/lockme/locks", seen=seen, confirm="yes")

    assert refused.location.endswith("/lists/lockme/locks")
    page = html(client.get("/lists/lockme/locks"))
    assert (
        "The accounts list lockme would lock changed since they were shown (it would lock 4 now):"
        " nothing was locked; look at them again, then confirm." in page
    )
    assert _locked(pod) == [] and audit_rows(state, "list_locks_confirm") == []
    confirmed = test_web.post(client, "/lists/lockme/locks", seen=_seen(page), confirm="yes")
    assert confirmed.status_code == 302 and confirmed.location.endswith("/lists")
    assert _locked(pod) == ["spam0", "spam1", "spam2", "spam3"]


def test_a_moderator_sees_held_locks_but_only_who_may_lock_and_approve_locks_them_all(
    lists, pod, state, make_app, moderator
):
    _held_lock_list(lists, pod)
    client = signed_in(make_app(web_lock_roles="admin,moderator").test_client(), "moddy")
    page = html(client.get("/lists/lockme/locks"))
    assert "spam0@pod.example" in page and ">Lock them all</button>" not in page
    assert "A pod admin can lock them all here." in page

    refused = test_web.post(client, "/lists/lockme/locks", seen=_seen_of(state), confirm="yes")

    assert refused.status_code == 403
    assert "web.lock_roles and web.approve_roles" in html(refused)
    assert _locked(pod) == [] and audit_rows(state, "list_locks_confirm") == []
    assert client.get("/lists/nothere/locks").status_code == 404


def _seen_of(state) -> str:
    """The token of what the held-locks page shows now, as the app computes it."""
    from podmod.db import pod_connection
    from podmod.lists.apply import lock_plan

    config = load_config()
    with pod_connection(config) as pod_conn:
        state.rollback()
        return lock_plan(pod_conn, state).seen("lockme")


def test_two_syncs_of_a_changed_list_at_once_store_its_version_once(lists, pod, state):
    # The cron's sync and a podmin's by hand at the same moment: both fetched the new file and
    # stored it as the next version, the second recording it again (or failing on the first's
    # entries). Now the second waits for the first and finds the file not modified since.
    from podmod.lists.sync import SYNC_LOCK

    pod.person("one", "far.example")
    pod.person("two", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    state.execute("SELECT pg_advisory_lock(%s, hashtext('core'))", (SYNC_LOCK,))
    state.commit()
    command = [str(Path(sys.executable).with_name("podmod")), "lists", "sync"]
    syncs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    waiting: list = []
    for _ in range(600):  # (two processes starting on a busy machine)
        waiting = state.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
        state.rollback()
        if len(waiting) == 2 or any(p.poll() is not None for p in syncs):
            break
        time.sleep(0.1)
    state.execute("SELECT pg_advisory_unlock(%s, hashtext('core'))", (SYNC_LOCK,))
    state.commit()
    said = [p.communicate(timeout=120)[0] for p in syncs]

    assert len(waiting) == 2, f"the syncs did not wait for the list's lock: {waiting} {said}"
    assert [p.returncode for p in syncs] == [0, 0], said
    applied = [out for out in said if "core: version 2 applied" in out]
    unchanged = [out for out in said if "core: unchanged (not modified since the last sync)" in out]
    assert len(applied) == 1 and len(unchanged) == 1, said
    assert "waiting for another sync of this list to end" in "".join(said), said
    assert versions_of(state, "core") == [(1, "applied"), (2, "applied")]
    assert len([r for r in audit_rows(state, "list_apply") if "version 2" in r["reason"]]) == 1


def test_two_syncs_at_once_tell_the_staff_of_held_locks_once(lists, pod, state):
    import threading

    from podmod.db import state_connection
    from podmod.lists import apply

    _held_lock_list(lists, pod)
    state.execute("DELETE FROM podmod.audit WHERE action = 'list_locks_held'")
    state.execute("DELETE FROM podmod.events WHERE type = 'list.held'")
    state.commit()
    config = load_config()
    # This sync is telling (it holds the list's lock); the other gets there meanwhile.
    state.execute("SELECT pg_advisory_xact_lock(%s, hashtext('lockme'))", (apply.HOLD_LOCK,))
    errors: list[BaseException] = []

    def other_sync() -> None:
        try:
            with state_connection(config) as other:
                apply._hold_locks(config, other, "lockme", 3)
        except BaseException as error:  # (reported by the test)
            errors.append(error)

    thread = threading.Thread(target=other_sync)
    thread.start()
    waiting = []
    for _ in range(300):
        waiting = state.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
        if waiting or not thread.is_alive():
            break
        time.sleep(0.1)
    done = not thread.is_alive()
    assert waiting, f"the other sync did not wait for the list's lock (done: {done})"
    apply._hold_locks(config, state, "lockme", 3)  # (commits: the other goes on)
    thread.join(60)

    assert not thread.is_alive() and errors == []
    assert len(audit_rows(state, "list_locks_held")) == 1
    told = state.execute("SELECT count(*) AS n FROM podmod.events WHERE type = 'list.held'")
    assert told.fetchone()["n"] == 1


def test_the_lists_page_shows_a_lists_severity_setting_and_its_skipped_patterns(
    lists, pod, make_app, admin
):
    path = lists.directory / "quiet.txt"
    path.write_text("loud.example\n*end.example\nbad.example,suspend\n")
    lists.subscribe("quiet", signed=False, url=path.as_uri(), severity="silence")
    assert sync()[0] == 0

    page = html(signed_in(make_app().test_client(), "podmin").get("/lists"))

    assert "domains; 2 entries (1 suspend, 1 silence); 1 pattern row skipped" in page
    assert "rows without a severity: silence." in page


def test_the_web_ui_follows_its_configuration_file_as_it_changes(
    lists, pod, state, make_app, admin
):
    # The web UI is started before a podmin subscribes to a list and cron syncs it: it reads the
    # changed file again before the next page, shows the list as subscribed, and approves its
    # held version with the list's settings from the file (it used to say "no longer
    # subscribed", and refuse: "No list named 'late' in the configuration").
    lists.write("core", ["account,x@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    app = make_app()
    client = signed_in(app.test_client(), "podmin")
    assert "(no longer subscribed)" not in html(client.get("/lists"))
    for n in range(4):
        pod.person(f"u{n}", "far.example")
    lists.write("late", [f"account,u{n}@far.example,," for n in range(4)])
    lists.subscribe("late", labels=["placeholder"], skip_invalid=True)
    assert sync("late")[0] == 0
    lists.write("late", ["account,u0@far.example,,"])  # 3 of 4 removed: held for approval
    assert sync("late")[0] == 4

    page = html(client.get("/lists"))
    assert "<strong>late</strong> <span" not in page and "(no longer subscribed)" not in page
    assert ">Approve</button>" in page
    approved = test_web.post(client, "/lists/late/versions/2/approve")
    assert approved.status_code == 302
    assert "late: version 2 approved by podmin@pod.example" in html(client.get("/lists"))
    state.rollback()
    row = state.execute("SELECT labels FROM podmod.lists WHERE name = 'late'").fetchone()
    assert row["labels"] == ["placeholder"]  # (the file's, not the started web UI's)
    state.rollback()
    assert 'role="alert"' not in html(client.get("/lists"))  # (nothing waits for a restart)

    # A file that cannot be used changes nothing: the pages say why, to an admin.
    good = lists.config_path.read_text()
    lists.config_path.write_text(good + "[[lists]\n")
    page = html(client.get("/lists"))
    assert "was changed, but the web UI cannot use it" in page and "is not valid TOML" in page
    assert "<strong>late</strong>" in page and "(no longer subscribed)" not in page

    # A setting read only at start (its sessions' secret) waits for a restart, and they say so.
    lists.config_path.write_text('secret_key = "' + "ab" * 32 + '"\n' + good)
    page = html(client.get("/lists"))
    assert "cannot use it" not in page
    assert "changed secret_key, which the web UI reads only when it starts: restart it" in page
    pod.person("moddy", password=test_web.PASSWORD, roles=("moderator",))
    moderator = signed_in(app.test_client(), "moddy")
    assert 'role="alert"' not in html(moderator.get("/lists"))  # (an admin's to act on)
    assert client.get("/").status_code == 200  # (still signed in: the secret it started with)


def test_sync_every_n_seconds_rereads_the_configuration_and_outlives_a_bad_round(
    lists, pod, state, tmp_path
):
    """`podmod lists sync --every S` where no cron runs (a container, the demo): each round reads
    the configuration afresh, as cron's next run would; a round that cannot run says why on
    stderr and the next one tries again; the process ends only when stopped."""
    assert podmod("lists", "sync", "--every", "10", "--dry-run").exit_code == 2
    assert podmod("lists", "sync", "--every", "1").exit_code == 2  # (a list server's rounds)
    pod.person("one", "far.example")
    pod.person("two", "far.example")
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    log = tmp_path / "every.log"
    command = [str(Path(sys.executable).with_name("podmod")), "lists", "sync", "--every", "10"]
    with log.open("w") as out:
        every = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(
            lambda: "core: version 1 applied" in log.read_text() or every.poll() is not None,
            "the first round",
            timeout=120,
        )
        assert every.poll() is None, log.read_text()
        good = lists.config_path.read_text()
        lists.config_path.write_text(good + "[list_sync]\nno_such_key = 1\n")
        wait_for(
            lambda: (
                "Unknown key 'list_sync.no_such_key'" in log.read_text() or every.poll() is not None
            ),
            "a round with the configuration made wrong",
            timeout=120,
        )
        assert every.poll() is None and "(again in 10 s)" in log.read_text(), log.read_text()
        lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
        lists.config_path.write_text(good)
        wait_for(
            lambda: "core: version 2 applied" in log.read_text() or every.poll() is not None,
            "a round with the configuration put right and a new version",
            timeout=120,
        )
        assert every.poll() is None, log.read_text()
    finally:
        every.terminate()
        every.wait(60)
    assert versions_of(state, "core") == [(1, "applied"), (2, "applied")]


def test_a_list_whose_server_asks_to_wait_is_left_alone_until_then(
    lists, pod, state, https, tls_files
):
    """A list's server busy (429) or down for maintenance (503) says when to come back
    (Retry-After): syncs until then leave it alone rather than ask every 15 minutes, without a
    failure (cron mailed the one that told), and say until when; a sync after then asks again,
    and so does one of a list whose url the podmin changed."""
    pod.person("one", "far.example")
    lists.list_sync = {"ca_bundle": str(tls_files[0])}
    base = f"https://127.0.0.1:{https.server_address[1]}"
    lists.subscribe("core", signed=False, url=f"{base}/busy.csv")

    def asked() -> int:
        return sum(path == "/busy.csv" for path, _ in https.requests)

    before = asked()
    code, output = sync()
    assert code == 1 and "HTTP 429 Too Many Requests and asks not to be asked again" in output
    assert asked() == before + 1
    state.execute("UPDATE podmod.lists SET last_attempt_at = now() - interval '1 minute'")
    state.commit()

    code, output = sync()
    assert code == 0 and asked() == before + 1, output  # (no request)
    [row] = state.execute("SELECT * FROM podmod.lists").fetchall()
    state.rollback()
    assert (
        "core: not fetched: its server asked not to be asked again before"
        f" {row['retry_after']:%Y-%m-%d %H:%M} UTC (Retry-After); no version of it is in force"
        " yet (`podmod lists sync --now --name core` asks it anyway)\n" in output
    ), output
    assert row["last_attempt_at"] > row["last_error_at"]  # (tried: the cron job runs)
    assert "HTTP 429" in row["last_error"]  # (still what went wrong, and failing if it lasts)
    assert _synced_json()["status"] == "deferred" and asked() == before + 1
    # The podmin, told the server is fine again, asks by hand at once.
    result = podmod("lists", "sync", "--now", "--name", "core")
    assert result.exit_code == 1 and asked() == before + 2, result.output
    assert "HTTP 429" in result.output
    refused = podmod("lists", "sync", "--now", "--every", "60")
    assert refused.exit_code == 2 and "--now is for a sync by hand" in refused.output
    before += 1

    state.execute("UPDATE podmod.lists SET retry_after = now() - interval '1 second'")
    state.commit()
    assert sync()[0] == 1 and asked() == before + 2

    lists.subscribe("core", signed=False, url=f"{base}/list.csv")
    code, output = sync()
    assert code == 0 and "core: version 1 applied" in output, output
    [row] = state.execute("SELECT retry_after, last_error FROM podmod.lists").fetchall()
    assert row == {"retry_after": None, "last_error": None}


def test_a_setting_changed_while_the_lists_server_fails_is_applied_once_it_answers(
    lists, pod, state
):
    """The podmin narrows a list to one label while its server is down: the sync fails, and
    the next one, the file back and not modified, applied the new setting (before, the failed
    sync had written it into the list's row, so that the next found nothing changed and the
    entries of the other label kept flagging their accounts)."""
    pod.person("one", "far.example")
    pod.person("two", "far.example")
    lists.write("core", ["account,one@far.example,spam,", "account,two@far.example,hate,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    assert sorted(c["account"] for c in cases_json("open")) == [
        "one@far.example",
        "two@far.example",
    ]

    lists.subscribe("core", labels=["spam"])
    served = lists.directory / "core.csv"
    served.rename(lists.directory / "away.csv")
    code, output = sync()
    assert code == 1 and "there is no file" in output, output
    (lists.directory / "away.csv").rename(served)
    code, output = sync()

    assert code == 0 and "core: settings changed (labels [spam]); matches re-applied" in output
    assert [c["account"] for c in cases_json("open")] == ["one@far.example"]
    assert "core: unchanged (not modified since the last sync)" in sync()[1]  # (once)


def test_the_settings_a_list_was_applied_with_start_as_its_row_holds_them(lists, pod, state):
    """Migration 0029 on a pod whose lists synced before it: each row's applied settings are the
    ones it holds, so the next sync finds nothing changed (no fetch in full, no re-apply)."""
    from podmod import store

    pod.person("one", "far.example")
    lists.write("core", ["account,one@far.example,spam,"])
    lists.subscribe("core", labels=["spam"], lock_labels=["x"], kinds=["account", "pod"])
    assert sync()[0] == 0
    state.execute("ALTER TABLE podmod.lists DROP COLUMN applied_settings")
    state.execute("DELETE FROM podmod.schema_migrations WHERE version = 29")
    state.commit()

    assert [m.version for m in store.migrate(state)] == [29]
    code, output = sync()
    assert code == 0 and "core: unchanged (not modified since the last sync)" in output, output


def test_a_sync_behind_a_proxy_fetches_through_it(lists, pod, https, tls_files, proxy):
    """A pod whose server reaches the internet only through a proxy sets list_sync.proxy: the
    sync and `podmod check` fetch through it; its password is never shown."""
    pod.person("spam", "pod.example")
    base = f"https://127.0.0.1:{https.server_address[1]}"
    secret_proxy = proxy.url.replace("http://", "http://podmod:placeholder-secret@")
    lists.list_sync = {"ca_bundle": str(tls_files[0]), "proxy": secret_proxy}
    lists.subscribe("core", signed=False, url=f"{base}/list.csv")

    code, output = sync()
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}

    assert code == 0 and "core: version 1 applied" in output, output
    assert report["list core"]["status"] == "ok", report["list core"]
    assert [line.split(" ")[:2] for line, _ in proxy.asked] == [
        ["CONNECT", f"127.0.0.1:{https.server_address[1]}"]
    ] * 2
    assert "placeholder-secret" not in output + json.dumps(report)
