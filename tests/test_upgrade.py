"""An upgrade as a podmin lives it: a database an older podmod filled (its schema migrated only so
far, its rows written as that podmod wrote them), then `podmod init` and the current code on it.

No test here needs git history: the older schema is the shipped migrations up to a number
(store.migrate's up_to), and the older rows are written here in the shapes the older code wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from podmod import store
from podmod.config import load_config
from podmod.lists import minisign
from podmod.lists.versions import READER
from podmod.web import create_app
from tests.helpers import cases_json, podmod
from tests.test_lists import lists as lists  # (fixture)
from tests.test_lists import sync, versions_of
from tests.test_web import audit_rows

PUBLIC_URL = "https://pod.example/podmod/"


def older_schema(pod_url: str, version: int) -> psycopg.Connection:
    """A connection to the test's database with podmod's schema as an older podmod left it: the
    migrations up to `version` applied, none after."""
    conn = psycopg.connect(pod_url, row_factory=dict_row)
    store.migrate(conn, up_to=version)
    applied = store.applied_versions(conn)
    conn.commit()
    assert max(applied) == version, applied
    return conn


def test_a_staff_mail_an_older_podmod_queued_is_sent_after_the_upgrade(env, pod_url, smtp_server):
    """The staff's mail (digest) rows an older podmod left in the outbox hold its context then:
    without the parts added since (stale lists, held locks, withdrawn versions), each attempt
    failed, blaming a template the podmin never wrote."""
    Path(env["PODMOD_CONFIG"]).write_text(
        f'[web]\npublic_url = "{PUBLIC_URL}"\n'
        f'[mail]\nsmtp_url = "{smtp_server.url()}"\nfrom = "podmod@pod.example"\n'
    )
    # As podmod 0018 (2026-12-03) wrote it: before stale lists, held locks and withdrawn versions.
    payload = {
        "held": [
            {
                "url": PUBLIC_URL + "lists/core/versions/2",
                "list": "core",
                "reason": "it removes 5 of 6 entries (83%), more than the 50% allowed",
                "version": 2,
            }
        ],
        "cases": [
            {
                "id": 15,
                "url": PUBLIC_URL + "cases/15",
                "account": "placeholder@far.example",
                "previous": 60,
                "priority": 90,
            }
        ],
        "locked": [],
        "appeals": [],
        "failing": [],
        "lists_url": PUBLIC_URL + "lists",
        "queue_url": PUBLIC_URL,
        "case_count": 1,
        "held_count": 1,
        "appeal_count": 0,
        "locked_count": 0,
        "min_priority": 30,
        "failing_count": 0,
    }
    with older_schema(env["PODMOD_DATABASE_URL"], 18) as conn:
        digest = conn.execute(
            "INSERT INTO podmod.digests (events, recipients) VALUES (2, 1) RETURNING id"
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO podmod.outbox (channel, target, event_type, digest_id, payload,"
            " message_id) VALUES ('mail', 'admin@mail.example', 'digest', %s, %s,"
            " '<podmod.1.placeholder@pod.example>')",
            (digest, json.dumps(payload)),
        )
        conn.commit()
        store.migrate(conn)

    result = podmod("notify", "deliver")

    assert result.exit_code == 0, result.output
    assert [m["Subject"] for m in smtp_server.messages] == [
        "podmod: 1 case to look at, 1 list version held"
    ], result.output
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "placeholder@far.example" in text and "core" in text, text


def test_a_version_held_before_the_upgrade_and_rejected_after_it_stays_rejected(lists, pod, state):
    """A version an older podmod held was read by its older reader (list_versions.reader): a
    podmin rejecting it after the upgrade saw the next sync read the same file again, as podmod
    reads files differently now, and hold it anew as a new version, the staff told again (cron's
    exit code 4), where the rejected file stays rejected."""
    rows = [f"account,u{n}@far.example,," for n in range(4)]
    lists.write("core", rows)
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", rows[:1])
    code, output = sync()
    assert code == 4 and "version 2 (podmod) held for approval" in output, output
    # As the podmod before this one's reader read them.
    state.execute("UPDATE podmod.list_versions SET reader = %s", (READER - 1,))
    state.commit()

    rejected = podmod("lists", "reject", "core", "2", "--reason", "placeholder: not meant")
    code, output = sync()
    cron = podmod("lists", "sync", "--cron")

    assert rejected.exit_code == 0, rejected.output
    assert code == 0 and "version 2 was rejected by cli:" in output, output
    assert cron.exit_code == 0, cron.output
    assert versions_of(state, "core") == [(1, "applied"), (2, "rejected")]


# The schema of the podmod that landed on 2026-12-07's morning (0029_list_applied_settings): the
# rows below are written as that podmod wrote them, shapes of JSON details included (read from a
# live install of it). Every migration after it runs over them, future ones too.
OLDER = 29
PASSWORD = "placeholder password 1"
HELD_FILE = b"kind,value,label,comment\naccount,remote@far.example,campaign,placeholder\n"
OLDER_ROWS = """
INSERT INTO podmod.lists (id, name, url, policy, etag, current_version, last_attempt_at,
    last_success_at, origin, applied_settings) VALUES
 (1, 'core', 'https://lists.example/core.csv', 'review', '"62-18ef"', 1, now(), now(),
  'subscription', jsonb_build_object('kinds', ARRAY['account', 'pod', 'hashtag', 'phrase', 'url',
  'pdq', 'sha256'], 'format', '', 'labels', '{}'::text[], 'policy', 'review', 'severity', '',
  'public_key', %(key)s, 'lock_labels', '{}'::text[], 'require_canary', '')),
 (2, 'this-pod', 'podmod:this-pod', 'review', NULL, 1, now(), now(), 'local', NULL),
 (3, 'broken', 'https://lists.example/missing.csv', 'review', NULL, NULL, now(), NULL,
  'subscription', NULL);
UPDATE podmod.lists SET last_error = 'List ''broken'' could not be fetched: placeholder.',
    last_error_at = now() WHERE id = 3;
SELECT setval('podmod.lists_id_seq', 3);
INSERT INTO podmod.list_versions (list_id, number, sha256, status, entries, added, removed, format,
    signed_comment, held_reason, held_body, applied_at, reader, signed_at, signed_file) VALUES
 (1, 1, repeat('a', 64), 'applied', 3, 3, 0, 'podmod', 'timestamp:1796670300' || chr(9)
  || 'file:core.csv' || chr(9) || 'hashed', NULL, NULL, now(), 10, now() - interval '1 hour',
  'core.csv'),
 (1, 2, repeat('b', 64), 'held', 1, 0, 2, 'podmod', 'timestamp:1796670400' || chr(9)
  || 'file:core.csv' || chr(9) || 'hashed',
  'it removes 2 of 3 entries (67%%), more than the 50%% allowed', %(held)s, NULL, 10, now(),
  'core.csv'),
 (2, 1, repeat('c', 64), 'applied', 1, 1, 0, 'podmod', NULL, NULL, NULL, now(), 10, NULL, NULL);
INSERT INTO podmod.list_entries (list_id, kind, value, label, comment, line, added_in, labels)
VALUES (1, 'account', 'remote@far.example', 'campaign', 'placeholder', 2, 1, '{campaign}'),
       (1, 'pod', 'campaign.example', 'campaign', 'placeholder', 3, 1, '{campaign}'),
       (1, 'phrase', 'placeholder campaign text', 'campaign', 'placeholder', 4, 1, '{campaign}'),
       (2, 'account', %(local)s, 'spam', 'Placeholder: spam', NULL, 1, '{spam}');
INSERT INTO podmod.cases (id, subject, person_id, account, local, status, resolution,
    first_signal_at, last_signal_at, closed_at) VALUES
 (1, 'person:' || %(remote_id)s, %(remote_id)s, 'remote@far.example', false, 'open', NULL, now(),
  now(), NULL),
 (2, 'person:' || %(local_id)s, %(local_id)s, %(local)s, true, 'resolved', 'locked', now(), now(),
  now()),
 (3, 'person:' || %(appellant_id)s, %(appellant_id)s, %(appellant)s, true, 'open', NULL, now(),
  now(), NULL);
SELECT setval('podmod.cases_id_seq', 3);
INSERT INTO podmod.signals (case_id, kind, report_id, item_type, item_id, item_guid,
    reporter_user_id, reporter, reason, snapshot, details, reviewed, reviewed_at, reviewed_by,
    occurred_at, person_id, list_id, entry_kind, entry_value) VALUES
 (1, 'report', %(report_remote)s, 'Post', %(post_remote)s, 'guid-remote', %(reporter_user)s,
  %(reporter)s, 'Placeholder: propaganda', 'Placeholder campaign text, posted everywhere.',
  jsonb_build_object('post_type', 'StatusMessage', 'item_created_at', now()::text), false, NULL,
  NULL, now(), NULL, NULL, NULL, NULL),
 (1, 'list', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '{"list": "core", "entry": "account:remote@far.example", "label": "campaign",
    "policy": "review", "version": 1, "severity": ""}', false, NULL, NULL, now(),
  %(remote_id)s, 1, 'account', 'remote@far.example'),
 (1, 'content', NULL, 'Post', %(post_remote)s, 'guid-remote', NULL, NULL, NULL,
  'Placeholder campaign text, posted everywhere.',
  '{"list": "core", "entry": "phrase:placeholder campaign text", "field": "text",
    "label": "campaign", "policy": "review",
    "excerpt": "Placeholder campaign text, posted everywhere.", "version": 1,
    "post_type": "StatusMessage"}', false, NULL, NULL, now(), %(remote_id)s, 1, 'phrase',
  'placeholder campaign text'),
 (2, 'report', %(report_local)s, 'Post', %(post_local)s, 'guid-local', %(reporter_user)s,
  %(reporter)s, 'Placeholder: spam', 'Placeholder: buy widgets.',
  jsonb_build_object('post_type', 'StatusMessage', 'item_created_at', now()::text), true, now(),
  'podmin@pod.example', now(), NULL, NULL, NULL, NULL),
 (2, 'list', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  jsonb_build_object('list', 'this-pod', 'entry', 'account:' || %(local)s, 'label', 'spam',
    'policy', 'review', 'version', 1, 'severity', ''), false, NULL, NULL, now(), %(local_id)s, 2,
  'account', %(local)s),
 (3, 'appeal', NULL, NULL, NULL, NULL, NULL, NULL, 'Placeholder: I am no spammer.', NULL, '{}',
  false, NULL, NULL, now(), %(appellant_id)s, NULL, NULL, NULL);
INSERT INTO podmod.appeals (case_id, signal_id, person_id, user_id, account)
SELECT 3, id, %(appellant_id)s, %(appellant_user)s, %(appellant)s FROM podmod.signals
WHERE kind = 'appeal';
SELECT podmod.refresh_cases(ARRAY[1, 2, 3]::bigint[]);
INSERT INTO podmod.decisions (case_id, person_id, account, action, actor, source, reason, details)
VALUES (2, %(local_id)s, %(local)s, 'lock', 'podmin@pod.example', 'web', 'Placeholder: spam',
        '{"outcome": "locked", "reports": [%(report_local)s]}'),
       (3, %(appellant_id)s, %(appellant)s, 'lock', 'cli:root', 'cli', 'Placeholder: spam',
        '{}');
INSERT INTO podmod.audit (actor, action, case_id, account, source, reason, details) VALUES
 ('podmod', 'list_apply', NULL, NULL, 'list:core',
  'version 1 applied (podmod): 3 entries (+3 -0); 1 new matches, 0 retracted',
  '{"url": "https://lists.example/core.csv", "list": "core"}'),
 ('podmod', 'list_hold', NULL, NULL, 'list:core',
  'version 2 held: it removes 2 of 3 entries (67%%), more than the 50%% allowed; approve it with'
  || ' `podmod lists approve core 2`', '{"url": "https://lists.example/core.csv", "list": "core"}'),
 ('cli:root', 'list_add', NULL, %(local)s, 'cli', 'Placeholder: spam',
  jsonb_build_object('list', 'this-pod', 'entry', 'account:' || %(local)s, 'label', 'spam',
    'version', 1, 'matches_added', 1, 'matches_retracted', 0)),
 ('podmin@pod.example', 'lock', 2, %(local)s, 'web', 'Placeholder: spam',
  '{"outcome": "locked", "reports": [%(report_local)s]}'),
 ('podmin@pod.example', 'note', 1, 'remote@far.example', 'web', 'Placeholder note', '{}'),
 ('podmin@pod.example', 'sign_in', NULL, NULL, 'web', 'signed in',
  jsonb_build_object('ip', '127.0.0.1', 'user_id', %(admin_user)s));
INSERT INTO podmod.case_alerts (case_id, priority) VALUES (1, 60);
INSERT INTO podmod.reporter_feedback DEFAULT VALUES;
INSERT INTO podmod.reporter_notices (case_id, reporter_user_id, outcome, result, reports)
VALUES (2, %(reporter_user)s, 'locked', 'before', 1);
INSERT INTO podmod.events (id, type, case_id, account, facts, staff_mail) VALUES
 ('17bbae2a-b94c-4a7b-96ef-7b62770b8c01', 'account.locked', 2, %(local)s,
  '{"by": "staff", "reason": "Placeholder: spam", "source": "web"}', false);
INSERT INTO podmod.outbox (channel, target, event_type, event_id, payload) VALUES
 ('webhook', 'https://hooks.example/podmod', 'account.locked',
  '17bbae2a-b94c-4a7b-96ef-7b62770b8c01',
  jsonb_build_object('id', '17bbae2a-b94c-4a7b-96ef-7b62770b8c01', 'type', 'account.locked',
    'case', jsonb_build_object('id', 2, 'url', 'https://pod.example/podmod/cases/2'),
    'account', jsonb_build_object('handle', %(local)s, 'url', 'https://pod.example/podmod/'),
    'details', '{"by": "staff", "source": "web"}'::jsonb, 'created_at', '2026-12-07T08:00:00Z'));
INSERT INTO podmod.intake_batches (report_ids, enqueued_at, attempts, done_at, ingested)
VALUES (ARRAY[%(report_remote)s, %(report_local)s], now(), 1, now(), 2);
INSERT INTO podmod.watermarks (name, value) VALUES ('reports', %(report_local)s);
INSERT INTO podmod.scan_runs (id, reason, list_id, version, created_by, enqueued_at, attempts,
    done_at) VALUES (1, 'list_version', 1, 1, 'lists', now(), 1, now());
INSERT INTO podmod.scan_run_tables (run_id, item_type, cursor, top, items, matched, done_at)
VALUES (1, 'Post', %(post_local)s, %(post_local)s, 2, 1, now());
INSERT INTO podmod.web_sessions (id_hash, user_id, password_salt, stage)
VALUES (sha256(convert_to(%(sid)s, 'UTF8')), %(admin_user)s, %(salt)s, 'signed_in');
"""


def test_what_an_older_podmod_stored_reads_after_the_upgrade(env, pod, monkeypatch):
    """Cases with a signal of each kind, an appeal, decisions, lists with a version applied and one
    held (before held versions kept their changes, or could be rejected), entries, the audit log,
    the outbox and a signed-in session, all as the podmod of schema OLDER wrote them: after
    `podmod init`, the current code reads every one, and the held version can still be approved."""
    key = minisign.SecretKey.generate().public_key.to_string()
    Path(env["PODMOD_CONFIG"]).write_text(
        f'secret_key = "{"5e" * 32}"\n'
        '[[lists]]\nname = "core"\nurl = "https://lists.example/core.csv"\n'
        f'public_key = "{key}"\n'
        '[[lists]]\nname = "broken"\nurl = "https://lists.example/missing.csv"\n'
        f'public_key = "{key}"\n'
    )
    admin = pod.person("podmin", password=PASSWORD, roles=("admin",))
    reporter = pod.person("reporter")
    remote = pod.person("remote", "far.example")
    local = pod.person("spammer")
    appellant = pod.person("appellant")
    post_remote = pod.post(remote, "Placeholder campaign text, posted everywhere.")
    post_local = pod.post(local, "Placeholder: buy widgets.")
    report_remote = pod.report(reporter, "Post", post_remote, "Placeholder: propaganda")
    report_local = pod.report(reporter, "Post", post_local, "Placeholder: spam")
    pod.mark_reviewed("Post", post_local)
    pod.conn.execute(
        "UPDATE users SET locked_at = now() WHERE id = ANY(%s)",
        ([local.user_id, appellant.user_id],),
    )
    salt = pod.conn.execute(
        "SELECT left(encrypted_password, 29) AS salt FROM users WHERE id = %s", (admin.user_id,)
    ).fetchone()["salt"]
    sid = "placeholder-session-id-of-an-older-podmod"
    with older_schema(env["PODMOD_DATABASE_URL"], OLDER) as conn:
        psycopg.ClientCursor(conn).execute(  # (many statements, client-side values)
            OLDER_ROWS,
            {
                "key": key,
                "held": HELD_FILE,
                "local": local.handle,
                "local_id": local.id,
                "remote_id": remote.id,
                "appellant": appellant.handle,
                "appellant_id": appellant.id,
                "appellant_user": appellant.user_id,
                "reporter": reporter.handle,
                "reporter_user": reporter.user_id,
                "report_remote": report_remote,
                "report_local": report_local,
                "post_remote": post_remote,
                "post_local": post_local,
                "admin_user": admin.user_id,
                "salt": salt,
                "sid": sid,
            },
        )
        conn.commit()

    init = podmod("init")

    assert init.exit_code == 0, init.output
    with psycopg.connect(env["PODMOD_DATABASE_URL"]) as conn:
        counted = conn.execute("SELECT * FROM podmod.content_entry_authors").fetchall()
    assert counted == [(1, "phrase", "placeholder campaign text", remote.id)], counted
    cases = {
        case["id"]: case for case in json.loads(podmod("cases", "--json", "--status", "all").output)
    }
    assert {n: (c["status"], c["outcome"]) for n, c in cases.items()} == {
        1: ("open", None),
        2: ("resolved", "locked"),
        3: ("open", None),
    }, cases
    shown = json.loads(podmod("case", "show", "1", "--json").output)
    assert sorted(s["kind"] for s in shown["signals"]) == ["content", "list", "report"], shown
    assert [
        s["kind"] for s in json.loads(podmod("case", "show", "3", "--json").output)["signals"]
    ] == ["appeal"]
    listed = {row["name"]: row for row in json.loads(podmod("lists", "show", "--json").output)}
    assert (listed["core"]["version"], listed["core"]["entries"]) == (1, 3), listed["core"]
    assert listed["core"]["held"] == [2], listed["core"]
    assert listed["this-pod"]["version"] == 1 and listed["broken"]["version"] is None, listed

    app = create_app(load_config())
    try:
        client = app.test_client()
        with client.session_transaction() as session:
            session["sid"] = sid  # (the cookie the older podmod gave the podmin)
        pages = {
            path: client.get(path)
            for path in (
                "/",
                "/cases/1",
                "/cases/2",
                "/cases/3",
                "/lists",
                "/audit",
                "/lists/core/versions/1",
                "/lists/core/versions/2",
                "/deliveries",
            )
        }
    finally:
        app.extensions["podmod"].close()
    assert {path: page.status_code for path, page in pages.items()} == dict.fromkeys(pages, 200)
    text = {path: page.get_data(as_text=True) for path, page in pages.items()}
    assert (
        "Placeholder: propaganda" in text["/cases/1"]
        and "phrase:placeholder campaign text" in (text["/cases/1"])
    )
    assert "Placeholder: I am no spammer." in text["/cases/3"]
    assert "account:remote@far.example" in text["/lists/core/versions/1"]
    held = text["/lists/core/versions/2"]
    assert "pod:campaign.example" in held and "Approve" in held and "Reject" in held, held
    assert "Placeholder note" in text["/audit"] and "version 2 held" in text["/audit"]
    assert "webhook: account.locked" in text["/deliveries"], text["/deliveries"]

    approved = podmod("lists", "approve", "core", "2")

    assert approved.exit_code == 0, approved.output
    assert "version 2 approved by cli:" in approved.output, approved.output
    listed = {row["name"]: row for row in json.loads(podmod("lists", "show", "--json").output)}
    assert (listed["core"]["version"], listed["core"]["entries"], listed["core"]["held"]) == (
        2,
        1,
        [],
    ), listed["core"]


def test_a_migration_that_fails_on_the_database_is_one_sentence_and_changes_nothing(env):
    """A migration the database refuses (here an object it creates is there already; as well a
    constraint over rows that break it) was a traceback that named no migration nor said that
    nothing was applied."""
    with older_schema(env["PODMOD_DATABASE_URL"], OLDER) as conn:
        conn.execute("CREATE TABLE podmod.held_changes (placeholder integer)")
        conn.commit()

        result = podmod("init")

        assert result.exit_code == 1, result.output
        assert result.output == (
            "podmod: Migration 0031_held_changes failed on this database (relation "
            '"held_changes" already exists); nothing was changed: podmod\'s schema stays at '
            f"migration {OLDER:04d}. Reinstall the podmod you ran before, which runs on it, and "
            "report this sentence to podmod's maintainers.\n"
        ), result.output
        assert max(store.applied_versions(conn)) == OLDER  # (0030, before it, undone too)
        assert conn.execute(
            "SELECT to_regprocedure('podmod.entry_text(text, text, text)') AS made"
        ).fetchone() == {"made": None}


def test_a_version_held_before_the_upgrade_held_again_tells_no_one_anew(
    lists, pod, state, monkeypatch
):
    """Where the new podmod reads list files differently, the first sync reads the held file
    again and holds it as the next version: it replaces the one held before, of which the staff
    and cron were told, where it was a new hold, mailed by cron (exit code 4) and in the staff's
    mail again, for the same file."""
    monkeypatch.setenv("PODMOD_MAIL_SMTP_URL", "smtp://127.0.0.1:1")
    monkeypatch.setenv("PODMOD_MAIL_FROM", "podmod@pod.example")
    monkeypatch.setenv("PODMOD_WEB_PUBLIC_URL", "https://pod.example/podmod/")
    rows = [f"account,u{n}@far.example,," for n in range(4)]
    lists.write("core", rows)
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", rows[:1])
    held = podmod("lists", "sync", "--cron")
    assert held.exit_code == 4, held.output
    # As the podmod before this one's reader read them.
    state.execute("UPDATE podmod.list_versions SET reader = %s", (READER - 1,))
    state.commit()

    again = podmod("lists", "sync", "--cron")

    assert again.exit_code == 0, again.output
    assert "version 3 (podmod) held for approval" in again.output, again.output
    assert "it replaces version 2" in again.output, again.output
    assert versions_of(state, "core") == [(1, "applied"), (2, "superseded"), (3, "held")]
    told = state.execute(
        "SELECT facts FROM podmod.events WHERE type = 'list.held' ORDER BY created_at, id"
    ).fetchall()
    state.rollback()
    assert [row["facts"].get("replaces") for row in told] == [None, 2], told


def test_a_list_read_again_after_the_upgrade_with_the_same_entries_is_no_new_version(
    lists, pod, state
):
    """podmod reads each list's file again after an upgrade that reads files differently
    (list_versions.reader). A file the new reader reads into the same entries, counted alike, is
    not a version: no "+0 -0" version nor audit entry for every list, once per upgrade; the
    version in force is marked read by the new reader, and the next sync no longer reads it."""
    pod.person("remote", "far.example")
    rows = ["account,remote@far.example,campaign,placeholder", "pod,other.example,,"]
    lists.write("core", rows)
    lists.subscribe("core")
    assert sync()[0] == 0
    state.execute("UPDATE podmod.list_versions SET reader = %s", (READER - 1,))
    state.commit()
    audited = len(audit_rows(state))

    code, output = sync()
    again, then = sync()

    assert code == 0 and "core: unchanged (same entries, read as podmod reads files now)" in output
    assert again == 0 and "core: unchanged" in then and "read as" not in then, then
    assert versions_of(state, "core") == [(1, "applied")]
    [version] = state.execute("SELECT reader FROM podmod.list_versions").fetchall()
    assert version["reader"] == READER
    assert len(audit_rows(state)) == audited, audit_rows(state)[audited:]
    [case] = cases_json("open")
    assert case["account"] == "remote@far.example" and len(case["signals"]) == 1, case
