"""A builder of diaspora* pod content for tests: rows exactly as diaspora* writes them.

Local people have a users row (owner_id) and no pod; remote people have a pods row and no user.
All text is neutral placeholder text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import bcrypt
import psycopg

PEPPER = (
    "065eb8798b181ff0ea2c5c16aee0ff8b70e04e2ee6bd6e08b49da46924223e39127d5335e466207d42bf2a045c12"
    "be5f90e92012a4f05f7fc6d9f3c875f4c95b"
)
LOCAL_HOST = "pod.example"


def devise_hash(password: str, cost: int = 4) -> str:
    """bcrypt(password + pepper) as Devise stores it; bcrypt reads only the first 72 bytes."""
    return bcrypt.hashpw((password + PEPPER).encode()[:72], bcrypt.gensalt(cost, b"2a")).decode()


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def guid() -> str:
    return uuid.uuid4().hex


@dataclass
class Person:
    id: int
    handle: str
    user_id: int | None  # set for local accounts

    @property
    def local(self) -> bool:
        return self.user_id is not None


class DiasporaPod:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _pod_id(self, host: str) -> int:
        row = self.conn.execute("SELECT id FROM pods WHERE host = %s", (host,)).fetchone()
        if row:
            return row["id"]
        return self.conn.execute(
            "INSERT INTO pods (host, ssl, created_at, updated_at, port, status)"
            " VALUES (%s, true, %s, %s, -1, 1) RETURNING id",
            (host, now(), now()),
        ).fetchone()["id"]

    def person(
        self,
        username: str,
        host: str = LOCAL_HOST,
        *,
        password: str | None = None,
        roles: tuple[str, ...] = (),
        full_name: str | None = None,
    ) -> Person:
        """A local account (host = this pod) with its user, or a remote one with its pod."""
        handle = f"{username}@{host}".lower()
        user_id = None
        pod_id = None
        if host == LOCAL_HOST:
            user_id = self.conn.execute(
                "INSERT INTO users (username, email, encrypted_password, created_at, updated_at,"
                " getting_started) VALUES (%s, %s, %s, %s, %s, false) RETURNING id",
                (
                    username.lower(),
                    f"{username.lower()}@mail.example",
                    devise_hash(password) if password else "",
                    now(),
                    now(),
                ),
            ).fetchone()["id"]
        else:
            pod_id = self._pod_id(host)
        person_id = self.conn.execute(
            "INSERT INTO people (guid, diaspora_handle, serialized_public_key, owner_id,"
            " created_at, updated_at, pod_id) VALUES (%s, %s, 'placeholder key', %s, %s, %s, %s)"
            " RETURNING id",
            (guid(), handle, user_id, now(), now(), pod_id),
        ).fetchone()["id"]
        self.conn.execute(
            "INSERT INTO profiles (diaspora_handle, full_name, first_name, person_id, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (handle, full_name or username.title(), username.title(), person_id, now(), now()),
        )
        for role in roles:
            self.conn.execute(
                "INSERT INTO roles (person_id, name, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s)",
                (person_id, role, now(), now()),
            )
        return Person(person_id, handle, user_id)

    def post(
        self, author: Person, text: str = "A placeholder post.", *, public: bool = True
    ) -> int:
        return self.conn.execute(
            "INSERT INTO posts (author_id, public, guid, type, text, created_at, updated_at,"
            " interacted_at) VALUES (%s, %s, %s, 'StatusMessage', %s, %s, %s, %s) RETURNING id",
            (author.id, public, guid(), text, now(), now(), now()),
        ).fetchone()["id"]

    def reshare(self, author: Person, root_post_id: int) -> int:
        root_guid = self.conn.execute(
            "SELECT guid FROM posts WHERE id = %s", (root_post_id,)
        ).fetchone()["guid"]
        return self.conn.execute(
            "INSERT INTO posts (author_id, public, guid, type, text, root_guid, created_at,"
            " updated_at) VALUES (%s, true, %s, 'Reshare', NULL, %s, %s, %s) RETURNING id",
            (author.id, guid(), root_guid, now(), now()),
        ).fetchone()["id"]

    def comment(self, author: Person, post_id: int, text: str = "A placeholder comment.") -> int:
        return self.conn.execute(
            "INSERT INTO comments (text, commentable_id, author_id, guid, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (text, post_id, author.id, guid(), now(), now()),
        ).fetchone()["id"]

    def report(
        self, reporter: Person, item_type: str, item_id: int, text: str = "Placeholder reason."
    ) -> int:
        """A user's report: user_id is the reporter's users.id, as diaspora* stores it."""
        assert reporter.user_id is not None, "only local users can report"
        return self.conn.execute(
            "INSERT INTO reports (item_id, item_type, reviewed, text, created_at, updated_at,"
            " user_id) VALUES (%s, %s, false, %s, %s, %s, %s) RETURNING id",
            (item_id, item_type, text, now(), now(), reporter.user_id),
        ).fetchone()["id"]

    def mark_reviewed(self, item_type: str, item_id: int) -> None:
        """What diaspora*'s report page does: every report of the item becomes reviewed."""
        self.conn.execute(
            "UPDATE reports SET reviewed = true WHERE item_type = %s AND item_id = %s",
            (item_type, item_id),
        )

    def delete_post(self, post_id: int) -> None:
        self.conn.execute("DELETE FROM posts WHERE id = %s", (post_id,))

    def delete_comment(self, comment_id: int) -> None:
        self.conn.execute("DELETE FROM comments WHERE id = %s", (comment_id,))
