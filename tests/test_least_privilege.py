"""podmod runs as the role deploy/grants.sql creates, and PostgreSQL refuses it anything else."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from podmod.config import load_config
from tests.helpers import cases_json, drain, podmod

GRANTS = Path(__file__).parent.parent / "deploy" / "grants.sql"
UNINSTALL = GRANTS.with_name("uninstall.sql")


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.split("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@pytest.fixture
def podmod_role(env, pod_url, monkeypatch) -> str:
    with psycopg.connect(pod_url, autocommit=True) as admin:
        admin.execute(GRANTS.read_text())
    url = as_role(pod_url, "podmod")
    monkeypatch.setenv("PODMOD_DATABASE_URL", url)
    return url


def test_the_whole_flow_runs_as_the_least_privilege_role(podmod_role, pod, tmp_path, env):
    from podmod import actions
    from podmod.lists import minisign

    reporter = pod.person("reporter")
    author = pod.person("author")
    post = pod.post(author, "text")
    pod.report(reporter, "Post", post, "spam")
    other = pod.post(pod.person("second"), "more text")
    pod.report(reporter, "Post", other, "spam")
    listed = pod.person("listed", "far.example")
    secret = minisign.SecretKey.generate()
    body = f"kind,value,label,comment\naccount,{listed.handle},spam,\n".encode()
    (tmp_path / "core.csv").write_bytes(body)
    (tmp_path / "core.csv.minisig").write_text(minisign.sign(body, secret))
    Path(env["PODMOD_CONFIG"]).write_text(
        f'[[lists]]\nname = "core"\nurl = "{(tmp_path / "core.csv").as_uri()}"\n'
        f'public_key = "{secret.public_key.to_string()}"\npolicy = "lock"\n'
    )

    init = podmod("init")
    assert init.exit_code == 0, init.output
    assert podmod("read", "--once").exit_code == 0
    drain(load_config())
    assert sorted(c["account"] for c in cases_json("open")) == [
        "author@pod.example",
        "second@pod.example",
    ]
    assert podmod("lock", "author@pod.example", "--reason", "x").exit_code == 0
    assert podmod("unlock", "author@pod.example", "--reason", "y").exit_code == 0
    synced = podmod("lists", "sync")
    assert synced.exit_code == 0, synced.output
    assert "listed@far.example" in [c["account"] for c in cases_json("open")]
    # This pod's own list, by the address of a comment (the pod's posts, comments and people
    # read; the entry and its index's summary written in podmod's schema).
    comment = pod.comment(listed, other)
    guids = pod.conn.execute(
        "SELECT p.guid AS post, c.guid AS comment FROM comments c JOIN posts p"
        " ON p.id = c.commentable_id WHERE c.id = %s",
        (comment,),
    ).fetchone()
    address = f"https://pod.example/posts/{guids['post']}#{guids['comment']}"
    added = podmod("lists", "add", address, "--reason", "placeholder")
    assert added.exit_code == 0 and "shows account:listed@far.example" in added.output, added.output
    [second_case] = [c for c in cases_json("open") if c["account"] == "second@pod.example"]
    actions.mark_reviewed(load_config(), case_id=second_case["id"], actor="test", source="test")
    pod.mark_reviewed("Post", post)
    assert podmod("read", "--once").exit_code == 0
    assert [c["account"] for c in cases_json("open")] == ["listed@far.example"]
    reviewed = pod.conn.execute("SELECT bool_and(reviewed) AS all FROM reports").fetchone()
    assert reviewed["all"] is True
    with psycopg.connect(podmod_role) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("podmod",)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE users SET email = 'x@example.org'",
        "UPDATE users SET encrypted_password = ''",
        "UPDATE reports SET text = 'changed'",
        "UPDATE people SET closed_account = true",
        "UPDATE pods SET blocked = true",
        "DELETE FROM posts",
        "INSERT INTO account_deletions (person_id) VALUES (1)",
        "SELECT reset_password_token FROM users",
        "SELECT unconfirmed_email FROM users",
        "SELECT serialized_private_key FROM users",
        "CREATE TABLE public.intruder (id int)",
    ],
)
def test_anything_else_in_the_pods_tables_is_refused(podmod_role, statement):
    with psycopg.connect(podmod_role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_two_writable_columns_are_writable(podmod_role, pod):
    pod.person("someone")
    with psycopg.connect(podmod_role) as conn:
        conn.execute("UPDATE users SET locked_at = now() WHERE id = 1")
        conn.execute("UPDATE reports SET reviewed = true WHERE id = 1")


def test_uninstall_sql_removes_everything_grants_sql_and_init_made(
    tmp_path, redis_url, monkeypatch
):
    """On a PostgreSQL of its own: role podmod is cluster-wide, and other tests' databases hold
    grants to it on a shared server."""
    from podmod.embedded import start_postgres
    from podmod.fixtures import diaspora_schema_sql

    server = start_postgres(tmp_path / "pg")
    try:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE diaspora_production")
        pod_url = server.url("diaspora_production")
        with psycopg.connect(pod_url, autocommit=True) as admin:
            admin.execute(diaspora_schema_sql())
            admin.execute(GRANTS.read_text())
        monkeypatch.setenv("PODMOD_DATABASE_URL", as_role(pod_url, "podmod"))
        monkeypatch.setenv("PODMOD_REDIS_URL", redis_url)
        monkeypatch.setenv("PODMOD_CONFIG", str(tmp_path / "none.toml"))
        (tmp_path / "none.toml").write_text("")
        assert podmod("init").exit_code == 0

        with psycopg.connect(pod_url, autocommit=True) as admin:
            admin.execute(UNINSTALL.read_text())
            assert admin.execute("SELECT to_regnamespace('podmod')").fetchone() == (None,)
            roles = admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'podmod'")
            assert roles.fetchone() == (0,)
            assert admin.execute("SELECT count(*) FROM reports").fetchone() == (0,)
            admin.execute(UNINSTALL.read_text())  # a second run changes nothing and says nothing
    finally:
        server.stop()
