"""Running podmod's pieces from tests: a reader pass, a worker that drains the queues in-process,
and the `podmod` command itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner, Result
from rq import SimpleWorker

from podmod import intake, queue
from podmod.cli import main
from podmod.config import Config
from podmod.db import pod_connection, state_connection


def wait_for(
    condition: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.05
) -> Any:
    """Wait until `condition()` is true, at most `timeout` seconds; its value, or fail saying what
    was awaited and what was last seen."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        seen = condition()
        if seen:
            return seen
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout:.0f} s; last saw {seen!r}")


def read_once(config: Config) -> intake.PassResult:
    """One reader pass, as `podmod read --once` does it."""
    rconn = queue.redis_connection(config)
    with state_connection(config) as state, pod_connection(config) as pod:
        return intake.read_pass(config, pod, state, rconn, reconcile_now=True)


class InProcessWorker(queue.RefusesForeignJobs, SimpleWorker):
    """podmod's worker, running each job in this process."""


def drain(config: Config) -> None:
    """Run every queued job in this process, as `podmod worker --burst` would."""
    rconn = queue.redis_connection(config)
    InProcessWorker(queue.all_queues(config, rconn), connection=rconn).work(burst=True)


def intake_all(config: Config) -> None:
    read_once(config)
    drain(config)


def podmod(*args: str) -> Result:
    """Invoke the `podmod` command in this process."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cases_json(status: str = "all") -> list[dict[str, Any]]:
    result = podmod("cases", "--json", "--status", status)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def report_signals(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for case in cases for s in case["signals"] if s["kind"] == "report"]


def assert_cases_consistent(state) -> None:
    """Every case agrees with its signals, as podmod.refresh_cases() would leave it: counters,
    first and last signal, priority (README, "Priority"); no signal without its case, no case
    without a signal; at most one open case per account; status, resolution and closed_at agree;
    an open case has work (a pending report or an active match) unless a moderator reopened it."""
    state.rollback()
    orphans = state.execute(
        "SELECT count(*) AS n FROM podmod.signals s"
        " WHERE NOT EXISTS (SELECT 1 FROM podmod.cases c WHERE c.id = s.case_id)"
    ).fetchone()["n"]
    assert orphans == 0, f"{orphans} signals point at a missing case"
    rows = state.execute(
        """
        SELECT c.*, s.signals, s.reports, s.pending, s.reporters, s.pending_reporters,
               s.list_matches, s.silenced,
               s.content_matches, s.first_at, s.last_at,
               EXISTS (SELECT 1 FROM podmod.decisions d
                       WHERE d.case_id = c.id AND d.action = 'reopen') AS reopened
        FROM podmod.cases c LEFT JOIN (
            SELECT case_id, count(*) AS signals,
                   count(*) FILTER (WHERE kind = 'report') AS reports,
                   count(*) FILTER (WHERE kind = 'report' AND NOT reviewed) AS pending,
                   count(DISTINCT reporter_user_id) FILTER (WHERE kind = 'report') AS reporters,
                   count(DISTINCT reporter_user_id)
                       FILTER (WHERE kind = 'report' AND NOT reviewed) AS pending_reporters,
                   count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL) AS list_matches,
                   count(*) FILTER (WHERE kind = 'list' AND retracted_at IS NULL
                                    AND details ->> 'severity' = 'silence') AS silenced,
                   count(*) FILTER (WHERE kind = 'content' AND retracted_at IS NULL)
                       AS content_matches,
                   min(occurred_at) AS first_at, max(occurred_at) AS last_at
            FROM podmod.signals GROUP BY case_id
        ) s ON s.case_id = c.id
        ORDER BY c.id
        """
    ).fetchall()
    state.rollback()
    problems: list[str] = []
    open_subjects: dict[str, int] = {}
    open_people: dict[int, int] = {}
    for case in rows:
        label = f"case {case['id']} ({case['account'] or case['subject']}, {case['status']})"
        if not case["signals"]:
            problems.append(f"{label} has no signal")
            continue
        expected = {
            "report_count": case["reports"],
            "pending_report_count": case["pending"],
            "reporter_count": case["reporters"],
            "list_match_count": case["list_matches"],
            "content_match_count": case["content_matches"],
            "first_signal_at": case["first_at"],
            "last_signal_at": case["last_at"],
            "priority": 10 * case["pending_reporters"]
            + 2 * (case["pending"] - case["pending_reporters"])
            + 30 * (case["list_matches"] - case["silenced"])
            + 15 * case["silenced"]
            + 15 * case["content_matches"]
            + (5 if case["local"] else 0),
        }
        for column, value in expected.items():
            if case[column] != value:
                problems.append(f"{label}: {column} is {case[column]!r}, its signals say {value!r}")
        if case["status"] == "open":
            if case["closed_at"] is not None or case["resolution"] is not None:
                problems.append(f"{label} is open but has closed_at or a resolution")
            work = case["pending"] + case["list_matches"] + case["content_matches"]
            if not work and not case["reopened"]:
                problems.append(f"{label} is open with nothing pending and no active match")
            if case["subject"] in open_subjects:
                problems.append(f"{label}: a second open case for {case['subject']}")
            open_subjects[case["subject"]] = case["id"]
            if case["person_id"] is not None:
                if case["person_id"] in open_people:
                    problems.append(f"{label}: a second open case for person {case['person_id']}")
                open_people[case["person_id"]] = case["id"]
        elif case["closed_at"] is None or case["resolution"] is None:
            problems.append(f"{label} is closed without closed_at or a resolution")
    assert not problems, "inconsistent cases:\n" + "\n".join(problems[:20])


def decision_rows(state) -> list[tuple[str, str | None, str, str]]:
    """Every decision as (action, account, actor, source), in order: to compare before and
    after a fault, so that none is doubled or lost."""
    state.rollback()
    rows = state.execute(
        "SELECT action, account, actor, source FROM podmod.decisions ORDER BY id"
    ).fetchall()
    state.rollback()
    return [(r["action"], r["account"], r["actor"], r["source"]) for r in rows]
