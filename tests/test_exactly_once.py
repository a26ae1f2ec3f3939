"""Never lose a report, never double one: Redis emptied, workers killed mid-job, workers racing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from podmod import intake
from podmod.config import load_config
from tests.helpers import assert_cases_consistent, cases_json, drain, read_once, report_signals


def build_backlog(pod, reports: int, accounts: int = 7) -> list[int]:
    reporters = [pod.person(f"reporter{n}") for n in range(5)]
    authors = [pod.person(f"author{n}", f"remote{n % 3}.example") for n in range(accounts)]
    posts = [pod.post(author, f"placeholder post by {author.handle}") for author in authors]
    return [
        pod.report(reporters[n % len(reporters)], "Post", posts[n % len(posts)], f"reason {n}")
        for n in range(reports)
    ]


def assert_each_report_once(report_ids: list[int]) -> None:
    cases = cases_json()
    seen = Counter(s["report_id"] for s in report_signals(cases))
    assert sorted(seen) == sorted(report_ids), "a report is missing"
    assert max(seen.values()) == 1, "a report was stored twice"
    open_accounts = Counter(c["account"] for c in cases if c["status"] == "open")
    assert max(open_accounts.values()) == 1, "an account has two open cases"


def spawn_worker(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "podmod.cli", "worker", *extra],
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_hard(worker: subprocess.Popen) -> None:
    """SIGKILL a worker and its work horse (RQ puts the horse in a session of its own), as a
    crash or an OOM kill would."""
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    for pid in [*map(int, children), worker.pid]:
        os.kill(pid, signal.SIGKILL)
    worker.wait()


def test_redis_emptied_after_enqueue_loses_nothing(config, state, pod, rconn):
    ids = build_backlog(pod, 40)
    first = read_once(config)
    assert first.enqueued

    rconn.flushdb()  # Redis restarted empty: every queued job is gone
    second = read_once(config)
    drain(config)

    assert sorted(second.enqueued) == sorted(first.new_batches)
    assert_each_report_once(ids)
    assert_cases_consistent(state)


def test_redis_emptied_after_the_work_is_done_doubles_nothing(config, state, pod, rconn):
    ids = build_backlog(pod, 30)
    read_once(config)
    drain(config)
    rconn.flushdb()

    again = read_once(config)
    drain(config)

    assert again.enqueued == []
    assert_each_report_once(ids)
    assert_cases_consistent(state)


def test_worker_killed_in_the_middle_of_a_job_is_replaced_without_loss(
    config, state, pod, monkeypatch
):
    monkeypatch.setenv("PODMOD_READER_BATCH_SIZE", "10")
    config = load_config()
    ids = build_backlog(pod, 30)
    read_once(config)

    # Hold the ingest lock so the worker's first job stops inside its transaction.
    with psycopg.connect(config.state_database_url) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (intake.INGEST_LOCK,))
        victim = spawn_worker()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            waiting = blocker.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the worker never reached its transaction"
        kill_hard(victim)
        blocker.execute("SELECT pg_advisory_unlock(%s)", (intake.INGEST_LOCK,))

    # The next reader pass sees the abandoned batch and enqueues it again.
    deadline = time.monotonic() + 20
    requeued: list[int] = []
    while time.monotonic() < deadline and not requeued:
        time.sleep(0.3)
        requeued = read_once(config).enqueued
    assert requeued, "the abandoned batch was never enqueued again"
    replacement = spawn_worker("--burst")
    assert replacement.wait(60) == 0

    read_once(config)
    drain(config)
    undone = state.execute(
        "SELECT count(*) AS n FROM podmod.intake_batches WHERE done_at IS NULL"
    ).fetchone()["n"]
    assert undone == 0
    assert_each_report_once(ids)
    assert_cases_consistent(state)


def test_two_workers_draining_the_same_queue_store_each_report_once(
    config, state, pod, monkeypatch
):
    monkeypatch.setenv("PODMOD_READER_BATCH_SIZE", "5")
    config = load_config()
    ids = build_backlog(pod, 120, accounts=11)
    read_once(config)

    workers = [spawn_worker("--burst") for _ in range(2)]
    assert [w.wait(120) for w in workers] == [0, 0]

    assert_each_report_once(ids)
    assert_cases_consistent(state)


def test_the_same_batch_run_by_two_workers_at_once_is_stored_once(config, state, pod):
    ids = build_backlog(pod, 20)
    [batch] = read_once(config).new_batches
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        stored = list(pool.map(lambda _: intake.ingest_batch(config, batch), range(4)))

    assert sorted(stored) == [0, 0, 0, 20]
    assert_each_report_once(ids)
    assert_cases_consistent(state)


def test_a_second_reader_exits_with_a_message(config, state):
    with psycopg.connect(config.state_database_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (intake.READER_LOCK,))
        result = subprocess.run(
            [sys.executable, "-m", "podmod.cli", "read", "--once"],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 4
    assert "another `podmod read` is already running" in result.stderr


@pytest.mark.parametrize("restart_at", ["before_read", "between_read_and_work"])
def test_reader_and_worker_run_again_change_nothing(config, state, pod, restart_at):
    ids = build_backlog(pod, 25)
    read_once(config)
    if restart_at == "between_read_and_work":
        read_once(config)
    drain(config)
    before = cases_json()

    read_once(config)
    drain(config)

    assert cases_json() == before
    assert_each_report_once(ids)
    assert_cases_consistent(state)


def test_lock_and_close_run_twice_and_intake_again_double_nothing(config, state, pod):
    from podmod import actions

    spammer = pod.person("spammer")
    post_id = pod.post(spammer, "A placeholder post.")
    reporters = [pod.person(f"reporter{n}") for n in range(2)]
    for reporter in reporters:
        pod.report(reporter, "Post", post_id)
    read_once(config)
    drain(config)
    [case] = cases_json("open")

    first = actions.lock_and_close(config, case_id=case["id"], actor="mod", source="web")
    second = actions.lock_and_close(config, case_id=case["id"], actor="mod", source="web")
    after = cases_json("all")
    read_once(config)  # the reader sees the reports reviewed in diaspora*: nothing to do
    drain(config)

    assert first.changed and not second.changed
    decisions = state.execute("SELECT action FROM podmod.decisions").fetchall()
    assert decisions == [{"action": "lock"}]
    assert cases_json("all") == after
    [closed] = after
    assert (closed["id"], closed["status"], closed["resolution"]) == (
        case["id"],
        "resolved",
        "locked",
    )
    assert closed["reporters"] == 2
    assert_cases_consistent(state)
