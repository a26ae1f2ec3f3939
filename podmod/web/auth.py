"""Sign-in with the pod's own accounts (admins and moderators only), the second step for two-factor
accounts, sign-out, and the checks every signed-in request passes.

The session cookie carries only a random session id; the user, the time of sign-in and the
password's bcrypt salt are kept in podmod's schema (podmod.web.sessions). Each request re-reads the
account from the pod, so a staff member who is locked, closed, loses the role or changes the
password in diaspora* is signed out on their next click. Sign-in attempts are limited per device
cookie, account and network (podmod.web.signin), so a stranger cannot lock out a known browser.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from podmod import pod_db
from podmod.errors import ServiceUnavailable
from podmod.store import record_audit
from podmod.web.security import csrf_token, kept_text, own_origin
from podmod.web.services import pod_conn, redis_conn, services, state_conn
from podmod.web.sessions import close_session, find_session, open_session
from podmod.web.signin import (
    DEVICE_SECONDS,
    LoginLimiter,
    consume_timestep,
    device_cookie,
    device_nonce,
    password_matches,
    totp_timestep,
)

bp = Blueprint("auth", __name__)

DEVICE_COOKIE = "podmod_device"
WRONG_SIGN_IN = "Wrong username or password."
CODE_STEP_SECONDS = 300  # the second step must follow the password within five minutes
STAFF_ROLES = {"admin", "moderator"}


@dataclass(frozen=True)
class Staff:
    """The signed-in admin or moderator."""

    user_id: int
    person_id: int
    username: str
    handle: str
    roles: tuple[str, ...]
    can_lock: bool
    can_approve: bool  # apply list versions held for approval


def _roles(key: str) -> set[str]:
    return {r.strip() for r in services().config[key].split(",") if r.strip()}


def lock_roles() -> set[str]:
    return _roles("web.lock_roles")


def approve_roles() -> set[str]:
    return _roles("web.approve_roles")


def refusal(user: dict[str, Any] | None) -> str | None:
    """Why this account may not use podmod's web UI, or None."""
    if user is None or user["person_id"] is None:
        return "This account no longer exists on the pod."
    if user["locked"]:
        return "This account is locked."
    if user["closed"]:
        return "This account is closed."
    if not STAFF_ROLES & set(user["roles"]):
        return "Only the pod's admins and moderators can sign in here."
    return None


def client_ip() -> str:
    return request.remote_addr or "unknown"


def safe_next(value: str | None) -> str | None:
    """A path inside this app to go to after sign-in, or None: never another site."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith("/login"):
        return None
    return value


def _after_sign_in(next_path: str | None) -> Response:
    if next_path:
        return redirect(request.script_root + next_path)
    return redirect(url_for("queue.index"))


def _lifetime() -> int:
    return services().config["web.session_minutes"] * 60


def end_session(message: str | None = None) -> None:
    """End this browser's session (and a pending TOTP step) server-side and in the cookie."""
    for key in ("sid", "pending"):
        if session.get(key):
            close_session(state_conn(), session[key])
    session.clear()
    if message:
        flash(message, "error")


def session_problem(user: dict[str, Any] | None, opened: dict[str, Any]) -> str | None:
    """Why this session may not go on: the account's refusal, or a password changed in diaspora*
    since sign-in (its bcrypt salt differs, as Devise checks), or None."""
    problem = refusal(user)
    if problem is None and user["password_salt"] != opened["password_salt"]:
        problem = "The password of this account was changed."
    return problem


@bp.before_app_request
def load_staff() -> None:
    """g.staff: the signed-in admin or moderator, checked against the session and the pod each
    time; the cookie names only the session, so who it is comes from podmod's schema."""
    g.staff = None
    if request.endpoint in ("static", "health.healthz", "health.prometheus", "opt_out.page"):
        return  # a reporter's opt-out link is for anyone holding it, signed in or not
    sid = session.get("sid")
    if not sid:
        return
    opened = find_session(state_conn(), sid, "signed_in", _lifetime())
    if opened is None:
        g.session_ended = True  # (a form it sent keeps what was typed: _unsent_form)
        end_session("Your session has ended; sign in again.")
        return
    user = pod_db.user_state(pod_conn(), opened["user_id"])
    problem = session_problem(user, opened)
    if problem:
        g.session_ended = True
        end_session(f"You were signed out: {problem}")
        return
    g.staff = Staff(
        user_id=user["user_id"],
        person_id=user["person_id"],
        username=user["username"],
        handle=user["handle"],
        roles=tuple(user["roles"]),
        can_lock=bool(lock_roles() & set(user["roles"])),
        can_approve=bool(approve_roles() & set(user["roles"])),
    )


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        if g.staff is None:
            # (a POST's own address answers no GET: after sign-in, back to its form's page)
            target = request.full_path.rstrip("?") if request.method == "GET" else _unsent_form()
            return redirect(url_for("auth.login", next=target))
        return view(**kwargs)

    return wrapped


# A form sent after its session ended: what was typed in it, kept (in Redis, for an hour) for the
# page the form was on to show after sign-in. The session cookie names it only, as what a reason
# holds may be longer than a cookie can.
UNSENT_KEY = "podmod:unsent:{}"
UNSENT_SECONDS = 3600
UNSENT_MAX = 10_000  # characters kept (a reason is at most 2,000; a request may carry a megabyte)
NOT_DONE = "Nothing was done with the form you sent: your session had ended before it came."


def _unsent_form() -> str:
    """For a POST whose session ended: keep what was typed, say that nothing was done, and give
    the page to return to after sign-in (a path inside the app: the page the form was on, by its
    Referer when that is this app's, else the page the action belongs to), never the POST's own
    address, which answers no GET."""
    # Kept only for a session that has just ended, never for a visitor who never signed in: each
    # kept text is a Redis key for an hour, which strangers must not be able to fill.
    typed = kept_text()[:UNSENT_MAX] if g.get("session_ended") else ""
    if typed:
        token = secrets.token_urlsafe(16)
        with contextlib.suppress(redis.RedisError, ServiceUnavailable):
            redis_conn().set(UNSENT_KEY.format(token), typed, ex=UNSENT_SECONDS)
            session["unsent"] = token
    flash(f"{NOT_DONE} Sign in, then send it again.", "error")
    return _form_page()


def _form_page() -> str:
    """The page this POST's form was on, as a path inside the app (safe_next): its Referer when
    that is a page of this app, else the page of the action (its case, the lists, the queue)."""
    referrer = urlsplit(request.referrer or "")
    root = request.script_root
    if f"{referrer.scheme}://{referrer.netloc}" == own_origin() and referrer.path.startswith(
        root + "/"
    ):
        path = referrer.path[len(root) :] + (f"?{referrer.query}" if referrer.query else "")
        if safe_next(path):
            return path
    args = request.view_args or {}
    if "case_id" in args:
        page = url_for("cases.show", case_id=args["case_id"])
    elif request.endpoint == "lists.confirm_held_locks":
        page = url_for("lists.held_locks", name=args["name"])
    elif request.blueprint == "lists":
        page = url_for("lists.index")
    else:
        page = url_for("queue.index")
    return page[len(root) :]


def _unsent_text(token: str | None) -> str:
    """What a form sent after its session ended held (see _unsent_form), once."""
    if not token:
        return ""
    with contextlib.suppress(redis.RedisError, ServiceUnavailable):
        kept = redis_conn().getdel(UNSENT_KEY.format(token))
        return kept.decode() if kept else ""
    return ""


def require_lock_role() -> None:
    if not g.staff.can_lock:
        roles = " or ".join(sorted(lock_roles()))
        abort(403, f"Only a pod {roles} can lock or unlock accounts here (web.lock_roles).")


def require_approve_role() -> None:
    if not g.staff.can_approve:
        roles = " or ".join(sorted(approve_roles()))
        abort(
            403,
            f"Only a pod {roles} can approve list versions held for approval (web.approve_roles).",
        )


def audit_sign_in(actor: str, action: str, reason: str, user_id: int | None = None) -> None:
    details: dict[str, Any] = {"ip": client_ip()}
    if user_id is not None:
        details["user_id"] = user_id
    record_audit(
        state_conn(),
        actor=actor or "(empty)",
        action=action,
        source="web",
        reason=reason,
        details=details,
    )


def typed_actor(typed: str) -> str:
    """A name typed at the sign-in form, as the audit log shows it: quoted as typed, so that it
    never reads as the account's handle (anyone can type any name)."""
    return "typed: " + json.dumps(typed, ensure_ascii=False)


def _limiter() -> LoginLimiter:
    return LoginLimiter(redis_conn(), services().config)


def _device(username: str) -> str | None:
    """The nonce of this browser's device cookie if it is valid for `username`."""
    return device_nonce(current_app.secret_key, request.cookies.get(DEVICE_COOKIE), username)


def _refuse(template: str, status: int, message: str, **context: Any) -> tuple[str, int]:
    return render_template(template, error=message, **context), status


def _too_many(template: str, actor: str, username: str, wait: int, **context: Any) -> Any:
    """The limiter's refusal; the first one per window for this name and address is audited."""
    if _limiter().first_refusal(username, client_ip(), wait):
        audit_sign_in(actor, "sign_in_failed", "too many failed sign-ins")
    message = f"Too many failed sign-ins. Try again in {max(wait // 60, 1)} minutes."
    return _refuse(template, 429, message, **context)


def _start_session(user: dict[str, Any], next_path: str | None, device: str | None) -> Response:
    """A brand-new session for this user: nothing from the anonymous one survives. The browser
    gets a new device cookie for this account, so its next sign-ins pass a stranger's lockout."""
    unsent = _unsent_text(session.get("unsent"))
    end_session()
    with state_conn().transaction():  # the session and its audit row: one commit
        session["sid"] = open_session(state_conn(), user, "signed_in", prune_after=_lifetime())
        audit_sign_in(user["handle"], "sign_in", "signed in", user["user_id"])
    session.permanent = True
    csrf_token()
    if unsent:
        said = f"{NOT_DONE} What you wrote, to copy into it again:"
        flash({"text": said, "kept": unsent}, "error")
    _limiter().succeeded(user["username"], device)
    response = _after_sign_in(next_path)
    response.set_cookie(
        DEVICE_COOKIE,
        device_cookie(current_app.secret_key, user["username"]),
        max_age=DEVICE_SECONDS,
        path=(request.script_root or "") + "/",
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_path = safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.staff is not None:
            return _after_sign_in(next_path)
        return render_template("login.html", next=next_path, error=None)
    typed = request.form.get("username", "")[:100]
    username = typed.strip().lower()
    password = request.form.get("password", "")
    device = _device(username)
    limiter = _limiter()
    admission = limiter.admit(username, client_ip(), device)
    if admission.wait:
        return _too_many(
            "login.html", typed_actor(typed), username, admission.wait, next=next_path, typed=typed
        )
    user = pod_db.user_for_sign_in(pod_conn(), username) if username else None
    pepper = services().config["web.pepper"]
    if not password_matches(password, user["encrypted_password"] if user else None, pepper):
        reason = "wrong password" if user else "no such account"
        audit_sign_in(typed_actor(typed), "sign_in_failed", reason)
        return _refuse("login.html", 401, WRONG_SIGN_IN, next=next_path, typed=typed)
    limiter.give_back(admission)
    problem = refusal(user)
    if problem:
        # The password was right, but saying why would confirm it to whoever typed it.
        audit_sign_in(typed_actor(typed), "sign_in_failed", problem, user["user_id"])
        return _refuse("login.html", 401, WRONG_SIGN_IN, next=next_path, typed=typed)
    if user["otp_required"]:
        unsent = session.get("unsent")  # (for the page after the second step)
        end_session()
        if unsent:
            session["unsent"] = unsent
        session["pending"] = open_session(
            state_conn(), user, "code", next_path=next_path, prune_after=_lifetime()
        )
        csrf_token()
        return redirect(url_for("auth.code"))
    return _start_session(user, next_path, device)


@bp.route("/login/code", methods=["GET", "POST"])
def code() -> Any:
    pending = session.get("pending")
    opened = pending and find_session(state_conn(), pending, "code", CODE_STEP_SECONDS)
    if not opened:
        session.pop("pending", None)
        flash("Sign in again: the code must follow the password within five minutes.", "error")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("login_code.html", error=None)
    user = pod_db.user_state(pod_conn(), opened["user_id"])
    username = user["username"] if user else ""
    problem = session_problem(user, opened)
    if problem:
        close_session(state_conn(), session.pop("pending"))
        audit_sign_in(username, "sign_in_failed", problem, opened["user_id"])
        return _refuse("login.html", 403, problem, next=None)
    device = _device(username)
    limiter = _limiter()
    admission = limiter.admit(username, client_ip(), device)
    if admission.wait:
        return _too_many("login_code.html", user["handle"], username, admission.wait)
    step = totp_timestep(user["plain_otp_secret"] or "", request.form.get("code", ""))
    if step is None:
        audit_sign_in(user["handle"], "sign_in_failed", "wrong code", user["user_id"])
        return _refuse("login_code.html", 401, "Wrong code.")
    replayed = step <= (user["consumed_timestep"] or -1) or not consume_timestep(
        state_conn(), user["user_id"], step
    )
    if replayed:
        audit_sign_in(user["handle"], "sign_in_failed", "code used before", user["user_id"])
        return _refuse("login_code.html", 401, "This code was used already; wait for the next one.")
    limiter.give_back(admission)
    return _start_session(user, opened["next_path"], device)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if g.staff is not None:
        audit_sign_in(g.staff.handle, "sign_out", "signed out", g.staff.user_id)
    end_session()
    flash("You are signed out.", "ok")
    return redirect(url_for("auth.login"))


def actor() -> str:
    """Who acts, as decisions and the audit log record it: the staff member's handle."""
    return g.staff.handle


def action_details() -> dict[str, Any]:
    return {"ip": client_ip(), "user_id": g.staff.user_id}
