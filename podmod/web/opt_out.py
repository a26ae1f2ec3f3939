"""The opt-out link of a reporter's mail (podmod.notify.reporters): GET shows a button, POST
records that the reporter wants no more of these mails. No sign-in: the signed token names the
reporter (users.id) and is the only authority, so the same POST serves the page's button and a
mail client's RFC 8058 one-click request. Recording it twice changes nothing."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request

from podmod.notify import links
from podmod.store import record_audit
from podmod.web.services import redis_conn, state_conn
from podmod.web.signin import LIMIT_PREFIX, TAKE_SCRIPT, network_of

bp = Blueprint("opt_out", __name__)

LIMIT = 30  # requests per network and window: plenty for people, little for a script
WINDOW = 600  # seconds


def _limit() -> None:
    """Refuse a network's requests beyond LIMIT per WINDOW."""
    take = redis_conn().register_script(TAKE_SCRIPT)
    key = f"{LIMIT_PREFIX}opt-out:{network_of(request.remote_addr or 'unknown')}"
    wait = int(take(keys=[key], args=[WINDOW, LIMIT]))
    if wait:
        minutes = max(wait // 60, 1)
        abort(429, f"Too many requests from your network; try again in {minutes} minutes.")


def _reporter(token: str) -> int:
    """The users.id the token was made for; a bad or cut token is one sentence."""
    try:
        subject = links.check(state_conn(), "opt-out", token)
    except links.LinkInvalid as error:
        abort(400, str(error))
    if not isinstance(subject, int):
        abort(400, "This link is not one this pod sent; open it again from the mail, whole.")
    return subject


def _opted_out(user_id: int) -> bool:
    row = (
        state_conn()
        .execute("SELECT 1 FROM podmod.reporter_opt_outs WHERE user_id = %s", (user_id,))
        .fetchone()
    )
    return row is not None


def _record(user_id: int) -> None:
    """Record the opt-out and audit it, once; a repeat changes nothing."""
    state = state_conn()
    with state.transaction():
        added = state.execute(
            "INSERT INTO podmod.reporter_opt_outs (user_id) VALUES (%s)"
            " ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
            (user_id,),
        ).fetchone()
        if added:
            record_audit(
                state,
                actor=f"reporter:{user_id}",
                action="opt_out",
                source="web",
                reason="no more mails about their reports",
                details={"one_click": request.form.get("List-Unsubscribe") == "One-Click"},
            )


@bp.route("/opt-out/<token>", methods=["GET", "POST"])
def page(token: str) -> Any:
    _limit()
    user_id = _reporter(token)
    if request.method == "POST":
        _record(user_id)
    return render_template("opt_out.html", token=token, opted_out=_opted_out(user_id))
