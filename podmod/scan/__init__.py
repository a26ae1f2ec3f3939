"""Content scanning: the pod's posts, comments, profiles and photos matched against the lists'
hashtag, phrase, url, pdq and sha256 entries (podmod.matching), each match a signal on its
author's case.

Three ways content is scanned, each durable in PostgreSQL (podmod.durable) and safe to run twice:
- new content (`batches`): each reader pass writes the new ids of each table as a batch
  (podmod.scan_batches) before enqueueing its job, and the job marks the batch done in the
  transaction that stores its matches;
- a list version (`runs`): the entries it added are matched against the content already there,
  as a run (podmod.scan_runs) created in the transaction that applies the version and worked
  through by the workers, table by table, in id ranges, each step committed with its cursor;
- `podmod scan --backfill` (`runs`): every entry in force against everything already there, as a
  run in the foreground that resumes from its cursors when started again.

The modules, in the order content goes through them: `entries` (the matcher compiled from the
entries in force), `items` (the pod's rows read and matched), `photos` (photo files and downloads
hashed), `signals` (matches stored on cases), `changes` (what a list change asks: stale matches
retracted, a run for its new entries), `batches` and `runs` (the durable work and its jobs),
`overview` (what is waiting).

A (list, entry, item) is one active signal (a unique index); what a moderator marked "not a match"
and accounts on an allowlist are left out; entries that leave a list retract their signals.

Importing the package loads none of its modules: each name below loads its module when first
asked for (`podmod lists sync` needs only `changes`, without the matcher and the queue).
"""

from __future__ import annotations

import importlib
from typing import Any

from podmod.kinds import ITEM_TYPES

# Each name the package offers, and its module.
_MODULES = {
    "batches": (
        "BATCH_LOCK_CLASS",
        "SCAN_BATCHES",
        "ScanPass",
        "collect_new_content",
        "enqueue_pending",
        "reader_pass",
        "scan_batch",
    ),
    "changes": (
        "after_list_change",
        "create_run",
        "enabled_pairs",
        "kinds_present",
        "retract_stale",
    ),
    "entries": ("ScanWorker", "load_matcher", "matcher_for"),
    "items": ("Found", "Scanned", "match_rows", "scan_items"),
    "overview": ("status",),
    "photos": ("hash_photos",),
    "runs": (
        "RUN_LOCK_CLASS",
        "SCAN_RUNS",
        "RunProgress",
        "ScanError",
        "backfill",
        "process_pending_runs",
        "process_run",
        "scan_list",
        "scan_run",
    ),
    "signals": ("store_found",),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}
__all__ = ["ITEM_TYPES", *sorted(_HOMES)]


def __getattr__(name: str) -> Any:
    """A name of a module of the package (or the module itself), loaded when first asked for."""
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
