"""Weeks of operation: `podmod check` telling what the syncs met (a failure, a held version, a
server's Retry-After, a replayed file), the `--every` loops stopping on SIGTERM (also as a
container's PID 1) and outliving a read-only database, and the words a podmin reads meanwhile."""

from __future__ import annotations

import json

from tests import test_list_fetch, test_lists
from tests.helpers import podmod
from tests.test_lists import signature_of, sync, versions_of

https, tls_files = test_list_fetch.https, test_list_fetch.tls_files  # fixtures
lists = test_lists.lists  # fixture


def checked(name: str) -> dict:
    report = json.loads(podmod("check", "--json").output)["checks"]
    [found] = [c for c in report if c["check"] == f"list {name}"]
    return found


# `podmod check` and what the syncs met


def test_check_warns_of_a_list_whose_last_sync_failed_with_its_error(lists, pod, state):
    """The list's server serves a good file now, but the last sync refused what it got: check
    reads the file as before and warns with the sync's own sentence, and when."""
    good = lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync("core")[0] == 0
    kept = good.read_bytes(), signature_of(good).read_text()
    lists.write("core", ["account,one@far.example,,", "bogus,thing,,"])
    code, output = sync("core")
    assert code == 1, output
    good.write_bytes(kept[0])
    signature_of(good).write_text(kept[1])

    found = checked("core")

    assert found["status"] == "warn", found
    assert "signature valid, signed" in found["detail"], found
    [row] = state.execute("SELECT last_error, last_error_at FROM podmod.lists").fetchall()
    state.rollback()
    assert (
        f"; but the last sync ({row['last_error_at']:%Y-%m-%d %H:%M} UTC) failed: "
        f"{row['last_error'].rstrip('.')}." in found["detail"]
    ), found
    assert "line 3: " in found["detail"]
    assert sync("core")[0] == 0  # (the next sync takes the good file: check says OK again)
    assert checked("core")["status"] == "ok"


def test_check_warns_of_a_version_held_for_approval_and_says_what_to_run(lists, pod, state):
    lists.write("core", [f"account,user{n}@far.example,," for n in range(4)])
    lists.subscribe("core")
    assert sync("core")[0] == 0
    lists.write("core", ["account,user0@far.example,,"])
    code, output = sync("core")
    assert code == 4 and "held for approval" in output, output

    found = checked("core")

    assert found["status"] == "warn", found
    [held] = state.execute(
        "SELECT fetched_at FROM podmod.list_versions WHERE status = 'held'"
    ).fetchall()
    state.rollback()
    assert (
        f"; version 2 waits for approval since {held['fetched_at']:%Y-%m-%d %H:%M} UTC (it "
        "removes 3 of 4 entries (75%), more than the 50% allowed): `podmod lists diff core`, "
        "then `podmod lists approve core 2` if the list means it." in found["detail"]
    ), found
    assert podmod("lists", "approve", "core", "2").exit_code == 0
    assert checked("core")["status"] == "ok"


def test_check_sends_no_request_while_the_lists_server_asked_to_wait(
    lists, pod, state, https, tls_files
):
    """A 429 with Retry-After: the syncs leave the server alone until then, and so does check,
    saying until when and what the last sync met."""
    lists.list_sync = {"ca_bundle": str(tls_files[0])}
    base = f"https://127.0.0.1:{https.server_address[1]}"
    lists.subscribe("core", signed=False, url=f"{base}/busy.csv")

    def asked() -> int:
        return sum(path == "/busy.csv" for path, _ in https.requests)

    assert sync("core")[0] == 1
    before = asked()

    found = checked("core")

    assert asked() == before, found  # (no request)
    [row] = state.execute("SELECT retry_after, last_error_at FROM podmod.lists").fetchall()
    state.rollback()
    assert found["status"] == "warn", found  # (no version in force: nothing fresh)
    assert found["detail"].startswith(
        f"its server asked not to be asked before {row['retry_after']:%Y-%m-%d %H:%M} UTC"
        " (Retry-After), so this check left it alone too (`podmod lists sync --now --name core`"
        f" asks it anyway); the last sync ({row['last_error_at']:%Y-%m-%d %H:%M} UTC) failed: "
    ), found
    assert "HTTP 429" in found["detail"]
    # A version in force synced within the hour: a pause its server asked for is no news.
    state.execute(
        "UPDATE podmod.lists SET last_success_at = now() - interval '10 minutes',"
        " current_version = NULL"
    )
    state.commit()
    assert checked("core")["status"] == "ok" and asked() == before


def test_check_fails_a_file_every_sync_refuses_as_older_than_the_version_in_force(
    lists, pod, state
):
    path = lists.write("core", ["account,one@far.example,,"])
    first = path.read_bytes(), signature_of(path).read_text()
    lists.subscribe("core")
    assert sync("core")[0] == 0
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    assert sync("core")[0] == 0
    assert checked("core")["status"] == "ok"  # (the version in force itself)
    path.write_bytes(first[0])  # a mirror still serving version 1, with its own signature
    signature_of(path).write_text(first[1])

    found = checked("core")

    code, output = sync("core")
    assert code == 1 and "older than version 2" in output, output
    assert found["status"] == "fail", found
    assert "older than version 2" in found["detail"] and "a possible replay" in found["detail"]
    assert versions_of(state, "core") == [(1, "applied"), (2, "applied")]
