"""What a list change asks of content scanning, inside the transaction that makes it: content
signals whose entries no longer apply retracted, and a run recorded over the content already on
the pod for the new entries (the workers take it up, podmod.scan.runs).

Apart from the matcher and the queue, which it never needs: `podmod lists sync` imports this alone
(loading the whole of podmod.scan, numpy and rq with it, took a quarter of a second of every sync
that applies a version)."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from podmod.kinds import CONTENT_KINDS, ascii_account, tables_for
from podmod.store import INGEST_LOCK, resolve_cases_without_pending

log = logging.getLogger("podmod.scan")


# Each list's content kinds as its last sync stored them (podmod.lists.kinds, which `podmod lists
# sync` writes from the configuration it reads), never a process's own copy of the configuration:
# a reader started before a list was added to podmod.toml would never batch new content for it,
# and a web UI started before would retract its matches when it approves a version of another.
ENABLED_SQL = """
SELECT l.name, enabled.kind FROM podmod.lists l CROSS JOIN LATERAL unnest(l.kinds) AS enabled (kind)
WHERE enabled.kind = ANY (%s::text[]) ORDER BY l.id, enabled.kind
"""


def enabled_pairs(state: psycopg.Connection) -> tuple[list[str], list[str]]:
    """(list names, kinds): every content kind each list has switched on at its last sync."""
    rows = state.cursor(row_factory=tuple_row).execute(ENABLED_SQL, (list(CONTENT_KINDS),))
    pairs = rows.fetchall()
    return [name for name, _ in pairs], [kind for _, kind in pairs]


# Whether a list that has switched the kind on holds an entry of it in force (of one list, or
# added by one version). Asked kind by kind, the kind a constant in the text: then the planner
# asks the BRIN (list_entries_ranges, the kind among its columns), so that a list of a million pod
# entries and no content costs nothing here. With the kind a join column it guesses every entry is
# of it and reads them all, 0.2 s a kind at a million, on every scan pass of the reader.
KIND_PRESENT_SQL = """
SELECT EXISTS (
    SELECT 1 FROM podmod.list_entries e
    JOIN podmod.lists l ON l.id = e.list_id AND l.policy IN ('review', 'lock')
    WHERE e.kind = {kind} AND e.removed_in IS NULL AND l.name = ANY (%(names)s::text[])
      AND (%(list_id)s::integer IS NULL OR e.list_id = %(list_id)s)
      AND (%(version)s::integer IS NULL OR e.added_in = %(version)s)
      AND (%(value)s::text IS NULL OR e.value = %(value)s)) AS present
"""


def kinds_present(
    state: psycopg.Connection,
    *,
    list_id: int | None = None,
    version: int | None = None,
    entry: tuple[str, str] | None = None,
) -> list[str]:
    """The content kinds switched on whose entries are in force (all, a list's, those a list
    version added, or a list's one entry (kind, value))."""
    names, kinds = enabled_pairs(state)
    present = []
    for kind in dict.fromkeys(kinds):
        if entry is not None and kind != entry[0]:
            continue
        listed = [name for name, each in zip(names, kinds, strict=True) if each == kind]
        statement = sql.SQL(KIND_PRESENT_SQL).format(kind=sql.Literal(kind))
        value = None if entry is None else entry[1]
        wanted = {"names": listed, "list_id": list_id, "version": version, "value": value}
        if state.execute(statement, wanted).fetchone()["present"]:
            present.append(kind)
    return present


# Retraction: entries gone from a list, lists that no longer apply, kinds switched off, accounts
# now on an allowlist.
RETRACT_SQL = """
UPDATE podmod.signals s
SET retracted_at = now(),
    details = s.details || jsonb_build_object(
        'retracted_because',
        CASE WHEN NOT podmod.entry_listed(s.list_id, s.entry_kind, s.entry_value)
             THEN 'removed from the list'
             WHEN l.policy NOT IN ('review', 'lock')
             THEN 'the list no longer applies (policy ' || l.policy || ')'
             WHEN (l.name, s.entry_kind) NOT IN (
                 SELECT * FROM unnest(%(names)s::text[], %(kinds)s::text[]))
             THEN 'the list''s ' || s.entry_kind || ' entries are switched off'
             WHEN cardinality(l.labels) > 0 AND NOT EXISTS (
                 SELECT 1 FROM podmod.list_entries e
                 WHERE e.list_id = s.list_id AND e.kind = s.entry_kind
                   AND e.value = s.entry_value AND e.removed_in IS NULL
                   AND e.labels && l.labels)
             THEN 'the list applies only the labels ' || array_to_string(l.labels, ', ')
             ELSE 'the account is on an allowlist' END,
        'retracted_in_version', l.current_version)
FROM podmod.lists l, podmod.cases c
WHERE s.kind = 'content' AND s.retracted_at IS NULL AND l.id = s.list_id AND c.id = s.case_id
  AND (l.policy NOT IN ('review', 'lock')
       OR (l.name, s.entry_kind) NOT IN (SELECT * FROM unnest(%(names)s::text[], %(kinds)s::text[]))
       OR NOT EXISTS (
           SELECT 1 FROM podmod.list_entries e
           WHERE e.list_id = s.list_id AND e.kind = s.entry_kind AND e.value = s.entry_value
             AND e.removed_in IS NULL
             AND (cardinality(l.labels) = 0 OR e.labels && l.labels))
       OR podmod.allowlisted(
           coalesce((SELECT a.name FROM allow_names a WHERE a.account = c.account), c.account),
           c.local))
RETURNING s.case_id
"""
# The accounts of content matches in force whose handle is not ASCII (their host in Unicode, as a
# pod may write it), to be named as entries name them (kinds.ascii_account) in `allow_names`.
WIDE_ACCOUNTS_SQL = """
SELECT DISTINCT c.account FROM podmod.signals s JOIN podmod.cases c ON c.id = s.case_id
WHERE s.kind = 'content' AND s.retracted_at IS NULL
  AND octet_length(c.account) <> char_length(c.account)
"""


def retract_stale(state: psycopg.Connection) -> int:
    """Retract content signals whose entry is no longer in force for content matching, inside the
    caller's transaction; cases left with nothing close (audited). Returns the signals retracted."""
    names, kinds = enabled_pairs(state)
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    wide = [row[0] for row in state.cursor(row_factory=tuple_row).execute(WIDE_ACCOUNTS_SQL)]
    state.execute(
        "CREATE TEMP TABLE allow_names (account text PRIMARY KEY, name text) ON COMMIT DROP"
    )
    if wide:
        with state.cursor().copy("COPY allow_names (account, name) FROM STDIN") as copy:
            for account in wide:
                copy.write_row((account, ascii_account(account)))
    rows = state.execute(RETRACT_SQL, {"names": names, "kinds": kinds}).fetchall()
    state.execute("DROP TABLE allow_names")
    settle_retracted(state, {row["case_id"] for row in rows})
    return len(rows)


def settle_retracted(state: psycopg.Connection, case_ids: set[int]) -> int:
    """The cases whose content matches were just retracted, refreshed, and those left with
    nothing pending closed (audited), inside the caller's transaction; returns how many closed."""
    touched = sorted(case_ids)
    if not touched:
        return 0
    state.execute("SELECT podmod.refresh_cases(%s)", (touched,))
    return resolve_cases_without_pending(
        state,
        touched,
        resolution="retracted",
        actor="podmod",
        source="scan",
        reason="its content matches were retracted and nothing else is pending",
    )


def create_run(
    state: psycopg.Connection,
    *,
    reason: str,
    created_by: str,
    list_id: int | None = None,
    version: int | None = None,
    entry: tuple[str, str] | None = None,
) -> int | None:
    """Record a run over the content already on the pod for the entries chosen (all in force, a
    list's, a list version's, or a list's one entry (kind, value)), inside the caller's
    transaction; None when none of them is a content entry that applies."""
    tables = tables_for(kinds_present(state, list_id=list_id, version=version, entry=entry))
    if not tables:
        return None
    kind, value = entry or (None, None)
    run_id = state.execute(
        "INSERT INTO podmod.scan_runs (reason, list_id, version, entry_kind, entry_value,"
        " created_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (reason, list_id, version, kind, value, created_by),
    ).fetchone()["id"]
    state.execute(
        "INSERT INTO podmod.scan_run_tables (run_id, item_type) SELECT %s, unnest(%s::text[])",
        (run_id, tables),
    )
    return run_id


def after_list_change(
    state: psycopg.Connection,
    *,
    list_id: int | None,
    version: int | None,
    reason: str,
) -> int | None:
    """Called by list sync inside the transaction that applies a version (or a policy change, or
    retires lists): retract content signals whose entries are gone, and record a run that scans the
    content already on the pod for the new entries (the workers take it up). Returns the run."""
    retracted = retract_stale(state)  # (store_version analysed the new entries)
    run_id = None
    if list_id is not None:
        run_id = create_run(
            state, reason=reason, created_by="lists", list_id=list_id, version=version
        )
    if retracted or run_id:
        log.info(
            "content: %d matches retracted; scan run %s for the new entries", retracted, run_id
        )
    return run_id
