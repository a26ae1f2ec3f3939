"""`podmod check`: everything a podmin should know right after installing, one line per check.

Each check returns ok, warn or fail with one sentence; the command exits non-zero on any failure.
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import ipaddress
import os
import pwd
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from podmod import pod_db, queue, store
from podmod.config import Config, load_config
from podmod.db import pod_connection, state_connection
from podmod.errors import PodmodError
from podmod.notify.alerts import FAILING_AFTER
from podmod.redact import masked_url


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail
    detail: str

    def as_json(self) -> dict[str, str]:
        return {
            "check": self.name,
            "status": self.status,
            "ok": self.status != "fail",
            "detail": self.detail,
        }


class Warn(Exception):
    """A check that passed with a caveat the podmin should read."""


SECRET_KEY_BYTES = 32  # signs session and device cookies: 32 random bytes are beyond guessing

# (privilege, object, column) that podmod needs on the pod's tables
NEEDED = [("SELECT", table, None) for table in pod_db.REQUIRED_COLUMNS] + [
    ("UPDATE", "users", "locked_at"),
    ("UPDATE", "reports", "reviewed"),
]
# Privileges podmod must not need: holding them means the role is broader than deploy/grants.sql.
TOO_MUCH = [
    ("UPDATE", "users", "email"),
    ("UPDATE", "reports", "text"),
    ("DELETE", "posts", None),
    ("UPDATE", "people", "closed_account"),
    ("INSERT", "account_deletions", None),
]


def _privileges(config: Config) -> str:
    with pod_connection(config) as pod:
        role = pod.execute(
            "SELECT current_user AS name, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()

        def has(privilege: str, table: str, column: str | None) -> bool:
            if column:
                return pod.execute(
                    "SELECT has_column_privilege(%s, %s, %s) AS ok", (table, column, privilege)
                ).fetchone()["ok"]
            return pod.execute(
                "SELECT has_table_privilege(%s, %s) AS ok", (table, privilege)
            ).fetchone()["ok"]

        missing = [f"{p} on {t}{'.' + c if c else ''}" for p, t, c in NEEDED if not has(p, t, c)]
        extra = [f"{p} on {t}{'.' + c if c else ''}" for p, t, c in TOO_MUCH if has(p, t, c)]
    if missing:
        raise PodmodError(
            f"Role {role['name']} lacks {missing[0]}; run deploy/grants.sql in the pod's database."
        )
    if role["rolsuper"] or extra:
        what = "is a superuser" if role["rolsuper"] else f"holds {extra[0]}"
        raise Warn(
            f"Role {role['name']} {what}: more than podmod needs; create the least-privilege role "
            "with deploy/grants.sql and use it in database_url."
        )
    return f"role {role['name']} can read what podmod reads and write only what it writes"


STUCK_AFTER = 300  # seconds: older undone work means the workers are not keeping up


def _group_users(gid: int) -> tuple[str, set[str]] | None:
    """A group's name and users: its listed members and those whose own group it is (None: no
    such group)."""
    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return None
    users = set(group.gr_mem) | {user.pw_name for user in pwd.getpwall() if user.pw_gid == gid}
    return group.gr_name, users


def _config_file(config: Config) -> str:
    info = Path(config.source).stat()
    mode = info.st_mode
    # (the install's root:podmod 0640 lets podmod's own group read it: a group of one user)
    group = _group_users(info.st_gid) if mode & 0o040 else ("", set())
    if mode & 0o004 or group is None or len(group[1]) > 1:
        raise Warn(
            f"{config.source} can be read by other users of this server and holds secret_key and "
            "the database passwords; chmod 600 it, owned by the user podmod runs as (or 640 with "
            "a group of that user alone, root:podmod as the install makes it)."
        )
    name, users = group
    if mode & 0o040:
        who = f"whose only user is {users.pop()}" if users else "which has no user"
        return f"readable by its owner and group {name}, {who} ({stat.filemode(mode)})"
    return f"readable by its owner only ({stat.filemode(mode)})"


def _secret_key(config: Config) -> str:
    key = config["secret_key"]
    if not key:
        raise Warn(
            "secret_key is not set, so every web session ends when podmod serve restarts; set it "
            f"to {SECRET_KEY_BYTES} or more random bytes (e.g. `openssl rand -hex 32`)."
        )
    size = len(key.encode())
    if size < SECRET_KEY_BYTES:
        raise Warn(
            f"secret_key is {size} bytes, short enough to guess and forge cookies with; set it to "
            f"{SECRET_KEY_BYTES} or more random bytes (e.g. `openssl rand -hex 32`)."
        )
    return f"{size} bytes"


def _backlog(config: Config) -> str:
    with state_connection(config) as state:
        work = store.backlog(state)
    intake, scan, runs = work["intake"], work["scan"], work["scan_runs"]
    text = (
        f"{intake['items']} reports in {intake['count']} intake batches and {scan['items']} new "
        f"items in {scan['count']} scan batches waiting; {runs['count']} scans of existing "
        "content running"
    )
    oldest = max(intake["oldest_seconds"], scan["oldest_seconds"])
    if oldest > STUCK_AFTER:
        raise Warn(
            f"{text}; the oldest batch has waited {oldest:.0f} s: check that `podmod worker` is "
            "running and its log is free of errors, or start more workers."
        )
    return text


def _notifications(config: Config) -> str:
    """The SMTP server answers and takes the password, the staff can be addressed, and the outbox
    is neither stuck nor failing."""
    from podmod.notify import alerts, smtp
    from podmod.notify.status import outbox_status

    parts = []
    if config["mail.smtp_url"]:
        parts.append("mail: " + smtp.check_server(config))
        with pod_connection(config) as pod:
            staff = len(alerts.staff_recipients(config, pod))
        if not staff:
            raise PodmodError(
                "No local admin or moderator has a mail address and alerts.to is empty, so staff "
                "alerts reach nobody: set alerts.to or the staff's addresses in diaspora*."
            )
        parts.append(f"alerts to {staff} address{'' if staff == 1 else 'es'}")
    else:
        parts.append("no mail (mail.smtp_url is not set)")
    parts.append(f"{len(config.webhooks)} webhooks")
    with state_connection(config) as state:
        status = outbox_status(state)
    parts.append(f"{status['waiting']} deliveries waiting")
    text = "; ".join(parts)
    failure = status["last_failure"]
    if failure and failure["delivered_at"] is None:
        how = "given up" if failure["gave_up_at"] else "retrying"
        raise Warn(
            f"{text}; the last delivery failed ({how}; see the deliveries page): "
            f"{failure['last_error']}"
        )
    if status["oldest_seconds"] and status["oldest_seconds"] > STUCK_AFTER:
        raise Warn(
            f"{text}; the oldest has waited {status['oldest_seconds']:.0f} s: check that "
            "`podmod read` and `podmod worker` run (they deliver the outbox)."
        )
    return text


def _redis(config: Config) -> str:
    rconn = queue.redis_connection(config)
    depth = sum(q.count for q in queue.all_queues(config, rconn))
    text = f"reachable; not Sidekiq's database; {depth} jobs queued"
    if _needs_a_password(rconn):
        return f"{text}; needs a password"
    where = _listens_beyond_loopback(rconn)
    if where == "":
        return f"{text}; needs no password, but listens only on loopback or a Unix socket"
    raise Warn(
        f"{text}; but it takes commands with no password and "
        f"{where or 'podmod cannot tell where it listens (CONFIG GET is refused)'}, so whoever "
        "reaches it can queue work for podmod: set requirepass or an ACL user (password in "
        'redis_url), or listen on loopback or a Unix socket only (README, "Redis access").'
    )


def _needs_a_password(rconn: redis.Redis) -> bool:
    """Whether the same server refuses a client that does not authenticate."""
    pool = rconn.connection_pool
    anonymous = {
        key: value
        for key, value in pool.connection_kwargs.items()
        if key not in ("username", "password", "credential_provider")
    }
    client = redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **anonymous)
    )
    try:
        client.ping()
    except (redis.AuthenticationError, redis.ResponseError):
        return True
    finally:
        client.close()
    return False


def _listens_beyond_loopback(rconn: redis.Redis) -> str | None:
    """Where Redis takes TCP connections from beyond this host ("listens on 0.0.0.0 port 6379"),
    "" when only from loopback (or on a Unix socket only), None when it will not say."""
    try:
        settings = {**rconn.config_get("bind"), **rconn.config_get("port")}
    except redis.ResponseError:
        return None
    if str(settings.get("port")) == "0":
        return ""
    addresses = [a.removeprefix("-") for a in str(settings.get("bind", "")).split()]
    beyond = [a for a in addresses if not _is_loopback(a)] if addresses else ["every interface"]
    return f"listens on {' '.join(beyond)} port {settings.get('port')}" if beyond else ""


def _is_loopback(address: str) -> bool:
    try:
        return address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:  # "*", "::*" or a host name
        return False


def _reader(config: Config) -> str:
    rconn = queue.redis_connection(config)
    seen = rconn.get(queue.READER_HEARTBEAT_KEY)
    if seen is None:
        raise PodmodError("No reader has reported in the last minute; start `podmod read`.")
    return f"alive (last pass {time.time() - float(seen):.0f} s ago)"


def _web_proxy(config: Config) -> str:
    prefix = queue.redis_connection(config).get(queue.UNTRUSTED_PROXY_KEY)
    if prefix and not config["web.trusted_proxies"]:
        from podmod.web import untrusted_proxy_advice

        raise Warn(untrusted_proxy_advice(prefix.decode()))
    return "no proxy header refused in the last day"


def _workers(config: Config) -> str:
    from rq import Worker

    rconn = queue.redis_connection(config)
    names = {q.name for q in queue.all_queues(config, rconn)}
    workers = [w for w in Worker.all(connection=rconn) if names & set(w.queue_names())]
    if not workers:
        raise PodmodError("No worker is running; start `podmod worker` (one or more).")
    return f"{len(workers)} running: {', '.join(sorted(w.name for w in workers))}"


# A list's row as `podmod check` reads it: what its last sync left (its error, the server's
# Retry-After), and the version held for approval, if one is.
LIST_STATE_SQL = f"""
SELECT l.id, l.name, l.url, l.current_version, l.last_error, l.last_error_at, l.last_attempt_at,
       l.last_error_at IS NOT NULL
           AND (l.last_success_at IS NULL OR l.last_error_at > l.last_success_at) AS failed,
       CASE WHEN l.retry_after > now() THEN l.retry_after END AS retry_after,
       coalesce(l.last_success_at > now() - interval '{FAILING_AFTER}', false) AS recent_success,
       h.number AS held, h.fetched_at AS held_since, h.held_reason
FROM podmod.lists l
LEFT JOIN LATERAL (
    SELECT number, fetched_at, held_reason FROM podmod.list_versions
    WHERE list_id = l.id AND status = 'held' ORDER BY number DESC LIMIT 1
) h ON true
WHERE l.name = %s
"""


def _list(config: Config, name: str) -> Callable[[], str]:
    def check_list() -> str:
        from podmod.lists.apply import lock_plan, locks_held_text
        from podmod.lists.fetch import utc_minute
        from podmod.lists.sync import fetch_verified, moved_text, read_through
        from podmod.lists.versions import (
            UNTIMED,
            content_digest,
            latest_version_named,
            refuse_replay,
            signed_time,
        )
        from podmod.notify.alerts import stale_lists, stale_text
        from podmod.scan.breadth import confirm_command, held_entries

        subscription = config.subscription(name)
        if subscription is None:
            return "not in the configuration"
        # The latest stored version, whose signature a server between updates serves beside a
        # new file, and what the last sync left (none when podmod's database cannot tell: its
        # own check says why).
        latest, row, stale, known, locks_held, entries_held = None, None, None, False, 0, []
        with (
            contextlib.suppress(psycopg.Error, PodmodError),
            state_connection(config) as state,
        ):
            latest = latest_version_named(state, name)
            row = state.execute(LIST_STATE_SQL, (name,)).fetchone()
            stale = next(iter(stale_lists(config, state, name)), None)
            entries_held = [each for each in held_entries(state) if each["list"] == name]
            known = True
            if subscription.policy == "lock" or subscription.lock_labels:
                with pod_connection(config) as pod:
                    locks_held = lock_plan(pod, state).held(config).get(name, 0)
        last_sync = (
            f"the last sync ({utc_minute(row['last_error_at'])}) failed: {row['last_error']}"
            if row is not None and row["failed"]
            else ""
        )
        if (
            row is not None
            and row["retry_after"] is not None
            and row["url"] == masked_url(subscription.url)  # (a new url is asked at once)
        ):
            # (as the sync: the server asked to be left alone until then, so no request)
            said = (
                f"its server asked not to be asked before {utc_minute(row['retry_after'])}"
                " (Retry-After), so this check left it alone too"
                f" (`podmod lists sync --now --name {name}` asks it anyway)"
            )
            # (a pause the server asked for, while the version in force is fresh, is no news)
            warn = not row["recent_success"]
            if last_sync:
                said += f"; {last_sync.rstrip('.')}"
        else:
            result, signed = fetch_verified(config, subscription, latest=latest)
            if signed is not None and row is not None:
                # Refused by every sync (refuse_replay, read-only): a file signed before a
                # version stored, unless it is the latest version's own or the one in force.
                digest = content_digest(result.body)
                with state_connection(config) as state:
                    kept = state.execute(
                        "SELECT EXISTS (SELECT 1 FROM podmod.list_versions WHERE list_id = %s"
                        " AND sha256 = %s AND (number = %s OR number = (SELECT max(number)"
                        " FROM podmod.list_versions WHERE list_id = %s))) AS kept",
                        (row["id"], digest, row["current_version"], row["id"]),
                    ).fetchone()["kept"]
                    if not kept:
                        refuse_replay(state, row, signed, digest)
            size = (
                f"reachable ({len(result.body):,} bytes), {read_through(subscription, result.body)}"
            )
            if signed is None:
                said, warn = f"{size}; not signed (no public_key pinned)", False
            elif signed.signed_at is None:
                said, warn = f"{size}; signature valid but {UNTIMED}", True
            else:
                said = f"{size}; signature valid, signed {signed_time(signed.signed_at)}"
                warn = False
            if result.moved:
                said, warn = said + moved_text(result), True
            if last_sync:
                said, warn = f"{said}; but {last_sync.rstrip('.')}", True
        if row is not None and row["held"] is not None:
            said += (
                f"; version {row['held']} waits for approval since"
                f" {utc_minute(row['held_since'])} ({row['held_reason']}): `podmod lists diff"
                f" {name}`, then `podmod lists approve {name} {row['held']}` if the list means it,"
                f" or `podmod lists reject {name} {row['held']} --reason R` if not"
            )
            warn = True
        if locks_held:
            said, warn = f"{said}; {locks_held_text(config, name, locks_held)}", True
        for held in entries_held:
            said += (
                f"; its entry {held['entry']} is held: {held['why']}"
                + (f" ({held['undone']})" if held["undone"] else "")
                + (f"; {held['kept']}" if held["kept"] else "")
                + (
                    f"; `podmod lists show` and the lists page show {len(held['sample'])} of"
                    " its matches"
                    if held["sample"]
                    else ""
                )
                + f" (`{confirm_command(name, held['entry'])}` if the list means it)"
            )
            warn = True
        if stale is not None:
            said, warn = f"{said}; {stale_text(stale)}", True
        elif known and (row is None or row["last_attempt_at"] is None):
            # (a cron job installed tries it at its next run)
            said += "; not synced yet (deploy/podmod.cron syncs every 15 minutes)"
        if warn:
            raise Warn(said + ".")
        return said

    return check_list


def _uploads(config: Config) -> str:
    folder = Path(config["scan.uploads_dir"])
    if not folder.is_dir():
        raise PodmodError(
            f"scan.uploads_dir {folder} does not exist or is hidden from podmod (podmod's units "
            "hide /home but for the folder in their BindReadOnlyPaths; see "
            "deploy/podmod-worker@.service): set it to the pod's public/uploads/images folder, "
            "or unset it."
        )
    try:
        with os.scandir(folder) as entries:
            next(entries, None)
    except PermissionError:
        raise PodmodError(
            f"scan.uploads_dir {folder} is not readable by {getpass.getuser()}: let it read the "
            "folder (diaspora* makes it world-readable for nginx)."
        ) from None
    return f"{folder} readable: local photos are hashed from there"


def run_checks(config_loader: Callable[[], Config] = load_config) -> list[Check]:
    """Every check, in order; later ones are skipped when what they need failed."""
    results: list[Check] = []

    def step(name: str, action: Callable[[], str]) -> bool:
        try:
            results.append(Check(name, "ok", action()))
        except Warn as caveat:
            results.append(Check(name, "warn", str(caveat)))
        except PodmodError as error:
            results.append(Check(name, "fail", str(error)))
            return False
        return True

    holder: list[Config] = []

    def config_ok() -> str:
        holder.append(config_loader())
        return f"loaded from {holder[0].source}; {len(holder[0].lists)} lists subscribed"

    if not step("config", config_ok):
        return results
    config = holder[0]
    if config.source != "environment":
        step("config file", lambda: _config_file(config))
    step("secret key", lambda: _secret_key(config))

    def pod_ok() -> str:
        with pod_connection(config) as pod:
            pod_db.check_diaspora_schema(pod)
        return "reachable; diaspora* tables present"

    def schema_ok() -> str:
        with state_connection(config) as state:
            store.require_current_schema(state)
        return "up to date"

    if step("pod database", pod_ok):
        step("privileges", lambda: _privileges(config))
    if step("podmod schema", schema_ok):
        step("backlog", lambda: _backlog(config))
        step("notifications", lambda: _notifications(config))
    if step("redis", lambda: _redis(config)):
        step("reader", lambda: _reader(config))
        step("workers", lambda: _workers(config))
        step("web proxy", lambda: _web_proxy(config))
    if config["scan.uploads_dir"]:
        step("uploads_dir", lambda: _uploads(config))
    for subscription in config.lists:
        step(f"list {subscription.name}", _list(config, subscription.name))
    return results
