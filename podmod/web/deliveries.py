"""The deliveries page (admins only): every mail and webhook podmod sent or is trying to send,
newest first, with what waits, what failed and why, and what was given up."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from podmod.errors import PodmodError
from podmod.notify.retry import retry_now
from podmod.notify.status import outbox_status
from podmod.notify.webhooks import receiver_name
from podmod.web.auth import action_details, actor, login_required
from podmod.web.services import services, state_conn

bp = Blueprint("deliveries", __name__)

SHOWN = {
    "all": "true",
    "waiting": "delivered_at IS NULL AND gave_up_at IS NULL",
    "failing": "delivered_at IS NULL AND last_error_at IS NOT NULL",
}


def target_text(row: dict[str, Any]) -> str:
    """A webhook by its host only: its path may hold the receiver's token."""
    return receiver_name(row["target"]) if row["channel"] == "webhook" else row["target"]


def state_text(row: dict[str, Any]) -> str:
    if row["delivered_at"] is not None:
        return "delivered"
    if row["gave_up_at"] is not None:
        return "given up"
    return "retrying" if row["last_error_at"] is not None else "waiting"


def require_admin() -> None:
    if "admin" not in g.staff.roles:
        abort(
            403, "Only a pod admin can see podmod's deliveries (they hold the staff's addresses)."
        )


@bp.route("/deliveries")
@login_required
def index() -> str:
    require_admin()
    shown = request.args.get("show", "all")
    if shown not in SHOWN:
        abort(400, "Unknown filter; use the deliveries page's own links.")
    before = request.args.get("before", "")
    if before and (not re.fullmatch(r"[0-9]{1,19}", before) or int(before) >= 2**63):
        abort(400, "This page link is damaged; go back to the first page of the deliveries.")
    limit = services().config["web.page_size"]
    rows = (
        state_conn()
        .execute(
            "SELECT id, channel, target, event_type, created_at, attempts, next_attempt_at,"
            " last_attempt_at, delivered_at, gave_up_at, last_error, last_error_at,"
            " response_status FROM podmod.outbox"
            f" WHERE {SHOWN[shown]} AND (%(before)s::bigint IS NULL OR id < %(before)s)"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"before": int(before) if before else None, "limit": limit + 1},
        )
        .fetchall()
    )
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_url = url_for("deliveries.index", show=shown, before=rows[-1]["id"])
    for row in rows:
        row["to"] = target_text(row)
        row["state"] = state_text(row)
    status = outbox_status(state_conn())
    if status["last_failure"]:
        status["last_failure"]["to"] = target_text(status["last_failure"])
    return render_template(
        "deliveries.html",
        rows=rows,
        shown=shown,
        status=status,
        next_url=next_url,
        first_url=url_for("deliveries.index", show=shown) if before else None,
        mail_configured=bool(services().config["mail.smtp_url"]),
        webhooks=len(services().config.webhooks),
    )


@bp.route("/deliveries/<int:outbox_id>/retry", methods=["POST"])
@login_required
def retry(outbox_id: int) -> Response:
    """Retry now: the row is due at once; the reader's next pass enqueues it for a worker."""
    require_admin()
    if outbox_id >= 2**63:
        abort(404, f"There is no delivery {outbox_id}.")
    try:
        message = retry_now(
            state_conn(), outbox_id, actor=actor(), source="web", details=action_details()
        )
    except PodmodError as error:
        flash(str(error), "error")
    else:
        flash(message, "ok")
    shown = request.form.get("show", "all")
    return redirect(url_for("deliveries.index", show=shown if shown in SHOWN else "all"))
