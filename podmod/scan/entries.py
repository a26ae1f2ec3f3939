"""The content entries in force, compiled into a matcher once per process and list state; the
worker class that compiles them before each scan job is forked off."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from podmod import queue
from podmod.config import Config
from podmod.matching import Matcher
from podmod.matching.matcher import MatcherBuilder
from podmod.scan.changes import enabled_pairs

log = logging.getLogger("podmod.scan")

SCAN_JOBS = (queue.SCAN_BATCH_JOB, queue.SCAN_RUN_JOB)
MATCHING_POLICIES = ("review", "lock")  # `lock` lists' content matches are for review, too


ENTRIES_SQL = """
SELECT e.list_id, l.name, e.kind, e.value, e.label, e.added_in
FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id AND l.policy IN ('review', 'lock')
JOIN unnest(%(names)s::text[], %(kinds)s::text[]) AS enabled (name, kind)
  ON enabled.name = l.name AND enabled.kind = e.kind
WHERE e.removed_in IS NULL AND e.kind <> 'pdq'
  AND (cardinality(l.labels) = 0 OR e.labels && l.labels)
  AND (%(list_id)s::integer IS NULL OR e.list_id = %(list_id)s)
  AND (%(version)s::integer IS NULL OR e.added_in = %(version)s)
  AND (%(entry_kind)s::text IS NULL OR (e.kind = %(entry_kind)s AND e.value = %(entry_value)s))
"""

# PDQ hashes: their groups (list, label, version) first, then each group's hashes, 250,000 ids
# at a time, as one string of 64-digit hashes end to end, turned into numbers in one step: no
# object per hash.
PDQ_GROUPS_SQL = """
SELECT e.list_id, l.name, e.label, e.added_in, min(e.id) AS low, max(e.id) AS high
FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id AND l.policy IN ('review', 'lock')
WHERE e.removed_in IS NULL AND e.kind = 'pdq' AND l.name = ANY(%(names)s::text[])
  AND (cardinality(l.labels) = 0 OR e.labels && l.labels)
  AND (%(list_id)s::integer IS NULL OR e.list_id = %(list_id)s)
  AND (%(version)s::integer IS NULL OR e.added_in = %(version)s)
  AND (%(entry_kind)s::text IS NULL OR (e.kind = %(entry_kind)s AND e.value = %(entry_value)s))
GROUP BY e.list_id, l.name, e.label, e.added_in
"""
PDQ_VALUES_SQL = """
SELECT coalesce(string_agg(e.value, ''), '') FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id
WHERE e.list_id = %s AND e.label = %s AND e.added_in = %s AND e.kind = 'pdq'
  AND e.removed_in IS NULL AND e.id >= %s AND e.id < %s
  AND (cardinality(l.labels) = 0 OR e.labels && l.labels)
  AND (%s::text IS NULL OR e.value = %s)
"""
PDQ_IDS_PER_QUERY = 250_000

# What the compiled entries depend on: each list's version in force, policy, labels and kinds
# (every change to a list's entries is a new version of it, this pod's own list's too).
FINGERPRINT_SQL = """
SELECT coalesce(array_agg(id || ':' || coalesce(current_version, 0) || ':' || policy || ':'
                          || labels::text || ':' || kinds::text ORDER BY id), '{}') AS lists,
       (SELECT max(coalesce(applied_at, fetched_at)) FROM podmod.list_versions) AS last_version
FROM podmod.lists
"""

_matchers: dict[tuple[Any, ...], Matcher] = {}


def _fingerprint(config: Config, state: psycopg.Connection) -> tuple[Any, ...]:
    row = state.execute(FINGERPRINT_SQL).fetchone()
    return (config.state_database_url, tuple(row["lists"]), row["last_version"])


def load_matcher(
    config: Config,
    state: psycopg.Connection,
    *,
    list_id: int | None = None,
    version: int | None = None,
    entry: tuple[str, str] | None = None,
) -> Matcher:
    """Compile the content entries in force (or those of one list, of one list version, or a
    list's one entry (kind, value))."""
    names, kinds = enabled_pairs(state)
    pairs = [(name, kind) for name, kind in zip(names, kinds, strict=True) if kind != "pdq"]
    wanted = {
        "names": [name for name, _ in pairs],
        "kinds": [kind for _, kind in pairs],
        "list_id": list_id,
        "version": version,
        "entry_kind": entry[0] if entry else None,
        "entry_value": entry[1] if entry else None,
    }
    builder = MatcherBuilder()
    with state.transaction():
        with state.cursor(name="podmod_entries", row_factory=tuple_row) as cur:
            cur.itersize = 50_000
            cur.execute(ENTRIES_SQL, wanted)
            for row in cur:
                builder.add(*row)
        pdq_lists = [name for name, kind in zip(names, kinds, strict=True) if kind == "pdq"]
        groups = (
            state.cursor(row_factory=tuple_row)
            .execute(PDQ_GROUPS_SQL, wanted | {"names": pdq_lists})
            .fetchall()
        )
        for group_list, list_name, label, added_in, low, high in groups:
            for start in range(low, high + 1, PDQ_IDS_PER_QUERY):
                [hexes] = (
                    state.cursor(row_factory=tuple_row)
                    .execute(
                        PDQ_VALUES_SQL,
                        (
                            group_list,
                            label,
                            added_in,
                            start,
                            start + PDQ_IDS_PER_QUERY,
                            wanted["entry_value"],
                            wanted["entry_value"],
                        ),
                    )
                    .fetchone()
                )
                builder.add_pdq_block(group_list, list_name, label, added_in, hexes)
    return builder.build()


def matcher_for(
    config: Config,
    state: psycopg.Connection,
    *,
    list_id: int | None = None,
    version: int | None = None,
    entry: tuple[str, str] | None = None,
) -> Matcher:
    """The compiled entries, from this process's cache while the lists have not changed."""
    key = (_fingerprint(config, state), list_id, version, entry)
    state.rollback()  # (called outside any transaction of the caller's)
    matcher = _matchers.get(key)
    if matcher is None:
        # Keep one matcher of all entries and one of a list's; drop the old one first, so that a
        # recompile never holds two large ones at once.
        for old in [k for k in _matchers if (k[1] is None) == (list_id is None)]:
            del _matchers[old]
        started = time.perf_counter()
        matcher = load_matcher(config, state, list_id=list_id, version=version, entry=entry)
        _matchers[key] = matcher
        log.debug(
            "compiled %d content entries in %.2f s", len(matcher), time.perf_counter() - started
        )
    return matcher


class ScanWorker(queue.PodmodWorker):
    """podmod's RQ worker (it runs only podmod's jobs): before a scan job is forked off, the
    compiled entries are brought up to date in the worker itself, so that every job (a child
    process) starts with them at no cost."""

    def execute_job(self, job: Any, queue: Any) -> Any:
        if job.func_name in SCAN_JOBS:
            try:
                from podmod.config import load_config
                from podmod.db import state_connection

                config = load_config()
                with state_connection(config) as state:
                    matcher_for(config, state)
            except Exception as error:  # the job itself will report what is wrong
                log.warning("could not compile the content entries before a job: %s", error)
        return super().execute_job(job, queue)
