"""`podmod demo`: the whole system on one machine with nothing installed but Python and pip.

It starts a real PostgreSQL and a real Redis (embedded), creates a small believable diaspora* pod
(neutral placeholder text), publishes and signs a blocklist with podmod's own `lists publish`,
subscribes to it, and runs the reader, a worker and the web UI — the same code and commands as in
production, each a process of its own.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import bcrypt
import psycopg

from podmod.embedded import folders_opened_as_root, free_port, start_postgres, start_redis
from podmod.errors import PodmodError
from podmod.fixtures import diaspora_schema_sql

PEPPER = (
    "065eb8798b181ff0ea2c5c16aee0ff8b70e04e2ee6bd6e08b49da46924223e39127d5335e466207d42bf2a045c12"
    "be5f90e92012a4f05f7fc6d9f3c875f4c95b"
)
HOST = "demo.pod.example"

LOCAL_USERS = [
    ("podmin", ("admin",)),
    ("moderator", ("moderator",)),
    ("alice", ()),
    ("bob", ()),
    ("carol", ()),
    ("dave", ()),
    ("erin", ()),
    ("spamvendor", ()),
]
REMOTE_PEOPLE = [
    ("friend", "friendly.example"),
    ("newsdesk", "press.example"),
    ("campaign1", "campaign.example"),
    ("campaign2", "campaign.example"),
    ("campaign3", "mirror.example:8443"),
    ("troll", "noisy.example"),
]
POSTS = [
    ("alice", "Placeholder: photos from the weekend walk."),
    ("friend", "Placeholder: a recipe for lentil soup."),
    ("campaign1", "Placeholder campaign text number one, repeated across many pods."),
    ("campaign2", "Placeholder campaign text number two, with a link to an archive."),
    ("spamvendor", "Placeholder: buy cheap widgets now!!!"),
    ("troll", "Placeholder rude remark aimed at another user."),
    (
        "campaign3",
        '<script>document.title="pwned"</script><img src=x onerror="alert(1)"> '
        "placeholder text that tries to run a script in the admin page",
    ),
    ("newsdesk", "Placeholder: a news report that quotes the campaign."),
]
REPORTS = [  # reporter, author of the reported post, reason
    ("alice", "campaign1", "Placeholder: looks like coordinated propaganda"),
    ("bob", "campaign1", "Placeholder: same as the others"),
    ("carol", "campaign1", "Placeholder: please remove"),
    ("alice", "campaign2", "Placeholder: propaganda link"),
    ("dave", "spamvendor", "Placeholder: spam"),
    ("erin", "spamvendor", "Placeholder: spam again"),
    ("bob", "troll", "Placeholder: harassment"),
    ("carol", "campaign3", "Placeholder: this post has odd markup"),
]
DEMO_LIST = [
    "kind,value,label,comment",
    "account,campaign1@campaign.example,campaign,placeholder campaign account",
    "account,campaign2@campaign.example,campaign,placeholder campaign account",
    "pod,mirror.example,campaign,placeholder mirror pod",
    "account,spamvendor@demo.pod.example,spam,placeholder spam account",
]


HISTORY_DAYS = 28
HISTORY_ACCOUNTS = 55  # with the scripted ones above, about 60 cases
HISTORY_HOSTS = ("friendly.example", "press.example", "noisy.example", "far.example")
REPORTERS = ("alice", "bob", "carol", "dave", "erin")


def history() -> list[tuple[str, str, int, list[str], bool]]:
    """Four weeks of earlier reports, oldest first: (account, host, hours ago, reporters,
    reviewed); most of the older half was already reviewed in diaspora*'s own page, as on a pod.
    Every ninth account is one of this pod's own."""
    rows = []
    for n in range(HISTORY_ACCOUNTS):
        hours = HISTORY_DAYS * 24 - n * (HISTORY_DAYS * 24 - 2) // HISTORY_ACCOUNTS
        reporters = [REPORTERS[(n + k) % len(REPORTERS)] for k in range(1 + n % 3)]
        reviewed = n < HISTORY_ACCOUNTS // 2 and n % 3 != 0
        host = HOST if n % 9 == 4 else HISTORY_HOSTS[n % 4]
        rows.append((f"member{n:02d}", host, hours, reporters, reviewed))
    return rows


DECIDED_AFTER_HOURS = 3  # how long after its first report the demo's moderator decided a case
DECIDED_BEFORE_DAYS = 5  # cases newer than this are still waiting in the queue

# The history's podmod side, dated as it would have happened: each case opened when its first
# report came, each report recorded then, each closed case closed (decision, audit row, reports
# reviewed, the lock in the pod) a few hours later. Runs once, on the demo's fresh database.
BACKDATE_SQL = """
UPDATE podmod.signals SET created_at = occurred_at
WHERE kind = 'report' AND occurred_at < created_at;
UPDATE podmod.cases c SET created_at = f.first_at
FROM (SELECT case_id, min(occurred_at) AS first_at FROM podmod.signals GROUP BY case_id) f
WHERE f.case_id = c.id AND f.first_at < c.created_at - interval '1 day';
CREATE TEMP TABLE decided ON COMMIT DROP AS
SELECT id AS case_id, created_at + make_interval(hours => %(after)s) AS at FROM podmod.cases
WHERE closed_at IS NOT NULL AND created_at < now() - interval '1 day';
UPDATE podmod.cases c SET closed_at = d.at, updated_at = d.at FROM decided d WHERE d.case_id = c.id;
UPDATE podmod.signals s SET reviewed_at = d.at
FROM decided d WHERE d.case_id = s.case_id AND s.reviewed;
UPDATE podmod.decisions x SET created_at = d.at FROM decided d WHERE d.case_id = x.case_id;
UPDATE podmod.audit a SET at = d.at FROM decided d WHERE d.case_id = a.case_id;
UPDATE users u SET locked_at = d.at, updated_at = d.at
FROM decided d JOIN podmod.decisions x ON x.case_id = d.case_id AND x.action = 'lock'
JOIN people p ON p.id = x.person_id WHERE u.id = p.owner_id;
"""


def play_history(config_path: Path) -> None:
    """The demo's moderator at work over the four weeks: of the older cases still open after
    the first read, this pod's accounts are locked and closed, the others reviewed or dismissed
    through the action path; then every row is dated as it would have been."""
    from podmod import actions
    from podmod.config import load_config
    from podmod.db import state_connection

    config = load_config(config_path, environ={})
    moderator = f"moderator@{HOST}"
    with state_connection(config) as state:
        open_cases = {
            row["account"]: row["id"]
            for row in state.execute("SELECT id, account FROM podmod.cases WHERE status = 'open'")
        }
        state.rollback()
    for n, (username, host, hours, _, _) in enumerate(history()):
        case_id = open_cases.get(f"{username}@{host}")
        if case_id is None or hours < DECIDED_BEFORE_DAYS * 24:
            continue
        decide = {"config": config, "case_id": case_id, "actor": moderator, "source": "web"}
        if host == HOST:
            actions.lock_and_close(**decide, reason="Placeholder: spam account")
        elif n % 2:
            actions.dismiss_case(**decide, reason="Placeholder: within the pod's rules")
        else:
            actions.mark_reviewed(**decide)
    with state_connection(config) as state, state.transaction():
        psycopg.ClientCursor(state).execute(BACKDATE_SQL, {"after": DECIDED_AFTER_HOURS})


def devise_hash(password: str) -> str:
    return bcrypt.hashpw((password + PEPPER).encode()[:72], bcrypt.gensalt(10, b"2a")).decode()


def build_community(url: str, password: str) -> None:
    """diaspora*'s tables and a small pod: local and remote people, posts, comments, reports."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(diaspora_schema_sql())
        people: dict[str, int] = {}
        users: dict[str, int] = {}
        hashed = devise_hash(password)
        for username, roles in LOCAL_USERS:
            user_id = conn.execute(
                "INSERT INTO users (username, email, encrypted_password, created_at, updated_at,"
                " getting_started) VALUES (%s, %s, %s, now(), now(), false) RETURNING id",
                (username, f"{username}@mail.example", hashed),
            ).fetchone()[0]
            users[username] = user_id
            people[username] = _person(conn, f"{username}@{HOST}", owner_id=user_id)
            for role in roles:
                conn.execute(
                    "INSERT INTO roles (person_id, name, created_at, updated_at)"
                    " VALUES (%s, %s, now(), now())",
                    (people[username], role),
                )
        for username, host in REMOTE_PEOPLE:
            pod_id = conn.execute(
                "INSERT INTO pods (host, ssl, created_at, updated_at, port, status)"
                " VALUES (%s, true, now(), now(), -1, 1) ON CONFLICT (host, port)"
                " DO UPDATE SET updated_at = now() RETURNING id",
                (host.split(":")[0],),
            ).fetchone()[0]
            people[username] = _person(conn, f"{username}@{host}", pod_id=pod_id)
        posts: dict[str, int] = {}
        for author, text in POSTS:
            posts[author] = conn.execute(
                "INSERT INTO posts (author_id, public, guid, type, text, created_at, updated_at)"
                " VALUES (%s, true, %s, 'StatusMessage', %s, now(), now()) RETURNING id",
                (people[author], secrets.token_hex(16), text),
            ).fetchone()[0]
        comment = conn.execute(
            "INSERT INTO comments (text, commentable_id, author_id, guid, created_at, updated_at)"
            " VALUES ('Placeholder rude comment under a friendly post.', %s, %s, %s, now(),"
            " now()) RETURNING id",
            (posts["alice"], people["troll"], secrets.token_hex(16)),
        ).fetchone()[0]
        for reporter, author, reason in REPORTS:
            conn.execute(
                "INSERT INTO reports (item_id, item_type, reviewed, text, created_at, updated_at,"
                " user_id) VALUES (%s, 'Post', false, %s, now(), now(), %s)",
                (posts[author], reason, users[reporter]),
            )
        conn.execute(
            "INSERT INTO reports (item_id, item_type, reviewed, text, created_at, updated_at,"
            " user_id) VALUES (%s, 'Comment', false, 'Placeholder: rude comment', now(), now(),"
            " %s)",
            (comment, users["alice"]),
        )
        unusable = devise_hash(secrets.token_urlsafe(16))  # history's own accounts never sign in
        for username, host, hours, reporters, reviewed in history():
            owner = None
            if host == HOST:
                owner = conn.execute(
                    "INSERT INTO users (username, email, encrypted_password, created_at,"
                    " updated_at, getting_started) VALUES (%s, %s, %s,"
                    " now() - make_interval(days => 60), now(), false) RETURNING id",
                    (username, f"{username}@mail.example", unusable),
                ).fetchone()[0]
            person = _person(conn, f"{username}@{host}", owner_id=owner)
            post = conn.execute(
                "INSERT INTO posts (author_id, public, guid, type, text, created_at, updated_at)"
                " VALUES (%s, true, %s, 'StatusMessage', %s, now() - make_interval(hours => %s),"
                " now()) RETURNING id",
                (person, secrets.token_hex(16), f"Placeholder post by {username}.", hours),
            ).fetchone()[0]
            for reporter in reporters:
                conn.execute(
                    "INSERT INTO reports (item_id, item_type, reviewed, text, created_at,"
                    " updated_at, user_id) VALUES (%s, 'Post', %s, 'Placeholder: unwanted post',"
                    " now() - make_interval(hours => %s - 1), now(), %s)",
                    (post, reviewed, hours, users[reporter]),
                )


def _person(
    conn: psycopg.Connection, handle: str, *, owner_id: int | None = None, pod_id: int | None = None
) -> int:
    person_id = conn.execute(
        "INSERT INTO people (guid, diaspora_handle, serialized_public_key, owner_id, pod_id,"
        " created_at, updated_at) VALUES (%s, %s, 'placeholder key', %s, %s, now(), now())"
        " RETURNING id",
        (secrets.token_hex(16), handle, owner_id, pod_id),
    ).fetchone()[0]
    name = handle.split("@")[0].title()
    conn.execute(
        "INSERT INTO profiles (diaspora_handle, first_name, full_name, person_id, created_at,"
        " updated_at) VALUES (%s, %s, %s, %s, now(), now())",
        (handle, name, name, person_id),
    )
    return person_id


@dataclass
class Demo:
    directory: Path
    port: int
    password: str
    processes: list[subprocess.Popen]
    servers: list
    lock: TextIO

    def failure(self) -> str | None:
        """What died, if anything did: one of the demo's servers (which the podmod processes
        that need it follow), or a podmod process."""
        redis_server, postgres = self.servers
        if not redis_server.running():
            return "The demo's Redis stopped"
        if not postgres.running():
            return "The demo's PostgreSQL stopped"
        for process in self.processes:
            if process.poll() is not None:
                return f"`podmod {process.args[3]}` exited"  # type: ignore[index]
        return None


DEFAULT_PORT = 8790  # the port of deploy/podmod-web.service


def default_directory() -> Path:
    """Where the demo lives by default. As root, not under /root: the embedded PostgreSQL runs as
    the OS user `pgserver` there and would open every folder above its data to all users."""
    if os.geteuid() == 0:
        return Path("/var/lib/podmod-demo")
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "podmod-demo"


def _lock(directory: Path) -> TextIO:
    """Hold the directory for this demo; a second demo on it is refused, not let to delete it."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = (directory / "demo.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise PodmodError(
            f"A podmod demo is already running in {directory}; stop it first (Ctrl-C in its "
            "terminal) or give this one another --dir."
        ) from None
    return handle


def _podmod(
    *args: str, env: dict[str, str], check: bool = True, log: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a podmod command to its end; with `log`, its log lines are appended there too."""
    result = subprocess.run(
        [sys.executable, "-m", "podmod.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if log is not None:
        with log.open("a") as out:
            out.write(result.stdout + result.stderr)
    if check and result.returncode != 0:
        raise RuntimeError(f"podmod {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


def start(directory: Path, *, port: int | None, keep: bool, echo=print) -> Demo:
    """Start everything; returns once the web UI answers (or, without it, once intake ran)."""
    lock = _lock(directory)
    if not keep:
        for child in directory.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            elif child.name != "demo.lock":
                child.unlink()
    fresh = not (directory / "pg").exists()
    if os.geteuid() == 0:
        opened = folders_opened_as_root(directory / "pg")
        echo(
            "Running as root: the embedded PostgreSQL runs as the OS user `pgserver` (created "
            "now if it does not exist)"
            + (
                f" and makes {', '.join(map(str, opened))} readable by every user."
                if opened
                else "."
            )
        )
    postgres = start_postgres(directory / "pg")
    redis_server = start_redis(directory / "redis")
    servers = [redis_server, postgres]
    database_url = postgres.url("diaspora_demo")
    password_file = directory / "password"
    if fresh:
        password = secrets.token_urlsafe(9)
        password_file.write_text(password)
        with psycopg.connect(postgres.url("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE diaspora_demo")
        build_community(database_url, password)
    password = password_file.read_text().strip()
    lists_dir = directory / "lists"
    config_path = directory / "podmod.toml"
    port = port or free_port(DEFAULT_PORT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMOD_")}
    env.update(PODMOD_CONFIG=str(config_path), PODMOD_LOG_LEVEL="INFO")
    if fresh:
        lists_dir.mkdir(exist_ok=True)
        (lists_dir / "source.csv").write_text("\n".join(DEMO_LIST) + "\n")
        config_path.write_text(
            f'database_url = "{database_url}"\nredis_url = "{redis_server.url(db=1)}"\n'
            f'secret_key = "{secrets.token_hex(32)}"\n'
        )
        _podmod("lists", "keygen", "--dir", str(lists_dir), "--name", "core-team", env=env)
        _podmod(
            "lists",
            "publish",
            "--from-csv",
            str(lists_dir / "source.csv"),
            "--secret-key",
            str(lists_dir / "core-team.key"),
            "--output",
            str(lists_dir / "core-team.csv"),
            env=env,
        )
        public_key = (lists_dir / "core-team.pub").read_text().splitlines()[1]
        with config_path.open("a") as handle:
            handle.write(
                f'\n[[lists]]\nname = "core-team"\nurl = "{(lists_dir / "core-team.csv").as_uri()}"'
                f'\npublic_key = "{public_key}"\npolicy = "review"\n'
            )
    else:  # the embedded servers may listen elsewhere now
        text = config_path.read_text().splitlines()
        text = [
            f'redis_url = "{redis_server.url(db=1)}"' if line.startswith("redis_url") else line
            for line in text
        ]
        config_path.write_text("\n".join(text) + "\n")
    _podmod("init", env=env)
    # (a demo kept from before may hold a version its podmin published, or name a list that
    # fails: the sync says so, exit 4 or 1, and the demo starts all the same)
    synced = _podmod("lists", "sync", env=env, check=False)
    if synced.returncode not in (0, 1, 4):
        raise RuntimeError(f"podmod lists sync failed: {synced.stdout}{synced.stderr}")
    if synced.returncode:
        echo("The demo's lists, as `podmod lists sync` told them:")
        for line in synced.stdout.splitlines():
            if line.strip() and line != "syncing lists":
                echo(f"  {line}")
    if fresh:  # the four weeks of history, read and decided before anyone signs in
        _podmod("read", "--once", env=env, log=directory / "podmod.log")
        _podmod("worker", "--burst", env=env, log=directory / "podmod.log")
        play_history(config_path)
    log = (directory / "podmod.log").open("a")
    # (the lists synced every 15 minutes, as deploy/podmod.cron does on a pod)
    commands = [["read", "--wait"], ["worker"], ["lists", "sync", "--every", "900"]]
    web = _has_web()
    if web:
        commands.append(["serve", "--host", "127.0.0.1", "--port", str(port)])
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "podmod.cli", *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for command in commands
    ]
    demo = Demo(directory, port, password, processes, servers, lock)
    if web:
        _wait_for_http(f"http://127.0.0.1:{port}/healthz", demo)
    echo("podmod demo is running.")
    if web:
        echo(f"  Open      http://127.0.0.1:{port}/")
    echo("  Sign in   podmin (admin) or moderator, password " + password)
    echo(f"  Config    {config_path}   (PODMOD_CONFIG={config_path} podmod cases)")
    echo(f"  Logs      {directory / 'podmod.log'}")
    echo("Press Ctrl-C to stop.")
    return demo


def _has_web() -> bool:
    try:
        import podmod.web  # noqa: F401
    except ImportError:
        return False
    return True


def _wait_for_http(url: str, demo: Demo, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        if any(p.poll() is not None for p in demo.processes):
            stop(demo)
            raise RuntimeError(f"a podmod process exited; see {demo.directory / 'podmod.log'}")
        time.sleep(0.2)
    stop(demo)
    raise RuntimeError(f"the web UI did not answer within {timeout:.0f} s")


def stop(demo: Demo) -> None:
    """Stop the processes, then the servers; nothing is left running."""
    for process in demo.processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in demo.processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for server in demo.servers:
        server.stop()
    demo.lock.close()
