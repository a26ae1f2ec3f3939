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
hashed), `signals` (matches stored on cases, and retracted), `batches` and `runs` (the durable
work and its jobs), `overview` (what is waiting).

A (list, entry, item) is one active signal (a unique index); what a moderator marked "not a match"
and accounts on an allowlist are left out; entries that leave a list retract their signals.
"""

from podmod.scan.batches import (
    BATCH_LOCK_CLASS,
    SCAN_BATCHES,
    ScanPass,
    collect_new_content,
    enqueue_pending,
    reader_pass,
    scan_batch,
)
from podmod.scan.entries import ScanWorker, enabled_pairs, load_matcher, matcher_for
from podmod.scan.items import ITEM_TYPES, Found, Scanned, match_rows, scan_items
from podmod.scan.overview import status
from podmod.scan.photos import hash_photos
from podmod.scan.runs import (
    RUN_LOCK_CLASS,
    SCAN_RUNS,
    RunProgress,
    ScanError,
    after_list_change,
    backfill,
    create_run,
    process_pending_runs,
    process_run,
    scan_list,
    scan_run,
)
from podmod.scan.signals import retract_stale, store_found

__all__ = [
    "BATCH_LOCK_CLASS",
    "ITEM_TYPES",
    "RUN_LOCK_CLASS",
    "SCAN_BATCHES",
    "SCAN_RUNS",
    "Found",
    "RunProgress",
    "ScanError",
    "ScanPass",
    "ScanWorker",
    "Scanned",
    "after_list_change",
    "backfill",
    "collect_new_content",
    "create_run",
    "enabled_pairs",
    "enqueue_pending",
    "hash_photos",
    "load_matcher",
    "match_rows",
    "matcher_for",
    "process_pending_runs",
    "process_run",
    "reader_pass",
    "retract_stale",
    "scan_batch",
    "scan_items",
    "scan_list",
    "scan_run",
    "status",
    "store_found",
]
