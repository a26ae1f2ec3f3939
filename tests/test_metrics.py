"""/metrics content: what a Prometheus scrape sees after some intake."""

from __future__ import annotations

import re

from podmod import metrics, queue
from tests.helpers import intake_all, podmod, read_once


def test_metrics_count_cases_queues_and_intake(config, state, pod):
    reporter = pod.person("reporter")
    for n in range(3):
        pod.report(reporter, "Post", pod.post(pod.person(f"a{n}", "far.example")))
    intake_all(config)
    pod.report(reporter, "Post", pod.post(pod.person("late", "far.example")))
    read_once(config)  # read but not yet worked
    podmod("lock", "reporter@pod.example", "--reason", "placeholder")
    # A new-content batch as the reader writes it when lists hold content entries, not matched yet.
    state.execute(
        "INSERT INTO podmod.scan_batches (item_type, item_ids) VALUES ('Post', ARRAY[1, 2])"
    )
    state.commit()

    text = metrics.collect(config, state, queue.redis_connection(config))

    assert 'podmod_cases{status="open"} 3' in text
    assert 'podmod_queue_jobs{queue="podmod-ingest"} 1' in text
    assert "podmod_intake_reports_pending 1" in text
    assert "podmod_scan_batches_pending 1" in text
    assert "podmod_scan_items_pending 2" in text
    assert "podmod_scan_runs_active 0" in text
    assert re.search(r'podmod_oldest_pending_seconds\{work="intake"\} [0-9.]+\n', text)
    assert 'podmod_signals{kind="report"} 3' in text
    assert 'podmod_decisions_total{action="lock"} 1' in text
    assert re.search(r"podmod_reader_heartbeat_age_seconds \d", text) is None  # no loop ran
    for line in text.splitlines():  # every line is a comment or `name{labels} value`
        assert line.startswith("# ") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? -?[0-9.e+]+", line)
