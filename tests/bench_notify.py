"""Benchmark (run it on purpose: `python -m pytest -s tests/bench_notify.py`; not part of the
suite): a case reaching alerts.min_priority to its alert mail accepted by the SMTP server and its
webhook received, with `podmod read` and `podmod worker` running as processes (they deliver the
outbox; no `podmod notify deliver`); and 10,000 cases arriving at once with digest_minutes = 5."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from podmod.config import load_config
from tests.helpers import wait_for
from tests.test_notify import configure
from tests.test_notify_durable import pass_and_drain

CASES = 20
SPACING = 1.0  # seconds between reports: each case alerted on its own


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def spawn(tmp_path: Path, name: str, *args: str) -> subprocess.Popen:
    with (tmp_path / f"{name}.err").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", *args],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def test_alert_latency_with_reader_and_worker_running(
    env, state, pod, smtp_server, receiver, tmp_path
):
    configure(
        env,
        smtp_url=smtp_server.url(),
        hooks=[(receiver.url, ["case.alert"])],
        extra="[alerts]\nmin_priority = 15\n",  # one report on a local account: 10 + 5
    )
    pod.person("admin", roles=("admin",))
    reporter = pod.person("reporter")
    arrivals: dict[str, float] = {}
    original = smtp_server.messages

    class Timed(list):
        def append(self, message) -> None:
            arrivals.setdefault(str(message["Subject"]), time.time())
            super().append(message)

    smtp_server.messages = Timed(original)
    processes = [
        spawn(tmp_path, "reader", "read"),
        spawn(tmp_path, "worker", "worker"),
    ]
    try:
        time.sleep(3)  # let them start
        reported: dict[str, float] = {}
        for n in range(CASES):
            author = pod.person(f"author{n}")
            reported[author.handle] = time.time()
            pod.report(reporter, "Post", pod.post(author))
            time.sleep(SPACING)
        wait_for(lambda: len(smtp_server.messages) >= CASES, f"{CASES} alert mails", 120)
        wait_for(lambda: len(receiver.deliveries) >= CASES, f"{CASES} webhooks", 60)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    mail = [
        arrivals[subject] - reported[handle]
        for handle in reported
        for subject in arrivals
        if f"({handle})" in subject
    ]
    received: dict[str, float] = {}
    for delivery in receiver.deliveries:
        for case in delivery.json["details"]["cases"]:
            received.setdefault(case["account"], delivery.at)
    hooks = [received[handle] - reported[handle] for handle in reported]
    assert len(mail) == CASES and len(hooks) == CASES
    for name, values in (("alert mail", mail), ("webhook", hooks)):
        print(
            f"\n{name}: p50 {statistics.median(values):.2f} s, p95 "
            f"{percentile(values, 0.95):.2f} s, max {max(values):.2f} s over {CASES} cases"
        )
    assert percentile(mail, 0.95) < 5
    assert percentile(hooks, 0.95) < 2


def test_ten_thousand_cases_at_once_with_digest_minutes_5_are_at_most_2_mails(
    env, state, pod, smtp_server
):
    """Each pass is a reader pass and the jobs it enqueued, run by a worker in this process."""
    configure(env, smtp_url=smtp_server.url(), extra="[alerts]\ndigest_minutes = 5\n")
    config = load_config()
    pod.person("admin", roles=("admin",))
    started = time.monotonic()
    for first in range(1, 10_001, 1000):  # arriving over ten passes
        state.execute(
            "INSERT INTO podmod.cases (subject, account, priority)"
            " SELECT 'person:' || n, 'p' || n || '@far.example', 40"
            " FROM generate_series(%s::int, %s::int) n",
            (first, first + 999),
        )
        state.commit()
        pass_and_drain(config)
    state.execute("UPDATE podmod.digests SET created_at = created_at - interval '5 minutes'")
    state.commit()
    pass_and_drain(config)
    pass_and_drain(config)
    print(
        f"\n10,000 cases over 10 passes, digest_minutes = 5: {len(smtp_server.messages)} mails "
        f"({[m['Subject'] for m in smtp_server.messages]}) in {time.monotonic() - started:.1f} s"
    )
    assert len(smtp_server.messages) <= 2
