"""The `podmod` command as a podmin uses it: init, read, cases, check."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import psycopg

from podmod import store
from tests.helpers import drain, podmod


def test_init_creates_the_schema_once_and_is_idempotent(env, pod_url):
    first = podmod("init")
    second = podmod("init")
    assert first.exit_code == 0 and "applied 0001_intake" in first.output
    assert second.exit_code == 0 and "up to date" in second.output
    with psycopg.connect(pod_url) as conn:
        versions = conn.execute("SELECT version FROM podmod.schema_migrations").fetchall()
    assert versions == [(m.version,) for m in store.migrations()]
    assert len(versions) >= 2


def test_init_refuses_a_database_that_is_not_a_diaspora_pod(env, pod_url, monkeypatch):
    with psycopg.connect(pod_url, autocommit=True) as conn:
        conn.execute("DROP TABLE reports")
    result = podmod("init")
    assert result.exit_code == 2
    assert "no diaspora* table 'reports'" in result.output
    with psycopg.connect(pod_url) as conn:
        assert conn.execute("SELECT to_regnamespace('podmod')").fetchone() == (None,)


def test_commands_before_init_say_to_run_init(env):
    result = podmod("cases")
    assert result.exit_code == 2
    assert "run `podmod init`" in result.output


def test_unreachable_database_is_one_sentence(env, monkeypatch):
    monkeypatch.setenv("PODMOD_DATABASE_URL", "postgresql://podmod@127.0.0.1:1/diaspora")
    result = podmod("cases")
    assert result.exit_code == 3
    assert result.output.startswith("podmod: Cannot connect to the state database at")
    assert "127.0.0.1:1" in result.output


def test_a_database_that_does_not_exist_is_not_blamed_on_postgresql_being_down(
    env, pod_url, monkeypatch
):
    missing = urlunsplit(urlsplit(pod_url)._replace(path="/no_such_database"))
    monkeypatch.setenv("PODMOD_DATABASE_URL", missing)
    result = podmod("cases")
    assert result.exit_code == 3
    assert "no_such_database" in result.output and "does not exist" in result.output
    assert "check that PostgreSQL is running" not in result.output
    assert "database_url" in result.output


def test_redis_holding_sidekiq_keys_is_refused(env, state, rconn):
    rconn.sadd("queues", "default")  # what diaspora*'s Sidekiq leaves in its database
    result = podmod("read", "--once")
    assert result.exit_code == 2
    assert "Sidekiq" in result.output


def test_read_once_then_cases_shows_the_queue(config, state, pod):
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example")
    pod.report(reporter, "Post", pod.post(author, "text"), "spam")
    read = podmod("read", "--once")
    assert read.exit_code == 0, read.output
    assert "read 1 new reports into 1 batches; enqueued 1 jobs" in read.output
    drain(config)

    table = podmod("cases")
    assert "author@remote.example (remote)" in table.output
    assert table.output.splitlines()[0].split() == [
        "ID",
        "PRIO",
        "STATUS",
        "REPORTS",
        "BY",
        "AGE",
        "ACCOUNT",
    ]
    assert podmod("cases", "--status", "resolved").output.strip() == "No resolved cases."


def test_cases_limit_and_status_filter(config, state, pod):
    reporter = pod.person("reporter")
    for n in range(3):
        pod.report(reporter, "Post", pod.post(pod.person(f"a{n}", "remote.example")))
    podmod("read", "--once")
    drain(config)
    assert len(json.loads(podmod("cases", "--json", "--limit", "2").output)) == 2
    assert len(json.loads(podmod("cases", "--json").output)) == 3


def test_check_names_what_is_missing_and_exits_1(config, state):
    result = podmod("check", "--json")
    report = {c["check"]: c for c in json.loads(result.output)["checks"]}
    assert result.exit_code == 1
    assert [name for name, c in report.items() if c["status"] == "ok"] == [
        "config",
        "pod database",
        "podmod schema",
        "backlog",
        "redis",
        "web proxy",
    ]
    assert report["backlog"]["detail"].startswith("0 reports in 0 intake batches")
    assert report["privileges"]["status"] == "warn"  # the test role is a superuser
    assert "deploy/grants.sql" in report["privileges"]["detail"]
    assert "start `podmod read`" in report["reader"]["detail"]
    assert "start `podmod worker`" in report["workers"]["detail"]


def test_check_passes_with_a_reader_and_a_worker_running(config, state):
    import os
    import subprocess
    import sys
    import time

    podmod("read", "--once")
    worker = subprocess.Popen(
        [sys.executable, "-m", "podmod.cli", "worker"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = podmod("check")
            if result.exit_code == 0:
                break
            time.sleep(0.3)
        assert result.exit_code == 0, result.output
        assert "OK   workers: 1 running" in result.output
        assert "OK   backlog: 0 reports in 0 intake batches" in result.output
        assert "WARN privileges" in result.output
    finally:
        worker.terminate()
        worker.wait(30)


def test_check_warns_when_undone_work_is_getting_old(config, state, pod):
    reporter = pod.person("reporter")
    pod.report(reporter, "Post", pod.post(pod.person("author", "far.example")))
    podmod("read", "--once")  # read, never worked
    state.execute("UPDATE podmod.intake_batches SET created_at = now() - interval '20 minutes'")
    state.commit()

    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}

    assert report["backlog"]["status"] == "warn"
    detail = report["backlog"]["detail"]
    assert detail.startswith("1 reports in 1 intake batches")
    assert "the oldest batch has waited 1200 s" in detail
    assert "check that `podmod worker` is running" in detail


def test_a_service_lost_mid_command_is_one_sentence_and_other_errors_are_not_hidden():
    import redis

    from podmod.cli import lost_service_message
    from podmod.embedded import free_port

    try:
        redis.Redis(port=free_port(), socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        lost = error
    message = lost_service_message(lost)
    assert message.startswith("Redis stopped answering while this command ran (")
    assert message.endswith("(the work it carries is kept in PostgreSQL).")
    assert lost_service_message(ValueError("a bug")) is None  # a bug still shows its traceback


def test_check_verifies_the_uploads_dir_that_local_photos_are_hashed_from(
    env, state, tmp_path, monkeypatch
):
    def uploads_check() -> dict:
        report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
        return report["uploads_dir"]

    assert "uploads_dir" not in {
        c["check"] for c in json.loads(podmod("check", "--json").output)["checks"]
    }  # unset: local photos are not hashed, nothing to check
    missing = tmp_path / "public" / "uploads" / "images"
    monkeypatch.setenv("PODMOD_SCAN_UPLOADS_DIR", str(missing))
    check = uploads_check()
    assert check["status"] == "fail" and str(missing) in check["detail"]
    assert "ProtectHome" in check["detail"] or "does not exist" in check["detail"]
    missing.mkdir(parents=True)
    (missing / "photo.jpg").write_bytes(b"placeholder")
    check = uploads_check()
    assert check["status"] == "ok" and "readable" in check["detail"], check
