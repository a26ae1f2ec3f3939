"""podmod's configuration: one TOML file plus PODMOD_* environment overrides, validated at start.

Every key has a type, a default and a check; a bad value raises ConfigError with one sentence that
names the key, where it came from and what to do. `[reader] batch_size` in the file is
`PODMOD_READER_BATCH_SIZE` in the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from podmod.errors import ConfigError

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


def _log_level(value: str) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    return None if value.upper() in levels else f"must be one of {', '.join(levels)}"


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
        "reader.restart_grace",
        float,
        10.0,
        _positive,
        help="seconds before an abandoned intake job is enqueued again",
    ),
    Key("worker.job_timeout", int, 600, _positive, help="seconds one job may run"),
    Key("log.level", str, "INFO", _log_level, help="DEBUG, INFO, WARNING or ERROR"),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


@dataclass(frozen=True)
class Config:
    """Validated settings. Read values with attribute access on the flat, underscored name."""

    values: Mapping[str, Any]
    source: str

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def database_url(self) -> str:
        return self.values["database_url"]

    @property
    def state_database_url(self) -> str:
        return self.values["state_database_url"] or self.values["database_url"]

    @property
    def redis_url(self) -> str:
        return self.values["redis_url"]


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
    if key.type is bool and isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key.name} ({origin}) must be true or false, not {raw!r}.")
    if isinstance(raw, bool) and key.type is not bool:
        raise ConfigError(f"{key.name} ({origin}) must be a {_type_word(key.type)}, not {raw!r}.")
    try:
        value = key.type(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{key.name} ({origin}) must be a {_type_word(key.type)}, not {raw!r}."
        ) from None
    if key.type is int and isinstance(raw, float) and raw != value:
        raise ConfigError(f"{key.name} ({origin}) must be a whole number, not {raw!r}.")
    return value


def _type_word(kind: type) -> str:
    return {int: "whole number", float: "number", str: "string", bool: "true or false"}[kind]


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the TOML file (if any) and the PODMOD_* environment, and validate every key."""
    env = os.environ if environ is None else environ
    explicit = path is not None or "PODMOD_CONFIG" in env
    file_path = Path(path if path is not None else env.get("PODMOD_CONFIG", DEFAULT_CONFIG_PATH))
    from_file: dict[str, Any] = {}
    if file_path.exists():
        try:
            with file_path.open("rb") as handle:
                from_file = _flatten(tomllib.load(handle))
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
            raise ConfigError(f"{key.name} ({origin}) {problem}; it is {raw!r}.")
        values[key.name] = value
    return Config(values=values, source=source)
