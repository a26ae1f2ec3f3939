"""Weeks of operation: `podmod check` telling what the syncs met (a failure, a held version, a
server's Retry-After, a replayed file), the `--every` loops stopping on SIGTERM (also as a
container's PID 1) and outliving a read-only database, and the words a podmin reads meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from podmod.cli import podmin_sentence
from podmod.config import load_config
from podmod.lists.sync import SYNC_LOCK
from podmod.notify import alerts, mail
from tests import test_list_fetch, test_lists
from tests.helpers import podmod, wait_for
from tests.test_list_operation import locks_held_back
from tests.test_lists import signature_of, sync, versions_of

https, tls_files = test_list_fetch.https, test_list_fetch.tls_files  # fixtures
lists = test_lists.lists  # fixture

PODMOD = str(Path(sys.executable).with_name("podmod"))


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
        "then `podmod lists approve core 2` if the list means it, or `podmod lists reject core 2"
        " --reason R` if not." in found["detail"]
    ), found
    assert podmod("lists", "approve", "core", "2").exit_code == 0
    assert checked("core")["status"] == "ok"


def test_check_warns_of_a_lock_list_holding_back_its_locks_until_they_are_confirmed(
    lists, pod, state
):
    locks_held_back(lists, pod)

    found = checked("lockme")

    assert found["status"] == "warn", found
    assert (
        "; 3 accounts match its lock policy, more than list_sync.max_locks (1) at once: none was"
        " locked" in found["detail"]
    ), found
    assert "`podmod lists lock lockme`" in found["detail"]
    assert podmod("lists", "lock", "lockme").exit_code == 0
    assert checked("lockme")["status"] == "ok"


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


# SIGTERM and SIGINT


@contextmanager
def started(
    tmp_path: Path, *command: str, pid_1: bool = False
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`podmod COMMAND` in a process of its own (as a PID namespace's first process, as in a
    container, with `pid_1`), its stdout and stderr to a file; killed at the end if it still
    runs (a test that failed before stopping it)."""
    args = [PODMOD, *command]
    if pid_1:
        args = ["unshare", "--pid", "--fork", "--kill-child", *args]
    output = tmp_path / f"{command[0]}-{time.monotonic_ns()}.log"
    with output.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        yield process, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def podmods_pid(process: subprocess.Popen, pid_1: bool) -> int:
    """The pid of podmod itself: unshare's child in a PID namespace."""
    if not pid_1:
        return process.pid

    def child() -> int | None:
        path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        found = path.read_text().split() if path.exists() else []
        return int(found[0]) if found else None

    return wait_for(child, "unshare's child")


def sleeping(pid: int) -> bool:
    """Whether the process sleeps (time.sleep: between rounds), not waits for a server."""
    return "nanosleep" in Path(f"/proc/{pid}/wchan").read_text()


def stopped_within(process: subprocess.Popen, output: Path, seconds: float = 30.0) -> str:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise AssertionError(
            f"still running {seconds:.0f} s after SIGTERM; it printed: {output.read_text()}"
        ) from None
    return output.read_text()


def can_make_pid_namespaces() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    tried = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
    return tried.returncode == 0


AS_PID_1 = [
    pytest.param(False, id="process"),
    pytest.param(
        True,
        id="pid-1",
        marks=pytest.mark.skipif(
            not can_make_pid_namespaces(), reason="unshare --pid needs root here"
        ),
    ),
]


@pytest.mark.parametrize("pid_1", AS_PID_1)
def test_sync_every_stops_on_sigterm_between_rounds_with_exit_code_0(lists, pod, tmp_path, pid_1):
    """`docker compose stop podmod-lists`: podmod is PID 1 there, which gets no default action
    for SIGTERM; it stops at once all the same, and says so."""
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    with started(tmp_path, "lists", "sync", "--every", "10", pid_1=pid_1) as (process, output):
        pid = podmods_pid(process, pid_1)
        wait_for(
            lambda: (
                ("\ncore: version 1 applied" in output.read_text() and sleeping(pid))
                or process.poll() is not None
            ),
            "the first round, then the wait for the next",
            timeout=120,
        )
        assert process.poll() is None, output.read_text()
        os.kill(pid, signal.SIGTERM)
        said = stopped_within(process, output)
    assert process.returncode == 0, said
    assert said.rstrip().endswith("podmod: stopped by SIGTERM."), said


@pytest.mark.parametrize("pid_1", AS_PID_1)
def test_sync_every_abandons_the_round_under_way_on_sigterm_and_keeps_nothing_of_it(
    lists, pod, state, tmp_path, pid_1
):
    """A round waiting (here for another sync of the same list, as it could for a download or a
    long store) is abandoned: its transaction rolled back, its query cancelled, exit code 0; the
    next sync stores the version whole."""
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    config = load_config()
    with psycopg.connect(config.state_database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (SYNC_LOCK, "core"))
        with started(tmp_path, "lists", "sync", "--every", "10", pid_1=pid_1) as (
            process,
            output,
        ):
            waiting = (
                "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND NOT l.granted"
                " AND a.application_name = 'podmod-state' AND a.datname = current_database()"
            )
            wait_for(
                lambda: other.execute(waiting).fetchone()[0] or process.poll() is not None,
                "the round waiting for the list's sync lock",
                timeout=120,
            )
            assert process.poll() is None, output.read_text()
            os.kill(podmods_pid(process, pid_1), signal.SIGTERM)
            said = stopped_within(process, output)
        assert process.returncode == 0, said
        assert "podmod: stopped by SIGTERM: the round under way was abandoned" in said, said
        assert "Traceback" not in said, said
        assert other.execute(waiting).fetchone()[0] == 0  # (its query did not stay behind)
    assert versions_of(state, "core") == []
    code, synced = sync("core")
    assert code == 0 and "core: version 1 applied" in synced, synced


def test_notify_deliver_every_stops_on_sigterm_and_sigint_with_exit_code_0(env, state, tmp_path):
    for signum in (signal.SIGTERM, signal.SIGINT):
        with started(tmp_path, "notify", "deliver", "--every", "10") as (process, output):
            wait_for(
                lambda p=process, o=output: (
                    ("waiting." in o.read_text() and sleeping(p.pid)) or p.poll() is not None
                ),
                "the first pass, then the wait for the next",
                timeout=120,
            )
            assert process.poll() is None, output.read_text()
            process.send_signal(signum)
            said = stopped_within(process, output)
        assert process.returncode == 0, said
        assert f"podmod: stopped by {signum.name}." in said, said


# A database that takes no writes (a standby after a failover)


@pytest.fixture
def read_only(services, pod_url, state):
    """Make this test's scratch database (created and dropped by the pod_url fixture) take no
    writes in every new session, as a standby does; `read_only(False)` puts it back."""
    # (its name, not the URL's last part: an embedded server's URL ends with its socket's folder)
    database = psycopg.conninfo.conninfo_to_dict(pod_url)["dbname"]

    def set_to(on: bool) -> None:
        with psycopg.connect(services["postgres"], autocommit=True) as admin:
            admin.execute(
                f"ALTER DATABASE {database} SET default_transaction_read_only = "
                + ("on" if on else "off")
            )

    yield set_to
    set_to(False)


READ_ONLY = (
    "podmod's database accepts no writes (read-only: a standby after a failover, or a database "
    "set read-only for maintenance) (cannot execute "
)


def test_a_read_only_database_is_one_sentence_for_any_command(lists, pod, read_only):
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    read_only(True)

    synced = podmod("lists", "sync")
    added = podmod("lists", "add", "far.example", "--reason", "placeholder reason")

    for result in (synced, added):
        assert result.exit_code == 3, result.output
        said = result.output.strip().splitlines()[-1]  # (after the progress bar's label)
        assert said.startswith("podmod: " + READ_ONLY), result.output
        assert "Traceback" not in result.output
        assert said.endswith(
            "nothing was changed: point database_url (and state_database_url, where set) at the "
            "primary, or wait until it takes writes again, then run it again."
        ), result.output


def test_the_every_loops_outlive_a_read_only_database_and_carry_on_once_it_takes_writes(
    lists, pod, state, tmp_path, read_only
):
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    read_only(True)
    with (
        started(tmp_path, "lists", "sync", "--every", "10") as (syncing, sync_output),
        started(tmp_path, "notify", "deliver", "--every", "10") as (delivering, deliver_output),
    ):
        for process, output in ((syncing, sync_output), (delivering, deliver_output)):
            wait_for(
                lambda p=process, o=output: READ_ONLY in o.read_text() or p.poll() is not None,
                "a round meeting the read-only database",
                timeout=120,
            )
            said = output.read_text()
            assert process.poll() is None, said
            assert "Traceback" not in said, said
            assert "wait until it takes writes again (again in 10 s)." in said, said
        read_only(False)
        wait_for(
            lambda: "core: version 1 applied" in sync_output.read_text() or syncing.poll(),
            "a round after the database takes writes again",
            timeout=120,
        )
        wait_for(
            lambda: "waiting." in deliver_output.read_text() or delivering.poll(),
            "a pass after the database takes writes again",
            timeout=120,
        )
        for process in (syncing, delivering):
            assert process.poll() is None
            process.terminate()
        assert syncing.wait(30) == 0 and delivering.wait(30) == 0
    assert versions_of(state, "core") == [(1, "applied")]


# Words


def test_an_unreachable_database_names_the_cause_not_psycopgs_hint(env, monkeypatch):
    monkeypatch.setenv("PODMOD_DATABASE_URL", "postgresql://podmod@127.0.0.1:1/diaspora")

    result = podmod("cases")

    assert result.exit_code == 3
    assert "127.0.0.1:1/diaspora (Connection refused); check that PostgreSQL" in result.output
    assert "\t" not in result.output and "Is the server running" not in result.output


def test_a_repeated_command_says_it_tries_again_rather_than_to_run_it_again():
    lost = psycopg.OperationalError("server closed the connection unexpectedly")

    once, code = podmin_sentence(lost)
    again, _ = podmin_sentence(lost, again_in=10)

    assert code == 3 and once.endswith("check that PostgreSQL is running, then run it again.")
    assert again.endswith("check that PostgreSQL is running (again in 10 s).")


def test_the_stale_warning_names_the_container_set_up_as_well_as_cron(config):
    text = alerts.stale_text({"since": datetime.now(UTC), "last_attempt_at": datetime.now(UTC)})
    assert "cron job (deploy/podmod.cron) is installed" in text
    assert "(/var/log/podmod/lists.log)" in text
    assert "`podmod lists sync --every 900`" in text and "`podmod-lists` service" in text
    assert "`docker compose logs podmod-lists`" in text


def staff_events() -> list[dict]:
    now = datetime.now(UTC)
    since = now.isoformat()
    return [
        {
            "type": "list.held",
            "list_name": "core",
            "facts": {"version": 2, "held_reason": "it removes 3 of 4 entries (75%)"},
            "case_id": None,
            "account": None,
            "created_at": now,
        },
        {
            "type": "list.failing",
            "list_name": "other",
            "facts": {"since": since, "error": "List 'other' could not be fetched."},
            "case_id": None,
            "account": None,
            "created_at": now,
        },
        {
            "type": "list.stale",
            "list_name": "third",
            "facts": {"since": since, "last_attempt": since, "stale_hours": 3},
            "case_id": None,
            "account": None,
            "created_at": now,
        },
    ]


@pytest.mark.parametrize("events", [[0], [1], [0, 1, 2]], ids=["held", "failing", "all"])
@pytest.mark.parametrize("language", ["en", "de"])
def test_a_staff_mail_of_lists_reads_with_no_run_of_blank_lines(env, monkeypatch, events, language):
    monkeypatch.setenv("PODMOD_WEB_PUBLIC_URL", "https://pod.example/podmod/")
    config = load_config()
    chosen = [staff_events()[n] for n in events]
    payload = alerts.digest_payload(config, chosen)

    text = mail.render(config, "digest", language, {**payload, "language": language})["text"]

    lines = text.split("\n")
    runs = [n for n in range(1, len(lines)) if lines[n].strip() == lines[n - 1].strip() == ""]
    assert not runs, f"blank lines in a row after line {runs[0]}:\n{text}"
    assert lines[0].strip() and lines[1].strip() == "" and lines[2].strip(), text
    for event in chosen:
        assert f"List {event['list_name']}" in text or f"Liste {event['list_name']}" in text
