"""`/healthz`: both databases, podmod's schema and Redis, as JSON; 200 when all answer, else 503.
No sign-in needed, and nothing in it but the state of each service: what is wrong with one (which
names hosts and databases) only for this host's own monitoring, from a loopback address.
`/metrics`: podmod's Prometheus metrics, for scrapers on this host only (loopback addresses)."""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from podmod import metrics, store
from podmod.errors import first_line
from podmod.web.services import redis_conn, services, state_conn

bp = Blueprint("health", __name__)

TIMEOUT = 3.0


def _database(url: str, purpose: str, *, schema: bool) -> str:
    try:
        conn = services().getconn(url, purpose, timeout=TIMEOUT)
    except Exception as error:  # any failure is the answer, not an error of this page
        return str(error)
    try:
        conn.execute("SELECT 1")
        if schema:
            store.require_current_schema(conn)
        return "ok"
    except Exception as error:
        return first_line(error)
    finally:
        services().putconn(url, conn)


def from_loopback() -> bool:
    """Whether the request comes from this host (after a trusted proxy's X-Forwarded-For)."""
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.route("/healthz")
def healthz() -> Any:
    config = services().config
    checks = {
        "pod_database": _database(config.database_url, "pod", schema=False),
        "state_database": _database(config.state_database_url, "state", schema=True),
    }
    try:
        services().redis().ping()
        checks["redis"] = "ok"
    except Exception as error:
        checks["redis"] = str(error)
    ok = all(value == "ok" for value in checks.values())
    if not from_loopback():
        checks = {name: "ok" if value == "ok" else "unavailable" for name, value in checks.items()}
    return jsonify(ok=ok, checks=checks), 200 if ok else 503


@bp.route("/metrics")
def prometheus() -> Response:
    if not from_loopback():
        abort(403, "Metrics are served to this host only (scrape http://127.0.0.1:PORT/metrics).")
    body = metrics.collect(services().config, state_conn(), redis_conn())
    return Response(body, mimetype="text/plain; version=0.0.4")
