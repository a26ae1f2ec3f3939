"""The appeal page: GET/POST /appeal/<token>, the one page of podmod open without signing in (a
locked account cannot sign in). The signed link names the account; the page says whether the
appeal can be made, was received and waits, or why not (expired, not valid, no longer locked).
The POST carries the session's CSRF token like every form (podmod.web.security) and is limited
per account and per client address; the appeal itself is podmod.appeals.submit."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, flash, redirect, render_template, request, url_for

from podmod import appeals
from podmod.notify import links
from podmod.notify.appeals import LINK_DAYS
from podmod.web.auth import client_ip
from podmod.web.services import pod_conn, redis_conn, services, state_conn
from podmod.web.signin import TAKE_SCRIPT, network_of

bp = Blueprint("appeal", __name__)

MAX_TOKEN = 400  # characters: a real link's token is well under 100
INVALID = "This link is not one this pod sent, or it was changed; open it again from the mail."
LIMIT_PREFIX = "podmod:appeal:"
LIMIT_WINDOW = 3600  # seconds
LIMIT_PER_ACCOUNT = 5  # appeal submissions per hour and account ...
LIMIT_PER_ADDRESS = 10  # ... and per client address (an IPv6 /64)


def _take(rconn: redis.Redis, keys: list[str], limits: list[int]) -> int:
    """Count one submission on every key, or none when one is at its limit: the seconds to wait
    then, else 0 (the sign-in limiter's script: counting and checking are one step)."""
    return int(rconn.register_script(TAKE_SCRIPT)(keys=keys, args=[LIMIT_WINDOW, *limits]))


def _page(token: str, status: int = 200, **context: Any) -> tuple[str, int]:
    context.setdefault("error", None)
    context.setdefault("statement", "")
    return (
        render_template(
            "appeal.html",
            token=token,
            max_statement=appeals.MAX_STATEMENT,
            link_days=LINK_DAYS,
            **context,
        ),
        status,
    )


def _account(token: str) -> appeals.Appellant | tuple[str, int]:
    """The account the link names, or the page saying why the link does not work."""
    if len(token) > MAX_TOKEN:
        return _page(token, 404, state="invalid", error=INVALID)
    try:
        return appeals.appellant(state_conn(), pod_conn(), token)
    except links.LinkExpired as expired:
        return _page(token, 410, state="expired", error=str(expired))
    except links.LinkInvalid as invalid:
        return _page(token, 404, state="invalid", error=str(invalid))


@bp.route("/appeal/<token>", methods=["GET"])
def show(token: str) -> Any:
    account = _account(token)
    if not isinstance(account, appeals.Appellant):
        return account
    if not account.locked:
        return _page(token, state="unlocked", account=account, error=appeals.NOT_LOCKED)
    waiting = appeals.open_appeal(state_conn(), account.user_id)
    if waiting:
        return _page(token, state="waiting", account=account, received=waiting)
    return _page(token, state="form", account=account)


@bp.route("/appeal/<token>", methods=["POST"])
def submit(token: str) -> Any:
    account = _account(token)
    address_key = f"{LIMIT_PREFIX}ip:{network_of(client_ip())}"
    if not isinstance(account, appeals.Appellant):
        _take(redis_conn(), [address_key], [LIMIT_PER_ADDRESS])  # guessing links counts too
        return account
    statement = request.form.get("statement", "")
    wait = _take(
        redis_conn(),
        [address_key, f"{LIMIT_PREFIX}user:{account.user_id}"],
        [LIMIT_PER_ADDRESS, LIMIT_PER_ACCOUNT],
    )
    if wait:
        message = f"Too many appeals were sent; try again in {max(wait // 60, 1)} minutes."
        return _page(token, 429, state="form", account=account, error=message, statement=statement)
    try:
        received = appeals.submit(services().config, token, statement, ip=client_ip())
    except links.LinkInvalid as invalid:  # expired since the check above, or the account gone
        return _page(token, 404, state="invalid", error=str(invalid))
    except appeals.NotLocked as refused:
        return _page(token, 409, state="unlocked", account=account, error=str(refused))
    except appeals.AppealRefused as refused:
        return _page(
            token, 400, state="form", account=account, error=str(refused), statement=statement
        )
    if received.new:
        flash("Your appeal was received.", "ok")
    else:
        flash(
            "Your appeal was received before and waits for a decision; nothing was added.", "info"
        )
    return redirect(url_for("appeal.show", token=token))
