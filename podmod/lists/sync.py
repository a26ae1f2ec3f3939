"""`podmod lists sync`: fetch, verify, parse, guard, store and apply each subscribed list.

One list failing never stops the others; its previous good version stays in force and its error is
recorded. An unchanged list (304, or the same bytes) costs one request and no work.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.types.json import Jsonb

from podmod import notify
from podmod.config import Config, ListConfig
from podmod.db import pod_connection, state_connection
from podmod.errors import PodmodError
from podmod.lists import apply, fetch, minisign, versions
from podmod.lists.parse import (
    ListFormatError,
    ListReader,
    NotAListError,
    collector_paused,
    recognised_not_a_list,
)
from podmod.notify import alerts
from podmod.redact import masked_url, printable
from podmod.scan import changes
from podmod.store import record_audit

log = logging.getLogger("podmod.lists")


@dataclass
class SyncOutcome:
    name: str
    status: str  # not_modified, unchanged, applied, held, failed, retired, deferred, rejected
    message: str
    version: int | None = None
    entries: int | None = None
    added: int = 0
    removed: int = 0
    matches_added: int = 0
    matches_retracted: int = 0
    locked: list[str] = field(default_factory=list)
    format: str | None = None
    locks_held: int = 0  # accounts its lock policy waits to lock (more than list_sync.max_locks)
    # What this sync is the first to find, for cron's mail (`lists sync --cron`): a hold of a
    # version that starts (not one taking the place of a held version of the same kind), locks
    # held back anew (a new version or count), a list now failing for over an hour.
    newly_held: bool = False
    locks_newly_held: bool = False
    failing_for_an_hour: bool = False
    # The list's latest version where it is not the one in force, as this sync leaves it:
    # {"number": 5, "status": "held" | "rejected" | "withdrawn"}; None when the version in force
    # is the latest (or the sync read no file: failed, deferred, retired).
    latest_version: dict[str, Any] | None = None
    # where the sync's time went, by phase (versions.Phases), and its total
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fetch_verified(
    config: Config,
    subscription: ListConfig,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    latest: dict[str, Any] | None = None,
) -> tuple[fetch.FetchResult, minisign.TrustedComment | None]:
    """Fetch a list and, when a public key is pinned, verify its signature and that it was signed
    for this list's file; what the signature's trusted comment says (None: not signed). `latest`:
    the list's latest stored version, whose signature a server between updates may still serve
    beside a new file (the refusal then says so)."""
    verify: bool | str = config["list_sync.ca_bundle"] or True
    result = fetch.fetch(
        subscription.url,
        name=subscription.name,
        etag=etag,
        last_modified=last_modified,
        max_bytes=config["list_sync.max_bytes"],
        timeout=config["list_sync.timeout"],
        verify=verify,
        proxy=config["list_sync.proxy"],
    )
    if result.not_modified or not subscription.public_key:
        return result, None
    try:
        signature = fetch.fetch_signature(
            subscription.url,
            name=subscription.name,
            timeout=config["list_sync.timeout"],
            verify=verify,
            signature_url=subscription.signature_url,
            proxy=config["list_sync.proxy"],
            deadline=result.deadline,  # (one time limit for the list and its signature)
        )
        comment = minisign.verify(
            result.body, signature, minisign.PublicKey.from_string(subscription.public_key)
        )
        signed = minisign.TrustedComment.parse(comment)
        _check_signed_file(subscription, signed, result)
        _check_signed_time(signed)
    except (fetch.FetchError, minisign.SignatureError) as error:
        # A forge's page of the file, or its Git LFS pointer, has no signature beside it or not
        # the file's: what the address served says more than that.
        if (not_a_list := recognised_not_a_list(result.body)) is not None:
            raise _naming_the_file(subscription, not_a_list) from None
        if isinstance(error, fetch.FetchError):
            raise
        between = (
            _between_updates(error, result.body, latest)
            if isinstance(error, minisign.OtherFileSignature) and latest is not None
            else None
        )
        raise minisign.SignatureError(
            f"List {subscription.name!r} was refused: {between or error}"
        ) from None
    return result, signed


def _between_updates(
    error: minisign.OtherFileSignature, body: bytes, latest: dict[str, Any]
) -> str | None:
    """Why a signature the pinned key made for other bytes is beside this file, when what it
    signed says: the signature of the latest stored version beside a new file, or a signature
    newer than it beside that version's own file. Both are what a server between updates serves
    (the file and its signature uploaded one after the other, or cached apart, as
    raw.githubusercontent.com caches each file for five minutes), and what a file changed
    without the key looks like too; the words say both. None: neither."""
    number = latest["number"]
    signed = minisign.TrustedComment.parse(error.trusted_comment)
    when = f" (signed {versions.signed_time(signed.signed_at)})" if signed.signed_at else ""
    if latest["signed_comment"] == signed.text:
        return (
            f"its file changed, but its signature is still the one of version {number}{when}. "
            "Either its server is between updates, serving the new file beside the old "
            "signature (uploaded one after the other, or cached apart for a few minutes), and a "
            "later sync takes the new version; or the file was changed without the maintainers' "
            "key. The version in force stays; if this lasts, ask the list's maintainers."
        )
    newer = (
        signed.signed_at is not None
        and latest["signed_at"] is not None
        and signed.signed_at > latest["signed_at"]
    )
    if newer and versions.content_digest(body) == latest["sha256"]:
        return (
            f"its signature is newer{when} than its file, which is still version {number}'s. "
            "Its server is between updates, serving the old file beside the new signature "
            "(uploaded one after the other, or cached apart for a few minutes); a later sync "
            "takes the new version. The version in force stays; if this lasts, ask the list's "
            "maintainers."
        )
    return None


def moved_text(result: fetch.FetchResult) -> str:
    """What a sync says of a list whose server moved it for good (each redirect to where it is
    now permanent): where, and the setting that follows it, before the old address stops
    redirecting; "" otherwise."""
    if not result.moved:
        return ""
    return "; " + versions.MOVED.format(url=masked_url(result.url))


def _check_signed_file(
    subscription: ListConfig, signed: minisign.TrustedComment, result: fetch.FetchResult
) -> None:
    """A signature names the file it was made for (minisign's `file:`): a file the same key
    signed for another list, served at this list's URL, is refused (also when its server
    redirects there for good: the podmin, not the server, moves a subscription)."""
    if signed.file is None:
        return
    expected = subscription.signed_file or _last_part(subscription.url)
    if signed.file == expected:
        return
    # (a publisher's words: quoted without controls or direction marks, which would turn
    # podmod's sentence around on a page and in the signed_file it suggests)
    named = signed.file if len(signed.file) <= 100 else signed.file[:100] + "…"
    if printable(named) != named:
        # (quoted escaped: a publisher's control characters or direction marks would drive the
        # terminal or turn podmod's sentence around on a page; and no signed_file is suggested)
        raise minisign.SignatureError(
            f"its signature is for the file {named!r}, not {expected}: a name with control or "
            "invisible characters, which is never taken for a list's file; ask the list's "
            "maintainers which file this is."
        )
    if result.moved and signed.file == _last_part(result.url):
        raise minisign.SignatureError(
            f"its signature is for the file {named}, not {expected}, and its server says it "
            f"moved for good to {masked_url(result.url)}: if the list's maintainers moved it, "
            "set its url to that address."
        )
    if subscription.signed_file:
        raise minisign.SignatureError(
            f"its signature is for the file {named}, not {expected} (signed_file); correct "
            "signed_file or ask the list's maintainers which file this is."
        )
    raise minisign.SignatureError(
        f"its signature is for the file {named}, not {expected} (the last part of its URL): "
        "this may be another list's file, signed with the same key and served in this one's "
        f'place; set signed_file = "{named}" for this list only once its publisher confirms '
        "that this list is served under that name."
    )


def _last_part(url: str) -> str:
    return unquote(urlsplit(url).path.split("/")[-1])


# How far ahead of this server's clock a signature's time may be: clocks that drift by minutes
# pass. More is refused, not taken: in force, a version signed hours ahead (a clock set to local
# time as if it were UTC) would make every later version signed at the right time look older and
# be refused as a replay until then; refused, the same file is taken once this clock reaches its
# time, and a publisher who corrects their clock is read at once.
SIGNED_AHEAD = timedelta(minutes=15)


def _check_signed_time(signed: minisign.TrustedComment) -> None:
    """A file signed ahead of this server's clock (by more than SIGNED_AHEAD) is refused."""
    now = datetime.now(UTC)
    if signed.signed_at is None or signed.signed_at <= now + SIGNED_AHEAD:
        return
    raise minisign.SignatureError(
        f"it was signed at {versions.signed_time(signed.signed_at)}, "
        f"{_duration(signed.signed_at - now)} ahead of this server's clock "
        f"({versions.signed_time(now)}): in force, it would make every later version look older "
        "and be refused. Ask the list's maintainers to check their clock (or check this "
        "server's, `timedatectl`); the version in force stays, and this file is taken once this "
        "server's clock reaches its time."
    )


def _duration(span: timedelta) -> str:
    """A span as people say it: '40 minutes', '20 hours', '3 days'."""
    minutes = round(span.total_seconds() / 60)
    if minutes < 120:
        return f"{minutes} minute{'s' * (minutes != 1)}"
    if minutes < 48 * 60:
        return f"{round(minutes / 60)} hours"
    return f"{round(minutes / (24 * 60)):,} days"


Progress = Callable[[str], None]

SYNC_LOCK = 0x7073796E  # "psyn": (with the list's name) one sync, dry run or approval at a time


@contextmanager
def one_at_a_time(state: psycopg.Connection, name: str, progress: Progress) -> Iterator[None]:
    """Hold the list's sync lock (a session advisory lock on the state database) meanwhile,
    waiting for another sync, dry run or approval of the same list to end: the cron's sync and a
    podmin's by hand at the same moment would both store the same next version, and the second
    fail on the first's entries or record it twice. The one that waited then starts from what
    the first left (its file's validators: "not modified")."""
    key = (SYNC_LOCK, name)
    got = state.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS got", key).fetchone()
    if not got["got"]:
        progress(f"{name}: waiting for another sync of this list to end")
        log.info("list %s: waiting for another sync of this list to end", name)
        state.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", key)
    state.commit()
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):  # (a lost connection released it)
            state.rollback()
            state.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
            state.commit()


ListStep = Callable[[Config, ListConfig, psycopg.Connection, psycopg.Connection, Progress], Any]


def _locked_per_list(step: ListStep) -> ListStep:
    """A sync or dry run of one list, holding its sync lock (one_at_a_time)."""

    @functools.wraps(step)
    def locked(
        config: Config,
        subscription: ListConfig,
        pod: psycopg.Connection,
        state: psycopg.Connection,
        progress: Progress = lambda stage: None,
    ) -> Any:
        with one_at_a_time(state, subscription.name, progress):
            return step(config, subscription, pod, state, progress)

    return locked


@_locked_per_list
def sync_list(
    config: Config,
    subscription: ListConfig,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    progress: Progress = lambda stage: None,
) -> SyncOutcome:
    """Sync one list; never raises for a problem with the list itself (it is the outcome)."""
    name = subscription.name
    started = time.perf_counter()
    phases = versions.Phases()
    with state.transaction():
        list_row, changed = versions.ensure_list(state, subscription)
        attempted = state.execute(
            "UPDATE podmod.lists SET last_attempt_at = now() WHERE id = %s"
            " RETURNING coalesce(retry_after > now(), false) AS deferred, now() AS now",
            (list_row["id"],),
        ).fetchone()
    attempt = time.perf_counter() - started  # (the attempt recorded: part of `record`)
    # (list_row is as the attempt before left it: this one's time is not in it)
    an_hour = failing_for_an_hour(list_row, attempted["now"])
    if attempted["deferred"]:  # (the list's server asked to be left alone until then: 429 or 503)
        message = _deferred_text(list_row)
        log.info("list %s: %s", name, message)
        return SyncOutcome(
            name,
            "deferred",
            message,
            version=list_row["current_version"],
            failing_for_an_hour=an_hour and list_row["last_error_at"] is not None,
        )
    try:
        progress(f"{name}: fetching and verifying")
        with phases.timed("fetch"):
            latest, result, signed = _fetch(config, subscription, list_row, changed, state)
        with state.transaction():
            progress(f"{name}: storing and applying")
            outcome = _store(
                config, subscription, list_row, latest, result, signed, pod, state, changed, phases
            )
            outcome.message += moved_text(result)
            recording = time.perf_counter()
            state.execute(
                "UPDATE podmod.lists SET etag = %s, last_modified = %s, last_success_at = now(),"
                " last_error = NULL, last_error_at = NULL, retry_after = NULL, moved_to = %s,"
                " applied_settings = %s WHERE id = %s",
                (
                    result.etag if not result.not_modified else list_row["etag"],
                    result.last_modified if not result.not_modified else list_row["last_modified"],
                    masked_url(result.url) if result.moved else None,
                    Jsonb(versions.list_settings(subscription)),
                    list_row["id"],
                ),
            )
        phases.add("record", attempt + time.perf_counter() - recording)
    except psycopg.OperationalError:
        raise  # (the connection is lost: the CLI's one sentence; the next sync carries on)
    except Exception as error:
        if not isinstance(error, PodmodError):
            # A defect of podmod's, met on this list's file or server: it fails with its own
            # words, the others still sync, and the log keeps the traceback to report.
            log.exception("list %s: unexpected error", name)
            error = PodmodError(
                f"List {name!r} could not be synced: podmod met an unexpected error "
                f"({type(error).__name__}: {printable(str(error))[:200]}); "
                f"{_kept_text(list_row['current_version'])}; the log has the details, "
                "please report them."
            )
        state.rollback()
        pod.rollback()
        # (it may quote a server's or a publisher's words: kept as every page and line shows it)
        said = printable(_failure_text(error, list_row["current_version"]))
        with state.transaction():
            state.execute(
                "UPDATE podmod.lists SET last_error = %s, last_error_at = now(), retry_after = %s"
                " WHERE id = %s",
                (said, getattr(error, "retry_after", None), list_row["id"]),
            )
        log.error("list %s: %s", name, said)
        return SyncOutcome(
            name, "failed", said, version=list_row["current_version"], failing_for_an_hour=an_hour
        )
    # Not only after a new version: a sync cut short after storing one owes its locks, and the
    # next sync finds the list unchanged. Each match locks at most once, so this is cheap.
    if outcome.status == "applied" or subscription.policy == "lock":
        with phases.timed("locks"):
            locks = apply.carry_out_lock_policies(config, state)
            outcome.locks_newly_held = name in locks.newly_held
            state.commit()
        _locks_said(config, outcome, locks)
    outcome.seconds = phases.given(started)
    log.info(
        "list %s: %s (in %.2f s: %s)",
        name,
        outcome.message,
        outcome.seconds["total"],
        phases.text(),
    )
    return outcome


def failing_for_an_hour(list_row: dict[str, Any], now: datetime) -> bool:
    """Whether a sync at `now` of a list whose row is `list_row` (as the attempt before left it)
    is the first to find it failing for over alerts.FAILING_AFTER, should it fail: its last
    success (or its subscription) is older than that, and the attempt before came before that
    mark. Later attempts are not: cron mails a list failing for hours once, not every 15
    minutes."""
    since = list_row["last_success_at"] or list_row["created_at"]
    mark = since + alerts.FAILING_AFTER
    before = list_row["last_attempt_at"]
    return now >= mark and (before is None or before < mark)


def _deferred_text(list_row: dict[str, Any]) -> str:
    """Why a sync left a list alone: its server asked to be asked again later."""
    return (
        "not fetched: its server asked not to be asked again before"
        f" {fetch.utc_minute(list_row['retry_after'])} (Retry-After);"
        f" {_kept_text(list_row['current_version'])}"
        f" (`podmod lists sync --now --name {list_row['name']}` asks it anyway)"
    )


def _failure_text(error: PodmodError, current: int | None) -> str:
    """Why a list's sync failed, saying rightly what stays in force (`current`: its version)."""
    return error.for_version(current) if isinstance(error, fetch.FetchError) else str(error)


def _kept_text(current: int | None) -> str:
    """What stays in force when a sync applies nothing: "version 3 stays in force"."""
    return f"version {current} stays in force" if current else "no version of it is in force yet"


def _locks_said(config: Config, outcome: SyncOutcome, locks: apply.Locks) -> None:
    """The locks a list's policy carried out, or why it waits, told in its outcome."""
    outcome.locked = [handle for _, handle in locks.locked]
    outcome.locks_held = locks.held.get(outcome.name, 0)
    if outcome.locks_held:
        outcome.message += "; " + apply.locks_held_text(config, outcome.name, outcome.locks_held)


def _fetch(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any] | None,
    changed: list[str],
    state: psycopg.Connection,
) -> tuple[dict[str, Any] | None, fetch.FetchResult, minisign.TrustedComment | None]:
    """The list's file fetched and verified, and the version in force it is compared with: none
    when the file is to be read again (podmod reads files differently now, or a setting about
    reading it changed), so that the same bytes are read anew. The file is asked for only if
    changed (ETag, Last-Modified) when nothing about the list changed."""
    latest = versions.latest_version(state, list_row["id"]) if list_row else None
    # While a version held again after its publisher's server flapped stays held, the file is
    # fetched whole: "not modified" would not say which of the two files it is, and only the
    # version in force's file served for a day withdraws it (_after_in_force).
    held = versions.held_version(state, list_row["id"]) if list_row else None
    # No transaction stays open during the download, and the store after it is a transaction of
    # its own (begun inside an open one, it would be a savepoint whose work a later list's
    # failure rolled back with that list's: a held version and its notification lost).
    state.commit()
    # (A version a podmin rejected is not: its file, read by an older podmod, stays rejected, not
    # held anew and the staff told again after an upgrade, nor applied without them.)
    read_again = latest is not None and (
        (latest["reader"] < versions.READER and latest["status"] != "rejected")
        or any(setting in versions.READ_SETTINGS for setting in changed)
    )
    conditional = (
        list_row is not None
        and list_row["url"] == masked_url(subscription.url)  # (a dry run's row: before it moved)
        and latest is not None
        and not changed
        and not read_again
        and (held is None or held["held_again_at"] is None)
    )
    result, signed = fetch_verified(
        config,
        subscription,
        etag=list_row["etag"] if conditional else None,
        last_modified=list_row["last_modified"] if conditional else None,
        latest=latest,
    )
    return None if read_again else latest, result, signed


@_locked_per_list
def preview_list(
    config: Config,
    subscription: ListConfig,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    progress: Progress = lambda stage: None,
) -> SyncOutcome:
    """What syncing one list would do, done and then undone: the file fetched and verified, then
    read, stored and matched inside a transaction that is rolled back, and the accounts its lock
    policy would lock named, not locked. Nothing is kept: no version, match, case, audit entry,
    notification or lock, not even the time of the attempt."""
    name = subscription.name
    started = time.perf_counter()
    phases = versions.Phases()
    list_row, changed = versions.list_state(state, subscription)
    try:
        progress(f"{name}: fetching and verifying")
        with phases.timed("fetch"):
            latest, result, signed = _fetch(config, subscription, list_row, changed, state)
        with state.transaction(force_rollback=True):
            progress(f"{name}: storing and applying, to be undone")
            row, _ = versions.ensure_list(state, subscription)
            outcome = _store(
                config,
                subscription,
                row,
                latest,
                result,
                signed,
                pod,
                state,
                changed,
                phases,
                dry_run=True,
            )
            outcome.message += moved_text(result)
            refused: list[str] = []
            if outcome.status == "applied" or subscription.policy == "lock":  # (as sync_list)
                plan = apply.lock_plan(pod, state)
                refused = sorted(plan.refused.get(name, []))
                held = plan.held(config)
                would = [] if name in held else plan.handles(name)
                _locks_said(config, outcome, apply.Locks([(name, h) for h in would], held))
    except PodmodError as error:
        state.rollback()
        pod.rollback()
        version = list_row["current_version"] if list_row else None
        return SyncOutcome(name, "failed", _failure_text(error, version), version=version)
    if refused:
        outcome.message += (
            f"; would not lock {', '.join(refused)} (an admin or a moderator: a list never does)"
        )
    outcome.seconds = phases.given(started)
    return outcome


def _after_list_change(state: psycopg.Connection, **change: Any) -> None:
    """Retract the content matches a list change ends, and record the scan of the content already
    on the pod that it asks for (podmod.scan.changes)."""
    changes.after_list_change(state, **change)


def _store(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any],
    latest: dict[str, Any] | None,
    result: fetch.FetchResult,
    signed: minisign.TrustedComment | None,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    changed: list[str],
    phases: versions.Phases,
    *,
    dry_run: bool = False,
) -> SyncOutcome:
    """Store and apply a fetched list (a dry run: only its messages differ, as nothing stays),
    each phase timed in `phases`."""
    name = subscription.name
    current = list_row["current_version"]
    with phases.timed("open"):
        digest = None if result.not_modified else versions.content_digest(result.body)
    if latest is not None and latest["status"] != "held":
        # (a version held again after a later one took its place: the one that waits, not the
        # latest)
        latest = versions.held_version(state, list_row["id"]) or latest
    in_force = latest
    if latest is not None and latest["number"] != current:
        in_force = versions.version_row(state, list_row["id"], current)
    # The version in force's own file (and signature), while a version after it is held, or was
    # rejected or withdrawn: not a replay, however older than that version it was signed. Its
    # publisher took the held change back (a `git revert` of the file and its .minisig).
    again = in_force is not None and in_force is not latest and in_force["sha256"] == digest
    # (a withdrawn version's own file served again is judged anew: its publisher means it again)
    unchanged = (
        result.not_modified
        or again
        or (latest is not None and latest["sha256"] == digest and latest["status"] != "withdrawn")
    )
    if unchanged:
        if latest is not None and latest["status"] == "held" and latest["sha256"] == digest:
            versions.still_served(state, list_row["id"], latest["number"])  # (served as held)
        after = _after_in_force(
            config, subscription, list_row, latest, state, withdraw="file" if again else None
        )
        outcome = _unchanged(
            config,
            subscription,
            list_row,
            pod,
            state,
            changed,
            phases,
            "not_modified" if result.not_modified else "unchanged",
            " (not modified since the last sync)" if result.not_modified else "",
            after,
        )
        outcome.latest_version = _latest_beyond(list_row, latest, withdrew=again)
        return outcome
    with phases.timed("open"):
        if signed is not None:
            versions.refuse_replay(state, list_row, signed, digest)
        # (the newest version of this very file, and one a podmin approved)
        same_file, approved = versions.versions_of_file(state, list_row["id"], digest, in_force)
    if same_file is not None and same_file["status"] == "rejected":
        # A podmin rejected this very file (a cache or mirror still serving it beside a later
        # version): it is never stored, held or asked about again; counted, not logged.
        count = versions.served_again(state, list_row["id"], same_file["number"])
        how = (
            f" (the file is version {same_file['number']}'s, rejected by"
            f" {same_file['rejected_by']}: not taken again; served again"
            f" {versions.times_text(count)})"
        )
        return _unchanged(
            config, subscription, list_row, pod, state, changed, phases, "unchanged", how, ""
        )
    if same_file is not None and _may_hold_again(
        config, subscription, list_row, same_file, changed
    ):
        return _held_again(
            config, subscription, list_row, latest, same_file, result, signed, state, dry_run
        )
    with phases.timed("open"):
        reader = list_reader(subscription, result.body)
        # The version stored last, also where the file is read again (`latest` is None then: a
        # version an older podmod held, held again as read now, replaces it, told no one anew).
        before = latest or versions.latest_version(state, list_row["id"])
        # The version in force the stored one is compared with (also where the file is read
        # again: the same entries read by this podmod are no new version).
        compared = in_force or versions.version_row(state, list_row["id"], current)
    breadth = None
    same = False
    with state.transaction() as stored_and_matched:  # (a savepoint: undone if it reaches too far)
        with ThreadPoolExecutor(1) as aside:
            # A domain list's entries are pods: the pod's hosts are read on the pod's connection
            # meanwhile, which nothing else uses until the matching.
            ahead = aside.submit(apply.prefetch, pod) if reader.format != "podmod" else None
            stored = versions.store_version(
                config,
                state,
                list_row,
                subscription,
                reader,
                result.body,
                signed=signed,
                digest=digest,
                approved_before=approved is not None,
            )
            with phases.timed("match"):  # (what is left of reading the pod's hosts)
                hosts = ahead.result() if ahead is not None else None
                pod.rollback()  # (the hosts are read; no transaction stays open on the pod)
        for phase, seconds in stored.seconds.items():
            phases.add(phase, seconds)
        if stored.status == "applied" and _same_entries(state, stored.record, compared):
            same = True  # (known from the changes worked out: no pass over the rows again)
            raise psycopg.Rollback(stored_and_matched)
        if stored.status == "applied":
            with phases.timed("match"):
                matched = apply.match_people(config, pod, state, full=True, ahead=hosts)
                breadth = (
                    apply.too_broad(
                        pod, state, matched, list_row["id"], _match_share(config, subscription)
                    )
                    if approved is None
                    else None
                )
                if breadth is not None:
                    raise psycopg.Rollback(stored_and_matched)
                _after_list_change(
                    state, list_id=list_row["id"], version=stored.number, reason="list_version"
                )
    if same:
        # Entries the version in force has already (a "generated at" line, rows in another
        # order): no version, no audit entry, no matching. The version in force takes this file's
        # digest and signature (versions.keep_file_of): the next sync of the same bytes is
        # unchanged at once, and a file signed before this one is still refused as a replay.
        # Read again only because podmod reads files differently now (an upgrade): the version in
        # force is marked read so, and the next sync asks for the file only if it changed.
        upgraded = compared is not None and compared["reader"] < versions.READER
        versions.keep_file_of(state, list_row["id"], current, digest, signed)
        after = _after_in_force(config, subscription, list_row, latest, state, withdraw="entries")
        outcome = _unchanged(
            config,
            subscription,
            list_row,
            pod,
            state,
            changed,
            phases,
            "unchanged",
            " (same entries, read as podmod reads files now)"
            if upgraded and digest == compared["sha256"]
            else " (same entries; the file's bytes changed)",
            after,
        )
        outcome.latest_version = _latest_beyond(list_row, latest, withdrew=True)
        return outcome
    reading = _reading(reader)
    if breadth is not None:
        with phases.timed("record"):
            stored = versions.hold(
                state, stored.record, _breadth_reason(config, subscription, breadth), result.body
            )
    if stored.status == "held":
        # A publisher re-publishing the change that is held (versions 10, 11, 12 each removing
        # the same share) holds each, the earlier superseded; the staff and cron hear of the hold
        # once, when it starts: the later versions' events, for webhooks, say which they replace.
        replaces = (
            before["number"]
            if before is not None
            and before["status"] == "held"
            and _hold_kind(before["held_reason"]) == _hold_kind(stored.held_reason)
            else None
        )
        with phases.timed("record"):
            _audit_sync(
                state,
                subscription,
                "hold",
                f"version {stored.number} held: "
                f"{stored.held_reason}; approve it with `podmod lists approve {name} "
                f"{stored.number}`" + (f"; it replaces version {replaces}" if replaces else ""),
            )
            facts = {"version": stored.number, "held_reason": stored.held_reason}
            if replaces:
                facts["replaces"] = replaces
            notify.record(config, state, "list.held", list_name=name, facts=facts)
        then = (
            f"approve with `podmod lists approve {name} {stored.number}`"
            if not dry_run
            else f"a sync would keep it for `podmod lists diff {name}` and `podmod lists approve`"
        )
        settled = (
            f"; it replaces version {replaces}, held for the same kind of change (the staff were "
            "told of that hold)"
            if replaces
            else ""
        )
        if changed and current is not None:
            # The podmin's new settings apply to the version in force meanwhile: the next syncs
            # find them applied (sync_list records them) and the held file unchanged.
            what, matched = _apply_settings(
                config, subscription, list_row, pod, state, changed, phases
            )
            settled += (
                f"; settings changed ({what}), applied to version {current}: "
                f"{_matched(matched, list_row['id'])}"
            )
        return SyncOutcome(
            name,
            "held",
            f"version {stored.number} ({reading}) held for approval: {stored.held_reason}; "
            f"{_kept_text(current)} ({then}){settled}",
            version=current,
            entries=stored.entries,
            added=stored.added,
            removed=stored.removed,
            format=reader.format,
            newly_held=not replaces and not dry_run,
            latest_version={"number": stored.number, "status": "held"},
        )
    message = (
        f"version {stored.number} applied ({reading}): {_changed(stored)}; "
        f"{_matched(matched, list_row['id'])}{_skipped_rows(reader)}"
    )
    if approved is not None:
        message += (
            f"; its file is version {approved['number']}'s, which {approved['approved_by']} "
            "approved: not held again"
        )
    with phases.timed("record"):
        _audit_sync(state, subscription, "apply", message)
    return SyncOutcome(
        name,
        "applied",
        message,
        version=stored.number,
        entries=stored.entries,
        added=stored.added,
        removed=stored.removed,
        matches_added=matched.added_by_list[list_row["id"]],
        matches_retracted=matched.retracted_by_list[list_row["id"]],
        format=reader.format,
    )


def _unchanged(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any],
    pod: psycopg.Connection,
    state: psycopg.Connection,
    changed: list[str],
    phases: versions.Phases,
    status: str,
    how: str,
    after: str,
) -> SyncOutcome:
    """The outcome of a sync that stores no version: "unchanged{how}; version 3 stays in
    force{after}", or, with settings `changed`, those applied to the version in force (its
    matches made again), and `after` (_after_in_force)."""
    current = list_row["current_version"]
    if not changed:
        message = f"unchanged{how}; {_kept_text(current)}{after}"
        return SyncOutcome(subscription.name, status, message, version=current)
    what, matched = _apply_settings(config, subscription, list_row, pod, state, changed, phases)
    return SyncOutcome(
        subscription.name,
        "applied",
        f"settings changed ({what}); matches re-applied: {_matched(matched, list_row['id'])}"
        + after,
        version=current,
        matches_added=matched.added_by_list[list_row["id"]],
        matches_retracted=matched.retracted_by_list[list_row["id"]],
    )


def _latest_beyond(
    list_row: dict[str, Any], latest: dict[str, Any] | None, *, withdrew: bool
) -> dict[str, Any] | None:
    """The list's latest version after a sync that stored none, where it is not the one in
    force (SyncOutcome.latest_version); `withdrew`: the sync withdrew it if it was held."""
    if latest is None or latest["number"] == list_row["current_version"]:
        return None
    status = "withdrawn" if withdrew and latest["status"] == "held" else latest["status"]
    return {"number": latest["number"], "status": status}


def _after_in_force(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any],
    latest: dict[str, Any] | None,
    state: psycopg.Connection,
    *,
    withdraw: str | None,
) -> str:
    """What an unchanged sync says after the version in force of the version after it: that it
    waits for approval, or was rejected; `withdraw` ("file", "entries"): the server serves the
    version in force's again, so a held one was withdrawn by its publisher (withdraw_held)."""
    if latest is None or latest["number"] == list_row["current_version"]:
        return ""
    number, name = latest["number"], subscription.name
    if latest["status"] == "held" and withdraw:
        flaps = versions.stays_held(state, list_row["id"], number)
        if flaps is not None:
            current = list_row["current_version"]
            return (
                f"; version {number} stays held: its server serves version {current}'s {withdraw}"
                f" again, {versions.times_text(flaps)} since version {number}'s came back (a"
                f" source flapping between the two); it is withdrawn once only version {current}'s"
                f" is served for {_duration(versions.FLAP_SETTLES)}; staff not told again"
            )
        return "; " + _withdraw_held(config, subscription, list_row, number, withdraw, state)
    if latest["status"] == "held":
        return f"; version {number} waits for approval (`podmod lists approve {name} {number}`)"
    if latest["status"] == "rejected":
        return f"; version {number} was rejected by {latest['rejected_by']}"
    return ""


def _withdraw_held(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any],
    number: int,
    served: str,
    state: psycopg.Connection,
) -> str:
    """Held version `number` is withdrawn: its list's server serves the version in force's
    `served` ("file", "entries") again, so its publisher took the held change back. It stops
    waiting (status `withdrawn`: not `superseded`, as no later version took its place, and it
    can no longer be approved); audited, and told where the hold was told (list.held). A later
    file is judged as usual, this version's own file too. Says so."""
    name, current = subscription.name, list_row["current_version"]
    text = (
        f"version {number}, held, was withdrawn: its server serves version {current}'s "
        f"{served} again"
    )
    versions.end_held(state, list_row["id"], number, "withdrawn")
    _audit_sync(state, subscription, "withdraw", text)
    told = state.execute(
        "SELECT EXISTS (SELECT 1 FROM podmod.events WHERE type = 'list.held'"
        " AND list_name = %s AND (facts ->> 'version')::integer > %s) AS told",
        (name, current or 0),
    ).fetchone()["told"]
    if told:
        facts = {"version": number, "withdrawn": True, "in_force": current, "held_reason": text}
        notify.record(config, state, "list.held", list_name=name, facts=facts)
    log.info("list %s: %s", name, text)
    return text


def _may_hold_again(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any],
    before: dict[str, Any],
    changed: list[str],
) -> bool:
    """Whether a file served again is version `before`'s, held, then withdrawn or superseded,
    and would be held again for the same reason: held after the version in force (what it changes
    is what it changed then), read by this podmod with the same settings, and, held for removing
    too much, still removing more than the share allowed now."""
    if before["status"] not in ("withdrawn", "superseded") or before["held_reason"] is None:
        return False
    if before["number"] <= (list_row["current_version"] or 0) or changed:
        return False
    if before["reader"] != versions.READER or (
        before["skipped_rows"] and not subscription.skip_invalid
    ):
        return False
    if _hold_kind(before["held_reason"]) == "breadth":
        return True
    current = before["entries"] - before["added"] + before["removed"]
    share = subscription.max_removal_share or config["list_sync.max_removal_share"]
    return bool(current) and before["removed"] / current > share


def _held_again(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any],
    latest: dict[str, Any] | None,
    before: dict[str, Any],
    result: fetch.FetchResult,
    signed: minisign.TrustedComment | None,
    state: psycopg.Connection,
    dry_run: bool,
) -> SyncOutcome:
    """The file of version `before`, held, then withdrawn or superseded, is served again (a cache
    or load balancer serving two files in turn): that version is held again, with no new version
    and its file not read again. The staff hear it once, when no other version waited (it was
    withdrawn: they heard that); taking the place of a held one, it is the same hold, counted.
    It then stays held while its server flaps (_after_in_force)."""
    name, number, current = subscription.name, before["number"], list_row["current_version"]
    waiting = latest is not None and latest["status"] == "held" and latest["number"] != number
    versions.hold_again(state, list_row["id"], number, result.body, signed, told=not waiting)
    approve = (
        f"approve with `podmod lists approve {name} {number}`"
        if not dry_run
        else f"a sync would keep it for `podmod lists diff {name}` and `podmod lists approve`"
    )
    if waiting:
        text = (
            f"version {number} ({before['format']}) held for approval: {before['held_reason']}; "
            f"the content held before as version {number}, served again in place of version "
            f"{latest['number']}'s (a source flapping between the two): still held, staff not "
            f"told again; {_kept_text(current)} ({approve})"
        )
    else:
        why = (
            f"its server serves its file again after version {current}'s (its publisher means "
            "it after all, or a cache or load balancer serves the two in turn); it stays held "
            "while they alternate, until approved or rejected, and is withdrawn once only "
            f"version {current}'s file is served for {_duration(versions.FLAP_SETTLES)}"
        )
        _audit_sync(state, subscription, "hold", f"version {number} held again: {why}; {approve}")
        facts = {
            "version": number,
            "held_reason": f"{before['held_reason']}; held again: its file is served again "
            f"after version {current}'s",
            "held_again": True,
        }
        notify.record(config, state, "list.held", list_name=name, facts=facts)
        text = (
            f"version {number} ({before['format']}) held again for approval: "
            f"{before['held_reason']}; {why}; {_kept_text(current)} ({approve})"
        )
    return SyncOutcome(
        name,
        "held",
        text,
        version=current,
        entries=before["entries"],
        added=before["added"],
        removed=before["removed"],
        format=before["format"],
        newly_held=not waiting and not dry_run,
    )


def _hold_kind(reason: str | None) -> str:
    """What a held version's reason is about: removing too much (versions.store_version's "it
    removes …") or matching too many (_breadth_reason's "it newly matches …")."""
    return "removal" if (reason or "").startswith(versions.REMOVES_TOO_MUCH) else "breadth"


# What a version row says of how its file was read, beside its entries: a file of the same entries
# that was read otherwise (a row skipped, a canary added) is a version of its own. (Not the reader
# that read it: read again after an upgrade into the same entries, counted alike, it is the same.)
_READ_AS = (
    ("entries", "entries"),
    ("format", "format"),
    ("skipped", "skipped_rows"),
    ("obfuscated", "obfuscated_rows"),
    ("patterns", "pattern_rows"),
    ("repeated", "repeated_rows"),
    ("unblocked", "unblocked_rows"),
    ("canaries", "canaries"),
    ("hides_blocks", "hides_blocks"),
)


def _same_entries(
    state: psycopg.Connection, record: dict[str, Any], in_force: dict[str, Any] | None
) -> bool:
    """Whether a version just stored (`record`, not committed) has the entries of the version in
    force, read alike: nothing added or removed, and no entry changed (entry_changes, the
    difference store_version worked out, is empty; none is staged when neither has an entry)."""
    if in_force is None or in_force["status"] != "applied" or record["added"] or record["removed"]:
        return False
    if any(record[key] != in_force[column] for key, column in _READ_AS):
        return False
    staged = state.execute(
        "SELECT to_regclass('pg_temp.entry_changes') IS NOT NULL AS staged"
    ).fetchone()["staged"]
    if not staged:
        return True
    return not state.execute("SELECT EXISTS (SELECT 1 FROM entry_changes) AS any").fetchone()["any"]


def list_reader(subscription: ListConfig, body: bytes) -> ListReader:
    """The reader of a list's fetched file, with the list's settings (not read yet); what is not a
    list is refused naming the file's address where the list's own tells it."""
    try:
        return ListReader(body, format=subscription.format, severity=subscription.severity)
    except NotAListError as error:
        raise _naming_the_file(subscription, error) from None


def read_through(subscription: ListConfig, body: bytes) -> str:
    """Read a list's fetched file as a sync would, keeping nothing: how it reads ("mastodon-csv,
    900,000 entries, 130 obfuscated rows skipped"), or the ListFormatError a sync would refuse it
    with (for `podmod check`)."""
    reader = list_reader(subscription, body)
    with collector_paused():
        entries = sum(1 for _ in reader.rows())
    reader.check(skip_invalid=subscription.skip_invalid, require_canary=subscription.require_canary)
    return _reading(reader, entries)


def _naming_the_file(subscription: ListConfig, error: NotAListError) -> ListFormatError:
    """The refusal of a list whose address served a forge's page of the file, or its Git LFS
    pointer, naming the file's address where the list's own tells it."""
    address = fetch.file_address(subscription.url, error.serves)
    if address is None:
        return error
    which = "LFS" if error.serves == "lfs" else "own"
    shown = masked_url(address)
    return ListFormatError(f"{error.problem}; set url to the file's {which} address, {shown}.")


def _match_share(config: Config, subscription: ListConfig) -> float:
    return subscription.max_new_match_share or config["list_sync.max_new_match_share"]


def _breadth_reason(config: Config, subscription: ListConfig, breadth: apply.Breadth) -> str:
    """Why a version that reaches too far is held: "it newly matches …, more than the 5% allowed
    (list_sync.max_new_match_share)"."""
    setting = (
        "its max_new_match_share"
        if subscription.max_new_match_share
        else "list_sync.max_new_match_share"
    )
    share = _match_share(config, subscription)
    return f"{breadth.text()}; more than the {versions.share_text(share)} allowed ({setting})"


def _changed(stored: versions.VersionOutcome) -> str:
    """A version's entries and how they changed: "1 entry (+1 -0)", "900,000 entries (+…)"."""
    return f"{versions.entries_text(stored.entries)} (+{stored.added:,} -{stored.removed:,})"


def _apply_settings(
    config: Config,
    subscription: ListConfig,
    list_row: dict[str, Any],
    pod: psycopg.Connection,
    state: psycopg.Connection,
    changed: list[str],
    phases: versions.Phases,
) -> tuple[str, apply.ApplyResult]:
    """A list's changed settings applied to its version in force (its matches made again),
    recorded in the audit log: what changed ("labels hate, policy 'lock'"), and the matching."""
    with phases.timed("match"):
        matched = apply.match_people(config, pod, state, full=True)
        _after_list_change(state, list_id=list_row["id"], version=None, reason="list")
    settings = versions.list_settings(subscription)
    what = ", ".join(f"{setting} {_setting_text(settings[setting])}" for setting in changed)
    with phases.timed("record"):
        _audit_sync(state, subscription, "settings", f"settings changed: {what}")
    return what, matched


def _matched(matched: apply.ApplyResult, list_id: int) -> str:
    """What applying the lists changed for this list: "1 new match, 0 retracted", and what the
    same matching did for the others (people who came since the last matching, a sync cut short
    before): "; other lists' matches: 26 new"."""
    added, retracted = matched.added_by_list[list_id], matched.retracted_by_list[list_id]
    text = f"{added:,} new match{'' if added == 1 else 'es'}, {retracted:,} retracted"
    others = [
        f"{count:,} {what}"
        for count, what in (
            (matched.added - added, "new"),
            (matched.retracted - retracted, "retracted"),
        )
        if count
    ]
    if others:
        text += f"; other lists' matches: {', '.join(others)}"
    return text


def _reading(reader: ListReader, entries: int | None = None) -> str:
    """How a file was read, for the sync log: "mastodon-csv, 130 obfuscated rows skipped" (with
    `entries`: "mastodon-csv, 900,000 entries, …")."""
    notes = versions.skipped_notes(
        obfuscated=reader.obfuscated,
        patterns=reader.patterns,
        repeated=reader.duplicates,
        unblocked=reader.unblocked,
        invalid=len(reader.errors),
        canaries=reader.canaries,
        hides_blocks=reader.hides_blocks,
        format=reader.format,
    )
    counted = [] if entries is None else [versions.entries_text(entries)]
    return ", ".join([reader.format, *counted, *notes])


# The invalid rows (skip_invalid) a sync names, of those it skipped.
SKIPPED_SHOWN = 3


def _skipped_rows(reader: ListReader) -> str:
    """Which invalid rows skip_invalid left out, for the podmin to tell the publisher (in the
    sync's line and the audit log): "; skipped line 4: the domain is empty; … and 9 more"."""
    if not reader.errors:
        return ""
    shown = reader.errors[:SKIPPED_SHOWN]
    named = "; ".join(f"{e.unit} {e.line}: {printable(e.message)}" for e in shown)
    more = len(reader.errors) - len(shown)
    return f"; skipped {named}" + (f"; and {more:,} more" if more else "")


def _setting_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return repr(value) if value else "(none)"


def _audit_sync(state: psycopg.Connection, subscription: ListConfig, what: str, reason: str):
    record_audit(
        state,
        actor="podmod",
        action=f"list_{what}",
        source=f"list:{subscription.name}",
        reason=reason,
        details={"list": subscription.name, "url": masked_url(subscription.url)},
    )


# The lists a sync retires (no longer in the configuration), with their matches in force.
UNSUBSCRIBED_SQL = """
SELECT l.name, count(s.id) AS matches FROM podmod.lists l
LEFT JOIN podmod.signals s ON s.list_id = l.id AND s.retracted_at IS NULL
WHERE l.policy <> 'ignore' AND l.origin = 'subscription' AND NOT (l.name = ANY (%s))
GROUP BY l.id, l.name ORDER BY l.name
"""


def retire_unsubscribed(
    config: Config,
    pod: psycopg.Connection,
    state: psycopg.Connection,
    *,
    dry_run: bool = False,
    renamed: dict[str, str] | None = None,
) -> list[SyncOutcome]:
    """Lists no longer in the config stop applying: policy `ignore`, their matches retracted
    (audited); an outcome (`retired`) for each, or with `dry_run` what a sync would do. A list
    `renamed` (new name: old name; its row renamed already but in a dry run) is not retired."""
    names = [subscription.name for subscription in config.lists]
    names += list((renamed or {}).values())
    with state.transaction(force_rollback=dry_run):
        retired = state.execute(UNSUBSCRIBED_SQL, (names,)).fetchall()
        outcomes = [
            SyncOutcome(
                row["name"],
                "retired",
                _retired_text(row["matches"], dry_run=dry_run),
                matches_retracted=row["matches"],
            )
            for row in retired
        ]
        if not retired or dry_run:
            return outcomes
        # (its applied settings say so too: put back, its policy is a change, and the sync that
        # finds it there applies its matches again, whether or not its file changed meanwhile)
        state.execute(
            "UPDATE podmod.lists SET policy = 'ignore', applied_settings = applied_settings"
            ' || \'{"policy": "ignore"}\'::jsonb WHERE name = ANY (%s)',
            ([row["name"] for row in retired],),
        )
        apply.match_people(config, pod, state, full=True)
        _after_list_change(state, list_id=None, version=None, reason="list")
        for row in retired:
            record_audit(
                state,
                actor="podmod",
                action="list_retire",
                source=f"list:{row['name']}",
                reason="no longer in the configuration; its matches are retracted",
            )
    for outcome in outcomes:
        log.info("list %s: %s", outcome.name, outcome.message)
    return outcomes


def _retired_text(matches: int, *, dry_run: bool) -> str:
    counted = f"{matches} {'match' if matches == 1 else 'matches'}"
    if dry_run:
        return (
            f"no longer in the configuration: a sync would stop applying it and retract its "
            f"{counted}"
        )
    verb = "is" if matches == 1 else "are"
    return (
        f"no longer in the configuration: it applies no more, and its {counted} {verb} retracted"
        " (its versions are kept)"
    )


def sync_lists(
    config: Config,
    names: list[str] | None = None,
    progress: Progress = lambda stage: None,
    *,
    dry_run: bool = False,
    now: bool = False,
) -> list[SyncOutcome]:
    """Sync every subscribed list (or the named ones), each on its own; with `dry_run`, tell
    what each sync would do and keep nothing (preview_list); with `now`, a podmin's sync by
    hand, ask each list's server even where it asked to be left alone until later."""
    wanted = [s for s in config.lists if not names or s.name in names]
    unknown = sorted(set(names or []) - {s.name for s in config.lists})
    if unknown:
        raise versions.ListStateError(
            f"No list named {unknown[0]!r} in the configuration ({config.source})."
        )
    outcomes = []
    # A connection lost mid-sync (psycopg.OperationalError) is the CLI's one sentence: each step
    # is one transaction, so what did not commit is rolled back and the next sync carries on.
    with state_connection(config) as state, pod_connection(config) as pod:
        renamed = renamed_lists(config, state)
        if not dry_run:
            for new, old in renamed.items():
                _rename(state, old, new)
        if not names:
            outcomes += retire_unsubscribed(config, pod, state, dry_run=dry_run, renamed=renamed)
        for subscription in wanted:
            if now and not dry_run:
                _ask_now(state, subscription.name)
            if dry_run:
                # (a list renamed in the configuration is previewed as the list it was)
                old = renamed.get(subscription.name)
                seen = replace(subscription, name=old) if old else subscription
                outcome = preview_list(config, seen, pod, state, progress)
                outcome.name = subscription.name
                if old:
                    outcome.message = f"{_renamed_text(old, dry_run=True)}; {outcome.message}"
            else:
                outcome = sync_list(config, subscription, pod, state, progress)
                if subscription.name in renamed:
                    outcome.message = f"{_renamed_text(renamed[subscription.name])}; " + (
                        outcome.message
                    )
            outcomes.append(outcome)
            progress(f"{subscription.name}: done")
    return outcomes


# Lists no longer in the configuration whose url is that of a subscription with no list of its
# name: candidates for a rename.
RENAMED_SQL = """
SELECT name, url FROM podmod.lists
WHERE origin = 'subscription' AND NOT (name = ANY (%(names)s)) AND url = ANY (%(urls)s)
"""


def renamed_lists(config: Config, state: psycopg.Connection) -> dict[str, str]:
    """The lists renamed in the configuration (new name: old name), told by their url: a
    subscription with no list of its name whose url is that of exactly one list no longer in the
    configuration, and of no other new subscription. Renamed, a list keeps its versions,
    matches and the decisions made on them (retired and subscribed anew, every match would be
    retracted, its cases resolved, and new ones opened over moderators' dismissals)."""
    names = [subscription.name for subscription in config.lists]
    known = {
        row["name"]
        for row in state.execute("SELECT name FROM podmod.lists WHERE name = ANY (%s)", (names,))
    }
    new: dict[str, list[str]] = {}
    for subscription in config.lists:
        if subscription.name not in known:
            new.setdefault(masked_url(subscription.url), []).append(subscription.name)
    if not new:
        return {}
    old: dict[str, list[str]] = {}
    for row in state.execute(RENAMED_SQL, {"names": names, "urls": list(new)}).fetchall():
        old.setdefault(row["url"], []).append(row["name"])
    state.rollback()
    return {
        new[url][0]: gone[0] for url, gone in old.items() if len(gone) == 1 and len(new[url]) == 1
    }


def _rename(state: psycopg.Connection, old: str, new: str) -> None:
    """A list renamed in the configuration: its row takes the new name, and the list matches it
    made say it (each names its list); audited."""
    with state.transaction():
        [row] = state.execute(
            "UPDATE podmod.lists SET name = %s WHERE name = %s RETURNING id", (new, old)
        ).fetchall()
        state.execute(
            "UPDATE podmod.signals SET details = details || jsonb_build_object('list', %s::text)"
            " WHERE list_id = %s AND details ->> 'list' = %s",
            (new, row["id"], old),
        )
        record_audit(
            state,
            actor="podmod",
            action="list_rename",
            source=f"list:{new}",
            reason=f"{_renamed_text(old)} (its url is the same)",
            details={"from": old, "to": new},
        )
    log.info("list %s: %s", new, _renamed_text(old))


def _renamed_text(old: str, *, dry_run: bool = False) -> str:
    verb = "would be renamed" if dry_run else "renamed"
    return (
        f"{verb} from {old!r} in the configuration: its versions, matches and the decisions on "
        "them carry over"
    )


def _ask_now(state: psycopg.Connection, name: str) -> None:
    """Forget a list server's Retry-After (`lists sync --now`); the log says so."""
    with state.transaction():
        asked = state.execute(
            "UPDATE podmod.lists SET retry_after = NULL WHERE name = %s AND retry_after > now()"
            " RETURNING retry_after",
            (name,),
        ).rowcount
    if asked:
        log.info("list %s: asked now (--now), before the time its server asked for", name)


def approve_version(
    config: Config,
    name: str,
    number: int,
    *,
    approved_by: str,
    details: dict[str, Any] | None = None,
) -> SyncOutcome:
    """Apply a held version, as `podmod lists approve` and the web page do (`details`: the web
    request's, for the audit log: from where)."""
    subscription = config.subscription(name)
    if subscription is None:
        raise versions.ListStateError(f"No list named {name!r} in the configuration.")
    with (
        state_connection(config) as state,
        pod_connection(config) as pod,
        one_at_a_time(state, name, lambda stage: None),
    ):
        with state.transaction():
            list_row, changed = versions.ensure_list(state, subscription)
            if "public_key" in changed:
                raise versions.ListStateError(
                    f"Version {number} of list {name!r} was verified with the list's earlier "
                    f"public_key, not with the one configured now; sync the list first "
                    f"(`podmod lists sync --name {name}` verifies its file with the new key), "
                    "then approve what it holds."
                )
            held = _held_version(state, list_row["id"], name, number)
            body = bytes(held["held_body"])
            stored = versions.store_version(
                config,
                state,
                list_row,
                subscription,
                ListReader(body, format=held["format"], severity=subscription.severity),
                body,
                signed=minisign.TrustedComment.parse(held["signed_comment"])
                if held["signed_comment"] is not None
                else None,
                approved_by=approved_by,
                number=number,
                digest=held["sha256"],
            )
            matched = apply.match_people(config, pod, state, full=True)
            _after_list_change(state, list_id=list_row["id"], version=number, reason="list_version")
            message = (
                f"version {number} approved by {approved_by} and applied: {_changed(stored)}; "
                f"{_matched(matched, list_row['id'])}"
            )
            record_audit(
                state,
                actor=approved_by,
                action="list_approve",
                source=f"list:{name}",
                reason=message,
                details={"list": name, "version": number, **(details or {})},
            )
        locks = apply.carry_out_lock_policies(config, state)
    outcome = SyncOutcome(
        name,
        "applied",
        message,
        version=number,
        entries=stored.entries,
        added=stored.added,
        removed=stored.removed,
        matches_added=matched.added_by_list[list_row["id"]],
        matches_retracted=matched.retracted_by_list[list_row["id"]],
    )
    _locks_said(config, outcome, locks)
    return outcome


def _held_version(
    state: psycopg.Connection, list_id: int, name: str, number: int
) -> dict[str, Any]:
    """Version `number` of a list, locked for its approval or rejection; refused unless held."""
    held = state.execute(
        "SELECT * FROM podmod.list_versions WHERE list_id = %s AND number = %s FOR UPDATE",
        (list_id, number),
    ).fetchone()
    if held is None or held["status"] != "held":
        state_word = held["status"] if held else "unknown"
        raise versions.ListStateError(
            f"Version {number} of list {name!r} is not held for approval "
            f"(it is {state_word}); see `podmod lists show`."
        )
    return held


REJECT_REASON_MAX = 2000  # (as a reason given for this pod's list)


def reject_version(
    config: Config,
    name: str,
    number: int,
    *,
    rejected_by: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> SyncOutcome:
    """Refuse a held version, as `podmod lists reject` does: it stops waiting and can no longer be
    approved (status `rejected`, with who and why), audited; the version in force stays. The
    same file served again stays rejected (the next syncs say so); a later, different file is
    stored and judged as usual. `details`: the request's, for the audit log."""
    reason = printable(" ".join(reason.split()))
    if not reason:
        raise versions.ListStateError(
            "Say why the version is rejected: the reason is kept in the audit log."
        )
    if len(reason) > REJECT_REASON_MAX:
        raise versions.ListStateError(
            f"The reason is longer than {REJECT_REASON_MAX:,} characters; shorten it."
        )
    with (
        state_connection(config) as state,
        one_at_a_time(state, name, lambda stage: None),
        state.transaction(),
    ):
        list_row = state.execute(
            "SELECT id, current_version FROM podmod.lists WHERE name = %s", (name,)
        ).fetchone()
        if list_row is None:
            raise versions.ListStateError(
                f"There is no list named {name!r}; see `podmod lists show`."
            )
        _held_version(state, list_row["id"], name, number)
        versions.end_held(state, list_row["id"], number, "rejected", by=rejected_by, reason=reason)
        message = (
            f"version {number} rejected by {rejected_by}: {reason}; "
            f"{_kept_text(list_row['current_version'])} (the same file is not taken again; a "
            "later one is judged as usual)"
        )
        record_audit(
            state,
            actor=rejected_by,
            action="list_reject",
            source=f"list:{name}",
            reason=message,
            details={"list": name, "version": number, **(details or {})},
        )
    log.info("list %s: %s", name, message)
    return SyncOutcome(name, "rejected", message, version=list_row["current_version"])


def confirm_locks(
    config: Config,
    name: str,
    *,
    by: str,
    seen: str | None = None,
    details: dict[str, Any] | None = None,
) -> apply.Locks:
    """Carry out the locks a list's policy holds back (more than list_sync.max_locks at once),
    which `by` has checked: `podmod lists lock NAME`, or the web's held-locks page (`seen`: what
    it showed, apply.LockPlan.seen; `details`: the web request's). The confirmation is audited
    with how many it locked."""
    subscription = config.subscription(name)
    if subscription is None:
        raise versions.ListStateError(f"No list named {name!r} in the configuration.")
    if subscription.policy != "lock" and not subscription.lock_labels:
        raise versions.ListStateError(
            f"List {name!r} locks nobody: its policy is {subscription.policy!r} and it has no "
            "lock_labels."
        )
    with state_connection(config) as state:
        locks = apply.carry_out_lock_policies(config, state, confirmed=name, by=by, seen=seen)
        count = sum(list_name == name for list_name, _ in locks.locked)
        if not count:  # (nothing was held back: no confirmation to record)
            return locks
        record_audit(
            state,
            actor=by,
            action="list_locks_confirm",
            source=f"list:{name}",
            reason=f"confirmed the locks list {name}'s policy held back: {count} locked",
            details={"list": name, "locked": count, **(details or {})},
        )
        state.commit()
    return locks
