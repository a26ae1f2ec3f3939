"""The web app's defences: CSRF token and Origin check on every POST, strict security headers, and
session cookies that are HttpOnly, SameSite=Lax, Secure over HTTPS and scoped to the app's prefix.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, Response, abort, g, request, session
from flask.sessions import SecureCookieSessionInterface

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The free text of the case and appeal forms, and what is typed to add to this pod's list.
KEPT_FIELDS = ("entry", "label", "note", "reason", "statement")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, holding only the session id (the rest is server-side, in
    podmod.web.sessions) and the CSRF token; Secure whenever the request came over HTTPS (plain
    http://127.0.0.1 still works) and limited to the app's path prefix."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def get_cookie_path(self, app: Flask) -> str:
        return (request.script_root or "") + "/"


def csrf_token() -> str:
    """This session's CSRF token (made on first use); every form sends it back."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def own_origin() -> str:
    return f"{request.scheme}://{request.host}"


def check_post() -> None:
    """Refuse a state-changing request from another origin, or without this session's token."""
    if request.method in SAFE_METHODS:
        return
    if request.endpoint == "opt_out.page":
        # A reporter's opt-out: the POST of RFC 8058's one-click comes from a mail client, with no
        # session and no token of ours. No cookie grants it anything: the signed token in its URL
        # names the one reporter it opts out, so it is its own proof (podmod.web.opt_out).
        return
    origin = request.headers.get("Origin")
    if origin is not None and origin != own_origin():
        abort(
            403,
            f"This form was sent from {origin}, not from {own_origin()}, so it was refused. If "
            "podmod runs behind a proxy, set web.trusted_proxies so that it knows its own address.",
        )
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403, "This form was sent from another site, so it was refused.")
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        # What the moderator wrote is not lost with the refused form: the page shows it to copy.
        g.kept_text = kept_text()
        abort(
            400,
            "The form's security token is missing or out of date (the session may have ended); "
            "reload the page and try again.",
        )


def kept_text() -> str:
    """What was typed into the form sent (KEPT_FIELDS), for a page to show to copy when the form
    was not acted on."""
    return "\n\n".join(
        request.form[name].strip() for name in KEPT_FIELDS if request.form.get(name, "").strip()
    )


def set_headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.before_request(check_post)
    app.after_request(set_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
