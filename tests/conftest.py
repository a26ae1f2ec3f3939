"""Shared fixtures: real PostgreSQL and real Redis for every test.

PODMOD_TEST_DATABASE_URL (a server where databases may be created, e.g.
postgresql://postgres@127.0.0.1:5432/postgres) and PODMOD_TEST_REDIS_URL (a Redis database the
tests may flush, e.g. redis://127.0.0.1:6379/15) choose existing servers; without them the harness
starts throwaway ones (podmod.embedded). Each test gets a fresh database holding diaspora*'s tables
and an empty Redis database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg.rows import dict_row

from podmod import store
from podmod.config import Config, load_config
from podmod.fixtures import diaspora_schema_sql
from tests.diaspora_pod import DiasporaPod

pytest_plugins = ["tests.notify_servers"]  # smtp_server, receiver: real servers on loopback


def database_url(server_url: str, database: str) -> str:
    """The same server, another database."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    pg_url = os.environ.get("PODMOD_TEST_DATABASE_URL")
    redis_url = os.environ.get("PODMOD_TEST_REDIS_URL")
    started = []
    workdir = Path(tempfile.mkdtemp(prefix="podmod-test-"))
    if not pg_url:
        from podmod.embedded import start_postgres

        postgres = start_postgres(workdir / "pg")
        started.append(postgres)
        pg_url = postgres.url("postgres")
    if not redis_url:
        from podmod.embedded import start_redis

        server = start_redis(workdir / "redis")
        started.append(server)
        redis_url = server.url(db=1)
    yield {"postgres": pg_url, "redis": redis_url}
    for server in reversed(started):
        server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(services: dict[str, str]) -> Iterator[str]:
    """A database with diaspora*'s tables, copied for each test."""
    name = f"podmod_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(services["postgres"], autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(database_url(services["postgres"], name), autocommit=True) as conn:
        conn.execute(diaspora_schema_sql())
    yield name
    with psycopg.connect(services["postgres"], autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def database_from(server_url: str, template: str) -> Iterator[str]:
    """A fresh database copied from `template`, dropped afterwards; its URL."""
    name = f"podmod_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield database_url(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pod_url(services: dict[str, str], template_database: str) -> Iterator[str]:
    """A fresh diaspora* database for this test."""
    with database_from(services["postgres"], template_database) as url:
        yield url


@pytest.fixture
def redis_url(services: dict[str, str]) -> Iterator[str]:
    conn = redis.Redis.from_url(services["redis"])
    conn.flushdb()
    yield services["redis"]
    conn.flushdb()
    conn.close()


@pytest.fixture
def env(
    pod_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """PODMOD_* variables pointing at this test's services (the way a podmin configures podmod)."""
    config_file = tmp_path / "podmod.toml"
    config_file.write_text("# test configuration: everything comes from the environment\n")
    values = {
        "PODMOD_CONFIG": str(config_file),
        "PODMOD_DATABASE_URL": pod_url,
        "PODMOD_REDIS_URL": redis_url,
        "PODMOD_READER_RESTART_GRACE": "0.5",
    }
    for name in list(os.environ):
        if name.startswith("PODMOD_") and not name.startswith("PODMOD_TEST_"):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def config(env: dict[str, str]) -> Config:
    return load_config()


@pytest.fixture
def pod(pod_url: str) -> Iterator[DiasporaPod]:
    """Builds a believable diaspora* pod: people, users, posts, comments, reports."""
    with psycopg.connect(pod_url, autocommit=True, row_factory=dict_row) as conn:
        yield DiasporaPod(conn)


@pytest.fixture
def state(config: Config) -> Iterator[psycopg.Connection]:
    """podmod's own schema, migrated, and a connection to it."""
    with psycopg.connect(config.state_database_url, row_factory=dict_row) as conn:
        store.migrate(conn)
        yield conn


@pytest.fixture
def rconn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()
