"""Connections to the two databases podmod uses: the pod's (diaspora*) and podmod's own state.

They are the same database by default; `state_database_url` moves podmod's schema elsewhere, which
is why no statement ever joins diaspora's tables with podmod's.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from podmod.config import Config
from podmod.errors import ServiceUnavailable


def describe_url(url: str) -> str:
    """The URL without its password, fit for an error message or a log line."""
    if "://" not in url:
        return "the configured database"
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def connect(url: str, *, purpose: str, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection with dict rows, or raise ServiceUnavailable with one clear sentence."""
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            row_factory=dict_row,
            connect_timeout=10,
            application_name=f"podmod-{purpose}",
        )
    except psycopg.OperationalError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "no answer"
        raise ServiceUnavailable(
            f"Cannot connect to the {purpose} database at {describe_url(url)} ({first_line}); "
            "check that PostgreSQL is running and the URL in the config is right."
        ) from None


def pod_connection(config: Config, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the pod's database, where diaspora*'s tables are."""
    return connect(config.database_url, purpose="pod", autocommit=autocommit)


def state_connection(config: Config, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the database that holds podmod's own schema."""
    return connect(config.state_database_url, purpose="state", autocommit=autocommit)
