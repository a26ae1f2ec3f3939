"""podmod's admin web UI: a Flask app of server-rendered pages (queue, cases, lists, audit log,
dashboard) for the pod's admins and moderators, signed in with their own pod accounts.

`create_app(config)` builds it; `podmod serve` runs it with waitress, and `podmod.web.wsgi:app` is
the same app for gunicorn or any other WSGI server.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import timedelta
from typing import Any

import redis
from flask import Flask, abort, g, render_template, request
from jinja2 import StrictUndefined
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from podmod.config import Config, load_config
from podmod.errors import SchemaOutOfDate, ServiceUnavailable
from podmod.queue import UNTRUSTED_PROXY_KEY
from podmod.web import formatting, security
from podmod.web.services import Services, config_notice, redis_conn, release_connections

log = logging.getLogger("podmod.web")


def create_app(config: Config | None = None) -> Flask:
    """The web app for this configuration (read from the file and environment if not given)."""
    config = config or load_config()
    app = Flask(__name__)
    app.jinja_options = {**app.jinja_options, "autoescape": True, "undefined": StrictUndefined}
    secret_key = config["secret_key"]
    if not secret_key:
        log.warning(
            "secret_key is not set: using a random one, so every session ends when podmod serve "
            "restarts (and several server processes would not share sessions); set secret_key or "
            "PODMOD_SECRET_KEY."
        )
        secret_key = secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="podmod_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config["web.session_minutes"]),
        MAX_CONTENT_LENGTH=1024 * 1024,
        MAX_FORM_MEMORY_SIZE=256 * 1024,
    )
    app.extensions["podmod"] = Services(config)
    app.before_request(lambda: app.extensions["podmod"].look_at_config())
    app.before_request(_refuse_nul)
    app.jinja_env.globals["config_notice"] = config_notice
    security.init_app(app)
    formatting.init_app(app)
    app.teardown_appcontext(release_connections)

    from podmod.web import (
        appeal,
        audit,
        auth,
        cases,
        dashboard,
        deliveries,
        health,
        lists,
        opt_out,
    )
    from podmod.web import queue as queue_pages

    for blueprint in (
        auth.bp,
        queue_pages.bp,
        cases.bp,
        lists.bp,
        audit.bp,
        dashboard.bp,
        deliveries.bp,
        health.bp,
        opt_out.bp,
        appeal.bp,
    ):
        app.register_blueprint(blueprint)
    _register_error_pages(app)

    proxies = config["web.trusted_proxies"]
    if not proxies:
        app.before_request(_refuse_an_unbelieved_proxy)
    else:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=proxies,
            x_proto=proxies,
            x_host=proxies,
            x_port=proxies,
            x_prefix=proxies,
        )
    return app


def _refuse_nul() -> None:
    """A NUL character anywhere in the path, the query or a form field: PostgreSQL text cannot hold
    one, so it would fail deep in a query; refused before anything reads the request. A password
    is only ever hashed, so one with a NUL in it is just a wrong password."""
    texts = [request.path, *request.args.keys(), *request.args.values()]
    if request.method == "POST":
        texts += [
            text
            for name, value in request.form.items(multi=True)
            for text in (name, value)
            if name != "password"
        ]
    if any("\x00" in text for text in texts):
        abort(400, "The request holds a NUL character (%00), which podmod does not accept.")


def _refuse_an_unbelieved_proxy() -> Any:
    """A proxy that sends X-Forwarded-Prefix while web.trusted_proxies is 0 (the shipped nginx
    block before step 3 of the install): every link and redirect would leave the prefix, so
    explain instead of serving a page that cannot work, and leave a note for `podmod check`."""
    prefix = request.headers.get("X-Forwarded-Prefix")
    if prefix is None or request.endpoint in ("health.healthz", "health.prometheus"):
        return None
    with contextlib.suppress(redis.RedisError):  # without Redis the page still says it all
        redis_conn().set(UNTRUSTED_PROXY_KEY, prefix, ex=24 * 3600)
    return _error_page(500, "podmod does not believe its proxy", untrusted_proxy_advice(prefix))


def untrusted_proxy_advice(prefix: str) -> str:
    return (
        f"A proxy serves podmod under {prefix} (X-Forwarded-Prefix), but web.trusted_proxies is "
        "0, so podmod would build its links and redirects without that prefix: set [web] "
        "trusted_proxies = 1 in podmod.toml and restart podmod serve."
    )


def _error_page(code: int, title: str, message: str) -> tuple[str, int]:
    if "staff" not in g:
        g.staff = None
    kept = g.get("kept_text") or None
    return (
        render_template("error.html", code=code, title=title, message=message, kept=kept),
        code,
    )


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if request.endpoint in ("health.healthz", "health.prometheus"):
            return error
        return _error_page(error.code or 500, error.name, error.description or "")

    @app.errorhandler(SchemaOutOfDate)
    def out_of_date(error: Exception) -> Any:
        log.error("%s", error)
        return _error_page(503, "Service unavailable", str(error))

    @app.errorhandler(ServiceUnavailable)
    def unavailable(error: Exception) -> Any:
        from podmod.web.health import from_loopback

        log.error("%s", error)
        if not from_loopback():  # the sentence names hosts and databases: for this host only
            return _error_page(
                503,
                "Service unavailable",
                "A service podmod needs does not answer; the details are in podmod's log.",
            )
        return _error_page(503, "Service unavailable", str(error))

    @app.errorhandler(redis.RedisError)
    def redis_down(error: Exception) -> Any:
        log.error("Redis: %s", error)
        return _error_page(
            503, "Service unavailable", "Redis does not answer; check that it is running."
        )

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error_page(
            500,
            "Something went wrong",
            "podmod hit an unexpected error; the details are in its log.",
        )
