"""Shared blocklists over weeks of operation: a held version its publisher withdraws or a podmin
rejects, a held removal published again and again, a file whose bytes change but not its entries,
and what cron mails of it all (`podmod lists sync --cron`) — against real PostgreSQL, with list
files served from disk."""

from __future__ import annotations

import json
from pathlib import Path

from podmod import metrics, queue
from podmod.config import load_config
from podmod.db import state_connection
from podmod.lists.versions import content_digest
from podmod.notify import alerts, events
from podmod.notify.mail import render
from tests.helpers import podmod
from tests.test_lists import ListFiles, signature_of, sync, versions_of
from tests.test_lists import lists as lists  # (fixture)

ROOT = Path(__file__).resolve().parent.parent


def _served(path: Path) -> tuple[bytes, str]:
    """A list file and its signature as its server serves them now."""
    return path.read_bytes(), signature_of(path).read_text()


def _serve(path: Path, served: tuple[bytes, str]) -> None:
    """Serve a file and its signature served before again (a `git revert` of both)."""
    path.write_bytes(served[0])
    signature_of(path).write_text(served[1])


def _list_actions(state) -> list[str]:
    state.rollback()
    rows = state.execute(
        "SELECT action FROM podmod.audit WHERE action LIKE 'list_%' ORDER BY id"
    ).fetchall()
    state.rollback()
    return [row["action"] for row in rows]


def _held_events(state) -> list[dict]:
    state.rollback()
    rows = state.execute(
        "SELECT facts, staff_mail FROM podmod.events WHERE type = 'list.held'"
        " ORDER BY created_at, id"
    ).fetchall()
    state.rollback()
    return rows


def _mail_configured(monkeypatch) -> None:
    """Mail set up (nothing here delivers it): events for the staff are marked for their mail."""
    monkeypatch.setenv("PODMOD_MAIL_SMTP_URL", "smtp://127.0.0.1:1")
    monkeypatch.setenv("PODMOD_MAIL_FROM", "podmod@pod.example")
    monkeypatch.setenv("PODMOD_WEB_PUBLIC_URL", "https://pod.example/podmod/")


def _held_version_2(lists: ListFiles) -> tuple[Path, tuple[bytes, str]]:
    """Version 1 of `core` in force (4 entries), version 2 held (it removes 3 of them); version
    1's file and signature."""
    rows = [f"account,u{n}@far.example,," for n in range(4)]
    first = lists.write("core", rows)
    served = _served(first)
    lists.subscribe("core")
    first_sync = sync()
    assert first_sync[0] == 0, first_sync
    lists.write("core", rows[:1])
    code, output = sync()
    assert code == 4 and "version 2 (podmod) held for approval" in output, output
    return first, served


def kept_changes(state) -> list[tuple[str, str, str]]:
    state.rollback()
    rows = state.execute(
        "SELECT change, kind, value FROM podmod.held_changes ORDER BY change, kind, value"
    ).fetchall()
    state.rollback()
    return [(row["change"], row["kind"], row["value"]) for row in rows]


def test_the_sync_that_holds_a_version_for_its_removals_keeps_what_it_changes(lists, pod, state):
    # What the sync worked out is kept as it holds the version: its page's first view reads
    # nothing again (a million rows' file took 10-13 s), and shows what the file read anew would.
    rows = [f"account,u{n}@far.example,," for n in range(6)]
    lists.write("core", rows)
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", [*rows[:2], "account,new@far.example,,", "pod,new.example,,"])
    code, output = sync()
    assert code == 4 and "version 2 (podmod) held for approval" in output, output

    [version] = state.execute(
        "SELECT changes_kept FROM podmod.list_versions WHERE number = 2"
    ).fetchall()
    kept = kept_changes(state)

    assert version["changes_kept"], output
    assert kept == [
        ("added", "account", "new@far.example"),
        ("added", "pod", "new.example"),
        *[("removed", "account", f"u{n}@far.example") for n in range(2, 6)],
    ]
    # The same as its file read again gives (versions.held_changes_kept, as before the sync kept
    # them).
    state.execute("DELETE FROM podmod.held_changes")
    state.execute("UPDATE podmod.list_versions SET changes_kept = false WHERE number = 2")
    state.commit()
    diff = podmod("lists", "diff", "core", "--version", "2")
    assert diff.exit_code == 0, diff.output
    assert kept_changes(state) == kept


def test_a_publisher_serving_the_version_in_force_again_withdraws_the_held_one(
    lists, pod, state, monkeypatch
):
    # The publisher notices the held change was a mistake and restores the previous file and
    # its .minisig: the same bytes as the version in force, signed before the held version.
    # That is no replay: the held version stops waiting, and the staff hear it.
    _mail_configured(monkeypatch)
    first, version_1 = _held_version_2(lists)
    _serve(first, version_1)

    code, output = sync()
    again = sync()

    assert code == 0, output
    assert (
        "core: unchanged; version 1 stays in force; version 2, held, was withdrawn: its server "
        "serves version 1's file again\n" in output
    ), output
    assert again[0] == 0 and "version 1 stays in force\n" in again[1], again
    assert "withdrawn" not in again[1]
    assert versions_of(state, "core") == [(1, "applied"), (2, "withdrawn")]
    assert _list_actions(state) == ["list_apply", "list_hold", "list_withdraw"]
    told = _held_events(state)
    assert [(row["facts"]["version"], row["staff_mail"]) for row in told] == [(2, True), (2, True)]
    assert told[1]["facts"]["withdrawn"] is True
    payload = alerts.digest_payload(
        load_config(), [{"type": "list.held", "list_name": "core", **row} for row in told]
    )
    # (one mail: the version told withdrawn, not also held for approval)
    assert payload["held_count"] == 0 and payload["withdrawn_count"] == 1, payload
    for language, said in (
        ("en", "List core, version 2: its server serves version 1, the one in force, again"),
        ("de", "Liste core, Version 2: sein Server liefert wieder Version 1, die geltende"),
    ):
        mail = render(load_config(), "digest", language, {**payload, "language": language})
        assert said in mail["text"], mail["text"]
        assert "was withdrawn: its server" not in mail["text"] + mail["html"], mail["text"]
    approved = podmod("lists", "approve", "core", "2")
    assert approved.exit_code == 2 and "(it is withdrawn)" in approved.output
    shown = podmod("lists", "show").output
    assert "version 2 withdrawn by its publisher" in shown and "held for approval" not in shown
    # Meant after all, the held change published again is held again: the same version (its
    # file signed anew), the staff told, as they were told of its withdrawal.
    lists.write("core", ["account,u0@far.example,,"])
    code, output = sync()
    assert code == 4 and "version 2 (podmod) held again for approval" in output, output
    assert versions_of(state, "core") == [(1, "applied"), (2, "held")]
    assert [row["facts"].get("held_again") for row in _held_events(state)] == [None, None, True]
    assert podmod("lists", "approve", "core", "2").exit_code == 0


def test_a_podmin_rejects_a_held_version_and_a_later_file_is_judged_as_usual(lists, pod, state):
    _held_version_2(lists)

    rejected = podmod("lists", "reject", "core", "2", "--reason", "placeholder: not meant")

    assert rejected.exit_code == 0, rejected.output
    assert (
        "\ncore: version 2 rejected by cli:" in rejected.output
        and ": placeholder: not meant; version 1 stays in force" in rejected.output
    ), rejected.output
    assert versions_of(state, "core") == [(1, "applied"), (2, "rejected")]
    assert _list_actions(state) == ["list_apply", "list_hold", "list_reject"]
    approved = podmod("lists", "approve", "core", "2")
    assert approved.exit_code == 2 and "is not held for approval (it is rejected)" in (
        approved.output
    )
    again = podmod("lists", "reject", "core", "2", "--reason", "twice")
    assert again.exit_code == 2 and "(it is rejected)" in again.output
    shown = podmod("lists", "show").output
    assert "version 2 rejected by cli:" in shown and "placeholder: not meant" in shown, shown
    diff = podmod("lists", "diff", "core", "--version", "2").output
    assert diff.startswith("core version 2 (rejected)"), diff
    # The same file stays rejected; a later, different one is stored and judged as usual.
    code, output = sync()
    assert code == 0 and "version 1 stays in force; version 2 was rejected by cli:" in output
    assert versions_of(state, "core") == [(1, "applied"), (2, "rejected")]
    lists.write("core", [f"account,u{n}@far.example,," for n in range(3)])
    code, output = sync()
    assert code == 0 and "core: version 3 applied" in output, output
    assert versions_of(state, "core") == [(1, "applied"), (2, "rejected"), (3, "applied")]


def test_a_file_whose_bytes_change_but_not_its_entries_is_no_new_version(lists, pod, state):
    pod.person("one", "far.example")
    rows = ["account,one@far.example,spam,", "account,two@far.example,spam,"]
    first = lists.write("core", rows)
    version_1 = _served(first)
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", rows[::-1])  # (rows in another order, signed anew)

    code, output = sync()
    # (asked whole, not "if modified": the file's digest tells it unchanged)
    state.execute("UPDATE podmod.lists SET etag = NULL, last_modified = NULL")
    state.commit()
    result = podmod("lists", "sync", "--json")

    assert code == 0, output
    assert (
        "core: unchanged (same entries; the file's bytes changed); version 1 stays in force\n"
        in output
    ), output
    assert versions_of(state, "core") == [(1, "applied")]
    assert _list_actions(state) == ["list_apply"]  # (no audit row, no matching)
    # The version in force took this file's digest and signature: the same bytes again are
    # unchanged at once, no row read.
    [kept] = state.execute("SELECT sha256, signed_at FROM podmod.list_versions").fetchall()
    state.rollback()
    assert kept["sha256"] == content_digest((lists.directory / "core.csv").read_bytes())
    assert kept["signed_at"].timestamp() == lists.signed_at
    [synced] = json.loads(result.output[result.output.index("[") :])  # (after the progress bar)
    assert synced["status"] == "unchanged" and "rows" not in synced["seconds"], synced
    assert synced["message"] == "unchanged; version 1 stays in force"
    # An older file, the version's own first one included, is still refused as a replay.
    _serve(first, version_1)
    code, output = sync()
    assert code == 1 and "a possible replay" in output, output
    # An entry whose label changed is a change: a version.
    lists.write("core", ["account,one@far.example,hate,", rows[1]])
    code, output = sync()
    assert code == 0 and "core: version 2 applied" in output, output


def test_a_held_removal_published_again_and_again_is_told_once(lists, pod, state, monkeypatch):
    # The publisher regenerates the list hourly while the removal stands: versions 2, 3, 4 are
    # each held, the earlier superseded. One alert (and one cron mail) for the hold, not one per
    # version; the mail sends the podmin to the lists page, which shows the version to approve.
    _mail_configured(monkeypatch)
    rows = [f"account,u{n}@far.example,," for n in range(1200)]
    lists.write("core", rows)
    lists.subscribe("core")
    assert podmod("lists", "sync", "--cron").exit_code == 0
    codes, outputs = [], []
    for kept in range(3):
        lists.write("core", rows[kept * 100 : (kept + 1) * 100])  # removes 1,100 of 1,200
        result = podmod("lists", "sync", "--cron")
        codes.append(result.exit_code)
        outputs.append(result.output)

    assert codes == [4, 0, 0], outputs
    assert "it removes 1,100 of 1,200 entries (92%)" in outputs[0], outputs[0]
    assert "it replaces version 3, held for the same kind of change" in outputs[2], outputs[2]
    assert versions_of(state, "core") == [
        (1, "applied"),
        (2, "superseded"),
        (3, "superseded"),
        (4, "held"),
    ]
    told = _held_events(state)
    assert [row["facts"]["version"] for row in told] == [2, 3, 4]
    assert [row["staff_mail"] for row in told] == [True, False, False]
    assert [row["facts"].get("replaces") for row in told] == [None, 2, 3]
    payload = alerts.digest_payload(
        load_config(),
        [{"type": "list.held", "list_name": "core", **row} for row in told if row["staff_mail"]],
    )
    [item] = payload["held"]
    assert item["url"] == events.list_url(load_config(), "core")  # (the lists page)


def test_cron_mails_held_locks_once_not_every_sync(lists, pod, state):
    for n in range(3):
        pod.person(f"spam{n}")
    lists.list_sync["max_locks"] = 1
    lists.write("lockme", [f"account,spam{n}@pod.example,," for n in range(3)])
    lists.subscribe("lockme", policy="lock")

    codes = [podmod("lists", "sync", "--cron").exit_code for _ in range(3)]
    by_hand = sync()

    assert codes == [4, 0, 0]
    assert by_hand[0] == 4 and "none was locked" in by_hand[1]  # (by hand: what still waits)


def test_cron_mails_a_failing_list_once_when_it_has_failed_for_over_an_hour(lists, pod, state):
    # A list's server down for hours: cron mails once, at the first sync past the hour (as the
    # staff's list.failing alert), not every 15 minutes; a sync by hand still fails plainly.
    path = lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    path.write_text("kind,value,label,comment\naccount,two@far.example,,\n")  # (signature stale)

    def an_hour_later(minutes: int) -> None:
        state.execute(
            "UPDATE podmod.lists SET last_success_at = last_success_at - make_interval(mins => %s),"
            " last_attempt_at = last_attempt_at - make_interval(mins => %s),"
            " created_at = created_at - make_interval(mins => %s)",
            (minutes, minutes, minutes),
        )
        state.commit()

    codes, outputs = [], []
    for minutes in (0, 40, 25, 15, 15):  # (the list failing since 0, 40, 65, 80, 95 minutes)
        an_hour_later(minutes)
        result = podmod("lists", "sync", "--cron")
        codes.append(result.exit_code)
        outputs.append(result.output)
    by_hand = sync()

    assert codes == [0, 0, 1, 0, 0], outputs
    assert all("core: FAILED: " in output for output in outputs)
    assert by_hand[0] == 1 and "core: FAILED: " in by_hand[1]


def test_the_cron_line_mails_what_is_new_once():
    cron = (ROOT / "deploy" / "podmod.cron").read_text()
    [line] = [line for line in cron.splitlines() if "lists sync" in line and "*/15" in line]
    assert "podmod lists sync --cron >>" in line
    assert "1: a list has failed for over an hour" in line


def _ended_at(state, number: int) -> str:
    state.rollback()
    row = state.execute(
        "SELECT ended_at FROM podmod.list_versions WHERE number = %s", (number,)
    ).fetchone()
    state.rollback()
    return f"{row['ended_at']:%Y-%m-%d %H:%M} UTC"


def _scraped() -> str:
    """What a Prometheus scrape of /metrics reads."""
    config = load_config()
    with state_connection(config) as state:
        return metrics.collect(config, state, queue.redis_connection(config))


def _synced_json() -> dict:
    """`lists sync --json` of the one list subscribed (its JSON after the progress bar)."""
    result = podmod("lists", "sync", "--json")
    [synced] = json.loads(result.output[result.output.index("[") :])
    return synced


def _shown_json(name: str) -> dict:
    result = podmod("lists", "show", "--json")
    assert result.exit_code == 0, result.output
    return next(row for row in json.loads(result.output) if row["name"] == name)


def test_each_way_a_held_version_ends_is_told_with_who_when_and_why_by_diff_and_show(
    lists, pod, state
):
    # Rejected, withdrawn, superseded: `lists diff` says what became of the version, by whom,
    # when and why, in the words of its web page; `lists show --json` names the version that
    # ended unapplied, under a key of its own, as `lists show` does in words.
    first, version_1 = _held_version_2(lists)
    assert _shown_json("core")["ended_hold"] is None
    podmod("lists", "reject", "core", "2", "--reason", "placeholder: not meant")
    at = _ended_at(state, 2)

    rejected = podmod("lists", "diff", "core", "--version", "2").output
    shown = _shown_json("core")

    assert (
        "\nit was held (it removes 3 of 4 entries (75%), more than the 50% allowed), then "
        "rejected by cli:"
        in rejected
        and f" on {at}: placeholder: not meant\n" in rejected
        and "\n(never applied: what it would have changed is not kept)\n" in rejected
    ), rejected
    assert shown["held"] == [] and shown["ended_hold"]["version"] == 2, shown
    assert shown["ended_hold"]["status"] == "rejected"
    assert shown["ended_hold"]["by"].startswith("cli:")
    assert shown["ended_hold"]["reason"] == "placeholder: not meant"
    assert shown["ended_hold"]["at"].startswith(at[:10]), shown
    assert f" on {at}: placeholder: not meant" in podmod("lists", "show").output
    assert _synced_json()["latest_version"] == {"number": 2, "status": "rejected"}
    assert 'podmod_list_versions_held{list="core"} 0\n' in _scraped()

    # Held again (version 3), then withdrawn by its publisher.
    lists.write("core", ["account,u1@far.example,,"])
    assert _synced_json()["latest_version"] == {"number": 3, "status": "held"}
    _serve(first, version_1)
    synced = _synced_json()
    assert synced["status"] == "unchanged", synced
    assert synced["latest_version"] == {"number": 3, "status": "withdrawn"}, synced
    assert _synced_json()["latest_version"] == {"number": 3, "status": "withdrawn"}
    at = _ended_at(state, 3)

    withdrawn = podmod("lists", "diff", "core").output
    shown = _shown_json("core")

    assert withdrawn.startswith("core version 3 (withdrawn)"), withdrawn
    assert (
        f"), then withdrawn on {at}: its server served the version in force again\n" in withdrawn
    ), withdrawn
    assert shown["ended_hold"] == {
        "version": 3,
        "status": "withdrawn",
        "by": None,
        "reason": None,
        "at": shown["ended_hold"]["at"],
    }, shown
    assert f"version 3 withdrawn by its publisher on {at}" in podmod("lists", "show").output

    # Held twice for the same change: the first gives way to the second (superseded).
    lists.write("core", ["account,u2@far.example,,"])
    assert sync()[0] == 4
    lists.write("core", ["account,u3@far.example,,"])
    assert sync()[0] == 4
    assert _synced_json()["latest_version"] == {"number": 5, "status": "held"}
    assert versions_of(state, "core")[-2:] == [(4, "superseded"), (5, "held")]
    at = _ended_at(state, 4)

    superseded = podmod("lists", "diff", "core", "--version", "4").output
    held = podmod("lists", "diff", "core").output

    assert f"), then a later version took its place on {at}\n" in superseded, superseded
    assert "\n(a later version took its place; entries are not kept for it)\n" in superseded
    assert "\nheld since " in held and ": it removes 3 of 4 entries" in held, held
    assert _shown_json("core")["held"] == [5]
    assert 'podmod_list_versions_held{list="core"} 1\n' in _scraped()  # (not the ended ones)


def locks_held_back(lists: ListFiles, pod) -> None:
    """Lock list `lockme` naming three local accounts, more than max_locks (1): it locks none and
    holds them back (the sync exits 4)."""
    for n in range(3):
        pod.person(f"spam{n}")
    lists.list_sync["max_locks"] = 1
    lists.write("lockme", [f"account,spam{n}@pod.example,," for n in range(3)])
    lists.subscribe("lockme", policy="lock")
    assert sync()[0] == 4


def test_lists_show_tells_held_locks_and_a_servers_retry_after_as_the_sync_and_check_do(
    lists, pod, state
):
    locks_held_back(lists, pod)
    # Its server then answered 429 with Retry-After: the syncs leave it alone until then.
    state.execute(
        "UPDATE podmod.lists SET last_error = 'placeholder: 429', last_error_at = now(),"
        " retry_after = now() + interval '2 hours'"
    )
    state.commit()
    until = state.execute("SELECT retry_after FROM podmod.lists").fetchone()["retry_after"]
    state.rollback()

    shown = podmod("lists", "show").output
    listed = _shown_json("lockme")

    assert (
        "\n  3 accounts match its lock policy, more than list_sync.max_locks (1) at once: none"
        " was locked" in shown
    ), shown
    assert (
        f"\n  its server asked not to be asked before {until:%Y-%m-%d %H:%M} UTC (Retry-After)"
        in shown
    ), shown
    assert "`podmod lists sync --now --name lockme` asks it anyway" in shown
    assert listed["locks_held"] == 3 and listed["retry_after"].startswith(f"{until:%Y-%m-%d}")
    podmod("lists", "lock", "lockme")
    state.execute("UPDATE podmod.lists SET retry_after = now() - interval '1 minute'")
    state.commit()
    shown = podmod("lists", "show").output
    listed = _shown_json("lockme")
    assert "lock policy" not in shown and "Retry-After" not in shown, shown
    assert listed["locks_held"] == 0 and listed["retry_after"] is None


def test_a_held_version_of_a_list_taken_out_of_the_configuration_is_offered_no_approval(
    lists, pod, state
):
    _held_version_2(lists)
    lists.lists = []
    lists.write("other", ["account,one@far.example,,"])
    lists.subscribe("other")
    code, output = sync()
    assert code == 0 and "core: no longer in the configuration" in output, output

    shown = podmod("lists", "show").output
    approved = podmod("lists", "approve", "core", "2")
    rejected = podmod("lists", "reject", "core", "2", "--reason", "placeholder: retired")

    assert (
        "  held for approval: version 2; put the list back in the configuration to approve it,"
        " or `podmod lists reject core 2 --reason R`" in shown
    ), shown
    assert approved.exit_code == 2 and "No list named 'core' in the configuration" in (
        approved.output
    )
    assert rejected.exit_code == 0, rejected.output
    assert versions_of(state, "core") == [(1, "applied"), (2, "rejected")]


def _staff_mail(state, pod) -> dict:
    """The staff's next mail (alerts.mail_staff), as its templates read it."""
    assert alerts.mail_staff(load_config(), state, pod.conn) > 0
    [row] = state.execute(
        "SELECT payload FROM podmod.outbox WHERE channel = 'mail' ORDER BY id DESC LIMIT 1"
    ).fetchall()
    state.rollback()
    return row["payload"]


def test_the_staff_mail_tells_a_hold_rejected_or_approved_before_it_went_out_as_settled(
    lists, pod, state, monkeypatch
):
    # The staff's mail waits alerts.digest_minutes; a podmin may reject (or approve) a held
    # version meanwhile. The mail then does not call it held for approval, nor count it held.
    _mail_configured(monkeypatch)
    monkeypatch.setenv("PODMOD_ALERTS_TO", "staff@pod.example")
    _held_version_2(lists)
    podmod("lists", "reject", "core", "2", "--reason", "placeholder: not meant")

    mailed = _staff_mail(state, pod)

    assert mailed["held_count"] == 0 and mailed["held"] == [], mailed
    [settled] = mailed["settled"]
    assert settled["version"] == 2 and settled["reason"].startswith("rejected by cli:")
    assert settled["reason"].endswith(": placeholder: not meant")
    assert settled["url"] == events.list_url(load_config(), "core", 2)
    # (in the words of the version's own story, as `lists diff` and its page tell it)
    assert f"), then {settled['reason']}\n" in podmod("lists", "diff", "core", "2").output
    # A German recipient reads podmod's words in German, the podmin's reason as written.
    german = render(load_config(), "digest", "de", {**mailed, "language": "de"})
    assert "Liste core, Version 2</a>: abgelehnt von cli:" in german["html"], german["html"]
    assert "Liste core, Version 2: abgelehnt von cli:" in german["text"], german["text"]
    for part in ("text", "html"):
        assert " UTC: placeholder: not meant" in german[part], german[part]
        assert "rejected by" not in german[part], german[part]
    lists.write("core", [f"account,u{n}@far.example,," for n in range(4, 6)])  # (removes all)
    assert sync()[0] == 4
    assert podmod("lists", "approve", "core", "3").exit_code == 0
    mailed = _staff_mail(state, pod)
    [settled] = mailed["settled"]
    assert settled["version"] == 3 and settled["reason"].startswith("approved by cli:"), mailed
    assert mailed["held_count"] == 0
    german = render(load_config(), "digest", "de", {**mailed, "language": "de"})["text"]
    assert "Liste core, Version 3: freigegeben von cli:" in german and " UTC\n" in german, german
    assert "approved by" not in german, german
    assert f"), then {settled['reason']}\n" in podmod("lists", "diff", "core", "3").output
