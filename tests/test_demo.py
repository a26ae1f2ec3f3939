"""`podmod demo` as a newcomer runs it: one command, a believable pod, and nothing broken by a
second run or a dying server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from podmod.demo import DEFAULT_PORT, default_directory
from podmod.embedded import folders_opened_as_root
from tests import helpers

STARTUP = 300  # seconds: initdb, the pod, a signed list and three processes on a busy machine


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120) -> object:
    return helpers.wait_for(condition, what, timeout, interval=0.5)


class RunningDemo:
    def __init__(self, directory: Path, *flags: str) -> None:
        self.directory = directory
        self.out = directory.parent / f"{directory.name}.out"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", "demo", "--dir", str(directory), *flags],
            stdout=self.out.open("w"),
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PODMOD_")},
        )
        wait_for(
            lambda: "Press Ctrl-C" in self.output() or self.process.poll() is not None,
            "the demo started",
            STARTUP,
        )
        assert self.process.poll() is None, self.output()
        self.port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", self.output())[1])

    def output(self) -> str:
        return self.out.read_text()

    def podmod(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODMOD_")}
        env["PODMOD_CONFIG"] = str(self.directory / "podmod.toml")
        return subprocess.run(
            [sys.executable, "-m", "podmod.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stopped(self, timeout: float = 60) -> int:
        wait_for(lambda: self.process.poll() is not None, "the demo stopped", timeout)
        return self.process.returncode


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[[], RunningDemo]]:
    started: list[RunningDemo] = []

    def start(*flags: str) -> RunningDemo:
        started.append(RunningDemo(tmp_path / "demo", *flags))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGINT)
            running.process.wait(60)


def test_the_demo_shows_four_weeks_of_a_pod_and_a_second_demo_leaves_it_running(demo):
    with socket.socket() as held:
        # the default port taken (by this socket, or already by someone else): the next free one
        with contextlib.suppress(OSError):
            held.bind(("127.0.0.1", DEFAULT_PORT))
        running = demo()
    assert DEFAULT_PORT < running.port < DEFAULT_PORT + 100, running.output()
    if os.geteuid() == 0:
        notice, _ = running.output().split("podmod demo is running.")
        assert "the OS user `pgserver`" in notice and "readable by every user" in notice

    def cases() -> list[dict]:
        listed = running.podmod("cases", "--json", "--status", "all")
        return json.loads(listed.stdout) if listed.returncode == 0 else []

    shown = wait_for(lambda: len(c := cases()) >= 55 and c, "about 60 cases were read")
    reported = [
        datetime.fromisoformat(s["reported_at"])
        for case in shown
        for s in case["signals"]
        if s["kind"] == "report"
    ]
    assert (max(reported) - min(reported)).days >= 27
    assert {"open", "resolved", "dismissed"} <= {case["status"] for case in shown}
    # The cases opened, and were decided, over the four weeks, not all today.
    opened = [datetime.fromisoformat(case["created_at"]) for case in shown]
    assert (max(opened) - min(opened)).days >= 27
    [locked] = [
        c for c in shown if c["outcome"] == "locked" and c["account"] == "member31@demo.pod.example"
    ]
    page = json.loads(running.podmod("case", "show", str(locked["id"]), "--json").stdout)
    [decision] = page["decisions"]
    assert decision["action"] == "lock" and decision["actor"] == "moderator@demo.pod.example"
    decided = datetime.fromisoformat(decision["at"])
    assert (datetime.now(decided.tzinfo) - decided).days >= 10
    assert page["account_state"]["locked"]
    still_open = [c for c in shown if c["status"] == "open"]
    assert len(still_open) >= 10, [c["account"] for c in still_open]

    def logged_at_info() -> str | None:
        text = (running.directory / "podmod.log").read_text()
        return text if " INFO podmod.intake " in text and " INFO rq.worker " in text else None

    log = wait_for(logged_at_info, "the reader and the worker logged at INFO")
    assert "podmod.intake reader pass" in log

    second = subprocess.run(
        [sys.executable, "-m", "podmod.cli", "demo", "--dir", str(running.directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"podmod: A podmod demo is already running in {running.directory}; stop it first "
        "(Ctrl-C in its terminal) or give this one another --dir."
    ]
    assert requests.get(f"http://127.0.0.1:{running.port}/healthz", timeout=10).status_code == 200
    assert len(cases()) == len(shown)

    postmaster = int((running.directory / "pg" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGKILL)
    assert running.stopped() == 1
    assert "The demo's PostgreSQL stopped; the demo stopped" in running.output()


def test_the_demo_stops_when_its_redis_dies_and_starts_again_kept_with_a_list_that_fails(demo):
    import psutil

    running = demo()
    [redis_server] = [
        child
        for child in psutil.Process(running.process.pid).children()
        if "redis-server" in child.name()
    ]
    redis_server.kill()
    assert running.stopped() == 1
    assert "The demo's Redis stopped; the demo stopped" in running.output()

    # The podmin, trying things, subscribed the demo to a list that is not there; started again
    # with its data kept, the demo says so and runs.
    gone = (running.directory / "lists" / "gone.csv").as_uri()
    with (running.directory / "podmod.toml").open("a") as config:
        config.write(f'\n[[lists]]\nname = "gone"\nurl = "{gone}"\npolicy = "review"\n')
    again = demo("--keep")
    told = again.output().split("podmod demo is running.")[0]
    assert "The demo's lists, as `podmod lists sync` told them:" in told, told
    assert "\n  gone: FAILED: " in told and "\n  core-team: " in told, told
    assert requests.get(f"http://127.0.0.1:{again.port}/healthz", timeout=10).status_code == 200


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the embedded PostgreSQL as pgserver")
def test_as_root_the_default_directory_opens_no_folder_to_other_users():
    assert folders_opened_as_root(default_directory() / "pg") == []
