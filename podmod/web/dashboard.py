"""The dashboard: what the queue looks like now, and reports, list matches, new cases and actions
per day over the last 30 days, as charts drawn in inline SVG on the server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, render_template

from podmod.web.auth import login_required
from podmod.web.charts import bar_chart
from podmod.web.services import state_conn

bp = Blueprint("dashboard", __name__)

DAYS = 30

# (key, title, SQL giving (day, n) for days since %(since)s; days are UTC dates)
SERIES = (
    (
        "reports",
        "Reports received per day",
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM podmod.signals"
        " WHERE kind = 'report' AND occurred_at >= %(since)s GROUP BY 1",
    ),
    (
        "matches",
        "List matches per day",
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM podmod.signals"
        " WHERE kind = 'list' AND created_at >= %(since)s GROUP BY 1",
    ),
    (
        "cases",
        "Cases opened per day",
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM podmod.cases"
        " WHERE created_at >= %(since)s GROUP BY 1",
    ),
    (
        "actions",
        "Actions taken per day (locks, reviews, dismissals, notes)",
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM podmod.decisions"
        " WHERE created_at >= %(since)s GROUP BY 1",
    ),
)

NOW_SQL = """
SELECT (SELECT count(*) FROM podmod.cases WHERE status = 'open') AS open_cases,
       (SELECT count(*) FROM podmod.cases WHERE status = 'open' AND local) AS open_local,
       (SELECT coalesce(sum(pending_report_count), 0) FROM podmod.cases WHERE status = 'open')
           AS pending_reports,
       (SELECT count(*) FROM podmod.cases WHERE status = 'open' AND list_match_count > 0)
           AS open_listed,
       (SELECT count(DISTINCT person_id) FROM podmod.decisions
        WHERE action = 'lock' AND created_at >= %(since)s) AS locks
"""


def days_back(today: date, count: int = DAYS) -> list[date]:
    return [today - timedelta(days=count - 1 - n) for n in range(count)]


@bp.route("/dashboard")
@login_required
def index() -> str:
    state = state_conn()
    days = days_back(datetime.now(UTC).date())
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    charts = []
    for key, title, sql in SERIES:
        counts: dict[date, int] = {
            row["day"]: row["n"] for row in state.execute(sql, {"since": since})
        }
        charts.append(bar_chart(key, title, days, [counts.get(day, 0) for day in days]))
    now: dict[str, Any] = state.execute(NOW_SQL, {"since": since}).fetchone()
    return render_template("dashboard.html", charts=charts, now=now, days=days)
