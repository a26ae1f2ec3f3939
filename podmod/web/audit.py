"""The audit page: every action and sign-in, newest first (who, what, when, why, from where), in
keyset pages, optionally for one case, one actor or one kind of action."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from podmod.web.auth import login_required
from podmod.web.services import services, state_conn

bp = Blueprint("audit", __name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _cursor(text: str) -> tuple[datetime, int]:
    match = re.fullmatch(r"(\d{1,17})\.(\d{1,19})", text)
    if not match or int(match[2]) >= 2**63:
        abort(400, "This page link is damaged; go back to the first page of the audit log.")
    try:
        return EPOCH + int(match[1]) * MICROSECOND, int(match[2])
    except OverflowError:
        abort(400, "This page link is damaged; go back to the first page of the audit log.")


@bp.route("/audit")
@login_required
def index() -> str:
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": services().config["web.page_size"] + 1}
    filters: dict[str, str] = {}
    case = request.args.get("case", "")
    if case:
        if not re.fullmatch(r"[0-9]{1,19}", case) or int(case) >= 2**63:
            abort(400, "The case filter must be a case number.")
        conditions.append("case_id = %(case)s")
        params["case"] = int(case)
        filters["case"] = case
    actor = request.args.get("actor", "").strip()[:200]
    if actor:
        conditions.append("lower(actor) = lower(%(actor)s)")
        params["actor"] = filters["actor"] = actor
    action = request.args.get("action", "").strip()[:200]
    if action:
        conditions.append("action = %(action)s")
        params["action"] = filters["action"] = action
    if request.args.get("after"):
        at, row_id = _cursor(request.args["after"])
        conditions.append("(at, id) < (%(at)s, %(id)s)")
        params.update(at=at, id=row_id)
    where = " AND ".join(conditions) or "true"
    rows = (
        state_conn()
        .execute(
            f"SELECT * FROM podmod.audit WHERE {where} ORDER BY at DESC, id DESC LIMIT %(limit)s",
            params,
        )
        .fetchall()
    )
    next_url = None
    if len(rows) == params["limit"]:
        rows = rows[:-1]
        last = rows[-1]
        after = f"{(last['at'] - EPOCH) // MICROSECOND}.{last['id']}"
        next_url = url_for("audit.index", after=after, **filters)
    first_url = url_for("audit.index", **filters) if request.args.get("after") else None
    return render_template(
        "audit.html",
        rows=rows,
        filters=filters,
        actions=recorded_actions(state_conn()),
        next_url=next_url,
        first_url=first_url,
    )


def recorded_actions(state: Any) -> list[str]:
    """Every action the log holds, for the filter's menu: one index probe per action (a skip scan
    of audit_by_action), however long the log."""
    return [
        row["action"]
        for row in state.execute(
            "WITH RECURSIVE found AS ("
            " (SELECT action FROM podmod.audit ORDER BY action LIMIT 1)"
            " UNION ALL"
            " SELECT (SELECT action FROM podmod.audit WHERE action > found.action"
            " ORDER BY action LIMIT 1) FROM found WHERE found.action IS NOT NULL)"
            " SELECT action FROM found WHERE action IS NOT NULL"
        )
    ]
