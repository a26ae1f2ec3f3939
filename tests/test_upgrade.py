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
from podmod.lists.versions import READER
from tests.helpers import podmod
from tests.test_lists import lists as lists  # (fixture)
from tests.test_lists import sync, versions_of

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
