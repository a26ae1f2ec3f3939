"""podmod's configuration: one TOML file plus PODMOD_* environment overrides, validated at start.

Every key has a type, a default and a check; a bad value raises ConfigError with one sentence that
names the key, where it came from and what to do. `[reader] batch_size` in the file is
`PODMOD_READER_BATCH_SIZE` in the environment.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from podmod.errors import ConfigError, PodmodError
from podmod.kinds import KINDS, LIST_FILE_FORMATS
from podmod.redact import masked_url

log = logging.getLogger("podmod.config")

DEFAULT_CONFIG_PATH = Path("/etc/podmod/podmod.toml")


def _postgres_url(value: str) -> str | None:
    scheme = urlsplit(value).scheme
    if scheme in ("postgresql", "postgres"):
        return None
    if "=" in value and "://" not in value:  # libpq key=value form: "host=/run/postgresql dbname=x"
        return None
    return "must be a PostgreSQL URL such as postgresql://podmod@localhost/diaspora_production"


def _redis_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "must be a Redis URL such as redis://127.0.0.1:6379/1"
    return None


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


# A version is never held for the people it newly matches when they are this many or fewer
# (list_sync.max_new_match_share): on a small pod a few matches are a large share.
NEW_MATCHES_FLOOR = 100


def _share(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be a share between 0 and 1, such as 0.5"


def _pdq_distance(value: int) -> str | None:
    return None if 0 <= value <= 256 else "must be a number of bits from 0 to 256 (31 is usual)"


def _pdq_quality(value: int) -> str | None:
    return None if 0 <= value <= 100 else "must be a quality from 0 to 100 (50 is usual)"


def _log_level(value: str) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    return None if value.upper() in levels else f"must be one of {', '.join(levels)}"


def _staff_roles(value: str) -> str | None:
    roles = [role.strip() for role in value.split(",") if role.strip()]
    if "admin" in roles and set(roles) <= {"admin", "moderator"}:
        return None
    return 'must be "admin" or "admin,moderator"'


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


# The deliveries page and `podmod check` count the deliveries given up over the last 7 days
# (podmod.notify.status.GIVEN_UP_WINDOW): notifications are kept at least that long.
MIN_NOTIFICATIONS_DAYS = 7


def _notifications_days(value: int) -> str | None:
    if value == 0 or value >= MIN_NOTIFICATIONS_DAYS:
        return None
    return (
        f"must be 0 (keep them forever) or at least {MIN_NOTIFICATIONS_DAYS}: the deliveries"
        " page and `podmod check` count what was given up over the last 7 days"
    )


def _web_url(value: str) -> str | None:
    if value == "" or urlsplit(value).scheme in ("https", "http"):
        return None
    return "must be the pod's URL, such as https://pod.example (or empty)"


SMTP_SCHEMES = ("smtp", "smtps", "smtp+starttls")


def _smtp_url(value: str) -> str | None:
    if value == "":
        return None
    parts = urlsplit(value)
    advice = (
        "must be an SMTP URL such as smtp://127.0.0.1:25, smtps://user:password@mail.example:465 "
        "or smtp+starttls://mail.example:587 (or empty for no mail)"
    )
    if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
        return advice
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    if parts.path not in ("", "/") or parts.query:
        return advice
    return None


def _proxy_url(value: str) -> str | None:
    if value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            "must be a proxy's URL such as http://proxy.example:3128 (user:password@ allowed), or"
            " empty for none"
        )
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be a proxy's URL with no path, such as http://proxy.example:3128"
    return None


def mail_address(value: str) -> str | None:
    """The bare address of `value` ("podmod <podmod@pod.example>" or "podmod@pod.example"), or
    None when it is not one address."""
    _name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or re.search(r"[\s\x00-\x1f\x7f,;]", address):
        return None
    return address


def _mail_from(value: str) -> str | None:
    if value == "" or mail_address(value):
        return None
    return 'must be a mail address such as podmod@pod.example or "podmod <podmod@pod.example>"'


def _addresses(value: tuple[str, ...]) -> str | None:
    wrong = [address for address in value if not mail_address(address)]
    if wrong:
        return f'holds {wrong[0]!r}, which is not a mail address such as "admin@pod.example"'
    return None


def _public_url(value: str) -> str | None:
    if value == "" or (urlsplit(value).scheme in ("https", "http") and urlsplit(value).hostname):
        return None
    return "must be podmod's own address, such as https://pod.example/podmod/ (or empty)"


# config.pepper in diaspora*'s config/initializers/devise.rb: the same string on every pod.
DIASPORA_PEPPER = (
    "065eb8798b181ff0ea2c5c16aee0ff8b70e04e2ee6bd6e08b49da46924223e39127d5335e466207d42bf2a045c12"
    "be5f90e92012a4f05f7fc6d9f3c875f4c95b"
)


@dataclass(frozen=True)
class Key:
    """One configuration key: its dotted name, type, default and validity check."""

    name: str
    type: type
    default: Any
    check: Callable[[Any], str | None] | None = None
    required: bool = False
    help: str = ""

    @property
    def env(self) -> str:
        return "PODMOD_" + self.name.replace(".", "_").upper()


KEYS: tuple[Key, ...] = (
    Key(
        "database_url",
        str,
        None,
        _postgres_url,
        required=True,
        help="the pod's PostgreSQL database (diaspora_production)",
    ),
    Key(
        "state_database_url",
        str,
        None,
        _postgres_url,
        help="database for podmod's own schema `podmod`; default: the pod's database",
    ),
    Key(
        "redis_url",
        str,
        "redis://127.0.0.1:6379/1",
        _redis_url,
        help="Redis for podmod's job queues; never Sidekiq's database (0 by default)",
    ),
    Key("queue_prefix", str, "podmod", help="prefix of podmod's RQ queue names"),
    Key("reader.batch_size", int, 1000, _positive, help="reports per intake batch and job"),
    Key("reader.interval", float, 0.5, _positive, help="seconds between reader passes"),
    Key(
        "reader.reviewed_sync_interval",
        float,
        5.0,
        _positive,
        help="seconds between checks for reports marked reviewed in diaspora",
    ),
    Key(
        "reader.gap_timeout",
        float,
        600.0,
        _positive,
        help="seconds a missing report id is watched for a late commit",
    ),
    Key(
        "reader.reconcile_interval",
        float,
        3600.0,
        _positive,
        help="seconds between full checks that every pod report below the watermark is in podmod",
    ),
    Key(
        "reader.restart_grace",
        float,
        10.0,
        _positive,
        help="seconds before an abandoned intake job is enqueued again",
    ),
    Key(
        "worker.job_timeout",
        int,
        600,
        _positive,
        help="seconds one job may run (it rides out a database outage for half of it)",
    ),
    Key(
        "list_sync.threshold",
        int,
        1,
        _positive,
        help="an account needs entries in at least this many lists to be a match",
    ),
    Key(
        "list_sync.max_removal_share",
        float,
        0.5,
        _share,
        help="a new version removing more than this share of entries is held for approval",
    ),
    Key(
        "list_sync.max_new_match_share",
        float,
        0.05,
        _share,
        help="a new version newly matching more than this share of the people the pod knows "
        f"(and more than {NEW_MATCHES_FLOOR} of them) is held for approval",
    ),
    Key(
        "list_sync.max_content_authors",
        int,
        1000,
        _positive,
        help="a list's content entry (hashtag, phrase, link, image) is held for approval once it "
        "matches more authors than this, or than max_new_match_share of the people the pod "
        f"knows, whichever is fewer (and more than {NEW_MATCHES_FLOOR})",
    ),
    Key(
        "list_sync.max_locks",
        int,
        20,
        _positive,
        help="most accounts a list's lock policy locks at once on its own; more wait for "
        "`podmod lists lock NAME`",
    ),
    Key("list_sync.max_bytes", int, 50_000_000, _positive, help="largest list file accepted"),
    Key("list_sync.timeout", float, 60.0, _positive, help="seconds one list download may take"),
    Key("list_sync.ca_bundle", str, None, help="CA bundle for list servers (default: system)"),
    Key(
        "list_sync.proxy",
        str,
        "",
        _proxy_url,
        help="an HTTP proxy for list downloads (http://host:port), where this server reaches the"
        " internet only through one; empty: none (HTTPS_PROXY is never used)",
    ),
    Key(
        "secret_key",
        str,
        None,
        help="signs the web session and device cookies; unset: random, sessions end at restart",
    ),
    Key(
        "web.trusted_proxies",
        int,
        0,
        _not_negative,
        help="how many proxies' X-Forwarded-* headers to trust (1 behind the pod's nginx)",
    ),
    Key("web.pepper", str, DIASPORA_PEPPER, help="Devise pepper of the pod (diaspora's default)"),
    Key("web.session_minutes", int, 480, _positive, help="minutes a web sign-in lasts"),
    Key(
        "web.lock_roles",
        str,
        "admin",
        _staff_roles,
        help='who may lock and unlock accounts: "admin" or "admin,moderator"',
    ),
    Key(
        "web.approve_roles",
        str,
        "admin",
        _staff_roles,
        help='who may approve list versions held for approval: "admin" or "admin,moderator"',
    ),
    Key(
        "web.login_max_failures",
        int,
        5,
        _positive,
        help="failed sign-ins per account within web.login_window before it is refused",
    ),
    Key(
        "web.login_max_failures_per_ip",
        int,
        20,
        _positive,
        help="failed sign-ins per IP address within web.login_window before it is refused",
    ),
    Key("web.login_window", int, 900, _positive, help="seconds failed sign-ins are counted"),
    Key(
        "web.pod_url",
        str,
        "",
        _web_url,
        help="the pod's public URL, for links to diaspora's own pages (default: same host)",
    ),
    Key("web.page_size", int, 50, _positive, help="rows per page in the web UI"),
    Key(
        "web.public_url",
        str,
        "",
        _public_url,
        help="podmod's own address, for links in mails and webhooks (https://pod.example/podmod/)",
    ),
    # Notifications (podmod.notify): mail to staff and accounts, signed webhooks.
    Key(
        "mail.smtp_url",
        str,
        "",
        _smtp_url,
        help="SMTP server: smtp://, smtps:// or smtp+starttls://host:port, user:password@ "
        "allowed; empty: podmod sends no mail",
    ),
    Key("mail.from", str, "", _mail_from, help="the From address of podmod's mail"),
    Key(
        "mail.templates_dir",
        str,
        None,
        help="folder whose mail templates and message catalogs override the built-in ones",
    ),
    Key(
        "alerts.min_priority",
        int,
        30,
        _positive,
        help="a case reaching this priority alerts the staff (again only if it rises further)",
    ),
    Key(
        "alerts.to",
        tuple,
        (),
        _addresses,
        help="addresses of staff alerts; empty: every local admin and moderator at users.email",
    ),
    Key(
        "alerts.digest_minutes",
        int,
        0,
        _not_negative,
        help="0: alert at once; N: one mail per N minutes with everything new",
    ),
    Key(
        "alerts.lists_stale_hours",
        int,
        3,
        _not_negative,
        help="a subscribed list no sync has tried for this many hours (its cron job stopped) "
        "alerts the staff; 0: never",
    ),
    Key("notify.reporters", bool, False, help="tell local reporters what became of their report"),
    Key(
        "notify.locked_accounts",
        bool,
        False,
        help="tell a locked local account why (the moderator's reason or the list), with a link "
        "to appeal, and the decision on its appeal, by mail",
    ),
    Key("log.level", str, "INFO", _log_level, help="DEBUG, INFO, WARNING or ERROR"),
    # Retention (podmod.retention): how long podmod keeps what it needs only for a while.
    Key(
        "retention.list_history_days",
        int,
        365,
        _not_negative,
        help="days of list history kept: the entries of every version in force at some time in"
        " this many days; older ended entries are pruned (0: kept forever)",
    ),
    Key(
        "retention.keep_versions",
        int,
        10,
        _not_negative,
        help="the newest this many applied versions of each list keep their entries whatever"
        " their age",
    ),
    Key(
        "retention.notifications_days",
        int,
        90,
        _notifications_days,
        help="days delivered (or given up) mails and webhooks, their events and staff mails are"
        " kept (0: forever)",
    ),
    Key(
        "retention.work_days",
        int,
        30,
        _not_negative,
        help="days finished intake batches, content scan batches and scan runs are kept"
        " (0: forever)",
    ),
    # Content matching (podmod.scan): the lists' hashtag, phrase, url, pdq and sha256 entries.
    Key("scan.batch_size", int, 1000, _positive, help="new items per content scan batch and job"),
    Key(
        "scan.chunk_size",
        int,
        20_000,
        _positive,
        help="ids per step of a backfill or new-entry scan (each step is one transaction)",
    ),
    Key(
        "scan.uploads_dir",
        str,
        None,
        help="the pod's public/uploads/images folder, to hash local photos (unset: not hashed)",
    ),
    Key(
        "scan.fetch_remote_photos",
        bool,
        False,
        help="download remote photos over HTTPS to hash them (never kept)",
    ),
    Key("scan.photo_max_bytes", int, 20_000_000, _positive, help="largest photo file hashed"),
    Key("scan.photo_max_pixels", int, 50_000_000, _positive, help="largest photo (pixels) hashed"),
    Key(
        "scan.photo_timeout",
        float,
        15.0,
        _positive,
        help="seconds one remote photo download may take",
    ),
    Key(
        "scan.pdq_distance",
        int,
        31,
        _pdq_distance,
        help="largest Hamming distance between PDQ hashes that is a match (0-256)",
    ),
    Key(
        "scan.pdq_min_quality",
        int,
        50,
        _pdq_quality,
        help="PDQ hashes of photos below this quality (0-100) are not matched",
    ),
    Key(
        "scan.profile_sweep_interval",
        float,
        300.0,
        _positive,
        help="seconds between checks for edited profiles",
    ),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


LIST_POLICIES = ("review", "lock", "ignore", "allow")
LIST_KEYS = (
    "name",
    "url",
    "public_key",
    "policy",
    "skip_invalid",
    "max_removal_share",
    "max_new_match_share",
    "kinds",
    "format",
    "labels",
    "lock_labels",
    "require_canary",
    "signed_file",
    "signature_url",
    "severity",
)
# The entry kinds a list may carry; `kinds` switches some of them off.
ENTRY_KINDS = KINDS
# The shapes of list files podmod reads; "auto" detects the shape.
LIST_FORMATS = ("auto", *LIST_FILE_FORMATS)
# What a list's `severity` may set for its rows that name none.
LIST_SEVERITIES = ("suspend", "silence", "noop")
# The name of this pod's own list (podmod lists add/remove), which no subscription may take.
LOCAL_LIST = "this-pod"


@dataclass(frozen=True)
class ListConfig:
    """One `[[lists]]` subscription."""

    name: str
    url: str
    policy: str
    public_key: str | None = None
    skip_invalid: bool = False
    max_removal_share: float | None = None
    max_new_match_share: float | None = None
    kinds: tuple[str, ...] = ENTRY_KINDS
    format: str | None = None  # None: detected from the content
    labels: tuple[str, ...] = ()  # empty: every entry; else only entries with one of these labels
    lock_labels: tuple[str, ...] = ()  # on a review list, entries with these labels lock
    require_canary: str | None = None  # a canary host the file must carry
    signed_file: str | None = None  # the `file:` its signature names, if not the URL's last part
    signature_url: str | None = None  # where its signature is, if not beside the file
    severity: str | None = None  # of the rows that name none (None: a suspension, as Mastodon)


# What podmod tells (podmod.notify): the names a [[webhooks]] table subscribes to.
EVENT_TYPES = (
    "case.alert",
    "account.locked",
    "account.unlocked",
    "list.held",
    "list.failing",
    "list.stale",
    "appeal.received",
    "appeal.decided",
)
WEBHOOK_KEYS = ("url", "secret", "events")
WEBHOOK_SECRET_MIN = 16  # characters: an HMAC key shorter than this is guessable


@dataclass(frozen=True)
class WebhookConfig:
    """One `[[webhooks]]` receiver: where, the secret signing its bodies, the events it gets."""

    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] = EVENT_TYPES


@dataclass(frozen=True)
class Config:
    """Validated settings: `config["reader.batch_size"]`, the list subscriptions and webhooks."""

    values: Mapping[str, Any]
    source: str
    lists: tuple[ListConfig, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    # The file as it was when read (file_stamp), and the environment read with it (None: the
    # process's): what changed_on_disk() and read_again() compare and read.
    stamp: FileStamp | None = field(default=None, compare=False)
    environ: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def changed_on_disk(self) -> bool:
        """Whether the file this configuration was read from has changed since (never, for one
        read from the environment alone)."""
        return self.source != "environment" and file_stamp(Path(self.source)) != self.stamp

    def read_again(self) -> Config:
        """The configuration as its file and environment give it now (ConfigError if bad)."""
        return load_config(self.source, self.environ)

    @property
    def database_url(self) -> str:
        return self.values["database_url"]

    @property
    def state_database_url(self) -> str:
        return self.values["state_database_url"] or self.values["database_url"]

    @property
    def redis_url(self) -> str:
        return self.values["redis_url"]

    def subscription(self, name: str) -> ListConfig | None:
        """The `[[lists]]` subscription of this name, or None."""
        return next((s for s in self.lists if s.name == name), None)


# What a process that runs for long opens when it starts and keeps (FollowedConfig's start_bound):
# its database and Redis connections, its logging.
CONNECTIONS = ("database_url", "state_database_url", "redis_url", "log.level")


class FollowedConfig:
    """The configuration of a process that runs for long (the reader, the web UI), following its
    file: current() reads it again when the file has changed since, as `podmod lists sync` and
    each worker job, which read it every time, would. The `start_bound` settings (what the process
    opened its connections with, say) stay as they were when it started; `restart_for` names
    those the file has changed. A file that cannot be used changes nothing: `problem` says why
    ("" when the file in use is the file on disk), and it is logged once."""

    def __init__(self, config: Config, start_bound: tuple[str, ...], process: str) -> None:
        self.config = config
        self.started = config
        self.start_bound = start_bound
        self.process = process  # ("the reader", "the web UI": for the log)
        self.problem = ""
        self.restart_for: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def current(self) -> Config:
        if self.config.changed_on_disk():
            with self._lock:
                self._read_again()
        return self.config

    def _read_again(self) -> None:
        current = self.config
        seen = file_stamp(Path(current.source))
        if seen == current.stamp:
            return  # (another thread read it meanwhile)
        try:
            fresh = current.read_again()
        except ConfigError as error:
            if str(error) != self.problem:
                log.error(
                    "%s changed, but %s cannot use it: %s", current.source, self.process, error
                )
            self.problem = str(error)
            self.config = replace(current, stamp=seen)  # (read again once it changes again)
            return
        kept = {name: self.started[name] for name in self.start_bound}
        restart_for = tuple(name for name in self.start_bound if fresh[name] != kept[name])
        self.config = replace(fresh, values={**fresh.values, **kept})
        self.problem = ""
        if restart_for:
            log.warning(
                "%s changed: %s read it again, but applies %s only when it is restarted",
                fresh.source,
                self.process,
                ", ".join(restart_for),
            )
        else:
            log.info("%s changed: %s read it again", fresh.source, self.process)
        self.restart_for = restart_for


FileStamp = tuple[int, int, int]


def file_stamp(path: Path) -> FileStamp | None:
    """What tells a file's versions apart (modified, size, inode: an editor that saves by
    renaming makes a new inode); None when it is gone."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(key: Key, raw: Any, origin: str) -> Any:
    if key.type is tuple:
        if isinstance(raw, str):  # from the environment: "a@pod.example, b@pod.example"
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            return tuple(raw)
        raise ConfigError(
            f'{key.name} ({origin}) must be a list of strings, such as ["admin@pod.example"], '
            f"not {masked_url(repr(raw))}."
        )
    if key.type is bool and isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(
            f"{key.name} ({origin}) must be true or false, not {masked_url(repr(raw))}."
        )
    if isinstance(raw, bool) and key.type is not bool:
        raise ConfigError(
            f"{key.name} ({origin}) must be a {_type_word(key.type)}, not {masked_url(repr(raw))}."
        )
    try:
        value = key.type(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{key.name} ({origin}) must be a {_type_word(key.type)}, not {masked_url(repr(raw))}."
        ) from None
    if key.type is int and isinstance(raw, float) and raw != value:
        raise ConfigError(
            f"{key.name} ({origin}) must be a whole number, not {masked_url(repr(raw))}."
        )
    return value


def _type_word(kind: type) -> str:
    return {int: "whole number", float: "number", str: "string", bool: "true or false"}[kind]


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the TOML file (if any) and the PODMOD_* environment, and validate every key."""
    env = os.environ if environ is None else environ
    raw_lists: Any = []
    raw_webhooks: Any = []
    explicit = path is not None or "PODMOD_CONFIG" in env
    file_path = Path(path if path is not None else env.get("PODMOD_CONFIG", DEFAULT_CONFIG_PATH))
    from_file: dict[str, Any] = {}
    stamp = file_stamp(file_path)  # (before it is read: a change while reading is seen next time)
    if file_path.exists():
        try:
            with file_path.open("rb") as handle:
                document = tomllib.load(handle)
            raw_lists = document.pop("lists", [])
            raw_webhooks = document.pop("webhooks", [])
            from_file = _flatten(document)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{file_path} is not valid TOML ({error}); fix the file.") from None
        except OSError as error:
            raise ConfigError(f"{file_path} cannot be read ({error.strerror}).") from None
        source = str(file_path)
    elif explicit:
        raise ConfigError(
            f"The config file {file_path} does not exist; create it or unset PODMOD_CONFIG."
        )
    else:
        source = "environment"

    unknown = sorted(set(from_file) - set(KEYS_BY_NAME))
    if unknown:
        raise ConfigError(
            f"Unknown key {unknown[0]!r} in {file_path}; check its spelling against "
            "deploy/podmod.example.toml."
        )

    values: dict[str, Any] = {}
    for key in KEYS:
        if key.env in env and env[key.env] != "":
            raw, origin = env[key.env], f"from {key.env}"
        elif key.name in from_file:
            raw, origin = from_file[key.name], f"in {file_path}"
        else:
            if key.required:
                raise ConfigError(
                    f"{key.name} is not set: set {key.env} or add {key.name} to {file_path} "
                    f"({key.help})."
                )
            values[key.name] = key.default
            continue
        value = _coerce(key, raw, origin)
        problem = key.check(value) if key.check else None
        if problem:
            raise ConfigError(f"{key.name} ({origin}) {problem}; it is {masked_url(repr(raw))}.")
        values[key.name] = value
    webhooks = _load_webhooks(raw_webhooks, file_path)
    _check_notifications(values, webhooks, file_path)
    return Config(
        values=values,
        source=source,
        lists=_load_lists(raw_lists, file_path),
        webhooks=webhooks,
        stamp=stamp if source != "environment" else None,
        environ=environ,
    )


def _is_loopback_host(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_webhooks(raw: Any, file_path: Path) -> tuple[WebhookConfig, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(
            f"In {file_path}, webhooks must be [[webhooks]] tables, one per receiver."
        )
    webhooks = []
    for number, item in enumerate(raw, start=1):
        where = f"[[webhooks]] number {number} in {file_path}"
        unknown = sorted(set(item) - set(WEBHOOK_KEYS))
        if unknown:
            raise ConfigError(
                f"Unknown key {unknown[0]!r} in {where}; allowed: {', '.join(WEBHOOK_KEYS)}."
            )
        url = item.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        loopback = parts is not None and _is_loopback_host(parts.hostname or "")
        if parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
            raise ConfigError(
                f"url of {where} must be an https:// address (http:// only to loopback); it is "
                f"{masked_url(repr(url))}."
            )
        if parts.scheme != "https" and not loopback:
            raise ConfigError(
                f"url of {where} must use https:// (plain http:// is allowed only to loopback, "
                f"such as a chat bridge on 127.0.0.1); it is {masked_url(repr(url))}."
            )
        secret = item.get("secret")
        if not isinstance(secret, str) or len(secret) < WEBHOOK_SECRET_MIN:
            raise ConfigError(
                f"secret of {where} must be a string of {WEBHOOK_SECRET_MIN} or more characters "
                "that the receiver also knows (e.g. `openssl rand -hex 32`)."
            )
        events = item.get("events", list(EVENT_TYPES))
        if not (isinstance(events, list) and events and all(isinstance(e, str) for e in events)):
            raise ConfigError(
                f'events of {where} must be a list of event names, such as ["case.alert"].'
            )
        unknown_events = [event for event in events if event not in EVENT_TYPES]
        if unknown_events:
            raise ConfigError(
                f"events of {where} names the unknown event {unknown_events[0]!r}; use some of "
                f"{', '.join(EVENT_TYPES)}."
            )
        webhooks.append(
            WebhookConfig(
                url=url, secret=secret, events=tuple(e for e in EVENT_TYPES if e in events)
            )
        )
    return tuple(webhooks)


def _check_notifications(
    values: dict[str, Any], webhooks: tuple[WebhookConfig, ...], file_path: Path
) -> None:
    """What notifications need together: a From address to mail, podmod's address for links."""
    if values["mail.smtp_url"] and not values["mail.from"]:
        raise ConfigError(
            "mail.smtp_url is set but mail.from is not: set mail.from (PODMOD_MAIL_FROM) to the "
            f"address podmod's mail comes from, such as podmod@pod.example, in {file_path}."
        )
    if (values["mail.smtp_url"] or webhooks) and not values["web.public_url"]:
        raise ConfigError(
            "Mail or webhooks are configured but web.public_url is not, so their links would "
            "lead nowhere: set web.public_url (PODMOD_WEB_PUBLIC_URL) to podmod's address, such "
            f"as https://pod.example/podmod/, in {file_path}."
        )
    url = values["web.public_url"]
    if url and not url.endswith("/"):
        values["web.public_url"] = url + "/"


def _load_lists(raw: Any, file_path: Path) -> tuple[ListConfig, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"In {file_path}, lists must be [[lists]] tables, one per subscription.")
    seen: set[str] = set()
    lists = []
    for number, item in enumerate(raw, start=1):
        where = f"[[lists]] number {number} in {file_path}"
        unknown = sorted(set(item) - set(LIST_KEYS))
        if unknown:
            raise ConfigError(
                f"Unknown key {unknown[0]!r} in {where}; allowed: {', '.join(LIST_KEYS)}."
            )
        name = item.get("name")
        if name is None:
            raise ConfigError(
                f'{where} has no name; give it one, such as name = "core" (lower-case letters,'
                " digits, '.', '_' or '-')."
            )
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name):
            raise ConfigError(
                f"{where} needs a name of lower-case letters, digits, '.', '_' or '-' "
                f"(it is {name!r})."
            )
        where = f"list {name!r} in {file_path}"
        if name in seen:
            raise ConfigError(f"Two [[lists]] are named {name!r} in {file_path}; rename one.")
        if name == LOCAL_LIST:
            raise ConfigError(
                f"The list name {LOCAL_LIST!r} in {file_path} is podmod's own list of this pod "
                "(podmod lists add); give the subscription another name."
            )
        seen.add(name)
        url = item.get("url")
        if url is None:
            raise ConfigError(
                f'{where} has no url; set url = "https://…" to the address of its list file.'
            )
        if not isinstance(url, str) or not (
            url.startswith("https://") or url.startswith("file:///")
        ):
            raise ConfigError(
                f"url of {where} must start with https:// (or file:/// for a local file); "
                f"it is {masked_url(repr(url))}."
            )
        policy = item.get("policy", "review")
        if policy not in LIST_POLICIES:
            raise ConfigError(
                f"policy of {where} must be one of {', '.join(LIST_POLICIES)}; it is {policy!r}."
            )
        if (mismatch := _api_mismatch(url, policy)) is not None:
            raise ConfigError(f"url of {where} {mismatch}.")
        public_key = item.get("public_key")
        if public_key is not None:
            from podmod.lists.minisign import PublicKey

            if not isinstance(public_key, str):
                raise ConfigError(f"public_key of {where} must be a string.")
            try:
                PublicKey.from_string(public_key)
            except PodmodError:
                raise ConfigError(
                    f"public_key of {where} is not a minisign public key (the base64 line of the "
                    "list's .pub file, starting with RW)."
                ) from None
        signed_file = item.get("signed_file")
        if signed_file is not None and not (
            isinstance(signed_file, str)
            and re.fullmatch(r"[^/\\\x00-\x1f\x7f]{1,255}", signed_file)
        ):
            raise ConfigError(
                f'signed_file of {where} must be a file name such as "core.csv" (no /, at most '
                f"255 characters); it is {signed_file!r}."
            )
        if signed_file is not None and public_key is None:
            raise ConfigError(
                f"signed_file of {where} names the file the list's signatures are for, but the "
                "list has no public_key to check them: add its public_key or remove signed_file."
            )
        signature_url = item.get("signature_url")
        if signature_url is not None and not (
            isinstance(signature_url, str) and signature_url.startswith(("https://", "file:///"))
        ):
            raise ConfigError(
                f"signature_url of {where} must start with https:// (or file:/// for a local "
                f"file); it is {masked_url(repr(signature_url))}."
            )
        if signature_url is not None and signature_url.split("#")[0] == url.split("#")[0]:
            raise ConfigError(
                f"signature_url of {where} is the list's own url; set it to the address of the "
                "list's .minisig file, or remove it to read the signature beside the file."
            )
        if signature_url is not None and public_key is None:
            raise ConfigError(
                f"signature_url of {where} says where the list's signature is, but the list has "
                "no public_key to check it: add its public_key or remove signature_url."
            )
        skip_invalid = item.get("skip_invalid", False)
        if not isinstance(skip_invalid, bool):
            raise ConfigError(f"skip_invalid of {where} must be true or false.")
        share = _list_share(item, "max_removal_share", where)
        match_share = _list_share(item, "max_new_match_share", where)
        kinds = _list_kinds(item.get("kinds", list(ENTRY_KINDS)), where)
        list_format = item.get("format", "auto")
        if list_format not in LIST_FORMATS:
            raise ConfigError(
                f"format of {where} must be one of {', '.join(LIST_FORMATS)}; it is "
                f"{list_format!r}."
            )
        severity = item.get("severity")
        if severity is not None and severity not in LIST_SEVERITIES:
            raise ConfigError(
                f"severity of {where} (the severity of its rows that name none) must be one of "
                f"{', '.join(LIST_SEVERITIES)}; it is {severity!r}."
            )
        labels = _list_labels(item.get("labels", []), "labels", where)
        lock_labels = _list_labels(item.get("lock_labels", []), "lock_labels", where)
        if lock_labels and policy != "review":
            raise ConfigError(
                f"lock_labels of {where} applies to a list with policy review (its other entries "
                f"stay for review); this list's policy is {policy!r}: remove lock_labels."
            )
        lists.append(
            ListConfig(
                name=name,
                url=url,
                policy=policy,
                public_key=public_key,
                skip_invalid=skip_invalid,
                max_removal_share=share,
                max_new_match_share=match_share,
                kinds=kinds,
                format=None if list_format == "auto" else list_format,
                labels=labels,
                lock_labels=lock_labels,
                require_canary=_canary_host(item.get("require_canary"), where),
                signed_file=signed_file,
                signature_url=signature_url,
                severity=severity,
            )
        )
    _refuse_counted_twice(lists, file_path)
    return tuple(lists)


def _refuse_counted_twice(lists: list[ListConfig], file_path: Path) -> None:
    """Two flagging lists (review, lock) at the same address that both apply some of its entries
    (a [[lists]] table copied and renamed, its url left as it was): each of those matches would
    count twice, in a case's priority and toward list_sync.threshold, which one source would then
    meet alone. Lists of the same file that apply other kinds, or other labels, are allowed."""
    seen: dict[tuple[str, ...], list[ListConfig]] = {}
    for subscription in lists:
        if subscription.policy not in ("review", "lock"):
            continue
        parts = urlsplit(subscription.url.strip())
        address = (parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query)
        for other in seen.get(address, []):
            kinds = [kind for kind in subscription.kinds if kind in other.kinds]
            labels_apart = (
                subscription.labels
                and other.labels
                and not set(subscription.labels) & set(other.labels)
            )
            if kinds and not labels_apart:
                raise ConfigError(
                    f"Lists {other.name!r} and {subscription.name!r} in {file_path} both fetch"
                    f" {masked_url(subscription.url)} and both apply its {', '.join(kinds)}"
                    " entries: each of their matches would count twice, in a case's priority and"
                    " toward list_sync.threshold; keep one (its labels, lock_labels and kinds"
                    " choose what it applies), or give the two kinds or labels that do not overlap."
                )
        seen.setdefault(address, []).append(subscription)


# The APIs where fediverse servers publish whom they block and whom they allow (Mastodon's and
# GoToSocial's), by the end of their path.
_PEERS_API = "/api/v1/instance/peers"
_BLOCKS_API = "/api/v1/instance/domain_blocks"
_ALLOWS_API = "/api/v1/instance/domain_allows"
_TRUE = ("1", "t", "true")  # (Go's strconv.ParseBool, case-blind as GoToSocial's values are read)


def _api_mismatch(url: str, policy: str) -> str | None:
    """What is wrong with a list's address that asks a server's API for other servers than the
    list's policy means: the servers it federates with (/api/v1/instance/peers with no filter, or
    one that takes in `open`), bare names (`flat=true`), those it allows on a blocking list, those
    it blocks on an allowlist (which would exempt them from every list); None when nothing is.
    GoToSocial reads its peers' filter as comma-separated values, case-blind: `blocked` (on older
    versions `suspended`, which newer ones still read), `allowed`, `open`."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    peers = path.endswith(_PEERS_API)
    query = parse_qsl(parts.query, keep_blank_values=True)
    filters = {
        value.strip().lower()
        for name, values in query
        if name == "filter"
        for value in values.split(",")
    } - {""}
    blocks = path.endswith(_BLOCKS_API) or (peers and bool(filters & {"blocked", "suspended"}))
    allows = path.endswith(_ALLOWS_API) or (peers and "allowed" in filters)
    if peers and (not filters or "open" in filters):
        return (
            "asks the server for the servers it federates with (/api/v1/instance/peers without"
            " filter=blocked), not those it blocks: set filter=blocked (filter=suspended on"
            " older GoToSocial), or use /api/v1/instance/domain_blocks, where Mastodon and newer"
            " GoToSocial publish their blocks"
        )
    if peers and any(name == "flat" and value.strip().lower() in _TRUE for name, value in query):
        return (
            "asks for bare names (flat=true), which cannot be told from the servers an instance"
            " federates with: remove flat=true"
        )
    if allows and policy != "allow":
        return (
            "asks the server for the servers it allows, not those it blocks: set policy ="
            ' "allow" to subscribe to its allowlist, or ask for its blocks'
            " (/api/v1/instance/domain_blocks)"
        )
    if blocks and policy == "allow":
        return (
            'asks the server for the servers it blocks, and its policy "allow" would exempt'
            " their accounts from every list: set another policy, or ask for its allowlist"
            " (/api/v1/instance/domain_allows)"
        )
    return None


def _list_labels(raw: Any, key: str, where: str) -> tuple[str, ...]:
    """`labels = ["hate-speech", "spam"]`, normalised as entries' labels are (lower case, without
    a namespace such as `iftas:`, words joined by a hyphen: `Hate speech` is `hate-speech`)."""
    from podmod.lists.parse import label_keys_of

    if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
        raise ConfigError(f'{key} of {where} must be a list of labels, such as ["spam"].')
    labels: list[str] = []
    for label in raw:
        keys = label_keys_of(label)
        if len(keys) != 1:
            raise ConfigError(
                f"{key} of {where} holds {label!r}, which is not one label (no ; or , inside, "
                "at most 100 characters)."
            )
        if keys[0] not in labels:
            labels.append(keys[0])
    return tuple(labels)


def _canary_host(raw: Any, where: str) -> str | None:
    """`require_canary = "aud.invalid"`: the host of the canary row the file must carry."""
    if raw is None:
        return None
    from podmod.lists.parse import normalise

    try:
        if not isinstance(raw, str):
            raise ValueError
        return normalise("pod", raw)
    except ValueError:
        raise ConfigError(
            f"require_canary of {where} must be the host of the list's canary row, such as "
            f'"aud.invalid"; it is {raw!r}.'
        ) from None


def _list_share(item: dict[str, Any], key: str, where: str) -> float | None:
    """A list's own share setting (max_removal_share, max_new_match_share); None when unset."""
    share = item.get(key)
    if share is None:
        return None
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError(f"{key} of {where} must be a share between 0 and 1, such as 0.5.")
    return float(share)


def _list_kinds(raw: Any, where: str) -> tuple[str, ...]:
    """`kinds = ["account", "phrase"]`: the entry kinds of the list that podmod applies."""
    if not isinstance(raw, list) or not all(isinstance(kind, str) for kind in raw):
        raise ConfigError(
            f'kinds of {where} must be a list of entry kinds, such as ["account", "phrase"].'
        )
    unknown = [kind for kind in raw if kind not in ENTRY_KINDS]
    if unknown:
        raise ConfigError(
            f"kinds of {where} names the unknown kind {unknown[0]!r}; use some of "
            f"{', '.join(ENTRY_KINDS)}."
        )
    return tuple(kind for kind in ENTRY_KINDS if kind in raw)
