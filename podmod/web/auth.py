"""Sign-in with the pod's own accounts (admins and moderators only), the second step for two-factor
accounts, sign-out, and the checks every signed-in request passes.

A session is a signed cookie naming a server-side session id kept in Redis, so that signing out or
expiry ends it for good; each request also re-reads the account from the pod, so a staff member
who is locked, closed or loses the role is signed out on their next click, as in diaspora*.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
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
from podmod.store import record_audit
from podmod.web.security import csrf_token
from podmod.web.services import pod_conn, redis_conn, services, state_conn
from podmod.web.signin import LoginLimiter, consume_timestep, password_matches, totp_timestep

bp = Blueprint("auth", __name__)

SESSION_PREFIX = "podmod:session:"
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
    sid = session.get("sid")
    if sid:
        redis_conn().delete(SESSION_PREFIX + sid)
    session.clear()
    if message:
        flash(message, "error")


@bp.before_app_request
def load_staff() -> None:
    """g.staff: the signed-in admin or moderator, checked against Redis and the pod each time."""
    g.staff = None
    if request.endpoint in ("static", "health.healthz", "health.prometheus"):
        return
    if "uid" not in session:
        return
    sid = session.get("sid")
    if (
        not sid
        or time.time() - session.get("at", 0) > _lifetime()
        or not redis_conn().exists(SESSION_PREFIX + sid)
    ):
        end_session("Your session has ended; sign in again.")
        return
    user = pod_db.user_state(pod_conn(), session["uid"])
    problem = refusal(user)
    if problem:
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
            target = request.full_path.rstrip("?") if request.method == "GET" else request.path
            return redirect(url_for("auth.login", next=target))
        return view(**kwargs)

    return wrapped


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


def _limiter() -> LoginLimiter:
    return LoginLimiter(redis_conn(), services().config)


def _refuse(template: str, status: int, message: str, **context: Any) -> tuple[str, int]:
    return render_template(template, error=message, **context), status


def _start_session(user: dict[str, Any], next_path: str | None) -> Response:
    """A brand-new session for this user: nothing from the anonymous one survives."""
    session.clear()
    sid = secrets.token_urlsafe(32)
    redis_conn().set(SESSION_PREFIX + sid, user["user_id"], ex=_lifetime())
    session.update(sid=sid, uid=user["user_id"], at=time.time())
    session.permanent = True
    csrf_token()
    _limiter().succeeded(user["username"])
    audit_sign_in(user["handle"], "sign_in", "signed in", user["user_id"])
    return _after_sign_in(next_path)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_path = safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.staff is not None:
            return _after_sign_in(next_path)
        return render_template("login.html", next=next_path, error=None)
    username = request.form.get("username", "").strip().lower()[:100]
    password = request.form.get("password", "")
    limiter = _limiter()
    wait = limiter.retry_after(username, client_ip())
    if wait:
        audit_sign_in(username, "sign_in_failed", "too many failed sign-ins")
        return _refuse(
            "login.html",
            429,
            f"Too many failed sign-ins. Try again in {max(wait // 60, 1)} minutes.",
            next=next_path,
        )
    user = pod_db.user_for_sign_in(pod_conn(), username) if username else None
    pepper = services().config["web.pepper"]
    if not password_matches(password, user["encrypted_password"] if user else None, pepper):
        limiter.failed(username, client_ip())
        audit_sign_in(username, "sign_in_failed", "wrong password" if user else "no such account")
        return _refuse("login.html", 401, "Wrong username or password.", next=next_path)
    problem = refusal(user)
    if problem:
        audit_sign_in(username, "sign_in_failed", problem, user["user_id"])
        return _refuse("login.html", 403, problem, next=next_path)
    if user["otp_required"]:
        session.clear()
        session["otp"] = {"uid": user["user_id"], "at": time.time(), "next": next_path}
        csrf_token()
        return redirect(url_for("auth.code"))
    return _start_session(user, next_path)


@bp.route("/login/code", methods=["GET", "POST"])
def code() -> Any:
    pending = session.get("otp")
    if not pending or time.time() - pending["at"] > CODE_STEP_SECONDS:
        session.pop("otp", None)
        flash("Sign in again: the code must follow the password within five minutes.", "error")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("login_code.html", error=None)
    user = pod_db.user_state(pod_conn(), pending["uid"])
    username = user["username"] if user else ""
    limiter = _limiter()
    wait = limiter.retry_after(username, client_ip())
    if wait:
        audit_sign_in(username, "sign_in_failed", "too many failed sign-ins")
        return _refuse(
            "login_code.html",
            429,
            f"Too many failed sign-ins. Try again in {max(wait // 60, 1)} minutes.",
        )
    problem = refusal(user)
    if problem:
        session.pop("otp", None)
        audit_sign_in(username, "sign_in_failed", problem, pending["uid"])
        return _refuse("login.html", 403, problem, next=None)
    step = totp_timestep(user["plain_otp_secret"] or "", request.form.get("code", ""))
    if step is None:
        limiter.failed(username, client_ip())
        audit_sign_in(user["handle"], "sign_in_failed", "wrong code", user["user_id"])
        return _refuse("login_code.html", 401, "Wrong code.")
    replayed = step <= (user["consumed_timestep"] or -1) or not consume_timestep(
        state_conn(), user["user_id"], step
    )
    if replayed:
        limiter.failed(username, client_ip())
        audit_sign_in(user["handle"], "sign_in_failed", "code used before", user["user_id"])
        return _refuse("login_code.html", 401, "This code was used already; wait for the next one.")
    return _start_session(user, pending.get("next"))


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
