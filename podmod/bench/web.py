"""`podmod bench web`: server time of the queue page, the case page, the lock click and a sign-in
with a large store, and the web process's peak memory; beside them the naive web app and a bare
Flask app (podmod.bench.web_naive)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import psycopg

from podmod.bench.scratch import (
    MemoryWatch,
    Scratch,
    build_pod,
    percentiles,
    scratch,
    spawn,
    stderr_tail,
    stop,
)

NAIVE = "podmod.bench.web_naive"  # the module the bare Flask app runs from

# Cases and signals straight into podmod's store, set-based: cases for the first `cases` people
# (half of them local), `signals` reports spread evenly over them in the last 30 days (three in ten
# already reviewed), and a list match on one case in twenty.
WEB_STORE_SQL = """
INSERT INTO podmod.cases (subject, person_id, account, local, status, created_at)
SELECT 'person:' || p.id, p.id, lower(p.diaspora_handle), p.owner_id IS NOT NULL, 'open',
       now() - interval '30 days'
FROM people p WHERE p.id <= %(cases)s ORDER BY p.id;

INSERT INTO podmod.signals (case_id, kind, report_id, item_type, item_id, item_guid,
                            reporter_user_id, reporter, reason, snapshot, reviewed, reviewed_at,
                            reviewed_by, occurred_at)
SELECT 1 + (n::bigint * 7919) %% %(cases)s, 'report', n, 'Post', 1 + n %% %(posts)s,
       md5('post' || (1 + n %% %(posts)s)), 1 + n %% %(local)s,
       'user' || (1 + n %% %(local)s) || '@bench.example', 'Placeholder reason ' || n,
       'Placeholder reported text number ' || n || ' with some ordinary words in it.',
       n %% 10 < 3, CASE WHEN n %% 10 < 3 THEN now() END, CASE WHEN n %% 10 < 3 THEN 'pod' END,
       now() - ((n::bigint * 104729) %% 2592000) * interval '1 second'
FROM generate_series(1, %(signals)s) n;

INSERT INTO podmod.lists (name, url, policy, current_version)
VALUES ('bench', 'file:///dev/null', 'review', 1);
INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind, entry_value, details,
                            occurred_at)
SELECT c.id, 'list', c.person_id, l.id, 'account', c.account,
       jsonb_build_object('list', 'bench', 'version', 1, 'entry', 'account:' || c.account,
                          'label', 'bench', 'policy', 'review'),
       now() - (c.id %% 2592000) * interval '1 second'
FROM podmod.cases c, podmod.lists l WHERE c.id %% 20 = 0;

SELECT podmod.refresh_cases(array(SELECT id FROM podmod.cases));
"""


def _timed_gets(client, urls: list[str]) -> dict[str, float]:
    """Server time of GET requests through a Flask test client, after a few to warm up."""
    for url in urls[:5]:  # warm the pool and the plans
        client.get(url)
    samples = []
    for url in urls:
        begin = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - begin)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    return percentiles(samples)


def _timed_locks(
    client, database_url: str, to_lock: list[tuple[int, int]], form: Callable[[int], dict]
) -> dict[str, float]:
    """Time each POST /cases/<id>/lock until the account's users.locked_at is committed."""
    samples = []
    with psycopg.connect(database_url, autocommit=True) as watch:
        for case_id, person_id in to_lock:
            begin = time.perf_counter()
            response = client.post(f"/cases/{case_id}/lock", data=form(person_id))
            locked = watch.execute(
                "SELECT u.locked_at IS NOT NULL FROM users u JOIN people p"
                " ON p.owner_id = u.id WHERE p.id = %s",
                (person_id,),
            ).fetchone()[0]
            samples.append(time.perf_counter() - begin)
            if response.status_code != 302 or not locked:
                raise RuntimeError(f"lock of case {case_id}: {response.status_code}")
    return percentiles(samples)


def _timed_sign_ins(app, username: str, password: str, times: int) -> dict[str, float]:
    """Server time of POST /login with the right password until its redirect, each from a new
    browser (its own cookie jar), so every one is a whole sign-in."""
    samples = []
    for _ in range(times):
        client = app.test_client()
        client.get("/login")
        with client.session_transaction() as session:
            token = session["csrf"]
        form = {"username": username, "password": password, "csrf_token": token}
        begin = time.perf_counter()
        response = client.post("/login", data=form)
        samples.append(time.perf_counter() - begin)
        if response.status_code != 302:
            raise RuntimeError(f"bench sign-in failed ({response.status_code})")
    return percentiles(samples)


def bench_web(
    server_url: str | None,
    redis_url: str | None,
    *,
    cases: int,
    signals: int,
    requests: int,
) -> dict[str, object]:
    """Server time of the queue page (first and a deep keyset page), a case page, the lock click
    (until users.locked_at is committed) and a sign-in (bcrypt cost 10, as diaspora*), with `cases`
    open cases and `signals` signals in the store; requests go through the Flask app in this
    process (no network in the figures)."""
    import bcrypt

    from podmod.config import DIASPORA_PEPPER, load_config
    from podmod.web import create_app
    from podmod.web.queue import Cursor
    from podmod.web.signin import _devise_input

    people = max(cases * 2, 1000)
    with scratch(server_url, redis_url) as sc:
        build_pod(sc.database_url, people=people, posts=people, comments=people // 4, reports=0)
        started = time.perf_counter()
        with psycopg.connect(sc.database_url, autocommit=True) as conn:
            psycopg.ClientCursor(conn).execute(
                WEB_STORE_SQL,
                {"cases": cases, "signals": signals, "posts": people, "local": people // 4},
            )
            password = uuid.uuid4().hex
            hashed = bcrypt.hashpw(
                _devise_input(password, DIASPORA_PEPPER), bcrypt.gensalt(10, b"2a")
            ).decode()
            conn.execute(
                "UPDATE users SET encrypted_password = %s WHERE id = %s", (hashed, people // 4)
            )
            conn.execute(
                "INSERT INTO roles (person_id, name, created_at, updated_at)"
                " VALUES (%s, 'admin', now(), now())",
                (people // 4,),
            )
            conn.execute("VACUUM ANALYZE")
            store_seconds = time.perf_counter() - started
            order = "priority DESC, last_signal_at DESC NULLS LAST, id DESC"
            deep = conn.execute(
                "SELECT id, priority, last_signal_at FROM podmod.cases WHERE status = 'open'"
                f" ORDER BY {order} OFFSET %s LIMIT 1",
                (int(cases * 0.9),),
            ).fetchone()
            top_cases = [
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM podmod.cases WHERE status = 'open' ORDER BY {order} LIMIT %s",
                    (requests,),
                )
            ]
            to_lock = conn.execute(
                "SELECT id, person_id FROM podmod.cases WHERE status = 'open' AND local"
                f" AND person_id <> %s ORDER BY {order} LIMIT %s",
                (people // 4, 2 * requests),
            ).fetchall()
            to_lock, to_lock_naive = to_lock[:requests], to_lock[requests:]
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM podmod.cases WHERE status = 'open'),"
                " (SELECT count(*) FROM podmod.signals)"
            ).fetchone()

        config = load_config(
            os.devnull,
            environ={
                "PODMOD_DATABASE_URL": sc.database_url,
                "PODMOD_REDIS_URL": sc.redis_url,
                "PODMOD_SECRET_KEY": uuid.uuid4().hex,
                "PODMOD_LOG_LEVEL": "WARNING",
            },
        )
        app = create_app(config)
        try:
            client = app.test_client()
            client.get("/login")
            with client.session_transaction() as session:
                token = session["csrf"]
            signed_in = client.post(
                "/login",
                data={"username": f"user{people // 4}", "password": password, "csrf_token": token},
            )
            if signed_in.status_code != 302:
                raise RuntimeError(f"bench sign-in failed ({signed_in.status_code})")
            with client.session_transaction() as session:
                token = session["csrf"]

            deep_cursor = Cursor.of(
                {"priority": deep[1], "last_signal_at": deep[2], "id": deep[0]}
            ).encode()
            figures: dict[str, object] = {
                "open_cases": counts[0],
                "signals": counts[1],
                "store_build_seconds": round(store_seconds, 1),
                "requests_each": requests,
                "queue_first_page": _timed_gets(client, ["/"] * requests),
                "queue_deep_keyset_page": _timed_gets(
                    client, [f"/?after={deep_cursor}"] * requests
                ),
                "queue_local_with_list_match": _timed_gets(
                    client, ["/?where=local&listed=1"] * requests
                ),
                "queue_search_by_handle": _timed_gets(
                    client, [f"/?q=remote{cases - n}" for n in range(requests)]
                ),
                "queue_search_by_part_of_a_handle": _timed_gets(
                    client, [f"/?q=ote{cases - n}%40" for n in range(requests)]
                ),
                "queue_search_by_pod": _timed_gets(
                    client, [f"/?q=%40pod{1 + n % 50}.example" for n in range(requests)]
                ),
                "case_page": _timed_gets(client, [f"/cases/{case_id}" for case_id in top_cases]),
            }
            figures["lock_click_to_locked_at_committed"] = _timed_locks(
                client, sc.database_url, to_lock, lambda _person_id: {"csrf_token": token}
            )
            figures["sign_in"] = _timed_sign_ins(
                app, f"user{people // 4}", password, max(requests // 4, 5)
            )
        finally:
            app.extensions["podmod"].close()
        figures["naive"] = naive_web(
            sc.database_url, deep_offset=int(cases * 0.9), cases=top_cases, to_lock=to_lock_naive
        )
        figures["memory"] = web_memory(
            sc,
            username=f"user{people // 4}",
            password=password,
            urls=["/", f"/?after={deep_cursor}", *(f"/cases/{case_id}" for case_id in top_cases)],
        )
    return figures


def naive_web(
    database_url: str, *, deep_offset: int, cases: list[int], to_lock: list[tuple[int, int]]
) -> dict[str, object]:
    """The same pages and clicks through the naive baseline's Flask app (podmod.bench.web_naive),
    timed the same way, in this process; the lock is timed until locked_at is committed."""
    from podmod.bench import web_naive

    client = web_naive.create_app(database_url).test_client()
    n = max(len(cases) // 4, 5)  # the baseline's queue page is slow: fewer samples suffice
    return {
        "queue_first_page": _timed_gets(client, ["/"] * n),
        "queue_deep_page": _timed_gets(client, [f"/?offset={deep_offset}"] * n),
        "case_page": _timed_gets(client, [f"/cases/{case_id}" for case_id in cases]),
        "lock": _timed_locks(
            client, database_url, to_lock, lambda person_id: {"person_id": person_id}
        ),
    }


def web_memory(sc: Scratch, *, username: str, password: str, urls: list[str]) -> dict[str, float]:
    """Peak memory of `podmod serve` (waitress, 4 threads) while a signed-in admin loads these
    pages over HTTP, beside a bare Flask app under waitress serving the same number of requests."""
    import re

    import requests

    from podmod.embedded import free_port

    def serve_and_load(args: list[str], module: str, port: int, sign_in: bool) -> float:
        process = spawn(args, sc.env(PODMOD_SECRET_KEY=uuid.uuid4().hex), module)
        watch = MemoryWatch(process)
        base = f"http://127.0.0.1:{port}"
        try:
            with requests.Session() as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        page = http.get(base + ("/login" if sign_in else "/"), timeout=5)
                        break
                    except requests.ConnectionError:
                        if time.monotonic() > deadline or process.poll() is not None:
                            raise RuntimeError(
                                f"{module} {args} did not start: {stderr_tail(process)}"
                            ) from None
                        time.sleep(0.1)
                if sign_in:
                    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
                    signed_in = http.post(
                        base + "/login",
                        data={"username": username, "password": password, "csrf_token": token},
                        headers={"Origin": base},
                        allow_redirects=False,
                    )
                    if signed_in.status_code != 302:
                        raise RuntimeError(f"web memory: sign-in failed ({signed_in.status_code})")
                for url in urls:
                    response = http.get(base + (url if sign_in else "/"), timeout=30)
                    if response.status_code != 200:
                        raise RuntimeError(f"web memory: GET {url}: {response.status_code}")
        finally:
            stop(process)
        return watch.peak_mib

    port = free_port()
    podmod_mib = serve_and_load(
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--threads", "4"],
        "podmod.cli",
        port,
        sign_in=True,
    )
    port = free_port()
    bare_mib = serve_and_load(["flask", str(port)], NAIVE, port, sign_in=False)
    return {"requests": len(urls), "web_peak_memory_mib": podmod_mib, "bare_flask_mib": bare_mib}
