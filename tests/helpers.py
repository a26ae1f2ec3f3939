"""Running podmod's pieces from tests: a reader pass, a worker that drains the queues in-process,
and the `podmod` command itself."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result
from rq import SimpleWorker

from podmod import intake, queue
from podmod.cli import main
from podmod.config import Config
from podmod.db import pod_connection, state_connection


def read_once(config: Config) -> intake.PassResult:
    """One reader pass, as `podmod read --once` does it."""
    rconn = queue.redis_connection(config)
    with state_connection(config) as state, pod_connection(config) as pod:
        return intake.read_pass(config, pod, state, rconn)


def drain(config: Config) -> None:
    """Run every queued job in this process, as `podmod worker --burst` would."""
    rconn = queue.redis_connection(config)
    SimpleWorker(queue.all_queues(config, rconn), connection=rconn).work(burst=True)


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
