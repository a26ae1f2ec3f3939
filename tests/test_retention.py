"""Retention (podmod.retention): `podmod prune` and the day's prune after `podmod lists sync` keep
the version in force, a held version and the recent history, remove old ended entries and what
notifications and finished work no longer need, and never what keeps a report, a decision, a mail
or a webhook from happening twice. Real PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid

import pytest

from podmod import retention
from podmod.config import load_config
from podmod.db import state_connection
from podmod.notify import alerts
from tests import test_lists, test_web
from tests.helpers import podmod
from tests.test_lists import ListFiles, sync
from tests.test_web import html, signed_in

lists = test_lists.lists  # fixture
make_app, admin = test_web.make_app, test_web.admin  # fixtures


def backdate(state, name: str, numbers: list[int], days: int) -> None:
    """Versions `numbers` of list `name` fetched and applied `days` days ago."""
    state.execute(
        "UPDATE podmod.list_versions v SET fetched_at = now() - make_interval(days => %s),"
        " applied_at = now() - make_interval(days => %s) FROM podmod.lists l"
        " WHERE l.id = v.list_id AND l.name = %s AND v.number = ANY (%s)",
        (days, days, name, numbers),
    )
    state.commit()


def entries(state) -> list[tuple]:
    rows = state.execute(
        "SELECT value, added_in, removed_in FROM podmod.list_entries ORDER BY value, added_in"
    ).fetchall()
    state.rollback()
    return [(row["value"].split("@")[0], row["added_in"], row["removed_in"]) for row in rows]


def history(lists: ListFiles, pod) -> None:
    """core: version 1 {a, b, c}; 2 {a, b, d} (c ends); 3 {a, d, e} (b ends); 4 {a, d, e, f},
    the last three applied a year and more ago but 4; version 5, removing nearly all, held."""
    for name in "abcdef":
        pod.person(name, "far.example")
    for members in ("abc", "abd", "ade", "adef"):
        lists.write("core", [f"account,{n}@far.example,," for n in members])
        if not lists.lists:
            lists.subscribe("core")
        assert sync()[0] == 0
    lists.write("core", ["account,a@far.example,,"])
    assert sync()[0] == 4  # (held: it removes 3 of 4)


def test_prune_keeps_in_force_held_and_recent_versions_and_removes_old_ended_entries(
    lists, pod, state, monkeypatch
):
    history(lists, pod)
    backdate(state, "core", [1, 2, 3], 400)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "1")
    before = entries(state)

    result = podmod("prune", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # c ended in version 2, over a year ago and before version 3 (in force a year ago): gone.
    # b ended in version 3, which was in force at the cutoff: kept, as is all in force.
    assert report["removed"]["list_entries"] == 1
    assert report["versions_pruned"] == {"core": [1, 2]}
    assert entries(state) == [row for row in before if row[0] != "c"]
    # every version keeps its row; the pruned ones say when and by which setting
    rows = state.execute(
        "SELECT number, status, entries_pruned_at IS NOT NULL AS pruned, entries_pruned_by"
        " FROM podmod.list_versions ORDER BY number"
    ).fetchall()
    assert [(r["number"], r["status"], r["pruned"]) for r in rows] == [
        (1, "applied", True),
        (2, "applied", True),
        (3, "applied", False),
        (4, "applied", False),
        (5, "held", False),
    ]
    assert rows[0]["entries_pruned_by"] == (
        "retention.list_history_days = 365, retention.keep_versions = 1"
    )
    state.rollback()

    diff = podmod("lists", "diff", "core", "2").output
    assert "core version 2 (applied): +1 -1" in diff
    assert "that later versions ended were pruned on " in diff
    assert "(retention.list_history_days = 365, retention.keep_versions = 1)" in diff
    assert "+ account" not in diff and "- account" not in diff  # (not a diff that is not whole)
    assert "- account:b@far.example" in podmod("lists", "diff", "core", "3").output
    assert "+ account:f@far.example" in podmod("lists", "diff", "core", "4").output
    held = json.loads(podmod("lists", "diff", "core", "5", "--json").output)
    assert held["status"] == "held" and len(held["removed"]) == 3
    # the held version is still approved from what it changes against the entries in force
    assert podmod("lists", "approve", "core", "5").exit_code == 0
    assert [row for row in entries(state) if row[2] is None] == [("a", 1, None)]
    # (and its file, kept while it waited, goes once it is applied, as for every version)
    assert (
        state.execute(
            "SELECT count(*) AS n FROM podmod.list_versions WHERE held_body IS NOT NULL"
        ).fetchone()["n"]
        == 0
    )


def test_a_prune_with_no_ended_entry_to_remove_reads_none_of_the_lists_entries(
    lists, pod, state, monkeypatch
):
    # A new list (a first sync is followed by the day's first prune) or a history all kept: the
    # prune finds that from the versions, without reading the entries' pages (150 MB at a
    # million entries, on the sync that the figure of issue #11 times).
    history(lists, pod)
    [report] = [json.loads(podmod("prune", "--json").output)]
    assert report["removed"]["list_entries"] == 0 and report["entry_pages_read"] == 0, report
    # Once a version ended entries before the oldest kept, its pages are read, and only until
    # those entries are gone.
    backdate(state, "core", [1, 2, 3], 400)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "1")
    report = json.loads(podmod("prune", "--json").output)
    assert report["removed"]["list_entries"] == 1 and report["entry_pages_read"] > 0, report
    report = json.loads(podmod("prune", "--json").output)
    assert report["removed"]["list_entries"] == 0 and report["entry_pages_read"] == 0, report


def test_a_pruned_versions_page_says_so_and_a_case_naming_it_still_opens(
    lists, pod, state, make_app, admin, monkeypatch
):
    history(lists, pod)
    backdate(state, "core", [1, 2, 3], 400)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "1")
    assert podmod("prune").exit_code == 0
    client = make_app().test_client()
    signed_in(client, "podmin")

    page = html(client.get("/lists/core/versions/1"))

    assert "The entries this version added and removed that later versions ended were pruned" in (
        page
    )
    assert "<h2>Added</h2>" not in page
    # a's match names version 1, which keeps its row: the case page links it, as before
    [case_id] = [
        row["case_id"]
        for row in state.execute(
            "SELECT case_id FROM podmod.signals WHERE kind = 'list' AND retracted_at IS NULL"
            " AND entry_value = 'a@far.example'"
        ).fetchall()
    ]
    state.rollback()
    case = html(client.get(f"/cases/{case_id}"))
    assert "/lists/core/versions/1" in case
    assert "<h2>Added</h2>" in html(client.get("/lists/core/versions/4"))


def test_a_dry_run_counts_what_a_prune_removes_and_changes_nothing(lists, pod, state, monkeypatch):
    history(lists, pod)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "1")
    backdate(state, "core", [1, 2, 3, 4], 400)
    done_batches(state, days=60)
    counts = table_counts(state)

    dry = podmod("prune", "--dry-run", "--json")

    assert dry.exit_code == 0, dry.output
    assert table_counts(state) == counts
    assert (
        state.execute("SELECT count(*) AS n FROM podmod.audit WHERE action = 'prune'").fetchone()[
            "n"
        ]
        == 0
    )
    assert (
        state.execute(
            "SELECT count(*) AS n FROM podmod.list_versions WHERE entries_pruned_at IS NOT NULL"
        ).fetchone()["n"]
        == 0
    )
    state.rollback()
    would = json.loads(dry.output)
    assert would["dry_run"] is True

    done = json.loads(podmod("prune", "--json").output)

    assert (
        done["removed"] == would["removed"] and done["versions_pruned"] == would["versions_pruned"]
    )
    assert done["removed"]["list_entries"] == 2 and done["removed"]["intake_batches"] == 1
    # audit-logged: who, and how many of what
    audit = state.execute(
        "SELECT actor, source, reason, details FROM podmod.audit WHERE action = 'prune'"
    ).fetchone()
    assert audit["actor"].startswith("cli:") and audit["source"] == "cli"
    assert audit["details"]["removed"] == done["removed"]
    assert audit["reason"].startswith("removed 2 list_entries (versions 1-3 of core)")


def table_counts(state) -> dict[str, int]:
    tables = ("list_entries", "list_versions", "intake_batches", "scan_batches", "outbox")
    counts = {
        table: state.execute(f"SELECT count(*) AS n FROM podmod.{table}").fetchone()["n"]
        for table in tables
    }
    state.rollback()
    return counts


def done_batches(state, *, days: int) -> None:
    """An intake and a scan batch done `days` ago, and one of each not done (as old)."""
    for done in (True, False):
        state.execute(
            "INSERT INTO podmod.intake_batches (report_ids, created_at, done_at) VALUES"
            " ('{1}', now() - make_interval(days => %s),"
            " CASE WHEN %s THEN now() - make_interval(days => %s) END)",
            (days, done, days),
        )
        state.execute(
            "INSERT INTO podmod.scan_batches (item_type, item_ids, created_at, done_at) VALUES"
            " ('Post', '{1}', now() - make_interval(days => %s),"
            " CASE WHEN %s THEN now() - make_interval(days => %s) END)",
            (days, done, days),
        )
    state.commit()


def test_finished_work_goes_after_work_days_and_what_is_not_done_stays(lists, state):
    done_batches(state, days=60)
    done_batches(state, days=5)
    state.execute(
        "INSERT INTO podmod.scan_runs (reason, created_by, created_at, done_at) VALUES"
        " ('backfill', 'test', now() - interval '60 days', now() - interval '59 days'),"
        " ('backfill', 'test', now() - interval '60 days', NULL)"
    )
    state.execute(
        "INSERT INTO podmod.scan_run_tables (run_id, item_type) SELECT id, 'Post'"
        " FROM podmod.scan_runs"
    )
    state.execute("INSERT INTO podmod.intake_gaps (report_id) VALUES (7)")
    state.execute("INSERT INTO podmod.watermarks (name, value) VALUES ('reports', 9)")
    state.commit()

    report = json.loads(podmod("prune", "--json").output)

    assert report["removed"] | {} == report["removed"]
    assert {k: report["removed"][k] for k in ("intake_batches", "scan_batches", "scan_runs")} == {
        "intake_batches": 1,
        "scan_batches": 1,
        "scan_runs": 1,
    }
    left = state.execute(
        "SELECT (SELECT count(*) FROM podmod.intake_batches WHERE done_at IS NULL) AS undone,"
        " (SELECT count(*) FROM podmod.intake_batches) AS intake,"
        " (SELECT count(*) FROM podmod.scan_runs WHERE done_at IS NULL) AS runs,"
        " (SELECT count(*) FROM podmod.scan_run_tables) AS run_tables,"
        " (SELECT count(*) FROM podmod.intake_gaps) AS gaps,"
        " (SELECT value FROM podmod.watermarks WHERE name = 'reports') AS mark"
    ).fetchone()
    assert left == {"undone": 2, "intake": 3, "runs": 1, "run_tables": 1, "gaps": 1, "mark": 9}


def old_event(state, event_type: str, **columns) -> uuid.UUID:
    event_id = uuid.uuid4()
    fields = {"id": event_id, "type": event_type, **columns}
    state.execute(
        f"INSERT INTO podmod.events ({', '.join(fields)}, created_at)"
        f" VALUES ({', '.join(['%s'] * len(fields))}, now() - interval '200 days')",
        [json.dumps(v) if isinstance(v, dict) else v for v in fields.values()],
    )
    return event_id


def old_delivery(state, event_id, *, done: bool) -> None:
    state.execute(
        "INSERT INTO podmod.outbox (channel, target, event_type, event_id, payload, created_at,"
        " delivered_at, done_at, retrying_since) VALUES ('webhook', 'https://hooks.example/x',"
        " 'account.locked', %s, '{}', now() - interval '200 days',"
        " CASE WHEN %s THEN now() - interval '200 days' END,"
        " CASE WHEN %s THEN now() - interval '200 days' END, now() - interval '200 days')",
        (event_id, done, done),
    )


def test_notifications_go_after_their_days_but_never_what_keeps_a_mail_from_going_twice(
    lists, pod, state, monkeypatch
):
    # a list failing for over an hour, whose list.failing was told 200 days ago and still fails
    pod.person("a", "far.example")
    lists.write("core", ["account,a@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    monkeypatch.setenv("PODMOD_MAIL_SMTP_URL", "smtp://127.0.0.1:25")
    monkeypatch.setenv("PODMOD_MAIL_FROM", "podmod@pod.example")
    monkeypatch.setenv("PODMOD_ALERTS_TO", "staff@pod.example")
    monkeypatch.setenv("PODMOD_WEB_PUBLIC_URL", "https://pod.example/podmod/")
    config = load_config()
    state.execute(
        "UPDATE podmod.lists SET last_error = 'placeholder: unreachable',"
        " last_error_at = now(), last_success_at = now() - interval '201 days'"
    )
    state.commit()
    with state_connection(config) as conn:
        assert alerts.alert_failing_lists(config, conn) == 1
    state.execute(
        "UPDATE podmod.events SET created_at = now() - interval '200 days', digest_id = 0"
    )
    delivered = old_event(state, "account.locked", account="gone@pod.example")
    old_delivery(state, delivered, done=True)
    waiting = old_event(state, "account.locked", account="waits@pod.example")
    old_delivery(state, waiting, done=False)
    untold = old_event(state, "account.locked", account="untold@pod.example", tell_user_id=5)
    held = old_event(state, "list.held", list_name="core", facts={"version": 2})
    told_held = old_event(state, "list.held", list_name="core", facts={"version": 1})
    state.commit()

    report = json.loads(podmod("prune", "--json").output)

    kept = {
        row["type"] + ":" + (row["account"] or row["list_name"] or "")
        for row in state.execute("SELECT type, account, list_name FROM podmod.events")
    }
    state.rollback()
    assert kept == {
        "list.failing:core",  # its key would be made again while the list fails
        "account.locked:waits@pod.example",  # its webhook is not delivered yet
        "account.locked:untold@pod.example",  # its account is not told yet
        "list.held:core",  # version 2, after the one in force: its withdrawal is told beside it
    }
    assert report["removed"]["events"] == 2 and report["removed"]["outbox"] == 1
    assert {delivered, told_held}.isdisjoint(
        row["id"] for row in state.execute("SELECT id FROM podmod.events").fetchall()
    )
    assert held and untold
    state.rollback()
    # the failure is not told twice
    with state_connection(config) as conn:
        assert alerts.alert_failing_lists(config, conn) == 0


class PausingConnection:
    """A state connection whose `pause_after`-th transaction, once committed, waits for `resume`
    (set by the test) and says so in `paused`: a prune stopped between two of its batches."""

    def __init__(self, conn, pause_after: int) -> None:
        self.conn, self.pause_after, self.count = conn, pause_after, 0
        self.paused, self.resume = threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.conn, name)

    @contextlib.contextmanager
    def transaction(self):
        with self.conn.transaction() as transaction:
            yield transaction
        self.count += 1
        if self.count == self.pause_after:
            self.paused.set()
            assert self.resume.wait(120), "the test never let the prune go on"


def test_a_sync_between_the_batches_of_a_big_prune_is_not_held_up_nor_broken(
    lists, pod, state, monkeypatch
):
    """The prune deletes a range of pages per transaction and holds nothing in between: a sync
    applying a version in the middle of a prune runs whole, and the prune goes on after it."""
    monkeypatch.setattr(retention, "ENTRY_PAGES", 2)  # (many batches)
    names = [f"n{n}" for n in range(3000)]
    pod.person("n1", "far.example")
    for version in range(4):
        lists.write("core", [f"account,{n}@far.example,," for n in names[version * 500 :]])
        if not lists.lists:
            lists.subscribe("core")
        assert sync()[0] == 0
    backdate(state, "core", [1, 2, 3, 4], 400)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "0")
    config = load_config()
    outcome: dict = {}
    with state_connection(config) as conn:
        pausing = PausingConnection(conn, pause_after=2)
        pruning = threading.Thread(
            target=lambda: outcome.update(report=retention.prune(config, pausing))
        )
        pruning.start()
        assert pausing.paused.wait(60), "the prune never finished its second batch"
        lists.write("core", [f"account,{n}@far.example,," for n in names[1900:]])
        try:
            code, output = sync()
        finally:
            pausing.resume.set()
            pruning.join(timeout=120)

    assert not pruning.is_alive()
    assert code == 0 and "version 5 applied" in output, output
    assert "prune:" not in output  # (the sync's own prune gives way to the one running)
    # versions 1-3's ended entries went (removed before 4, in force at the cutoff); 4's and 5's
    # stay, as do the entries in force
    assert outcome["report"].removed["list_entries"] == 1000
    ended = state.execute(
        "SELECT removed_in, count(*) AS n FROM podmod.list_entries GROUP BY removed_in"
        " ORDER BY removed_in"
    ).fetchall()
    assert [(row["removed_in"], row["n"]) for row in ended] == [(4, 500), (5, 400), (None, 1100)]
    state.rollback()
    assert "version 5 (applied): +0 -400" in podmod("lists", "diff", "core").output


def test_lists_sync_prunes_once_a_day(lists, pod, state, monkeypatch):
    history(lists, pod)  # (its first sync pruned, and found nothing: not audited)
    backdate(state, "core", [1, 2, 3, 4], 400)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "1")
    state.execute("DELETE FROM podmod.watermarks WHERE name = %s", (retention.LAST_PRUNE,))
    state.commit()

    first = podmod("lists", "sync")
    again = podmod("lists", "sync")

    assert "prune: removed 2 list_entries (versions 1-3 of core)" in first.output, first.output
    assert "prune:" not in again.output
    audit = state.execute(
        "SELECT actor, source FROM podmod.audit WHERE action = 'prune'"
    ).fetchall()
    assert audit == [{"actor": "podmod", "source": "lists sync"}]


def test_a_failing_prune_leaves_the_sync_done_and_the_next_sync_tries_it_again(
    lists, pod, state, monkeypatch
):
    history(lists, pod)
    backdate(state, "core", [1, 2, 3, 4], 400)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "1")
    state.execute("DELETE FROM podmod.watermarks WHERE name = %s", (retention.LAST_PRUNE,))
    # (a database error in the middle of the prune: here, a trigger refusing its deletes)
    state.execute(
        "CREATE FUNCTION podmod.refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'placeholder failure'; END $$;"
        " CREATE TRIGGER refuse BEFORE DELETE ON podmod.list_entries"
        " FOR EACH ROW EXECUTE FUNCTION podmod.refuse()"
    )
    state.commit()
    lists.write("core", ["account,a@far.example,,", "account,f@far.example,,"])

    failed = podmod("lists", "sync")

    assert failed.exit_code == 0, failed.output
    assert "core: version 6 applied" in failed.output, failed.output
    assert "prune: the day's prune failed (placeholder failure); the lists are synced" in (
        failed.output
    )
    assert "the next sync tries it again." in failed.output
    state.execute("DROP TRIGGER refuse ON podmod.list_entries; DROP FUNCTION podmod.refuse()")
    state.commit()
    again = podmod("lists", "sync")
    assert "prune: removed " in again.output, again.output


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "LIST_HISTORY_DAYS",
            "-1",
            "retention.list_history_days (from PODMOD_RETENTION_LIST_HISTORY_DAYS) must be 0 or"
            " more; it is '-1'.",
        ),
        (
            "KEEP_VERSIONS",
            "-3",
            "retention.keep_versions (from PODMOD_RETENTION_KEEP_VERSIONS) must be 0 or more;"
            " it is '-3'.",
        ),
        (
            "WORK_DAYS",
            "ten",
            "retention.work_days (from PODMOD_RETENTION_WORK_DAYS) must be a whole number, not"
            " 'ten'.",
        ),
        (
            "NOTIFICATIONS_DAYS",
            "3",
            "retention.notifications_days (from PODMOD_RETENTION_NOTIFICATIONS_DAYS) must be 0"
            " (keep them forever) or at least 7: the deliveries page and `podmod check` count"
            " what was given up over the last 7 days; it is '3'.",
        ),
    ],
)
def test_a_bad_retention_setting_is_one_sentence_and_prunes_nothing(
    lists, pod, state, monkeypatch, name, value, said
):
    history(lists, pod)
    backdate(state, "core", [1, 2, 3, 4], 400)
    monkeypatch.setenv("PODMOD_RETENTION_KEEP_VERSIONS", "1")
    monkeypatch.setenv(f"PODMOD_RETENTION_{name}", value)

    result = podmod("prune")

    assert result.exit_code == 2
    assert said in result.output, result.output
    assert len(entries(state)) == 6
