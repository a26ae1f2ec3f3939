"""Content scanning: the pod's posts, comments, profiles and photos matched against the lists'
hashtag, phrase, url, pdq and sha256 entries (podmod.matching), each match a signal on its
author's case.

Three ways content is scanned, each durable in PostgreSQL and safe to run twice:
- new content: each reader pass writes the new ids of each table as a batch
  (podmod.scan_batches) before enqueueing its job, and the job marks the batch done in the
  transaction that stores its matches;
- a list version: the entries it added are matched against the content already there, as a run
  (podmod.scan_runs) created in the transaction that applies the version and worked through by
  the workers, table by table, in id ranges, each step committed with its cursor;
- `podmod scan --backfill`: every entry in force against everything already there, as a run in
  the foreground that resumes from its cursors when started again.

A (list, entry, item) is one active signal (a unique index); what a moderator marked "not a match"
and accounts on an allowlist are left out; entries that leave a list retract their signals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg.rows import tuple_row
from rq.job import JobStatus

from podmod import pod_db, queue
from podmod.config import Config
from podmod.errors import PodmodError
from podmod.matching import CONTENT_KINDS, IMAGE_KINDS, TEXT_KINDS, Hit, Matcher
from podmod.matching.images import ImageError, ImageHashes, hash_image
from podmod.matching.matcher import MatcherBuilder
from podmod.store import INGEST_LOCK, resolve_cases_without_pending

log = logging.getLogger("podmod.scan")

ITEM_TYPES = ("Post", "Comment", "Profile", "Photo")
TEXT_ITEM_TYPES = ("Post", "Comment", "Profile")
IMAGE_ITEM_TYPES = ("Photo",)
BATCH_LOCK_CLASS = 0x706D73  # (class, batch id): held by the worker scanning that batch
RUN_LOCK_CLASS = 0x706D75  # (class, run id): held by whoever works on that run
BATCHES_PER_PASS = 100
MAX_GAP = 1000  # a larger hole in ids is history (deleted rows), not transactions in flight
PHOTOS_PER_STEP = 100  # a run step over photos: each may need a download and a hash
SNAPSHOT_CHARS = 5000
SCAN_JOBS = (queue.SCAN_BATCH_JOB, queue.SCAN_RUN_JOB)
PROFILE_EDITS = "scan:profile_edits"  # watermark: microseconds since 1970 of the last edit seen
MATCHING_POLICIES = ("review", "lock")  # `lock` lists' content matches are for review, too


class ScanError(PodmodError):
    exit_code = 2


def watermark_name(item_type: str) -> str:
    return f"scan:{item_type}"


def enabled_pairs(config: Config) -> tuple[list[str], list[str]]:
    """(list names, kinds): every content kind each configured list has switched on."""
    names: list[str] = []
    kinds: list[str] = []
    for subscription in config.lists:
        for kind in subscription.kinds:
            if kind in CONTENT_KINDS:
                names.append(subscription.name)
                kinds.append(kind)
    return names, kinds


# ---------------------------------------------------------------------------------------------
# The matcher: the entries in force, compiled once per process and list state.

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
GROUP BY e.list_id, l.name, e.label, e.added_in
"""
PDQ_VALUES_SQL = """
SELECT coalesce(string_agg(e.value, ''), '') FROM podmod.list_entries e
JOIN podmod.lists l ON l.id = e.list_id
WHERE e.list_id = %s AND e.label = %s AND e.added_in = %s AND e.kind = 'pdq'
  AND e.removed_in IS NULL AND e.id >= %s AND e.id < %s
  AND (cardinality(l.labels) = 0 OR e.labels && l.labels)
"""
PDQ_IDS_PER_QUERY = 250_000

FINGERPRINT_SQL = """
SELECT coalesce(array_agg(id || ':' || coalesce(current_version, 0) || ':' || policy
                          ORDER BY id), '{}') AS lists,
       (SELECT coalesce(max(id), 0) FROM podmod.list_entries) AS top_entry,
       (SELECT max(coalesce(applied_at, fetched_at)) FROM podmod.list_versions) AS last_version
FROM podmod.lists
"""

_matchers: dict[tuple[Any, ...], Matcher] = {}


def _fingerprint(config: Config, state: psycopg.Connection) -> tuple[Any, ...]:
    row = state.execute(FINGERPRINT_SQL).fetchone()
    names, kinds = enabled_pairs(config)
    return (
        config.state_database_url,
        tuple(row["lists"]),
        row["top_entry"],
        row["last_version"],
        tuple(zip(names, kinds, strict=True)),
    )


def load_matcher(
    config: Config,
    state: psycopg.Connection,
    *,
    list_id: int | None = None,
    version: int | None = None,
) -> Matcher:
    """Compile the content entries in force (or those of one list, or one list version)."""
    names, kinds = enabled_pairs(config)
    pairs = [(name, kind) for name, kind in zip(names, kinds, strict=True) if kind != "pdq"]
    wanted = {
        "names": [name for name, _ in pairs],
        "kinds": [kind for _, kind in pairs],
        "list_id": list_id,
        "version": version,
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
                        (group_list, label, added_in, start, start + PDQ_IDS_PER_QUERY),
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
) -> Matcher:
    """The compiled entries, from this process's cache while the lists have not changed."""
    key = (_fingerprint(config, state), list_id, version)
    state.rollback()  # (called outside any transaction of the caller's)
    matcher = _matchers.get(key)
    if matcher is None:
        # Keep one matcher of all entries and one of a list's; drop the old one first, so that a
        # recompile never holds two large ones at once.
        for old in [k for k in _matchers if (k[1] is None) == (list_id is None)]:
            del _matchers[old]
        started = time.perf_counter()
        matcher = load_matcher(config, state, list_id=list_id, version=version)
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


# ---------------------------------------------------------------------------------------------
# Items: the pod's rows turned into matches.


@dataclass(slots=True)
class Found:
    """One entry matching one item, with what the signal keeps of the item."""

    hit: Hit
    item_type: str
    item_id: int
    item_guid: str | None
    person_id: int
    occurred_at: datetime | None
    snapshot: str | None
    extra: dict[str, Any]


def _snapshot(text: str | None) -> str | None:
    if text is None or len(text) <= SNAPSHOT_CHARS:
        return text
    return text[:SNAPSHOT_CHARS] + "…"


def _distinct(hits: Iterable[Hit]) -> list[Hit]:
    seen: set[Any] = set()
    out = []
    for hit in hits:
        if hit.entry not in seen:
            seen.add(hit.entry)
            out.append(hit)
    return out


def match_rows(
    config: Config,
    matcher: Matcher,
    item_type: str,
    rows: list[tuple[Any, ...]],
    tags: dict[int, list[str]],
    hashes: dict[int, ImageHashes],
) -> list[Found]:
    """Match rows of one table as pod_db.load_content returns them."""
    found: list[Found] = []
    match_text = matcher.match_text
    if item_type == "Post":
        for item_id, guid, author, post_type, text, root_guid, created in rows:
            hits = match_text(text, tags=tags.get(item_id, ()))
            if hits:
                extra: dict[str, Any] = {"post_type": post_type}
                if post_type == "Reshare":
                    extra["reshare_of"] = root_guid
                found += [
                    Found(hit, "Post", item_id, guid, author, created, _snapshot(text), extra)
                    for hit in hits
                ]
    elif item_type == "Comment":
        for item_id, guid, author, text, post_id, created in rows:
            hits = match_text(text, tags=tags.get(item_id, ()))
            if hits:
                found += [
                    Found(
                        hit,
                        "Comment",
                        item_id,
                        guid,
                        author,
                        created,
                        _snapshot(text),
                        {"post_id": post_id},
                    )
                    for hit in hits
                ]
    elif item_type == "Profile":
        for item_id, guid, person, name, bio, location, updated in rows:
            hits = _distinct(
                [
                    *match_text(name, field="name"),
                    *match_text(bio, field="bio"),
                    *match_text(location, field="location"),
                    *(
                        match_text(None, field="tags", tags=tags[item_id])
                        if item_id in tags
                        else []
                    ),
                ]
            )
            fields = {
                "name": name,
                "bio": bio,
                "location": location,
                "tags": " ".join(f"#{tag}" for tag in tags.get(item_id, ())),
            }
            found += [
                Found(
                    hit,
                    "Profile",
                    item_id,
                    guid,
                    person,
                    updated,
                    _snapshot(fields.get(hit.field)),
                    {},
                )
                for hit in hits
            ]
    elif item_type == "Photo":
        for item_id, guid, author, local_name, remote_path, remote_name, post_guid, created in rows:
            image = hashes.get(item_id)
            if image is None:
                continue
            hits = matcher.match_image(
                image,
                max_distance=config["scan.pdq_distance"],
                min_quality=config["scan.pdq_min_quality"],
            )
            if hits:
                source = local_name or f"{remote_path or ''}{remote_name or ''}"
                extra = {"status_message_guid": post_guid, "pdq_quality": image.quality}
                found += [
                    Found(
                        hit,
                        "Photo",
                        item_id,
                        guid,
                        author,
                        created,
                        source,
                        {k: v for k, v in extra.items() if v is not None},
                    )
                    for hit in hits
                ]
    return found


# Photos --------------------------------------------------------------------------------------


def _local_photo(config: Config, name: str) -> bytes:
    """A local photo's file from the pod's uploads folder (never outside it)."""
    folder = Path(config["scan.uploads_dir"]).resolve()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ImageError(f"{name!r} is not a photo file name")
    path = (folder / name).resolve()
    if path.parent != folder:
        raise ImageError(f"{name!r} is outside the uploads folder")
    try:
        size = path.stat().st_size
        if size > config["scan.photo_max_bytes"]:
            raise ImageError(f"the file has {size} bytes, more than scan.photo_max_bytes")
        with path.open("rb") as handle:
            return handle.read(config["scan.photo_max_bytes"] + 1)
    except FileNotFoundError:
        raise ImageError(f"there is no file {name} in the uploads folder") from None
    except OSError as error:
        raise ImageError(f"the file {name} cannot be read ({error.strerror})") from None


def _remote_photo(config: Config, url: str) -> bytes:
    """A remote photo downloaded within the size and time limits (podmod.netguard: HTTPS only,
    never from a private address, redirects included); never kept."""
    from podmod.lists import fetch

    try:
        return fetch.download_public(
            url, max_bytes=config["scan.photo_max_bytes"], timeout=config["scan.photo_timeout"]
        )
    except fetch.FetchError as error:
        raise ImageError(f"the download failed: {error}") from None


@dataclass
class PhotoHash:
    """A row for podmod.photo_hashes: the hashes, or why there are none."""

    photo_id: int
    source: str
    hashes: ImageHashes | None
    error: str | None


def hash_photos(
    config: Config, state: psycopg.Connection, rows: list[tuple[Any, ...]]
) -> tuple[dict[int, ImageHashes], list[PhotoHash]]:
    """The hashes of these photos: stored ones, and new ones made from the file in the uploads
    folder or (when allowed) a download. Returns (hashes, new rows to store)."""
    stored = {
        photo_id: ImageHashes.from_stored(sha, bytes(pdq) if pdq else None, quality)
        for photo_id, sha, pdq, quality in state.cursor(row_factory=tuple_row).execute(
            "SELECT photo_id, sha256, pdq, quality FROM podmod.photo_hashes"
            " WHERE photo_id = ANY(%s) AND sha256 IS NOT NULL",
            ([row[0] for row in rows],),
        )
    }
    state.rollback()
    done = {
        row["photo_id"]
        for row in state.execute(
            "SELECT photo_id FROM podmod.photo_hashes WHERE photo_id = ANY(%s)",
            ([row[0] for row in rows],),
        )
    }
    state.rollback()
    new: list[PhotoHash] = []
    for photo_id, _guid, _author, local_name, remote_path, remote_name, _post, _created in rows:
        if photo_id in done:
            continue
        if local_name and config["scan.uploads_dir"]:
            source, load = "file", lambda name=local_name: _local_photo(config, name)
        elif remote_path and remote_name and config["scan.fetch_remote_photos"]:
            url = f"{remote_path}{remote_name}"
            source, load = "remote", lambda url=url: _remote_photo(config, url)
        else:
            continue  # no way to read it under this configuration: tried again by a backfill
        try:
            image = hash_image(load(), max_pixels=config["scan.photo_max_pixels"])
        except ImageError as error:
            new.append(PhotoHash(photo_id, source, None, str(error)[:500]))
            continue
        stored[photo_id] = image
        new.append(PhotoHash(photo_id, source, image, None))
    return stored, new


def _store_photo_hashes(state: psycopg.Connection, rows: list[PhotoHash]) -> None:
    if not rows:
        return
    with state.cursor() as cur:
        cur.executemany(
            "INSERT INTO podmod.photo_hashes (photo_id, sha256, pdq, quality, source, error)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (photo_id) DO UPDATE SET"
            " sha256 = excluded.sha256, pdq = excluded.pdq, quality = excluded.quality,"
            " source = excluded.source, error = excluded.error, hashed_at = now()",
            [
                (
                    row.photo_id,
                    row.hashes.sha256 if row.hashes else None,
                    row.hashes.pdq_bytes() if row.hashes else None,
                    row.hashes.quality if row.hashes else None,
                    row.source,
                    row.error,
                )
                for row in rows
            ],
        )


@dataclass
class Scanned:
    """One slice of a table read and matched, ready to store."""

    items: int = 0
    found: list[Found] = field(default_factory=list)
    photo_hashes: list[PhotoHash] = field(default_factory=list)


def scan_items(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    matcher: Matcher,
    item_type: str,
    *,
    ids: list[int] | None = None,
    above: int | None = None,
    up_to: int | None = None,
) -> Scanned:
    """Read items of one table (by ids, or the id range (above, up_to]) and match them."""
    wants = matcher.matches_images if item_type in IMAGE_ITEM_TYPES else matcher.matches_text
    if not wants:
        return Scanned()
    rows = pod_db.load_content(pod, item_type, ids=ids, above=above, up_to=up_to)
    tags: dict[int, list[str]] = {}
    if matcher.hashtags and rows:
        tags = pod_db.load_tags(pod, item_type, ids=ids, above=above, up_to=up_to)
    pod.rollback()
    hashes: dict[int, ImageHashes] = {}
    new_hashes: list[PhotoHash] = []
    if item_type == "Photo" and rows:
        hashes, new_hashes = hash_photos(config, state, rows)
    found = match_rows(config, matcher, item_type, rows, tags, hashes)
    return Scanned(len(rows), found, new_hashes)


# Storing -------------------------------------------------------------------------------------

HIT_COLUMNS = (
    "list_id",
    "entry_kind",
    "entry_value",
    "version",
    "label",
    "person_id",
    "item_type",
    "item_id",
    "item_guid",
    "occurred_at",
    "field",
    "excerpt",
    "distance",
    "orientation",
    "snapshot",
    "extra",
    "account",
    "local",
)

STORE_HITS_SQL = """
UPDATE content_hits SET host = split_part(account, '@', 2);

ANALYZE content_hits;

-- What a moderator marked "not a match", for this item or for every item of this account.
DELETE FROM content_hits h USING podmod.content_false_positives f
WHERE f.entry_kind = h.entry_kind AND f.entry_value = h.entry_value
  AND f.item_type = h.item_type AND f.item_id = h.item_id;

DELETE FROM content_hits h USING podmod.content_false_positives f
WHERE f.entry_kind = h.entry_kind AND f.entry_value = h.entry_value
  AND f.person_id = h.person_id;

-- Accounts on an allowlist (a list with policy `allow`: its account entries, and its pod
-- entries for remote accounts), and accounts gone from the pod. (Each test is one index probe.)
DELETE FROM content_hits h
WHERE h.account IS NULL
   OR EXISTS (
       SELECT 1 FROM podmod.list_entries e
       JOIN podmod.lists l ON l.id = e.list_id AND l.policy = 'allow'
       WHERE e.removed_in IS NULL AND e.kind = 'account' AND e.value = h.account)
   OR (NOT h.local AND EXISTS (
       SELECT 1 FROM podmod.list_entries e
       JOIN podmod.lists l ON l.id = e.list_id AND l.policy = 'allow'
       WHERE e.removed_in IS NULL AND e.kind = 'pod'
         AND e.value = ANY (podmod.host_names(h.host))));

-- The entry must still be in force: a version may have removed it since the matcher was built.
DELETE FROM content_hits h WHERE NOT EXISTS (
    SELECT 1 FROM podmod.list_entries e
    JOIN podmod.lists l ON l.id = e.list_id AND l.policy IN ('review', 'lock')
    WHERE e.list_id = h.list_id AND e.kind = h.entry_kind AND e.value = h.entry_value
      AND e.removed_in IS NULL AND (cardinality(l.labels) = 0 OR e.labels && l.labels));

-- Matched before (the signal may sit on a closed case): nothing to add, no case to open.
DELETE FROM content_hits h WHERE EXISTS (
    SELECT 1 FROM podmod.signals s
    WHERE s.kind = 'content' AND s.retracted_at IS NULL AND s.list_id = h.list_id
      AND s.entry_kind = h.entry_kind AND s.entry_value = h.entry_value
      AND s.item_type = h.item_type AND s.item_id = h.item_id);

INSERT INTO podmod.cases (subject, person_id, account, local)
SELECT DISTINCT ON (person_id) 'person:' || person_id, person_id, account, local
FROM content_hits ORDER BY person_id
ON CONFLICT (subject) WHERE status = 'open' DO NOTHING;

INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind, entry_value, item_type,
                            item_id, item_guid, snapshot, details, occurred_at)
SELECT c.id, 'content', h.person_id, h.list_id, h.entry_kind, h.entry_value, h.item_type,
       h.item_id, h.item_guid, h.snapshot,
       jsonb_strip_nulls(jsonb_build_object(
           'list', l.name, 'version', h.version, 'entry', h.entry_kind || ':' || h.entry_value,
           'label', h.label, 'policy', l.policy, 'field', h.field, 'excerpt', h.excerpt,
           'distance', h.distance, 'orientation', h.orientation)) || h.extra,
       h.occurred_at
FROM content_hits h
JOIN podmod.lists l ON l.id = h.list_id
JOIN podmod.cases c ON c.subject = 'person:' || h.person_id AND c.status = 'open'
ON CONFLICT DO NOTHING
RETURNING case_id
"""


def store_found(pod: psycopg.Connection, state: psycopg.Connection, found: list[Found]) -> int:
    """Store matches as content signals on their authors' cases, inside the caller's transaction.
    Returns how many signals are new."""
    if not found:
        return 0
    accounts = pod_db.people_accounts(pod, sorted({f.person_id for f in found}))
    pod.rollback()
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    state.execute(
        "CREATE TEMP TABLE content_hits (list_id integer, entry_kind text, entry_value text,"
        " version integer, label text, person_id integer, item_type text, item_id integer,"
        " item_guid text, occurred_at timestamptz, field text, excerpt text, distance integer,"
        " orientation text, snapshot text, extra jsonb, account text, local boolean, host text)"
        " ON COMMIT DROP"
    )
    with state.cursor().copy(f"COPY content_hits ({', '.join(HIT_COLUMNS)}) FROM STDIN") as copy:
        for f in found:
            entry = f.hit.entry
            account, local = accounts.get(f.person_id, (None, False))
            copy.write_row(
                (
                    entry.list_id,
                    entry.kind,
                    entry.value,
                    entry.version,
                    entry.label,
                    f.person_id,
                    f.item_type,
                    f.item_id,
                    f.item_guid,
                    f.occurred_at,
                    f.hit.field,
                    f.hit.excerpt,
                    f.hit.distance,
                    f.hit.orientation,
                    f.snapshot,
                    json.dumps(f.extra),
                    account,
                    local,
                )
            )
    *prepare, insert = STORE_HITS_SQL.split(";\n\n")
    state.execute(";\n\n".join(prepare))
    inserted = state.execute(insert).fetchall()
    state.execute("DROP TABLE content_hits")
    touched = sorted({row["case_id"] for row in inserted})
    if touched:
        state.execute("SELECT podmod.refresh_cases(%s)", (touched,))
    return len(inserted)


def _store_scanned(pod: psycopg.Connection, state: psycopg.Connection, scanned: Scanned) -> int:
    _store_photo_hashes(state, scanned.photo_hashes)
    return store_found(pod, state, scanned.found)


# ---------------------------------------------------------------------------------------------
# Retraction: entries gone from a list, lists that no longer apply, kinds switched off, accounts
# now on an allowlist.

RETRACT_SQL = """
UPDATE podmod.signals s
SET retracted_at = now(),
    details = s.details || jsonb_build_object(
        'retracted_because',
        CASE WHEN NOT EXISTS (
                 SELECT 1 FROM podmod.list_entries e
                 WHERE e.list_id = s.list_id AND e.kind = s.entry_kind
                   AND e.value = s.entry_value AND e.removed_in IS NULL)
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
       OR EXISTS (
           SELECT 1 FROM podmod.list_entries e
           JOIN podmod.lists a ON a.id = e.list_id AND a.policy = 'allow'
           WHERE e.removed_in IS NULL AND e.kind = 'account' AND e.value = c.account)
       OR (NOT c.local AND EXISTS (
           SELECT 1 FROM podmod.list_entries e
           JOIN podmod.lists a ON a.id = e.list_id AND a.policy = 'allow'
           WHERE e.removed_in IS NULL AND e.kind = 'pod'
             AND e.value = ANY (podmod.host_names(split_part(c.account, '@', 2))))))
RETURNING s.case_id
"""


def retract_stale(config: Config, state: psycopg.Connection) -> int:
    """Retract content signals whose entry is no longer in force for content matching, inside the
    caller's transaction; cases left with nothing close (audited). Returns the signals retracted."""
    names, kinds = enabled_pairs(config)
    state.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
    rows = state.execute(RETRACT_SQL, {"names": names, "kinds": kinds}).fetchall()
    touched = sorted({row["case_id"] for row in rows})
    if touched:
        state.execute("SELECT podmod.refresh_cases(%s)", (touched,))
        resolve_cases_without_pending(
            state,
            touched,
            resolution="retracted",
            actor="podmod",
            source="scan",
            reason="its content matches were retracted and nothing else is pending",
        )
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Runs: content already on the pod, scanned table by table in id ranges.


def _tables_for(kinds: Iterable[str]) -> list[str]:
    kinds = set(kinds)
    tables: list[str] = []
    if kinds & set(TEXT_KINDS):
        tables += TEXT_ITEM_TYPES
    if kinds & set(IMAGE_KINDS):
        tables += IMAGE_ITEM_TYPES
    return tables


def create_run(
    config: Config,
    state: psycopg.Connection,
    *,
    reason: str,
    created_by: str,
    list_id: int | None = None,
    version: int | None = None,
) -> int | None:
    """Record a run over the content already on the pod for the entries chosen (all in force, a
    list's, or a list version's), inside the caller's transaction; None when none of them is a
    content entry that applies."""
    names, kinds = enabled_pairs(config)
    present = [
        row["kind"]
        for row in state.execute(
            "SELECT DISTINCT e.kind FROM podmod.list_entries e"
            " JOIN podmod.lists l ON l.id = e.list_id AND l.policy IN ('review', 'lock')"
            " JOIN unnest(%(names)s::text[], %(kinds)s::text[]) AS enabled (name, kind)"
            "   ON enabled.name = l.name AND enabled.kind = e.kind"
            " WHERE e.removed_in IS NULL"
            "   AND (%(list_id)s::integer IS NULL OR e.list_id = %(list_id)s)"
            "   AND (%(version)s::integer IS NULL OR e.added_in = %(version)s)",
            {"names": names, "kinds": kinds, "list_id": list_id, "version": version},
        )
    ]
    tables = _tables_for(present)
    if not tables:
        return None
    run_id = state.execute(
        "INSERT INTO podmod.scan_runs (reason, list_id, version, created_by)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (reason, list_id, version, created_by),
    ).fetchone()["id"]
    state.execute(
        "INSERT INTO podmod.scan_run_tables (run_id, item_type) SELECT %s, unnest(%s::text[])",
        (run_id, tables),
    )
    return run_id


@dataclass
class RunProgress:
    """Where a run stands, and what this call did."""

    run_id: int
    done: bool = False
    items: int = 0  # scanned by this call
    matched: int = 0  # new signals from this call
    steps: int = 0
    seconds: float = 0.0
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    table_seconds: dict[str, float] = field(default_factory=dict)  # spent by this call

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _start_run(pod: psycopg.Connection, state: psycopg.Connection, run_id: int) -> None:
    """Fix each table's highest id at the start: the run covers every id up to it, the reader
    everything above its own watermark, which is never higher (it is set here if missing)."""
    tops = pod_db.content_top_ids(pod)
    pod.rollback()
    with state.transaction():
        for row in state.execute(
            "SELECT item_type FROM podmod.scan_run_tables WHERE run_id = %s AND top IS NULL"
            " FOR UPDATE",
            (run_id,),
        ).fetchall():
            item_type = row["item_type"]
            state.execute(
                "INSERT INTO podmod.watermarks (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (watermark_name(item_type), tops[item_type]),
            )
            reader = state.execute(
                "SELECT value FROM podmod.watermarks WHERE name = %s",
                (watermark_name(item_type),),
            ).fetchone()["value"]
            state.execute(
                "UPDATE podmod.scan_run_tables SET top = %s WHERE run_id = %s AND item_type = %s",
                (max(tops[item_type], reader), run_id, item_type),
            )


def run_tables(state: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    rows = state.execute(
        "SELECT item_type, cursor, top, items, matched, done_at FROM podmod.scan_run_tables"
        " WHERE run_id = %s ORDER BY array_position(%s::text[], item_type)",
        (run_id, list(ITEM_TYPES)),
    ).fetchall()
    state.rollback()
    return rows


def process_run(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    run_id: int,
    *,
    budget: float | None = None,
    max_steps: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunProgress:
    """Work through a run step by step (each step: read an id range, match, store the signals and
    move the cursor, in one transaction) until it is done, `budget` seconds have passed or
    `max_steps` steps are made. Safe to run in several processes at once."""
    started = time.perf_counter()
    result = RunProgress(run_id)
    run = state.execute(
        "SELECT list_id, version, done_at FROM podmod.scan_runs WHERE id = %s", (run_id,)
    ).fetchone()
    state.rollback()
    if run is None:
        raise ScanError(f"There is no scan run {run_id}.")
    if run["done_at"] is None:
        _start_run(pod, state, run_id)
        matcher = matcher_for(config, state, list_id=run["list_id"], version=run["version"])
        chunk = config["scan.chunk_size"]
        for table in run_tables(state, run_id):
            item_type = table["item_type"]
            step = min(chunk, PHOTOS_PER_STEP) if item_type in IMAGE_ITEM_TYPES else chunk
            table_started = time.perf_counter()
            while True:
                if (budget is not None and time.perf_counter() - started >= budget) or (
                    max_steps is not None and result.steps >= max_steps
                ):
                    break
                moved = _run_step(config, pod, state, matcher, run_id, item_type, step, result)
                if moved is None:
                    break
                if progress is not None:
                    progress(moved)
            result.table_seconds[item_type] = round(time.perf_counter() - table_started, 3)
        with state.transaction():
            finished = state.execute(
                "UPDATE podmod.scan_runs SET done_at = now() WHERE id = %s AND done_at IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM podmod.scan_run_tables WHERE run_id = %s"
                " AND done_at IS NULL) RETURNING id",
                (run_id, run_id),
            ).fetchone()
        if finished:
            log.debug("scan run %d done", run_id)
    result.tables = {
        row["item_type"]: {k: v for k, v in row.items() if k != "item_type"}
        for row in run_tables(state, run_id)
    }
    result.done = all(row["done_at"] is not None for row in result.tables.values())
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _run_step(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    matcher: Matcher,
    run_id: int,
    item_type: str,
    step: int,
    result: RunProgress,
) -> int | None:
    """One step of a run over one table; the number of ids it moved past, None when the table is
    done. The work is done outside any transaction, then stored only if nobody else stored that
    range meanwhile."""
    where = state.execute(
        "SELECT cursor, top, done_at FROM podmod.scan_run_tables"
        " WHERE run_id = %s AND item_type = %s",
        (run_id, item_type),
    ).fetchone()
    state.rollback()
    if where["done_at"] is not None:
        return None
    above, top = where["cursor"], where["top"]
    up_to = min(above + step, top)
    scanned = (
        scan_items(config, pod, state, matcher, item_type, above=above, up_to=up_to)
        if up_to > above
        else Scanned()
    )
    with state.transaction():
        now = state.execute(
            "SELECT cursor FROM podmod.scan_run_tables WHERE run_id = %s AND item_type = %s"
            " FOR UPDATE",
            (run_id, item_type),
        ).fetchone()
        if now["cursor"] != above:
            return 0  # another process did this step: go on from where it is
        matched = _store_scanned(pod, state, scanned)
        state.execute(
            "UPDATE podmod.scan_run_tables SET cursor = %s, items = items + %s,"
            " matched = matched + %s, done_at = CASE WHEN %s >= top THEN now() END"
            " WHERE run_id = %s AND item_type = %s",
            (up_to, scanned.items, matched, up_to, run_id, item_type),
        )
    result.items += scanned.items
    result.matched += matched
    result.steps += 1
    return up_to - above


def pending_runs(
    state: psycopg.Connection, *, reason: str | None = None, exclude_backfill: bool = False
) -> list[int]:
    rows = state.execute(
        "SELECT id FROM podmod.scan_runs WHERE done_at IS NULL"
        " AND (%(reason)s::text IS NULL OR reason = %(reason)s)"
        " AND NOT (%(exclude)s AND reason = 'backfill') ORDER BY id",
        {"reason": reason, "exclude": exclude_backfill},
    ).fetchall()
    state.rollback()
    return [row["id"] for row in rows]


def remaining(state: psycopg.Connection, run_id: int) -> int:
    """Ids still to scan in a started run (an estimate before it starts: 0)."""
    return sum(
        max((row["top"] or 0) - row["cursor"], 0)
        for row in run_tables(state, run_id)
        if row["done_at"] is None
    )


def backfill(
    config: Config,
    *,
    created_by: str,
    max_steps: int | None = None,
    on_start: Callable[[int, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunProgress | None:
    """`podmod scan --backfill`: every content entry in force against everything on the pod,
    resuming an interrupted backfill. None when no content entry applies."""
    from podmod.db import pod_connection, state_connection

    with state_connection(config) as state, pod_connection(config) as pod:
        with state.transaction():
            retract_stale(config, state)
        runs = pending_runs(state, reason="backfill")
        if runs:
            run_id = runs[0]
        else:
            with state.transaction():
                run_id = create_run(config, state, reason="backfill", created_by=created_by)
            if run_id is None:
                return None
        _start_run(pod, state, run_id)
        if on_start is not None:
            on_start(run_id, remaining(state, run_id))
        return process_run(config, pod, state, run_id, max_steps=max_steps, progress=progress)


def process_pending_runs(
    config: Config,
    *,
    on_start: Callable[[int, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[RunProgress]:
    """Work through every undone run that list versions queued (not a backfill), here and now."""
    from podmod.db import pod_connection, state_connection

    results = []
    with state_connection(config) as state, pod_connection(config) as pod:
        for run_id in pending_runs(state, exclude_backfill=True):
            _start_run(pod, state, run_id)
            if on_start is not None:
                on_start(run_id, remaining(state, run_id))
            results.append(process_run(config, pod, state, run_id, progress=progress))
    return results


def scan_list(config: Config, name: str, *, created_by: str) -> int | None:
    """A run over the content already on the pod for every entry of one list (after its `kinds`
    changed, say); returns the run's id, None when the list has no content entry that applies."""
    from podmod.db import state_connection

    with state_connection(config) as state, state.transaction():
        row = state.execute("SELECT id FROM podmod.lists WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise ScanError(f"There is no list named {name!r}; see `podmod lists show`.")
        retract_stale(config, state)
        return create_run(config, state, reason="list", created_by=created_by, list_id=row["id"])


def after_list_change(
    config: Config,
    state: psycopg.Connection,
    *,
    list_id: int | None,
    version: int | None,
    reason: str,
) -> int | None:
    """Called by list sync inside the transaction that applies a version (or a policy change, or
    retires lists): retract content signals whose entries are gone, and record a run that scans the
    content already on the pod for the new entries (the workers take it up). Returns the run."""
    retracted = retract_stale(config, state)  # (store_version analysed the new entries)
    run_id = None
    if list_id is not None:
        run_id = create_run(
            config, state, reason=reason, created_by="lists", list_id=list_id, version=version
        )
    if retracted or run_id:
        log.info(
            "content: %d matches retracted; scan run %s for the new entries", retracted, run_id
        )
    return run_id


# ---------------------------------------------------------------------------------------------
# New content: the reader's side.


@dataclass
class ScanPass:
    new_batches: list[int] = field(default_factory=list)
    new_items: int = 0
    enqueued_batches: list[int] = field(default_factory=list)
    enqueued_runs: list[int] = field(default_factory=list)


def _watermarks(state: psycopg.Connection) -> dict[str, int]:
    return {
        row["name"]: row["value"]
        for row in state.execute(
            "SELECT name, value FROM podmod.watermarks WHERE name LIKE 'scan:%%'"
        )
    }


def _set_watermark(state: psycopg.Connection, name: str, value: int) -> None:
    state.execute(
        "INSERT INTO podmod.watermarks (name, value) VALUES (%s, %s) ON CONFLICT (name)"
        " DO UPDATE SET value = greatest(podmod.watermarks.value, excluded.value),"
        " updated_at = now()",
        (name, value),
    )


def _kinds_in_force(config: Config, state: psycopg.Connection) -> set[str]:
    names, kinds = enabled_pairs(config)
    return {
        row["kind"]
        for row in state.execute(
            "SELECT k.kind FROM unnest(%(kinds)s::text[]) AS k (kind) WHERE EXISTS ("
            " SELECT 1 FROM podmod.list_entries e"
            " JOIN podmod.lists l ON l.id = e.list_id AND l.policy IN ('review', 'lock')"
            " JOIN unnest(%(names)s::text[], %(kinds)s::text[]) AS enabled (name, kind)"
            "   ON enabled.name = l.name AND enabled.kind = e.kind"
            " WHERE e.kind = k.kind AND e.removed_in IS NULL)",
            {"names": names, "kinds": kinds},
        )
    }


def _insert_batches(
    state: psycopg.Connection, item_type: str, ids: list[int], size: int, result: ScanPass
) -> None:
    for start in range(0, len(ids), size):
        row = state.execute(
            "INSERT INTO podmod.scan_batches (item_type, item_ids) VALUES (%s, %s) RETURNING id",
            (item_type, ids[start : start + size]),
        ).fetchone()
        result.new_batches.append(row["id"])
    result.new_items += len(ids)


def _holes(previous: int, ids: list[int]) -> list[int]:
    """Ids between the old watermark and the highest id read that were not there."""
    holes: list[int] = []
    expected = previous + 1
    for item_id in ids:
        if item_id > expected and item_id - expected <= MAX_GAP:
            holes.extend(range(expected, item_id))
        expected = item_id + 1
    return holes


def collect_new_content(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection
) -> ScanPass:
    """Write batches for content new since the last pass and advance the watermarks; ids missing
    below a watermark are watched as gaps, as report intake does.

    On the first pass the watermarks start at the newest ids (content already there is the
    backfill's and the list versions' to scan). While no content entry applies to a table, its
    watermark only moves: a run for entries that arrive later covers everything up to it.
    """
    result = ScanPass()
    size = config["scan.batch_size"]
    tops = pod_db.content_top_ids(pod)
    pod.rollback()
    with state.transaction():
        marks = _watermarks(state)
        wanted = set(_tables_for(_kinds_in_force(config, state)))
        gaps: dict[str, list[int]] = {}
        for row in state.execute(
            "DELETE FROM podmod.scan_gaps WHERE first_seen_at < now() - make_interval(secs => %s)"
            " RETURNING item_type",
            (config["reader.gap_timeout"],),
        ).fetchall():
            log.debug("gave up waiting for a missing %s id", row["item_type"].lower())
        for row in state.execute("SELECT item_type, item_id FROM podmod.scan_gaps"):
            gaps.setdefault(row["item_type"], []).append(row["item_id"])
        for item_type in ITEM_TYPES:
            name = watermark_name(item_type)
            mark, top = marks.get(name), tops[item_type]
            filled = pod_db.existing_content_ids(pod, item_type, gaps.get(item_type, []))
            if filled:
                state.execute(
                    "DELETE FROM podmod.scan_gaps WHERE item_type = %s AND item_id = ANY(%s)",
                    (item_type, filled),
                )
            if mark is None or top <= mark or item_type not in wanted:
                if mark is None or top > mark:
                    _set_watermark(state, name, top)
                if filled and item_type in wanted:
                    _insert_batches(state, item_type, filled, size, result)
                continue
            ids = pod_db.content_ids_after(pod, item_type, mark, size * BATCHES_PER_PASS)
            if ids:
                state.execute(
                    "INSERT INTO podmod.scan_gaps (item_type, item_id)"
                    " SELECT %s, unnest(%s::integer[]) ON CONFLICT DO NOTHING",
                    (item_type, _holes(mark, ids)),
                )
                _set_watermark(state, name, ids[-1])
            if filled or ids:
                _insert_batches(state, item_type, filled + ids, size, result)
        if "Profile" in wanted:
            _sweep_profile_edits(config, pod, state, marks, result)
    pod.rollback()
    return result


def _sweep_profile_edits(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    marks: dict[str, int],
    result: ScanPass,
) -> None:
    """Profiles edited since the last sweep (every scan.profile_sweep_interval seconds)."""
    now = datetime.now(UTC)
    last = state.execute(
        "SELECT value, updated_at FROM podmod.watermarks WHERE name = %s", (PROFILE_EDITS,)
    ).fetchone()
    if last is None:
        _set_watermark(state, PROFILE_EDITS, int(now.timestamp() * 1_000_000))
        return
    if (now - last["updated_at"]).total_seconds() < config["scan.profile_sweep_interval"]:
        return
    since = datetime.fromtimestamp(last["value"] / 1_000_000, UTC)
    edited = pod_db.profiles_updated_since(pod, since, config["scan.batch_size"] * BATCHES_PER_PASS)
    new_profiles_above = marks.get(watermark_name("Profile"), 0)
    ids = [row[0] for row in edited if row[0] <= new_profiles_above]  # new ones are batched anyway
    if ids:
        _insert_batches(state, "Profile", ids, config["scan.batch_size"], result)
    newest = max((row[1] for row in edited), default=since)
    state.execute(
        "UPDATE podmod.watermarks SET value = greatest(value, %s), updated_at = now()"
        " WHERE name = %s",
        (int(newest.timestamp() * 1_000_000), PROFILE_EDITS),
    )


def batch_job_id(config: Config, batch_id: int) -> str:
    return f"{config['queue_prefix']}-scan-batch-{batch_id}"


def run_job_id(config: Config, run_id: int) -> str:
    return f"{config['queue_prefix']}-scan-run-{run_id}"


def _lock_key(number: int) -> int:
    return number % 2**31


def _locked_elsewhere(state: psycopg.Connection, lock_class: int, number: int) -> bool:
    row = state.execute(
        "SELECT pg_try_advisory_lock(%s, %s) AS free", (lock_class, _lock_key(number))
    ).fetchone()
    if row["free"]:
        state.execute("SELECT pg_advisory_unlock(%s, %s)", (lock_class, _lock_key(number)))
    state.commit()
    return not row["free"]


def _to_enqueue(
    config: Config,
    state: psycopg.Connection,
    rconn: redis.Redis,
    rows: list[dict[str, Any]],
    job_ids: list[str],
    lock_class: int,
    *,
    continue_finished: bool,
) -> list[int]:
    grace = config["reader.restart_grace"]
    chosen = []
    statuses = queue.job_statuses(rconn, job_ids, grace=grace)
    for row, (status, job) in zip(rows, statuses, strict=True):
        waited = row["waited"].total_seconds()
        if status in queue.LIVE_STATUSES:
            continue
        if status == JobStatus.STARTED:
            started = job.started_at.replace(tzinfo=UTC) if job and job.started_at else None
            running_for = (datetime.now(UTC) - started).total_seconds() if started else waited
            if running_for < grace or _locked_elsewhere(state, lock_class, row["id"]):
                continue
        elif status == JobStatus.FINISHED and continue_finished:
            pass  # a run's job works for a while, then hands over to the next one
        elif (
            status is not None
            and row["enqueued_at"] is not None
            and waited < grace * 2 ** min(row["attempts"], 8)
        ):
            continue  # finished without marking it done, or failed: back off
        chosen.append(row["id"])
    return chosen


def enqueue_pending(config: Config, state: psycopg.Connection, rconn: redis.Redis) -> ScanPass:
    """Enqueue every undone batch and every undone list run whose job is missing, done with its
    share, failed for good, or whose worker died. Backfills run in `podmod scan --backfill`."""
    result = ScanPass()
    waited = "now() - coalesce(enqueued_at, created_at) AS waited"
    batches = state.execute(
        f"SELECT id, attempts, enqueued_at, {waited} FROM podmod.scan_batches"
        " WHERE done_at IS NULL ORDER BY id"
    ).fetchall()
    runs = state.execute(
        f"SELECT id, attempts, enqueued_at, {waited} FROM podmod.scan_runs"
        " WHERE done_at IS NULL AND reason <> 'backfill' ORDER BY id"
    ).fetchall()
    state.commit()
    if batches:
        chosen = _to_enqueue(
            config,
            state,
            rconn,
            batches,
            [batch_job_id(config, b["id"]) for b in batches],
            BATCH_LOCK_CLASS,
            continue_finished=False,
        )
        for batch_id in chosen:
            queue.enqueue_durable(
                config,
                rconn,
                "scan",
                queue.SCAN_BATCH_JOB,
                batch_id,
                job_id=batch_job_id(config, batch_id),
                description=f"scan new content batch {batch_id}",
            )
        result.enqueued_batches = chosen
    if runs:
        chosen = _to_enqueue(
            config,
            state,
            rconn,
            runs,
            [run_job_id(config, r["id"]) for r in runs],
            RUN_LOCK_CLASS,
            continue_finished=True,
        )
        for run_id in chosen:
            queue.enqueue_durable(
                config,
                rconn,
                "scan",
                queue.SCAN_RUN_JOB,
                run_id,
                job_id=run_job_id(config, run_id),
                description=f"scan content for list entries (run {run_id})",
            )
        result.enqueued_runs = chosen
    for table, ids in (
        ("scan_batches", result.enqueued_batches),
        ("scan_runs", result.enqueued_runs),
    ):
        if ids:
            state.execute(
                f"UPDATE podmod.{table} SET enqueued_at = now(), attempts = attempts + 1"
                " WHERE id = ANY(%s)",
                (ids,),
            )
    state.commit()
    return result


def reader_pass(
    config: Config, pod: psycopg.Connection, state: psycopg.Connection, rconn: redis.Redis
) -> ScanPass:
    """The reader's share of content scanning, once per pass: new content into batches, and the
    jobs of undone batches and runs onto the scan queue."""
    result = collect_new_content(config, pod, state)
    enqueued = enqueue_pending(config, state, rconn)
    result.enqueued_batches = enqueued.enqueued_batches
    result.enqueued_runs = enqueued.enqueued_runs
    if result.new_items or result.enqueued_batches or result.enqueued_runs:
        log.info(
            "content: %d new items in %d batches; enqueued %d batches and %d runs",
            result.new_items,
            len(result.new_batches),
            len(result.enqueued_batches),
            len(result.enqueued_runs),
        )
    return result


# ---------------------------------------------------------------------------------------------
# The jobs (worker/jobs.py calls these).


def scan_batch(config: Config, batch_id: int) -> int:
    """The batch job: match one batch of new content and store its matches; the batch is marked
    done in the same transaction. Safe to run twice. Returns the new signals."""
    from podmod.db import pod_connection, state_connection

    with state_connection(config) as state, pod_connection(config) as pod:
        state.execute("SELECT pg_advisory_lock(%s, %s)", (BATCH_LOCK_CLASS, _lock_key(batch_id)))
        state.commit()
        batch = state.execute(
            "SELECT item_type, item_ids, done_at FROM podmod.scan_batches WHERE id = %s",
            (batch_id,),
        ).fetchone()
        state.rollback()
        if batch is None or batch["done_at"] is not None:
            return 0
        matcher = matcher_for(config, state)
        scanned = scan_items(config, pod, state, matcher, batch["item_type"], ids=batch["item_ids"])
        with state.transaction():
            stored = _store_scanned(pod, state, scanned)
            state.execute(
                "UPDATE podmod.scan_batches SET done_at = now(), matched = %s WHERE id = %s",
                (stored, batch_id),
            )
        log.info(
            "scanned batch %d: %d %s items, %d new matches",
            batch_id,
            scanned.items,
            batch["item_type"].lower(),
            stored,
        )
        return stored


def scan_run(config: Config, run_id: int) -> bool:
    """The run job: work on a run for up to half the job timeout; the reader enqueues the next
    share while it is not done. Returns whether the run is done."""
    from podmod.db import pod_connection, state_connection

    with state_connection(config) as state, pod_connection(config) as pod:
        state.execute("SELECT pg_advisory_lock(%s, %s)", (RUN_LOCK_CLASS, _lock_key(run_id)))
        state.commit()
        progress = process_run(config, pod, state, run_id, budget=config["worker.job_timeout"] / 2)
        log.info(
            "scan run %d: %d items, %d new matches, done: %s",
            run_id,
            progress.items,
            progress.matched,
            progress.done,
        )
        return progress.done


def status(config: Config) -> dict[str, Any]:
    """What is waiting: undone batches, runs and their progress, photo hashes."""
    from podmod.db import state_connection

    with state_connection(config) as state:
        batches = state.execute(
            "SELECT count(*) AS n, coalesce(sum(cardinality(item_ids)), 0) AS items"
            " FROM podmod.scan_batches WHERE done_at IS NULL"
        ).fetchone()
        runs = state.execute(
            "SELECT r.id, r.reason, l.name AS list, r.version, r.created_at, r.done_at"
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
