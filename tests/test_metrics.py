"""/metrics content: what a Prometheus scrape sees after some intake."""

from __future__ import annotations

import re

from podmod import metrics, queue
from podmod.config import load_config
from tests.helpers import intake_all, podmod, read_once
from tests.test_lists import lists as lists  # (fixture)
from tests.test_lists import sync


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


def test_a_list_taken_out_of_the_configuration_leaves_the_list_metrics(lists, pod, state):
    # Retired (its versions kept), it is no longer synced: its sync age would grow, and an
    # alert on it fire, for ever.
    lists.write("core", ["account,one@far.example,,"])
    lists.write("other", ["account,two@far.example,,"])
    lists.subscribe("core")
    lists.subscribe("other")
    assert sync()[0] == 0
    lists.lists = [item for item in lists.lists if item["name"] != "core"]
    lists.save()
    code, output = sync()
    assert code == 0 and "core: no longer in the configuration" in output, output

    text = metrics.collect(load_config(), state, queue.redis_connection(load_config()))

    assert re.search(r'podmod_list_sync_age_seconds\{list="other"\} [0-9.]+\n', text), text
    assert 'podmod_list_version{list="other",policy="review"} 1' in text
    assert 'list="core"' not in text, text
