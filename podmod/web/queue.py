"""The queue page: cases in the order `podmod cases` gives (priority, newest signal, id), with
filters, search by handle, and keyset pages (no OFFSET) so that the last page costs what the first
does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from podmod import pod_db
from podmod.store import CASE_STATUSES
from podmod.web.auth import login_required
from podmod.web.services import pod_conn, services, state_conn

bp = Blueprint("queue", __name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
SORT_AT = "coalesce(last_signal_at, '-infinity'::timestamptz)"
QUEUE_ORDER = f"priority DESC, {SORT_AT} DESC, id DESC"


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: (priority, newest signal in microseconds or None, case id)."""

    priority: int
    micros: int | None
    case_id: int

    def encode(self) -> str:
        return f"{self.priority}.{'n' if self.micros is None else self.micros}.{self.case_id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = re.fullmatch(r"(-?\d{1,10})\.(n|-?\d{1,20})\.(\d{1,19})", text)
        if not match or int(match[3]) >= 2**63:
            abort(400, "This page link is damaged; go back to the first page of the queue.")
        cursor = cls(int(match[1]), None if match[2] == "n" else int(match[2]), int(match[3]))
        try:
            cursor.sort_at()
        except OverflowError:
            abort(400, "This page link is damaged; go back to the first page of the queue.")
        return cursor

    @classmethod
    def of(cls, row: dict[str, Any]) -> Cursor:
        at = row["last_signal_at"]
        micros = None if at is None else (at - EPOCH) // MICROSECOND
        return cls(row["priority"], micros, row["id"])

    def sort_at(self) -> str:
        if self.micros is None:
            return "-infinity"
        return (EPOCH + self.micros * MICROSECOND).isoformat()


@dataclass(frozen=True)
class QueueFilter:
    status: str = "open"  # open, resolved, dismissed or all
    where: str = "all"  # all, local or remote
    listed: bool = False  # only cases with an active list match
    search: str = ""  # handle prefix

    @classmethod
    def from_args(cls, args: Any) -> QueueFilter:
        status = args.get("status", "open")
        where = args.get("where", "all")
        if status not in (*CASE_STATUSES, "all") or where not in ("all", "local", "remote"):
            abort(400, "Unknown filter; use the queue page's own links and buttons.")
        search = args.get("q", "").strip().lower().removeprefix("@")[:200]
        return cls(status, where, args.get("listed") == "1", search)

    def args(self) -> dict[str, str]:
        out = {}
        if self.status != "open":
            out["status"] = self.status
        if self.where != "all":
            out["where"] = self.where
        if self.listed:
            out["listed"] = "1"
        if self.search:
            out["q"] = self.search
        return out


def _like_prefix(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text) + "%"


def queue_page(
    state: Any, queue_filter: QueueFilter, after: Cursor | None, limit: int
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """One page of cases and the cursor of the next page (None on the last)."""
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": limit + 1}
    if queue_filter.status != "all":
        conditions.append("status = %(status)s")
        params["status"] = queue_filter.status
    if queue_filter.where != "all":
        conditions.append("local = %(local)s")
        params["local"] = queue_filter.where == "local"
    if queue_filter.listed:
        conditions.append("list_match_count > 0")
    if queue_filter.search:
        conditions.append("account LIKE %(prefix)s")
        params["prefix"] = _like_prefix(queue_filter.search)
    if after is not None:
        conditions.append(f"(priority, {SORT_AT}, id) < (%(p)s, %(t)s::timestamptz, %(i)s)")
        params.update(p=after.priority, t=after.sort_at(), i=after.case_id)
    where = " AND ".join(conditions) or "true"
    rows = state.execute(
        "SELECT id, account, local, status, resolution, priority, report_count,"
        " pending_report_count, reporter_count, list_match_count, person_id, created_at,"
        f" first_signal_at, last_signal_at FROM podmod.cases WHERE {where}"
        f" ORDER BY {QUEUE_ORDER} LIMIT %(limit)s",
        params,
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (Cursor.of(rows[-1]) if more else None)


@bp.route("/")
@login_required
def index() -> str:
    queue_filter = QueueFilter.from_args(request.args)
    after = Cursor.decode(request.args["after"]) if request.args.get("after") else None
    rows, next_cursor = queue_page(
        state_conn(), queue_filter, after, services().config["web.page_size"]
    )
    states = pod_db.account_states(
        pod_conn(), sorted({row["person_id"] for row in rows if row["person_id"] is not None})
    )
    total = None
    if after is None and queue_filter == QueueFilter():
        total = (
            state_conn()
            .execute("SELECT count(*) AS n FROM podmod.cases WHERE status = 'open'")
            .fetchone()["n"]
        )
    next_url = None
    if next_cursor is not None:
        next_url = url_for("queue.index", after=next_cursor.encode(), **queue_filter.args())
    return render_template(
        "queue.html",
        cases=rows,
        states=states,
        filter=queue_filter,
        total=total,
        next_url=next_url,
        first_url=url_for("queue.index", **queue_filter.args()) if after else None,
    )
