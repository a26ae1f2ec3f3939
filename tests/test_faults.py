"""Faults during intake: Redis stopped in the middle of a backlog and started again empty, with
the reader and a worker running as processes. Nothing is lost, nothing doubled, no manual step."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from podmod.embedded import free_port, start_redis
from tests.test_exactly_once import assert_each_report_once, build_backlog


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "podmod.cli", *args],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def signals_stored(state) -> int:
    state.rollback()
    return state.execute(
        "SELECT count(*) AS n FROM podmod.signals WHERE kind = 'report'"
    ).fetchone()["n"]


@pytest.mark.timeout(180)
def test_redis_restarted_empty_in_the_middle_of_intake(env, state, pod, tmp_path, monkeypatch):
    port = free_port()
    redis_server = start_redis(tmp_path / "redis-a", port)
    monkeypatch.setenv("PODMOD_REDIS_URL", redis_server.url(db=1))
    monkeypatch.setenv("PODMOD_READER_BATCH_SIZE", "50")
    ids = build_backlog(pod, 3000, accounts=40)
    reader, worker = spawn("read"), spawn("worker")
    processes = [reader, worker]
    try:
        deadline = time.monotonic() + 60
        while signals_stored(state) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        redis_server.stop()  # Redis goes away in the middle of the backlog...
        assert 0 < signals_stored(state) < len(ids), "the outage must hit a running intake"
        time.sleep(2)
        redis_server = start_redis(tmp_path / "redis-b", port)  # ...and comes back empty
        deadline = time.monotonic() + 120
        while signals_stored(state) < len(ids) and time.monotonic() < deadline:
            # systemd's Restart=always for a worker that gave up on Redis (deploy/ units)
            if worker.poll() is not None:
                worker = spawn("worker")
                processes.append(worker)
            time.sleep(0.2)
        assert reader.poll() is None, "the reader must ride out a Redis outage by itself"
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        redis_server.stop()

    assert_each_report_once(ids)
