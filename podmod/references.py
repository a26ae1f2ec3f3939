"""What a podmin pastes to name an account: its handle, or the address of a page that shows it.

A podmin told of a spam account is more often given an address than a handle: a profile as their
own pod shows it (`/people/GUID`: diaspora* shows every account there, remote ones too), a local
profile (`/u/NAME`), a post or a comment (`/posts/GUID`, `/p/ID`, `/posts/GUID#COMMENT-GUID`),
or a profile on a server of another software that speaks diaspora*'s protocol (Friendica's
`/profile/NAME`, Hubzilla's `/channel/NAME`, `/@NAME` as most of the fediverse writes it).
`account_text` reads such an address as the handle of the account it shows, asking the pod's own
tables for a guid; anything else is given back as written, for the caller's own reading of a
handle or a host (`https://pod.example/` stays a host).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urlsplit

import psycopg

from podmod.errors import PodmodError

# The first part of a path that names an account by its user name on the address's own host.
_NAMED = frozenset(("u", "public", "profile", "channel"))
_PEOPLE = frozenset(("people", "profiles"))  # a person's guid, known on every pod that has it
_POSTS = frozenset(("posts", "p"))  # a post's guid, or its number on the pod that shows it
_DEFAULT_PORTS = {"http": 80, "https": 443}
# diaspora*'s own pages under those parts that name no account (a podmin's own profile's editor).
_NOT_ACCOUNTS = frozenset((("profile", "edit"), ("people", "refresh_search")))
# A guid as the diaspora* network writes them (hex, a UUID, Friendica's and Hubzilla's with
# dots, colons or @), within diaspora*'s guid columns' 255 characters.
_GUID = re.compile(r"[A-Za-z0-9._:@-]{1,255}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AddressError(PodmodError):
    exit_code = 2


def shown(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _web_address(text: str) -> SplitResult | None:
    """The parts of an http(s) address, or None when `text` is none."""
    head = text[:8].lower()
    if not (head.startswith("http://") or head.startswith("https://")):
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a port that is no number raises here, not later)
    except ValueError:
        raise AddressError(f"{shown(text)} is not a valid address.") from None
    return parts if parts.hostname else None


def _host(parts: SplitResult) -> str:
    """The address's host as a handle writes it: `pod.example`, `pod.example:3000`."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def account_text(pod: psycopg.Connection, text: str) -> str:
    """`text` as a handle or a host: the handle of the account that the page at a profile's,
    post's or comment's address shows; `acct:user@pod.example` without its scheme; anything else
    as written. AddressError with one sentence for an address that shows no account this pod
    can name."""
    written = text.strip()
    if _CONTROL.search(written):
        raise AddressError(
            f"{shown(written)!r} holds a control character; give a handle such as user@pod.example."
        )
    if written[:5].lower() == "acct:":
        return written[5:]
    parts = _web_address(written)
    if parts is None or parts.path in ("", "/"):
        return written
    steps = [unquote(step) for step in parts.path.split("/") if step]
    head, key = steps[0], steps[1] if len(steps) > 1 else ""
    host = _host(parts)
    if head.startswith("@") and _GUID.fullmatch(head[1:]):
        name = head[1:]
        return name if "@" in name else f"{name}@{host}"
    if not _GUID.fullmatch(key) or (head, key) in _NOT_ACCOUNTS:
        head = ""  # (no name or guid: no page of an account)
    if head in _NAMED:
        return f"{key.removesuffix('.atom') if head == 'public' else key}@{host}"
    if head in _PEOPLE:
        return _person(pod, key, written)
    if head in _POSTS:
        if parts.fragment:
            return _comment(pod, parts.fragment, written)
        return _post(pod, key, host, written)
    raise AddressError(
        f"{shown(written)} is not the address of a profile, a post or a comment; give a handle"
        " such as user@pod.example, or the address of the account's profile."
    )


def _handle(row: dict[str, object] | None) -> str | None:
    return str(row["handle"]) if row is not None else None


def _person(pod: psycopg.Connection, guid: str, written: str) -> str:
    handle = _handle(
        pod.execute(
            "SELECT lower(diaspora_handle) AS handle FROM people WHERE guid = %s", (guid,)
        ).fetchone()
    )
    if handle is None:
        raise AddressError(
            f"This pod knows no account whose guid is {shown(guid, 40)} ({shown(written)}); give"
            " the account's handle, such as user@pod.example."
        )
    return handle


def _post(pod: psycopg.Connection, key: str, host: str, written: str) -> str:
    value: int | str = key
    where = "p.guid = %s"
    if key.isdigit():
        # A post's number is its own pod's: only an address on this pod names one here.
        if host != this_pod(pod) or len(key) > 18:
            raise AddressError(
                f"{shown(written)} gives a post by its number on {host}, which only {host} can"
                " tell; give the post's address by its guid (…/posts/GUID) or its author's handle."
            )
        where, value = "p.id = %s", int(key)
    handle = _handle(
        pod.execute(
            "SELECT lower(pe.diaspora_handle) AS handle FROM posts p"
            f" JOIN people pe ON pe.id = p.author_id WHERE {where}",
            (value,),
        ).fetchone()
    )
    if handle is None:
        raise AddressError(
            f"This pod has no post {shown(key, 40)} ({shown(written)}); give its author's handle,"
            " such as user@pod.example."
        )
    return handle


def _comment(pod: psycopg.Connection, fragment: str, written: str) -> str:
    # diaspora* links a comment as its post's address (by guid, or by its number on the pod that
    # shows it) with `#` and the comment's guid (app/assets/templates/comment_tpl.jst.hbs).
    guid = unquote(fragment).removeprefix("comment-")
    handle = None
    if _GUID.fullmatch(guid):
        handle = _handle(
            pod.execute(
                "SELECT lower(pe.diaspora_handle) AS handle FROM comments c"
                " JOIN people pe ON pe.id = c.author_id WHERE c.guid = %s",
                (guid,),
            ).fetchone()
        )
    if handle is None:
        raise AddressError(
            f"This pod has no comment {shown(fragment, 40)} ({shown(written)}); give its author's"
            " handle, such as user@pod.example, or the post's address without the #…"
        )
    return handle


def this_pod(pod: psycopg.Connection) -> str | None:
    """This pod's host, as its local accounts' handles name it."""
    row = pod.execute(
        "SELECT lower(split_part(diaspora_handle, '@', 2)) AS host FROM people"
        " WHERE owner_id IS NOT NULL LIMIT 1"
    ).fetchone()
    return row["host"] if row is not None else None
