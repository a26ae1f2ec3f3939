"""Prometheus metrics (`/metrics`): queue depth, job failures, cases by status, intake backlog and
latency, list sync age and failures, the notification outbox, reader heartbeat. Plain text
exposition format, no library."""

from __future__ import annotations

import time
from collections.abc import Iterable

import psycopg
import redis
from rq.registry import FailedJobRegistry, StartedJobRegistry

from podmod import queue, store
from podmod.config import Config
from podmod.store import CASE_STATUSES


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    """Collects metric families and renders them in the text format."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            self.lines.append(
                f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}"
            )

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _notifications(out: Exposition, state: psycopg.Connection) -> None:
    """The outbox: deliveries waiting by channel, the oldest one's age, given-up rows in the
    last week, and when each channel last failed."""
    from podmod.notify.status import last_failure_by_channel, outbox_status, waiting_by_channel

    waiting = waiting_by_channel(state)
    status = outbox_status(state)
    out.family(
        "podmod_outbox_waiting",
        "gauge",
        "Mails and webhooks waiting to be delivered (new or retried).",
        [({"channel": channel}, waiting.get(channel, 0)) for channel in ("mail", "webhook")],
    )
    out.family(
        "podmod_outbox_oldest_waiting_seconds",
        "gauge",
        "Age of the oldest delivery waiting.",
        [({}, round(status["oldest_seconds"] or 0, 1))],
    )
    out.family(
        "podmod_outbox_given_up",
        "gauge",
        "Deliveries of the last week given up after a day of failures.",
        [({}, status["given_up"])],
    )
    out.family(
        "podmod_outbox_last_failure_timestamp_seconds",
        "gauge",
        "When a delivery last failed, by channel (Unix time; absent: never).",
        [
            ({"channel": channel}, round(at, 3))
            for channel, at in last_failure_by_channel(state).items()
        ],
    )


def collect(config: Config, state: psycopg.Connection, rconn: redis.Redis) -> str:
    out = Exposition()
    queues = queue.all_queues(config, rconn)
    out.family(
        "podmod_queue_jobs",
        "gauge",
        "Jobs waiting in each podmod queue.",
        [({"queue": q.name}, q.count) for q in queues],
    )
    out.family(
        "podmod_queue_jobs_running",
        "gauge",
        "Jobs being worked on.",
        [({"queue": q.name}, StartedJobRegistry(queue=q).count) for q in queues],
    )
    out.family(
        "podmod_queue_jobs_failed",
        "gauge",
        "Jobs that failed after their retries.",
        [({"queue": q.name}, FailedJobRegistry(queue=q).count) for q in queues],
    )
    by_status = {
        row["status"]: row["n"]
        for row in state.execute("SELECT status, count(*) AS n FROM podmod.cases GROUP BY status")
    }
    out.family(
        "podmod_cases",
        "gauge",
        "Cases by status.",
        [({"status": s}, by_status.get(s, 0)) for s in CASE_STATUSES],
    )
    signals = state.execute(
        "SELECT kind, count(*) FILTER (WHERE retracted_at IS NULL) AS active FROM podmod.signals"
        " GROUP BY kind"
    ).fetchall()
    out.family(
        "podmod_signals",
        "gauge",
        "Active signals by kind.",
        [({"kind": row["kind"]}, row["active"]) for row in signals],
    )
    work = store.backlog(state)
    out.family(
        "podmod_intake_batches_pending",
        "gauge",
        "Intake batches not yet stored.",
        [({}, work["intake"]["count"])],
    )
    out.family(
        "podmod_intake_reports_pending",
        "gauge",
        "Reports read but not yet stored.",
        [({}, work["intake"]["items"])],
    )
    out.family(
        "podmod_scan_batches_pending",
        "gauge",
        "New-content scan batches not yet matched.",
        [({}, work["scan"]["count"])],
    )
    out.family(
        "podmod_scan_items_pending",
        "gauge",
        "New posts, comments, profiles and photos read but not yet matched.",
        [({}, work["scan"]["items"])],
    )
    out.family(
        "podmod_scan_runs_active",
        "gauge",
        "Scans of the content already on the pod (backfill, new list entries) not yet done.",
        [({}, work["scan_runs"]["count"])],
    )
    out.family(
        "podmod_oldest_pending_seconds",
        "gauge",
        "Age of the oldest undone batch, by kind of work.",
        [({"work": name}, round(work[name]["oldest_seconds"], 1)) for name in ("intake", "scan")],
    )
    latency = state.execute(
        "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY"
        " extract(epoch FROM created_at - occurred_at)) AS q FROM podmod.signals"
        " WHERE kind = 'report' AND created_at > now() - interval '1 hour'"
        " AND occurred_at > now() - interval '1 hour'"
    ).fetchone()["q"]
    out.family(
        "podmod_report_to_case_seconds",
        "gauge",
        "Report created in diaspora* to signal stored, over the last hour.",
        [
            ({"quantile": q}, round(v, 3))
            for q, v in zip(("0.5", "0.95"), latency or [], strict=False)
            if v is not None
        ],
    )
    lists = state.execute(
        "SELECT name, origin, policy, coalesce(current_version, 0) AS version,"
        # (this pod's own list is never synced: it has no sync age)
        " CASE WHEN origin = 'subscription' THEN extract(epoch FROM now() - last_success_at)"
        "  END AS age,"
        " (last_error_at IS NOT NULL AND (last_success_at IS NULL"
        "  OR last_error_at > last_success_at))::int AS failing,"
        " (SELECT count(*) FROM podmod.list_versions v WHERE v.list_id = l.id"
        "  AND v.status = 'held') AS held FROM podmod.lists l ORDER BY name"
    ).fetchall()
    # A list taken out of the configuration (retired; its versions kept) is no longer synced:
    # its age would grow, and an alert on it fire, for ever.
    subscribed = {subscription.name for subscription in config.lists}
    lists = [r for r in lists if r["origin"] == "local" or r["name"] in subscribed]
    out.family(
        "podmod_list_version",
        "gauge",
        "Version in force of each list.",
        [({"list": r["name"], "policy": r["policy"]}, r["version"]) for r in lists],
    )
    out.family(
        "podmod_list_sync_age_seconds",
        "gauge",
        "Seconds since the last successful sync.",
        [({"list": r["name"]}, round(r["age"], 1)) for r in lists if r["age"] is not None],
    )
    out.family(
        "podmod_list_sync_failing",
        "gauge",
        "1 if the last sync of the list failed.",
        [({"list": r["name"]}, r["failing"]) for r in lists],
    )
    out.family(
        "podmod_list_versions_held",
        "gauge",
        "Versions held for approval.",
        [({"list": r["name"]}, r["held"]) for r in lists],
    )
    decisions = state.execute(
        "SELECT action, count(*) AS n FROM podmod.decisions GROUP BY action"
    ).fetchall()
    out.family(
        "podmod_decisions_total",
        "counter",
        "Decisions taken, by action.",
        [({"action": r["action"]}, r["n"]) for r in decisions],
    )
    _notifications(out, state)
    seen = rconn.get(queue.READER_HEARTBEAT_KEY)
    out.family(
        "podmod_reader_heartbeat_age_seconds",
        "gauge",
        "Seconds since the reader's last pass (absent: no reader in the last minute).",
        [({}, round(time.time() - float(seen), 1))] if seen else [],
    )
    state.rollback()
    return out.render()
