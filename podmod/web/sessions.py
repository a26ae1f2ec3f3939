"""Web sessions kept server-side in podmod's schema: the browser holds only a random id, and who is
signed in, since when and with which password is looked up here (by the id's SHA-256, so that a
copy of the table signs nobody in)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import psycopg


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def open_session(
    state: psycopg.Connection,
    user: dict[str, Any],
    stage: str,
    *,
    next_path: str | None = None,
    prune_after: int,
) -> str:
    """A new session of this user at `stage` ('code': the TOTP step is due; 'signed_in'); returns
    the id for the cookie. Sessions older than `prune_after` seconds go at the same time."""
    token = secrets.token_urlsafe(32)
    state.execute(
        "WITH pruned AS (DELETE FROM podmod.web_sessions"
        " WHERE created_at < now() - make_interval(secs => %s))"
        " INSERT INTO podmod.web_sessions (id_hash, user_id, password_salt, stage, next_path)"
        " VALUES (%s, %s, %s, %s, %s)",
        (prune_after, _hash(token), user["user_id"], user["password_salt"], stage, next_path),
    )
    return token


def find_session(
    state: psycopg.Connection, token: str, stage: str, max_age: int
) -> dict[str, Any] | None:
    """The session with this id at `stage`, if it is younger than `max_age` seconds."""
    return state.execute(
        "SELECT user_id, password_salt, next_path FROM podmod.web_sessions"
        " WHERE id_hash = %s AND stage = %s AND created_at > now() - make_interval(secs => %s)",
        (_hash(token), stage, max_age),
    ).fetchone()


def close_session(state: psycopg.Connection, token: str) -> None:
    state.execute("DELETE FROM podmod.web_sessions WHERE id_hash = %s", (_hash(token),))
