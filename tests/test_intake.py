"""Report intake: every report the pod receives becomes exactly one signal on its author's case."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg

from podmod import intake
from podmod.config import Config
from tests.diaspora_pod import DiasporaPod
from tests.helpers import cases_json, drain, intake_all, read_once, report_signals, wait_for


def test_report_of_a_post_opens_a_case_for_its_author_with_a_snapshot(config, state, pod):
    alice = pod.person("alice")
    author = pod.person("spammer")
    post = pod.post(author, "Buy placeholder widgets now")
    report_id = pod.report(alice, "Post", post, "This is spam")

    intake_all(config)

    [case] = cases_json("open")
    assert case["account"] == "spammer@pod.example"
    assert case["local"] is True
    assert case["status"] == "open"
    [signal] = case["signals"]
    assert signal == signal | {
        "kind": "report",
        "report_id": report_id,
        "reporter": "alice@pod.example",
        "text": "This is spam",
        "item_type": "Post",
        "item_id": post,
        "reviewed": False,
        "snapshot": "Buy placeholder widgets now",
        "item_missing": False,
    }


def test_report_of_a_comment_goes_to_the_comment_author_not_the_post_author(config, state, pod):
    reporter = pod.person("reporter")
    post_author = pod.person("innocent")
    commenter = pod.person("rude", "other.example")
    post = pod.post(post_author, "A friendly post")
    comment = pod.comment(commenter, post, "A placeholder insult")
    pod.report(reporter, "Comment", comment, "insulting")

    intake_all(config)

    [case] = cases_json()
    assert case["account"] == "rude@other.example"
    assert case["local"] is False
    [signal] = case["signals"]
    assert signal["item_type"] == "Comment"
    assert signal["snapshot"] == "A placeholder insult"
    assert signal["parent_post_id"] == post


def test_reshare_report_is_the_resharers_case_and_keeps_the_root_text(config, state, pod):
    reporter = pod.person("reporter")
    original = pod.person("origin", "far.example")
    resharer = pod.person("amplifier", "near.example")
    root = pod.post(original, "Original placeholder text")
    reshare = pod.reshare(resharer, root)
    pod.report(reporter, "Post", reshare, "spreading this")

    intake_all(config)

    [case] = cases_json()
    assert case["account"] == "amplifier@near.example"
    [signal] = case["signals"]
    assert signal["snapshot"] == "Original placeholder text"
    assert signal["post_type"] == "Reshare"
    assert signal["reshare_of_account"] == "origin@far.example"


def test_several_reporters_of_one_account_share_one_case_ranked_above_a_single_report(
    config, state, pod
):
    reporters = [pod.person(f"user{n}") for n in range(3)]
    loud = pod.person("loud", "remote.example")
    quiet = pod.person("quiet", "remote.example")
    first, second = pod.post(loud, "one"), pod.post(loud, "two")
    for reporter in reporters:
        pod.report(reporter, "Post", first, "bad")
    pod.report(reporters[0], "Post", second, "also bad")
    pod.report(reporters[0], "Post", pod.post(quiet, "three"), "meh")

    intake_all(config)

    cases = cases_json("open")
    assert [c["account"] for c in cases] == ["loud@remote.example", "quiet@remote.example"]
    assert cases[0]["reporters"] == 3
    assert cases[0]["pending_reports"] == 4
    assert cases[0]["priority"] > cases[1]["priority"]
    assert len(cases[0]["signals"]) == 4


def test_report_of_an_item_deleted_before_intake_is_kept_visibly(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("vanisher", "gone.example")
    post = pod.post(author, "soon gone")
    pod.report(reporter, "Post", post, "was bad")
    pod.delete_post(post)

    intake_all(config)

    [case] = cases_json("open")
    assert case["account"] is None
    [signal] = case["signals"]
    assert signal["item_missing"] is True
    assert signal["snapshot"] is None
    assert signal["text"] == "was bad"


def test_deleted_item_joins_its_authors_case_when_an_earlier_report_knew_the_author(
    config, state, pod
):
    first, second = pod.person("first"), pod.person("second")
    author = pod.person("vanisher", "gone.example")
    post = pod.post(author, "soon gone")
    pod.report(first, "Post", post, "bad")
    intake_all(config)
    pod.delete_post(post)
    pod.report(second, "Post", post, "still bad")

    intake_all(config)

    [case] = cases_json("open")
    assert case["account"] == "vanisher@gone.example"
    assert [s["item_missing"] for s in case["signals"]] == [False, True]
    assert case["signals"][0]["snapshot"] == "soon gone"  # evidence survives deletion


def test_snapshot_is_the_text_when_read_not_after_a_later_edit_or_deletion(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("editor")
    post = pod.post(author, "before")
    pod.report(reporter, "Post", post)
    intake_all(config)
    pod.conn.execute("UPDATE posts SET text = 'after' WHERE id = %s", (post,))
    pod.delete_post(post)

    intake_all(config)

    [signal] = report_signals(cases_json())
    assert signal["snapshot"] == "before"


def test_unicode_and_html_are_stored_exactly_as_written(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("writer", "pod.example")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> Ünïcødé 日本語 🙂 \u202e'
    post = pod.post(author, hostile)
    pod.report(reporter, "Post", post, "<b>reason</b> ✓")

    intake_all(config)

    [signal] = report_signals(cases_json())
    assert signal["snapshot"] == hostile
    assert signal["text"] == "<b>reason</b> ✓"


def test_reports_reviewed_in_diaspora_leave_the_queue_and_are_audited(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example")
    post = pod.post(author, "text")
    pod.report(reporter, "Post", post)
    pod.report(pod.person("other"), "Post", post)
    intake_all(config)
    assert len(cases_json("open")) == 1

    pod.mark_reviewed("Post", post)
    result = read_once(config)

    assert result.reviewed_synced == 2
    assert result.cases_resolved == 1
    assert cases_json("open") == []
    [case] = cases_json("resolved")
    assert all(s["reviewed"] for s in case["signals"])
    audit = state.execute("SELECT actor, action, case_id FROM podmod.audit").fetchall()
    assert audit == [{"actor": "diaspora*", "action": "resolve", "case_id": case["id"]}]


def test_case_with_one_of_two_items_reviewed_stays_open_with_lower_priority(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example")
    first, second = pod.post(author, "one"), pod.post(author, "two")
    pod.report(reporter, "Post", first)
    pod.report(pod.person("other"), "Post", second)
    intake_all(config)
    before = cases_json("open")[0]["priority"]

    pod.mark_reviewed("Post", first)
    read_once(config)

    [case] = cases_json("open")
    assert case["pending_reports"] == 1
    assert case["priority"] < before


def test_backlog_already_reviewed_in_diaspora_is_history_not_work(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example")
    post = pod.post(author, "old")
    pod.report(reporter, "Post", post)
    pod.mark_reviewed("Post", post)

    intake_all(config)

    assert cases_json("open") == []
    [case] = cases_json("resolved")
    assert case["signals"][0]["reviewed"] is True


def test_new_report_after_a_resolved_case_opens_a_new_case(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example")
    post = pod.post(author, "old")
    pod.report(reporter, "Post", post)
    intake_all(config)
    pod.mark_reviewed("Post", post)
    read_once(config)

    pod.report(reporter, "Post", pod.post(author, "new"))
    intake_all(config)

    [open_case] = cases_json("open")
    assert open_case["pending_reports"] == 1
    assert len(cases_json("all")) == 2


def test_running_the_same_batch_twice_adds_nothing(config: Config, state, pod: DiasporaPod):
    reporter = pod.person("reporter")
    author = pod.person("author")
    for n in range(5):
        pod.report(reporter, "Post", pod.post(author, f"post {n}"))
    result = read_once(config)
    [batch] = result.new_batches

    assert intake.ingest_batch(config, batch) == 5
    assert intake.ingest_batch(config, batch) == 0
    drain(config)  # the queued job for the same batch
    state.execute("UPDATE podmod.intake_batches SET done_at = NULL")  # pretend it never finished
    state.commit()
    assert intake.ingest_batch(config, batch) == 0

    [case] = cases_json()
    assert len(case["signals"]) == 5


def test_reader_batches_a_backlog_and_advances_its_watermark(config, state, pod, monkeypatch):
    monkeypatch.setenv("PODMOD_READER_BATCH_SIZE", "10")
    from podmod.config import load_config

    config = load_config()
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example")
    post = pod.post(author)
    for _ in range(25):
        pod.report(reporter, "Post", post)

    first = read_once(config)
    second = read_once(config)
    drain(config)

    assert first.new_reports == 25 and len(first.new_batches) == 3
    assert second.new_reports == 0 and second.new_batches == []
    assert len(report_signals(cases_json())) == 25


def test_a_report_committed_late_below_the_watermark_is_not_lost(config, state, pod, pod_url):
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example")
    post = pod.post(author)
    # A slow transaction takes an id first but commits after a later report is read.
    with psycopg.connect(pod_url) as slow:
        slow_id = slow.execute(
            "INSERT INTO reports (item_id, item_type, text, created_at, updated_at, user_id)"
            " VALUES (%s, 'Post', 'late', now(), now(), %s) RETURNING id",
            (post, reporter.user_id),
        ).fetchone()[0]
        fast_id = pod.report(reporter, "Post", post, "early")
        first = read_once(config)
        assert first.gaps_open == 1
        slow.commit()

    second = read_once(config)
    drain(config)

    assert second.gaps_filled == 1 and second.gaps_open == 0
    ids = sorted(s["report_id"] for s in report_signals(cases_json()))
    assert ids == [slow_id, fast_id]


def test_a_report_committed_after_the_gap_timeout_is_reconciled_not_lost(
    config, state, pod, pod_url, monkeypatch
):
    reporter = pod.person("reporter")
    post = pod.post(pod.person("author", "remote.example"))
    with psycopg.connect(pod_url) as slow:
        slow_id = slow.execute(
            "INSERT INTO reports (item_id, item_type, text, created_at, updated_at, user_id)"
            " VALUES (%s, 'Post', 'very late', now(), now(), %s) RETURNING id",
            (post, reporter.user_id),
        ).fetchone()[0]
        fast_id = pod.report(reporter, "Post", post, "early")
        assert read_once(config).gaps_open == 1
        # The gap is given up on (as after reader.gap_timeout) before the slow one commits.
        state.execute("UPDATE podmod.intake_gaps SET first_seen_at = now() - interval '1 day'")
        state.commit()
        assert read_once(config).gaps_open == 0
        slow.commit()
    drain(config)
    assert [s["report_id"] for s in report_signals(cases_json())] == [fast_id]

    result = read_once(config)
    drain(config)

    assert result.reconciled == 1
    ids = sorted(s["report_id"] for s in report_signals(cases_json()))
    assert ids == [slow_id, fast_id]
    assert read_once(config).reconciled == 0, "a reconciled report is not found twice"


def test_a_report_inside_a_hole_too_wide_to_watch_is_reconciled(config, state, pod):
    reporter = pod.person("reporter")
    post = pod.post(pod.person("author", "remote.example"))
    first = pod.report(reporter, "Post", post, "first")
    pod.conn.execute("SELECT setval('reports_id_seq', %s)", (first + 5000,))
    far = pod.report(reporter, "Post", post, "after a wide hole")
    assert read_once(config).gaps_open == 0  # wider than MAX_GAP: not watched as a gap
    drain(config)
    late = pod.conn.execute(
        "INSERT INTO reports (id, item_id, item_type, text, created_at, updated_at, user_id)"
        " VALUES (%s, %s, 'Post', 'inside the hole', now(), now(), %s) RETURNING id",
        (first + 2500, post, reporter.user_id),
    ).fetchone()["id"]

    result = read_once(config)
    drain(config)

    assert result.reconciled == 1
    ids = sorted(s["report_id"] for s in report_signals(cases_json()))
    assert ids == [first, late, far]


def test_a_pass_commits_its_batches_and_watermark_whatever_comes_after(config, state, pod):
    # The batches and the watermark are a transaction of their own, committed when written:
    # nothing the reader does next (a rollback after an error) can undo them.
    from podmod.db import pod_connection, state_connection

    reporter = pod.person("reporter")
    post = pod.post(pod.person("author", "remote.example"))
    pod.report(reporter, "Post", post)
    with state_connection(config) as reading, pod_connection(config) as pod_reading:
        reading.execute("SELECT 1")  # (as the reader's connection is after a pass)
        reading.rollback()
        result = intake.collect_new_reports(config, pod_reading, reading)
        reading.rollback()

    assert result.new_reports == 1
    state.rollback()
    batches = state.execute("SELECT count(*) AS n FROM podmod.intake_batches").fetchone()["n"]
    assert batches == 1
    assert intake._watermark(state) > 0


def test_the_running_reader_follows_its_configuration_file(config, state, pod, env, caplog):
    # `podmod read` runs for weeks. A podmin who changes a setting in podmod.toml (here
    # reader.batch_size) gets it from the next pass on, without a restart; a file that cannot be
    # used changes nothing, and a setting the reader started its queues with waits for a restart:
    # both logged, once.
    caplog.set_level(logging.INFO, logger="podmod.config")
    config_file = Path(env["PODMOD_CONFIG"])
    reporter = pod.person("reporter")
    post = pod.post(pod.person("author", "remote.example"))

    def batches() -> int:
        state.rollback()
        count = state.execute("SELECT count(*) AS n FROM podmod.intake_batches").fetchone()["n"]
        state.rollback()
        return count

    def five_reports() -> None:
        with pod.conn.transaction():  # (one pass sees all five)
            for _ in range(5):
                pod.report(reporter, "Post", post)

    def logged(text: str) -> int:
        return sum(text in record.getMessage() for record in caplog.records)

    stopping = threading.Event()
    reader = threading.Thread(
        target=intake.run_reader, args=(config,), kwargs={"stop": stopping.is_set}, daemon=True
    )
    reader.start()
    try:
        five_reports()
        wait_for(lambda: batches() == 1, "five reports in one batch (batch_size 1000)", 120)

        config_file.write_text("[reader]\nbatch_size = 2\n")
        wait_for(lambda: logged("the reader read it again"), "the reader reading the file", 120)
        five_reports()
        wait_for(lambda: batches() == 1 + 3, "five more reports in batches of two", 120)

        config_file.write_text("[reader]\nbatch_size = 2\n[reader\n")
        wait_for(lambda: logged("the reader cannot use it"), "the reader refusing the file", 120)
        five_reports()
        wait_for(lambda: batches() == 4 + 3, "five more in batches of two, as before", 120)
        assert logged("the reader cannot use it") == 1

        config_file.write_text('queue_prefix = "elsewhere"\n[reader]\nbatch_size = 5\n')
        wait_for(lambda: logged("only when it is restarted"), "the reader's warning", 120)
        five_reports()
        wait_for(lambda: batches() == 7 + 1, "five more in one batch of five", 120)
    finally:
        stopping.set()
        reader.join(60)
    assert not reader.is_alive(), "the reader did not stop"
    [warning] = [r.getMessage() for r in caplog.records if "only when it" in r.getMessage()]
    assert warning.endswith(
        "the reader read it again, but applies queue_prefix only when it is restarted"
    )

    def ingested() -> int:
        intake_all(config)  # (the reader's jobs, on the queues it started with)
        return len(report_signals(cases_json()))

    wait_for(lambda: ingested() == 20, "every report ingested", 120)
