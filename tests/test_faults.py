"""Faults with real services and real processes: Redis restarted (empty, or with its data) in the
middle of a backlog, PostgreSQL connections cut during intake, a lock and a list sync, readers and
workers started all at once, a list server dying in the middle of a download. After each: every
report in exactly one signal, every case consistent, no decision doubled or lost, and the system
carried on by itself."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podmod.embedded import free_port, start_redis
from tests.helpers import assert_cases_consistent, decision_rows
from tests.test_exactly_once import assert_each_report_once, build_backlog

OUTPUT_DIR: list[Path] = []  # this test's folder for the output of the processes it spawns


@pytest.fixture(autouse=True)
def _process_output(tmp_path: Path) -> Iterator[None]:
    OUTPUT_DIR[:] = [tmp_path / "output"]
    OUTPUT_DIR[0].mkdir()
    yield
    OUTPUT_DIR.clear()


def spawn(*args: str) -> subprocess.Popen:
    """`podmod ARGS` in a process of its own, its output kept for output_of()."""
    path = OUTPUT_DIR[0] / f"{len(list(OUTPUT_DIR[0].iterdir()))}-{args[0]}.log"
    with path.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", *args],
            env=os.environ.copy(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process.output = path  # type: ignore[attr-defined]
    return process


def output_of(processes: list[subprocess.Popen], lines: int = 15) -> str:
    """The last lines each process wrote and how it ended, to show when a test fails."""
    parts = []
    for process in processes:
        tail = process.output.read_text(errors="replace").splitlines()[-lines:]  # type: ignore[attr-defined]
        state = "running" if process.poll() is None else f"exited with {process.returncode}"
        parts.append(f"--- {process.output.name} ({state}):\n" + "\n".join(tail))  # type: ignore[attr-defined]
    return "\n".join(parts)


def signals_stored(state) -> int:
    state.rollback()
    return state.execute(
        "SELECT count(*) AS n FROM podmod.signals WHERE kind = 'report'"
    ).fetchone()["n"]


def start_intake(pod, monkeypatch, reports: int, accounts: int) -> tuple[list[int], list]:
    """A backlog of `reports` on the pod in batches of 50, with a reader and a worker started on
    it: (the report ids, [reader, worker])."""
    monkeypatch.setenv("PODMOD_READER_BATCH_SIZE", "50")
    ids = build_backlog(pod, reports, accounts=accounts)
    return ids, [spawn("read"), spawn("worker")]


def wait_for_first_signal(state, timeout: float) -> None:
    """Until intake is under way (a report stored), so that a fault hits a running intake."""
    deadline = time.monotonic() + timeout
    while signals_stored(state) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)


def wait_until_stored(state, expected: int, processes: list, timeout: float):
    """Wait until `expected` reports are signals, restarting the worker (processes[-1]) whenever
    it gave up on Redis, as systemd's Restart=always does (deploy/ units). Returns the worker."""
    worker = processes[-1]
    deadline = time.monotonic() + timeout
    while signals_stored(state) < expected and time.monotonic() < deadline:
        if worker.poll() is not None:
            worker = spawn("worker")
            processes.append(worker)
        time.sleep(0.2)
    return worker


def stop_all(processes) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


@pytest.mark.timeout(180)
def test_redis_restarted_empty_in_the_middle_of_intake(env, state, pod, tmp_path, monkeypatch):
    port = free_port()
    redis_server = start_redis(tmp_path / "redis-a", port)
    monkeypatch.setenv("PODMOD_REDIS_URL", redis_server.url(db=1))
    ids, processes = start_intake(pod, monkeypatch, 3000, accounts=40)
    reader = processes[0]
    try:
        wait_for_first_signal(state, timeout=60)
        redis_server.stop()  # Redis goes away in the middle of the backlog...
        assert 0 < signals_stored(state) < len(ids), "the outage must hit a running intake"
        time.sleep(2)
        redis_server = start_redis(tmp_path / "redis-b", port)  # ...and comes back empty
        wait_until_stored(state, len(ids), processes, timeout=120)
        assert reader.poll() is None, "the reader must ride out a Redis outage by itself"
    finally:
        stop_all(processes)
        redis_server.stop()

    assert_each_report_once(ids)
    assert_cases_consistent(state)


def waiting_on_a_lock(conn) -> int:
    """How many of podmod's connections to this test's database wait on a lock held here."""
    return conn.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND application_name LIKE 'podmod-%%' AND datname = current_database()"
    ).fetchone()["n"]


def terminate_podmod_backends(conn) -> int:
    """What a PostgreSQL restart or a network cut does to podmod's connections (to this test's
    database only: other tests share the server)."""
    return conn.execute(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
        " WHERE application_name LIKE 'podmod-%%' AND pid <> pg_backend_pid()"
        " AND datname = current_database()"
    ).fetchone()["n"]


@pytest.mark.timeout(180)
def test_connections_cut_during_intake_lose_and_double_nothing(env, state, pod, monkeypatch):
    ids, (reader, worker) = start_intake(pod, monkeypatch, 2000, accounts=30)
    try:
        cuts = 0
        deadline = time.monotonic() + 60
        while signals_stored(state) < len(ids) // 2 and time.monotonic() < deadline:
            time.sleep(random.uniform(0.05, 0.4))  # a flapping network: cuts at random points
            cuts += terminate_podmod_backends(pod.conn)
        assert cuts > 0, "no podmod connection was cut\n" + output_of([reader, worker])
        # The outage is over: podmod must be back at work within seconds, by itself (the
        # reader's pause is at most 5 s and a job's 2 s), not after RQ's 60 s retry interval.
        outage_over = time.monotonic()
        while signals_stored(state) < len(ids) and time.monotonic() < outage_over + 30:
            time.sleep(0.2)
        recovered_in = time.monotonic() - outage_over
        assert signals_stored(state) == len(ids), (
            f"{signals_stored(state)} of {len(ids)} reports stored {recovered_in:.0f} s after "
            f"the last cut ({cuts} connections cut)\n" + output_of([reader, worker])
        )
        assert reader.poll() is None, "the reader must reconnect by itself\n" + output_of([reader])
        assert worker.poll() is None, "the worker must reconnect by itself\n" + output_of([worker])
    finally:
        stop_all([reader, worker])
    assert_each_report_once(ids)
    assert_cases_consistent(state)


@pytest.mark.timeout(120)
def test_a_worker_whose_start_up_is_cut_tries_again_and_then_works(env, state, pod, monkeypatch):
    """The cause of the intake test's rare failure on a loaded machine: a cut during the worker's
    start-up check of podmod's schema ended the worker (exit 3), and no job ran after it."""
    import psycopg

    monkeypatch.setenv("PODMOD_READER_BATCH_SIZE", "50")
    ids = build_backlog(pod, 100, accounts=5)
    processes = []
    try:
        with psycopg.connect(env["PODMOD_DATABASE_URL"]) as blocker:
            blocker.execute("LOCK TABLE podmod.schema_migrations IN ACCESS EXCLUSIVE MODE")
            worker = spawn("worker")
            processes.append(worker)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not waiting_on_a_lock(pod.conn):
                assert worker.poll() is None, output_of([worker])
                time.sleep(0.05)
            assert terminate_podmod_backends(pod.conn) >= 1, (
                "the worker never reached its schema check\n" + output_of([worker])
            )
        processes.append(spawn("read"))  # the database is back: the backlog goes to the worker
        deadline = time.monotonic() + 90
        while signals_stored(state) < len(ids) and time.monotonic() < deadline:
            if worker.poll() is not None:
                break
            time.sleep(0.2)
        assert signals_stored(state) == len(ids), (
            f"{signals_stored(state)} of {len(ids)} reports stored after the worker's start-up"
            " was cut\n" + output_of(processes)
        )
        assert "trying again" in worker.output.read_text(), output_of([worker])
    finally:
        stop_all(processes)
    assert_each_report_once(ids)


@pytest.mark.timeout(60)
def test_connection_cut_during_a_lock_leaves_nothing_half_done_and_says_so(env, state, pod):
    import psycopg

    from podmod import actions
    from podmod.config import load_config

    target = pod.person("target")
    with psycopg.connect(env["PODMOD_DATABASE_URL"]) as blocker:
        blocker.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (target.user_id,))
        lock = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "lock", target.handle, "--reason", "placeholder"],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not waiting_on_a_lock(pod.conn):
            time.sleep(0.02)
        assert terminate_podmod_backends(pod.conn) >= 1, "the lock never reached its update"
        stdout, stderr = lock.communicate(timeout=20)
    assert lock.returncode == 3, stdout + stderr
    assert "Traceback" not in stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith("podmod: The database connection was lost while this command ran")
    assert line.endswith("check that PostgreSQL is running, then run it again.")
    row = pod.conn.execute(
        "SELECT locked_at FROM users WHERE id = %s", (target.user_id,)
    ).fetchone()
    assert row["locked_at"] is None
    state.rollback()
    assert state.execute("SELECT count(*) AS n FROM podmod.decisions").fetchone()["n"] == 0
    assert state.execute("SELECT count(*) AS n FROM podmod.audit").fetchone()["n"] == 0
    # and the next attempt works
    config = load_config()
    assert actions.lock_account(config, handle=target.handle, actor="t", source="test").changed


@pytest.mark.timeout(120)
def test_list_sync_killed_between_parse_and_apply_keeps_the_previous_state(
    env, state, pod, tmp_path
):
    import signal as signals

    pod.person("one", "far.example")
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("kind,value,label,comment\naccount,one@far.example,,\n")
        for n in range(300_000):
            out.write(f"account,absent{n}@nowhere.example,,\n")
    from pathlib import Path

    Path(env["PODMOD_CONFIG"]).write_text(
        f'[[lists]]\nname = "big"\nurl = "{path.as_uri()}"\npolicy = "review"\n'
    )
    sync = spawn("lists", "sync")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until it is writing the new version
        busy = pod.conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'podmod-state'"
            " AND state = 'active' AND query ILIKE '%%list_entries%%'"
            " AND datname = current_database()"
        ).fetchone()["n"]
        if busy:
            break
        time.sleep(0.01)
    assert busy, "the sync never reached its store step"
    sync.send_signal(signals.SIGKILL)
    sync.wait()
    state.rollback()
    assert state.execute("SELECT count(*) AS n FROM podmod.list_versions").fetchone()["n"] == 0
    assert state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"] == 0

    again = subprocess.run(
        [sys.executable, "-m", "podmod.cli", "lists", "sync"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert again.returncode == 0, again.stdout + again.stderr
    state.rollback()
    assert (
        state.execute(
            "SELECT count(*) AS n FROM podmod.list_entries WHERE removed_in IS NULL"
        ).fetchone()["n"]
        == 300_001
    )
    assert (
        state.execute("SELECT count(*) AS n FROM podmod.signals WHERE kind = 'list'").fetchone()[
            "n"
        ]
        == 1
    )


# Redis restarted with its data --------------------------------------------------------------


def intake_batches(state) -> tuple[int, int, int]:
    """(batches, batches done, reports the batches stored): each batch is marked done by the one
    run that stored its signals, so the sum must be the number of reports, never more."""
    state.rollback()
    row = state.execute(
        "SELECT count(*) AS batches, count(done_at) AS done, coalesce(sum(ingested), 0) AS stored"
        " FROM podmod.intake_batches"
    ).fetchone()
    state.rollback()
    return row["batches"], row["done"], row["stored"]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("how", ["graceful", "crash"])
def test_redis_restarted_with_its_data_in_the_middle_of_intake(
    env, state, pod, tmp_path, monkeypatch, how
):
    """Redis stopped (SIGTERM, or SIGKILL) and started again with its data in the middle of a
    backlog: the jobs it held come back, among them, when the stop fell between a worker taking
    a job off the queue and marking it started, a job "queued" in no queue (see
    test_a_job_taken_off_its_queue_by_a_worker_that_died_is_enqueued_again). Every report is
    stored once, every batch is done once, with no manual step."""
    import redis

    redis_server = start_redis(tmp_path / "redis", persistent=True)
    monkeypatch.setenv("PODMOD_REDIS_URL", redis_server.url(db=1))
    ids, processes = start_intake(pod, monkeypatch, 3000, accounts=40)
    reader, worker = processes
    try:
        wait_for_first_signal(state, timeout=30)
        client = redis.Redis.from_url(redis_server.url(db=1))
        queued = [job.decode() for job in client.lrange("rq:queue:podmod-ingest", 0, -1)]
        client.close()
        redis_server.stop(crash=how == "crash")  # Redis goes away mid-backlog...
        stored_at_outage = signals_stored(state)
        assert 0 < stored_at_outage < len(ids), "the outage must hit a running intake"
        assert queued, "Redis must hold queued jobs when it goes away"
        time.sleep(2)
        redis_server.start()  # ...and comes back on the same port with the same data
        client = redis.Redis.from_url(redis_server.url(db=1))
        kept = sum(client.exists(f"rq:job:{job}") for job in queued)
        client.close()
        assert kept == len(queued), "Redis must come back with the jobs it held"
        worker = wait_until_stored(state, len(ids), processes, timeout=60)
        # Stale jobs come back with the data (queued ones, and ones "started" by the worker
        # that lost Redis): let them all run before counting.
        deadline = time.monotonic() + 20
        while intake_batches(state)[1] < intake_batches(state)[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        assert reader.poll() is None, "the reader must ride out a Redis restart by itself"
        assert worker.poll() is None, "a worker must be running after the restart"
    finally:
        stop_all(processes)
        redis_server.stop()

    assert_each_report_once(ids)
    assert_cases_consistent(state)
    batches, done, stored = intake_batches(state)
    assert (done, stored) == (batches, len(ids)), "a batch was left undone or stored twice"
    assert decision_rows(state) == []


def test_a_job_taken_off_its_queue_by_a_worker_that_died_is_enqueued_again(
    config, state, pod, rconn
):
    """What a worker leaves in Redis when it dies (or Redis stops) between taking a job off its
    queue and marking it started: the job says "queued" and is in no queue. RQ cleans up only
    started jobs, so the reader must see it as lost and enqueue its batch again, though not
    before reader.restart_grace (a live worker marks the job started a moment later)."""
    from rq.job import JobStatus

    from podmod import intake, queue
    from tests.helpers import drain, read_once

    ids = build_backlog(pod, 30)
    first = read_once(config)
    assert first.enqueued == first.new_batches != []
    [job_id] = [intake.INTAKE_BATCHES.job_id(config, batch) for batch in first.enqueued]
    assert rconn.lpop(f"rq:queue:{queue.queue_name(config, 'ingest')}").decode() == job_id
    assert queue.PodmodJob.fetch(job_id, connection=rconn).get_status() == JobStatus.QUEUED

    assert read_once(config).enqueued == []  # within the grace: maybe a worker starting it
    time.sleep(config["reader.restart_grace"])
    again = read_once(config)
    drain(config)

    assert again.enqueued == first.new_batches
    assert_each_report_once(ids)
    assert_cases_consistent(state)
    assert intake_batches(state) == (1, 1, len(ids))


# PostgreSQL connections cut during a list sync ----------------------------------------------


def run_podmod(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "podmod.cli", *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def list_state(state) -> dict[str, object]:
    """What a list sync changes, to compare before and after a failed one."""
    state.rollback()
    snapshot = {
        "lists": state.execute(
            "SELECT name, current_version, etag FROM podmod.lists ORDER BY id"
        ).fetchall(),
        "versions": state.execute(
            "SELECT list_id, number, status, entries FROM podmod.list_versions ORDER BY id"
        ).fetchall(),
        "entries": state.execute(
            "SELECT count(*) AS n, count(*) FILTER (WHERE removed_in IS NULL) AS active,"
            " max(id) AS top FROM podmod.list_entries"
        ).fetchone(),
        "signals": state.execute(
            "SELECT id, case_id, kind, entry_value, retracted_at FROM podmod.signals ORDER BY id"
        ).fetchall(),
        "cases": state.execute(
            "SELECT id, status, priority, list_match_count FROM podmod.cases ORDER BY id"
        ).fetchall(),
        "scan_runs": state.execute("SELECT count(*) AS n FROM podmod.scan_runs").fetchone(),
        "audit": state.execute("SELECT count(*) AS n FROM podmod.audit").fetchone(),
    }
    state.rollback()
    return snapshot


def locked_users(pod) -> list[str]:
    return [
        row["username"]
        for row in pod.conn.execute(
            "SELECT username FROM users WHERE locked_at IS NOT NULL ORDER BY username"
        )
    ]


CUT_MESSAGE = (  # the reason in brackets is PostgreSQL's, and depends on what was running
    r"podmod: The database connection was lost while this command ran \(.+\); what did not"
    r" commit was rolled back: check that PostgreSQL is running, then run it again\."
)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("stage", ["storing", "locking"])
def test_connections_cut_during_a_list_sync_lose_and_double_nothing(
    env, state, pod, pod_url, tmp_path, stage
):
    """A version is stored and applied in one transaction, then its lock policy is carried out
    account by account. Cut in the first step, nothing of the version stays and the previous one
    is in force; cut in the second, the version is in force and the next sync carries out the
    locks that were not (even though the list has not changed since)."""
    from pathlib import Path

    import psycopg

    from tests.test_lists import ListFiles

    pod.person("first")  # local accounts: the list's policy locks them
    second = pod.person("second")
    for name in ("one", "two"):
        pod.person(name, "far.example")
    directory = tmp_path / "lists"
    directory.mkdir()
    lists = ListFiles(directory, Path(env["PODMOD_CONFIG"]))
    small = ["account,first@pod.example,placeholder,", "account,one@far.example,placeholder,"]
    lists.write("core", small)
    lists.subscribe("core", policy="lock")
    first = run_podmod("lists", "sync")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "core: version 1 applied" in first.stdout
    assert locked_users(pod) == ["first"]
    decisions_before = decision_rows(state)
    assert [d[:2] for d in decisions_before] == [("lock", "first@pod.example")]

    big = [*small, "account,second@pod.example,placeholder,", "account,two@far.example,,"]
    big += [f"account,absent{n}@nowhere.example,,placeholder" for n in range(300_000)]
    lists.write("core", big)
    before = list_state(state)
    with psycopg.connect(pod_url) as blocker:
        # The step is held where it is cut (seen active, a step could end before the cut came):
        if stage == "storing":  # the new version's entries wait on the table, locked here
            blocker.execute("LOCK TABLE podmod.list_entries IN SHARE MODE")
        else:  # the lock of `second` waits on its users row, held here
            blocker.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (second.user_id,))
        sync = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "lists", "sync"],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        busy_sql = {  # the sync is writing the new version's entries / locking `second`
            "storing": "application_name = 'podmod-state' AND wait_event_type = 'Lock'"
            " AND query ILIKE '%%list_entries%%'",
            "locking": "application_name LIKE 'podmod-%%' AND wait_event_type = 'Lock'"
            " AND query ILIKE '%%UPDATE users%%'",
        }[stage]
        try:
            busy = 0
            deadline = time.monotonic() + 60
            while not busy and sync.poll() is None and time.monotonic() < deadline:
                busy = pod.conn.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity"
                    f" WHERE datname = current_database() AND {busy_sql}"
                ).fetchone()["n"]
                time.sleep(0.01)
            assert busy, f"the sync never reached its {stage} step"
            assert terminate_podmod_backends(pod.conn) >= 1, "no podmod connection was cut"
            out, err = sync.communicate(timeout=60)
        finally:
            if sync.poll() is None:
                sync.kill()
                sync.wait()
            blocker.rollback()

    # One sentence on stderr, naming the list and what to do; no traceback.
    assert sync.returncode == 3, out + err
    assert "Traceback" not in err, err
    assert re.fullmatch(CUT_MESSAGE, err.splitlines()[-1]), err
    assert locked_users(pod) == ["first"]
    assert decision_rows(state) == decisions_before
    assert_cases_consistent(state)
    if stage == "storing":  # nothing of version 2 is stored, version 1 is in force
        assert list_state(state) == before
    else:  # version 2 is in force: its matches are stored, `second` is not locked yet
        assert list_state(state)["lists"][0]["current_version"] == 2

    again = run_podmod("lists", "sync")  # cron's next run: no manual step in between

    assert again.returncode == 0, again.stdout + again.stderr
    if stage == "storing":
        assert "core: version 2 applied (podmod): 300,004 entries (+300,002 -0)" in again.stdout
    else:
        assert (
            "core: unchanged (not modified since the last sync); version 2 stays in force"
            in again.stdout
        )
    assert "core: locked second@pod.example (policy lock)" in again.stdout
    after = list_state(state)
    assert [(v["number"], v["status"]) for v in after["versions"]] == [
        (1, "applied"),
        (2, "applied"),
    ]
    assert after["lists"][0]["current_version"] == 2
    assert after["entries"]["active"] == 300_004
    assert sorted(s["entry_value"] for s in after["signals"] if s["kind"] == "list") == [
        "first@pod.example",
        "one@far.example",
        "second@pod.example",
        "two@far.example",
    ]
    assert locked_users(pod) == ["first", "second"]
    assert [d[:2] for d in decision_rows(state)] == [
        ("lock", "first@pod.example"),
        ("lock", "second@pod.example"),
    ]
    assert_cases_consistent(state)
    third = run_podmod("lists", "sync")  # and once done, nothing is done twice
    assert third.returncode == 0 and "locked" not in third.stdout, third.stdout + third.stderr
    assert len(decision_rows(state)) == 2


# Readers and workers started all at once ----------------------------------------------------


def reader_lock(conn) -> tuple[list[int], list[int]]:
    """Backends (pids) holding and waiting for the single-reader lock of this database."""
    from podmod.intake import READER_LOCK

    rows = conn.execute(
        "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND classid = 0"
        " AND objid::bigint = %s AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (READER_LOCK,),
    ).fetchall()
    return sorted(r["pid"] for r in rows if r["granted"]), sorted(
        r["pid"] for r in rows if not r["granted"]
    )


def wait_until(check, what: str, timeout: float = 30):
    """Poll `check` until it returns something true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} (waited {timeout:g} s)")


def spawn_reader(log_dir, name: str, *flags: str) -> subprocess.Popen:
    """`podmod read` with its stderr (where a second reader says why it stops) in a file."""
    with (log_dir / f"{name}.err").open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "read", *flags],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    process.name = name  # type: ignore[attr-defined]
    return process


def reported_in_batches(state) -> int:
    state.rollback()
    n = state.execute(
        "SELECT coalesce(sum(cardinality(report_ids)), 0) AS n FROM podmod.intake_batches"
    ).fetchone()["n"]
    state.rollback()
    return n


def backend_alive(conn, pid: int) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()["n"]
    )


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("flags", "probe"),
    [((), None), (("--wait",), 0), (("--wait",), 1)],
    ids=["plain", "wait-kill-reader0-first", "wait-kill-reader1-first"],
)
def test_two_readers_and_three_workers_started_at_once(
    env, state, pod, pod_url, tmp_path, monkeypatch, flags, probe
):
    """Two `podmod read` (both plain, or both --wait) and three `podmod worker` start at the same
    instant on a backlog. One reader holds the lock; the other exits with code 4 (plain) or waits
    (--wait). The holder is then SIGKILLed in the middle of the backlog (the test holds the batch
    locks, so the workers wait and nothing is stored yet): a waiting reader takes over, and the
    backlog and the reports that arrive afterwards are each stored once, one open case per
    account.

    plain: a standby `read --wait` is started after the loser exits, and takes over.
    wait: nothing tells which of the two holds the lock, so reader `probe` is killed first: if
    it held the lock the other takes over; if it was waiting (the one started first usually
    wins, so reader1 usually is), its backend stays queued for the lock with its client gone, a
    standby queues behind it, and the holder is killed: the lock must pass through the dead
    waiter to the standby."""
    import psycopg

    from podmod.intake import BATCH_LOCK_CLASS

    monkeypatch.setenv("PODMOD_READER_BATCH_SIZE", "20")
    ids = build_backlog(pod, 2000, accounts=30)  # batches 1 to 100
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: list[subprocess.Popen] = []
    try:
        with psycopg.connect(pod_url, autocommit=True) as blocker:
            blocker.execute(
                "SELECT count(pg_advisory_lock(%s, n)) FROM generate_series(1, 100) n",
                (BATCH_LOCK_CLASS,),
            )
            readers = [spawn_reader(logs, f"reader{n}", *flags) for n in range(2)]
            workers = [spawn("worker") for _ in range(3)]
            processes += readers + workers

            if not flags:  # one reader runs, the other says so and exits with code 4
                [quitter] = wait_until(
                    lambda: [r for r in readers if r.poll() is not None], "no reader exited"
                )
                assert quitter.returncode == 4
                assert (logs / f"{quitter.name}.err").read_text() == (
                    "podmod: another `podmod read` is already running; only one reader runs at"
                    " a time.\n"
                )
                [holder] = [r for r in readers if r is not quitter]
                standby = spawn_reader(logs, "standby", "--wait")  # what will take over
                processes.append(standby)
                waiters = [standby]
            else:  # both run: one holds the lock, the other waits for it
                holder, waiters = None, list(readers)
            wait_until(
                lambda: tuple(map(len, reader_lock(pod.conn))) == (1, 1),
                "not one reader holding the lock and one waiting",
            )
            wait_until(lambda: reported_in_batches(state) == len(ids), "the backlog was not read")
            assert all(p.poll() is None for p in [*workers, *waiters, holder] if p is not None)
            [holder_backend], _ = reader_lock(pod.conn)

            if holder is None:
                # Which of the two holds the lock? Kill one: if the lock's backend goes with it,
                # that one held it. If not, it was waiting, and stays in the lock's queue as a
                # backend whose client is gone (PostgreSQL notices only when the lock is
                # granted); a standby then waits behind it, and the other one holds the lock.
                killed, other = readers[probe], readers[1 - probe]
                killed.kill()
                killed.wait(10)
                try:
                    wait_until(lambda: not backend_alive(pod.conn, holder_backend), "", timeout=5)
                    holder, waiters = killed, [other]
                except AssertionError:
                    holder = other
                    standby = spawn_reader(logs, "standby", "--wait")
                    processes.append(standby)
                    waiters = [standby]
                    wait_until(
                        lambda: len(reader_lock(pod.conn)[1]) == 2, "the standby never waited"
                    )
            assert signals_stored(state) == 0, "the holder must die in the middle of the backlog"
            if holder.poll() is None:
                holder.kill()  # the reader holding the lock crashes
                holder.wait(10)
            [taker] = waiters
            wait_until(
                lambda: (
                    (lock := reader_lock(pod.conn))[1] == []
                    and len(lock[0]) == 1
                    and lock[0] != [holder_backend]
                ),
                "no waiting reader took the lock over",
            )
            assert taker.poll() is None
            blocker.execute(
                "SELECT count(pg_advisory_unlock(%s, n)) FROM generate_series(1, 100) n",
                (BATCH_LOCK_CLASS,),
            )

        # Reports that arrive after the takeover are read by the reader that took over.
        reporter = pod.person("late_reporter")
        author = pod.person("late_author", "remote9.example")
        post = pod.post(author, "placeholder post arriving late")
        late = [pod.report(reporter, "Post", post, f"late reason {n}") for n in range(30)]
        everything = ids + late
        wait_until(
            lambda: signals_stored(state) == len(everything),
            "the backlog and the late reports were not all stored",
            timeout=90,
        )
        wait_until(
            lambda: intake_batches(state)[1] == intake_batches(state)[0], "a batch is undone"
        )
        assert taker.poll() is None, "the reader that took over must still run"
        assert all(w.poll() is None for w in workers), "a worker died"
    finally:
        stop_all(processes)

    assert holder.returncode == -9
    assert_each_report_once(everything)
    assert_cases_consistent(state)
    batches, done, stored = intake_batches(state)
    assert (done, stored) == (batches, len(everything))
    assert decision_rows(state) == []


# The list server dying in the middle of a download ------------------------------------------


def serve_lists(directory: str, port: str, cert: str, key: str, mode: str) -> None:
    """An HTTPS server for the files in `directory` (run in a process of its own by
    ListServer). mode `serve`: every file in full. mode `die-length` / `die-chunked`: a `.csv`
    is sent with a Content-Length / chunked, but only its first half; then the server says
    `stalled` on stdout and waits to be killed."""
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = Path(directory) / Path(self.path.split("?")[0]).name
            if not path.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = path.read_bytes()
            stall = mode != "serve" and path.suffix == ".csv"
            chunked = stall and mode == "die-chunked"
            self.send_response(200)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if not stall:
                self.wfile.write(body)
                return
            half = body[: len(body) // 2]
            if chunked:
                for start in range(0, len(half), 65536):
                    chunk = half[start : start + 65536]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.wfile.write(half)
            self.wfile.flush()
            print("stalled", flush=True)
            time.sleep(600)  # until the test kills this process

    server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


class ListServer:
    """serve_lists() in a process of its own, on a fixed port, so that it can die (SIGKILL) and
    come back at the same URL."""

    def __init__(self, directory, cert, key, port: int) -> None:
        self.args = [str(directory), str(port), str(cert), str(key)]
        self.process: subprocess.Popen | None = None

    def start(self, mode: str = "serve") -> ListServer:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from tests.test_faults import serve_lists; serve_lists(*sys.argv[1:])",
                *self.args,
                mode,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.said() == "ready"
        return self

    def said(self, timeout: float = 30) -> str:
        """The next line the server prints, within `timeout` seconds."""
        import selectors

        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise AssertionError(f"the list server said nothing within {timeout:g} s")
        return self.process.stdout.readline().strip()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_the_list_server_dying_in_the_middle_of_a_download(env, state, pod, tmp_path, framing):
    """`podmod lists sync` over HTTPS (pinned key, loopback certificate) while the server process
    is SIGKILLed with half of the new version sent (a Content-Length body, or a chunked one): the
    sync fails in one line naming the list, version 1 stays in force, and the next sync, with the
    server back, applies version 2."""
    from pathlib import Path

    from podmod.loopback import self_signed_certificate
    from tests.test_lists import ListFiles

    pod.person("one", "far.example")
    pod.person("two", "far.example")
    directory = tmp_path / "lists"
    directory.mkdir()
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    url = f"https://127.0.0.1:{port}/core.csv"
    lists = ListFiles(directory, Path(env["PODMOD_CONFIG"]))
    lists.list_sync = {"ca_bundle": str(cert), "timeout": 30}
    lists.write("core", ["account,one@far.example,placeholder,"])
    lists.subscribe("core", url=url)  # signed: its public key is pinned
    server = ListServer(directory, cert, key, port).start()
    try:
        first = run_podmod("lists", "sync")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "core: version 1 applied (podmod): 1 entry" in first.stdout
        server.kill()

        rows = ["account,one@far.example,placeholder,", "account,two@far.example,placeholder,"]
        rows += [f"account,absent{n}@nowhere.example,,placeholder" for n in range(50_000)]
        lists.write("core", rows)
        before = list_state(state)
        server.start(f"die-{framing}")
        sync = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "lists", "sync"],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.said() == "stalled"  # half the new list is on its way...
            assert sync.poll() is None, "the server must die in the middle of a running download"
            server.kill()  # ...and the server dies
            out, err = sync.communicate(timeout=30)
        finally:
            if sync.poll() is None:
                sync.kill()
                sync.wait()

        assert sync.returncode == 1, out + err
        assert "Traceback" not in out + err, out + err
        reason = "the download was cut short (the connection closed early)"
        failed = f"core: FAILED: List 'core' could not be fetched from {url}: {reason}; the"
        assert (
            f"{failed} previous version stays in force and the next sync tries again."
            in out.splitlines()
        ), out
        assert list_state(state) == before  # version 1 in force, nothing of version 2 stored
        [shown] = json.loads(run_podmod("lists", "show", "--json").stdout)
        assert shown["version"] == 1 and reason in shown["last_error"]
        assert_cases_consistent(state)

        server.start()  # the server is back
        again = run_podmod("lists", "sync")
    finally:
        server.kill()

    assert again.returncode == 0, again.stdout + again.stderr
    assert "core: version 2 applied (podmod): 50,002 entries (+50,001 -0)" in again.stdout
    after = list_state(state)
    assert after["lists"][0]["current_version"] == 2
    assert after["entries"]["active"] == 50_002
    assert sorted(s["entry_value"] for s in after["signals"] if s["kind"] == "list") == [
        "one@far.example",
        "two@far.example",
    ]
    [shown] = json.loads(run_podmod("lists", "show", "--json").stdout)
    assert shown["version"] == 2 and shown["last_error"] is None
    assert_cases_consistent(state)


def test_a_job_starts_again_when_its_connection_is_lost_and_fails_at_once_on_other_errors(pod_url):
    import psycopg

    from podmod.db import connect
    from podmod.durable import through_outages

    calls, pauses = [], []

    def cut_twice() -> int:
        calls.append(1)
        with connect(pod_url, purpose="state") as conn:
            if len(calls) <= 2:  # the server drops this very connection, as a restart does
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"]

    assert through_outages(cut_twice, name="t", give_up_after=60, sleep=pauses.append) >= 0
    assert len(calls) == 3 and pauses == [0.5, 1.0]

    calls.clear()

    def wrong_sql() -> None:
        calls.append(1)
        with connect(pod_url, purpose="state") as conn:
            conn.execute("SELECT no_such_column FROM users")

    with pytest.raises(psycopg.errors.UndefinedColumn):
        through_outages(wrong_sql, name="t", give_up_after=60, sleep=pauses.append)
    assert len(calls) == 1, "an error in the work itself is not retried"

    calls.clear()
    no_such_database = psycopg.conninfo.make_conninfo(pod_url, dbname="podmod_no_such_database")

    def misconfigured() -> None:
        calls.append(1)
        connect(no_such_database, purpose="state")

    with pytest.raises(Exception, match="does not exist"):
        through_outages(misconfigured, name="t", give_up_after=60, sleep=pauses.append)
    assert len(calls) == 1, "a database URL the server refuses is not an outage"

    dead = "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=1"
    started = time.monotonic()
    with pytest.raises(Exception, match="Cannot connect"):
        through_outages(
            lambda: connect(dead, purpose="state"), name="t", give_up_after=1.5, max_pause=0.5
        )
    assert 1.5 <= time.monotonic() - started < 10, "an outage longer than give_up_after fails"
