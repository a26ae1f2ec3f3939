"""The `podmod` command as a podmin uses it: init, read, cases, check."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from podmod import store
from podmod.redact import CONTROL
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


def test_podmods_tables_can_be_written_in_a_database_that_publishes_them(env, pod_url):
    # A pod's database may publish all its tables for logical replication (an upgrade of
    # PostgreSQL without downtime does): PostgreSQL then refuses UPDATE and DELETE on any table
    # without a replica identity, and every sync that ends entries would fail.
    assert podmod("init").exit_code == 0
    with psycopg.connect(pod_url) as conn:
        conn.execute("CREATE PUBLICATION podmod_test_everything FOR ALL TABLES")  # (rolled back)
        tables = conn.execute(
            "SELECT c.relname, (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid"
            "  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum LIMIT 1)"
            " FROM pg_class c WHERE c.relnamespace = 'podmod'::regnamespace AND c.relkind = 'r'"
            " ORDER BY c.relname"
        ).fetchall()
        refused = []
        for table, column in tables:
            for statement in (
                f'UPDATE podmod."{table}" SET "{column}" = "{column}" WHERE false',
                f'DELETE FROM podmod."{table}" WHERE false',
            ):
                try:
                    with conn.transaction():
                        conn.execute(statement)
                except psycopg.errors.ObjectNotInPrerequisiteState as error:
                    refused.append(str(error).splitlines()[0])
        conn.rollback()
    assert "list_entries" in [table for table, _ in tables] and len(tables) > 20, tables
    assert refused == []


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
    assert "read 1 new report into 1 batch; enqueued 1 job; 0 reports newly" in read.output
    drain(config)

    table = podmod("cases")
    assert "author@remote.example (remote)" in table.output
    assert table.output.splitlines()[0].split() == [
        "ID",
        "PRIO",
        "STATUS",
        "PENDING",  # (reports waiting for a review)
        "REPORTERS",  # (every one who reported the account, reviewed or not)
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
        "notifications",
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


EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (the exposure these tests make podmod check find)


def check_redis_against(server, monkeypatch) -> dict[str, str]:
    """`podmod check`'s redis line with redis_url pointing at `server` (stopped afterwards)."""
    monkeypatch.setenv("PODMOD_REDIS_URL", server.url())
    try:
        report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    finally:
        server.stop()
    return report["redis"]


def test_check_warns_when_redis_needs_no_password_and_listens_beyond_loopback(
    env, tmp_path, monkeypatch
):
    """Anyone who can write to podmod's Redis decides what podmod's workers get to do."""
    from podmod.embedded import start_redis

    open_server = start_redis(tmp_path / "open", bind=EVERY_INTERFACE)
    redis_line = check_redis_against(open_server, monkeypatch)
    assert redis_line["status"] == "warn", redis_line
    assert "no password" in redis_line["detail"] and EVERY_INTERFACE in redis_line["detail"]
    assert "requirepass" in redis_line["detail"] and "Unix socket" in redis_line["detail"]


def test_check_is_content_with_a_redis_that_needs_a_password_or_listens_on_loopback(
    env, tmp_path, monkeypatch
):
    from podmod.embedded import start_redis

    locked_server = start_redis(tmp_path / "locked", bind=EVERY_INTERFACE, password="p w")
    locked = check_redis_against(locked_server, monkeypatch)
    local = check_redis_against(start_redis(tmp_path / "local"), monkeypatch)
    assert locked["status"] == "ok" and "needs a password" in locked["detail"], locked
    assert local["status"] == "ok" and "listens only on loopback" in local["detail"], local


def test_check_warns_on_a_config_file_others_can_read_and_a_short_secret_key(env, state):
    config_file = Path(env["PODMOD_CONFIG"])
    config_file.write_text('secret_key = "placeholder"\n')
    config_file.chmod(0o644)
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert report["config file"]["status"] == "warn"
    assert "chmod 600" in report["config file"]["detail"]
    assert report["secret key"]["status"] == "warn"
    assert "11 bytes" in report["secret key"]["detail"]

    config_file.write_text(f'secret_key = "{"k" * 32}"\n')
    config_file.chmod(0o600)
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert report["config file"]["status"] == "ok"
    assert report["secret key"]["status"] == "ok"


def test_check_is_content_with_the_installs_config_file_readable_by_podmods_own_group(env, state):
    # README, install step 3: /etc/podmod/podmod.toml is 0640 root:podmod, and step 4 wants every
    # line OK. A group of one user (podmod's own) reads it; a group of several users does not.
    import grp
    import pwd

    def users(group: grp.struct_group) -> set[str]:
        own = {user.pw_name for user in pwd.getpwall() if user.pw_gid == group.gr_gid}
        return set(group.gr_mem) | own

    config_file = Path(env["PODMOD_CONFIG"])
    config_file.write_text(f'secret_key = "{"k" * 32}"\n')
    config_file.chmod(0o640)
    own_group = grp.getgrgid(config_file.stat().st_gid)
    assert len(users(own_group)) <= 1, f"the test's own group {own_group.gr_name} has many users"
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert report["config file"]["status"] == "ok", report["config file"]
    assert f"group {own_group.gr_name}" in report["config file"]["detail"]

    shared = next((g for g in grp.getgrall() if len(users(g)) > 1), None)
    if shared is None or os.geteuid() != 0:
        pytest.skip("no group of several users here, or not root to give the file to one")
    os.chown(config_file, -1, shared.gr_gid)
    report = {c["check"]: c for c in json.loads(podmod("check", "--json").output)["checks"]}
    assert report["config file"]["status"] == "warn", report["config file"]
    assert "can be read by other users" in report["config file"]["detail"]


# ---------------------------------------------------------------------------------------------
# `podmod case` and `podmod lock --close`: all the case page does, from a script.


def reported(config, pod, author_name: str = "spammer", host: str = "pod.example") -> int:
    author = pod.person(author_name, host)
    post_id = pod.post(author, "A placeholder post about widgets.")
    for n in range(2):
        pod.report(pod.person(f"reporter{n}"), "Post", post_id, "Placeholder: spam")
    podmod("read", "--once")
    drain(config)
    [case] = json.loads(podmod("cases", "--json").output)
    return case["id"]


def test_case_show_says_one_report_one_reporter_and_one_match_in_the_singular(config, state, pod):
    author = pod.person("spammer")
    pod.report(pod.person("reporter0"), "Post", pod.post(author, "A placeholder post."), "Spam")
    podmod("read", "--once")
    drain(config)
    [case] = json.loads(podmod("cases", "--json").output)

    lines = podmod("case", "show", str(case["id"])).output.splitlines()

    assert (
        "1 pending of 1 report · 1 reporter · 0 list matches · 0 content matches" in (lines[1])
    ), lines


def decision_actions(state) -> list[str]:
    state.rollback()
    return [r["action"] for r in state.execute("SELECT action FROM podmod.decisions ORDER BY id")]


def test_case_show_prints_what_the_case_page_shows(config, state, pod):
    case_id = reported(config, pod)
    podmod("case", "note", str(case_id), "Placeholder: asked the author to stop.")

    text = podmod("case", "show", str(case_id))

    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == f"Case {case_id}: spammer@pod.example (local), open"
    assert "2 pending of 2 reports · 2 reporters · 0 list matches" in lines[1]
    assert "Account: active" in text.output
    assert text.output.count("Placeholder: spam") == 2
    # (the reporter is named as such: "of a post by reporter0" would read as the post's author)
    assert re.search(r"report \d+ by reporter0@\S+ of a post, ", text.output), text.output
    assert "A placeholder post about widgets." in text.output
    assert "note by cli:" in text.output and "Placeholder: asked the author to stop." in text.output

    shown = json.loads(podmod("case", "show", str(case_id), "--json").output)
    assert shown["id"] == case_id and shown["status"] == "open" and shown["outcome"] is None
    assert shown["reporters"] == 2 and len(shown["signals"]) == 2
    assert shown["account_state"] == {"locked": False, "closed": False, "roles": []}
    assert [d["action"] for d in shown["decisions"]] == ["note"]


def test_the_pods_words_print_without_the_control_characters_a_terminal_acts_on(config, state, pod):
    """A reason, a post and a name are the words of the pod's users and of remote accounts: an
    escape sequence in them, printed to the podmin's terminal, would retitle its window, hide
    text or write the clipboard, and a direction override would turn the line around. `podmod
    case show` and `podmod cases` print the words alone, each field on its line."""
    reporter = pod.person("reporter")
    author = pod.person("author", "remote.example", full_name="Placeholder\x1b]0;Retitled\x07 Name")
    post = pod.post(author, "Placeholder post\x1b[8m hidden\x1b[0m\r\nsecond line\x9b2J")
    reason = "Placeholder\x1b]52;c;cGxhY2Vob2xkZXI=\x07 reason \u202edesrever\u202c\x07"
    pod.report(reporter, "Post", post, reason)
    podmod("read", "--once")
    drain(config)
    [case] = json.loads(podmod("cases", "--json").output)

    shown = podmod("case", "show", str(case["id"]))
    table = podmod("cases")

    assert shown.exit_code == 0, shown.output
    for output in (shown.output, table.output):
        assert not CONTROL.search(output.replace("\n", "")), repr(output)
    assert "Placeholder Name" in shown.output
    assert "reason: Placeholder reason desrever\n" in shown.output
    assert "text: Placeholder post hidden second line\n" in shown.output
    assert "author@remote.example (remote)" in table.output


def test_case_review_dismiss_reopen_and_note_from_the_cli(config, state, pod):
    case_id = reported(config, pod)

    reviewed = podmod("case", "review", str(case_id), "--reason", "placeholder: read it")
    assert reviewed.exit_code == 0, reviewed.output
    assert f"case {case_id} is closed: reviewed, no action" in reviewed.output
    assert pod.conn.execute("SELECT bool_and(reviewed) AS b FROM reports").fetchone()["b"]
    assert f"Case {case_id}: spammer@pod.example (local), closed: reviewed, no action" in (
        podmod("case", "show", str(case_id)).output
    )

    reopened = podmod("case", "reopen", str(case_id), "--reason", "placeholder: second look")
    assert reopened.output.strip() == f"Case {case_id} is open again."
    dismissed = podmod("case", "dismiss", str(case_id), "--reason", "placeholder: not spam")
    assert dismissed.output.strip() == f"Case {case_id} (spammer@pod.example) is dismissed."
    again = podmod("case", "dismiss", str(case_id), "--reason", "x", "--json")
    assert json.loads(again.output)["changed"] is False
    noted = podmod("case", "note", str(case_id), "Placeholder: a note.")
    assert noted.exit_code == 0 and noted.output.strip() == "Note added."

    assert decision_actions(state) == ["mark_reviewed", "reopen", "dismiss", "note"]
    state.rollback()
    actors = {r["actor"] for r in state.execute("SELECT actor FROM podmod.decisions")}
    assert len(actors) == 1 and actors.pop().startswith("cli:")


def test_case_commands_refuse_bad_input_in_one_sentence(config, state, pod):
    case_id = reported(config, pod)
    missing = podmod("case", "show", "999999")
    assert missing.exit_code == 4
    assert missing.output.strip() == "podmod: There is no case 999999; see `podmod cases`."
    empty = podmod("case", "note", str(case_id), "   ")
    assert empty.exit_code == 5 and "The note is empty" in empty.output
    assert podmod("case", "review", str(case_id)).exit_code == 2  # --reason is required
    assert decision_actions(state) == []


def test_lock_close_locks_and_closes_the_accounts_open_case(config, state, pod):
    case_id = reported(config, pod)

    result = podmod("lock", "spammer", "--reason", "placeholder spam", "--close")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"spammer@pod.example is now locked and case {case_id} is closed: locked "
        "(2 reports marked reviewed in diaspora*)."
    )
    assert decision_actions(state) == ["lock"]
    assert pod.conn.execute("SELECT bool_and(reviewed) AS b FROM reports").fetchone()["b"]
    shown = json.loads(podmod("case", "show", str(case_id), "--json").output)
    assert (shown["status"], shown["outcome"]) == ("resolved", "locked")
    assert shown["reporters"] == 2 and shown["account_state"]["locked"] is True


def test_lock_close_without_an_open_case_refuses_and_locks_nothing(config, state, pod):
    pod.person("quiet")
    result = podmod("lock", "quiet", "--reason", "x", "--close")
    assert result.exit_code == 5
    assert result.output.strip() == (
        "podmod: quiet@pod.example has no open case to close; lock it without --close."
    )
    assert pod.conn.execute("SELECT locked_at FROM users").fetchone()["locked_at"] is None
    assert decision_actions(state) == []


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
    # (the units hide /home with ProtectHome=tmpfs and show the pod's uploads folder through
    # BindReadOnlyPaths: the sentence names the setting the podmin changes, as README says)
    assert "does not exist" in check["detail"] and "BindReadOnlyPaths" in check["detail"], check
    missing.mkdir(parents=True)
    (missing / "photo.jpg").write_bytes(b"placeholder")
    check = uploads_check()
    assert check["status"] == "ok" and "readable" in check["detail"], check
