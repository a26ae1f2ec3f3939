"""The queue page: cases in the order `podmod cases` gives (priority, newest signal, id), with
filters, search by handle, and keyset pages (no OFFSET) so that the last page costs what the first
does."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, render_template, request, url_for

from podmod import pod_db, references
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
    search: str = ""  # any part of the handle: "alice", "@pod.example", "ice@pod"; or an address
    account: str = ""  # the handle of the account the address searched for shows: it alone

    @classmethod
    def from_args(cls, args: Any) -> QueueFilter:
        status = args.get("status", "open")
        where = args.get("where", "all")
        if status not in (*CASE_STATUSES, "all") or where not in ("all", "local", "remote"):
            abort(400, "Unknown filter; use the queue page's own links and buttons.")
        search = args.get("q", "").strip()[:600]
        if search.startswith("@") and "@" in search[1:]:  # "@alice@pod.example", as in diaspora*
            search = search[1:]
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


def _like_part(text: str) -> str:
    """A LIKE pattern for `text` anywhere, its wildcards taken as plain characters."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def _conditions(queue_filter: QueueFilter) -> tuple[list[str], dict[str, Any]]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if queue_filter.status != "all":
        conditions.append("status = %(status)s")
        params["status"] = queue_filter.status
    if queue_filter.where != "all":
        conditions.append("local = %(local)s")
        params["local"] = queue_filter.where == "local"
    if queue_filter.listed:
        conditions.append("list_match_count > 0")
    if queue_filter.account:
        conditions.append("account = %(account)s")
        params["account"] = queue_filter.account
    elif queue_filter.search:
        # Handles are lower case in diaspora*; no index serves a part of one without pg_trgm,
        # which podmod may not create: queue_page reads the cases once ("Performance").
        conditions.append("account LIKE %(part)s")
        params["part"] = _like_part(queue_filter.search.lower())
    return conditions, params


@dataclass(frozen=True)
class QueuePage:
    rows: list[dict[str, Any]]
    total: int | None  # cases of this filter, on every page (None when not asked for)
    next: Cursor | None  # where the next page starts, None on the last
    previous: Cursor | None  # the page before starts after this, None when it is the first
    at_start: bool  # this is the first page


CASE_COLUMNS = (
    "id, account, local, status, resolution, priority, report_count, pending_report_count,"
    " reporter_count, list_match_count, content_match_count, person_id, created_at,"
    " first_signal_at, last_signal_at"
)


def queue_page(
    state: Any,
    queue_filter: QueueFilter,
    after: Cursor | None,
    limit: int,
    *,
    before: Cursor | None = None,
    with_total: bool = True,
) -> QueuePage:
    """One page of cases in queue order: the one after `after`, or the one before `before`.

    A search by part of a handle reads every case once (no index serves it): the cases it finds
    are counted in the same pass (a window), not in a second scan; other filters are counted with
    the keyset index."""
    conditions, params = _conditions(queue_filter)
    params["limit"] = limit + 1
    edge = before or after
    page_conditions = []
    if edge is not None:
        key = f"(priority, {SORT_AT}, id)"
        page_conditions.append(f"{key} {'>' if before else '<'} (%(p)s, %(t)s::timestamptz, %(i)s)")
        params.update(p=edge.priority, t=edge.sort_at(), i=edge.case_id)
    order = QUEUE_ORDER if before is None else QUEUE_ORDER.replace(" DESC", " ASC")
    if queue_filter.search:
        source = (
            f"(SELECT {CASE_COLUMNS}, count(*) OVER () AS total FROM podmod.cases"
            f" WHERE {' AND '.join(conditions)}) found"
        )
        where = " AND ".join(page_conditions) or "true"
    else:
        source = "podmod.cases"
        where = " AND ".join(conditions + page_conditions) or "true"
    rows = state.execute(
        f"SELECT * FROM {source} WHERE {where} ORDER BY {order} LIMIT %(limit)s", params
    ).fetchall()
    total = None
    if rows and queue_filter.search:
        total = rows[0]["total"]
    elif with_total:
        total = state.execute(
            f"SELECT count(*) AS n FROM podmod.cases WHERE {' AND '.join(conditions) or 'true'}",
            params,
        ).fetchone()["n"]
    more = len(rows) > limit
    rows = rows[:limit]
    if before is None:
        return QueuePage(
            rows,
            total,
            Cursor.of(rows[-1]) if more else None,
            Cursor.of(rows[0]) if after is not None and rows else None,
            after is None,
        )
    rows.reverse()
    return QueuePage(
        rows,
        total,
        Cursor.of(rows[-1]) if rows else before,
        Cursor.of(rows[0]) if more else None,
        not more,
    )


def case_facts(state: Any, case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per case of a page, what its row says besides the counts: the lists and the kinds of content
    entries that match it now, its newest report (pending first) with the reported text, and
    whether it has an undecided appeal."""
    if not case_ids:
        return {}
    facts: dict[int, dict[str, Any]] = {case_id: {} for case_id in case_ids}
    for row in state.execute(
        "SELECT s.case_id,"
        " array_agg(DISTINCT l.name ORDER BY l.name) FILTER (WHERE s.kind = 'list') AS lists,"
        " array_agg(DISTINCT s.entry_kind ORDER BY s.entry_kind) FILTER (WHERE s.kind = 'content')"
        " AS content_kinds"
        " FROM podmod.signals s LEFT JOIN podmod.lists l ON l.id = s.list_id"
        " WHERE s.case_id = ANY (%(ids)s) AND s.kind IN ('list', 'content')"
        " AND s.retracted_at IS NULL GROUP BY s.case_id",
        {"ids": case_ids},
    ):
        facts[row["case_id"]].update(lists=row["lists"], content_kinds=row["content_kinds"])
    for row in state.execute(
        "SELECT DISTINCT ON (case_id) case_id, reason, snapshot, item_missing"
        " FROM podmod.signals WHERE case_id = ANY (%(ids)s) AND kind = 'report'"
        " ORDER BY case_id, reviewed, occurred_at DESC NULLS LAST, id DESC",
        {"ids": case_ids},
    ):
        facts[row["case_id"]]["report"] = row
    for row in state.execute(
        "SELECT DISTINCT case_id FROM podmod.signals WHERE case_id = ANY (%(ids)s)"
        " AND kind = 'appeal' AND NOT reviewed",
        {"ids": case_ids},
    ):
        facts[row["case_id"]]["appealed"] = True
    return facts


def _found_by_address(queue_filter: QueueFilter) -> QueueFilter:
    """A search for the address of a profile, a post or a comment (as podmins are sent them) is
    a search for the handle of the account it shows; one that shows none says why."""
    if not queue_filter.search:
        return queue_filter
    try:
        handle = references.account_text(pod_conn(), queue_filter.search)
    except references.AddressError as error:
        flash(str(error), "error")
        return queue_filter
    if handle == queue_filter.search:  # (no address: a part of a handle)
        return queue_filter
    return replace(queue_filter, account=handle.lower().removeprefix("@"))


@bp.route("/")
@login_required
def index() -> str:
    queue_filter = _found_by_address(QueueFilter.from_args(request.args))
    after = Cursor.decode(request.args["after"]) if request.args.get("after") else None
    before = Cursor.decode(request.args["before"]) if request.args.get("before") else None
    page = queue_page(
        state_conn(), queue_filter, after, services().config["web.page_size"], before=before
    )
    rows = page.rows
    states = pod_db.account_states(
        pod_conn(), sorted({row["person_id"] for row in rows if row["person_id"] is not None})
    )
    links = queue_filter.args()
    return render_template(
        "queue.html",
        cases=rows,
        facts=case_facts(state_conn(), [row["id"] for row in rows]),
        states=states,
        filter=queue_filter,
        total=page.total,
        next_url=page.next and url_for("queue.index", after=page.next.encode(), **links),
        previous_url=page.previous
        and url_for("queue.index", before=page.previous.encode(), **links),
        first_url=None if page.at_start else url_for("queue.index", **links),
    )
