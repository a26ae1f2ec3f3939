"""What the web app talks to: pooled connections to the pod's and podmod's databases, and Redis.

One connection per request at most for each database (the same one when podmod's schema lives in
the pod's database, the default), taken from a small pool and given back when the request ends.
Connections are in autocommit: pages only read; actions go through podmod.actions, which opens its
own transaction.
"""

from __future__ import annotations

import threading

import psycopg
import redis
from flask import current_app, g
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from podmod import queue, store
from podmod.config import CONNECTIONS, Config, FollowedConfig
from podmod.db import describe_url
from podmod.errors import ServiceUnavailable

POOL_MAX = 10
CHECKOUT_TIMEOUT = 5.0


# What the web UI takes when it starts and keeps while it runs: a change to one of them in the
# configuration file waits for a restart, and its pages say so (config_notice).
START_BOUND = (*CONNECTIONS, "secret_key", "web.session_minutes", "web.trusted_proxies")


class Services:
    """The app's configuration, pools and Redis client, opened on first use and closed by close().

    The configuration follows its file (look_at_config(), before each request): a podmin who
    subscribes to a list, changes a policy or a role sees it in the next page, and the pages act
    on it. The START_BOUND settings stay as they were when the web UI started."""

    def __init__(self, config: Config) -> None:
        self.followed = FollowedConfig(config, START_BOUND, "the web UI")
        self._pools: dict[str, ConnectionPool] = {}
        self._redis: redis.Redis | None = None
        self._lock = threading.Lock()
        self.schema_checked = False

    @property
    def config(self) -> Config:
        return self.followed.config

    def look_at_config(self) -> None:
        """Read the configuration file again if it has changed since (before each request)."""
        self.followed.current()

    def pool(self, url: str, purpose: str) -> ConnectionPool:
        with self._lock:
            if url not in self._pools:
                self._pools[url] = ConnectionPool(
                    url,
                    min_size=1,
                    max_size=POOL_MAX,
                    kwargs={
                        "autocommit": True,
                        "row_factory": dict_row,
                        "connect_timeout": 5,
                        "application_name": f"podmod-web-{purpose}",
                    },
                    check=ConnectionPool.check_connection,
                    name=f"podmod-web-{purpose}",
                    open=True,
                )
            return self._pools[url]

    def getconn(self, url: str, purpose: str, timeout: float = CHECKOUT_TIMEOUT):
        try:
            return self.pool(url, purpose).getconn(timeout=timeout)
        except (PoolTimeout, psycopg.OperationalError):
            raise ServiceUnavailable(
                f"Cannot connect to the {purpose} database at {describe_url(url)}; check that "
                "PostgreSQL is running and the URL in the config is right."
            ) from None

    def putconn(self, url: str, conn: psycopg.Connection) -> None:
        pool = self._pools.get(url)
        if pool is not None:
            pool.putconn(conn)

    def redis(self) -> redis.Redis:
        with self._lock:
            if self._redis is None:
                self._redis = queue.redis_connection(self.config)
            return self._redis

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
            if self._redis is not None:
                self._redis.close()
                self._redis = None


def services() -> Services:
    return current_app.extensions["podmod"]


def config_notice() -> str:
    """What an admin's pages say while the configuration file holds what the web UI does not
    follow (a file it cannot use, a START_BOUND setting changed); "" when it follows the file."""
    followed = services().followed
    source = followed.config.source
    if followed.problem:
        return (
            f"{source} was changed, but the web UI cannot use it: {followed.problem} Until "
            "then the web UI goes on with the configuration it read before."
        )
    if followed.restart_for:
        them = "it" if len(followed.restart_for) == 1 else "them"
        return (
            f"{source} changed {', '.join(followed.restart_for)}, which the web UI reads only when "
            f"it starts: restart it (systemctl restart podmod-web) to apply {them}; the rest of "
            "the file applies already."
        )
    return ""


def _connection(kind: str) -> psycopg.Connection:
    """This request's connection to the pod's (`pod`) or podmod's (`state`) database."""
    config = services().config
    url = config.database_url if kind == "pod" else config.state_database_url
    held: dict[str, psycopg.Connection] = g.setdefault("podmod_connections", {})
    if url not in held:
        held[url] = services().getconn(url, kind)
    if kind == "state" and not services().schema_checked:
        store.require_current_schema(held[url])
        services().schema_checked = True
    return held[url]


def pod_conn() -> psycopg.Connection:
    return _connection("pod")


def state_conn() -> psycopg.Connection:
    return _connection("state")


def release_connections(_error: BaseException | None = None) -> None:
    """Give this request's connections back to their pools (teardown)."""
    held = g.pop("podmod_connections", {})
    for url, conn in held.items():
        services().putconn(url, conn)


def redis_conn() -> redis.Redis:
    try:
        return services().redis()
    except redis.RedisError as error:
        raise ServiceUnavailable(f"Redis does not answer ({error}).") from None
