"""Connections to the two databases podmod uses: the pod's (diaspora*) and podmod's own state.

They are the same database by default; `state_database_url` moves podmod's schema elsewhere, which
is why no statement ever joins diaspora's tables with podmod's.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.rows import dict_row

from podmod.config import Config
from podmod.errors import ServiceUnavailable
from podmod.redact import masked_url

log = logging.getLogger(__name__)


def describe_url(url: str) -> str:
    """The URL without its password, fit for an error message or a log line (a libpq key=value
    string, which may hold one anywhere, is not quoted at all)."""
    if "://" not in url:
        return "the configured database"
    return masked_url(url)


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
        cause = connection_failure_cause(error)
        refused = _refused_for_good(error)
        advice = (  # a server that answered and refused is running: only the URL can be wrong
            "check the URL in the config (database_url or state_database_url)"
            if refused
            else "check that PostgreSQL is running and the URL in the config is right"
        )
        unavailable = ServiceUnavailable(
            f"Cannot connect to the {purpose} database at {describe_url(url)} ({cause}); {advice}."
        )
        unavailable.transient = not refused
        raise unavailable from None


def connection_failure_cause(error: psycopg.OperationalError) -> str:
    """Why libpq could not connect, in its own words: "Connection refused", 'database "x" does
    not exist', not the hint it puts on the next line ("Is the server running on that host…"),
    nor the address the sentence names already."""
    text = str(error).strip()
    if not text:
        return "no answer"
    first = text.splitlines()[0]
    cause = first.rpartition(" failed: ")[2] if " failed: " in first else first
    cause = cause.removeprefix("connection failed: ").removeprefix("FATAL:")
    return " ".join(cause.split())


# What a server that answered says when it is not ready yet (starting, stopping, full), as opposed
# to refusing this configuration (no such database or role, a wrong password, pg_hba.conf).
_NOT_READY = (
    "starting up",
    "shutting down",
    "in recovery mode",
    "not yet accepting connections",
    "too many clients",
    "connection slots",
)


def _refused_for_good(error: psycopg.OperationalError) -> bool:
    """Whether the server answered the connection and refused it for a reason that waiting will
    not change (libpq gives no SQLSTATE for a failed connection, only its message)."""
    text = str(error)
    return "FATAL:" in text and not any(phrase in text for phrase in _NOT_READY)


def pod_connection(config: Config, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the pod's database, where diaspora*'s tables are."""
    return connect(config.database_url, purpose="pod", autocommit=autocommit)


def state_connection(config: Config, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the database that holds podmod's own schema."""
    return connect(config.state_database_url, purpose="state", autocommit=autocommit)


# SQLSTATEs of a connection that broke or a server that is going away or not back yet; with no
# SQLSTATE at all, psycopg's OperationalError is a failure to talk to the server.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03")


def connection_lost(error: BaseException) -> bool:
    """Whether `error` says the database went away (a restart, a cut connection, a failover), not
    that the work itself is wrong: such work succeeds unchanged once the database is back."""
    if isinstance(error, ServiceUnavailable):
        return error.transient  # connect(): no answer, or a server not ready yet
    if not isinstance(error, psycopg.OperationalError):
        return False
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
