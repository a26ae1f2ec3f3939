"""The naive baselines `podmod bench` measures podmod against, in the same run on the same data.

Each is the obvious way to write the same feature: one job per report with row-by-row writes, a
Python loop over people asking the database about each one, a queue page that aggregates signals
and pages with OFFSET, a case page that asks for each signal and item on its own, a lock that opens
a connection and writes three autocommitted rows. They produce the same rows podmod does (the
benchmark checks that), so the ratios compare equal work. Nothing here runs in production.

Run as `python -m podmod.bench_naive reader|worker|podmod-worker|flask ...` for the baseline
processes whose memory, latency and recovery are measured.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from podmod import pod_db

NAIVE_QUEUE = "bench-naive"
INGEST_JOB = "podmod.bench_naive.ingest_one_report"


# ---------------------------------------------------------------------------------------------
# Intake: a reader that enqueues one job per report; a job that writes row by row.


def ingest_one_report(database_url: str, report_id: int) -> bool:
    """The naive ingest job: one report, its own connection, one row at a time."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = pod_db.load_reports(conn, [report_id])
        if not rows:
            return False
        row = rows[0]
        if row["person_id"] is not None:
            subject = f"person:{row['person_id']}"
        else:
            subject = f"item:{row['item_type']}:{row['item_id']}"
        case = conn.execute(
            "SELECT id FROM podmod.cases WHERE subject = %s AND status = 'open'", (subject,)
        ).fetchone()
        if case is None:
            case = conn.execute(
                "INSERT INTO podmod.cases (subject, person_id, account, local)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (subject, row["person_id"], row["account"], row["local"]),
            ).fetchone()
        conn.execute(
            "INSERT INTO podmod.signals (case_id, kind, report_id, item_type, item_id, item_guid,"
            " item_missing, reporter_user_id, reporter, reason, snapshot, reviewed, occurred_at)"
            " VALUES (%s, 'report', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (report_id) WHERE kind = 'report' DO NOTHING",
            (
                case["id"],
                row["report_id"],
                row["item_type"],
                row["item_id"],
                row["item_guid"],
                row["item_missing"],
                row["reporter_user_id"],
                row["reporter"],
                row["reason"],
                row["root_text"] if row["post_type"] == "Reshare" else row["item_text"],
                row["reviewed"],
                row["reported_at"],
            ),
        )
        conn.execute("SELECT podmod.refresh_cases(%s)", ([case["id"]],))
        conn.commit()
    return True


def run_reader(database_url: str, redis_url: str, interval: float) -> None:
    """The naive reader: every `interval` seconds, fetch every new report row whole, and enqueue
    a job for each one. Runs until SIGTERM."""
    import redis
    from rq import Queue

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    queue = Queue(NAIVE_QUEUE, connection=redis.Redis.from_url(redis_url))
    last = 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not stopping:
            rows = conn.execute(
                "SELECT * FROM reports WHERE id > %s ORDER BY id", (last,)
            ).fetchall()
            for row in rows:
                queue.enqueue(INGEST_JOB, database_url, row[0])
                last = row[0]
                if stopping:
                    return
            time.sleep(interval)


def run_worker(redis_url: str) -> None:
    """A plain RQ worker (a fork per job, as RQ does by default) on the naive queue."""
    import redis
    from rq import Queue, Worker

    conn = redis.Redis.from_url(redis_url)
    Worker([Queue(NAIVE_QUEUE, connection=conn)], connection=conn).work(logging_level="WARNING")


def run_podmod_worker_leaving_outages_to_rq() -> None:
    """podmod's own worker, but its jobs do not start again when their database connection is
    lost: such a job fails into RQ's retries (2, 10, then 60 s later), as a plain RQ job does."""
    import worker.jobs
    from podmod.cli import main

    worker.jobs.through_outages = lambda work, **_: work()
    main(["worker"])


def run_bare_flask(port: int) -> None:
    """The floor for the web UI's memory: a Flask app with one page under waitress."""
    import waitress
    from flask import Flask

    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "<p>placeholder</p>")
    waitress.serve(app, host="127.0.0.1", port=port, threads=4, _quiet=True)


# ---------------------------------------------------------------------------------------------
# Lists: match the entries in force against the pod's people with a Python loop over people.


def host_names(host: str) -> dict[str, tuple[int, int]]:
    """Every name a host answers to, with how specific it is (lower first): itself and its parent
    domains, each with its port (if any) and without, and the SHA-256 digests of the portless
    names (as specific as the name)."""
    name, _, port = host.partition(":")
    labels = name.split(".")
    names: dict[str, tuple[int, int]] = {}
    for depth in range(max(len(labels) - 1, 1)):
        parent = ".".join(labels[depth:])
        names[parent] = (depth, -len(parent))
        names["sha256:" + hashlib.sha256(parent.encode()).hexdigest()] = (depth, -len(parent))
        if port:
            names[f"{parent}:{port}"] = (depth, -len(parent) - len(port) - 1)
    return names


def apply_by_python_loop(pod: psycopg.Connection, state: psycopg.Connection) -> int:
    """Ask the database about each person in turn (the account's handle, and every name of its
    host: of each list's pod entries the most specific decides, a noop one flags nobody); open a
    case and store a signal for each match, row by row. Returns the signals stored. Runs inside
    the caller's transaction."""
    added = 0
    lists = {
        row[0]: (row[1], row[2])
        for row in state.execute(
            "SELECT id, name, current_version FROM podmod.lists WHERE policy <> 'ignore'"
        )
    }
    with pod.cursor(name="naive_people") as people:
        people.itersize = 2000
        people.execute("SELECT id, lower(diaspora_handle), owner_id IS NOT NULL FROM people")
        for person_id, account, local in people:
            names = {} if local else host_names(account.split("@", 1)[1])
            rows = state.execute(
                "SELECT list_id, kind, value, label, severity FROM podmod.list_entries"
                " WHERE removed_in IS NULL AND ((kind = 'account' AND value = %s)"
                " OR (kind = 'pod' AND value = ANY(%s)))",
                (account, list(names)),
            ).fetchall()
            hits = [row for row in rows if row[1] == "account" and row[4] != "noop"]
            for list_id in {row[0] for row in rows if row[1] == "pod"}:
                covering = [row for row in rows if row[1] == "pod" and row[0] == list_id]
                decides = min(covering, key=lambda row: names[row[2]])
                if decides[4] != "noop":
                    hits.append(decides)
            for list_id, kind, value, label, severity in hits:
                if list_id not in lists:
                    continue
                subject = f"person:{person_id}"
                case = state.execute(
                    "SELECT id FROM podmod.cases WHERE subject = %s AND status = 'open'",
                    (subject,),
                ).fetchone()
                if case is None:
                    case = state.execute(
                        "INSERT INTO podmod.cases (subject, person_id, account, local)"
                        " VALUES (%s, %s, %s, %s) RETURNING id",
                        (subject, person_id, account, local),
                    ).fetchone()
                name, version = lists[list_id]
                state.execute(
                    "INSERT INTO podmod.signals (case_id, kind, person_id, list_id, entry_kind,"
                    " entry_value, details, occurred_at) VALUES (%s, 'list', %s, %s, %s, %s, %s,"
                    " now())",
                    (
                        case[0],
                        person_id,
                        list_id,
                        kind,
                        value,
                        json.dumps(
                            {"list": name, "version": version, "label": label, "severity": severity}
                        ),
                    ),
                )
                state.execute("SELECT podmod.refresh_cases(%s)", ([case[0]],))
                added += 1
    return added


# ---------------------------------------------------------------------------------------------
# Web: the queue page, the case page and the lock as the obvious SQL would do them.

NAIVE_QUEUE_PAGE_SQL = """
SELECT c.id, c.account, c.local,
       count(*) FILTER (WHERE s.kind = 'report' AND NOT s.reviewed) AS pending,
       count(DISTINCT s.reporter_user_id) AS reporters,
       count(*) FILTER (WHERE s.kind = 'list' AND s.retracted_at IS NULL) AS list_matches,
       max(s.occurred_at) AS last_signal_at
FROM podmod.cases c JOIN podmod.signals s ON s.case_id = c.id
WHERE c.status = 'open'
GROUP BY c.id
ORDER BY 10 * count(*) FILTER (WHERE s.kind = 'report' AND NOT s.reviewed)
         + 5 * count(DISTINCT s.reporter_user_id)
         + 30 * count(*) FILTER (WHERE s.kind = 'list' AND s.retracted_at IS NULL) DESC,
         max(s.occurred_at) DESC, c.id DESC
OFFSET %s LIMIT 50
"""


def queue_page(conn: psycopg.Connection, offset: int) -> list[Any]:
    """One queue page: priority computed from the signals on each request, paged by OFFSET."""
    return conn.execute(NAIVE_QUEUE_PAGE_SQL, (offset,)).fetchall()


def case_page(conn: psycopg.Connection, case_id: int) -> dict[str, Any]:
    """One case page: the case, then each signal, then each reported item, one query each."""
    db = conn.cursor(row_factory=dict_row)
    case = db.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    signals = []
    for (signal_id,) in conn.execute(
        "SELECT id FROM podmod.signals WHERE case_id = %s ORDER BY id", (case_id,)
    ).fetchall():
        row = db.execute("SELECT * FROM podmod.signals WHERE id = %s", (signal_id,)).fetchone()
        table = "comments" if row["item_type"] == "Comment" else "posts"
        item = db.execute(f"SELECT text FROM {table} WHERE id = %s", (row["item_id"],)).fetchone()
        signals.append((row, item))
    person = db.execute("SELECT * FROM people WHERE id = %s", (case["person_id"],)).fetchone()
    posts = db.execute(
        "SELECT * FROM posts WHERE author_id = %s ORDER BY created_at DESC LIMIT 20",
        (case["person_id"],),
    ).fetchall()
    return {"case": case, "signals": signals, "person": person, "posts": posts}


def lock(conn: psycopg.Connection, case_id: int, person_id: int, actor: str) -> None:
    """Lock an account: three autocommitted writes."""
    conn.execute(
        "UPDATE users SET locked_at = now() FROM people"
        " WHERE people.owner_id = users.id AND people.id = %s",
        (person_id,),
    )
    conn.execute(
        "INSERT INTO podmod.decisions (case_id, person_id, action, actor, source)"
        " VALUES (%s, %s, 'lock', %s, 'bench')",
        (case_id, person_id, actor),
    )
    conn.execute(
        "INSERT INTO podmod.audit (actor, action, source, case_id)"
        " VALUES (%s, 'lock', 'bench', %s)",
        (actor, case_id),
    )


QUEUE_TEMPLATE = """<table>{% for row in rows %}<tr>
<td><a href="/cases/{{ row[0] }}">{{ row[1] }}</a></td>
<td>{{ row[3] }}</td><td>{{ row[4] }}</td><td>{{ row[5] }}</td><td>{{ row[6] }}</td>
</tr>{% endfor %}</table>"""

CASE_TEMPLATE = """<h1>{{ page.case.account }}</h1><p>{{ page.person.diaspora_handle }}</p>
<ul>{% for signal, item in page.signals %}<li>{{ signal.kind }} {{ signal.reason }}
{{ signal.snapshot }} {{ item.text if item else '' }}</li>{% endfor %}</ul>
<ul>{% for post in page.posts %}<li>{{ post.text }}</li>{% endfor %}</ul>"""


def create_app(database_url: str):
    """The web baseline: the Flask tutorial's pattern (a connection opened for each request) with
    the naive queries above, rendered by autoescaped Jinja templates. No sign-in, no CSRF, no
    session: every advantage goes to the baseline."""
    from flask import Flask, g, redirect, render_template_string, request

    app = Flask(__name__)

    def db() -> psycopg.Connection:
        if "db" not in g:
            g.db = psycopg.connect(database_url, autocommit=True)
        return g.db

    @app.teardown_appcontext
    def close(_error: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.get("/")
    def queue() -> str:
        offset = request.args.get("offset", 0, type=int)
        return render_template_string(QUEUE_TEMPLATE, rows=queue_page(db(), offset))

    @app.get("/cases/<int:case_id>")
    def case(case_id: int) -> str:
        return render_template_string(CASE_TEMPLATE, page=case_page(db(), case_id))

    @app.post("/cases/<int:case_id>/lock")
    def lock_case(case_id: int):
        person_id = request.form.get("person_id", type=int)
        lock(db(), case_id, person_id, "bench")
        return redirect(f"/cases/{case_id}")

    return app


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "reader":
        run_reader(args[0], args[1], float(args[2]))
    elif command == "worker":
        run_worker(args[0])
    elif command == "podmod-worker":
        run_podmod_worker_leaving_outages_to_rq()
    elif command == "flask":
        run_bare_flask(int(args[0]))
    else:
        raise SystemExit(f"unknown baseline process {command!r}")
