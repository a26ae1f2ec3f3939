"""Signed links in mails: `sign` makes a token naming one subject (an account, a reporter) for one
purpose (an appeal, an opt-out), `check` gives the subject back from a token that podmod made for
that purpose and that is not older than its `max_age`. The key lives in podmod.link_key, made on
first use, so the worker that writes a mail and the web that answers its link agree. A token is
URL-safe, carries no secret, and names its subject in the clear (tokens are made for the person
the subject is), so never sign anything its holder may not read."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta

import psycopg
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from podmod.errors import PodmodError

KEY_BYTES = 32
PURPOSES = ("appeal", "opt-out")


class LinkInvalid(PodmodError):
    """The token was not made by this podmod for this purpose, or was changed."""


class LinkExpired(LinkInvalid):
    """The token was made by this podmod for this purpose, longer ago than it is good for."""


def signing_key(state: psycopg.Connection) -> bytes:
    """The install's link key, made now if there is none (inside the caller's transaction)."""
    state.execute(
        "INSERT INTO podmod.link_key (key) VALUES (%s) ON CONFLICT (id) DO NOTHING",
        (secrets.token_bytes(KEY_BYTES),),
    )
    return bytes(state.execute("SELECT key FROM podmod.link_key").fetchone()["key"])


def _serializer(key: bytes, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return URLSafeTimedSerializer(key, salt=f"podmod.{purpose}")


def sign(state: psycopg.Connection, purpose: str, subject: str | int) -> str:
    """A token for `subject` and `purpose`, dated now."""
    return signer(state, purpose)(subject)


def signer(state: psycopg.Connection, purpose: str) -> Callable[[str | int], str]:
    """`sign` for many subjects in one pass: the key is read once, not once per token."""
    serializer = _serializer(signing_key(state), purpose)
    return lambda subject: str(serializer.dumps(subject))


def check(
    state: psycopg.Connection, purpose: str, token: str, *, max_age: timedelta | None = None
) -> str | int:
    """The subject of a token made for `purpose` (no older than `max_age`, when given); raises
    LinkExpired or LinkInvalid with a sentence for the person who followed the link."""
    serializer = _serializer(signing_key(state), purpose)
    seconds = None if max_age is None else int(max_age.total_seconds())
    try:
        subject = serializer.loads(token, max_age=seconds)
    except SignatureExpired:
        raise LinkExpired(
            f"This link is more than {max_age.days} days old and no longer works; "
            "write to the pod's administrators instead."
        ) from None
    except BadSignature:
        raise LinkInvalid(
            "This link is not one this pod sent, or it was cut short; "
            "open it again from the mail, whole."
        ) from None
    if not isinstance(subject, str | int) or isinstance(subject, bool):
        raise LinkInvalid("This link is not one this pod sent; open it again from the mail, whole.")
    return subject
