"""What content scanning has waiting: undone batches, runs and their progress, matches."""

from __future__ import annotations

from typing import Any

from podmod.config import Config
from podmod.scan.runs import run_tables


def status(config: Config) -> dict[str, Any]:
    """What is waiting: undone batches, runs and their progress, photo hashes."""
    from podmod.db import state_connection

    with state_connection(config) as state:
        batches = state.execute(
            "SELECT count(*) AS n, coalesce(sum(cardinality(item_ids)), 0) AS items"
            " FROM podmod.scan_batches WHERE done_at IS NULL"
        ).fetchone()
        runs = state.execute(
            "SELECT r.id, r.reason, l.name AS list, r.version,"
            " r.entry_kind || ':' || r.entry_value AS entry, r.created_at, r.done_at"
            " FROM podmod.scan_runs r LEFT JOIN podmod.lists l ON l.id = r.list_id"
            " ORDER BY r.id DESC LIMIT 20"
        ).fetchall()
        out_runs = []
        for run in runs:
            tables = run_tables(state, run["id"])
            out_runs.append(
                {
                    "id": run["id"],
                    "reason": run["reason"],
                    "list": run["list"],
                    "version": run["version"],
                    "entry": run["entry"],  # (one entry of the list: a held entry confirmed)
                    "done": run["done_at"] is not None,
                    "created_at": run["created_at"].isoformat(),
                    "tables": {
                        t["item_type"]: {
                            "cursor": t["cursor"],
                            "top": t["top"],
                            "items": t["items"],
                            "matched": t["matched"],
                        }
                        for t in tables
                    },
                }
            )
        matches = state.execute(
            "SELECT count(*) FILTER (WHERE retracted_at IS NULL) AS active, count(*) AS total"
            " FROM podmod.signals WHERE kind = 'content'"
        ).fetchone()
    return {
        "pending_batches": batches["n"],
        "pending_items": int(batches["items"]),
        "runs": out_runs,
        "active_matches": matches["active"],
        "matches": matches["total"],
    }
